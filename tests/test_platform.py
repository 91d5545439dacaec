"""Platform layer: boards, linker script, start-up, timer, build and QEMU run, with a
hand-written model.c so that nothing depends on the compiler pipeline."""
from pathlib import Path

import numpy as np
import pytest

from mcu_compile.target.boards import UnknownBoardError, list_boards, load_board
from mcu_compile.target.build import build
from mcu_compile.target.elf import heap_symbols, region_usage, section_sizes, symbols
from mcu_compile.errors import BoardFitError, InputError, ToolchainError
from mcu_compile.codegen.platform import render_platform
from mcu_compile.sim.outcome import FirmwareFault, FirmwareTimeout
from mcu_compile.sim.qemu import run_qemu
from firmware_stub import MODEL_H

BOARDS = ["mps3-an547", "mps2-an386"]

MODEL_C = """#include "model.h"
static int8_t arena[32] __attribute__((section(".arena.REGION"), aligned(16)));
int8_t *const model_inputs[1] = {arena};
const uint32_t model_input_sizes[1] = {8};
int8_t *const model_outputs[1] = {arena + 16};
const uint32_t model_output_sizes[1] = {8};
int model_invoke(void)
{
BODY
return 0;
}
"""

# `one` lives in .data: the start-up code must copy it from flash.
ADD_ONE = ("static volatile int8_t one = 1;\n"
           "for (int i = 0; i < 8; i++) arena[16 + i] = (int8_t)(arena[i] + one);")
VECTORS = [[np.arange(8, dtype=np.int8)],
           [np.array([-128, 127, 0, 1, 2, 3, -1, -2], dtype=np.int8)]]


def firmware(tmp_path: Path, board_name: str, body: str = ADD_ONE, vectors=VECTORS) -> tuple:
    board = load_board(board_name)
    project = tmp_path / board_name
    project.mkdir(parents=True)
    (project / "model.h").write_text(MODEL_H)
    (project / "model.c").write_text(MODEL_C.replace("REGION", board.arena_region).replace("BODY", body))
    render_platform(board, project, vectors, stack_bytes=2048, arena_sections={board.arena_region: 32})
    return board, build(project)


def loop(n: int) -> str:
    """Exactly 2 instructions per iteration."""
    return f'uint32_t n = {n}; __asm__ volatile("1: subs %0, %0, #1\\n bne 1b" : "+r"(n) :: "cc");'


@pytest.mark.parametrize("board_name", BOARDS)
def test_outputs_counts_and_no_heap(tmp_path, board_name):
    board, elf = firmware(tmp_path, board_name)
    first, second = run_qemu(board, elf), run_qemu(board, elf)
    expected = [bytes((np.asarray(v[0], dtype=np.int16) + 1).astype(np.int8).tobytes()) for v in VECTORS]
    assert first.outputs == [[e] for e in expected]
    assert first.exit_code == 0
    assert all(n > 0 for n in first.instructions) and len(first.instructions) == 2
    assert first.instructions == second.instructions
    assert 0 < first.stack_bytes < 2048
    assert heap_symbols(elf) == []
    assert ".text" in section_sizes(elf)
    assert any(s.name == "model_invoke" and s.kind == "func" for s in symbols(elf))
    usage = region_usage(elf, board)
    assert usage[board.arena_region] >= 32 + 2048
    assert usage[board.code_region] > 0


@pytest.mark.parametrize("board_name", BOARDS)
def test_instruction_count_scales(tmp_path, board_name):
    # 40M instructions: more than one SysTick wrap (2^24 ticks) on both boards.
    counts = {}
    for n in (1000, 20_000_000):
        board, elf = firmware(tmp_path / str(n), board_name, loop(n))
        counts[n] = run_qemu(board, elf).instructions[0]
    assert abs(counts[1000] - 2000) <= 4
    assert abs(counts[20_000_000] - counts[1000] - 2 * (20_000_000 - 1000)) <= 16


def test_fault_is_reported(tmp_path):
    board, elf = firmware(tmp_path, "mps3-an547", "__builtin_trap();")
    with pytest.raises(FirmwareFault, match=r"model_invoke.*undefined instruction.*MCU-FAULT"):
        run_qemu(board, elf)


def test_hang_is_reported(tmp_path):
    board, elf = firmware(tmp_path, "mps2-an386", "for (;;) {}")
    with pytest.raises(FirmwareTimeout, match="hung"):
        run_qemu(board, elf, timeout=2)


def test_unknown_board_lists_known_ones():
    with pytest.raises(UnknownBoardError, match="mps3-an547.*mps2-an386|mps2-an386.*mps3-an547"):
        load_board("nucleo-does-not-exist")
    assert isinstance(UnknownBoardError("x"), InputError)
    assert set(BOARDS) <= set(list_boards())


def test_arena_too_large_for_region(tmp_path):
    board = load_board("mps3-an547")
    with pytest.raises(BoardFitError, match="dtcm"):
        render_platform(board, tmp_path, [], stack_bytes=2048, arena_sections={"dtcm": 600 * 1024})


def test_weights_overflow_flash(tmp_path):
    board = load_board("mps3-an547")
    body = "static const int8_t w[600000] = {1}; arena[16] = w[arena[0]];"
    with pytest.raises(BoardFitError, match="ITCM overflowed"):
        firmware(tmp_path, board.name, body)


def test_missing_toolchain(tmp_path, monkeypatch):
    board = load_board("mps2-an386")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match="arm-none-eabi-gcc not found.*apt-get install"):
        build(tmp_path)
    with pytest.raises(ToolchainError, match="qemu-system-arm not found"):
        run_qemu(board, tmp_path / "app.elf")
