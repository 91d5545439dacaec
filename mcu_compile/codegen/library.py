"""The model of a compiled project as a library for the user's own firmware.

export_library() copies what the model needs and nothing of the project's own firmware
(no main.c, start-up, linker script or test vectors):

    <name>.c, <name>.h          model.c and the model's header from the project (a project's
                                model.h for another name only maps the harness's names: left out)
    include/, src/              the kernels (and the Ethos-U driver for a model with NPU parts)
    CMakeLists.txt, README.txt  the static library target <name>, and how to use it

Every public symbol of <name>.c carries the model's name (compile(..., name="kws")), so
libraries of several models link into one firmware. The folder is written beside its
destination and renamed into place, so an interrupted export leaves nothing half-written.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ..errors import InputError
from ..project import MANIFEST, swap_in
from ..target.boards import load_board
from .model import header_name, project_model_name
from .platform import template_env

NPU_DRIVER = ("mcu_npu.h", "mcu_npu.c")


def export_library(project_dir: str | Path, out_dir: str | Path, force: bool = False) -> Path:
    """Writes the model of project_dir (a folder compile() wrote) as a library into out_dir;
    returns out_dir. A non-empty out_dir is refused unless force (it is then replaced)."""
    project_dir, out_dir = Path(project_dir), Path(out_dir)
    manifest = _manifest(project_dir)
    _check_destination(project_dir, out_dir, force)
    name = project_model_name(project_dir)
    model_c = (project_dir / "model.c").read_text()
    npu = f'#include "{NPU_DRIVER[0]}"' in model_c
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        _write(staging, project_dir, manifest, name, model_c, npu)
        swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _manifest(project_dir: Path) -> dict:
    path = project_dir / MANIFEST
    if not path.is_file() or not (project_dir / "model.c").is_file():
        raise InputError(f"{project_dir} is not an mcu-compile project (no {MANIFEST} or model.c); "
                         f"create one with `mcu-compile compile MODEL --out {project_dir}`")
    return json.loads(path.read_text())


def _check_destination(project_dir: Path, out_dir: Path, force: bool) -> None:
    project, out = project_dir.resolve(), out_dir.resolve()
    if out == project or out in project.parents:
        raise InputError(f"{out_dir} holds the project {project_dir}: exporting there would replace it; "
                         f"choose another folder for the library")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file; choose a folder for the library")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        entries = sorted(p.name for p in out_dir.iterdir())
        raise InputError(f"{out_dir} is not empty ({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}); "
                         f"choose an empty or new folder, or pass --force (force=True) to replace it")


def _write(folder: Path, project_dir: Path, manifest: dict, name: str, model_c: str, npu: bool) -> None:
    kernels = project_dir / "kernels"
    (folder / f"{name}.c").write_text(model_c)
    shutil.copyfile(project_dir / header_name(name), folder / header_name(name))
    shutil.copytree(kernels / "include", folder / "include")
    shutil.copytree(kernels / "src", folder / "src")
    if npu:
        header, source = NPU_DRIVER
        shutil.copyfile(project_dir / "platform" / header, folder / "include" / header)
        shutil.copyfile(project_dir / "platform" / source, folder / "src" / source)
    board = load_board(manifest.get("board_file") or manifest["board"])
    arena = manifest["report"]["arena"]
    context = dict(model=name, upper=name.upper(), board=board, npu=npu, region=arena["region"],
                   arena_bytes=arena["bytes"], sources=sorted(p.name for p in (folder / "src").glob("*.c")))
    for template, target in (("library_CMakeLists.txt.j2", "CMakeLists.txt"), ("library_README.txt.j2", "README.txt")):
        (folder / target).write_text(template_env().get_template(template).render(**context))

