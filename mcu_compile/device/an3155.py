"""A client for the STM32 ROM UART bootloader (ST application note AN3155).

It runs on top of any pyserial object: a USB-UART adapter (/dev/ttyACM0, COM3), a pty, or a
TCP bridge (socket://host:port, rfc2217://host:port). The wire format, in short: 8 data bits,
even parity, 1 stop bit; 0x7F synchronises (autobaud); the device answers ACK 0x79 or NACK 0x1F;
every command byte is followed by its complement; addresses are 4 bytes big-endian plus their
XOR; reads and writes carry at most 256 bytes.

The line is not trusted: a byte can be lost either way. Every read waits for exactly the
number of bytes expected (a short read is a timeout, never a shorter answer); a NACK or a
timeout re-synchronises and repeats the block, up to `tries` times; and `flash_image` reads
back every byte it wrote, so nothing is reported flashed that does not read back equal.
"""
from __future__ import annotations

import socket
import termios
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, Sequence

import serial

from ..errors import McuCompileError

ACK = 0x79
NACK = 0x1F
SYNC = 0x7F
MAX_BLOCK = 256                 # the most one Read/Write Memory carries
WORD = 4                        # the STM32 programs flash in words
POLL_SECONDS = 0.02             # the longest one pyserial read blocks; deadlines sit on top
SPECIAL_MASS_ERASE = 0xFFFF     # Extended Erase's "erase everything" code
ProgressCallback = Callable[[str, int, int], None]


class Command(IntEnum):
    GET = 0x00
    GET_VERSION = 0x01
    GET_ID = 0x02
    READ_MEMORY = 0x11
    GO = 0x21
    WRITE_MEMORY = 0x31
    ERASE = 0x43
    EXTENDED_ERASE = 0x44


COMMAND_NAMES = {
    Command.GET: "Get", Command.GET_VERSION: "Get Version", Command.GET_ID: "Get ID",
    Command.READ_MEMORY: "Read Memory", Command.GO: "Go", Command.WRITE_MEMORY: "Write Memory",
    Command.ERASE: "Erase", Command.EXTENDED_ERASE: "Extended Erase",
}


class FlashError(McuCompileError):
    """Flashing through the ROM bootloader failed: the port, no answer, a refusal, the wrong
    chip, or flash that does not read back as written."""
    exit_code = 1   # the command line's code for "the device work failed"


class _Refused(Exception):
    """The device answered NACK (or some other byte) where an ACK was due."""


class _NoAnswer(Exception):
    """The device sent fewer bytes than expected before the deadline."""


# --- opening the port -------------------------------------------------------------------

def open_port(port: str, baud: int = 115200, timeout: float = POLL_SECONDS) -> serial.SerialBase:
    """Open `port` (a device path or a pyserial URL) as 8E1, the bootloader's framing.

    `timeout` is the longest a single read call blocks; Bootloader keeps its own deadlines.
    """
    try:
        link = serial.serial_for_url(port, do_not_open=True)
        link.baudrate = baud
        link.bytesize = serial.EIGHTBITS
        link.parity = serial.PARITY_EVEN
        link.stopbits = serial.STOPBITS_ONE
        link.timeout = timeout
        _open_with_pty_fallback(link)
    except (serial.SerialException, OSError, ValueError, termios.error) as error:
        raise FlashError(f"cannot open {port}: {_describe(error)}; "
                         f"{_open_hint(port, error)}") from None
    _set_tcp_nodelay(link)
    return link


def _open_with_pty_fallback(link: serial.SerialBase) -> None:
    # A pty has no parity bit: Linux drops PARENB silently on open, and the next tcsetattr
    # that pyserial makes (e.g. for a new timeout) then fails with termios.error EINVAL.
    # Nothing is lost by no parity there, since a pty carries bytes, not line signals.
    try:
        link.open()
    except termios.error:
        link.parity = serial.PARITY_NONE
        link.open()
        return
    try:
        _set_read_timeout(link, link.timeout)   # re-applying the settings shows if parity stuck
    except BaseException:
        link.close()
        raise


