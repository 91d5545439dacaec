"""The board catalog: every board file loads, and on every QEMU board the MLPerf Tiny
reference models compile and run bit-exactly. The full matrix is slow (run it with
`-m slow`); the default suite keeps the two small models on the three M-profile boards that
only this file covers (mps2-an500: Cortex-M7, mps2-an505: Cortex-M33 in the secure state,
netduinoplus2: STM32F405 Cortex-M4F with code in flash at 0x08000000 and 128 KiB of SRAM).

Real boards (no simulator): the schema's refusals, one line naming the field; every example
model compiled and built for each of them, its budget report checked against that board's
memories (one small model per board by default, the full matrix with `-m slow`); and the
data-driven start-up run in QEMU: netduinoplus2's clock steps time out (QEMU models no RCC)
and leave the firmware on the reset clock instead of hanging."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import mcu_compile
from mcu_compile.codegen.platform import render_platform
from mcu_compile.errors import BoardFileError, BoardFitError
from mcu_compile.ir.tflite_io import write_tflite
from mcu_compile.reference.oracle import tflm_outputs
from mcu_compile.resources import resource_dir
from mcu_compile.sim.qemu import run_qemu
from mcu_compile.target.boards import list_boards, load_board
from mcu_compile.target.build import build
from mcu_compile.target.elf import symbols
from firmware_stub import MODEL_H

QEMU_BOARDS = ["mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547", "netduinoplus2"]
MLPERF = ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"]
FAST = {("mps2-an500", "ad01_int8"), ("mps2-an500", "kws_ref_model"),
        ("mps2-an505", "ad01_int8"), ("mps2-an505", "kws_ref_model"),
        ("netduinoplus2", "ad01_int8"), ("netduinoplus2", "kws_ref_model")}
REAL_BOARDS = ["nucleo-h743zi2", "nucleo-l4r5zi", "nucleo-u575zi-q", "stm32f4-discovery", "stm32f746g-disco"]


@pytest.mark.parametrize("name", list_boards())
def test_every_board_file_loads(name):
    board = load_board(name)
    assert board.name == name
    assert board.region(board.code_region).kind == "flash"
    assert board.region(board.data_region).kind == "ram"
    assert board.cpu.cflags and board.timer.ns_per_tick > 0
    assert board.console["kind"] in ("semihosting", "uart")
    assert board.console["kind"] == "semihosting" or board.uart
    if board.clock:
        assert board.timer.clock_hz == board.clock["hz"] > 0 and board.clock["reset_hz"] > 0
    if board.flash_loader:   # erase units tile the code region exactly
        code, sectors = board.region(board.code_region), board.flash_loader["sectors"]
        assert sectors[0][0] == code.origin and sectors[-1][0] + sectors[-1][1] == code.end
        assert all(a + n == b for (a, n), (b, _) in zip(sectors, sectors[1:]))


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


# ---------------------------------------------------------------- real boards: the catalog

# name: (core, flash origin and size, core clock, UART kind and base, chip ID, erase units)
REAL_FIGURES = {
    "stm32f4-discovery": ("cortex-m4", 0x08000000, 1 << 20, 168_000_000, "stm32f4", 0x40004400, 0x413, 12),
    "nucleo-l4r5zi": ("cortex-m4", 0x08000000, 2 << 20, 80_000_000, "stm32-lpuart", 0x40008000, 0x470, 512),
    "nucleo-h743zi2": ("cortex-m7", 0x08000000, 2 << 20, 400_000_000, "stm32", 0x40004800, 0x450, 16),
    "stm32f746g-disco": ("cortex-m7", 0x08000000, 1 << 20, 216_000_000, "stm32", 0x40011000, 0x449, 8),
    "nucleo-u575zi-q": ("cortex-m33", 0x08000000, 2 << 20, 16_000_000, "stm32", 0x40013800, 0x482, 256),
}


def test_real_boards_are_in_the_catalog():
    assert set(REAL_BOARDS) == set(REAL_FIGURES) and set(REAL_BOARDS) <= set(list_boards())
    for name, (core, origin, size, hz, uart, base, chip, sectors) in REAL_FIGURES.items():
        board = load_board(name)
        flash = board.region(board.code_region)
        assert board.simulator == {} and board.fvp is None and board.npu is None
        assert board.cpu.core == core and (flash.origin, flash.length) == (origin, size)
        assert board.clock["hz"] == board.timer.clock_hz == hz
        assert (board.uart["kind"], board.uart["base"], board.uart["baud"]) == (uart, base, 115200)
        assert len(board.uart["pins"]) == 2 and board.uart["enable"]
        # a real board talks over its UART and must not end on a semihosting call
        assert board.console == {"kind": "uart", "semihosting_exit": False}
        loader = board.flash_loader
        assert (loader["kind"], loader["chip_id"], len(loader["sectors"])) == ("stm32-uart", chip, sectors)
        assert loader["boot0"] == loader["reset"] == "none" and loader["probe"] == "stlink"


def test_real_board_memories():
    """The regions that are not simply "flash + one SRAM", from the reference manuals."""
    f4 = load_board("stm32f4-discovery")
    assert (f4.region("ccm").origin, f4.region("ccm").length) == (0x10000000, 64 << 10)
    assert (f4.region("sram").origin, f4.region("sram").length) == (0x20000000, 128 << 10)
    h7 = load_board("nucleo-h743zi2")
    assert [(r.name, r.origin, r.length >> 10) for r in h7.regions] == [
        ("flash", 0x08000000, 2048), ("dtcm", 0x20000000, 128), ("axi_sram", 0x24000000, 512),
        ("sram123", 0x30000000, 288), ("sram4", 0x38000000, 64)]
    assert h7.region_at(0x0) is None   # ITCM left out: address 0 is C's null pointer
    f7 = load_board("stm32f746g-disco")
    assert [(r.name, r.origin, r.length >> 10) for r in f7.regions] == [
        ("flash", 0x08000000, 1024), ("dtcm", 0x20000000, 64), ("sram", 0x20010000, 256)]
    l4 = load_board("nucleo-l4r5zi")
    assert (l4.region("sram").origin, l4.region("sram").length) == (0x20000000, 640 << 10)
    assert l4.region_at(0x10000000) is None   # SRAM2's own address: the same bytes as 0x20030000
    u5 = load_board("nucleo-u575zi-q")
    assert (u5.region("sram").origin, u5.region("sram").length) == (0x20000000, 768 << 10)


def test_netduinoplus2_gains_uart_clock_and_flash_loader_but_keeps_semihosting():
    board = load_board("netduinoplus2")
    assert board.console == {"kind": "semihosting", "semihosting_exit": True}
    assert (board.uart["kind"], board.uart["base"], board.uart["clock_hz"]) == ("stm32f4", 0x40011000, 84_000_000)
    assert [(p["gpio"], p["pin"], p["af"]) for p in board.uart["pins"]] == [(0x40020000, 9, 7), (0x40020000, 10, 7)]
    assert (board.clock["hz"], board.clock["reset_hz"]) == (168_000_000, 16_000_000)
    assert board.flash_loader["chip_id"] == 0x413
    assert [size >> 10 for _, size in board.flash_loader["sectors"]] == [16] * 4 + [64] + [128] * 7


# ---------------------------------------------------------------- schema refusals

def _refusal(tmp_path: Path, edits: list[tuple[str, str]], base: str = "stm32f4-discovery") -> str:
    """The one-line BoardFileError of `base`'s board file with each `old` replaced by `new`."""
    text = (resource_dir("boards") / f"{base}.toml").read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{base}.toml"
    path.write_text(text)
    with pytest.raises(BoardFileError) as error:
        load_board(str(path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


HSERDY = "{ wait = 0x40023800, mask = 0x00020000, value = 0x00020000 },   # RCC_CR.HSERDY"
REFUSALS = {
    "uart kind": ([('kind = "stm32f4"', 'kind = "pl011"')],
                  r"uart\.kind must be one of cmsdk, stm32f4, stm32, stm32-lpuart, got 'pl011'"),
    "pin 16": ([("pin = 3, af = 7", "pin = 16, af = 7")], r"uart\.pins\[1\]\.pin must be an integer from 0 to 15"),
    "af 16": ([("pin = 2, af = 7", "pin = 2, af = 16")], r"uart\.pins\[0\]\.af must be an integer from 0 to 15"),
    "gpio base": ([("gpio = 0x40020000, pin = 2", "gpio = 0x40020004, pin = 2")],
                  r"uart\.pins\[0\]\.gpio must be a GPIO port base"),
    "unaligned enable": ([("[0x40023830, 0],", "[0x40023831, 0],")], r"uart\.enable\[0\] must be \[word-aligned"),
    "enable bit 32": ([("[0x40023840, 17],", "[0x40023840, 32],")], r"uart\.enable\[1\] must be"),
    "baud": ([("baud = 115200\nclock_hz", "baud = 3000000\nclock_hz")],
             r"uart\.clock_hz of 42000000 Hz cannot make 3000000 baud on a stm32f4 UART: clock / baud = 14, outside 16\.\.65535"),
    "overlapping sectors": ([("[0x08010000, 0x10000, 1],", "[0x0800C000, 0x10000, 1],")],
                            r"flash_loader\.sectors\[1\] starts at 0x0800C000, inside .*: sectors overlap"),
    "gap between sectors": ([("[0x08010000, 0x10000, 1],", "[0x08014000, 0x10000, 1],")],
                            r"flash_loader\.sectors\[1\] .* leaving a gap after 0x08010000"),
    "sectors short": ([("[0x08020000, 0x20000, 7],", "[0x08020000, 0x20000, 6],")],
                      r"flash_loader\.sectors end at 0x080E0000, short of .* flash .*: they do not cover it"),
    "sectors past": ([("[0x08020000, 0x20000, 7],", "[0x08020000, 0x20000, 8],")],
                     r"flash_loader\.sectors run past the end of flash region flash \(0x08100000\)"),
    "sectors start": ([("  [0x08000000, 0x4000, 4],\n", "")],
                      r"flash_loader\.sectors start at 0x08010000, not at the start of flash region flash"),
    "same modem line": ([('boot0 = "none"\nreset = "none"', 'boot0 = "dtr"\nreset = "dtr"')],
                        r"flash_loader\.reset uses the same modem line as boot0"),
    "wait without mask": ([(HSERDY, "{ wait = 0x40023800, value = 0x00020000 },")],
                          r"clock\.steps\[1\]\.mask is missing"),
    "wait value outside mask": ([(HSERDY, "{ wait = 0x40023800, mask = 0x00020000, value = 0x00030000 },")],
                                r"clock\.steps\[1\]\.value 0x30000 has bits outside mask 0x20000"),
    "write and wait": ([(HSERDY, "{ write = 0x40023800, wait = 0x40023800, mask = 1 },")],
                       r"clock\.steps\[1\] must have exactly one of write"),
    "write without bits": ([("{ write = 0x40023800, set = 0x00010000 }", "{ write = 0x40023800 }")],
                           r"clock\.steps\[0\] sets and clears no bit"),
    "unaligned register": ([("{ write = 0x40023800, set = 0x00010000 }", "{ write = 0x40023802, set = 0x00010000 }")],
                           r"clock\.steps\[0\]\.write must be a word-aligned"),
    "unknown step field": ([(HSERDY, "{ wait = 0x40023800, mask = 1, timeout = 5 },")],
                           r"clock\.steps\[1\]\.timeout is not a board file field"),
    "timer off the core clock": ([("clock_hz = 168000000\nns_per_tick", "clock_hz = 84000000\nns_per_tick")],
                                 r"timer\.clock_hz must equal clock\.hz \(168000000\)"),
    "console kind": ([("[uart]\n", '[console]\nkind = "swo"\n\n[uart]\n')],
                     r"console\.kind must be one of semihosting, uart, got 'swo'"),
    "chip id": ([("chip_id = 0x413", "chip_id = 0x1413")], r"flash_loader\.chip_id must be an integer from 1 to 4095"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_schema_refusals_name_the_field(tmp_path, case):
    edits, pattern = REFUSALS[case]
    message = _refusal(tmp_path, edits)
    assert re.search(pattern, message), message


def test_a_real_board_without_uart_has_no_console(tmp_path):
    """The console defaults to the UART on a board without [simulator]."""
    cut = ('[uart]\nkind = "cmsdk"\nbase = 0x40004000\n'
           'clock_hz = 25000000   # CMSDK UART PCLK = SYSCLK 25 MHz (QEMU hw/arm/mps2.c)\n')
    message = _refusal(tmp_path, [(cut, ""), ('[simulator]\nname = "qemu"\nmachine = "mps2-an386"\n', "")],
                       base="mps2-an386")
    assert re.search(r"console\.kind is uart \(the default on a board without \[simulator\]\) but the board "
                     r"has no \[uart\]", message)
    message = _refusal(tmp_path, [(cut, '[console]\nkind = "uart"\n')], base="mps2-an386")
    assert "console.kind is uart" in message


def test_cmsdk_uart_takes_no_pins(tmp_path):
    message = _refusal(tmp_path, [("base = 0x40004000\n", "base = 0x40004000\npins = [{ gpio = 0x40020000, pin = 1, af = 1 }]\n")],
                       base="mps2-an386")
    assert "uart.pins must be empty for a CMSDK UART" in message


# ---------------------------------------------------------------- board_config.h

@pytest.mark.parametrize("name", list_boards())
def test_board_config_names_one_uart_layout_and_one_console(tmp_path, name):
    board = load_board(name)
    render_platform(board, tmp_path, [], stack_bytes=2048)
    config = (tmp_path / "board_config.h").read_text()
    layouts = [m for m in ("MCU_UART_CMSDK", "MCU_UART_STM32F4", "MCU_UART_STM32", "MCU_UART_STM32_LPUART")
               if re.search(rf"^#define {m} 1$", config, re.M)]
    assert layouts == ([{"cmsdk": "MCU_UART_CMSDK", "stm32f4": "MCU_UART_STM32F4", "stm32": "MCU_UART_STM32",
                         "stm32-lpuart": "MCU_UART_STM32_LPUART"}[board.uart["kind"]]] if board.uart else [])
    consoles = re.findall(r"^#define (MCU_CONSOLE_\w+) 1$", config, re.M)
    assert consoles == ["MCU_CONSOLE_UART" if board.console["kind"] == "uart" else "MCU_CONSOLE_SEMIHOSTING"]
    assert bool(re.search(r"^#define MCU_SEMIHOSTING_EXIT 1$", config, re.M)) == board.console["semihosting_exit"]
    if board.uart:
        assert f"#define MCU_UART_BASE 0x{board.uart['base']:08X}u" in config
        assert f"#define MCU_UART_BAUD {board.uart['baud']}u" in config
    steps = len(board.clock["steps"]) if board.clock else 0
    assert f"#define MCU_CLOCK_STEP_COUNT {steps}" in config
    assert config.count("{ MCU_CLOCK_WAIT, 0x") + config.count("{ MCU_CLOCK_WRITE, 0x") == steps
    assert ("#define MCU_HAS_L1_CACHES 1" in config) == (board.cpu.core in ("cortex-m7", "cortex-m55", "cortex-m85"))


# ---------------------------------------------------------------- start-up in QEMU

CLOCK_PROBE_C = """#include <string.h>
#include "model.h"
#include "mcu_board.h"
static int8_t arena[48] __attribute__((section(".arena.REGION"), aligned(16)));
int8_t *const model_inputs[1] = {arena};
const uint32_t model_input_sizes[1] = {4};
int8_t *const model_outputs[1] = {arena + 16};
const uint32_t model_output_sizes[1] = {12};
RESULT model_invoke(void)
{
    uint32_t seen[3] = {mcu_core_clock_hz, mcu_uart_clock_hz(), mcu_clock_steps_done};
    memcpy(arena + 16, seen, sizeof seen);
    RETURN
}
"""


def _clock_probe(tmp_path: Path, board_name: str) -> list[int]:
    """mcu_core_clock_hz, mcu_uart_clock_hz() and mcu_clock_steps_done as main() sees them."""
    board = load_board(board_name)
    project = tmp_path / board_name
    project.mkdir()
    (project / "model.h").write_text(MODEL_H)
    returns_int = "int model_invoke(void)" in MODEL_H   # the stub's model_invoke signature
    (project / "model.c").write_text(CLOCK_PROBE_C.replace("REGION", board.arena_region)
                                     .replace("RESULT", "int" if returns_int else "void")
                                     .replace("RETURN", "return 0;" if returns_int else ""))
    render_platform(board, project, [[np.zeros(4, np.int8)]], stack_bytes=2048,
                    arena_sections={board.arena_region: 48})
    result = run_qemu(board, build(project), timeout=60)
    assert result.exit_code == 0
    return np.frombuffer(result.outputs[0][0], "<u4").tolist()


def test_netduinoplus2_clock_steps_time_out_to_the_reset_clock(tmp_path):
    """QEMU's netduinoplus2 models no RCC (reads 0): the wait for HSERDY, step 1, times out after
    its bounded polls, the PLL steps are skipped, and the firmware runs on at the HSI clock."""
    board = load_board("netduinoplus2")
    assert "wait" in board.clock["steps"][1] and "write" in board.clock["steps"][0]
    core_hz, uart_hz, steps_done = _clock_probe(tmp_path, "netduinoplus2")
    assert (core_hz, uart_hz, steps_done) == (16_000_000, 16_000_000, 1)
    assert core_hz == board.clock["reset_hz"] and uart_hz == board.uart["reset_clock_hz"]


def test_cortex_m7_cache_start_up_runs_and_keeps_the_clock(tmp_path):
    """mps2-an500 (Cortex-M7): the cache invalidate-and-enable sequence runs without a fault (QEMU
    models no cache and ignores it) and a board without [clock] reports its one clock."""
    assert _clock_probe(tmp_path, "mps2-an500") == [25_000_000, 25_000_000, 0]


# ---------------------------------------------------------------- real boards: builds

def _real_matrix():
    for board in REAL_BOARDS:
        for model in MLPERF:
            marks = () if model == "kws_ref_model" else (pytest.mark.slow,)
            yield pytest.param(board, model, marks=marks, id=f"{board}-{model}")


def _check_budget(compiled, board_name: str, elf: Path) -> None:
    """The built firmware against the board's own memories, as the budget report states them."""
    board = load_board(board_name)
    report = compiled.report
    assert report["board"] == board_name and set(report["regions"]) == {r.name for r in board.regions}
    for region in board.regions:
        row = report["regions"][region.name]
        assert row["predicted"] is False and row["size"] == region.length
        assert 0 <= row["used"] <= region.length and row["headroom"] == region.length - row["used"]
    assert report["elf"]["flash_bytes"] == report["regions"][board.code_region]["used"] > 0
    syms = {s.name: s for s in symbols(elf)}
    assert syms["vector_table"].address == board.region(board.code_region).origin == 0x08000000
    assert board.region_at(syms["arena"].address).kind == "ram"
    assert syms["clock_steps"].size == 16 * len(board.clock["steps"])
    # the image fits the flash loader's erase units
    assert report["elf"]["flash_bytes"] <= sum(size for _, size in board.flash_loader["sectors"])
    config = (compiled.project_dir / "board_config.h").read_text()
    assert "#define MCU_CONSOLE_UART 1" in config and "MCU_SEMIHOSTING_EXIT" not in config


@pytest.mark.parametrize("board_name, model", list(_real_matrix()))
def test_mlperf_model_builds_for_each_real_board(board_name, model, shared_dir, tmp_path):
    compiled = mcu_compile.compile(shared_dir / "models" / f"{model}.tflite", board=board_name,
                                   out_dir=tmp_path / model)
    _check_budget(compiled, board_name, compiled.build())


# (board, seed 003 model) pairs that must be refused: MobileNetV2-0.05's 138,240-byte arena is
# larger than every RAM region of the STM32F407 (128 KiB SRAM, 64 KiB CCM).
SEED003_REFUSED = {("stm32f4-discovery", "mobilenetv2")}


@pytest.mark.slow
@pytest.mark.parametrize("board_name", REAL_BOARDS)
def test_seed003_models_build_for_each_real_board(board_name, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import seed003
    for name, (model, shape) in seed003.seed003_models().items():
        calibration = seed003.calibration_set(shape, 8, seed=3)
        args = dict(calibration=calibration, board=board_name, out_dir=tmp_path / name, test_inputs=calibration[:2])
        if (board_name, name) in SEED003_REFUSED:
            with pytest.raises(BoardFitError, match=rf"region \w+ \(ram\) of {board_name} needs"):
                mcu_compile.compile(model, calibration[0], **args)
            continue
        compiled = mcu_compile.compile(model, calibration[0], **args)
        _check_budget(compiled, board_name, compiled.build())


def test_weights_larger_than_a_boards_flash_are_refused(tmp_path):
    """1,126,400 B of FC weights: over the 1 MiB flash of the STM32F407 and the STM32F746, inside
    the 2 MiB of the H743, L4R5 and U575; refused before anything is written, naming the board."""
    from kernel_harness import Builder
    b = Builder(seed=0)
    x = b.input((1, 1024))
    w = b.weights((1100, 1024), axis=0)
    program = b.op("FULLY_CONNECTED", [x, w, b.bias(1100)], (1, 1100), 4.0, fused_activation_function="NONE",
                   keep_num_dims=False)
    path = tmp_path / "big_fc.tflite"
    path.write_bytes(write_tflite(program))
    for board_name in ("stm32f4-discovery", "stm32f746g-disco"):
        with pytest.raises(BoardFitError, match=rf"region flash \(flash\) of {board_name} needs 1,1\d\d,\d\d\d B"):
            mcu_compile.compile(path, board=board_name, out_dir=tmp_path / board_name)
        assert not (tmp_path / board_name).exists()
    for board_name in ("nucleo-h743zi2", "nucleo-l4r5zi", "nucleo-u575zi-q"):
        compiled = mcu_compile.compile(path, board=board_name, out_dir=tmp_path / board_name)
        used = compiled.report["regions"]["flash"]["used"]
        assert 1_126_400 < used <= 2 << 20
