"""Worst-case stack of a built firmware, computed statically from what gcc wrote.

The Makefile compiles with `-fstack-usage -fcallgraph-info=su`: gcc then writes, beside
each object, a .su file (the frame of every function) and a .ci file (VCG graph: one
node per function with "<n> bytes (static|dynamic|dynamic,bounded)", one edge per
call). worst_case_stack() merges them into one call graph and finds the call path
from `root` with the largest sum of frames.

What the compiler's graph does not show, and how it is handled:

* Calls through function pointers (the node "__indirect_call"; main reaches
  model_invoke that way, through mcu_timer_measure). An indirect call may reach any
  function whose address is taken: the functions referenced by a non-call relocation
  in the objects (R_ARM_ABS32, MOVW/MOVT...), except from the vector table. The
  worst of them is counted. Without objects to look at, the call counts
  UNKNOWN_FUNCTION_BYTES and is listed in `unknown`.
* Calls gcc emits itself (libgcc helpers such as __aeabi_uldivmod, memcpy for a
  struct copy) and tail calls from inline asm: taken from the call relocations
  (R_ARM_THM_CALL / R_ARM_THM_JUMP24...) of each function's section.
* Library functions (newlib memcpy/memset, libgcc) have no .su/.ci: their frame is
  read from the prologue of their machine code in app.elf (push/vpush/sub sp, summed
  over the whole function, with their own direct calls), or, when that is not
  possible, assumed to be UNKNOWN_FUNCTION_BYTES. Either way they are listed in
  `unknown` because the figure is not the compiler's.
* "dynamic,bounded" frames are exact bounds (gcc reports the bound); plain
  "dynamic" (alloca / VLA of unknown size) is unbounded: the static part is counted
  and the function is listed in `unknown`.
* Recursion makes the worst case unbounded: StackRecursionError names the cycle.
* Interrupts: an exception can arrive at the deepest point of the main path. The
  core then pushes a hardware frame on the same (main) stack: 32 B basic (r0-r3,
  r12, lr, pc, xPSR), 104 B with the floating-point context (s0-s15, FPSCR and
  VPR/reserved) that Cortex-M4F/M55 reserve under lazy stacking whenever the
  interrupted code has used the FPU; plus up to 4 B to realign the stack to 8 B
  (CCR.STKALIGN). EXCEPTION_FRAME_BYTES = 104 + 4 is used on every board
  (conservative). The handler's own call path is added on top; the largest handler
  (SysTick_Handler, Fault_Handler...: the functions the vector table points at)
  counts. All handlers of this firmware run at the same priority, so they do not
  nest; a fault is terminal (it reports and exits). Fault_Handler switches to a
  private stack, but the branch it takes to mcu_fault_report is counted anyway.
* Startup: the frames of the functions between the reset handler and `root`
  (Reset_Handler -> main) stay on the stack below `root`'s and are counted.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import McuCompileError

# A library/assembly function without any stack information, or an unresolved
# indirect call: newlib-nano's memcpy/memset use 0-16 B; 64 B is a safe margin for
# such leaf string routines.
UNKNOWN_FUNCTION_BYTES = 64
# Hardware exception frame with FP context (26 words) + 8-byte alignment padding.
EXCEPTION_FRAME_BYTES = 104 + 4
INDIRECT = "__indirect_call"
RESET_HANDLER = "Reset_Handler"

_NODE = re.compile(r'node:\s*\{\s*title:\s*"([^"]*)"\s*label:\s*"([^"]*)"\s*(shape\s*:\s*ellipse)?')
_EDGE = re.compile(r'edge:\s*\{\s*sourcename:\s*"([^"]*)"\s*targetname:\s*"([^"]*)"')
_GRAPH = re.compile(r'graph:\s*\{\s*title:\s*"([^"]*)"')
_FRAME = re.compile(r"(\d+) bytes \(([^)]*)\)")

# ARM relocation types (ELF for the Arm Architecture, 5.6).
_CALL_RELOCS = {10, 28, 29, 30, 51}      # THM_CALL, CALL, JUMP24, THM_JUMP24, THM_JUMP19
_SKIP_SECTIONS = (".debug", ".ARM.exidx", ".ARM.extab", ".ARM.attributes", ".comment", ".rel.debug")


class StackRecursionError(McuCompileError):
    """The call graph has a cycle: the worst-case stack is unbounded."""


class StackAnalysisError(McuCompileError):
    """The build has no stack information to analyse."""


@dataclass
class StackEstimate:
    bytes: int                  # worst case: startup + path from root + interrupt
    path: list[str]             # deepest call path from root (function names)
    unknown: list[str]          # functions whose frame is assumed, not compiler-known
    path_bytes: int = 0         # sum of the frames along `path`
    startup_bytes: int = 0      # frames below root (Reset_Handler...)
    interrupt_bytes: int = 0    # exception frame + deepest handler path
    interrupt_path: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # why each `unknown` entry is there

    def as_dict(self) -> dict:
        return {"bytes": self.bytes, "path": self.path, "path_bytes": self.path_bytes,
                "startup_bytes": self.startup_bytes, "interrupt_bytes": self.interrupt_bytes,
                "interrupt_path": self.interrupt_path, "unknown": self.unknown, "notes": self.notes}


@dataclass
class _Function:
    key: str                    # .ci title: "name", or "file.c:name" for a static function
    frame: int | None = None
    qualifier: str = ""
    callees: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.key.rsplit(":", 1)[-1]


class _Graph:
    def __init__(self):
        self.functions: dict[str, _Function] = {}
        self.address_taken: set[str] = set()
        self.handlers: set[str] = set()
        self.notes: dict[str, str] = {}

    def get(self, key: str) -> _Function:
        return self.functions.setdefault(key, _Function(key))

    def resolve(self, name: str, file: str | None = None) -> str:
        """The key of `name` as seen from `file` (its static function if it has one)."""
        if file and f"{file}:{name}" in self.functions:
            return f"{file}:{name}"
        return name


def _parse_ci(path: Path, graph: _Graph) -> str | None:
    text = path.read_text(errors="replace")
    title = _GRAPH.search(text)
    for key, label, declared in _NODE.findall(text):
        fn = graph.get(key)
        frame = _FRAME.search(label)
        if frame and not declared:
            fn.frame, fn.qualifier = int(frame[1]), frame[2]
    for source, target in _EDGE.findall(text):
        graph.get(source).callees.add(target)
        graph.get(target)
    return title[1] if title else None


def _parse_su(path: Path, graph: _Graph) -> None:
    """file:line:col:name <tab> bytes <tab> qualifier: fills frames the .ci lacks."""
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        location, name = parts[0].rsplit(":", 1)
        file = location.rsplit(":", 2)[0]
        fn = graph.get(graph.resolve(name, file))
        if fn.frame is None:
            fn.frame, fn.qualifier = int(parts[1]), parts[2]


def _parse_relocations(obj: Path, file: str | None, graph: _Graph) -> None:
    """Calls gcc's graph omits (helpers, asm branches) and address-taken functions."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    with open(obj, "rb") as f:
        elf = ELFFile(f)
        sections = list(elf.iter_sections())
        for rel in sections:
            if not isinstance(rel, RelocationSection):
                continue
            target = sections[rel["sh_info"]].name
            if target.startswith(_SKIP_SECTIONS):
                continue
            symtab = elf.get_section(rel["sh_link"])
            caller = None
            if target.startswith(".text."):
                caller = graph.resolve(target[len(".text."):], file)
            for r in rel.iter_relocations():
                sym = symtab.get_symbol(r["r_info_sym"])
                kind = sym["st_info"]["type"]
                if kind == "STT_SECTION":
                    section = sections[sym["st_shndx"]].name
                    if not section.startswith(".text."):
                        continue
                    name, local = section[len(".text."):], True
                elif kind == "STT_FUNC" or (kind == "STT_NOTYPE" and sym["st_shndx"] == "SHN_UNDEF"):
                    name, local = sym.name, sym["st_info"]["bind"] == "STB_LOCAL"
                else:
                    continue
                if not name:
                    continue
                key = graph.resolve(name, file) if local else name
                if r["r_info_type"] in _CALL_RELOCS:
                    if caller and key != caller:
                        graph.get(caller).callees.add(key)
                        graph.get(key)
                elif target == ".vectors" or target.endswith("vector_table"):
                    if kind != "STT_NOTYPE" or key in graph.functions:   # not __stack_top
                        graph.handlers.add(key)
                elif kind != "STT_NOTYPE" or key in graph.functions:
                    graph.address_taken.add(key)   # (an undefined NOTYPE may be a linker symbol)


