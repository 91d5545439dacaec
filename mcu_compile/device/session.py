"""A conversation with firmware on a UART console (main.c's serve_host): the same code
talks to a board on /dev/ttyACM0, to QEMU's UART on a local socket, or to any pyserial URL.

    ping -> READY (the model's input/output sizes)
    run_vector(inputs) -> INPUT frames, INVOKE -> OUTPUT frames + RESULT
    quit -> DONE (the firmware exits; under QEMU the simulation ends)

A NACK or a lost frame makes the host re-synchronise (filler bytes, then PING with a fresh
nonce) and send the whole vector again; nothing is accepted without its CRC.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass

from . import frames
from .frames import Frame, FrameReader, LinkError, Ready

RETRIES = 3
PING_INTERVAL = 1.0   # seconds between PINGs while the firmware does not answer


@dataclass
class VectorResult:
    outputs: list[bytes]
    status: int
    ticks: int
    stack_bytes: int


def open_link(url: str, baud: int = 115200):
    """A pyserial port for a device path or URL (socket://host:port, rfc2217://, loop://)."""
    import serial
    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=0.5, do_not_open=False)
    except (serial.SerialException, OSError, ValueError) as e:
        raise LinkError(f"cannot open {url}: {e}; check the port name (`python -m serial.tools.list_ports`) "
                        f"or the URL (socket://HOST:PORT)") from None
    _no_delay(port)
    return port


def _no_delay(port) -> None:
    """TCP_NODELAY on socket:// links: small frames leave at once, not after 40-200 ms."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DeviceSession:
    def __init__(self, port, timeout: float = 10.0, text_sink=None):
        self.port = port
        self.timeout = timeout
        self.reader = FrameReader(port, text_sink)
        self.ready: Ready | None = None
        self.resyncs = 0

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.port.write(frames.encode(kind, payload))
        self.port.flush()

    def ping(self) -> Ready:
        """Re-synchronises with the firmware and returns its READY (input/output sizes).

        A PING can be lost (a UART drops what arrives before it is enabled, a board still
        booting or running its bundled vectors does not read), so it is repeated every
        PING_INTERVAL seconds with a fresh nonce until the timeout; stale answers are ignored."""
        deadline = time.monotonic() + self.timeout
        first = True
        while time.monotonic() < deadline:
            nonce = int.from_bytes(os.urandom(4), "little") | 1   # 0 is the firmware's own READY
            if not first or self.ready is not None:
                self._fill()
            first = False
            self.send(frames.PING, struct.pack("<I", nonce))
            try:
                # a NACK here answers the filler that completed a damaged frame: expected
                frame = self._until(lambda f: f.kind == frames.READY and frames.parse_ready(f.payload).nonce == nonce,
                                    nack_fails=False, timeout=min(PING_INTERVAL, deadline - time.monotonic()))
            except frames.LinkClosed:
                raise
            except LinkError:
                continue
            self.ready = frames.parse_ready(frame.payload)
            return self.ready
        raise LinkError(f"the firmware does not answer PING within {self.timeout:g} s: is it an mcu-compile "
                        f"firmware with a UART console, flashed and running? check the port and baud rate")

    def _fill(self) -> None:
        """Completes any frame the firmware is still waiting on (a byte was lost), so that
        its next start byte is ours: zeros are never a start byte."""
        largest = max(self.ready.input_sizes, default=0) if self.ready else 0
        self.port.write(bytes(largest + 16))
        self.port.flush()
        self.resyncs += 1

    def _until(self, wanted, nack_fails: bool = True, timeout: float | None = None) -> Frame:
        """Frames up to the first one `wanted` accepts within `timeout` (default: the
        session's); a NACK raises LinkError (nack_fails)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else max(0.0, timeout))
        while True:
            frame = self.reader.next_frame(max(0.0, deadline - time.monotonic()))
            if frame.kind == frames.NACK and nack_fails:
                reason = struct.unpack("<I", frame.payload[:4])[0] if len(frame.payload) >= 4 else 0
                raise LinkError(f"the firmware refused a frame: {frames.NACK_REASONS.get(reason, reason)}")
            if wanted(frame):
                return frame

    def run_vector(self, vector: int, inputs: list[bytes]) -> VectorResult:
        """Sends the inputs, invokes the model, returns the outputs, retrying the whole
        vector after a NACK or a timeout."""
        ready = self.ready or self.ping()
        if [len(a) for a in inputs] != ready.input_sizes:
            raise LinkError(f"the firmware's model takes inputs of {ready.input_sizes} bytes, this "
                            f"project's of {[len(a) for a in inputs]}: flash this project's firmware first")
        for attempt in range(RETRIES):
            if attempt:
                self.ping()
            try:
                return self._invoke(vector, inputs)
            except frames.LinkClosed:
                raise
            except LinkError:
                continue
        raise LinkError(f"vector {vector}: no intact answer after {RETRIES} tries; check the cable and baud rate")

    def _invoke(self, vector: int, inputs: list[bytes]) -> VectorResult:
        for index, data in enumerate(inputs):
            self.send(frames.INPUT, struct.pack("<I", index) + data)
        self.send(frames.INVOKE, struct.pack("<I", vector))
        outputs: dict[int, bytes] = {}
        while True:
            frame = self._until(lambda f: f.kind in (frames.OUTPUT, frames.RESULT))
            v, rest = struct.unpack_from("<I", frame.payload)[0], frame.payload[4:]
            if v != vector:
                continue   # a result of an earlier, abandoned attempt
            if frame.kind == frames.OUTPUT:
                outputs[struct.unpack_from("<I", rest)[0]] = rest[4:]
                continue
            status, ticks, stack = struct.unpack("<iQI", rest)
            got = [outputs.get(o, b"") for o in range(len(self.ready.output_sizes))]
            if status == 0 and [len(o) for o in got] != self.ready.output_sizes:
                raise LinkError(f"vector {vector}: outputs missing from the firmware's answer")
            return VectorResult(got, status, ticks, stack)

    def quit(self) -> int:
        """Ends the firmware's service loop; its stack high-water mark from DONE."""
        self.send(frames.QUIT)
        frame = self._until(lambda f: f.kind == frames.DONE)
        return struct.unpack("<I", frame.payload[:4])[0]


def protocol_lines(frame: Frame) -> str:
    """A frame as the semihosting console's protocol lines (main.c.j2), so one reader
    (sim/outcome.py) classifies runs on either console."""
    p = frame.payload
    if frame.kind == frames.TEXT:
        return p.decode(errors="replace")
    if frame.kind == frames.READY:
        return f"MCU-TIMER {frames.parse_ready(p).timer_overhead}\n"
    if frame.kind == frames.OUTPUT:
        vector, index = struct.unpack_from("<II", p)
        return f"MCU-OUT {vector} {index} {p[8:].hex()}\n"
    if frame.kind == frames.RESULT:
        vector, _status, ticks, _stack = struct.unpack("<IiQI", p)
        return f"MCU-TICKS {vector} {ticks}\n"
    if frame.kind == frames.DONE:
        return f"MCU-STACK {struct.unpack_from('<I', p)[0]}\nMCU-DONE\n"
    return ""
