"""A minimal client of the GDB remote serial protocol (RSP), enough to drive QEMU's gdbstub
(cosim.py stops the CPU at an address and reads and writes guest memory and registers with it).
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable

from .outcome import RunError


class RspError(RunError):
    """The GDB remote protocol session with QEMU failed."""


@dataclass
class StopReply:
    kind: str          # "T"/"S" stopped with signal `value`; "W" exited with code `value`;
    value: int         # "X" terminated by signal `value`; "EOF" connection closed
    text: str = ""

    @property
    def exited(self) -> bool:
        return self.kind in ("W", "X", "EOF")


def _checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


def _unescape(data: bytes) -> bytes:
    """Binary escapes (}x -> x^0x20) and run-length encoding (c*n) of RSP packet data."""
    if b"}" not in data and b"*" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x7D and i + 1 < len(data):
            out.append(data[i + 1] ^ 0x20)
            i += 2
        elif c == 0x2A and out and i + 1 < len(data):
            out += out[-1:] * (data[i + 1] - 29)
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


class GdbRemote:
    """A minimal client of the GDB remote serial protocol, enough to drive QEMU's gdbstub:
    packets $data#cs with acks (no-ack mode when offered), `?`, `g`/`p` registers, `m`/`M`
    memory in chunks of the stub's PacketSize, `Z0`/`z0` breakpoints, `c`, `s`, and
    the stop replies T/S (stopped), W (exited), X (terminated)."""

    def __init__(self, sock: socket.socket, timeout: float = 10.0):
        self.sock = sock
        self.timeout = timeout
        self.ack = True
        self.packet_size = 1024
        self._buf = b""

    @classmethod
    def connect(cls, host: str, port: int, deadline: float, alive: Callable[[], bool] = lambda: True,
                timeout: float = 10.0) -> "GdbRemote":
        """Connects, retrying while the stub is not listening yet (until deadline, or until
        alive() says the process behind it is gone), then negotiates the session."""
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=1.0)
                break
            except OSError as e:
                if not alive() or time.monotonic() > deadline:
                    raise RspError(f"cannot connect to the gdbstub at {host}:{port}: {e}") from None
                time.sleep(0.02)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        remote = cls(sock, timeout)
        remote.handshake()
        return remote

    def handshake(self) -> None:
        features = self.command("qSupported:swbreak+;hwbreak+")
        for item in features.split(";"):
            if item.startswith("PacketSize="):
                self.packet_size = int(item.split("=", 1)[1], 16)
        if "QStartNoAckMode+" in features and self.command("QStartNoAckMode") == "OK":
            self.ack = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- packets
    def send(self, data: str) -> None:
        raw = data.encode()
        packet = b"$" + raw + b"#" + _checksum(raw)
        for _ in range(5):
            self.sock.sendall(packet)
            if not self.ack or self._read_ack():
                return
        raise RspError(f"the gdbstub refused packet {data[:40]!r} five times")

    def receive(self, timeout: float | None = None) -> str | None:
        """The next packet's data, or None when the stub closed the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            start = self._buf.find(b"$")
            if start >= 0:
                end = self._buf.find(b"#", start)
                if end >= 0 and len(self._buf) >= end + 3:
                    data, cs = self._buf[start + 1:end], self._buf[end + 1:end + 3]
                    self._buf = self._buf[end + 3:]
                    if cs.lower() != _checksum(data):
                        if self.ack:
                            self.sock.sendall(b"-")
                            continue
                        raise RspError(f"bad checksum from the gdbstub in {data[:40]!r}")
                    if self.ack:
                        self.sock.sendall(b"+")
                    return _unescape(data).decode("latin-1")
            if not self._fill(deadline):
                return None

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the gdbstub")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no answer from the gdbstub") from None
        except OSError:
            return False
        if not chunk:
            return False
        self._buf += chunk
        return True

    def _read_ack(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while True:
            while self._buf[:1] not in (b"+", b"-"):
                if self._buf[:1] == b"$":
                    raise RspError("the gdbstub answered without an ack")
                if self._buf:
                    self._buf = self._buf[1:]
                elif not self._fill(deadline):
                    raise RspError("the gdbstub closed the connection")
            ok = self._buf[:1] == b"+"
            self._buf = self._buf[1:]
            return ok

    def command(self, data: str, timeout: float | None = None) -> str:
        """Sends a packet and returns the reply's data; an `Exx` reply is an RspError."""
        self.send(data)
        reply = self.receive(timeout)
        if reply is None:
            raise RspError(f"the gdbstub closed the connection after {data[:40]!r}")
        if len(reply) == 3 and reply[0] == "E" and all(c in "0123456789abcdefABCDEF" for c in reply[1:]):
            raise RspError(f"the gdbstub answered {reply} to {data[:40]!r}")
        return reply

    # -- execution
    def _stop_reply(self, reply: str | None) -> StopReply:
        if reply is None:
            return StopReply("EOF", -1)
        kind = reply[:1]
        if kind in ("T", "S", "W", "X") and len(reply) >= 3:
            return StopReply(kind, int(reply[1:3], 16), reply)
        raise RspError(f"unexpected stop reply {reply[:60]!r} from the gdbstub")

    def status(self) -> StopReply:
        """`?`: why the target stopped."""
        self.send("?")
        return self._stop_reply(self.receive())

    def cont(self, timeout: float) -> StopReply:
        """`c`: runs until a breakpoint, the target's exit or the timeout (TimeoutError)."""
        self.send("c")
        return self._wait_stop(timeout)

    def step(self) -> StopReply:
        """`s`: one instruction."""
        self.send("s")
        return self._wait_stop(self.timeout)

    def _wait_stop(self, timeout: float) -> StopReply:
        while True:
            reply = self.receive(timeout)
            if reply and reply[0] == "O" and reply != "OK":   # console output from the stub
                continue
            return self._stop_reply(reply)

    # -- registers and memory
    def read_registers(self) -> list[int]:
        """`g`: the general registers r0-r15 (the rest of the reply is ignored)."""
        data = self.command("g")
        return [struct.unpack("<I", bytes.fromhex(data[8 * i:8 * i + 8]))[0] for i in range(16)]

    def read_register(self, n: int) -> int:
        """`p n` (QEMU answers it only after a target description was read), else from `g`."""
        reply = self.command(f"p{n:x}")
        if reply:
            return int.from_bytes(bytes.fromhex(reply[:8]), "little")
        return self.read_registers()[n]

    def _chunk(self) -> int:
        return max(16, (self.packet_size - 64) // 2 // 16 * 16)

    def read_memory(self, address: int, length: int) -> bytes:
        out = bytearray()
        step = self._chunk()
        for offset in range(0, length, step):
            n = min(step, length - offset)
            reply = self.command(f"m{address + offset:x},{n:x}")
            data = bytes.fromhex(reply)
            if len(data) != n:
                raise RspError(f"short memory read at 0x{address + offset:08x}: {len(data)} of {n} bytes")
            out += data
        return bytes(out)

    def write_memory(self, address: int, data: bytes) -> None:
        step = self._chunk()
        for offset in range(0, len(data), step):
            part = data[offset:offset + step]
            if self.command(f"M{address + offset:x},{len(part):x}:{part.hex()}") != "OK":
                raise RspError(f"memory write at 0x{address + offset:08x} refused")

    def read_u32(self, address: int) -> int:
        return struct.unpack("<I", self.read_memory(address, 4))[0]

    def set_breakpoint(self, address: int) -> None:
        if self.command(f"Z0,{address & ~1:x},2") != "OK":
            raise RspError(f"the gdbstub cannot set a breakpoint at 0x{address:08x}")

    def remove_breakpoint(self, address: int) -> None:
        if self.command(f"z0,{address & ~1:x},2") != "OK":
            raise RspError(f"the gdbstub cannot remove the breakpoint at 0x{address:08x}")
