"""Pooling windows against PyTorch: every padding / stride / ceil_mode combination either
lowers to a program whose output has PyTorch's shape and values, or is refused with
one line before anything is written. TFLite has no ceil mode and only SAME/VALID: max
pooling pads with -128 (PADV2) where those cannot place PyTorch's windows, an average
with count_include_pad=True pads with the zero point (PAD)."""
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
from mcu_compile.reference import interpreter as reference

# (map size, kernel, stride, padding, ceil_mode): the ResNet stem, the 8x8 ceil
# case, odd sizes where ceil adds a window and where it does not, padding beside ceil
CASES = [(8, 3, 2, 0, True), (8, 3, 2, 1, False), (7, 3, 2, 1, True), (7, 3, 2, 0, True),
         (9, 3, 2, 0, True), (9, 2, 2, 0, True), (8, 2, 2, 0, True), (6, 3, 3, 0, True),
         (5, 2, 2, 1, False), (8, 3, 1, 1, True), (7, 2, 2, 0, False), (10, 3, 2, 1, True)]


def _pool(mode: str, kernel, stride, padding, ceil_mode) -> nn.Module:
    if mode == "max":
        return nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    return nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=mode == "avg_with_pads")


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@pytest.mark.parametrize("mode", ["max", "avg", "avg_with_pads"])
@pytest.mark.parametrize("size,kernel,stride,padding,ceil_mode", CASES)
def test_pooling_matches_pytorch_or_is_refused(mode, size, kernel, stride, padding, ceil_mode):
    model = _pool(mode, kernel, stride, padding, ceil_mode).eval()
    x = torch.randn(1, 2, size, size, generator=torch.Generator().manual_seed(size))
    converted = quantize(export(model, (x,)), [(x,)], (x,))
    try:
        program = lower(converted, (x,)).verify("lower")
    except UnsupportedOpError as err:
        message = str(err)
        assert mode != "max", message  # max pooling always has a form
        assert "\n" not in message and "SAME" in message and "VALID" in message
        return
    q = to_program_inputs(program, (x,))
    got = reference.run(program, q)[0].transpose(0, 3, 1, 2)
    # the pooled tensor shares the input's scale and zero point: pool the int8 values themselves,
    # an average with count_include_pad over the zero point (TFLite averages the stored values)
    values = torch.from_numpy(q[0].transpose(0, 3, 1, 2).astype(np.float32))
    if mode == "avg_with_pads" and padding:
        zero_point = float(program.tensor(program.inputs[0]).quant.zero_point[0])
        values = nn.functional.pad(values, (padding,) * 4, value=zero_point)
        model = _pool(mode, kernel, stride, 0, ceil_mode)
    expected = model(values).numpy()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected if mode == "max" else _round_half_away(expected))
    if padding and mode != "avg":
        assert program.ops[0].kind == ("PADV2" if mode == "max" else "PAD") or program.ops[-1].options["padding"] == "SAME"


def test_ceil_mode_cases_compile_rather_than_all_being_refused():
    """The SAME mapping covers the common ceil_mode pools (an 8x8 map, kernel 3, stride 2)."""
    x = torch.randn(1, 2, 8, 8)
    model = nn.MaxPool2d(3, 2, ceil_mode=True).eval()
    program = lower(quantize(export(model, (x,)), [(x,)], (x,)), (x,))
    assert program.tensor(program.outputs[0]).shape == (1, 4, 4, 2)
    assert program.ops[-1].options["padding"] == "SAME"
