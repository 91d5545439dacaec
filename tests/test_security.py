"""Hostile input: names from a .tflite never become code, board files are checked before
they reach C, a linker script or a Makefile, builds are byte-identical in any folder,
and every CLI error is one line."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import flatbuffers
import pytest
from click.testing import CliRunner
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

import mcu_compile
from mcu_compile.cli import main
from mcu_compile.codegen.c_text import comment_text, identifier
from mcu_compile.codegen.platform import render_platform
from mcu_compile.errors import BoardFileError, McuCompileError
from mcu_compile.ir.tflite_io import load_tflite
from mcu_compile.report.html import write_html
from mcu_compile.target.boards import load_board
from mcu_compile.target.elf import symbols

HOSTILE = [
    "a */ int smuggled = 1; /*",          # ends the comment, defines a symbol
    "act2 */ + 16 /*",                    # would move an arena pointer
    '#include "/etc/passwd"',
    "x\nint y;",                          # a newline ends a // comment or a #define
    "<script>alert(1)</script>",
    "$\\frac{1}{2}$", "$x_{$",            # matplotlib mathtext; the second does not parse
    "ctl\x00\x07\x1b[31m\x7f\r",
    "tail\\", "??/", "??=x", "\u00e9\u540d??",  # line splice, trigraphs, non-ASCII
    "dup/x", "dup.x", "dup x",            # the same after sanitizing
    "int", "memcpy", "model_inputs", "arena", "op0_multiplier", "NULL", "main", "T_x", "c_x",
]
SMUGGLED = ("smuggled", "passwd", "script", "frac")  # hostile words: in code only inside a derived name
MODEL_C_INCLUDES = {'<string.h>', '"model.h"', '"mcu_nnfunctions.h"', '"mcu_npu.h"', '"mcu_layer_hooks.h"'}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def renamed(model: Path, path: Path) -> list[str]:
    """Writes `model` to path with every tensor renamed to a hostile name, activations
    first, then the constants (which get the C keywords and symbol names, and the first
    names again, numbered); returns the names."""
    tfl = fb.ModelT.InitFromPackedBuf(model.read_bytes(), 0)
    tensors = sorted(tfl.subgraphs[0].tensors, key=lambda t: tfl.buffers[t.buffer].data is not None)
    names = [HOSTILE[i % len(HOSTILE)] + (f" {i}" if i >= len(HOSTILE) else "") for i in range(len(tensors))]
    for tensor, name in zip(tensors, names):
        tensor.name = name.encode()
    builder = flatbuffers.Builder(0)
    builder.Finish(tfl.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return names


def without_comments(c_source: str) -> str:
    """C text with every /* ... */ comment removed, as the compiler removes them: a comment
    ends at the first */ (generated C has no // comments and no /* in a string)."""
    return re.sub(r"/\*.*?\*/", " ", c_source, flags=re.S)


def loaded_image(elf: Path) -> dict[str, str]:
    """A digest of every section the firmware loads into target memory."""
    with open(elf, "rb") as f:
        return {s.name: hashlib.sha256(s.data()).hexdigest() for s in ELFFile(f).iter_sections()
                if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_type"] != "SHT_NOBITS"}


def assert_nothing_injected(project: Path, elf: Path) -> None:
    for path in [*project.glob("*.c"), *project.glob("*.h")]:
        text = path.read_text()
        assert re.fullmatch(r"[\x20-\x7e\n]*", text), f"{path.name}: a control or non-ASCII character"
        code = without_comments(text)
        for word in SMUGGLED:
            # in code a hostile word is only ever part of a name we derived (T_... or c_...)
            for ident in re.findall(rf"[A-Za-z0-9_]*{re.escape(word)}[A-Za-z0-9_]*", code):
                assert ident.startswith(("T_", "c_")), f"{path.name}: {ident!r} outside a comment"
        for raw in (name for name in HOSTILE if re.search(r"\W", name)):
            assert raw not in code, f"{path.name}: {raw!r} outside a comment"
        if path.name == "model.c":
            assert set(re.findall(r"#\s*include\s*(\S+)", code)) <= MODEL_C_INCLUDES
    names = {s.name for s in symbols(elf)}
    assert not names & {"smuggled", "y"}
    assert all(n.startswith("c_") for n in names if any(word in n for word in SMUGGLED))


@pytest.mark.filterwarnings("ignore:Glyph .* missing:UserWarning")  # control characters in figure labels
def test_hostile_tensor_names_build_run_bit_exact_and_inject_nothing(shared_dir, tmp_path):
    original = shared_dir / "models" / "kws_ref_model.tflite"
    hostile = tmp_path / "hostile.tflite"
    names = renamed(original, hostile)
    assert len(names) > len(HOSTILE)  # every hostile name is on a tensor, weights and activations

    plain = mcu_compile.compile(original, board="mps3-an547", out_dir=tmp_path / "plain")
    compiled = mcu_compile.compile(hostile, board="mps3-an547", out_dir=tmp_path / "hostile")
    run, plain_run = compiled.run(), plain.run()
    assert run.bit_exact
    # names change no byte the firmware loads and no instruction it runs
    assert run.instructions == plain_run.instructions
    assert loaded_image(run.elf) == loaded_image(plain_run.elf)
    assert compiled.report["arena"]["bytes"] == plain.report["arena"]["bytes"]
    assert_nothing_injected(compiled.project_dir, run.elf)

    # the generated C still names each tensor, in a comment made safe
    model_c = (compiled.project_dir / "model.c").read_text()
    assert "a * / int smuggled = 1; / *" in model_c and '/* #include "/etc/passwd"' in model_c
    assert re.search(r"static const int(8|32)_t c_(int|memcpy|model_inputs|NULL|main)\w*\[", model_c)
    # the original names live on in the Edge program and the report
    assert set(load_tflite(compiled.program_path).tensors) == set(names)
    assert {b["name"] for b in compiled.report["plan"]["buffers"]} & set(names)

    page = write_html(compiled.report, tmp_path / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_hostile_tensor_names_in_an_npu_build(shared_dir, tmp_path):
    hostile = tmp_path / "hostile.tflite"
    renamed(shared_dir / "models" / "kws_ref_model.tflite", hostile)
    compiled = mcu_compile.compile(hostile, board="corstone-300", out_dir=tmp_path / "npu")
    assert compiled.report["npu"]["ops_on_npu"] > 0
    assert_nothing_injected(compiled.project_dir, compiled.build())


@pytest.mark.parametrize("text", HOSTILE + ["*/*/", "/*/", "**//", "?" * 7 + "/", "a\\\nb", "\u2028\ufeff"])
def test_comment_text_cannot_end_a_comment_or_a_line(text):
    safe = comment_text(text)
    assert re.fullmatch(r"[\x20-\x7e]*", safe)
    assert "*/" not in safe and "/*" not in safe and "??" not in safe and "\\" not in safe


def test_identifiers_are_prefixed_unique_c_names():
    taken: set[str] = set()
    idents = [identifier(name, "c_", taken) for name in HOSTILE + ["x" * 200, "x" * 200, ""]]
    assert len(set(idents)) == len(idents) == len(taken)
    assert all(re.fullmatch(r"c_[A-Za-z0-9_]*", i) and len(i) <= 60 for i in idents)


# ---------------------------------------------------------------- board files

def board_file(tmp_path: Path, old: str, new: str) -> Path:
    text = (Path(mcu_compile.__file__).resolve().parents[1] / "boards" / "mps3-an547.toml").read_text()
    assert old in text
    path = tmp_path / "custom.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, field", [
    ('name = "mps3-an547"', 'name = "x\\n$(shell touch /tmp/pwned)"', "name"),
    ('name = "mps3-an547"', 'name = "Board */ int x; /*"', "name"),
    ('"-mthumb"', '"-mthumb $(shell id)"', "cpu.cflags"),
    ('"-mthumb"', '"-fplugin=evil.so"', "cpu.cflags"),
    ("length = 0x00080000   # 512 KiB\nkind = \"ram\"", 'length = "512 KiB"\nkind = "ram"', "memory.regions[1].length"),
    ("speed = 1", "speed = true", "memory.regions[2].speed"),
    ("origin = 0x21000000", "origin = 0x2007F000", "memory.regions"),  # sram overlaps dtcm
    ('name = "sram"', 'name = "SRAM) } /DISCARD/ : {"', "memory.regions[2].name"),
    ('arena = "dtcm"', 'arena = "flash"', "memory.arena"),
    ("clock_hz = 32000000", "clock_hz = 3.2e7", "timer.clock_hz"),
    ('machine = "mps3-an547"', 'machine = "mps3-an547 -kernel /etc/passwd"', "simulator.machine"),
    ('description = ', 'lenght = 4\ndescription = ', "lenght"),
])
def test_board_file_is_checked_against_the_schema(tmp_path, old, new, field):
    path = board_file(tmp_path, old, new)
    with pytest.raises(BoardFileError) as err:
        load_board(str(path))
    message = str(err.value)
    assert "\n" not in message and str(path) in message and f": {field} " in message


def test_a_bad_board_file_is_one_error_line_before_anything_is_written(shared_dir, tmp_path):
    path = board_file(tmp_path, 'name = "mps3-an547"', 'name = "x\\n$(shell touch pwned)"')
    result = invoke("compile", shared_dir / "models" / "ad01_int8.tflite", "--board", path, "--out", tmp_path / "fw")
    assert result.exit_code == 2
    assert result.output.startswith("error: board file ") and result.output.count("\n") == 1
    assert not (tmp_path / "fw").exists()


def test_templates_refuse_text_that_could_become_code(tmp_path):
    board = dataclasses.replace(load_board("mps3-an547"), name="x\n$(shell id)")
    with pytest.raises(McuCompileError, match="refusing to write"):
        render_platform(board, tmp_path, [])


# ---------------------------------------------------------------- reproducible builds

def test_same_model_gives_a_byte_identical_elf_in_any_folder(shared_dir, tmp_path):
    model = shared_dir / "models" / "ad01_int8.tflite"
    first = mcu_compile.compile(model, out_dir=tmp_path / "a" / "fw").build()
    # a deeper folder whose name needs quoting in a shell
    second = mcu_compile.compile(model, out_dir=tmp_path / "b c'$(echo d)" / "deeper" / "fw").build()
    assert first.read_bytes() == second.read_bytes()


def test_a_build_killed_mid_compile_leaves_no_object_a_later_build_trusts(shared_dir, tmp_path):
    """A compiler that writes half an object and then SIGKILLs the whole build, make
    included (so make cannot clean up): the next build still compiles that file."""
    compiled = mcu_compile.compile(shared_dir / "models" / "ad01_int8.tflite", out_dir=tmp_path / "fw")
    killer = tmp_path / "killer-gcc"
    killer.write_text(f"#!{sys.executable}\nimport os, signal, sys\n"
                      "open(sys.argv[sys.argv.index('-o') + 1], 'w').write('half an object')\n"
                      "os.killpg(os.getpgrp(), signal.SIGKILL)\n")
    killer.chmod(killer.stat().st_mode | stat.S_IXUSR)
    proc = subprocess.run(["make", "-C", str(compiled.project_dir), "-j1", f"CC={killer}"],
                          capture_output=True, start_new_session=True)
    assert proc.returncode == -signal.SIGKILL
    assert not [p for p in (compiled.project_dir / "build").rglob("*.o") if p.read_bytes() == b"half an object"]
    assert compiled.run().bit_exact


# ---------------------------------------------------------------- the command line

def test_an_unexpected_exception_is_one_internal_error_line_with_a_log(monkeypatch, tmp_path):
    def broken():
        raise ZeroDivisionError("division by zero\nsecond line")
    monkeypatch.setattr("mcu_compile.target.boards.list_boards", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = invoke("boards")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    match = re.fullmatch(r"internal error: ZeroDivisionError: division by zero second line "
                         r"\(details in (.+)\)\n", result.output)
    assert match, result.output
    log = Path(match[1])
    assert log.parent == tmp_path and "Traceback" in log.read_text() and "in broken" in log.read_text()


def test_onnx_is_refused_in_one_line(tmp_path):
    model = tmp_path / "model.onnx"
    result = invoke("compile", model, "--out", tmp_path / "fw")
    assert result.exit_code == 2
    assert result.output == f"error: {model}: ONNX is not supported; export to .pt2 (torch.export.save) or an int8 .tflite\n"


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and version("mcu-compile") in result.output


def test_cli_errors_keep_their_exit_codes_and_stay_one_line(tmp_path):
    assert invoke("run", tmp_path / "missing").exit_code == 2  # click's own usage error
    result = invoke("compile", tmp_path / "none.tflite", "--out", tmp_path / "fw")
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert os.listdir(tmp_path) == []
