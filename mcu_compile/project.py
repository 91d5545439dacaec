"""A compiled project: the folder compile() writes (model C, platform files, the Edge
program, bundled test vectors with the host reference's outputs, and the manifest), and
what can be done with it afterwards: build, run on the board's simulator, report.

    build -> run (QEMU, the FVP, or QEMU + the functional NPU model)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .codegen.platform import STACK_ALIGN, render_platform
from .errors import BoardFitError, InputError, McuCompileError
from .ir.inputs import to_float_outputs, to_program_inputs
from .ir.program import Program
from .ir.tflite_io import load_tflite
from .passes.plan import align
from .reference import interpreter as reference
from .report.budget import budget_overruns, elf_summary, format_text, with_elf
from .sim.backends import run_firmware
from .target.boards import Board
from .target.build import build as build_project
from .target.elf import heap_symbols
from .target.stack import worst_case_stack

# Stack reserved beyond the call graph's worst case (which covers this firmware's own
# handlers): an exception frame with FP state (108 B) for an interrupt the analysis
# cannot see, such as one the user's firmware adds, and its handler's locals.
STACK_MARGIN_BYTES = 256
MANIFEST = "mcu_compile.json"
PROGRAM_FILE = "program.tflite"
REFERENCE_FILE = "program_reference.tflite"  # before delegation, when an NPU takes part
VECTORS_FILE = "test_vectors.npz"
EXPECTED_FILE = "expected.npz"
# the files that say which model a project is: their digests are in the manifest
MODEL_FILES = (PROGRAM_FILE, REFERENCE_FILE)


class HeapError(McuCompileError):
    pass


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
    outputs_float: list[list[np.ndarray]] = field(default_factory=list)  # dequantized, PyTorch layout

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
            elf = self._reserve_stack(elf, align(stack.bytes + STACK_MARGIN_BYTES, STACK_ALIGN))
        heap = heap_symbols(elf)
        if heap:
            raise HeapError(f"the firmware links heap functions ({', '.join(heap)}); "
                            f"a kernel or the runtime calls malloc: report this as a bug")
        weights = set(manifest["weight_symbols"])
        self.report = with_elf(self.report, self.board, elf_summary(elf, self.board, weights))
        self.report["stack"] = {**stack.as_dict(), "margin_bytes": STACK_MARGIN_BYTES}
        self.save_report()
        problems = budget_overruns(self.report, manifest.get("max_ram"), manifest.get("max_flash"))
        if problems:
            raise BoardFitError(f"the built firmware does not fit: {problems[0]}; choose a board with more memory, "
                                f"a larger budget or a smaller model")
        return elf

    def _reserve_stack(self, elf: Path, reserve: int) -> Path:
        """Relinks with the stack reserve set to the worst case the call graph allows."""
        if reserve != self.report["stack_bytes"]:
            self.report["stack_bytes"] = reserve
            render_platform_files(self.project_dir, self.board, self.vectors(), reserve, self.report)
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
            write_vectors(self.project_dir, self.reference_program, self.board, vectors[start:start + per_build],
                           self.report["stack_bytes"], self.report)
            runs.append(self._run_bundled(timeout, npu_sim))
        return ModelRun([v for r in runs for v in r.inputs], [o for r in runs for o in r.outputs],
                        [e for r in runs for e in r.expected], [n for r in runs for n in r.instructions],
                        runs[-1].elf, runs[-1].npu_sim, sum(r.npu_jobs for r in runs),
                        [f for r in runs for f in r.outputs_float])

    def run_variant(self, variant: str, timeout: float = 300.0):
        """Builds a variant of the firmware beside app.elf (target/build.py VARIANTS: the
        profiling and debug builds, the portable kernels) and runs it on the board's
        simulator; the RunResult of what it printed."""
        self.build()   # the project's own build first: stack reserve and platform files current
        elf = build_project(self.project_dir, variant=variant)
        return run_firmware(self.board, elf, timeout=timeout, uses_npu=self.uses_npu)

    def _vectors_per_build(self, vector: list[np.ndarray]) -> int:
        """How many test vectors the code region holds besides the firmware itself."""
        row = self.report["regions"][self.board.code_region]
        bundled = self.report.get("elf", {}).get("flash", {}).get("test_vectors", 0)
        room = row["size"] - (row["used"] - bundled) - 4096  # margin: code estimate, alignment, tables
        return max(1, room // max(1, sum(a.nbytes for a in vector)))

    def _run_bundled(self, timeout: float, npu_sim: str | None) -> ModelRun:
        elf = self.build()
        result = run_firmware(self.board, elf, timeout=timeout, npu_sim=npu_sim, uses_npu=self.uses_npu)
        outputs = [[np.frombuffer(raw, dtype=np.int8).reshape(self.program.tensor(name).shape)
                    for raw, name in zip(per_vector, self.program.outputs)]
                   for per_vector in result.outputs]
        run = ModelRun(self.vectors(), outputs, self.expected(), list(result.instructions), elf,
                       npu_sim=getattr(result, "npu_sim", result.simulator) if self.uses_npu else "none",
                       npu_jobs=getattr(result, "npu_jobs", 0),
                       outputs_float=[to_float_outputs(self.program, o) for o in outputs])
        self.report["run"] = {"bit_exact": run.bit_exact, "instructions": run.instructions,
                              "stack_measured_bytes": result.stack_bytes, "npu_sim": run.npu_sim,
                              "npu_jobs": run.npu_jobs}
        self.save_report()
        return run

    def _manifest(self) -> dict:
        return json.loads((self.project_dir / MANIFEST).read_text())

    def save_report(self) -> None:
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


def write_vectors(project_dir: Path, program: Program, board: Board, vectors, stack_bytes: int,
                   report: dict) -> None:
    """Bundle test vectors into the firmware and record the host reference's outputs."""
    expected = [reference.run(program, v) for v in vectors]
    render_platform_files(project_dir, board, vectors, stack_bytes, report)
    _save_vectors(project_dir / VECTORS_FILE, vectors)
    _save_vectors(project_dir / EXPECTED_FILE, expected)


