"""mcu_compile.compile(): the pass list, and load() of a project it wrote.

    export -> quantize -> lower -> delegate -> fuse -> schedule -> plan -> render

Every pass hands on a verified program (Program.verify(), ir/verify.py) and the plan is
checked before anything is rendered. The host reference runs the undelegated Edge
program; the .tflite holds the delegated one (with our memory plan as TFLM metadata);
the firmware runs the fused, scheduled form. What a compiled project can do afterwards
(build, run, report) lives in project.py.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable

from .codegen.model import check_model_name, render_model
from .errors import BoardFitError, InputError
from .ir.inputs import default_vectors, to_program_inputs
from .ir.offline_plan import with_offline_plan
from .ir.program import Program
from .ir.tflite_io import load_tflite, write_tflite
from .ops import registry
from .passes.delegate import cpu_placement, delegate
from .passes.edges import quantize_edges_on_host
from .passes.fuse import fold_pads_into_windows, fuse_residual_adds
from .passes.patch import choose_schedule
from .passes.plan import choose_arena_region, choose_weights_region, plan_memory, schedule_for_memory
from .project import (MANIFEST, PROGRAM_FILE, REFERENCE_FILE, CompiledModel, check_model_files, write_project,
                      write_vectors)
from .report.budget import DEFAULT_STACK_BYTES, budget_overruns, code_bytes, predicted_report
from .report.npu import npu_summary
from .target.boards import Board, is_catalog_board, load_board


def build_program(model, example_inputs, calibration) -> Program:
    """Front half of the pipeline: model -> verified int8 Edge program."""
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx":
        raise InputError(f"{model}: ONNX is not supported; export to .pt2 (torch.export.save) or an int8 .tflite")
    if isinstance(model, (str, Path)) and str(model).endswith(".tflite"):
        return quantize_edges_on_host(load_tflite(Path(model)).verify("reading the .tflite")).verify("edges")
    from .frontend.export import export  # torch is imported only for PyTorch models
    from .frontend.lower import lower
    from .frontend.quantize import quantize
    if example_inputs is None:
        raise InputError("example_inputs are required for a PyTorch model: a tuple of tensors "
                         "shaped like forward()'s arguments")
    example_inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    exported = export(model, example_inputs)
    return lower(quantize(exported, calibration, example_inputs), example_inputs).verify("lower")


def scratch_sizes(program: Program) -> list[int]:
    return [registry.scratch_bytes(program, op) for op in program.ops]


def schedule_report(optimize: str, chosen, schedules) -> dict:
    """The schedule chosen and the best few considered (passes/patch.py)."""
    layer_by_layer = schedules[0]
    return {"optimize": optimize, "chosen": chosen.name,
            "estimated_instructions": chosen.instructions,
            "layer_by_layer_arena": layer_by_layer.plan.arena_bytes,
            "layer_by_layer_bound": layer_by_layer.plan.lower_bound,
            "layer_by_layer_instructions": layer_by_layer.instructions,
            "considered": len(schedules),
            "best": [s.summary() for s in sorted(schedules, key=lambda s: (s.plan.arena_bytes, s.instructions))[:5]]}


def check_fit(report: dict, max_ram: int | None = None, max_flash: int | None = None) -> None:
    problems = budget_overruns(report, max_ram, max_flash)
    if problems:
        raise BoardFitError(f"the model does not fit: {problems[0]}; choose a board with more memory, "
                            f"a larger budget or a smaller model")


def plan_for_file(program: Program, firmware_program: Program, firmware_plan):
    """The memory plan written into the .tflite for TFLite Micro: the firmware's own
    plan when the firmware runs the file's ops in the file's order, otherwise the same
    planner's plan of the file as written (fusions change the set of tensors)."""
    if [id(op) for op in firmware_program.ops] == [id(op) for op in program.ops]:
        return firmware_plan
    return plan_memory(program, scratch_sizes(program)).verify()


