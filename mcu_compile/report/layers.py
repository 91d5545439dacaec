"""Per-layer views of a compiled project, from builds with layer hooks (model.c's
LAYER_DONE; platform/mcu_layer_hooks.c):

    profile: what each op costs (instructions under QEMU -icount, timer ticks elsewhere)
    debug:   each op's output from the firmware against the host reference's, and the
             first op whose bytes differ ("the outputs are silently wrong": which layer?)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..project import CompiledModel
from ..reference import interpreter as reference
from .budget import short_name

_LAYER = re.compile(r"MCU-LAYER (\d+) (\d+)")
_TENSOR = re.compile(r"MCU-TENSOR (\d+) ([0-9a-f]*)")


def _first_vector(items: list[tuple[int, str]], count: int) -> dict[int, str]:
    """The first vector's items by op index (every bundled vector repeats them)."""
    return {op: value for op, value in items[:count]}


def profile(compiled: CompiledModel, timeout: float = 300.0) -> dict:
    """Runs the profiling build on the board's simulator; per op: kind, output shape, MACs,
    cost and share of the total, for the first test vector."""
    result = compiled.run_variant("profile", timeout)
    ops = compiled.report["plan"]["ops"]
    ticks = _first_vector([(int(m[1]), m[2]) for m in _LAYER.finditer(result.stdout)], len(ops))
    per_tick = result.instructions[0] / result.ticks[0] if result.timing_measured and result.ticks[0] else None
    unit = "instructions" if per_tick else "ticks"
    rows = []
    for op in ops:
        cost = int(ticks.get(op["index"], 0))
        if per_tick:
            cost = round(cost * per_tick)
        rows.append({"index": op["index"], "kind": op["kind"], "output": op["output"], "shape": op.get("shape", []),
                     "macs": op.get("macs", 0), unit: cost,
                     "per_mac": round(cost / op["macs"], 3) if op.get("macs") else None})
    total = sum(r[unit] for r in rows) or 1
    for r in rows:
        r["share"] = round(100.0 * r[unit] / total, 2)
    data = {"board": compiled.board.name, "unit": unit, "layers": rows, "total": sum(r[unit] for r in rows),
            "note": f"each layer's figure includes one timer read; {compiled.board.name}, first test vector"}
    compiled.report["profile"] = data   # the HTML report draws it (`mcu-compile report --html`)
    compiled.save_report()
    return data


def format_profile(data: dict) -> str:
    unit = data["unit"]
    lines = [f"{'op':>4} {'kind':<22} {'output shape':<18} {'MACs':>12} {unit:>14} {'per MAC':>8} {'share':>7}"]
    for r in data["layers"]:
        shape = "x".join(str(d) for d in r["shape"])
        per_mac = f"{r['per_mac']:.2f}" if r["per_mac"] is not None else "-"
        lines.append(f"{r['index']:>4} {r['kind'][:22]:<22} {shape:<18} {r['macs']:>12,} {r[unit]:>14,} "
                     f"{per_mac:>8} {r['share']:>6.1f}%")
    macs = sum(r["macs"] for r in data["layers"])
    lines.append(f"{'':>4} {'total':<22} {'':<18} {macs:>12,} {data['total']:>14,}")
    lines.append(f"({data['note']})")
    return "\n".join(lines)


@dataclass
class Divergence:
    index: int            # the op (firmware order, as in model.c)
    kind: str
    output: str           # the tensor it wrote
    differing_bytes: int
    total_bytes: int
    largest_difference: int

    def __str__(self) -> str:
        return (f"op {self.index} ({self.kind} -> {short_name(self.output, 60)}) is the first layer whose output "
                f"differs from the host reference: {self.differing_bytes:,} of {self.total_bytes:,} bytes, "
                f"largest difference {self.largest_difference}")


@dataclass
class DebugReport:
    compared: list[int]           # ops whose output was compared
    skipped: list[int]            # ops whose output the host reference does not have (fused away)
    divergence: Divergence | None


def _expected_output(expected: dict, op: dict):
    """The reference's value of the op's output: for an op on a strip (passes/patch.py),
    the strip's rows of the tensor the layer-by-layer program computes; None: no such tensor."""
    if "strip_of" in op:
        whole = expected.get(op["strip_of"])
        return None if whole is None else whole[:, op["rows"][0]:op["rows"][1]]
    return expected.get(op["output"])


def debug(compiled: CompiledModel, timeout: float = 300.0) -> DebugReport:
    """Runs the debug build (every op's output to the host) on the first test vector and
    compares each output with the host reference's, in execution order."""
    result = compiled.run_variant("debug", timeout)
    ops = compiled.report["plan"]["ops"]
    got = _first_vector([(int(m[1]), m[2]) for m in _TENSOR.finditer(result.stdout)], len(ops))
    expected = reference.run_with_intermediates(compiled.reference_program, compiled.vectors()[0])
    compared, skipped = [], []
    for op in ops:
        want = _expected_output(expected, op)
        if want is None or op["index"] not in got:
            skipped.append(op["index"])
            continue
        compared.append(op["index"])
        mine = np.frombuffer(bytes.fromhex(got[op["index"]]), dtype=want.dtype)
        want = want.reshape(-1)
        if mine.size != want.size:
            return DebugReport(compared, skipped, Divergence(op["index"], op["kind"], op["output"], want.nbytes,
                                                               want.nbytes, -1))
        differ = mine != want
        if differ.any():
            largest = int(np.max(np.abs(mine.astype(np.int64) - want.astype(np.int64))))
            count = int(np.count_nonzero(differ)) * want.itemsize
            return DebugReport(compared, skipped, Divergence(op["index"], op["kind"], op["output"], count,
                                                               want.nbytes, largest))
    return DebugReport(compared, skipped, None)