_PUSH = re.compile(r"\b(?:push|stmdb|stmfd)(?:\.w)?\s+(?:sp!,\s*)?\{([^}]*)\}")
_VPUSH = re.compile(r"\b(?:vpush|vstmdb)(?:\.\d+)?\s+(?:sp!,\s*)?\{([^}]*)\}")
_SUB_SP = re.compile(r"\bsub(?:s|w|\.w)?\s+sp,\s*(?:sp,\s*)?#(\d+)")
_DYN_SP = re.compile(r"\b(?:sub(?:s|\.w)?\s+sp,\s*(?:sp,\s*)?r\d|mov\s+sp,)")
_BRANCH = re.compile(r"\bb(?:l|[a-z]{2})?(?:\.w|\.n)?\s+[0-9a-f]+\s+<([^>+]+)>")  # bl, b, bne.w... to a symbol
_FUNC = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")


def _registers(text: str, size: int) -> int:
    count = 0
    for item in text.split(","):
        item = item.strip()
        m = re.fullmatch(r"[a-z]+(\d+)-[a-z]+(\d+)", item)
        count += (int(m[2]) - int(m[1]) + 1) if m else (1 if item else 0)
    return count * size


def _library_frames(elf: Path, names: set[str]) -> dict[str, tuple[int, bool, set[str]]]:
    """name -> (frame, dynamic, direct callees) from the machine code of app.elf."""
    try:
        out = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    result, current = {}, None
    for line in out.splitlines():
        head = _FUNC.match(line)
        if head:
            current = head[1] if head[1] in names else None
            if current:
                result[current] = [0, False, set()]
            continue
        if not current or ":\t" not in line:
            continue
        insn = line.split(":\t", 1)[1].split(";")[0].split("@")[0]
        entry = result[current]
        if m := _PUSH.search(insn):
            entry[0] += _registers(m[1], 4)
        elif m := _VPUSH.search(insn):
            regs = m[1].strip()
            entry[0] += _registers(regs, 8 if regs.startswith("d") else 4)
        elif m := _SUB_SP.search(insn):
            entry[0] += int(m[1])
        elif _DYN_SP.search(insn):
            entry[1] = True
        elif (m := _BRANCH.search(insn)) and m[1] != current:
            entry[2].add(m[1])
    return {k: (v[0], v[1], v[2]) for k, v in result.items()}


