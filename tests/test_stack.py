"""Static worst-case stack (mcu_compile.target.stack) against the stack paint measured in QEMU."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mcu_compile
from mcu_compile.sim.qemu import run_qemu
from mcu_compile.target.stack import (EXCEPTION_FRAME_BYTES, StackRecursionError, format_estimate,
                               worst_case_stack)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

needs_toolchain = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc and qemu-system-arm are needed")


def _digits(out: Path, board: str):
    import torch
    from models import DigitsCNN, seeded
    torch.manual_seed(0)
    x = torch.rand(1, 1, 8, 8)
    return mcu_compile.compile(seeded(DigitsCNN()).eval(), (x,), board=board, out_dir=out)


def _ad01(out: Path, board: str):
    path = Path(__file__).resolve().parents[2] / "shared" / "models" / "ad01_int8.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return mcu_compile.compile(path, board=board, out_dir=out)


@needs_toolchain
@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
@pytest.mark.parametrize("model", ["digits", "ad01"])
def test_estimate_bounds_measured_stack(tmp_path, model, board):
    compiled = {"digits": _digits, "ad01": _ad01}[model](tmp_path / model, board)
    elf = compiled.build()
    measured = run_qemu(compiled.board, elf).stack_bytes
    estimate = worst_case_stack(compiled.project_dir)
    print(f"{model} on {board}: measured {measured} B; {format_estimate(estimate)}")
    assert measured > 0
    assert estimate.bytes >= measured
    assert estimate.bytes < 4 * measured + 512
    assert estimate.path[0] == "main"
    assert "model_invoke" in estimate.path   # reached through the function pointer
    assert estimate.interrupt_bytes >= EXCEPTION_FRAME_BYTES
    assert estimate.interrupt_path and estimate.interrupt_path[0].endswith("_Handler")
    assert set(estimate.unknown) <= {"memcpy", "memset"}   # newlib, from machine code


def _compile_c(tmp_path: Path, source: str) -> Path:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is needed")
    (tmp_path / "t.c").write_text(source)
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-O2", "-ffunction-sections",
                    "-fstack-usage", "-fcallgraph-info=su", "-c", "t.c", "-o", "t.o"],
                   cwd=tmp_path, check=True)
    return tmp_path


RECURSIVE = """
int even(unsigned n);
__attribute__((noinline)) int odd(unsigned n) { volatile char pad[16]; pad[0] = n; return n ? even(n - 1) : pad[0]; }
__attribute__((noinline)) int even(unsigned n) { volatile char pad[32]; pad[0] = n; return n ? odd(n - 1) : !pad[0]; }
int main(void) { return even(7); }
"""


def test_recursion_is_an_error(tmp_path):
    project = _compile_c(tmp_path, RECURSIVE)
    with pytest.raises(StackRecursionError, match=r"recursion .*(even -> odd -> even|odd -> even -> odd)"):
        worst_case_stack(project)


DYNAMIC = """
#include <string.h>
typedef void (*fn_t)(char *);
__attribute__((noinline)) void fill(char *p) { memset(p, 1, 100); }
fn_t hook = fill;
__attribute__((noinline)) int vla(unsigned n) { volatile char buf[n]; buf[0] = 1; return buf[0]; }
void SysTick_Handler(void) { }
int main(void) { char b[40]; hook(b); return vla(3) + b[1]; }
"""


def test_dynamic_indirect_and_library_calls(tmp_path):
    estimate = worst_case_stack(_compile_c(tmp_path, DYNAMIC))
    assert estimate.path[0] == "main"
    assert "vla" in estimate.unknown           # unbounded dynamic allocation: a warning
    assert "memset" in estimate.unknown        # no app.elf: the default is assumed
    assert estimate.path == ["main", "fill", "memset"]   # the indirect call reaches fill
    assert estimate.interrupt_path == ["SysTick_Handler"]
    assert estimate.bytes == estimate.path_bytes + estimate.interrupt_bytes


BOUNDED_CI = """graph: { title: "b.c"
node: { title: "main" label: "main\\nb.c:1:5\\n16 bytes (static)" }
node: { title: "b.c:grow" label: "grow\\nb.c:2:13\\n40 bytes (dynamic,bounded)" }
edge: { sourcename: "main" targetname: "b.c:grow" label: "b.c:3:5" }
node: { title: "open" label: "open\\nb.c:4:5\\n8 bytes (dynamic)" }
}
"""


def test_bounded_dynamic_frames_are_exact(tmp_path):
    (tmp_path / "b.ci").write_text(BOUNDED_CI)
    estimate = worst_case_stack(tmp_path, interrupts=False)
    assert (estimate.bytes, estimate.path, estimate.unknown) == (56, ["main", "grow"], [])
