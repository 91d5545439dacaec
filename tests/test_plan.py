"""The static memory plan: no two live buffers share a byte, reshapes cost nothing,
and the arena is close to the lower bound."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.passes.plan import ALIGNMENT, buffers, alias_roots, plan_memory


def chain_program(sizes: list[int], reshape_at: int | None = None) -> Program:
    """x -> softmax -> softmax ... with the given activation sizes (1-D int8)."""
    p = Program()
    q = Quant.per_tensor(0.1, 0)
    names = [f"t{i}" for i in range(len(sizes))]
    for name, size in zip(names, sizes):
        p.add_tensor(Tensor(name, (size,), "int8", q))
    for i, (a, b) in enumerate(zip(names, names[1:])):
        p.add_op(Op("RESHAPE" if i == reshape_at else "SOFTMAX", [a], [b]))
    p.inputs, p.outputs = [names[0]], [names[-1]]
    return p


def assert_no_live_overlap(program: Program, plan, scratch):
    bufs = buffers(program, scratch, alias_roots(program))
    for a, b in itertools.combinations(bufs, 2):
        if a.overlaps_in_time(b):
            a0, b0 = plan.offsets[a.name], plan.offsets[b.name]
            assert a0 + a.size <= b0 or b0 + b.size <= a0, (a, b)
    for b in bufs:
        assert plan.offsets[b.name] % ALIGNMENT == 0


def test_chain_reuses_memory_and_meets_lower_bound():
    program = chain_program([1000, 2000, 500, 3000, 100])
    plan = plan_memory(program, [0] * 4)
    assert plan.lower_bound == 3500  # 500 + 3000 live at op 2
    assert plan.arena_bytes <= 3504 + ALIGNMENT
    assert_no_live_overlap(program, plan, [0] * 4)


def test_reshape_output_shares_its_input_bytes():
    program = chain_program([64, 64, 64], reshape_at=0)
    plan = plan_memory(program, [0, 0])
    assert plan.aliases == {"t1": "t0"}
    assert plan.offset("t1") == plan.offset("t0")


def test_scratch_is_planned_for_its_op_only():
    program = chain_program([100, 100, 100])
    plan = plan_memory(program, [0, 256])
    assert plan.sizes["scratch:1"] == 256
    assert_no_live_overlap(program, plan, [0, 256])
    assert plan.lower_bound == 100 + 100 + 256


@pytest.mark.parametrize("seed", range(5))
def test_random_branching_graphs_never_overlap_live_buffers(seed):
    rng = np.random.default_rng(seed)
    p = Program()
    q = Quant.per_tensor(0.1, 0)
    p.add_tensor(Tensor("in", (int(rng.integers(1, 500)),), "int8", q))
    live = ["in"]
    for i in range(30):
        out = p.add_tensor(Tensor(f"v{i}", (int(rng.integers(1, 500)),), "int8", q)).name
        srcs = list(rng.choice(live, size=min(len(live), 2), replace=False))
        p.add_op(Op(str(rng.choice(["ADD", "CONCATENATION"])), srcs, [out]))
        live.append(out)
    p.inputs, p.outputs = ["in"], [live[-1]]
    scratch = [int(rng.integers(0, 300)) for _ in p.ops]
    plan = plan_memory(p, scratch)
    assert_no_live_overlap(p, plan, scratch)
    assert plan.arena_bytes >= plan.lower_bound


def test_elementwise_op_writes_over_an_input_that_dies_there():
    """y = conv(x); z = y + x; out = relu(z): z reuses x's bytes, and relu z's."""
    p = Program()
    q = Quant.per_tensor(0.1, 0)
    for name in ("x", "y", "z", "out"):
        p.add_tensor(Tensor(name, (1, 8, 8, 4), "int8", q))
    p.add_op(Op("SOFTMAX", ["x"], ["y"]))
    p.add_op(Op("ADD", ["y", "x"], ["z"]))
    p.add_op(Op("RELU", ["z"], ["out"]))
    p.inputs, p.outputs = ["x"], ["out"]
    plan = plan_memory(p, [0, 0, 0])
    assert plan.aliases == {"z": "y", "out": "y"}
    assert plan.arena_bytes == plan.lower_bound == 2 * 256


def test_no_in_place_write_over_a_tensor_read_later():
    p = Program()
    q = Quant.per_tensor(0.1, 0)
    for name in ("x", "y", "z"):
        p.add_tensor(Tensor(name, (64,), "int8", q))
    p.add_op(Op("RELU", ["x"], ["y"]))
    p.add_op(Op("ADD", ["x", "y"], ["z"]))
    p.inputs, p.outputs = ["x"], ["z"]
    plan = plan_memory(p, [0, 0])
    assert "y" not in plan.aliases  # x is read again by the ADD
    assert plan.aliases == {"z": "x"}
