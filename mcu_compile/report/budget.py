"""The budget report: what the firmware needs in each memory region of the board.

Before the build the sizes are predicted from the plan (arena, weights, stack);
after the build they are read from the ELF. Text for people, a dict (JSON) for tools.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..target.boards import Board
from ..target.elf import region_usage, symbols
from ..target.linkmap import InputSection, flash_sections
from ..ir.program import Program
from ..ops import registry
from ..passes.plan import MemoryPlan, live_bytes

# Code the model needs besides its weights (kernels, startup, runtime), assumed before
# the first build; the ELF figures replace it afterwards.
CODE_ESTIMATE_BYTES = 24 * 1024
DEFAULT_STACK_BYTES = 8 * 1024


def predicted_report(program: Program, plan: MemoryPlan, board: Board, stack_bytes: int,
                     weights_in_ram: bool = False, stack_estimated: bool = False,
                     weights_region: tuple[str, str] | None = None) -> dict:
    """Bytes per region before the build: the arena, weights and tables exactly; the code
    (CODE_ESTIMATE_BYTES) and, when stack_estimated, the stack reserve are estimates, kept
    per row in "estimated" so that budgets are judged on the exact part until the ELF
    gives the real figures. weights_region: (region, why) when the weights do not live in
    the code region."""
    weights = sum(t.nbytes for t in program.weights())
    npu_const = sum(registry.of(op).npu_const_bytes(program, op) for op in program.ops)
    region = plan.region
    usage = {r.name: 0 for r in board.regions}
    home, why = weights_region or (board.code_region, "the code region")
    usage[board.code_region] += code_bytes(program)
    usage[home] += weights
    usage[region] += plan.arena_bytes
    usage[board.data_region] += stack_bytes + (weights if weights_in_ram else 0)
    if npu_const:
        usage[board.npu["const_region"]] += npu_const
    estimated = {r.name: 0 for r in board.regions}
    estimated[board.code_region] += CODE_ESTIMATE_BYTES
    estimated[board.data_region] += stack_bytes if stack_estimated else 0
    return {
        "board": board.name,
        "cpu": board.cpu.core,
        "model": {
            "ops": len(program.ops),
            "op_counts": dict(Counter(op.kind for op in program.ops)),
            "inputs": [_tensor_info(program, n) for n in program.inputs],
            "outputs": [_tensor_info(program, n) for n in program.outputs],
        },
        "arena": {"bytes": plan.arena_bytes, "lower_bound": plan.lower_bound,
                  "region": region, "placement": plan.strategy,
                  "shared_storage": dict(plan.aliases)},
        "weights_bytes": weights,
        "weights_in_ram": weights_in_ram,
        "weights_region": {"name": home, "why": why, "moved": home != board.code_region},
        "stack_bytes": stack_bytes,
        "plan": plan_section(program, plan),
        "regions": {r.name: _region_row(r, usage[r.name], predicted=True, estimated=estimated[r.name])
                    for r in board.regions},
    }


def code_bytes(program: Program) -> int:
    """What the code region holds besides the weights: the tables generated beside them
    (per-channel multipliers and shifts) and the code (estimated until the build)."""
    return sum(registry.of(op).table_bytes(program, op) for op in program.ops) + CODE_ESTIMATE_BYTES


def plan_section(program: Program, plan: MemoryPlan) -> dict:
    """Every arena buffer with its bytes and lifetime, and what each op has live:
    the data of the memory timeline. Op indices run 0..n-1; -1 is 'before the first
    op' (graph inputs) and n 'after the last' (graph outputs)."""
    shared: dict[str, list[str]] = {}
    for tensor, root in plan.aliases.items():
        shared.setdefault(root, []).append(tensor)
    buffers = [{"name": b.name, "offset": plan.offsets[b.name], "size": b.size, "first_op": b.first,
                "last_op": b.last, "kind": "scratch" if b.name.startswith("scratch:") else "tensor",
                "shares_with": shared.get(b.name, [])} for b in plan.buffers]
    ops = [{"index": i, "kind": op.kind, "output": op.outputs[0],
            "shape": list(program.tensor(op.outputs[0]).shape), "macs": macs(program, op),
            "weights_bytes": sum(program.tensor(n).nbytes for n in op.inputs if n and program.tensor(n).is_const),
            "live_bytes": live, "strip": op.options.get("strip"),
            **({"strip_of": op.options["strip_of"], "rows": op.options["rows"]} if "strip_of" in op.options else {})}
           for (i, op), live in zip(enumerate(program.ops), live_bytes(plan.buffers, len(program.ops), plan.overlaps)[1:])]
    return {"buffers": buffers, "ops": ops}


