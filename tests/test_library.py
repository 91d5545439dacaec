"""The model as a library for the user's own firmware (codegen/model.py, codegen/library.py):
prefixed names, interface constants, a caller-supplied arena, status codes, CMake, export.

Two small PyTorch models compiled as `a` and `b` are exported and linked into one firmware
whose main.c is this file's own (not the project's harness): `a` on its built-in arena
(moved to .bss), `b` without one, on the caller's arena. Its outputs must equal the host
reference's byte for byte."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

import mcu_compile
from mcu_compile.codegen.library import export_library
from mcu_compile.codegen.model import check_model_name
from mcu_compile.errors import InputError
from mcu_compile.ops.quantize import dequantize_ints, quantize_floats
from mcu_compile.sim.qemu import run_qemu
from mcu_compile.target.elf import symbols

BOARD = "mps3-an547"
needs_toolchain = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                     reason="arm-none-eabi-gcc not installed")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections"]


def _models():
    import torch
    from torch import nn

    class A(nn.Module):  # conv (with im2col scratch) -> pool -> linear
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8 * 4 * 4, 5)

        def forward(self, x):
            return self.fc(torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))

    class B(nn.Module):  # two inputs, softmax
        def __init__(self):
            super().__init__()
            self.left, self.right = nn.Linear(12, 6), nn.Linear(4, 6)

        def forward(self, x, y):
            return torch.softmax(self.left(x) + torch.relu(self.right(y)), dim=-1)

    torch.manual_seed(0)
    a_inputs = [(torch.randn(1, 3, 8, 8),) for _ in range(8)]
    b_inputs = [(torch.randn(1, 12), torch.randn(1, 4)) for _ in range(8)]
    return (A().eval(), a_inputs), (B().eval(), b_inputs)


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """The two compiled projects and their exported libraries."""
    root = tmp_path_factory.mktemp("library")
    out = {}
    for name, (model, inputs) in zip("ab", _models()):
        compiled = mcu_compile.compile(model, inputs[0], calibration=inputs, board=BOARD, out_dir=root / f"fw_{name}",
                                       stack_bytes=8192, name=name)
        out[name] = (compiled, export_library(compiled.project_dir, root / f"lib_{name}"))
    return out


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["", "Kws", "1kws", "kws-net", "k" * 33, "int", "static", "mcu_kws", "t", "c",
                                  "op3", "kws\n", None])
def test_bad_names_are_refused_in_one_line(name, tmp_path):
    with pytest.raises(InputError) as error:
        check_model_name(name)
    assert "\n" not in str(error.value) and "choose a name like 'kws'" in str(error.value)
    with pytest.raises(InputError):  # before any work, nothing written
        mcu_compile.compile(tmp_path / "missing.tflite", board=BOARD, out_dir=tmp_path / "fw", name=name)
    assert not (tmp_path / "fw").exists()


@pytest.mark.parametrize("name", ["model", "kws", "a", "net_2", "x" * 32])
def test_good_names(name):
    assert check_model_name(name) == name


@needs_toolchain
def test_prefix_reaches_every_public_name(libs, tmp_path):
    for name, (compiled, lib) in libs.items():
        upper = name.upper()
        header = (lib / f"{name}.h").read_text()
        assert set(re.findall(r"#define (\w+)", header)) and all(
            m.startswith(f"{upper}_") for m in re.findall(r"#define (\w+)", header))
        declared = re.findall(r"^(?:extern )?(?:static inline )?(?:const )?\w+ \*?(?:const )?(\w+)[(\[]", header, re.M)
        assert {f"{name}_invoke", f"{name}_invoke_with", f"{name}_inputs", f"{name}_status_text",
                f"{name}_quantize"} <= set(declared)
        assert all(d.startswith(f"{name}_") for d in declared), declared
        assert 'extern "C"' in header and f"{upper}_INPUT0_ZERO_POINT" in header and f"{upper}_ARENA_BYTES" in header
        # every global symbol model.c defines carries the prefix; weights and arena stay local
        obj = tmp_path / f"{name}.o"
        subprocess.run(["arm-none-eabi-gcc", *compiled.board.cpu.cflags, *CFLAGS, f"-I{lib}", f"-I{lib / 'include'}",
                        "-c", str(lib / f"{name}.c"), "-o", str(obj)], check=True)
        defined, local = _symbol_bindings(obj)
        assert {f"{name}_invoke", f"{name}_invoke_with", f"{name}_error_op", f"{name}_last_status",
                f"{name}_outputs"} <= defined
        assert all(s.startswith(f"{name}_") for s in defined), defined
        assert "arena" in local and any(s.startswith("c_") for s in local)


def _symbol_bindings(obj: Path) -> tuple[set[str], set[str]]:
    """(defined global symbols, local object and function symbols) of an object file."""
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        syms = list(elf.get_section_by_name(".symtab").iter_symbols())
        defined = {s.name for s in syms if s["st_info"]["bind"] == "STB_GLOBAL" and s["st_shndx"] != "SHN_UNDEF"}
        local = {s.name for s in syms if s["st_info"]["bind"] == "STB_LOCAL"
                 and s["st_info"]["type"] in ("STT_OBJECT", "STT_FUNC")}
    return defined, local


# ---------------------------------------------------------------- two models, one firmware

MAIN_C = r"""/* The test's own firmware: models a and b side by side. */
#include <stdint.h>
#include <string.h>
#include "a.h"
#include "b.h"
#include "mcu_io.h"
#include "inputs.h"