def _app_files(project_dir: Path, pattern: str) -> list[Path]:
    """The app.elf build's files: not those of build-<variant>/ (the profile and debug builds)."""
    return sorted(p for p in project_dir.rglob(pattern)
                  if not any(part.startswith("build-") for part in p.relative_to(project_dir).parts))


def load_graph(project_dir: Path) -> _Graph:
    project_dir = Path(project_dir)
    graph = _Graph()
    ci_files = _app_files(project_dir, "*.ci")
    if not ci_files:
        raise StackAnalysisError(
            f"no .ci call-graph files under {project_dir}: build the project with a Makefile "
            f"that passes -fcallgraph-info=su (re-render it with mcu-compile, then `make clean all`)")
    files = {}
    for ci in ci_files:
        files[ci] = _parse_ci(ci, graph)
    for su in _app_files(project_dir, "*.su"):
        _parse_su(su, graph)
    for ci, file in files.items():
        obj = ci.with_suffix(".o")
        if obj.is_file():
            _parse_relocations(obj, file, graph)
    if not graph.handlers:
        graph.handlers = {k for k in graph.functions
                          if k.endswith(("_Handler", "_IRQHandler")) and graph.functions[k].frame is not None}
    graph.handlers.discard(RESET_HANDLER)
    # Library code: frames from the linked machine code, else the default.
    missing = {f.key for f in graph.functions.values() if f.frame is None and f.key != INDIRECT}
    elf = project_dir / "app.elf"
    frames = _library_frames(elf, missing) if missing and elf.is_file() else {}
    while missing:
        for key in sorted(missing):
            fn = graph.get(key)
            if key in frames:
                frame, dynamic, callees = frames[key]
                fn.frame, fn.qualifier = frame, "dynamic" if dynamic else "machine code"
                fn.callees |= callees
                graph.notes[key] = (f"{key}: no compiler stack information (library or assembly); "
                                    f"{frame} B read from its machine code in app.elf"
                                    + (", which also moves sp by a register amount" if dynamic else ""))
            else:
                fn.frame, fn.qualifier = UNKNOWN_FUNCTION_BYTES, "assumed"
                graph.notes[key] = (f"{key}: no stack information (library or assembly, not linked "
                                    f"or not found); assumed {UNKNOWN_FUNCTION_BYTES} B")
        new = {c for key in missing for c in graph.functions[key].callees}
        missing = {c for c in new if graph.get(c).frame is None and c != INDIRECT}
        if missing and elf.is_file():
            frames = _library_frames(elf, missing)
    return graph


def _callees(graph: _Graph, key: str) -> list[str]:
    fn = graph.functions.get(key)
    if fn is None:
        return []
    out = []
    for callee in sorted(fn.callees):
        if callee == INDIRECT:
            targets = sorted(graph.address_taken - graph.handlers - {RESET_HANDLER})
            out.extend(targets if targets else [INDIRECT])
        else:
            out.append(callee)
    return out