def _set_read_timeout(link: serial.SerialBase, seconds: float | None) -> None:
    try:
        link.timeout = seconds
    except termios.error:
        link.parity = serial.PARITY_NONE    # see _open_with_pty_fallback
        link.timeout = seconds


def _set_tcp_nodelay(link: serial.SerialBase) -> None:
    # Without it Nagle's algorithm holds each small frame for the previous one's ACK:
    # 94 ms instead of 0.8 ms per write, three writes per 256-byte block.
    sock = getattr(link, "_socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _describe(error: Exception) -> str:
    # pyserial wraps the OSError in a longer message that repeats the port name.
    cause = error.__context__ if isinstance(error, serial.SerialException) else error
    if isinstance(cause, OSError) and cause.errno:
        return f"[Errno {cause.errno}] {cause.strerror}"
    return str(error)


def _open_hint(port: str, error: Exception) -> str:
    cause = error.__context__ if isinstance(error, serial.SerialException) else error
    errno = getattr(cause, "errno", None)
    if errno == 13:
        return "check the permissions (on Linux add your user to the dialout group)"
    if errno == 16:
        return "another program has the port open; close it"
    if "://" in port:
        return "check the host, the TCP port and that the server is listening"
    return "check the port name (`python -m serial.tools.list_ports`)"


# --- entering the bootloader --------------------------------------------------------------

@dataclass(frozen=True)
class ResetLines:
    """How the adapter's modem lines are wired to the board.

    `reset` and `boot0` name the line ("dtr" or "rts") wired to NRST and to BOOT0.
    `hold_reset` is the value to give pyserial's attribute (port.dtr / port.rts) that pulls
    NRST low; `boot0_high` the value that drives BOOT0 high. pyserial's True means
    "asserted", which a USB-UART chip outputs as a LOW pin; so with direct wiring
    (DTR# -> NRST, RTS# -> BOOT0) the defaults below apply; an inverting transistor flips one.
    """
    reset: str = "dtr"
    boot0: str = "rts"
    hold_reset: bool = True
    boot0_high: bool = False

    def __post_init__(self):
        if {self.reset, self.boot0} != {"dtr", "rts"}:
            raise ValueError(f"reset and boot0 must be 'dtr' and 'rts', one each: {self}")


RESET_PULSE_SECONDS = 0.01      # NRST needs microseconds; USB adapters apply line changes per ~1 ms frame
BOOT_SETTLE_SECONDS = 0.05      # the ROM needs a few ms after reset before it listens


def enter_bootloader(link: serial.SerialBase, lines: ResetLines | None) -> None:
    """Reset the chip with BOOT0 high so that it starts the ROM bootloader.

    `None` does nothing: a pty or a TCP bridge has no modem lines, the user resets by hand.
    """
    if lines is None:
        return
    try:
        setattr(link, lines.boot0, lines.boot0_high)
        setattr(link, lines.reset, lines.hold_reset)
        time.sleep(RESET_PULSE_SECONDS)
        setattr(link, lines.reset, not lines.hold_reset)
    except (OSError, serial.SerialException) as error:
        raise FlashError(f"cannot drive {lines.reset.upper()}/{lines.boot0.upper()} on "
                         f"{_port_name(link)}: {error}; this port has no modem lines: "
                         "flash without reset lines and set BOOT0 high and reset the board "
                         "by hand") from None
    time.sleep(BOOT_SETTLE_SECONDS)


def release_boot0(link: serial.SerialBase, lines: ResetLines | None) -> None:
    """Drive BOOT0 low again, so that the next reset starts the application."""
    if lines is not None:
        setattr(link, lines.boot0, not lines.boot0_high)


def _port_name(link) -> str:
    return getattr(link, "port", None) or getattr(link, "name", None) or repr(link)


# --- the protocol ---------------------------------------------------------------------------

def _with_checksum(payload: bytes) -> bytes:
    checksum = 0
    for byte in payload:
        checksum ^= byte
    return payload + bytes([checksum])


def _number_list(numbers: Sequence[int]) -> str:
    return ", ".join(str(number) for number in numbers)


def _tries_text(count: int) -> str:
    return "1 try" if count == 1 else f"{count} tries"


class Bootloader:
    """One STM32 ROM bootloader at the end of a pyserial link.

    timeout: the longest wait for any reply except an erase's.
    sector_erase_timeout: allowed per erased sector (an F4 128 KiB sector: 1-2 s, up to 4 s
    at low supply voltage). mass_erase_timeout: for erasing everything (1 MiB F4: up to 16 s,
    32 s at low voltage). tries: attempts per block or command before giving up.
    sync_attempts: 0x7F bytes sent before declaring the line silent.
    """

    def __init__(self, link: serial.SerialBase, *, timeout: float = 1.0,
                 sector_erase_timeout: float = 4.0, mass_erase_timeout: float = 40.0,
                 tries: int = 3, sync_attempts: int = 4):
        if min(timeout, sector_erase_timeout, mass_erase_timeout) <= 0 or tries < 1 \
                or sync_attempts < 2:
            raise ValueError("timeouts must be positive, tries >= 1 and sync_attempts >= 2")
        self.link = link
        self.timeout = timeout
        self.sector_erase_timeout = sector_erase_timeout
        self.mass_erase_timeout = mass_erase_timeout
        self.tries = tries
        self.sync_attempts = sync_attempts
        self.version: int | None = None
        self.commands: bytes = b""      # what Get said the bootloader supports
        self.retries = 0                # command attempts repeated after a NACK or timeout
        self.bytes_written = 0
        if not link.timeout or link.timeout > POLL_SECONDS:   # None blocks, 0 spins
            _set_read_timeout(link, POLL_SECONDS)

    @property
    def name(self) -> str:
        return _port_name(self.link)

    # -- bytes on the wire

    def _write(self, data: bytes) -> None:
        try:
            self.link.write(data)
        except (serial.SerialException, OSError) as error:
            raise FlashError(f"lost the connection to {self.name}: {error}") from None

    def _read_some(self, count: int) -> bytes:
        try:
            return self.link.read(count)
        except (serial.SerialException, OSError) as error:
            raise FlashError(f"lost the connection to {self.name}: {error}") from None

    def _read_exact(self, count: int, timeout: float) -> bytes:
        # Ask only for what is still missing: pyserial's read(n) on a socket throws away what it
        # gathered if the peer closes, and a longer request could swallow the next reply.
        deadline = time.monotonic() + timeout
        received = bytearray()
        while len(received) < count:
            if time.monotonic() >= deadline:
                raise _NoAnswer(f"{len(received)} of {count} bytes")
            received += self._read_some(count - len(received))
        return bytes(received)

    def _expect_ack(self, timeout: float | None = None) -> None:
        reply = self._read_exact(1, timeout or self.timeout)[0]
        if reply != ACK:
            raise _Refused(reply)

    def _send_command(self, code: int) -> None:
        self._write(bytes([code, code ^ 0xFF]))
        self._expect_ack()

    def _send_address(self, address: int) -> None:
        self._write(_with_checksum(address.to_bytes(4, "big")))
        self._expect_ack()

    # -- synchronisation

    def sync(self, reset: ResetLines | None = None) -> None:
        """Reset into the bootloader if wired, then send 0x7F until it answers."""
        enter_bootloader(self.link, reset)
        self.link.reset_input_buffer()
        for _ in range(self.sync_attempts):
            if self._send_sync_byte():
                return
        raise FlashError(f"no answer to sync on {self.name}: set BOOT0 high and reset the "
                         "board, check the port and baud rate")

    def _send_sync_byte(self) -> bool:
        # ACK: autobaud done. NACK: it was synced already and took an earlier 0x7F as a
        # command byte, this one as a wrong complement; either way it now awaits a command.
        self._write(bytes([SYNC]))
        try:
            reply = self._read_exact(1, self.timeout)[0]
        except _NoAnswer:
            return False
        return reply in (ACK, NACK)

    def _resync(self) -> None:
        # A failed exchange leaves the device anywhere in a frame: let its late replies
        # arrive and drop them, so that none is taken for the answer to 0x7F; then feed 0x7F
        # bytes until it answers, which completes (and rejects) whatever frame it was reading.
        self._wait_for_quiet(self.timeout)
        for _ in range(self.sync_attempts):
            if self._send_sync_byte():
                return

    def _wait_for_quiet(self, quiet: float) -> None:
        self.link.reset_input_buffer()
        last_byte = time.monotonic()
        give_up = last_byte + 10 * quiet          # a babbling line must not hang us
        while time.monotonic() < give_up:
            if self._read_some(MAX_BLOCK):
                last_byte = time.monotonic()
            elif time.monotonic() - last_byte >= quiet:
                return

    def _with_retries(self, exchange: Callable[[], object], *, refused: str, silent: str):
        """Run one command exchange; on NACK or timeout re-sync and run it again."""
        for attempt in range(1, self.tries + 1):
            try:
                return exchange()
            except _Refused:
                failure = refused
            except _NoAnswer:
                failure = silent
            if attempt < self.tries:
                self.retries += 1
                self._resync()
        raise FlashError(f"{failure} after {_tries_text(self.tries)}")

    # -- commands

    def get(self) -> bytes:
        """Get (0x00): the bootloader version and the command codes it supports."""
        def exchange():
            self._send_command(Command.GET)
            count = self._read_exact(1, self.timeout)[0]
            body = self._read_exact(count + 1, self.timeout)
            self._expect_ack()
            return body
        body = self._with_retries(exchange, refused="Get NACK", silent="no answer to Get")
        self.version, self.commands = body[0], bytes(body[1:])
        return self.commands

    def get_id(self) -> int:
        """Get ID (0x02): the product ID, e.g. 0x413 for an STM32F405/407."""
        def exchange():
            self._send_command(Command.GET_ID)
            count = self._read_exact(1, self.timeout)[0]
            product = self._read_exact(count + 1, self.timeout)
            self._expect_ack()
            return int.from_bytes(product, "big")
        return self._with_retries(exchange, refused="Get ID NACK", silent="no answer to Get ID")

    def read_memory(self, address: int, length: int) -> bytes:
        """Read Memory (0x11): exactly `length` (1-256) bytes from `address`."""
        if not 1 <= length <= MAX_BLOCK:
            raise ValueError(f"Read Memory carries 1-{MAX_BLOCK} bytes, not {length}")

        def exchange():
            self._send_command(Command.READ_MEMORY)
            self._send_address(address)
            self._write(bytes([length - 1, (length - 1) ^ 0xFF]))
            self._expect_ack()
            return self._read_exact(length, self.timeout)
        return self._with_retries(exchange, refused=f"read NACK at 0x{address:08X}",
                                  silent=f"no answer to Read Memory at 0x{address:08X}")

    def write_memory(self, address: int, data: bytes) -> None:
        """Write Memory (0x31): 4-256 bytes, a multiple of 4, at a word-aligned address."""
        if not WORD <= len(data) <= MAX_BLOCK or len(data) % WORD or address % WORD:
            raise ValueError(f"Write Memory needs whole words (at most {MAX_BLOCK} bytes) at a "
                             f"word address: {len(data)} bytes at 0x{address:08X}")
        frame = _with_checksum(bytes([len(data) - 1]) + data)

        def exchange():
            self._send_command(Command.WRITE_MEMORY)
            self._send_address(address)
            self._write(frame)
            self._expect_ack()
        self._with_retries(exchange, refused=f"write NACK at 0x{address:08X}",
                           silent=f"no answer to Write Memory at 0x{address:08X}")
        self.bytes_written += len(data)

    def erase(self, sectors: Sequence[int] | None) -> None:
        """Erase the numbered sectors (pages), or all of the flash when `sectors` is None.

        Uses Extended Erase (0x44) if Get listed it, else the legacy Erase (0x43).
        """
        if not self.commands:
            self.get()
        if Command.EXTENDED_ERASE in self.commands:
            code, payload = Command.EXTENDED_ERASE, _extended_erase_payload(sectors)
        elif Command.ERASE in self.commands:
            code, payload = Command.ERASE, _legacy_erase_payload(sectors)
        else:
            raise FlashError(f"the bootloader on {self.name} offers neither Erase (0x43) nor "
                             "Extended Erase (0x44)")
        deadline = (self.mass_erase_timeout if sectors is None
                    else self.sector_erase_timeout * len(sectors))
        what = "mass erase" if sectors is None else f"sectors {_number_list(sectors)}"

        def exchange():
            self._send_command(code)
            self._write(payload)
            self._expect_ack(deadline)     # the device answers only once the flash is erased
        self._with_retries(exchange, refused=f"erase NACK for {what}",
                           silent=f"no answer to {COMMAND_NAMES[code]} of {what}")

    def go(self, address: int) -> None:
        """Go (0x21): jump to the application whose vector table is at `address`."""
        self._with_retries(lambda: self._send_command(Command.GO), refused="Go NACK",
                           silent="no answer to Go")
        # Not retried past this point: once the address is accepted the bootloader is gone.
        try:
            self._send_address(address)
        except _Refused:
            raise FlashError(f"Go NACK at 0x{address:08X}: the bootloader refuses to start "
                             "there; check the image's load address") from None
        except _NoAnswer:
            raise FlashError(f"no answer to Go at 0x{address:08X}: the image is written and "
                             "verified; set BOOT0 low and reset the board to start it") from None


def _extended_erase_payload(sectors: Sequence[int] | None) -> bytes:
    if sectors is None:
        return _with_checksum(SPECIAL_MASS_ERASE.to_bytes(2, "big"))
    if not 1 <= len(sectors) <= 0xFFF0 or any(not 0 <= s < 0xFFF0 for s in sectors):
        raise ValueError(f"Extended Erase takes 1-65520 sectors numbered below 0xFFF0: {sectors}")
    body = (len(sectors) - 1).to_bytes(2, "big")
    body += b"".join(sector.to_bytes(2, "big") for sector in sectors)
    return _with_checksum(body)


def _legacy_erase_payload(sectors: Sequence[int] | None) -> bytes:
    if sectors is None:
        return bytes([0xFF, 0x00])             # global erase: 0xFF and its checksum
    if not 1 <= len(sectors) <= 255 or any(not 0 <= s <= 255 for s in sectors):
        raise ValueError(f"Erase takes 1-255 pages numbered 0-255: {sectors}")
    return _with_checksum(bytes([len(sectors) - 1, *sectors]))


# --- flash layout --------------------------------------------------------------------------

def stm32f4_sectors(flash_size: int = 1 << 20, origin: int = 0x08000000) -> list[tuple[int, int]]:
    """The single-bank STM32F4 sector layout: 4x16 KiB, 64 KiB, then 128 KiB sectors."""
    kib = 1024
    if flash_size < 256 * kib or flash_size > 1024 * kib or flash_size % (128 * kib):
        raise ValueError(f"an STM32F4 single bank holds 256 KiB-1 MiB in 128 KiB steps, "
                         f"not {flash_size} bytes")
    sizes = [16 * kib] * 4 + [64 * kib] + [128 * kib] * (flash_size // (128 * kib) - 1)
    sectors, address = [], origin
    for size in sizes:
        sectors.append((address, size))
        address += size
    return sectors


def sectors_for(image_start: int, image_len: int, sectors: Sequence[tuple[int, int]]) -> list[int]:
    """The indices of the sectors (given as (origin, size), in address order) that the
    image [image_start, image_start + image_len) touches."""
    if image_len <= 0:
        return []
    _check_sector_order(sectors)
    flash_start, flash_end = sectors[0][0], sectors[-1][0] + sectors[-1][1]
    image_end = image_start + image_len
    if image_start < flash_start or image_end > flash_end:
        raise FlashError(f"image of {image_len} bytes at 0x{image_start:08X}-0x{image_end:08X} "
                         f"does not fit the {flash_end - flash_start}-byte flash at "
                         f"0x{flash_start:08X}-0x{flash_end:08X}: "
                         f"{_overrun(image_start, image_end, flash_start, flash_end)}")
    touched = [index for index, (origin, size) in enumerate(sectors)
               if origin < image_end and image_start < origin + size]
    covered = sum(min(origin + size, image_end) - max(origin, image_start)
                  for origin, size in (sectors[index] for index in touched))
    if covered != image_len:
        raise FlashError(f"image at 0x{image_start:08X}-0x{image_end:08X} crosses a gap "
                         "between the board's flash sectors")
    return touched


def _check_sector_order(sectors: Sequence[tuple[int, int]]) -> None:
    if not sectors:
        raise FlashError("the board lists no flash sectors")
    for (origin, size), (next_origin, _) in zip(sectors, sectors[1:]):
        if size <= 0 or next_origin < origin + size:
            raise FlashError(f"flash sector at 0x{origin:08X} overlaps the next one or is "
                             "empty; list sectors in address order")


def _overrun(image_start: int, image_end: int, flash_start: int, flash_end: int) -> str:
    if image_start < flash_start:
        return f"it starts {flash_start - image_start} bytes below the flash"
    return f"it runs {image_end - flash_end} bytes past the end; shrink the image"


# --- flashing a whole image ---------------------------------------------------------------

@dataclass(frozen=True)
class FlashReport:
    """What flash_image did. `retries` counts every repeated command after a NACK or a
    timeout plus every sector erased and written again after a verify mismatch."""
    address: int
    image_size: int
    bytes_written: int                 # sent in Write Memory, with padding and rewrites
    sectors_erased: tuple[int, ...]    # every sector when mass_erase
    mass_erase: bool
    sectors_rewritten: tuple[int, ...]
    retries: int
    elapsed_s: float
    chip_id: int
    bootloader_version: int


def flash_image(link: Bootloader | serial.SerialBase, image: bytes, address: int, *,
                chip_id: int | None, sectors: Sequence[tuple[int, int]], board_name: str,
                mass_erase: bool = False, go: bool = True,
                progress: ProgressCallback | None = None,
                reset_lines: ResetLines | None = None) -> FlashReport:
    """Erase, write, read back and compare `image` at `address`, then start it if `go`.

    `link` is a Bootloader or a bare pyserial object (then with default timeouts).
    `progress(stage, done, total)` is called with the stages "erase" (sectors), "write",
    "verify", "rewrite" (bytes) and "go". Erasing works by whole sectors: whatever else
    the sectors under the image held is erased too.
    """
    image = bytes(image)
    if not image:
        raise FlashError("nothing to flash: the image is empty")
    if address % WORD:
        raise FlashError(f"image address 0x{address:08X} is not a multiple of 4: the "
                         "bootloader writes whole words")
    needed = sectors_for(address, len(image), sectors)     # refuse before touching the board
    boot = link if isinstance(link, Bootloader) else Bootloader(link)
    notify = progress or (lambda stage, done, total: None)
    started, retries_before, written_before = time.monotonic(), boot.retries, boot.bytes_written

    boot.sync(reset_lines)
    boot.get()
    found_id = boot.get_id()
    if chip_id is not None and found_id != chip_id:
        raise FlashError(f"chip ID 0x{found_id:03X} but board {board_name} expects "
                         f"0x{chip_id:03X}")
    erased = _erase_for_image(boot, needed, len(sectors), mass_erase, notify)
    _write_range(boot, address, image, notify, "write")
    rewritten = _verify_and_repair(boot, address, image, sectors, needed, notify)
    if go:
        notify("go", 0, 1)
        release_boot0(boot.link, reset_lines)
        boot.go(address)
        notify("go", 1, 1)
    return FlashReport(
        address=address, image_size=len(image),
        bytes_written=boot.bytes_written - written_before,
        sectors_erased=erased, mass_erase=mass_erase, sectors_rewritten=rewritten,
        retries=boot.retries - retries_before + len(rewritten),
        elapsed_s=time.monotonic() - started, chip_id=found_id,
        bootloader_version=boot.version)


def _erase_for_image(boot: Bootloader, needed: list[int], sector_count: int, mass_erase: bool,
                     notify: ProgressCallback) -> tuple[int, ...]:
    erased = list(range(sector_count)) if mass_erase else needed
    notify("erase", 0, len(erased))
    boot.erase(None if mass_erase else needed)
    notify("erase", len(erased), len(erased))
    return tuple(erased)


def _write_range(boot: Bootloader, start: int, data: bytes, notify: ProgressCallback,
                 stage: str) -> None:
    # The last block is padded with 0xFF (what erased flash holds) to a whole word.
    padded = data + b"\xff" * (-len(data) % WORD)
    for offset in range(0, len(padded), MAX_BLOCK):
        notify(stage, min(offset, len(data)), len(data))
        boot.write_memory(start + offset, padded[offset:offset + MAX_BLOCK])
    notify(stage, len(data), len(data))


def _read_range(boot: Bootloader, start: int, length: int, notify: ProgressCallback,
                stage: str) -> bytes:
    received = bytearray()
    for offset in range(0, length, MAX_BLOCK):
        notify(stage, offset, length)
        received += boot.read_memory(start + offset, min(MAX_BLOCK, length - offset))
    notify(stage, length, length)
    return bytes(received)


def _verify_and_repair(boot: Bootloader, address: int, image: bytes,
                       sectors: Sequence[tuple[int, int]], needed: list[int],
                       notify: ProgressCallback) -> tuple[int, ...]:
    """Read the image back; re-erase and rewrite, once, each sector that differs."""
    flash = _read_range(boot, address, len(image), notify, "verify")
    spans = {index: _image_span(address, len(image), sectors[index]) for index in needed}
    bad = [index for index, (lo, hi) in spans.items() if flash[lo:hi] != image[lo:hi]]
    if not bad:
        return ()
    # Flash bits only go from 1 to 0 when written: a wrong byte needs its sector erased again.
    boot.erase(bad)
    for index in bad:
        lo, hi = spans[index]
        _write_range(boot, address + lo, image[lo:hi], notify, "rewrite")
        again = _read_range(boot, address + lo, hi - lo, notify, "verify")
        _fail_on_difference(address + lo, image[lo:hi], again, index)
    return tuple(bad)


def _image_span(address: int, length: int, sector: tuple[int, int]) -> tuple[int, int]:
    """The image offsets [lo, hi) that fall in `sector`."""
    origin, size = sector
    return max(origin - address, 0), min(origin + size - address, length)


def _fail_on_difference(start: int, expected: bytes, actual: bytes, sector: int) -> None:
    for offset, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            raise FlashError(f"flash at 0x{start + offset:08X} reads 0x{got:02X}, expected "
                             f"0x{want:02X}, after erasing and writing sector {sector} again; "
                             "the sector may be worn out or write-protected")
