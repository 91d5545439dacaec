"""The table kinds (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, ELU, ABS, RSQRT), SUB and
SQUARED_DIFFERENCE: the C kernel as emitted (kernel_harness: host gcc with sanitizers) ==
the host reference == the TFLite Micro interpreter, byte for byte; the table kinds on
every int8 input over input and output quantizations from tiny to large scales; the
.tflite round trip; the variants refused; one firmware chaining them in QEMU."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import mcu_compile
from kernel_harness import Builder, assert_matches_reference_and_tflm, quant, random_inputs, run_c, tflm_run
from mcu_compile.errors import UnsupportedOpError
from mcu_compile.ir.program import Op, Program, Tensor
from mcu_compile.ir.tflite_io import read_tflite, write_tflite
from mcu_compile.ops import elementwise, registry
from mcu_compile.ops.lut import INT8_VALUES, table
from mcu_compile.reference import interpreter as reference

# kind -> the output (scale, zero point) its int8 kernel assumes, None: any
TABLE_KINDS = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0), "HARD_SWISH": None, "LEAKY_RELU": None,
               "ELU": None, "ABS": None, "RSQRT": None}
LEAKY_RELU_ALPHAS = [0.01, 0.2, -0.5, 2.0]

# (input scale, input zero point, output scale, output zero point): coarse and fine inputs,
# outputs that saturate, tiny and large scales, zero points at the ends of the range
QUANTS = [
    (0.05, 4, 0.04, -3),
    (0.3, 20, 0.01, 0),  # most outputs saturate
    (1e-4, 100, 2e-4, -100),  # tiny scales
    (2.0, -128, 0.5, 127),  # large scales, zero points at the ends
    (8.0, 0, 4.0, 0),
    (0.02, -128, 0.002, 127),
    (0.5, 127, 0.0625, -128),
    (1e-4, 0, 1.0, 0),  # an output far coarser than the input: HARD_SWISH shifts int16 values by 16 or more
]


def _options(kind: str, index: int) -> dict:
    return {"alpha": LEAKY_RELU_ALPHAS[index % len(LEAKY_RELU_ALPHAS)]} if kind == "LEAKY_RELU" else {}


def _output_quant(kind: str, s_in: float, s_out: float, zp_out: int) -> tuple[float, int]:
    """A QUANTS row's output quantization for `kind`: the one its kernel assumes, if any;
    for RSQRT one that spans 1/sqrt over the positive inputs."""
    if kind == "RSQRT":
        return 2 / (255 * np.sqrt(s_in)), -128
    return TABLE_KINDS[kind] or (s_out, zp_out)


def _every_input_program(kind: str) -> Program:
    """One op of `kind` per quantization in QUANTS, each on its own (1, 256) input."""
    program = Program()
    for i, (s_in, zp_in, s_out, zp_out) in enumerate(QUANTS):
        s_out, zp_out = _output_quant(kind, s_in, s_out, zp_out)
        program.add_tensor(Tensor(f"x{i}", (1, 256), "int8", quant(s_in, zp_in)))
        program.add_tensor(Tensor(f"y{i}", (1, 256), "int8", quant(s_out, zp_out)))
        program.inputs.append(f"x{i}")
        program.outputs.append(f"y{i}")
        program.add_op(Op(kind, [f"x{i}"], [f"y{i}"], _options(kind, i)))
    return program.verify("test")


def _tflm_inputs(program: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """TFLite Micro fails an RSQRT invocation on an input below the zero point: those raised to it."""
    if program.ops[0].kind != "RSQRT":
        return inputs
    return [np.maximum(x, program.tensor(n).quant.zero_point[0]).astype(np.int8)
            for n, x in zip(program.inputs, inputs)]


@pytest.mark.parametrize("kind", sorted(TABLE_KINDS))
def test_table_kind_on_every_int8_input(kind, kernel_build, tmp_path):
    program = _every_input_program(kind)
    every = [INT8_VALUES.astype(np.int8).reshape(1, 256)] * len(program.inputs)
    [c_outputs] = run_c(program, [every], kernel_build, tmp_path)
    for op, got, want in zip(program.ops, c_outputs, reference.run(program, every)):
        np.testing.assert_array_equal(got, want, err_msg=f"{op.outputs[0]}: C vs reference")
        np.testing.assert_array_equal(got[0], table(program, op), err_msg="the emitted table")
    valid = _tflm_inputs(program, every)
    for op, want, tflm in zip(program.ops, reference.run(program, valid), tflm_run(program, valid)):
        np.testing.assert_array_equal(want, tflm, err_msg=f"{op.outputs[0]}: reference vs TFLite Micro")
    assert sum(np.unique(y).size for y in c_outputs) > 40 * len(QUANTS) // 2, "degenerate case"


@pytest.mark.parametrize("kind", sorted(TABLE_KINDS))
def test_table_kind_on_random_inputs(kind, kernel_build, tmp_path):
    b = Builder(seed=len(kind))
    x = b.input((2, 5, 6, 7), scale=0.06, zp=-128 if kind == "RSQRT" else -9)
    program = b.op(kind, [x], (2, 5, 6, 7), *(TABLE_KINDS[kind] or (0.05, 11)), **_options(kind, 1))
    assert np.unique(reference.run(program, random_inputs(program, 0))[0]).size > 20, "degenerate case"
    assert_matches_reference_and_tflm(program, kernel_build, tmp_path)


def _binary(kind: str, a_shape, b_shape, out_shape, act: str | None = "NONE", const_b: bool = False,
            out_scale: float = 0.09) -> Program:
    b = Builder(seed=0)
    x0 = b.input(a_shape, scale=0.04)
    x1 = b.const_int8(b_shape, scale=0.11) if const_b else b.input(b_shape, scale=0.11)
    options = {} if act is None else {"fused_activation_function": act}
    return b.op(kind, [x0, x1], out_shape, out_scale, out_zp=7, **options)


BINARY_CASES = {
    "sub_same_shape": lambda: _binary("SUB", (1, 5, 7, 3), (1, 5, 7, 3), (1, 5, 7, 3)),
    "sub_broadcast_channel_relu": lambda: _binary("SUB", (1, 4, 5, 6), (1, 1, 1, 6), (1, 4, 5, 6), "RELU"),
    "sub_broadcast_both_ways_relu6": lambda: _binary("SUB", (2, 1, 5, 3), (1, 4, 1, 3), (2, 4, 5, 3), "RELU6"),
    "sub_const_rank1_relu_n1_to_1": lambda: _binary("SUB", (1, 3, 4, 6), (6,), (1, 3, 4, 6), "RELU_N1_TO_1",
                                                    const_b=True, out_scale=0.008),
    "sub_rank2": lambda: _binary("SUB", (3, 7), (3, 7), (3, 7)),
    "squared_difference_same_shape": lambda: _binary("SQUARED_DIFFERENCE", (1, 5, 7, 3), (1, 5, 7, 3), (1, 5, 7, 3),
                                                     None),
    "squared_difference_broadcast": lambda: _binary("SQUARED_DIFFERENCE", (2, 1, 5, 3), (1, 4, 1, 3), (2, 4, 5, 3),
                                                    None),
}


@pytest.mark.parametrize("case", sorted(BINARY_CASES))
def test_binary_kind_on_random_inputs(case, kernel_build, tmp_path):
    program = BINARY_CASES[case]()
    assert np.unique(reference.run(program, random_inputs(program, 0))[0]).size > 10, "degenerate case"
    assert_matches_reference_and_tflm(program, kernel_build, tmp_path)


def _every_pair_program(kind: str, quants: tuple) -> Program:
    """x0[i, j] = i - 128, x1[i, j] = j - 128: every pair of int8 values."""
    (s1, z1), (s2, z2), (so, zo) = quants
    program = Program()
    program.add_tensor(Tensor("a", (256, 256), "int8", quant(s1, z1)))
    program.add_tensor(Tensor("b", (256, 256), "int8", quant(s2, z2)))
    program.add_tensor(Tensor("y", (256, 256), "int8", quant(so, zo)))
    program.inputs, program.outputs = ["a", "b"], ["y"]
    program.add_op(Op(kind, ["a", "b"], ["y"], {"fused_activation_function": "NONE"} if kind == "SUB" else {}))
    return program


# input 1's scale is a power of two, so input 2's multiplier ends in zero bits: some of its
# products are ties of the doubling high multiply, where SUB differs from an ADD with that
# multiplier negated
TIE_QUANTS = ((0.5, 118), (0.4742124378681183, 29), (0.14960596783451352, 102))
PAIR_CASES = [("SUB", TIE_QUANTS), ("SUB", ((2.0, 127), (1e-3, -128), (0.3, 0))),
              ("SQUARED_DIFFERENCE", TIE_QUANTS), ("SQUARED_DIFFERENCE", ((0.02, 3), (0.05, -60), (0.4, -128))),
              ("SQUARED_DIFFERENCE", ((1.5, -128), (1.5, 127), (3e-4, 0)))]  # the largest output multiplier taken


@pytest.mark.parametrize("kind,quants", PAIR_CASES)
def test_binary_kind_on_every_pair_of_int8_inputs(kind, quants, kernel_build, tmp_path):
    program = _every_pair_program(kind, quants)
    inputs = [np.repeat(INT8_VALUES, 256).astype(np.int8).reshape(256, 256),
              np.tile(INT8_VALUES, 256).astype(np.int8).reshape(256, 256)]
    [[got]] = run_c(program, [inputs], kernel_build, tmp_path)
    np.testing.assert_array_equal(got, reference.run(program, inputs)[0], err_msg="C vs reference")
    np.testing.assert_array_equal(got, tflm_run(program, inputs)[0], err_msg="C vs TFLite Micro")
    assert np.unique(got).size > 1  # the edge cases saturate most pairs


def test_sub_is_not_add_with_the_second_multiplier_negated():
    program = _every_pair_program("SUB", TIE_QUANTS)
    op, inputs = program.ops[0], [np.repeat(INT8_VALUES, 256), np.tile(INT8_VALUES, 256)]
    p = elementwise.add_params(program, op)
    negated = dataclasses.replace(p, input2_multiplier=-p.input2_multiplier)
    as_add = elementwise._add_or_sub(program, op, negated, inputs, 1)
    assert (as_add != elementwise.sub(program, op, inputs)).sum() > 0


ROUND_TRIP_KINDS = [*sorted(TABLE_KINDS), "SUB", "SQUARED_DIFFERENCE"]


@pytest.mark.parametrize("kind", ROUND_TRIP_KINDS)
def test_round_trip_through_a_tflite_file(kind):
    if kind in TABLE_KINDS:
        b = Builder(seed=1)
        program = b.op(kind, [b.input((1, 4, 4, 3))], (1, 4, 4, 3), *(TABLE_KINDS[kind] or (0.05, 11)),
                       **_options(kind, 2))
    else:
        program = BINARY_CASES["sub_broadcast_channel_relu" if kind == "SUB" else "squared_difference_broadcast"]()
    back = read_tflite(write_tflite(program))
    [op], [original] = back.ops, program.ops
    assert op.kind == kind and op.options == {**registry.get(kind).tflite.fields, **original.options}
    assert [back.tensor(n).shape for n in (*op.inputs, *op.outputs)] == \
        [program.tensor(n).shape for n in (*original.inputs, *original.outputs)]
    inputs = random_inputs(program, 3)
    np.testing.assert_array_equal(reference.run(back, inputs)[0], reference.run(program, inputs)[0])


def test_leaky_relu_alpha_is_read_as_the_file_holds_it():
    b = Builder(seed=2)
    program = b.op("LEAKY_RELU", [b.input((1, 8))], (1, 8), 0.05, 0, alpha=0.1)
    assert read_tflite(write_tflite(program)).ops[0].options["alpha"] == float(np.float32(0.1))


@pytest.mark.parametrize("kind,out_quant,match", [
    ("TANH", (1 / 256, -128), "TANH needs the output scale 1/128 and zero point 0"),
    ("LOGISTIC", (1 / 128, 0), "LOGISTIC needs the output scale 1/256 and zero point -128"),
    ("HARD_SWISH", (0.05 / 200, 0), "HARD_SWISH needs an output scale above 1/128 of the input scale"),
])
def test_table_kind_variant_is_refused(kind, out_quant, match):
    b = Builder(seed=3)
    program = b.op(kind, [b.input((1, 16), scale=0.05)], (1, 16), *out_quant)
    with pytest.raises(UnsupportedOpError, match=match):
        registry.check_compilable(program)


def test_squared_difference_that_would_overflow_in_tflm_is_refused():
    program = _every_pair_program("SQUARED_DIFFERENCE", ((1.5, -128), (1.5, 127), (2e-4, 0)))
    with pytest.raises(UnsupportedOpError, match=r"SQUARED_DIFFERENCE needs an output scale of at least"):
        registry.check_compilable(program)


@pytest.mark.parametrize("kind", ["SUB", "SQUARED_DIFFERENCE"])
def test_binary_kind_broadcasting_rank_5_is_refused(kind):
    program = _binary(kind, (1, 2, 3, 4, 5), (5,), (1, 2, 3, 4, 5), None)
    with pytest.raises(UnsupportedOpError, match=f"{kind} broadcasting a rank-5 tensor"):
        registry.check_compilable(program)


def _chain_program() -> Program:
    """x -> HARD_SWISH -> TANH, x -> ELU; SUB(tanh, elu) -> LEAKY_RELU -> ABS -> RSQRT -> y0;
    SQUARED_DIFFERENCE(tanh, elu) -> y1."""
    program = Program()
    tensors = {"x": (0.04, -6), "h": (0.03, -20), "t": (1 / 128, 0), "e": (0.03, -90), "d": (0.04, 3),
               "l": (0.03, 10), "a": (0.02, -128), "y0": (0.05, -128), "y1": (0.005, -128)}
    for name, (scale, zp) in tensors.items():
        program.add_tensor(Tensor(name, (1, 6, 6, 8), "int8", quant(scale, zp)))
    program.add_op(Op("HARD_SWISH", ["x"], ["h"]))
    program.add_op(Op("TANH", ["h"], ["t"]))
    program.add_op(Op("ELU", ["x"], ["e"]))
    program.add_op(Op("SUB", ["t", "e"], ["d"], {"fused_activation_function": "NONE"}))
    program.add_op(Op("LEAKY_RELU", ["d"], ["l"], {"alpha": 0.25}))
    program.add_op(Op("ABS", ["l"], ["a"]))
    program.add_op(Op("RSQRT", ["a"], ["y0"]))
    program.add_op(Op("SQUARED_DIFFERENCE", ["t", "e"], ["y1"]))
    program.inputs, program.outputs = ["x"], ["y0", "y1"]
    return program.verify("test")


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_chain_of_new_kinds_firmware_is_bit_exact(board, tmp_path):
    model = tmp_path / "chain.tflite"
    model.write_bytes(write_tflite(_chain_program()))
    compiled = mcu_compile.compile(model, board=board, out_dir=tmp_path / "fw")
    inputs = [[np.resize(INT8_VALUES, (1, 6, 6, 8)).astype(np.int8)], [random_inputs(compiled.program, 1)[0]]]
    run = compiled.run(inputs=inputs)
    assert run.bit_exact
    for got, x in zip(run.outputs, inputs):
        want = reference.run(compiled.program, x)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
            assert np.unique(g).size > 10
        for g, t in zip(got, tflm_run(compiled.program, x)):
            np.testing.assert_array_equal(g, t)
