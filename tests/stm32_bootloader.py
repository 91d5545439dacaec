"""A simulated STM32F4 ROM UART bootloader, written from ST application note AN3155 (not from
the client it tests), served over a pseudo-terminal or a TCP socket by a background thread.

The device owns 1 MiB of flash at 0x08000000 in the F4 sector layout (4x16 KiB, 64 KiB,
7x128 KiB), erased to 0xFF; writes can only clear bits (new = old & data), like real flash.
It speaks the protocol byte by byte: a lost byte leaves it waiting in the middle of a frame,
exactly as a real chip would be, and it takes whatever comes next as the missing byte.

Faults (see Faults) make it lose bytes either way, refuse writes, answer late, corrupt flash
or report another chip; what it saw and did is recorded for the tests to check.
"""
from __future__ import annotations

import collections
import os
import select
import socket
import threading
import time
import tty
from dataclasses import dataclass

ACK, NACK, SYNC = 0x79, 0x1F, 0x7F
GET, GET_VERSION, GET_ID = 0x00, 0x01, 0x02
READ_MEMORY, GO, WRITE_MEMORY, ERASE, EXTENDED_ERASE = 0x11, 0x21, 0x31, 0x43, 0x44
BOOTLOADER_VERSION = 0x31
KIB = 1024
FLASH_ORIGIN = 0x08000000
F4_SECTOR_SIZES = (16 * KIB,) * 4 + (64 * KIB,) + (128 * KIB,) * 7
RAM_ORIGIN, RAM_SIZE = 0x20000000, 128 * KIB
POLL_SECONDS = 0.05       # how often the serving thread looks at its stop flag


@dataclass
class Faults:
    """What to get wrong. Commands are counted from 1, separately for each command code;
    a frame offset counts the bytes of one command as the host sends them (0 is the command
    byte, 1 its complement, 2-5 the address, 6 its checksum, then the rest) or, for the
    device's side, as the device would send them (0 is the ACK to the command byte)."""
    nack_write: int | None = None          # NACK the Nth Write Memory once, writing nothing
    nack_writes_to: int | None = None      # NACK every Write Memory to this address
    drop_host_byte: tuple[int, int, int] | None = None    # (command, n, offset), once
    drop_device_byte: tuple[int, int, int] | None = None  # (command, n, offset), once
    delay_reply: tuple[int, int, float] | None = None     # (command, n, seconds): hold back its last reply
    silent_reads_at: int | None = None     # never send the data of a Read Memory at this address
    flip_bit_on_write: int | None = None   # after the Nth Write Memory, flip bit 0 of its first byte
    stuck_zero: tuple[int, int] | None = None  # (address, mask): bits that read 0 even when erased
    erase_seconds_per_sector: float = 0.0  # a real F4 takes about 1 s per 128 KiB sector


class _LinkClosed(Exception):
    """The host went away or the simulator is stopping."""


class _ByteLink:
    """Bytes from and to the host over a file descriptor or a socket, one at a time."""

    def __init__(self, stop: threading.Event, receive, send, waitable):
        self._stop, self._receive, self._send, self._waitable = stop, receive, send, waitable
        self._pending: collections.deque[int] = collections.deque()

    def take(self) -> int:
        while not self._pending:
            if self._stop.is_set():
                raise _LinkClosed
            ready, _, _ = select.select([self._waitable], [], [], POLL_SECONDS)
            if ready:
                try:
                    chunk = self._receive(4096)
                except OSError:
                    raise _LinkClosed from None
                if not chunk:
                    raise _LinkClosed
                self._pending.extend(chunk)
        return self._pending.popleft()

    def send(self, data: bytes) -> None:
        try:
            self._send(data)
        except OSError:
            raise _LinkClosed from None


def _pty_link(master: int, stop: threading.Event) -> _ByteLink:
    def send_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(master, view):]
    return _ByteLink(stop, lambda size: os.read(master, size), send_all, master)


def _socket_link(connection: socket.socket, stop: threading.Event) -> _ByteLink:
    return _ByteLink(stop, connection.recv, connection.sendall, connection)


def _xor(*groups) -> int:
    checksum = 0
    for group in groups:
        for byte in (group if isinstance(group, (bytes, bytearray, list, tuple)) else [group]):
            checksum ^= byte
    return checksum


