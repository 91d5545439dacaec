"""Stage 5c, in place: depthwise convolutions at the memory peak computed over their own
input (DEPTHWISE_CONV_2D_IN_PLACE, mcu_depthwise_conv_in_place_s8), needing one map and a
ring of a few rows instead of two maps (TinyEngine's in-place depthwise).

The in-place kernel is portable C, slower than the optimised one, so only the layers
that decide the arena change: the ops at the peak of live bytes, as long as the arena
keeps shrinking.
"""
from __future__ import annotations

import dataclasses

from ..ir.program import Program
from ..ops.conv import in_place_depthwise_ok
from .plan import MemoryPlan, last_uses, live_bytes, plan_memory

IN_PLACE_KIND = "DEPTHWISE_CONV_2D_IN_PLACE"


def depthwise_in_place_at_peak(program: Program, plan: MemoryPlan, scratch_bytes) -> tuple[Program, MemoryPlan]:
    """The program with the depthwise convolutions at its memory peak in place, while that
    lowers the arena; and its plan. scratch_bytes(program) gives each op's scratch."""
    best = (program, plan)
    while True:
        changed = _convert_peak_ops(*best)
        if changed is None:
            return best
        changed_plan = plan_memory(changed, scratch_bytes(changed)).verify()
        if changed_plan.arena_bytes >= best[1].arena_bytes:
            return best
        best = (changed, changed_plan)


def _convert_peak_ops(program: Program, plan: MemoryPlan) -> Program | None:
    """The program with every eligible depthwise op at a step of peak live bytes made in
    place; None if there is none."""
    live = live_bytes(plan.buffers, len(program.ops), plan.overlaps)[1:-1]
    peak = max(live, default=0)
    last = last_uses(program)
    ops, changed = list(program.ops), False
    for index, op in enumerate(program.ops):
        if live[index] == peak and in_place_depthwise_ok(program, op) and last.get(op.inputs[0]) == index:
            ops[index] = dataclasses.replace(op, kind=IN_PLACE_KIND)
            changed = True
    return Program(program.tensors, ops, list(program.inputs), list(program.outputs), dict(program.metadata)) \
        if changed else None
