"""Builds a rendered firmware project with make + arm-none-eabi-gcc."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .elf import HEAP_FUNCTIONS
from ..errors import BoardFitError, McuCompileError, ToolchainError

INSTALL_HINT = "run `make setup` or apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"


class BuildError(McuCompileError):
    pass


def check_toolchain() -> None:
    for tool in ("arm-none-eabi-gcc", "make"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"{tool} not found: {INSTALL_HINT}")


# Build variants beside the project's app.elf: name -> the defines that make it.
VARIANTS = {"profile": ("MCU_LAYER_HOOKS", "MCU_PROFILE"), "debug": ("MCU_LAYER_HOOKS", "MCU_DEBUG"),
            "portable": ("MCU_NN_PORTABLE",)}   # the kernels' portable C only: the reference paths


def build(project_dir: Path, jobs: int | None = None, variant: str | None = None) -> Path:
    """Runs make in project_dir; returns the path of app.elf (app.map is beside it), or
    of app-<variant>.elf for a variant of VARIANTS (built in build-<variant>/)."""
    check_toolchain()
    project_dir = Path(project_dir)
    cmd = ["make", "-C", str(project_dir), f"-j{jobs or os.cpu_count() or 1}"]
    if variant is not None:
        defines = " ".join(f"-D{d}" for d in VARIANTS[variant])
        cmd += [f"VARIANT=-{variant}", f"EXTRA_CFLAGS={defines}"]
    # the C locale: the messages _build_failure() reads are in English with ASCII quotes
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if proc.returncode != 0:
        raise _build_failure(project_dir, proc.stdout + proc.stderr)
    return project_dir / (f"app-{variant}.elf" if variant else "app.elf")


def _build_failure(project_dir: Path, log: str) -> McuCompileError:
    overflow = re.search(r"region `(\w+)' overflowed by (\d+) bytes", log)
    if overflow:
        return BoardFitError(f"the firmware does not fit: memory region {overflow[1]} overflowed "
                             f"by {overflow[2]} bytes (see {project_dir / 'app.map'}); place the "
                             f"arena or weights in a larger region or shrink the stack")
    heap = re.search(r"undefined reference to `(\w+)'", log)
    if heap and heap[1] in HEAP_FUNCTIONS:
        return BuildError(f"the firmware calls {heap[1]} but mcu-compile firmware has no heap; "
                          f"remove the dynamic allocation ({_first_error(log)})")
    return BuildError(f"firmware build failed in {project_dir}: {_first_error(log)}")


def _first_error(log: str) -> str:
    lines = log.splitlines()
    for pattern in (r"\berror\b", r"undefined reference", r"\*\*\*"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "make failed without output"
