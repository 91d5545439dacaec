"""BATCH_MATMUL (ops/matmul.py), TRANSPOSE_CONV and FULLY_CONNECTED with keep_num_dims
(ops/conv.py): each kernel against the host reference and the TFLite Micro interpreter byte
for byte (kernel_harness), strict shape rules, one-line refusals, the .tflite round trip,
and a small program of these kinds bit-exact in QEMU on Cortex-M55 and Cortex-M4."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from kernel_harness import (Builder, assert_kernel_case, assert_program_matches_tflm, assert_refused_in_one_line,
                            firmware_run, quant, random_inputs)
from mcu_compile.errors import IRError
from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.ir.tflite_io import read_tflite, write_tflite
from mcu_compile.ops import registry
from mcu_compile.reference import interpreter as reference


def _bmm(lhs, rhs, out, const_rhs=False, seed=0, **adj) -> Program:
    b = Builder(seed)
    x = b.input(lhs, scale=0.05)
    y = b.const_int8(rhs, scale=0.03, zp=-7) if const_rhs else b.input(rhs, scale=0.04)
    return b.op("BATCH_MATMUL", [x, y], out, 0.9, **adj)


def _tconv(in_shape, w_shape, out_shape, stride=(1, 1), padding="VALID", bias=True, per_channel=True,
           act="NONE", seed=0) -> Program:
    b = Builder(seed)
    x = b.input(in_shape, scale=0.05)
    w = b.weights(w_shape, 0, per_channel)
    inputs = [b.ints(out_shape), w, x] + ([b.bias(w_shape[0])] if bias else [])
    return b.op("TRANSPOSE_CONV", inputs, out_shape, 0.08, padding=padding, stride_h=stride[0],
                stride_w=stride[1], fused_activation_function=act)


def _fc(in_shape, out_ch, per_channel=True, act="NONE", seed=0) -> Program:
    b = Builder(seed)
    x = b.input(in_shape, scale=0.05)
    w = b.weights((out_ch, in_shape[-1]), 0, per_channel)
    return b.op("FULLY_CONNECTED", [x, w, b.bias(out_ch)], (*in_shape[:-1], out_ch), 0.1, keep_num_dims=True,
                fused_activation_function=act)


CASES = {
    # BATCH_MATMUL: odd sizes, adj flags, batch broadcasting, ranks 2 to 5, a constant rhs
    "bmm_rank3": lambda: _bmm((3, 5, 7), (3, 7, 4), (3, 5, 4)),
    "bmm_rank2": lambda: _bmm((5, 9), (9, 3), (5, 3)),
    "bmm_adj_x": lambda: _bmm((2, 7, 5), (2, 7, 3), (2, 5, 3), adj_x=True),
    "bmm_adj_y": lambda: _bmm((2, 5, 7), (2, 3, 7), (2, 5, 3), adj_y=True),
    "bmm_adj_both_const_broadcast": lambda: _bmm((7, 5), (2, 4, 7), (2, 5, 4), const_rhs=True, adj_x=True,
                                                 adj_y=True),
    "bmm_broadcast_both_sides": lambda: _bmm((2, 1, 5, 7), (3, 4, 7), (2, 3, 5, 4), adj_y=True),
    "bmm_broadcast_rhs_batch_one": lambda: _bmm((4, 3, 6), (1, 6, 5), (4, 3, 5)),
    "bmm_rank5": lambda: _bmm((2, 1, 3, 3, 4), (1, 2, 1, 4, 2), (2, 2, 3, 3, 2)),
    "bmm_const_weights_rank2": lambda: _bmm((2, 6, 11), (11, 5), (2, 6, 5), const_rhs=True),
    # TRANSPOSE_CONV: stride 2, SAME and VALID, per-channel and per-tensor, with and without bias, activations
    "tconv_same_stride2": lambda: _tconv((1, 4, 5, 3), (6, 3, 3, 3), (1, 8, 10, 6), (2, 2), "SAME"),
    "tconv_same_4x4_stride2_relu6": lambda: _tconv((1, 3, 3, 4), (5, 4, 4, 4), (1, 6, 6, 5), (2, 2), "SAME",
                                                   act="RELU6"),
    "tconv_valid_stride2_per_tensor_relu": lambda: _tconv((2, 3, 4, 5), (4, 3, 2, 5), (2, 7, 8, 4), (2, 2),
                                                          bias=False, per_channel=False, act="RELU"),
    "tconv_valid_stride1": lambda: _tconv((1, 5, 3, 2), (3, 2, 3, 2), (1, 6, 5, 3)),
    "tconv_same_mixed_strides": lambda: _tconv((1, 3, 4, 3), (7, 2, 3, 3), (1, 9, 4, 7), (3, 1), "SAME"),
    "tconv_valid_output_padding": lambda: _tconv((1, 3, 3, 2), (2, 3, 3, 2), (1, 8, 7, 2), (2, 2)),
    # FULLY_CONNECTED keep_num_dims on rank 3 and 4
    "fc_keep_dims_rank3": lambda: _fc((2, 3, 7), 5),
    "fc_keep_dims_rank4_per_tensor_relu": lambda: _fc((1, 2, 3, 9), 4, per_channel=False, act="RELU"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_matches_reference_and_tflm(case, kernel_build, tmp_path):
    assert_kernel_case(CASES[case](), kernel_build, tmp_path)


def test_batch_matmul_reference_is_the_real_product():
    """Dequantized, the reference is numpy's broadcast matmul of the dequantized operands, rounded."""
    program = CASES["bmm_broadcast_both_sides"]()
    x, y = random_inputs(program, 4)
    [got] = reference.run(program, [x, y])
    (sx, zx), (sy, zy), (so, zo) = ((program.tensor(n).quant.scale[0], program.tensor(n).quant.zero_point[0])
                                    for n in ("x0", "x1", "y"))
    real = ((x - zx) * sx) @ np.swapaxes((y - zy) * sy, -1, -2)
    want = np.clip(np.round(real / so) + zo, -128, 127)
    assert np.abs(got - want).max() <= 1