def macs(program: Program, op) -> int:
    """Multiply-accumulates of one op: output elements x weights per output channel, for ops
    with a weight tensor (convolutions, depthwise, fully connected: its second input), or
    output elements x the shared dimension of a matrix product; 0 for the rest."""
    out = program.tensor(op.outputs[0])
    if op.kind == "BATCH_MATMUL":
        return out.size * program.tensor(op.inputs[0]).shape[-1]
    weights = program.tensor(op.inputs[1]) if len(op.inputs) > 1 and op.inputs[1] else None
    if weights is None or not weights.is_const or weights.quant is None or len(weights.shape) < 2:
        return 0
    return out.size * (weights.size // max(1, out.shape[-1]))


def _tensor_info(program: Program, name: str) -> dict:
    t = program.tensor(name)
    return {"name": name, "shape": list(t.shape), "dtype": t.dtype,
            "scale": float(t.quant.scale[0]), "zero_point": int(t.quant.zero_point[0])}


def _region_row(region, used: int, predicted: bool, estimated: int = 0) -> dict:
    return {"kind": region.kind, "origin": region.origin, "size": region.length, "used": used,
            "percent": round(100.0 * used / region.length, 2) if region.length else 0.0,
            "headroom": region.length - used, "predicted": predicted, "estimated": estimated}


def overflowing_regions(report: dict) -> list[tuple[str, dict]]:
    """Regions whose exact bytes (estimates left out) exceed their size."""
    return [(name, row) for name, row in report["regions"].items() if _exact(row) > row["size"]]


def _exact(row: dict) -> int:
    return row["used"] - row.get("estimated", 0)


def ram_bytes(report: dict, exact: bool = False) -> int:
    return sum(_exact(row) if exact else row["used"] for row in report["regions"].values() if row["kind"] == "ram")


def flash_bytes(report: dict, exact: bool = False) -> int:
    return sum(_exact(row) if exact else row["used"] for row in report["regions"].values()
               if row["kind"] == "flash")


def _estimate_note(report: dict, kind: str) -> str:
    estimated = sum(row.get("estimated", 0) for row in report["regions"].values() if row["kind"] == kind)
    return f" before the {estimated:,} B still estimated (code, stack) are known from the build" if estimated else ""


def short_name(name: str, limit: int = 28) -> str:
    """A readable label for a tensor: TFLite names like 'model/act_3/Relu;model/bn_3/...'
    become 'act_3/Relu'; 'scratch:4' becomes 'scratch op 4'."""
    if name.startswith("scratch:"):
        return "scratch op " + name.split(":", 1)[1]
    first = name.split(";", 1)[0]
    parts = [p for p in first.split("/") if p]
    text = "/".join(parts[-2:]) if len(parts) > 2 else first
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def biggest_ram_users(report: dict, count: int = 3) -> list[str]:
    """The largest buffers live at the op where the arena peaks, and the stack."""
    plan = report["plan"]
    peak = max(plan["ops"], key=lambda op: op["live_bytes"], default=None)
    live = [b for b in plan["buffers"] if peak and b["first_op"] <= peak["index"] <= b["last_op"]]
    users = [f"{short_name(b['name'])} {b['size']:,} B" for b in sorted(live, key=lambda b: -b["size"])[:count]]
    where = f" (live at op {peak['index']}, {peak['kind']} {short_name(peak['output'])})" if peak else ""
    return [", ".join(users) + where, f"stack reserve {report['stack_bytes']:,} B"]


def biggest_flash_users(report: dict, count: int = 3) -> list[str]:
    ops = sorted(report["plan"]["ops"], key=lambda op: -op["weights_bytes"])[:count]
    return [f"weights of {op['kind']} {short_name(op['output'])} {op['weights_bytes']:,} B" for op in ops] + [
        f"code (estimated before the build) {CODE_ESTIMATE_BYTES:,} B"]


def budget_overruns(report: dict, max_ram: int | None, max_flash: int | None) -> list[str]:
    """One line per budget the predicted sizes exceed: what, by how much, and why."""
    problems = []
    for name, row in overflowing_regions(report):
        users = biggest_flash_users(report) if row["kind"] == "flash" else biggest_ram_users(report)
        problems.append(f"region {name} ({row['kind']}) of {report['board']} needs {_exact(row):,} B"
                        f"{_estimate_note(report, row['kind']) if row.get('estimated') else ''} but has "
                        f"{row['size']:,} B, over by {_exact(row) - row['size']:,} B; biggest: {'; '.join(users)}")
    for kind, region_kind, limit, used, users in (
            ("RAM", "ram", max_ram, ram_bytes(report, exact=True), biggest_ram_users),
            ("flash", "flash", max_flash, flash_bytes(report, exact=True), biggest_flash_users)):
        if limit is not None and used > limit:
            problems.append(f"the {kind} budget of {limit:,} B is exceeded: needs {used:,} B"
                            f"{_estimate_note(report, region_kind)}, over by {used - limit:,} B; "
                            f"biggest: {'; '.join(users(report))}")
    return problems


def with_elf(report: dict, board: Board, elf_summary: dict) -> dict:
    """Replace the predictions with what the linked ELF really uses."""
    updated = dict(report)
    updated["regions"] = {r.name: _region_row(r, elf_summary["regions"].get(r.name, 0), predicted=False)
                          for r in board.regions}
    updated["elf"] = elf_summary
    return updated


def flash_category(section: InputSection, weight_symbols: set[str]) -> str:
    """What a flash input section is for, from the object file that brought it."""
    origin, symbol = section.origin, section.name.split(".")[-1]
    if "/kernels/" in origin:
        return "kernels"
    if origin.endswith("model.o"):
        if section.output.startswith(".const."):
            return "npu_streams_and_weights"
        if symbol in weight_symbols:
            return "weights"
        if symbol.endswith(("_multiplier", "_shift")):
            return "requantization"
        return "model_code"
    if "mcu_npu" in origin:
        return "npu_driver"
    if origin.endswith("test_vectors.o"):
        return "test_vectors"
    if ".a(" in origin:
        return "libc"
    return "startup_and_harness"


FLASH_CATEGORIES = ("weights", "npu_streams_and_weights", "requantization", "kernels", "npu_driver", "model_code", "test_vectors",
                    "startup_and_harness", "libc", "alignment")


def elf_summary(elf_path, board: Board, weight_symbols: set[str]) -> dict:
    """Memory per region from the ELF, and flash split by what it holds (from the map)."""
    regions = region_usage(elf_path, board)
    flash = sum(used for name, used in regions.items() if board.region(name).kind == "flash")
    split = dict.fromkeys(FLASH_CATEGORIES, 0)
    for section in flash_sections(Path(elf_path).with_suffix(".map")):
        split[flash_category(section, weight_symbols)] += section.size
    split["alignment"] = flash - sum(split.values())
    largest = sorted(symbols(elf_path), key=lambda s: -s.size)[:10]
    return {"regions": regions, "flash_bytes": flash, "flash": split,
            "weights_bytes": split["weights"], "kernel_bytes": split["kernels"],
            "runtime_bytes": flash - split["weights"] - split["kernels"],
            "largest_symbols": [{"name": s.name, "bytes": s.size, "kind": s.kind} for s in largest]}


def _npu_lines(report: dict) -> list[str]:
    npu = report.get("npu")
    if not npu:
        return []
    lines = [f"  NPU {npu['accelerator']} ({npu['system_config']}, {npu['memory_mode']}): "
             f"{npu['ops_on_npu']} ops on the NPU in {len(npu['partitions'])} partition(s), "
             f"{npu['ops_on_cpu']} on the CPU",
             f"    NPU SRAM {npu['sram_bytes']:,} B (Vela's own plan: {npu['vela_sram_bytes']:,} B), "
             f"flash {npu['flash_bytes']:,} B (command streams {npu['command_stream_bytes']:,} B), "
             f"Vela's estimate {npu['estimated_cycles']:,} NPU cycles"]
    lines += [f"    on the CPU: {op['op']} {short_name(op['name'])}: {op['reason']}"
              for op in report.get("ops", []) if op["target"] == "cpu"]
    return lines


def _weights_home(report: dict) -> str:
    """Where the weights live, when it is not beside the code."""
    home = report.get("weights_region")
    if not home or not home["moved"]:
        return ""
    return f" in {home['name']} ({home['why']})"


def _schedule_lines(arena: dict) -> list[str]:
    """The schedule line when a patch stage was chosen (passes/patch.py)."""
    schedule = arena.get("schedule")
    if not schedule or schedule["chosen"] == "layer by layer":
        return []
    return [f"  schedule: {schedule['chosen']} (optimize={schedule['optimize']}); layer by layer the arena "
            f"would be {schedule['layer_by_layer_arena']:,} B (bound {schedule['layer_by_layer_bound']:,} B)"]


def format_text(report: dict) -> str:
    arena = report["arena"]
    lines = [f"Budget report for {report['board']} ({report['cpu']})",
             f"  model: {report['model']['ops']} ops "
             f"({', '.join(f'{k} x{v}' for k, v in sorted(report['model']['op_counts'].items()))})",
             f"  arena: {arena['bytes']:,} B in {arena['region']} "
             f"(lower bound {arena['lower_bound']:,} B; {len(arena['shared_storage'])} tensors reuse "
             f"another's bytes)",
             *_schedule_lines(arena),
             f"  weights: {report['weights_bytes']:,} B{_weights_home(report)}   stack reserve: {report['stack_bytes']:,} B"]
    elf = report.get("elf")
    if elf:
        parts = " + ".join(f"{name.replace('_', ' ')} {size:,}" for name, size in elf["flash"].items() if size)
        lines.append(f"  flash {elf['flash_bytes']:,} B = {parts}")
        lines.append("  largest symbols: " + ", ".join(
            f"{short_name(sym['name'])} {sym['bytes']:,}" for sym in elf["largest_symbols"][:5]))
    source = "from the ELF" if elf else "predicted; code estimated"
    lines.append(f"  {'region':<8}{'kind':<7}{'used':>12}{'size':>12}{'use':>8}{'headroom':>12}   ({source})")
    for name, row in report["regions"].items():
        if row["used"] == 0 and row["kind"] == "ram":
            continue
        lines.append(f"  {name:<8}{row['kind']:<7}{row['used']:>12,}{row['size']:>12,}"
                     f"{row['percent']:>7.1f}%{row['headroom']:>12,}")
    lines += _npu_lines(report)
    stack = report.get("stack")
    if stack:
        lines.append(f"  stack: worst case {stack['bytes']:,} B (static call-graph analysis, "
                     f"{' > '.join(stack['path'][:6])}{' > ...' if len(stack['path']) > 6 else ''}) "
                     f"of the {report['stack_bytes']:,} B reserved")
    run = report.get("run")
    if run:
        verdict = "bit-exact with the host reference" if run["bit_exact"] else "DIFFERENT from the host reference"
        lines.append(f"  run: {verdict}; instructions per inference: "
                     + ", ".join(f"{n:,}" for n in run["instructions"])
                     + (f"; stack used {run['stack_measured_bytes']:,} B (painted)"
                        if run.get("stack_measured_bytes") else ""))
    return "\n".join(lines)