static int8_t b_arena[B_ARENA_BYTES] __attribute__((aligned(B_ARENA_ALIGN)));

static void put_bytes(uint32_t vector, uint32_t index, const void *data, uint32_t n)
{
    mcu_puts("MCU-OUT ");
    mcu_put_u64(vector);
    mcu_puts(" ");
    mcu_put_u64(index);
    mcu_puts(" ");
    mcu_put_hex_bytes(data, n);
    mcu_puts("\n");
}

static void put_status(const char *what, int status)
{
    mcu_puts("STATUS ");
    mcu_puts(what);
    mcu_puts(" ");
    mcu_put_u64((uint32_t)status);
    mcu_puts("\n");
}

int main(void)
{
    /* a: its input quantized here from floats, on its built-in arena */
    for (uint32_t i = 0; i < A_INPUT0_BYTES; i++)
        a_inputs[0][i] = a_quantize(a_float_input[i], A_INPUT0_SCALE, A_INPUT0_ZERO_POINT);
    put_bytes(0, 0, a_inputs[0], A_INPUT0_BYTES); /* before a runs: the arena is reused */
    put_status("a", a_invoke());
    /* b: on this file's arena, its inputs at their offsets */
    memcpy(b_arena + B_INPUT0_OFFSET, b_input0, B_INPUT0_BYTES);
    memcpy(b_arena + b_input_offsets[1], b_input1, b_input_sizes[1]);
    put_status("b", b_invoke_with(b_arena));
    put_status("b last", b_last_status());
    put_bytes(1, 0, b_arena + B_OUTPUT0_OFFSET, B_OUTPUT0_BYTES);
    /* a's outputs after b ran: two arenas, no byte shared */
    for (uint32_t o = 0; o < A_NUM_OUTPUTS; o++)
        put_bytes(2, o, a_outputs[o], a_output_sizes[o]);
    float y[A_OUTPUT0_BYTES];
    for (uint32_t i = 0; i < A_OUTPUT0_BYTES; i++)
        y[i] = a_dequantize(a_outputs[0][i], A_OUTPUT0_SCALE, A_OUTPUT0_ZERO_POINT);
    put_bytes(3, 0, y, sizeof y);
    /* refused arenas */
    put_status("misaligned", b_invoke_with(b_arena + 4));
    put_status("null", b_invoke_with(NULL));
    put_status("b last", b_last_status());
    mcu_puts("TEXT ");
    mcu_puts(b_status_text(B_ERROR_ARENA));
    mcu_puts("\nMCU-STACK ");
    mcu_put_u64(mcu_stack_used());
    mcu_puts("\nMCU-DONE\n");
    return 0;
}
"""


def _c_array(ctype: str, name: str, values) -> str:
    return f"static const {ctype} {name}[{len(values)}] = {{{', '.join(values)}}};\n"


@needs_toolchain
@needs_qemu
def test_two_models_in_one_firmware_of_our_own(libs, tmp_path):
    (a, lib_a), (b, lib_b) = libs["a"], libs["b"]
    # a's example input as floats (NHWC): the firmware quantizes it with a_quantize
    x = _models()[0][1][0][0].numpy().transpose(0, 2, 3, 1).ravel()
    a_in, = a.vectors()[0]
    b_in = b.vectors()[0]
    assert np.array_equal(quantize_floats(x, *_quant(a.program, a.program.inputs[0])), a_in.ravel())
    (tmp_path / "inputs.h").write_text(
        _c_array("float", "a_float_input", [f"{v!r}f" for v in x.astype(np.float32).tolist()])
        + "".join(_c_array("int8_t", f"b_input{i}", [str(v) for v in t.ravel().tolist()]) for i, t in enumerate(b_in)))
    (tmp_path / "main.c").write_text(MAIN_C)
    elf = _link(tmp_path, a.project_dir, [tmp_path / "main.c", lib_a / "a.c", lib_b / "b.c"],
                kernels=lib_a / "src", includes=[lib_a, lib_b, lib_a / "include"],
                defines=["A_ARENA_IN_BSS", "B_NO_STATIC_ARENA"], cflags=a.board.cpu.cflags)
    run = run_qemu(a.board, elf)

    statuses = re.findall(r"^STATUS (.+) (\d+)$", run.stdout, re.M)
    assert statuses == [("a", "0"), ("b", "0"), ("b last", "0"), ("misaligned", "3"), ("null", "3"), ("b last", "3")]
    assert "TEXT b: the arena given to b_invoke_with() is NULL or not 16-byte aligned" in run.stdout
    quantized, b_out, a_out, a_real = run.outputs
    assert quantized[0] == a_in.tobytes()                            # a_quantize == the host's QUANTIZE
    assert b_out == [t.tobytes() for t in b.expected()[0]]            # bit-exact with the host reference
    assert a_out == [t.tobytes() for t in a.expected()[0]]
    want = dequantize_ints(a.expected()[0][0].ravel(), *_quant(a.program, a.program.outputs[0]))
    assert a_real[0] == want.astype("<f4").tobytes()                  # a_dequantize == TFLite's DEQUANTIZE
    names = {s.name for s in symbols(elf)}
    assert {"a_invoke", "a_inputs", "b_invoke_with", "b_status_text"} <= names
    assert "b_invoke" not in names and "b_inputs" not in names       # b has no built-in arena
    bss = [s for s in symbols(elf) if s.name == "arena"]
    assert [s.section for s in bss] == [".bss"] and bss[0].size == a.report["arena"]["bytes"]


def _quant(program, tensor: str) -> tuple[float, int]:
    q = program.tensor(tensor).quant
    return float(q.scale[0]), int(q.zero_point[0])


def _link(work: Path, project: Path, sources: list[Path], kernels: Path, includes: list[Path], defines: list[str],
          cflags) -> Path:
    """An ELF from sources, the kernels and the project's start-up, console and linker script, with
    arm-none-eabi-gcc directly."""
    platform = sorted((project / "platform").glob("*.c"))
    flags = [*cflags, *CFLAGS, *(f"-D{d}" for d in defines), *(f"-I{i}" for i in [work, *includes, project,
                                                                                    project / "platform"])]
    objects = []
    for source in [*sources, *sorted(kernels.glob("*.c")), *platform]:
        obj = work / "obj" / f"{source.parent.name}_{source.stem}.o"
        obj.parent.mkdir(exist_ok=True)
        werror = flags if source in sources else [f for f in flags if f not in ("-Werror", "-Wextra")]
        objects.append(subprocess.Popen(["arm-none-eabi-gcc", *werror, "-c", str(source), "-o", str(obj)]))
    assert all(p.wait() == 0 for p in objects)
    elf = work / "two_models.elf"
    subprocess.run(["arm-none-eabi-gcc", *cflags, "-nostartfiles", "--specs=nano.specs",
                    "-T", str(project / "board.ld"), "-Wl,--gc-sections",
                    *sorted(str(p) for p in (work / "obj").glob("*.o")), "-lc", "-lgcc", "-o", str(elf)], check=True)
    return elf


# ---------------------------------------------------------------- statuses

def test_kernel_argument_error_reaches_the_caller(libs, tmp_path):
    """A kernel refusing its arguments (here: a convolution given no scratch buffer) ends the
    inference with <NAME>_ERROR_KERNEL and names the op; host gcc, the portable kernels."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    _, lib = libs["a"]
    source = (lib / "a.c").read_text()
    conv = re.search(r"const mcu_nn_context ctx = \{(SCRATCH_op(\d+)), \d+\};\n(?:.*\n)*?\s*CHECK\(\2, mcu_convolve_s8",
                     source)
    assert conv, "model a has a convolution with scratch"
    broken = source[:conv.start(1)] + "NULL" + source[conv.end(1):]
    (tmp_path / "a.c").write_text(broken)
    (tmp_path / "main.c").write_text(r"""#include <stdio.h>
#include "a.h"
int main(void)
{
    int status = a_invoke();
    printf("%d %d %d\n%s\n", status, a_error_op(), a_last_status(), a_status_text(status));
    return 0;
}
""")
    exe = tmp_path / "model"
    subprocess.run(["gcc", "-std=gnu11", "-O1", "-DA_ARENA_IN_BSS", f"-I{tmp_path}", f"-I{lib}", f"-I{lib / 'include'}",
                    str(tmp_path / "main.c"), str(tmp_path / "a.c"), *map(str, sorted((lib / "src").glob("*.c"))),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == f"1 {conv[2]} 1"                                   # A_ERROR_KERNEL, the op, remembered
    assert out[1].startswith("a: a kernel refused its arguments (a_error_op() is the op's index")
    assert f"CHECK({conv[2]}, mcu_convolve_s8" in source


def test_quantize_helpers_are_tflite_exact(libs, tmp_path):
    """<name>_quantize / _dequantize against the host's QUANTIZE and DEQUANTIZE (TFLite's
    arithmetic), on ties, the clamp, huge values and every int8."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    _, lib = libs["a"]
    rng = np.random.default_rng(0)
    scale, zp = np.float32(0.0372), -7
    ties = (np.arange(-300, 300) + 0.5).astype(np.float32) * scale
    x = np.concatenate([ties, rng.normal(0, 3, 2000), [0, -0.0, 1e6, -1e6, 1e-30, 4.75, -4.75]]).astype(np.float32)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    (tmp_path / "main.c").write_text(r"""#include <stdio.h>
#include "a.h"
int main(int argc, char **argv)
{
    float x;
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (!f)
        return 2;
    while (fread(&x, 4, 1, f) == 1)
        putchar((unsigned char)a_quantize(x, SCALE, ZP));
    for (int q = -128; q < 128; q++) {
        float y = a_dequantize((int8_t)q, SCALE, ZP);
        fwrite(&y, 4, 1, stdout);
    }
    return 0;
}
""")
    exe = tmp_path / "helpers"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-DSCALE={float(scale)!r}f",
                    f"-DZP={zp}", f"-I{lib}", str(tmp_path / "main.c"), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe), str(tmp_path / "x.bin")], capture_output=True, check=True).stdout
    got_q = np.frombuffer(out[:x.size], dtype=np.int8)
    np.testing.assert_array_equal(got_q, quantize_floats(x, float(scale), zp))
    got_f = np.frombuffer(out[x.size:], dtype="<f4")
    np.testing.assert_array_equal(got_f.view(np.uint32),
                                  dequantize_ints(np.arange(-128, 128), float(scale), zp).view(np.uint32))


# ---------------------------------------------------------------- CMake

@needs_toolchain
@needs_qemu
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_builds_the_project_and_the_library(libs, tmp_path):
    compiled, lib = libs["b"]
    project = compiled.project_dir
    build = tmp_path / "build-cmake"
    subprocess.run(["cmake", "-S", str(project), "-B", str(build)], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    run = run_qemu(compiled.board, build / "app.elf")   # the harness the Makefile builds, bit-exact
    assert run.outputs == [[t.tobytes() for t in want] for want in compiled.expected()]
    # the exported library alone, with the project's toolchain file: no built-in arena
    build = tmp_path / "build-lib"
    subprocess.run(["cmake", "-S", str(lib), "-B", str(build),
                    f"-DCMAKE_TOOLCHAIN_FILE={project / 'arm-none-eabi.cmake'}", "-DB_ARENA=none",
                    f"-DCMAKE_C_FLAGS={' '.join(compiled.board.cpu.cflags)}"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    archive = build / "libb.a"
    listed = subprocess.run(["arm-none-eabi-nm", "--defined-only", "-g", str(archive)], capture_output=True,
                            text=True, check=True).stdout
    defined = set(re.findall(r" [TDRB] (\w+)$", listed, re.M))
    assert {"b_invoke_with", "b_status_text", "mcu_fully_connected_s8"} <= defined and "b_invoke" not in defined


# ---------------------------------------------------------------- export

def test_export_writes_the_library_and_refuses_a_full_folder(libs, tmp_path):
    compiled, first = libs["b"]
    project = compiled.project_dir
    assert sorted(p.name for p in first.iterdir()) == ["CMakeLists.txt", "README.txt", "b.c", "b.h", "include", "src"]
    assert (first / "b.c").read_text() == (project / "model.c").read_text()
    assert (first / "b.h").read_text() == (project / "b.h").read_text()
    kernels = sorted(p.name for p in (project / "kernels" / "src").iterdir())
    assert sorted(p.name for p in (first / "src").iterdir()) == kernels
    assert (first / "include" / "mcu_nnfunctions.h").is_file() and not (first / "include" / "mcu_npu.h").exists()
    assert "add_library(b STATIC" in (first / "CMakeLists.txt").read_text()
    assert "b_invoke_with(arena)" in (first / "README.txt").read_text()
    assert '#include "b.h"' in (project / "model.h").read_text()  # the harness's names stay in the project

    out = tmp_path / "lib"
    export_library(project, out)
    (out / "mine.txt").write_text("user data")
    refusal = r"is not empty \(CMakeLists.txt, README.txt, b.c, \.\.\.\); .*force=True"
    with pytest.raises(InputError, match=refusal) as e:
        export_library(project, out)
    assert "\n" not in str(e.value) and (out / "mine.txt").is_file()
    export_library(project, out, force=True)
    assert not (out / "mine.txt").exists() and (out / "b.c").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]     # no staging folder left behind
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_library(project, empty) == empty and (empty / "b.h").is_file()
    with pytest.raises(InputError, match="would replace it"):
        export_library(project, project.parent, force=True)
    with pytest.raises(InputError, match="not an mcu-compile project"):
        export_library(tmp_path / "nothing", tmp_path / "lib2")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file"):
        export_library(project, tmp_path / "file")


def test_command_line_names_and_exports(tmp_path):
    """`compile --name kws` then `export DIR --lib OUT`, as a user types them."""
    from click.testing import CliRunner
    from mcu_compile.cli import main
    runner = CliRunner()
    made = runner.invoke(main, ["compile", "../shared/models/ad01_int8.tflite", "--name", "ad", "--out", str(tmp_path / "fw")])
    assert made.exit_code == 0, made.output
    assert "int ad_invoke(void);" in (tmp_path / "fw" / "ad.h").read_text()
    exported = runner.invoke(main, ["export", str(tmp_path / "fw"), "--lib", str(tmp_path / "lib")])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "lib" / "ad.c").is_file() and (tmp_path / "lib" / "ad.h").is_file()
    again = runner.invoke(main, ["export", str(tmp_path / "fw"), "--lib", str(tmp_path / "lib")])
    assert again.exit_code == 2 and "pass --force" in again.output
    bad = runner.invoke(main, ["compile", "../shared/models/ad01_int8.tflite", "--name", "Bad-Name", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "choose a name like 'kws'" in bad.output