def test_scratch_and_tables():
    program = CASES["tconv_same_stride2"]()
    op = program.ops[0]
    assert registry.scratch_bytes(program, op) == 4 * 8 * 10 * 6  # int32 per output value
    assert registry.of(op).table_bytes(program, op) == 8 * 6
    program = CASES["bmm_rank3"]()
    assert registry.scratch_bytes(program, program.ops[0]) == 0
    assert registry.of(program.ops[0]).table_bytes(program, program.ops[0]) == 0


IMPOSSIBLE = {
    "lhs depth 7 and rhs depth 6 differ": lambda: _bmm((3, 5, 7), (3, 6, 4), (3, 5, 4)),
    "do not broadcast": lambda: _bmm((2, 5, 7), (3, 7, 4), (3, 5, 4)),
    "rhs has rank 1": lambda: _bmm((5, 7), (7,), (5,)),
    "lhs has rank 6": lambda: _bmm((1, 1, 1, 1, 2, 3), (3, 2), (1, 1, 1, 1, 2, 2)),
    "gives 4 positions, not the input's 5": lambda: _tconv((1, 5, 5, 3), (4, 3, 3, 3), (1, 8, 10, 4), (2, 2),
                                                           "SAME"),
    "disagree on the batch or channels": lambda: _tconv((1, 4, 5, 3), (6, 3, 3, 3), (1, 8, 10, 5), (2, 2), "SAME"),
    "strides (0, 1) must be positive": lambda: _tconv((1, 4, 5, 3), (6, 3, 3, 3), (1, 8, 10, 6), (0, 1), "SAME"),
    "needs an int32 output shape of 4 positive sizes": lambda: _tconv((1, 4, 5, 3), (6, 3, 3, 3), (1, 8, 10),
                                                                      (2, 2), "SAME"),
    "does not split into rows": lambda: _fc_bad_depth(),
}


def _fc_bad_depth() -> Program:
    """keep_num_dims with an input whose last axis is not the weights' depth."""
    program = _fc((2, 3, 7), 5)
    program.tensors["x0"] = Tensor("x0", (2, 7, 3), "int8", quant(0.05, 0))
    return program


