"""Pooling windows against PyTorch: every padding / stride / ceil_mode combination either
lowers to a program whose output has PyTorch's shape and values, or is refused with
one line before anything is written. TFLite has no ceil mode and only SAME/VALID: max
pooling pads with -128 (PADV2) where those cannot place PyTorch's windows, an average
with count_include_pad=True pads with the zero point on both sides (PAD), then VALID or,
where a ceil_mode window runs one past the padding, SAME. Every compiled case's host
reference is TFLite Micro's output byte for byte."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from mcu_compile.errors import UnsupportedOpError
from mcu_compile.frontend.export import export
from mcu_compile.frontend.lower import lower
from mcu_compile.frontend.quantize import quantize
from mcu_compile.ir.inputs import to_program_inputs
from mcu_compile.ir.tflite_io import write_tflite
from mcu_compile.reference import interpreter as reference
from mcu_compile.reference.oracle import tflm_outputs

# (map size, kernel, stride, padding, ceil_mode): the ResNet stem, the 8x8 ceil
# case, odd sizes where ceil adds a window and where it does not, padding beside ceil (a last
# window one past the padding: SAME; (9, 4, 2, 1) and (7, 3, 3, 0) counting padding: refused)
CASES = [(8, 3, 2, 0, True), (8, 3, 2, 1, False), (7, 3, 2, 1, True), (7, 3, 2, 0, True),
         (9, 3, 2, 0, True), (9, 2, 2, 0, True), (8, 2, 2, 0, True), (6, 3, 3, 0, True),
         (5, 2, 2, 1, False), (8, 3, 1, 1, True), (7, 2, 2, 0, False), (10, 3, 2, 1, True),
         (8, 3, 2, 1, True), (9, 4, 2, 1, True), (7, 3, 3, 0, True)]
# the cases TFLite cannot average as PyTorch does (count_include_pad=False with padding SAME
# does not place; a ceil_mode window past the padding that VALID and SAME count otherwise)
REFUSED = {"avg": {(8, 3, 2, 1, False), (5, 2, 2, 1, False), (10, 3, 2, 1, True), (8, 3, 2, 1, True),
                   (7, 3, 3, 0, True)},
           "avg_with_pads": {(9, 4, 2, 1, True), (7, 3, 3, 0, True)}}


def _pool(mode: str, kernel, stride, padding, ceil_mode) -> nn.Module:
    if mode == "max":
        return nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    return nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=mode == "avg_with_pads")


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@pytest.mark.parametrize("mode", ["max", "avg", "avg_with_pads"])
@pytest.mark.parametrize("case", CASES)
def test_pooling_matches_pytorch_or_is_refused(mode, case, tmp_path):
    size, kernel, stride, padding, ceil_mode = case
    model = _pool(mode, kernel, stride, padding, ceil_mode).eval()
    x = torch.randn(1, 2, size, size, generator=torch.Generator().manual_seed(size))
    converted = quantize(export(model, (x,)), [(x,)], (x,))
    try:
        program = lower(converted, (x,)).verify("lower")
    except UnsupportedOpError as err:
        message = str(err)
        assert case in REFUSED.get(mode, ()) and "\n" not in message, message
        assert ("SAME" in message and "VALID" in message) and ("ceil_mode" in message or mode == "avg")
        return
    assert case not in REFUSED.get(mode, ())
    q = to_program_inputs(program, (x,))
    got = reference.run(program, q)
    path = tmp_path / "pool.tflite"
    path.write_bytes(write_tflite(program))
    assert got[0].tobytes() == tflm_outputs(path, q)[0].tobytes()
    # the pooled tensor shares the input's scale and zero point: pool the int8 values themselves,
    # an average with count_include_pad over the zero point (TFLite averages the stored values);
    # PyTorch drops a ceil_mode window starting in the right padding: the first windows are kept
    values = torch.from_numpy(q[0].transpose(0, 3, 1, 2).astype(np.float32))
    want_shape = model(values).shape
    if mode == "avg_with_pads" and padding:
        zero_point = float(program.tensor(program.inputs[0]).quant.zero_point[0])
        values = nn.functional.pad(values, (padding,) * 4, value=zero_point)
        model = _pool(mode, kernel, stride, 0, ceil_mode)
    expected = model(values)[:, :, :want_shape[2], :want_shape[3]].numpy()
    got = got[0].transpose(0, 3, 1, 2)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected if mode == "max" else _round_half_away(expected))
    if padding and mode != "avg":
        assert program.ops[0].kind == ("PADV2" if mode == "max" else "PAD") or program.ops[-1].options["padding"] == "SAME"


def test_an_average_counting_padding_tflite_same_cannot_express_is_pad_then_valid():
    """PyTorch pads 1 on both sides of an 8x8 map for AvgPool2d(3, 2, 1) (TFLite's SAME would pad
    0 before, 1 after): PAD with the zero point on both sides, then VALID windows."""
    x = torch.randn(1, 2, 8, 8)
    program = lower(quantize(export(nn.AvgPool2d(3, 2, 1).eval(), (x,)), [(x,)], (x,)), (x,))
    assert [op.kind for op in program.ops] == ["PAD", "AVERAGE_POOL_2D"]
    zero_point = program.tensor(program.inputs[0]).quant.zero_point[0]
    assert program.tensor(program.ops[0].inputs[1]).data.tolist() == [[0, 0], [1, 1], [1, 1], [0, 0]]
    assert program.ops[1].options["padding"] == "VALID" and program.tensor(program.outputs[0]).shape == (1, 4, 4, 2)
    assert program.tensor(program.ops[0].outputs[0]).quant.zero_point[0] == zero_point  # PAD writes the zero point


def test_a_ceil_mode_average_past_the_padding_is_one_line():
    x = torch.randn(1, 2, 9, 9)
    model = nn.AvgPool2d(4, 2, 1, ceil_mode=True).eval()
    with pytest.raises(UnsupportedOpError) as err:
        lower(quantize(export(model, (x,)), [(x,)], (x,)), (x,))
    assert str(err.value).startswith(
        "aten.avg_pool2d.default: on a 9x9 map, kernel [4, 4], stride [2, 2], padding [1, 1] with ceil_mode give "
        "5x5 windows, the last running 1x1 past the input and its padding, which PyTorch leaves out of its "
        "divisor; neither TFLite's VALID nor SAME pooling of the padded map averages it so; use ceil_mode=False, "
        "or an input size the windows fit (at ")


def test_ceil_mode_cases_compile_rather_than_all_being_refused():
    """The SAME mapping covers the common ceil_mode pools (an 8x8 map, kernel 3, stride 2)."""
    x = torch.randn(1, 2, 8, 8)
    model = nn.MaxPool2d(3, 2, ceil_mode=True).eval()
    program = lower(quantize(export(model, (x,)), [(x,)], (x,)), (x,))
    assert program.tensor(program.outputs[0]).shape == (1, 4, 4, 2)
    assert program.ops[-1].options["padding"] == "SAME"