def render_platform_files(project_dir: Path, board: Board, vectors, stack_bytes: int, report: dict) -> None:
    """The platform half of the project, with the arena and the weights where the report
    placed them."""
    arena, weights = report["arena"], report.get("weights_region")
    moved = {weights["name"]: report["weights_bytes"]} if weights and weights["moved"] else {}
    render_platform(board, project_dir, vectors, stack_bytes=stack_bytes,
                    arena_sections={arena["region"]: arena["bytes"]}, weights_sections=moved)


def write_project(project_dir: Path, write: Callable[[Path], None], force: bool = False) -> None:
    """Runs write(folder) on a new temporary folder beside project_dir and then swaps it
    in, so an interrupted compile leaves the previous project (or nothing), never a mix
    of two compiles. A non-empty project_dir that is not an mcu-compile project is a
    user's folder: refused unless force."""
    project_dir = Path(project_dir)
    if project_dir.exists() and not force:
        _check_replaceable(project_dir)
    project_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{project_dir.name}.new-", dir=project_dir.parent))
    try:
        write(staging)
        _record_model_digests(staging)
        swap_in(staging, project_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_replaceable(project_dir: Path) -> None:
    if not project_dir.is_dir():
        raise InputError(f"{project_dir} is a file; choose a folder for the firmware project")
    entries = sorted(p.name for p in project_dir.iterdir())
    if entries and MANIFEST not in entries:
        raise InputError(f"{project_dir} is not empty and not an mcu-compile project ({', '.join(entries[:3])}"
                         f"{', ...' if len(entries) > 3 else ''}); choose another --out folder, or pass "
                         f"--force (force=True) to replace it")


def swap_in(staging: Path, target: Path) -> None:
    """Replaces target (a folder, or nothing yet) by staging, a complete folder beside it:
    renames only, so a reader sees the old folder or the new one, never a mix."""
    if not target.exists():
        os.rename(staging, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, retired / target.name)
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_model_digests(project_dir: Path) -> None:
    manifest_path = project_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["model_files"] = {name: _digest(project_dir / name) for name in MODEL_FILES
                               if (project_dir / name).is_file()}
    manifest_path.write_text(json.dumps(manifest, indent=1))


def check_model_files(project_dir: Path, manifest: dict) -> None:
    """The project's model files are the ones its compile wrote: none changed, none added
    or removed since (else its bundled expected outputs belong to another model)."""
    recorded = manifest.get("model_files", {})
    for name in MODEL_FILES:
        path = project_dir / name
        if name in recorded and (not path.is_file() or _digest(path) != recorded[name]):
            raise InputError(f"{path} is missing or changed since it was compiled; compile the model "
                             f"again into {project_dir}")
        if name not in recorded and path.exists():
            raise InputError(f"{path} was not written by the compile that made {project_dir}; remove it "
                             f"or compile the model again")