def compile(model, example_inputs=None, *, calibration: Iterable | None = None,
            board: str = "mps3-an547", out_dir: str | Path = "mcu_out",
            test_inputs: Iterable | None = None, stack_bytes: int | None = None,
            max_ram: int | None = None, max_flash: int | None = None, npu: bool = True,
            weights_in_ram: bool = False, force: bool = False, console: str | None = None,
            name: str = "model", optimize: str = "balanced") -> CompiledModel:
    """Compile a model into a firmware project for `board`.

    model: an nn.Module, an ExportedProgram, or the path of a .pt2 (torch.export.save)
    or of an int8 .tflite. calibration: input tuples for PT2E calibration (default:
    the example inputs). test_inputs: input tuples bundled into the firmware and
    checked against the host reference (default: the example inputs). stack_bytes:
    the stack reserve; by default the worst case found by static analysis of the
    firmware's call graph at build time plus a margin for interrupts (8 KiB is
    assumed until then). max_ram / max_flash: budgets in bytes, checked with the
    board's regions before anything is written (on the exact sizes: arena, weights,
    tables) and again on the built ELF.
    npu: on a board with an Ethos-U, delegate what it supports (False keeps every op on
    the CPU, for comparison). weights_in_ram: copy the CPU weights from
    flash to the board's data RAM at start-up. out_dir is replaced as a whole when the
    compile succeeds (and left as it was when it fails); a non-empty folder that is not
    an mcu-compile project is refused unless force. console: "uart" or "semihosting"
    instead of the board's own console (its [console]): e.g. "uart" on a QEMU board runs
    the real-board code path, frames over the UART, under simulation. name: the model's C
    name, the prefix of every public symbol of model.c and of its header <name>.h
    (kws_invoke(), KWS_NUM_INPUTS...), so that several models link into one firmware.
    optimize: how to trade RAM for instructions (passes/patch.py): "speed" runs layer by
    layer, "ram" takes the schedule with the smallest arena (the first layers computed in
    strips of rows), "balanced" the smallest arena within 10% of the fastest estimate.
    """
    check_model_name(name)
    stack_policy = "auto" if stack_bytes is None else "fixed"
    stack_bytes = DEFAULT_STACK_BYTES if stack_bytes is None else stack_bytes
    board_info = with_console(load_board(board), console)
    program = build_program(model, example_inputs, calibration)
    delegation = delegate(program, board_info) if npu and board_info.npu else None
    edge_program = delegation.program.verify("delegate") if delegation else program
    firmware_program = fuse_residual_adds(fold_pads_into_windows(edge_program)).verify("fuse")
    firmware_program, _, order = schedule_for_memory(firmware_program, scratch_sizes(firmware_program))
    schedule, schedules = choose_schedule(firmware_program.verify("schedule"), scratch_sizes, optimize)
    firmware_program = schedule.program.verify("patch")
    uses_npu = registry.uses_npu(firmware_program)
    plan = choose_arena_region(schedule.plan, board_info, stack_bytes, uses_npu)
    ram_in_use = {plan.region: plan.arena_bytes}
    ram_in_use[board_info.data_region] = ram_in_use.get(board_info.data_region, 0) + stack_bytes
    weights_home = None if weights_in_ram else choose_weights_region(
        board_info, sum(t.nbytes for t in firmware_program.weights()), code_bytes(firmware_program), ram_in_use)
    report = predicted_report(firmware_program, plan, board_info, stack_bytes, weights_in_ram=weights_in_ram,
                              stack_estimated=stack_policy == "auto", weights_region=weights_home)
    report["arena"]["execution_order"] = order
    report["arena"]["schedule"] = schedule_report(optimize, schedule, schedules)
    report["ops"] = (delegation.placement if delegation else
                     [cpu_placement(op, "compiled with npu=False" if board_info.npu else
                                    f"{board_info.name} has no NPU") for op in program.ops])
    if delegation:
        report["npu"] = npu_summary(delegation, board_info, firmware_program, plan)
    check_fit(report, max_ram, max_flash)
    registry.check_compilable(firmware_program)
    vectors = ([to_program_inputs(program, v) for v in test_inputs] if test_inputs is not None
               else default_vectors(program, example_inputs))

    def write(folder: Path) -> None:
        folder.joinpath(PROGRAM_FILE).write_bytes(write_tflite(with_offline_plan(
            edge_program, plan_for_file(edge_program, firmware_program, plan))))
        if edge_program is not program:
            folder.joinpath(REFERENCE_FILE).write_bytes(write_tflite(program))
        weight_symbols = render_model(firmware_program, plan, folder, board_info.npu, weights_in_ram, name,
                                      weights_region=report["weights_region"])
        write_vectors(folder, program, board_info, vectors, stack_bytes, report)
        folder.joinpath(MANIFEST).write_text(json.dumps(
            {"board": board_info.name, "board_file": None if is_catalog_board(board_info) else str(board_info.path.resolve()),
             "console": board_info.console["kind"],
             "weight_symbols": weight_symbols, "stack_policy": stack_policy,
             "max_ram": max_ram, "max_flash": max_flash, "report": report}, indent=1))

    project_dir = Path(out_dir)
    write_project(project_dir, write, force)
    program_path = project_dir / PROGRAM_FILE
    return CompiledModel(project_dir, program_path, report, board_info, _program=edge_program, _reference=program)


def load(project_dir: str | Path) -> CompiledModel:
    """A project written by compile(), for `mcu-compile build/run/report DIR`."""
    project_dir = Path(project_dir)
    manifest_path = project_dir / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{project_dir} is not an mcu-compile project (no {MANIFEST}); "
                         f"create one with `mcu-compile compile MODEL --out {project_dir}`")
    manifest = json.loads(manifest_path.read_text())
    check_model_files(project_dir, manifest)
    board = load_board(manifest.get("board_file") or manifest["board"])
    return CompiledModel(project_dir, project_dir / PROGRAM_FILE, manifest["report"],
                         with_console(board, manifest.get("console")))


CONSOLES = ("uart", "semihosting")


def with_console(board: Board, console: str | None) -> Board:
    """The board with its console replaced (None: the board file's own)."""
    if console is None or console == board.console["kind"]:
        return board
    if console not in CONSOLES:
        raise InputError(f"unknown console '{console}'; choose one of {', '.join(CONSOLES)}")
    if console == "uart" and not board.uart:
        raise InputError(f"board {board.name} has no [uart] in {board.path}: its console can only be semihosting")
    if console == "semihosting" and not board.simulator:
        raise InputError(f"board {board.name} is a real board: semihosting needs a debugger attached and halts "
                         f"the core without one; keep its UART console")
    return dataclasses.replace(board, console={**board.console, "kind": console})
