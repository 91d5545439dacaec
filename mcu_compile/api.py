"""mcu_compile.compile(): the whole pipeline, and the compiled project it returns.

    export -> quantize -> lower -> delegate -> fuse -> plan -> render   (compile)
    build -> run (QEMU, the FVP, or QEMU + the functional NPU model)      (CompiledModel.run)

The host reference runs the undelegated Edge program; the .tflite holds the delegated one
(with our memory plan as TFLM metadata); the firmware runs the fused, scheduled form.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .ops.registry import scratch_bytes
from .reference import interpreter as reference
from .target.boards import Board, load_board
from .target.build import build as build_project
from .target.elf import heap_symbols
from .errors import BoardFitError, McuCompileError, InputError
from .passes.delegate import cpu_placement, delegate, npu_summary
from .passes.fuse import fold_pads_into_convolutions, fuse_residual_adds
from .ir.program import Program
from .passes.plan import align, plan_memory, schedule_for_memory
from .codegen.platform import STACK_ALIGN, render_platform
from .codegen.model import render_model
from .report.budget import DEFAULT_STACK_BYTES, budget_overruns, elf_summary, format_text, predicted_report, with_elf
from .sim.fvp import simulate
from .sim.qemu import run_qemu
from .target.stack import worst_case_stack
from .ir.offline_plan import with_offline_plan
from .ir.tflite_io import load_tflite, write_tflite

MANIFEST = "mcu_compile.json"
PROGRAM_FILE = "program.tflite"
REFERENCE_FILE = "program_reference.tflite"  # before delegation, when an NPU takes part
VECTORS_FILE = "test_vectors.npz"
EXPECTED_FILE = "expected.npz"


class HeapError(McuCompileError):
    pass


def lcg_int8(count: int, seed: int = 1) -> np.ndarray:
    """Deterministic int8 test data: s = s*1664525 + 1013904223 (mod 2**32), top byte.

    The same inputs the peer measurements in TARGETS.md used.
    """
    out = np.empty(count, dtype=np.int8)
    s = seed
    for i in range(count):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = np.uint8(s >> 24).view(np.int8)
    return out


def to_program_inputs(program: Program, arrays) -> list[np.ndarray]:
    """One input tuple (PyTorch layout, float or int8) -> the Edge program's int8 inputs.

    4-D float inputs are NCHW as in PyTorch and are transposed to NHWC; int8 arrays
    are taken as already in the Edge program's layout.
    """
    arrays = list(arrays) if isinstance(arrays, (list, tuple)) else [arrays]
    if len(arrays) != len(program.inputs):
        raise InputError(f"the model takes {len(program.inputs)} input(s), got {len(arrays)}")
    result = []
    for name, value in zip(program.inputs, arrays):
        tensor = program.tensor(name)
        value = value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)
        if value.dtype == np.int8:
            quantized = value
        else:
            if value.ndim == 4:
                value = value.transpose(0, 2, 3, 1)
            scale, zero_point = float(tensor.quant.scale[0]), int(tensor.quant.zero_point[0])
            quantized = np.clip(np.round(value / scale) + zero_point, -128, 127).astype(np.int8)
        if tuple(quantized.shape) != tensor.shape:
            raise InputError(f"input {name!r}: expected shape {list(tensor.shape)} "
                             f"(Edge program layout, NHWC for images), got {list(quantized.shape)}")
        result.append(quantized)
    return result


@dataclass
class ModelRun:
    """What one firmware run produced."""

    inputs: list[list[np.ndarray]]  # per test vector, the int8 inputs
    outputs: list[list[np.ndarray]]  # per test vector, the firmware's int8 outputs
    expected: list[list[np.ndarray]]  # the host reference's outputs
    instructions: list[int]  # per test vector, instructions of one inference
    elf: Path
    npu_sim: str = "none"  # who ran the NPU jobs: "fvp", "model", "hardware", or "none"
    npu_jobs: int = 0

    @property
    def bit_exact(self) -> bool:
        return all(np.array_equal(a, b) for got, want in zip(self.outputs, self.expected)
                   for a, b in zip(got, want))


@dataclass
class CompiledModel:
    project_dir: Path
    program_path: Path
    report: dict
    board: Board
    _program: Program | None = field(default=None, repr=False)
    _reference: Program | None = field(default=None, repr=False)

    @property
    def program(self) -> Program:
        """The Edge program as written to program_path (NPU partitions as ETHOS_U ops)."""
        if self._program is None:
            self._program = load_tflite(self.program_path)
        return self._program

    @property
    def reference_program(self) -> Program:
        """The Edge program before delegation: what the host reference runs."""
        if self._reference is None:
            path = self.project_dir / REFERENCE_FILE
            self._reference = load_tflite(path) if path.is_file() else self.program
        return self._reference

    @property
    def uses_npu(self) -> bool:
        return self.report.get("npu", {}).get("ops_on_npu", 0) > 0

    def vectors(self) -> list[list[np.ndarray]]:
        return _load_vectors(self.project_dir / VECTORS_FILE)

    def expected(self) -> list[list[np.ndarray]]:
        return _load_vectors(self.project_dir / EXPECTED_FILE)

    def build(self) -> Path:
        manifest = self._manifest()
        elf = build_project(self.project_dir)
        stack = worst_case_stack(self.project_dir)  # from the code: a relink does not change it
        if manifest.get("stack_policy") == "auto":
            elf = self._reserve_stack(elf, align(stack.bytes, STACK_ALIGN))
        heap = heap_symbols(elf)
        if heap:
            raise HeapError(f"the firmware links heap functions ({', '.join(heap)}); "
                            f"a kernel or the runtime calls malloc: report this as a bug")
        weights = set(manifest["weight_symbols"])
        self.report = with_elf(self.report, self.board, elf_summary(elf, self.board, weights))
        self.report["stack"] = stack.as_dict()
        self._save_report()
        return elf

    def _reserve_stack(self, elf: Path, reserve: int) -> Path:
        """Relinks with the stack reserve set to the worst case the call graph allows."""
        if reserve != self.report["stack_bytes"]:
            self.report["stack_bytes"] = reserve
            _render_platform(self.project_dir, self.board, self.vectors(), reserve, self.report["arena"])
            elf = build_project(self.project_dir)
        return elf

    def run(self, inputs=None, timeout: float = 120.0, npu_sim: str | None = None) -> ModelRun:
        """Build, run on the board's simulator and compare with the host reference.

        inputs: None (the bundled test vectors) or a list of input tuples (float in
        PyTorch layout, or int8 in the Edge program's layout); as many as fit the flash
        go into one firmware build, the rest into the next. Firmware with NPU jobs runs
        on the board's FVP when it is installed, otherwise in QEMU with each NPU job
        executed by the functional model (npu_sim="model"); CPU-only firmware on QEMU.
        """
        if inputs is None:
            return self._run_bundled(timeout, npu_sim)
        vectors = [to_program_inputs(self.program, v) for v in inputs]
        if not vectors:
            raise InputError("run(inputs=[]) has nothing to run: give at least one input tuple")
        per_build = self._vectors_per_build(vectors[0])
        runs = []
        for start in range(0, len(vectors), per_build):
            _write_vectors(self.project_dir, self.reference_program, self.board, vectors[start:start + per_build],
                           self.report["stack_bytes"], self.report["arena"])
            runs.append(self._run_bundled(timeout, npu_sim))
        return ModelRun([v for r in runs for v in r.inputs], [o for r in runs for o in r.outputs],
                        [e for r in runs for e in r.expected], [n for r in runs for n in r.instructions],
                        runs[-1].elf, runs[-1].npu_sim, sum(r.npu_jobs for r in runs))

    def _vectors_per_build(self, vector: list[np.ndarray]) -> int:
        """How many test vectors the code region holds besides the firmware itself."""
        row = self.report["regions"][self.board.code_region]
        bundled = self.report.get("elf", {}).get("flash", {}).get("test_vectors", 0)
        room = row["size"] - (row["used"] - bundled) - 4096  # margin: code estimate, alignment, tables
        return max(1, room // max(1, sum(a.nbytes for a in vector)))

    def _run_bundled(self, timeout: float, npu_sim: str | None) -> ModelRun:
        elf = self.build()
        if self.uses_npu or npu_sim is not None:
            result = simulate(self.board, elf, timeout=timeout, npu_sim=npu_sim)
        else:
            result = run_qemu(self.board, elf, timeout=timeout)
        outputs = [[np.frombuffer(raw, dtype=np.int8).reshape(self.program.tensor(name).shape)
                    for raw, name in zip(per_vector, self.program.outputs)]
                   for per_vector in result.outputs]
        run = ModelRun(self.vectors(), outputs, self.expected(), list(result.instructions), elf,
                       npu_sim=getattr(result, "npu_sim", result.simulator) if self.uses_npu else "none",
                       npu_jobs=getattr(result, "npu_jobs", 0))
        self.report["run"] = {"bit_exact": run.bit_exact, "instructions": run.instructions,
                              "stack_measured_bytes": result.stack_bytes, "npu_sim": run.npu_sim,
                              "npu_jobs": run.npu_jobs}
        self._save_report()
        return run

    def _manifest(self) -> dict:
        return json.loads((self.project_dir / MANIFEST).read_text())

    def _save_report(self) -> None:
        manifest = self._manifest()
        manifest["report"] = self.report
        (self.project_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))

    def report_text(self) -> str:
        return format_text(self.report)


def _load_vectors(path: Path) -> list[list[np.ndarray]]:
    data = np.load(path)
    count = int(data["count"])
    per = int(data["per_vector"])
    return [[data[f"v{v}_{i}"] for i in range(per)] for v in range(count)]


def _save_vectors(path: Path, vectors: list[list[np.ndarray]]) -> None:
    arrays = {f"v{v}_{i}": a for v, vec in enumerate(vectors) for i, a in enumerate(vec)}
    np.savez(path, count=len(vectors), per_vector=len(vectors[0]) if vectors else 0, **arrays)


def _write_vectors(project_dir: Path, program: Program, board: Board, vectors, stack_bytes: int,
                   arena: dict) -> None:
    """Bundle test vectors into the firmware and record the host reference's outputs."""
    expected = [reference.run(program, v) for v in vectors]
    _render_platform(project_dir, board, vectors, stack_bytes, arena)
    _save_vectors(project_dir / VECTORS_FILE, vectors)
    _save_vectors(project_dir / EXPECTED_FILE, expected)


def plan_for_file(program: Program, firmware_program: Program, firmware_plan):
    """The memory plan written into the .tflite for TFLite Micro: the firmware's own
    plan when the firmware runs the file's ops in the file's order, otherwise the same
    planner's plan of the file as written (fusions change the set of tensors)."""
    if [id(op) for op in firmware_program.ops] == [id(op) for op in program.ops]:
        return firmware_plan
    return plan_memory(program, [scratch_bytes(program, op) for op in program.ops])


def _render_platform(project_dir: Path, board: Board, vectors, stack_bytes: int, arena: dict) -> None:
    render_platform(board, project_dir, vectors, stack_bytes=stack_bytes,
                    arena_sections={arena["region"]: arena["bytes"]})


def build_program(model, example_inputs, calibration) -> Program:
    """Front half of the pipeline: model -> int8 Edge program."""
    if isinstance(model, (str, Path)) and str(model).endswith(".tflite"):
        return load_tflite(Path(model))
    from .frontend.export import export  # torch is imported only for PyTorch models
    from .frontend.lower import lower
    from .frontend.quantize import quantize
    if example_inputs is None:
        raise InputError("example_inputs are required for a PyTorch model: a tuple of tensors "
                         "shaped like forward()'s arguments")
    example_inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    exported = export(model, example_inputs)
    return lower(quantize(exported, calibration, example_inputs), example_inputs)


def default_vectors(program: Program, example_inputs) -> list[list[np.ndarray]]:
    if example_inputs is not None:
        example_inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        return [to_program_inputs(program, example_inputs)]
    return [[lcg_int8(program.tensor(n).size, seed=1 + i).reshape(program.tensor(n).shape)
             for i, n in enumerate(program.inputs)]]


def check_fit(report: dict, max_ram: int | None = None, max_flash: int | None = None) -> None:
    problems = budget_overruns(report, max_ram, max_flash)
    if problems:
        raise BoardFitError(f"the model does not fit: {problems[0]}; choose a board with more memory, "
                            f"a larger budget or a smaller model")


def compile(model, example_inputs=None, *, calibration: Iterable | None = None,
            board: str = "mps3-an547", out_dir: str | Path = "mcu_out",
            test_inputs: Iterable | None = None, stack_bytes: int | None = None,
            max_ram: int | None = None, max_flash: int | None = None, npu: bool = True,
            weights_in_ram: bool = False) -> CompiledModel:
    """Compile a model into a firmware project for `board`.

    model: an nn.Module, an ExportedProgram, or the path of a .pt2 (torch.export.save)
    or of an int8 .tflite. calibration: input tuples for PT2E calibration (default:
    the example inputs). test_inputs: input tuples bundled into the firmware and
    checked against the host reference (default: the example inputs). stack_bytes:
    the stack reserve; by default the worst case found by static analysis of the
    firmware's call graph at build time (8 KiB is assumed until then). max_ram /
    max_flash: budgets in bytes, checked with the board's regions before anything is
    written. npu: on a board with an Ethos-U, delegate what it supports (False keeps
    every op on the CPU, for comparison). weights_in_ram: copy the CPU weights from
    flash to the board's data RAM at start-up.
    """
    stack_policy = "auto" if stack_bytes is None else "fixed"
    stack_bytes = DEFAULT_STACK_BYTES if stack_bytes is None else stack_bytes
    board_info = load_board(board)
    program = build_program(model, example_inputs, calibration)
    delegation = delegate(program, board_info) if npu and board_info.npu else None
    edge_program = delegation.program if delegation else program
    firmware_program = fuse_residual_adds(fold_pads_into_convolutions(edge_program))
    scratch = [scratch_bytes(firmware_program, op) for op in firmware_program.ops]
    firmware_program, scratch, order = schedule_for_memory(firmware_program, scratch)
    plan = plan_memory(firmware_program, scratch)
    uses_npu = any(op.kind == "ETHOS_U" for op in firmware_program.ops)
    report = predicted_report(firmware_program, plan, board_info, stack_bytes, npu_reachable=uses_npu,
                              weights_in_ram=weights_in_ram)
    report["arena"]["execution_order"] = order
    report["ops"] = (delegation.placement if delegation else
                     [cpu_placement(op, "compiled with npu=False" if board_info.npu else
                                    f"{board_info.name} has no NPU") for op in program.ops])
    if delegation:
        report["npu"] = npu_summary(delegation, board_info, firmware_program, plan)
    check_fit(report, max_ram, max_flash)
    project_dir = Path(out_dir)
    project_dir.mkdir(parents=True, exist_ok=True)
    program_path = project_dir / PROGRAM_FILE
    program_path.write_bytes(write_tflite(with_offline_plan(
        edge_program, plan_for_file(edge_program, firmware_program, plan))))
    if edge_program is not program:
        (project_dir / REFERENCE_FILE).write_bytes(write_tflite(program))
    weight_symbols = render_model(firmware_program, plan, report["arena"]["region"], project_dir, board_info.npu,
                                  weights_in_ram)
    vectors = ([to_program_inputs(program, v) for v in test_inputs] if test_inputs is not None
               else default_vectors(program, example_inputs))
    _write_vectors(project_dir, program, board_info, vectors, stack_bytes, report["arena"])
    (project_dir / MANIFEST).write_text(json.dumps(
        {"board": board_info.name, "weight_symbols": weight_symbols, "stack_policy": stack_policy,
         "report": report}, indent=1))
    return CompiledModel(project_dir, program_path, report, board_info, _program=edge_program, _reference=program)


def load(project_dir: str | Path) -> CompiledModel:
    """A project written by compile(), for `mcu-compile build/run/report DIR`."""
    project_dir = Path(project_dir)
    manifest_path = project_dir / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{project_dir} is not an mcu-compile project (no {MANIFEST}); "
                         f"create one with `mcu-compile compile MODEL --out {project_dir}`")
    manifest = json.loads(manifest_path.read_text())
    return CompiledModel(project_dir, project_dir / PROGRAM_FILE, manifest["report"],
                         load_board(manifest["board"]))