def _frame(graph: _Graph, key: str) -> int:
    if key == INDIRECT:
        graph.notes[INDIRECT] = (f"indirect call with no address-taken function to resolve it; "
                                 f"assumed {UNKNOWN_FUNCTION_BYTES} B")
        return UNKNOWN_FUNCTION_BYTES
    fn = graph.functions[key]
    if fn.qualifier == "dynamic" and key not in graph.notes:
        graph.notes[key] = f"{key}: dynamic stack allocation of unbounded size; only {fn.frame} B counted"
    return fn.frame or 0


def _deepest(graph: _Graph, root: str) -> tuple[int, list[str], set[str]]:
    """(bytes, path, every function reachable) of the deepest path from root."""
    memo: dict[str, tuple[int, list[str]]] = {}
    reached: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(key: str) -> tuple[int, list[str]]:
        if key in memo:
            return memo[key]
        if key in on_stack:
            cycle = stack[stack.index(key):] + [key]
            raise StackRecursionError(
                "recursion in the firmware call graph: "
                + " -> ".join(_display(k) for k in cycle)
                + "; the worst-case stack is unbounded: rewrite it as a loop")
        stack.append(key)
        on_stack.add(key)
        reached.add(key)
        best = (0, [])
        for callee in _callees(graph, key):
            depth = visit(callee)
            if depth[0] > best[0] or not best[1]:
                best = depth
        stack.pop()
        on_stack.discard(key)
        memo[key] = (_frame(graph, key) + best[0], [key] + best[1])
        return memo[key]

    total, path = visit(root)
    return total, path, reached


def _display(key: str) -> str:
    return key.rsplit(":", 1)[-1]


def _startup_bytes(graph: _Graph, root: str) -> int:
    """Largest frame sum of the callers from the reset handler down to root (exclusive)."""
    if RESET_HANDLER not in graph.functions or root == RESET_HANDLER:
        return 0
    best = -1
    seen: set[str] = set()

    def walk(key: str, acc: int) -> None:
        nonlocal best
        if key == root:
            best = max(best, acc)
            return
        if key in seen:
            return
        seen.add(key)
        for callee in _callees(graph, key):
            walk(callee, acc + _frame(graph, key))
        seen.discard(key)

    walk(RESET_HANDLER, 0)
    return max(best, 0)


def worst_case_stack(project_dir: Path, root: str = "main", interrupts: bool = True) -> StackEstimate:
    """Worst-case stack bytes of the built firmware in project_dir (its .ci/.su files).

    bytes = startup frames below root + deepest call path from root
            + (interrupts) hardware exception frame + deepest interrupt handler path.
    Raises StackRecursionError when a call cycle is reachable.
    """
    graph = load_graph(project_dir)
    key = graph.resolve(root)
    if key not in graph.functions:
        statics = [k for k in graph.functions if k.endswith(f":{root}")]
        if len(statics) != 1:
            raise StackAnalysisError(f"function {root!r} not found in the call graph of {project_dir}")
        key = statics[0]
    path_bytes, path, reached = _deepest(graph, key)
    startup = _startup_bytes(graph, key)
    interrupt, interrupt_path = 0, []
    if interrupts:
        deepest = max((_deepest(graph, h) for h in sorted(graph.handlers)),
                      key=lambda d: d[0], default=(0, [], set()))
        interrupt, interrupt_path = EXCEPTION_FRAME_BYTES + deepest[0], deepest[1]
        reached |= deepest[2]
    unknown = sorted(k for k in reached if k in graph.notes or k == INDIRECT)
    return StackEstimate(
        bytes=startup + path_bytes + interrupt,
        path=[_display(k) for k in path],
        unknown=[_display(k) for k in unknown],
        path_bytes=path_bytes, startup_bytes=startup, interrupt_bytes=interrupt,
        interrupt_path=[_display(k) for k in interrupt_path],
        notes=[graph.notes[k] for k in unknown if k in graph.notes])


def format_estimate(estimate: StackEstimate) -> str:
    """One line for the budget report."""
    text = (f"worst-case stack {estimate.bytes:,} B = {estimate.path_bytes:,} "
            f"({' > '.join(estimate.path)})")
    if estimate.startup_bytes:
        text += f" + startup {estimate.startup_bytes:,}"
    if estimate.interrupt_bytes:
        text += f" + interrupt {estimate.interrupt_bytes:,}"
    if estimate.unknown:
        text += f"; assumed: {', '.join(estimate.unknown)}"
    return text
