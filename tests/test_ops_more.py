"""BROADCAST_TO (ops/repeat.py), PRELU (ops/prelu.py) and LOG_SOFTMAX (ops/log_softmax.py):
each kernel against the host reference and the TFLite Micro interpreter byte for byte
(kernel_harness), strict shape rules, one-line refusals, the .tflite round trip, and a
small program of these kinds bit-exact in QEMU on Cortex-M55 and Cortex-M4."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import mcu_compile
from kernel_harness import Builder, assert_kernel_case, assert_refused_in_one_line, quant, random_inputs, tflm_run
from mcu_compile.errors import IRError
from mcu_compile.ir.program import Op, Program, Tensor
from mcu_compile.ir.tflite_io import read_tflite, write_tflite
from mcu_compile.ops import registry
from mcu_compile.reference import interpreter as reference

SCALE, ZP = 0.05, 4


def _broadcast_to(in_shape, shape, seed=0) -> Program:
    b = Builder(seed)
    x = b.input(in_shape, scale=SCALE, zp=ZP)
    return b.op("BROADCAST_TO", [x, b.ints(shape)], tuple(shape), SCALE, ZP)


def _prelu(in_shape, alpha_shape, alpha_scale=0.01, alpha_zp=3, out_scale=0.04, out_zp=-7, seed=0) -> Program:
    b = Builder(seed)
    x = b.input(in_shape, scale=SCALE, zp=ZP)
    alpha = b.const_int8(alpha_shape, scale=alpha_scale, zp=alpha_zp)
    return b.op("PRELU", [x, alpha], np.broadcast_shapes(in_shape, alpha_shape), out_scale, out_zp)


def _log_softmax(shape, scale=SCALE, seed=0) -> Program:
    b = Builder(seed)
    x = b.input(shape, scale=scale)
    return b.op("LOG_SOFTMAX", [x], shape, 16 / 256, 127)


CASES = {
    "broadcast_to_rows": lambda: _broadcast_to((1, 5), [4, 5]),
    "broadcast_to_new_axes": lambda: _broadcast_to((3, 1), [2, 2, 3, 6]),
    "broadcast_to_middle": lambda: _broadcast_to((2, 1, 4), [2, 3, 4]),
    "broadcast_to_rank5": lambda: _broadcast_to((3, 1, 2), [1, 1, 3, 4, 2]),
    "prelu_channel_alpha": lambda: _prelu((1, 4, 5, 6), (1, 1, 6)),
    "prelu_same_shape": lambda: _prelu((2, 3, 7), (2, 3, 7), alpha_scale=0.02, alpha_zp=-10, out_scale=0.06),
    "prelu_scalar_alpha_rank2": lambda: _prelu((5, 9), (1,), alpha_scale=0.004, alpha_zp=0, out_zp=20),
    "prelu_alpha_broadcasts_input": lambda: _prelu((4, 1, 3), (1, 5, 3), out_scale=0.03),
    "log_softmax_rows": lambda: _log_softmax((3, 10)),
    "log_softmax_4d": lambda: _log_softmax((1, 2, 3, 17), scale=0.1),
    "log_softmax_fine_scale": lambda: _log_softmax((4, 33), scale=0.01),
    "log_softmax_coarse_scale": lambda: _log_softmax((2, 300), scale=0.3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_matches_reference_and_tflm(case, kernel_build, tmp_path):
    assert_kernel_case(CASES[case](), kernel_build, tmp_path)


def test_reference_follows_the_float_definitions():
    program = CASES["broadcast_to_new_axes"]()
    x = random_inputs(program, 0)[0]
    np.testing.assert_array_equal(reference.run(program, [x])[0], np.broadcast_to(x, (2, 2, 3, 6)))
    program = CASES["log_softmax_rows"]()
    x = random_inputs(program, 1)[0]
    real = (x.astype(np.float64) - program.tensor("x0").quant.zero_point[0]) * SCALE
    want = real - np.log(np.exp(real).sum(axis=-1, keepdims=True))
    got = (reference.run(program, [x])[0].astype(np.float64) - 127) * 16 / 256
    assert np.abs(got - np.maximum(want, -255 * 16 / 256)).max() <= 16 / 256


IMPOSSIBLE = {
    "cannot broadcast the shape [3, 2] to [3, 4]": lambda: _broadcast_to((3, 2), [3, 4]),
    "cannot broadcast the shape [3, 1] to [1]": lambda: _broadcast_to((3, 1), [1]),
    "cannot broadcast the shape [2] to [1, 1, 1, 1, 1, 2]": lambda: _broadcast_to((2,), [1, 1, 1, 1, 1, 2]),
}


@pytest.mark.parametrize("message", sorted(IMPOSSIBLE))
def test_impossible_parameters_are_ir_errors(message):
    with pytest.raises(IRError, match=re.escape(message)):
        IMPOSSIBLE[message]().verify()


def _per_channel_alpha() -> Program:
    program = _prelu((1, 3, 4), (4,))
    alpha = program.tensors[program.ops[0].inputs[1]]
    alpha.quant = type(alpha.quant)(np.full(4, 0.01), np.zeros(4), 0)
    return program


def _broadcast_output_quant() -> Program:
    program = _broadcast_to((1, 5), [4, 5])
    program.tensors["y"].quant = quant(0.1, 0)
    return program


def _softmax_output_quant() -> Program:
    program = _log_softmax((2, 3))
    program.tensors["y"].quant = quant(1 / 256, -128)
    return program


REFUSED = {
    "no per-channel alpha": _per_channel_alpha,
    "broadcasting a rank-5 tensor": lambda: _prelu((1, 2, 3, 4, 5), (5,)),
    "needs the output scale 16/256 and zero point 127": _softmax_output_quant,
    "needs int8 outputs with the input's scale and zero point": _broadcast_output_quant,
    "of a scalar is not supported": lambda: _broadcast_to((), [2, 3]),
}


@pytest.mark.parametrize("message", sorted(REFUSED))
def test_variants_no_kernel_takes_are_refused_in_one_line(message):
    assert_refused_in_one_line(REFUSED[message](), message)


@pytest.mark.parametrize("case", ["broadcast_to_new_axes", "prelu_channel_alpha", "log_softmax_4d"])
def test_tflite_round_trip(case):
    program = CASES[case]()
    again = read_tflite(write_tflite(program))
    [op], [back] = program.ops, again.ops
    assert back.kind == op.kind and back.options == op.options
    assert registry.infer_output_shapes(again, back) == [program.tensor(n).shape for n in op.outputs]
    inputs = random_inputs(program, 0)
    np.testing.assert_array_equal(reference.run(again, inputs)[0], reference.run(program, inputs)[0])


def _more_program() -> Program:
    """x (1, 4, 6) -> PRELU (alpha per channel) -> BROADCAST_TO (2, 4, 6) -> LOG_SOFTMAX."""
    p = Program()
    p.add_tensor(Tensor("x", (1, 4, 6), "int8", quant(SCALE, ZP)))
    p.add_tensor(Tensor("alpha", (6,), "int8", quant(0.01, 2), np.arange(-30, 30, 10)))
    p.add_tensor(Tensor("pr", (1, 4, 6), "int8", quant(0.04, -3)))
    p.add_tensor(Tensor("shape", (3,), "int32", None, np.array([2, 4, 6], dtype=np.int32)))
    p.add_tensor(Tensor("wide", (2, 4, 6), "int8", quant(0.04, -3)))
    p.add_tensor(Tensor("y", (2, 4, 6), "int8", quant(16 / 256, 127)))
    p.inputs, p.outputs = ["x"], ["y", "pr"]
    p.add_op(Op("PRELU", ["x", "alpha"], ["pr"]))
    p.add_op(Op("BROADCAST_TO", ["pr", "shape"], ["wide"]))
    p.add_op(Op("LOG_SOFTMAX", ["wide"], ["y"]))
    return p.verify()


def test_more_program_is_bit_exact_with_tflm():
    program = _more_program()
    for seed in range(3):
        inputs = random_inputs(program, seed)
        for got, want in zip(reference.run(program, inputs), tflm_run(program, inputs)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_more_program_firmware_is_bit_exact(board, tmp_path):
    model = tmp_path / "more.tflite"
    model.write_bytes(write_tflite(_more_program()))
    compiled = mcu_compile.compile(model, board=board, out_dir=tmp_path / "fw")
    run = compiled.run(inputs=[random_inputs(compiled.program, seed) for seed in range(2)])
    assert run.bit_exact
    assert all(np.unique(out).size > 1 for outputs in run.outputs for out in outputs)
