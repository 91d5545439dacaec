"""Program.verify(): each broken invariant of the Edge program is one IRError naming the
stage, and the real models pass it."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from mcu_compile.errors import IRError
from mcu_compile.ir.program import Quant
from mcu_compile.ir.tflite_io import load_tflite
from mcu_compile.passes.plan import plan_memory
from mcu_compile.ops.registry import scratch_bytes


@pytest.fixture(scope="module")
def kws():
    path = Path(__file__).resolve().parents[2] / "shared" / "models" / "kws_ref_model.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return load_tflite(path)


def _reorder(p):
    p.ops[0], p.ops[1] = p.ops[1], p.ops[0]


def _second_producer(p):
    p.ops[1].outputs = list(p.ops[0].outputs)


def _no_outputs(p):
    p.outputs = []


def _wrong_shape(p):
    t = p.tensor(p.ops[0].outputs[0])
    t.shape = (t.shape[0], t.shape[1] + 1, *t.shape[2:])


def _scales_per_channel_mismatch(p):
    w = p.tensor(p.ops[0].inputs[1])
    w.quant = Quant(w.quant.scale[:-1], w.quant.zero_point[:-1], w.quant.axis)


def _nan_scale(p):
    t = p.tensor(p.ops[0].outputs[0])
    t.quant = Quant.per_tensor(float("nan"), 0)


def _zero_point_out_of_range(p):
    t = p.tensor(p.ops[0].outputs[0])
    t.quant = Quant(np.array([0.1]), np.array([-3 * 10**18]))


def _writes_a_constant(p):
    p.ops[0].outputs = [p.ops[0].inputs[1]]


def _output_never_written(p):
    p.ops = p.ops[:-1]


def _zero_dim(p):
    t = p.tensor(p.ops[0].outputs[0])
    t.shape = (0, *t.shape[1:])


def _missing_operand(p):
    p.ops[0].inputs = p.ops[0].inputs[:1]


def _weights_not_constant(p):
    p.ops[0].inputs[1] = p.inputs[0]


def _rank_mismatch(p):
    t = p.tensor(p.inputs[0])
    t.shape = t.shape[:2]


BREAKAGES = {
    _reorder: "before any op writes it",
    _second_producer: "is written by op 0 and op 1",
    _no_outputs: "has no outputs",
    _wrong_shape: "output shapes .* but its inputs give",
    _scales_per_channel_mismatch: "one per channel expected",
    _nan_scale: "scales must be finite and positive",
    _zero_point_out_of_range: "zero point outside the int8 range",
    _writes_a_constant: "a constant or graph input",
    _output_never_written: "graph output 'Identity' is never written",
    _zero_dim: "dimensions must be positive",
    _missing_operand: "1 inputs, the kind takes 2 to 3",
    _weights_not_constant: "input 1 .* must be a constant",
    _rank_mismatch: "its inputs do not fit the op",
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_each_broken_invariant_is_one_error_naming_the_stage(kws, breakage):
    program = copy.deepcopy(kws)
    breakage(program)
    with pytest.raises(IRError, match=f"^invalid Edge program after fuse: .*({BREAKAGES[breakage]})") as err:
        program.verify("fuse")
    assert "\n" not in str(err.value)


def test_real_models_pass(shared_dir):
    for path in sorted((shared_dir / "models").glob("*.tflite")):
        load_tflite(path).verify("reading")


def test_plan_check_finds_overlapping_live_buffers(kws):
    plan = plan_memory(kws, [scratch_bytes(kws, op) for op in kws.ops]).verify()
    a, b = plan.buffers[0], next(b for b in plan.buffers[1:] if b.overlaps_in_time(plan.buffers[0]))
    plan.offsets[b.name] = plan.offsets[a.name]
    with pytest.raises(IRError, match="share bytes while both are live"):
        plan.verify()


def test_a_transpose_that_is_no_permutation_is_refused():
    from mcu_compile.ir.program import Op, Program, Tensor
    program = Program()
    program.add_tensor(Tensor("x", (1, 2, 3), "int8", Quant.per_tensor(0.1, 0)))
    program.add_tensor(Tensor("perm", (3,), "int32", data=np.array([0, 0, 2], dtype=np.int32)))
    program.add_tensor(Tensor("y", (1, 1, 3), "int8", Quant.per_tensor(0.1, 0)))
    program.add_op(Op("TRANSPOSE", ["x", "perm"], ["y"]))
    program.inputs, program.outputs = ["x"], ["y"]
    with pytest.raises(IRError, match=r"after read: TRANSPOSE 'y': \[0, 0, 2\] is not a permutation of the 3 axes"):
        program.verify("read")
