"""`mcu-compile flash`: a compiled project into a simulated STM32F4 ROM bootloader
(tests/stm32_bootloader.py, written from AN3155), then the flashed bytes booted in QEMU's
netduinoplus2 (STM32F405) and run bit-exactly over its UART with `run --port`."""
from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

import mcu_compile
from mcu_compile.cli import main
from mcu_compile.sim.qemu import find_qemu, free_tcp_port
from mcu_compile.target.elf import flash_image
from stm32_bootloader import Faults, Stm32F4Bootloader
from qemu_uart import wait_listening

MODELS = "../shared/models"
FLASH = 0x08000000


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    out = tmp_path_factory.mktemp("flash") / "kws"
    compiled = mcu_compile.compile(f"{MODELS}/kws_ref_model.tflite", board="netduinoplus2", out_dir=out,
                                   console="uart")
    compiled.build()
    return compiled


def _flash(project, simulator, *extra):
    url = simulator.serve_tcp()
    try:
        return CliRunner().invoke(main, ["flash", str(project.project_dir), "--port", url, *extra])
    finally:
        simulator.stop()


def test_flash_writes_the_elf_image_and_it_runs(project, tmp_path):
    simulator = Stm32F4Bootloader()
    result = _flash(project, simulator)
    assert result.exit_code == 0, result.output
    address, image = flash_image(project.project_dir / "app.elf", FLASH, 1 << 20)
    assert address == FLASH
    assert bytes(simulator.flash[:len(image)]) == image
    assert set(simulator.flash[len(image) + 4:]) == {0xFF}
    # ~55 KiB: the first four 16 KiB sectors and nothing else
    assert 48 << 10 < len(image) < 64 << 10 and simulator.erased_sectors == [0, 1, 2, 3]
    assert simulator.go_address == FLASH
    assert f"flashed {len(image):,} B at 0x08000000 on chip 0x413" in result.output
    assert "read back equal" in result.output

    # boot what the bootloader holds, as the chip would, and run the model over the UART
    flashed = tmp_path / "flash.bin"
    flashed.write_bytes(bytes(simulator.flash[:len(image)]))
    port = free_tcp_port()
    qemu = subprocess.Popen([find_qemu()["executable"], "-M", "netduinoplus2", "-display", "none", "-monitor", "none",
                             "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
                             "-semihosting-config", "enable=on,target=native", "-kernel", str(flashed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        run = CliRunner().invoke(main, ["run", str(project.project_dir), "--port", f"socket://127.0.0.1:{port}"])
        assert run.exit_code == 0, run.output
        assert "outputs: bit-exact with the host reference" in run.output
    finally:
        qemu.kill()


def test_flash_retries_a_nack_and_still_verifies(project):
    simulator = Stm32F4Bootloader(Faults(nack_write=7))
    result = _flash(project, simulator, "--no-go")
    assert result.exit_code == 0, result.output
    _, image = flash_image(project.project_dir / "app.elf", FLASH, 1 << 20)
    assert bytes(simulator.flash[:len(image)]) == image
    assert "1 retry" in result.output
    assert simulator.go_address is None


def test_flash_that_keeps_failing_exits_1_and_never_starts(project):
    simulator = Stm32F4Bootloader(Faults(nack_writes_to=FLASH + 0x4000))
    result = _flash(project, simulator)
    assert result.exit_code == 1
    assert "error: write NACK at 0x08004000 after 3 tries" in result.output
    assert simulator.go_address is None


def test_flash_checks_the_chip(project):
    simulator = Stm32F4Bootloader(chip_id=0x419)
    result = _flash(project, simulator)
    assert result.exit_code == 1
    assert "chip ID 0x419 but board netduinoplus2 expects 0x413" in result.output
    assert simulator.erased_sectors == []


def test_flash_needs_a_flash_loader(tmp_path):
    compiled = mcu_compile.compile(f"{MODELS}/ad01_int8.tflite", board="mps3-an547", out_dir=tmp_path / "p")
    result = CliRunner().invoke(main, ["flash", str(compiled.project_dir), "--port", "loop://"])
    assert result.exit_code == 2
    assert "board mps3-an547 has no [flash_loader]" in result.output
