"""The board catalog: every board file loads, and on every QEMU board the MLPerf Tiny
reference models compile and run bit-exactly. The full matrix is slow (run it with
`-m slow`); the default suite keeps the two small models on the three M-profile boards that
only this file covers (mps2-an500: Cortex-M7, mps2-an505: Cortex-M33 in the secure state,
netduinoplus2: STM32F405 Cortex-M4F with code in flash at 0x08000000 and 128 KiB of SRAM)."""
from __future__ import annotations

import pytest

import mcu_compile
from mcu_compile.reference.oracle import tflm_outputs
from mcu_compile.target.boards import list_boards, load_board
from mcu_compile.target.elf import symbols

QEMU_BOARDS = ["mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547", "netduinoplus2"]
MLPERF = ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"]
FAST = {("mps2-an500", "ad01_int8"), ("mps2-an500", "kws_ref_model"),
        ("mps2-an505", "ad01_int8"), ("mps2-an505", "kws_ref_model"),
        ("netduinoplus2", "ad01_int8"), ("netduinoplus2", "kws_ref_model")}


@pytest.mark.parametrize("name", list_boards())
def test_every_board_file_loads(name):
    board = load_board(name)
    assert board.name == name
    assert board.region(board.code_region).kind == "flash"
    assert board.region(board.data_region).kind == "ram"
    assert board.cpu.cflags and board.timer.ns_per_tick > 0


def test_new_qemu_boards_are_in_the_catalog():
    assert set(QEMU_BOARDS) <= set(list_boards())
    for name in QEMU_BOARDS:
        board = load_board(name)
        assert board.simulator == {"name": "qemu", "machine": name}


def test_an505_uses_the_secure_aliases():
    """QEMU boots the AN505's Cortex-M33 secure, with its vector table at 0x10000000."""
    board = load_board("mps2-an505")
    assert board.region(board.code_region).origin == 0x10000000
    assert board.region(board.data_region).origin == 0x38000000
    assert all(r.origin & 0x10000000 for r in board.regions)


def test_netduinoplus2_uses_the_stm32f405_map():
    """Code in the 1 MiB flash at 0x08000000 (QEMU aliases it at 0, where the core reads its
    vectors); data and arenas in the chip's 128 KiB of SRAM. QEMU 7.2 maps 192 KiB at
    0x20000000 and no CCM at 0x10000000, so the board uses neither the extra 64 KiB nor CCM."""
    board = load_board("netduinoplus2")
    code, data = board.region(board.code_region), board.region(board.data_region)
    assert (code.origin, code.length) == (0x08000000, 1 << 20)
    assert (data.origin, data.length) == (0x20000000, 128 << 10)
    assert board.region_at(0x10000000) is None
    assert board.timer.clock_hz == 168_000_000


def _matrix():
    for board in QEMU_BOARDS:
        for model in MLPERF:
            marks = () if (board, model) in FAST else (pytest.mark.slow,)
            yield pytest.param(board, model, marks=marks, id=f"{board}-{model}")


@pytest.mark.parametrize("board_name, model", list(_matrix()))
def test_mlperf_model_runs_bit_exact_on_each_qemu_board(board_name, model, shared_dir, tmp_path):
    path = shared_dir / "models" / f"{model}.tflite"
    compiled = mcu_compile.compile(path, board=board_name, out_dir=tmp_path / model)
    run = compiled.run()
    assert run.bit_exact
    assert all(n > 0 for n in run.instructions)
    # the same bytes as the TFLite Micro interpreter on the original file
    assert [o.tobytes() for o in tflm_outputs(path, run.inputs[0])] == [o.tobytes() for o in run.outputs[0]]
    # the image lies where the board file says: vectors at the start of the code region,
    # the arena in a RAM region of the board
    board = load_board(board_name)
    syms = {s.name: s for s in symbols(run.elf)}
    assert syms["vector_table"].address == board.region(board.code_region).origin
    arena = board.region_at(syms["arena"].address)
    assert arena is not None and arena.kind == "ram"