class Stm32F4Bootloader:
    """The ROM bootloader of an STM32F405/407 (product ID 0x413), bootloader version 3.1."""

    def __init__(self, faults: Faults | None = None, *, chip_id: int = 0x413,
                 extended_erase: bool = True, sector_sizes: tuple[int, ...] = F4_SECTOR_SIZES):
        self.faults = faults or Faults()
        self.chip_id = chip_id
        self.sector_sizes = sector_sizes
        self.flash = bytearray(b"\xff" * sum(sector_sizes))
        self.ram = bytearray(RAM_SIZE)
        erase_code = EXTENDED_ERASE if extended_erase else ERASE
        self.supported = bytes([GET, GET_VERSION, GET_ID, READ_MEMORY, GO, WRITE_MEMORY, erase_code])
        # What happened, for the tests:
        self.commands: list[int] = []        # codes received with a correct complement
        self.erased_sectors: list[int] = []  # in order, repeats kept
        self.mass_erases = 0
        self.go_address: int | None = None
        self.faults_fired: list[str] = []
        self.synced = False
        self._counts: collections.Counter[int] = collections.Counter()
        self._spent: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closables: list = []
        self._frame = (None, 0)              # (command code, its number) being served
        self._host_offset = self._device_offset = 0
        self._link: _ByteLink | None = None
        self._handlers = {GET: self._get, GET_VERSION: self._get_version, GET_ID: self._get_id,
                          READ_MEMORY: self._read_memory, GO: self._go,
                          WRITE_MEMORY: self._write_memory, ERASE: self._erase,
                          EXTENDED_ERASE: self._extended_erase}

    # --- serving ---------------------------------------------------------------------------

    def serve_pty(self) -> str:
        """Serve on a new pseudo-terminal; returns the path the client opens."""
        master, slave = os.openpty()
        tty.setraw(slave)            # no echo or line editing before the client configures it
        self._closables += [master, slave]   # holding the slave keeps the master readable
        self._start(lambda: self._serve(_pty_link(master, self._stop)))
        return os.ttyname(slave)

    def serve_tcp(self) -> str:
        """Serve one client at a time on 127.0.0.1; returns the socket:// URL."""
        server = socket.create_server(("127.0.0.1", 0))
        self._closables.append(server)
        self._start(lambda: self._accept_loop(server))
        return f"socket://127.0.0.1:{server.getsockname()[1]}"

    def _accept_loop(self, server: socket.socket) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([server], [], [], POLL_SECONDS)
            if not ready:
                continue
            connection, _ = server.accept()
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with connection:
                self._serve(_socket_link(connection, self._stop))

    def _start(self, target) -> None:
        thread = threading.Thread(target=target, daemon=True, name="stm32-bootloader")
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for item in self._closables:
            if isinstance(item, socket.socket):
                item.close()
            else:
                os.close(item)
        self._closables.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _serve(self, link: _ByteLink) -> None:
        self._link = link
        try:
            while True:
                if self.go_address is not None:
                    link.take()              # the application runs; the bootloader is gone
                elif not self.synced:
                    self._await_sync()
                else:
                    self._serve_command()
        except _LinkClosed:
            pass

    def _await_sync(self) -> None:
        # Before autobaud the USART only recognises 0x7F; anything else is noise.
        if self._link.take() == SYNC:
            self.synced = True
            self._link.send(bytes([ACK]))

    # --- bytes in and out, with the byte-level faults ----------------------------------------

    def _serve_command(self) -> None:
        code = self._link.take()
        self._counts[code] += 1
        self._frame = (code, self._counts[code])
        self._host_offset, self._device_offset = 1, 0
        if self._fires("drop_host_byte", self.faults.drop_host_byte, 0):
            return                           # never seen: the next byte is a command byte
        if self._take() != code ^ 0xFF:
            self._reply(NACK)
            return
        handler = self._handlers.get(code)
        if handler is None or code not in self.supported:
            self._reply(NACK)
            return
        self.commands.append(code)
        handler()

    def _fires(self, name: str, rule: tuple | None, offset: int) -> bool:
        """Whether a once-only (command, n, offset) fault applies to this byte; spends it."""
        if rule is None or name in self._spent or rule[:2] != self._frame or rule[2] != offset:
            return False
        self._spent.add(name)
        self.faults_fired.append(f"{name} {rule}")
        return True

    def _take(self) -> int:
        while True:
            byte = self._link.take()
            offset, self._host_offset = self._host_offset, self._host_offset + 1
            if not self._fires("drop_host_byte", self.faults.drop_host_byte, offset):
                return byte

    def _take_bytes(self, count: int) -> bytes:
        return bytes(self._take() for _ in range(count))

    def _reply(self, data: int | bytes, *, last: bool = False) -> None:
        data = bytes([data]) if isinstance(data, int) else data
        if last and self._fires("delay_reply", self._delay_rule(), 0):
            time.sleep(self.faults.delay_reply[2])
        kept = bytearray()
        for byte in data:
            offset, self._device_offset = self._device_offset, self._device_offset + 1
            if not self._fires("drop_device_byte", self.faults.drop_device_byte, offset):
                kept.append(byte)
        self._link.send(bytes(kept))

    def _delay_rule(self) -> tuple | None:
        rule = self.faults.delay_reply
        return None if rule is None else (rule[0], rule[1], 0)

    def _take_address(self) -> int | None:
        """4 address bytes and their XOR; NACKs and returns None if either is wrong."""
        raw = self._take_bytes(4)
        if self._take() != _xor(raw) or self._memory_at(int.from_bytes(raw, "big"), 1) is None:
            self._reply(NACK)
            return None
        return int.from_bytes(raw, "big")

    # --- memory --------------------------------------------------------------------------

    def _memory_at(self, address: int, count: int) -> tuple[bytearray, int] | None:
        """The memory holding [address, address + count) and the offset in it, or None."""
        for origin, memory in ((FLASH_ORIGIN, self.flash), (RAM_ORIGIN, self.ram)):
            if origin <= address and address + count <= origin + len(memory):
                return memory, address - origin
        return None

    def _program(self, address: int, data: bytes) -> None:
        memory, offset = self._memory_at(address, len(data))
        if memory is self.flash:
            for index, byte in enumerate(data):
                memory[offset + index] &= byte           # programming only clears bits
        else:
            memory[offset:offset + len(data)] = data
        self._apply_stuck_bits()

    def _erase_sectors(self, sectors: list[int]) -> None:
        time.sleep(self.faults.erase_seconds_per_sector * len(sectors))
        for sector in sectors:
            start = sum(self.sector_sizes[:sector])
            self.flash[start:start + self.sector_sizes[sector]] = b"\xff" * self.sector_sizes[sector]
        self._apply_stuck_bits()

    def _apply_stuck_bits(self) -> None:
        if self.faults.stuck_zero is not None:
            address, mask = self.faults.stuck_zero
            self.flash[address - FLASH_ORIGIN] &= ~mask & 0xFF

    # --- commands (AN3155 section 3) ----------------------------------------------------------

    def _get(self) -> None:
        self._reply(ACK)
        body = bytes([BOOTLOADER_VERSION]) + self.supported
        self._reply(bytes([len(body) - 1]) + body + bytes([ACK]), last=True)

    def _get_version(self) -> None:
        self._reply(ACK)
        self._reply(bytes([BOOTLOADER_VERSION, 0x00, 0x00, ACK]), last=True)

    def _get_id(self) -> None:
        self._reply(ACK)
        self._reply(bytes([1]) + self.chip_id.to_bytes(2, "big") + bytes([ACK]), last=True)

    def _read_memory(self) -> None:
        self._reply(ACK)
        address = self._take_address()
        if address is None:
            return
        self._reply(ACK)
        count_minus_one, check = self._take(), self._take()
        found = self._memory_at(address, count_minus_one + 1)
        if check != count_minus_one ^ 0xFF or found is None:
            self._reply(NACK)
            return
        self._reply(ACK)
        memory, offset = found
        if address == self.faults.silent_reads_at:
            self.faults_fired.append(f"silent read at 0x{address:08X}")
            return
        self._reply(bytes(memory[offset:offset + count_minus_one + 1]), last=True)

    def _write_memory(self) -> None:
        self._reply(ACK)
        address = self._take_address()
        if address is None:
            return
        self._reply(ACK)
        count_minus_one = self._take()
        data = self._take_bytes(count_minus_one + 1)
        checksum = self._take()
        if (checksum != _xor(count_minus_one, data) or len(data) % 4 or address % 4
                or self._memory_at(address, len(data)) is None or self._refuses_write(address)):
            self._reply(NACK)
            return
        self._program(address, data)
        self._maybe_flip_bit(address)
        self._reply(ACK, last=True)

    def _refuses_write(self, address: int) -> bool:
        if address == self.faults.nack_writes_to:
            self.faults_fired.append(f"nack write at 0x{address:08X}")
            return True
        return self._fires("nack_write", (WRITE_MEMORY, self.faults.nack_write, 0)
                           if self.faults.nack_write else None, 0)

    def _maybe_flip_bit(self, address: int) -> None:
        number = self.faults.flip_bit_on_write
        if self._fires("flip_bit", (WRITE_MEMORY, number, 0) if number else None, 0):
            self.flash[address - FLASH_ORIGIN] ^= 0x01

    def _go(self) -> None:
        self._reply(ACK)
        address = self._take_address()
        if address is None:
            return
        self.go_address = address            # recorded before the ACK the client waits for
        self._reply(ACK, last=True)

    def _extended_erase(self) -> None:
        self._reply(ACK)
        head = self._take_bytes(2)
        value = int.from_bytes(head, "big")
        if value >= 0xFFF0:                  # special erase: 0xFFFF all, 0xFFFE/D a bank
            if self._take() != _xor(head) or value != 0xFFFF:
                self._reply(NACK)            # one bank only on a 1 MiB F4
                return
            self._mass_erase()
            return
        raw = self._take_bytes(2 * (value + 1))
        sectors = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
        self._finish_sector_erase(sectors, self._take() == _xor(head, raw))

    def _erase(self) -> None:
        self._reply(ACK)
        count_minus_one = self._take()
        if count_minus_one == 0xFF:          # global erase, checksum 0x00
            if self._take() != 0x00:
                self._reply(NACK)
                return
            self._mass_erase()
            return
        pages = list(self._take_bytes(count_minus_one + 1))
        self._finish_sector_erase(pages, self._take() == _xor(count_minus_one, pages))

    def _finish_sector_erase(self, sectors: list[int], checksum_ok: bool) -> None:
        if not checksum_ok or any(sector >= len(self.sector_sizes) for sector in sectors):
            self._reply(NACK)
            return
        self._erase_sectors(sectors)
        self.erased_sectors += sectors
        self._reply(ACK, last=True)

    def _mass_erase(self) -> None:
        self._erase_sectors(list(range(len(self.sector_sizes))))
        self.mass_erases += 1
        self._reply(ACK, last=True)
