"""The framed protocol between the host and firmware on a UART console
(firmware_templates/platform/mcu_frame.h is the other half; keep the two in step):

    0xA5 | type (1 B) | payload length (u32 LE) | payload | CRC-32 (u32 LE)

The CRC-32 is zlib's, over type, length and payload. Bytes outside frames (noise, a
board's boot text) are kept as raw console text.
"""
from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

from ..errors import McuCompileError

START = 0xA5
HEADER = struct.Struct("<BI")       # type, payload length
CRC = struct.Struct("<I")
# No frame of ours is larger (an output or input tensor is at most the arena); a header
# announcing more was damaged on the way.
MAX_PAYLOAD = 16 << 20

# firmware -> host
TEXT, READY, OUTPUT, RESULT, DONE, NACK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
# host -> firmware
PING, INPUT, INVOKE, QUIT = 0x10, 0x11, 0x12, 0x13

READY_SEMIHOSTING_EXIT = 0x1
NACK_REASONS = {1: "bad checksum", 2: "wrong payload size", 3: "no such input", 4: "unknown frame type"}
NAMES = {TEXT: "TEXT", READY: "READY", OUTPUT: "OUTPUT", RESULT: "RESULT", DONE: "DONE", NACK: "NACK",
         PING: "PING", INPUT: "INPUT", INVOKE: "INVOKE", QUIT: "QUIT"}


class LinkError(McuCompileError):
    """The serial link failed: no answer in time, the device went away, a damaged frame."""
    exit_code = 1   # the command line's code for "the device work failed"


class LinkClosed(LinkError):
    """The other end closed the connection (a simulator that exited)."""


def encode(kind: int, payload: bytes = b"") -> bytes:
    body = HEADER.pack(kind, len(payload)) + payload
    return bytes([START]) + body + CRC.pack(zlib.crc32(body))


@dataclass
class Frame:
    kind: int
    payload: bytes

    @property
    def name(self) -> str:
        return NAMES.get(self.kind, f"0x{self.kind:02x}")


@dataclass
class Ready:
    nonce: int
    flags: int
    timer_overhead: int
    input_sizes: list[int]
    output_sizes: list[int]

    @property
    def exits_on_quit(self) -> bool:
        return bool(self.flags & READY_SEMIHOSTING_EXIT)


def parse_ready(payload: bytes) -> Ready:
    nonce, flags, overhead, n_in, n_out = struct.unpack_from("<IIQII", payload)
    sizes = struct.unpack_from(f"<{n_in + n_out}I", payload, 24)
    return Ready(nonce, flags, overhead, list(sizes[:n_in]), list(sizes[n_in:]))


class FrameReader:
    """Reads frames from a pyserial port (a device, socket://, rfc2217://, loop://).

    Reads ask for exactly the bytes still missing: pyserial's socket:// read(n) throws away
    what it gathered when the peer closes mid-call (SERIAL.md). A frame whose CRC differs
    is skipped (damaged_frames counts it) and the reader looks for the next start byte.
    """

    def __init__(self, port, text_sink=None):
        self.port = port
        self.raw_text = bytearray()      # bytes outside any frame
        self.damaged_frames = 0
        self.text_sink = text_sink       # called with each TEXT frame's text, if given

    def _read_exact(self, n: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkError(f"no answer from the device within the timeout (got {len(data)} of {n} bytes)")
            self.port.timeout = min(remaining, 0.5)
            try:
                chunk = self.port.read(n - len(data))
            except Exception as e:  # pyserial raises SerialException (and OSError) on a closed link
                raise LinkClosed(f"the serial link closed: {e}") from None
            data += chunk
        return bytes(data)

    def next_frame(self, timeout: float) -> Frame:
        """The next intact frame within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            byte = self._read_exact(1, deadline)
            if byte[0] != START:
                self.raw_text += byte
                continue
            header = self._read_exact(HEADER.size, deadline)
            kind, length = HEADER.unpack(header)
            if length > MAX_PAYLOAD or kind not in NAMES:
                self.damaged_frames += 1
                continue
            payload = self._read_exact(length, deadline)
            (crc,) = CRC.unpack(self._read_exact(CRC.size, deadline))
            if crc != zlib.crc32(header + payload):
                self.damaged_frames += 1
                continue
            frame = Frame(kind, payload)
            if kind == TEXT and self.text_sink is not None:
                self.text_sink(payload.decode(errors="replace"))
            return frame
