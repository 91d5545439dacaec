"""Renders the board-specific half of a firmware project: start-up, console, timer,
test harness, linker script and Makefile, plus a copy of the kernels.

The model half (model.c/model.h) comes from codegen/model.py.
"""
from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import jinja2
import numpy as np

from ..target.boards import Board
from ..errors import BoardFitError, InputError, McuCompileError
from ..resources import resource_dir
from .model import project_model_name

STACK_ALIGN = 8
# What a template may print: numbers and board-file names and flags (target/boards.py
# validates them), nothing that ends a comment, a line or a Makefile/linker-script token.
TEMPLATE_TEXT = re.compile(r"[A-Za-z0-9_.,=+ -]*")


@functools.cache
def template_env() -> jinja2.Environment:
    """The one jinja2 environment for every template in firmware_templates/."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("firmware_templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_checked,
    )


def _checked(value):
    """Every value a template prints, refused if it is text that could become code."""
    if isinstance(value, str) and not TEMPLATE_TEXT.fullmatch(value):
        raise McuCompileError(f"refusing to write {value!r} into a firmware file: only letters, "
                              f"digits and _.,=+- are allowed there")
    return value


def render_template(name: str, path: Path, **context) -> None:
    """Writes the file only when its text changes, so make rebuilds only what changed."""
    text = template_env().get_template(name).render(**context)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def render_platform(board: Board, project_dir: Path, test_vectors: list[list[np.ndarray]],
                    stack_bytes: int = 4096, arena_sections: dict[str, int] | None = None,
                    weights_sections: dict[str, int] | None = None) -> None:
    """Writes main.c, test_vectors.c, board.ld, Makefile, platform/ and kernels/ into
    project_dir. arena_sections maps a board region to the bytes of its `.arena.<region>`;
    weights_sections a region other than the code region to the bytes of the weights that
    live there (`.weights.<region>`, loaded in place)."""
    project_dir = Path(project_dir)
    arenas = dict(arena_sections or {})
    weights = dict(weights_sections or {})
    _check_fit(board, stack_bytes, arenas, weights)
    vectors = [_vector_bytes(v) for v in test_vectors]
    if len({len(v) for v in vectors}) > 1:
        raise InputError("test vectors differ in their number of inputs; give every vector "
                         "one array per model input")
    project_dir.mkdir(parents=True, exist_ok=True)
    _copy_static(project_dir)
    ctx = dict(board=board, vectors=vectors, stack_bytes=stack_bytes, arenas=arenas, weights=weights,
               code=board.code_region, data=board.data_region, **_sources())
    render_template("board_config.h.j2", project_dir / "board_config.h", **ctx)
    render_template("main.c.j2", project_dir / "main.c", **ctx)
    render_template("test_vectors.c.j2", project_dir / "test_vectors.c", **ctx)
    render_template("board.ld.j2", project_dir / "board.ld", **ctx)
    render_template("Makefile.j2", project_dir / "Makefile", **ctx)
    render_template("CMakeLists.txt.j2", project_dir / "CMakeLists.txt", model=project_model_name(project_dir), **ctx)
    render_template("arm-none-eabi.cmake.j2", project_dir / "arm-none-eabi.cmake", **ctx)


def _vector_bytes(vector: list[np.ndarray]) -> list[list[int]]:
    """Each input as its raw bytes, read as int8 (the firmware copies bytes)."""
    return [np.ascontiguousarray(a).view(np.int8).ravel().tolist() for a in vector]


def _check_fit(board: Board, stack_bytes: int, arenas: dict[str, int], weights: dict[str, int]) -> None:
    if stack_bytes <= 0 or stack_bytes % STACK_ALIGN:
        raise InputError(f"stack size {stack_bytes} must be a positive multiple of {STACK_ALIGN}")
    for name, size in weights.items():
        region = board.region(name)
        if region.kind == "ram" and not board.simulator:
            raise BoardFitError(f"weights placed in {name}, a RAM region of the real board {board.name}: "
                                f"nothing loads it before the firmware starts; use a flash region")
        if region.kind == "flash" and size > region.length:
            raise BoardFitError(f"{name} of {board.name} holds {region.length} B but the weights need {size} B")
    need = dict(arenas)
    need[board.data_region] = need.get(board.data_region, 0) + stack_bytes
    for name, size in weights.items():
        if board.region(name).kind == "ram":
            need[name] = need.get(name, 0) + size
    for name, size in need.items():
        region = board.region(name)
        if region.kind != "ram":
            raise BoardFitError(f"arena placed in {name}, a read-only ({region.kind}) region of "
                                f"{board.name}; use a ram region")
        if size > region.length:
            free = ", ".join(f"{r.name} {r.length} B" for r in board.regions if r.kind == "ram")
            parts = ["arena"] * (name in arenas) + ["stack"] * (name == board.data_region) + ["weights"] * (name in weights)
            raise BoardFitError(f"{name} of {board.name} holds {region.length} B but the {' and '.join(parts)}"
                                f" need {size} B; move the arena to a larger region ({free})")


def _sources() -> dict[str, list[str]]:
    """The C files of a project's platform/ and kernels/src/, listed by name in its
    Makefile: what mcu-compile copies, never a stray .c file someone put in the folder."""
    return {"platform_sources": sorted(p.name for p in (resource_dir("firmware_templates") / "platform").glob("*.c")),
            "kernel_sources": sorted(p.name for p in (resource_dir("cmsis_kernels") / "src").glob("*.c"))}


def _copy_static(project_dir: Path) -> None:
    shutil.copytree(resource_dir("firmware_templates") / "platform", project_dir / "platform",
                    dirs_exist_ok=True)
    kernels = resource_dir("cmsis_kernels")
    for part in ("include", "src"):
        shutil.copytree(kernels / part, project_dir / "kernels" / part, dirs_exist_ok=True)
