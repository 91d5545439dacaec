"""The op registry is complete: every kind a .tflite may hold can be run by the host
reference, shape-checked, planned and emitted as C, or is refused before anything is
written; and an op added through it (LOGISTIC) runs bit-exactly in firmware."""
import shutil

import numpy as np
import torch
import pytest

import mcu_compile
from mcu_compile.errors import UnsupportedOpError
from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.ir.tflite_io import read_tflite, write_tflite
from mcu_compile.ops import registry
from mcu_compile.passes.in_place import IN_PLACE_KIND
from mcu_compile.passes.patch import PATCH_KINDS
from mcu_compile.reference import interpreter as reference


def test_every_file_kind_is_complete_or_refused_before_writing():
    for name, kind in registry.file_kinds().items():
        assert kind.shapes is not None, name
        assert kind.reference is not None or kind.uses_npu, f"{name}: no reference kernel"
        if kind.emit is None:
            program = _one_op(name)
            with pytest.raises(UnsupportedOpError, match=f"no C kernel for {name}"):
                registry.check_compilable(program)


def test_firmware_only_kinds_are_made_by_a_pass_and_never_written():
    made_by_passes = {k.residual_add_kind for k in registry.all_kinds().values()} | {IN_PLACE_KIND, *PATCH_KINDS}
    for name, kind in registry.all_kinds().items():
        if kind.tflite is None:
            assert name in made_by_passes and kind.emit is not None, name
            program = Program()
            program.add_tensor(Tensor("x", (1, 4), "int8", Quant.per_tensor(0.1, 0)))
            program.add_op(Op(name, ["x"], ["x"]))
            with pytest.raises(UnsupportedOpError, match="firmware-only"):
                write_tflite(program)


def test_unknown_kind_is_one_clear_error():
    with pytest.raises(UnsupportedOpError, match="not an op kind mcu-compile knows; supported: .*ADD, .*CONV_2D"):
        registry.get("SIN")


def _one_op(kind: str) -> Program:
    """x (1, 2, 2, 4) -> kind -> y, the second input an int32 constant when the kind reads one."""
    program = Program()
    q = Quant.per_tensor(0.05, 0)
    program.add_tensor(Tensor("x", (1, 2, 2, 4), "int8", q))
    program.add_tensor(Tensor("axes", (2,), "int32", None, np.array([1, 2], dtype=np.int32)))
    program.add_tensor(Tensor("y", (1, 4), "int8", q))
    program.add_op(Op(kind, ["x", "axes"], ["y"]))
    program.inputs, program.outputs = ["x"], ["y"]
    return program


def _logistic_program() -> Program:
    """x -> LOGISTIC -> RESHAPE: the table kernel runs in place of its input."""
    program = Program()
    program.add_tensor(Tensor("x", (1, 8, 8, 3), "int8", Quant.per_tensor(0.04, -7)))
    program.add_tensor(Tensor("s", (1, 8, 8, 3), "int8", Quant.per_tensor(1 / 256, -128)))
    program.add_tensor(Tensor("y", (1, 192), "int8", Quant.per_tensor(1 / 256, -128)))
    program.add_op(Op("LOGISTIC", ["x"], ["s"]))
    program.add_op(Op("RESHAPE", ["s"], ["y"], {"new_shape": [1, 192]}))
    program.inputs, program.outputs = ["x"], ["y"]
    return program


def test_logistic_round_trips_through_a_tflite_file():
    program = read_tflite(write_tflite(_logistic_program()))
    assert [op.kind for op in program.ops] == ["LOGISTIC", "RESHAPE"]
    assert registry.infer_output_shapes(program, program.ops[0]) == [(1, 8, 8, 3)]


def test_logistic_with_another_output_scale_is_refused():
    program = _logistic_program()
    program.tensors["s"].quant = Quant.per_tensor(1 / 128, -128)
    with pytest.raises(UnsupportedOpError, match="LOGISTIC needs the output scale 1/256"):
        registry.check_compilable(program)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_logistic_firmware_is_bit_exact(board, tmp_path):
    model = tmp_path / "logistic.tflite"
    model.write_bytes(write_tflite(_logistic_program()))
    compiled = mcu_compile.compile(model, board=board, out_dir=tmp_path / "fw")
    inputs = [[np.arange(-128, 64, dtype=np.int8).reshape(1, 8, 8, 3)]]  # 192 distinct values
    run = compiled.run(inputs=inputs)
    assert run.bit_exact
    assert np.unique(run.outputs[0][0]).size > 100
    np.testing.assert_array_equal(run.outputs[0][0], reference.run(compiled.program, inputs[0])[0])
    assert compiled.report["arena"]["bytes"] == 192  # LOGISTIC writes over x, RESHAPE shares s


class GatedMaxMin(torch.nn.Module):
    """sigmoid (LOGISTIC), torch.maximum and torch.minimum (MAXIMUM, MINIMUM) from PyTorch."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        return torch.sigmoid(torch.maximum(a, b)), torch.minimum(a, b)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_sigmoid_maximum_minimum_from_pytorch_are_bit_exact(board, tmp_path):
    generator = torch.Generator().manual_seed(4)
    calibration = [(torch.randn(1, 3, 6, 6, generator=generator),) for _ in range(4)]
    model = GatedMaxMin().eval()
    compiled = mcu_compile.compile(model, calibration[0], calibration=calibration, board=board,
                                   out_dir=tmp_path / "fw", test_inputs=calibration[1:3])
    assert {op.kind for op in compiled.program.ops} >= {"LOGISTIC", "MAXIMUM", "MINIMUM"}
    run = compiled.run()
    assert run.bit_exact
    gate, low = run.outputs[0]
    assert np.unique(gate).size > 10 and np.unique(low).size > 10
    # the quantized program agrees with the float model (one int8 step of sigmoid is 1/256)
    with torch.no_grad():
        want_gate, want_low = model(calibration[1][0])
    got_gate = (gate.astype(np.float64) + 128) / 256
    assert np.abs(got_gate.transpose(0, 3, 1, 2) - want_gate.numpy()).max() < 0.05
    q = compiled.program.tensor(compiled.program.outputs[1]).quant
    got_low = (low.astype(np.float64) - q.zero_point[0]) * q.scale[0]
    assert np.abs(got_low.transpose(0, 3, 1, 2) - want_low.numpy()).max() < 4 * q.scale[0]
