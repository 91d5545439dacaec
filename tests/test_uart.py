"""The UART console: results in CRC-32 frames, read with pyserial from QEMU's UART on a
local socket (the same code that talks to a board), `run --port` against a QEMU started
outside the tool, a link that loses or damages bytes, and `monitor`."""
from __future__ import annotations

import socket
import struct
import threading

import pytest
import serial
from click.testing import CliRunner

import mcu_compile
from mcu_compile.cli import main
from mcu_compile.device import frames
from mcu_compile.device.frames import FrameReader, LinkError
from mcu_compile.device.monitor import monitor
from mcu_compile.device.remote import run_on_port
from mcu_compile.errors import InputError
from mcu_compile.reference.oracle import tflm_outputs
from qemu_uart import qemu_uart_server

MODELS = "../shared/models"


# ---- the frame format, on pyserial's loop:// ----

def _loop():
    return serial.serial_for_url("loop://", timeout=0.2)


def test_frame_round_trip_and_crc():
    port = _loop()
    port.write(frames.encode(frames.OUTPUT, struct.pack("<II", 3, 1) + bytes(range(200))))
    frame = FrameReader(port).next_frame(1.0)
    assert frame.kind == frames.OUTPUT and frame.payload[8:] == bytes(range(200))
    encoded = frames.encode(frames.TEXT, b"MCU-DONE\n")
    assert encoded[0] == 0xA5 and encoded[1] == frames.TEXT and encoded[2:6] == struct.pack("<I", 9)


def test_reader_skips_noise_and_damaged_frames():
    port = _loop()
    damaged = bytearray(frames.encode(frames.TEXT, b"damaged"))
    damaged[8] ^= 0x01
    port.write(b"boot text\r\n" + bytes(damaged) + frames.encode(frames.TEXT, b"intact"))
    reader = FrameReader(port)
    assert reader.next_frame(1.0).payload == b"intact"
    assert reader.damaged_frames == 1
    assert bytes(reader.raw_text).startswith(b"boot text")


def test_reader_times_out_with_a_clear_error():
    port = _loop()
    port.write(frames.encode(frames.TEXT, b"cut short")[:7])
    with pytest.raises(LinkError, match="no answer from the device within the timeout"):
        FrameReader(port).next_frame(0.3)


# ---- firmware with a UART console under QEMU ----

@pytest.fixture(scope="module")
def uart_ad01(tmp_path_factory):
    """AD01 for the M55 board with a UART console: the real-board code path in QEMU."""
    out = tmp_path_factory.mktemp("uart") / "ad01"
    compiled = mcu_compile.compile(f"{MODELS}/ad01_int8.tflite", board="mps3-an547", out_dir=out, console="uart")
    compiled.build()
    return compiled


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386", "netduinoplus2"])
def test_uart_console_runs_bit_exact_in_qemu(tmp_path, board):
    compiled = mcu_compile.compile(f"{MODELS}/kws_ref_model.tflite", board=board, out_dir=tmp_path / "kws",
                                   console="uart")
    assert "#define MCU_CONSOLE_UART" in (tmp_path / "kws" / "board_config.h").read_text()
    result = compiled.run()
    assert result.bit_exact
    tflm = tflm_outputs(compiled.program_path, compiled.vectors()[0])
    assert all((a == b).all() for a, b in zip(result.outputs[0], tflm))
    assert result.instructions[0] > 1_000_000
    assert compiled.report["run"]["stack_measured_bytes"] > 0


def test_run_port_against_a_qemu_started_outside(uart_ad01):
    proc, port = qemu_uart_server(uart_ad01)
    try:
        result = CliRunner().invoke(main, ["run", str(uart_ad01.project_dir), "--port", f"socket://127.0.0.1:{port}"])
        assert result.exit_code == 0, result.output
        assert "outputs: bit-exact with the host reference" in result.output
        assert "timer ticks per inference" in result.output
        assert proc.wait(timeout=20) == 0          # QUIT ended the simulation cleanly
    finally:
        proc.kill()


class FaultyProxy:
    """A TCP proxy between the host and QEMU's UART that damages the host's traffic once:
    drops one byte, or flips one bit, at a chosen offset."""

    def __init__(self, target_port: int, at: int, fault: str):
        self.target_port, self.at, self.fault = target_port, at, fault
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        host, _ = self.server.accept()
        device = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=self._pump, args=(device, host, False), daemon=True).start()
        self._pump(host, device, True)

    def _pump(self, src, dst, damage):
        seen = 0   # bytes of the stream so far, before the damage
        while True:
            try:
                data = src.recv(4096)
            except OSError:
                data = b""
            if not data:
                dst.close()
                return
            i = self.at - seen
            seen += len(data)
            if damage and 0 <= i < len(data):
                kept = b"" if self.fault == "drop" else bytes([data[i] ^ 0x10])
                data = data[:i] + kept + data[i + 1:]
            dst.sendall(data)


@pytest.mark.parametrize("fault", ["drop", "flip"])
def test_run_port_recovers_from_a_damaged_link(uart_ad01, fault):
    """A byte lost or a bit flipped inside an INPUT frame: the firmware NACKs or the host
    times out, re-synchronises and sends the vector again; the outputs stay bit-exact."""
    proc, port = qemu_uart_server(uart_ad01)
    try:
        proxy = FaultyProxy(port, at=13 + 100, fault=fault)   # inside the first INPUT frame, after PING
        done = run_on_port(uart_ad01, f"socket://127.0.0.1:{proxy.port}", timeout=3.0)
        assert done.run.bit_exact
        assert done.resyncs >= 1
    finally:
        proc.kill()


def test_run_port_refuses_another_models_firmware(uart_ad01, tmp_path):
    other = mcu_compile.compile(f"{MODELS}/kws_ref_model.tflite", board="mps3-an547", out_dir=tmp_path / "kws",
                                console="uart")
    proc, port = qemu_uart_server(uart_ad01)
    try:
        with pytest.raises(LinkError, match="runs a different model"):
            run_on_port(other, f"socket://127.0.0.1:{port}", timeout=5.0)
    finally:
        proc.kill()


def test_run_port_with_nothing_listening_names_the_port():
    result = CliRunner().invoke(main, ["monitor", "socket://127.0.0.1:1", "--seconds", "1"])
    assert result.exit_code == 1
    assert "cannot open socket://127.0.0.1:1" in result.output


def test_monitor_shows_frames_as_lines(uart_ad01):
    proc, port = qemu_uart_server(uart_ad01)
    try:
        lines = []
        monitor(f"socket://127.0.0.1:{port}", 115200, lines.append, seconds=3.0)
        assert any(l.startswith("[OUTPUT] vector 0 output 0: 640 B") for l in lines), lines
        assert any(l.startswith("[RESULT] vector 0: status 0") for l in lines)
        assert any(l.startswith("[READY] inputs [640] B") for l in lines)
    finally:
        proc.kill()


def test_console_choices_are_checked():
    with pytest.raises(InputError, match="unknown console 'usb'"):
        mcu_compile.compile(f"{MODELS}/ad01_int8.tflite", board="mps3-an547", out_dir="/nonexistent", console="usb")


def test_run_port_needs_a_uart_firmware(tmp_path):
    compiled = mcu_compile.compile(f"{MODELS}/ad01_int8.tflite", board="mps3-an547", out_dir=tmp_path / "p")
    result = CliRunner().invoke(main, ["run", str(compiled.project_dir), "--port", "loop://"])
    assert result.exit_code == 2
    assert "needs firmware with a UART console (compile with --console uart)" in result.output