@pytest.mark.parametrize("message", sorted(IMPOSSIBLE))
def test_impossible_parameters_are_ir_errors(message):
    with pytest.raises(IRError, match=re.escape(message)):
        IMPOSSIBLE[message]().verify()


def _per_channel_rhs() -> Program:
    program = _bmm((2, 5, 7), (2, 7, 3), (2, 5, 3), const_rhs=True)
    program.tensors["k"].quant = Quant(np.array([0.01, 0.02, 0.03]), np.zeros(3), 2)
    return program


def _tconv_weight_zero_point() -> Program:
    program = _tconv((1, 4, 5, 3), (6, 3, 3, 3), (1, 8, 10, 6), (2, 2), "SAME")
    program.tensors["w"].quant = Quant(program.tensors["w"].quant.scale, np.full(6, 2), 0)
    return program


REFUSED = {
    "rhs must be int8 with one scale and zero point": _per_channel_rhs,
    "weights with a nonzero zero point": _tconv_weight_zero_point,
}


@pytest.mark.parametrize("message", sorted(REFUSED))
def test_variants_no_kernel_takes_are_refused_in_one_line(message):
    assert_refused_in_one_line(REFUSED[message](), message)


@pytest.mark.parametrize("case", ["bmm_adj_both_const_broadcast", "bmm_rank5", "tconv_same_4x4_stride2_relu6",
                                  "tconv_valid_stride2_per_tensor_relu", "fc_keep_dims_rank3"])
def test_tflite_round_trip(case):
    program = CASES[case]()
    again = read_tflite(write_tflite(program))
    [op], [back] = program.ops, again.ops
    fields = registry.of(op).tflite.fields
    assert back.kind == op.kind and back.inputs == op.inputs
    assert {k: v for k, v in back.options.items() if v != fields[k]} == \
        {k: v for k, v in op.options.items() if v != fields[k]}
    assert registry.infer_output_shapes(again, back) == [program.tensor(n).shape for n in op.outputs]


def _matmul_program() -> Program:
    """x (1, 4, 4, 3) -> TRANSPOSE_CONV x2 -> (1, 8, 8, 4) -> RESHAPE (1, 64, 4) ->
    FULLY_CONNECTED keep_num_dims (1, 64, 6) -> BATCH_MATMUL with itself, adj_x: (1, 6, 6)."""
    b = Builder(7)
    x = b.input((1, 4, 4, 3), scale=0.05, zp=2)
    p = b.p
    w = b.weights((4, 3, 3, 3), 0)
    p.add_tensor(Tensor("t", (1, 8, 8, 4), "int8", quant(0.06, -3)))
    p.add_op(Op("TRANSPOSE_CONV", [b.ints([1, 8, 8, 4]), w, x, b.bias(4)], ["t"],
                {"padding": "SAME", "stride_h": 2, "stride_w": 2, "fused_activation_function": "RELU"}))
    p.add_tensor(Tensor("r", (1, 64, 4), "int8", quant(0.06, -3)))
    p.add_op(Op("RESHAPE", ["t", b.ints([1, 64, 4])], ["r"], {"new_shape": [1, 64, 4]}))
    fc_w = p.unique_name("fc_w")
    p.add_tensor(Tensor(fc_w, (6, 4), "int8", Quant(np.array([0.02]), np.zeros(1), 0),
                        b.rng.integers(-127, 128, (6, 4))))
    p.add_tensor(Tensor("f", (1, 64, 6), "int8", quant(0.04, 1)))
    p.add_op(Op("FULLY_CONNECTED", ["r", fc_w], ["f"], {"keep_num_dims": True}))
    p.add_tensor(Tensor("g", (1, 6, 6), "int8", quant(1.5, -4)))
    p.add_op(Op("BATCH_MATMUL", ["f", "f"], ["g"], {"adj_x": True}))
    p.outputs = ["g", "t"]
    return p.verify()


def test_matmul_program_is_bit_exact_with_tflm():
    assert_program_matches_tflm(_matmul_program(), distinct=True)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_matmul_program_firmware_is_bit_exact(board, tmp_path):
    run = firmware_run(_matmul_program(), board, tmp_path)
    assert all(np.unique(out).size > 1 for outputs in run.outputs for out in outputs)
