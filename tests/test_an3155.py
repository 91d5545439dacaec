"""The STM32 ROM bootloader client (mcu_compile.device.an3155) against a simulated STM32F4
bootloader (stm32_bootloader.py) on a pty and over TCP: clean flashes, and every injected
fault ends either with the right flash after retries or with a FlashError, never with a
success over wrong flash."""
from __future__ import annotations

import random
import socket

import pytest

from mcu_compile.device.an3155 import (Bootloader, FlashError, ResetLines, enter_bootloader,
                                       flash_image, open_port, release_boot0, sectors_for,
                                       stm32f4_sectors)
from stm32_bootloader import (ERASE, EXTENDED_ERASE, GET, GET_ID, READ_MEMORY, WRITE_MEMORY,
                              Faults, Stm32F4Bootloader)

TIMEOUT = 0.3                  # the simulator answers in well under a millisecond
ORIGIN = 0x08000000
F4_SECTORS = stm32f4_sectors()
IMAGE = random.Random(3155).randbytes(40 * 1024 + 3)   # sectors 0-2; not a whole word
BLOCK = 256
WRITE_DATA = 8                 # frame offset of the first data byte of a Write Memory
READ_DATA = 3                  # reply offset of the first data byte of a Read Memory


@pytest.fixture
def start():
    """start(faults, transport, **simulator options) -> (simulator, Bootloader client)."""
    simulators, ports = [], []

    def start(faults: Faults | None = None, transport: str = "pty", **options):
        simulator = Stm32F4Bootloader(faults, **options)
        simulators.append(simulator)
        url = simulator.serve_pty() if transport == "pty" else simulator.serve_tcp()
        ports.append(open_port(url, 115200, 0.02))
        return simulator, Bootloader(ports[-1], timeout=TIMEOUT, sector_erase_timeout=0.5,
                                     mass_erase_timeout=3.0)
    yield start
    for port in ports:
        port.close()
    for simulator in simulators:
        simulator.stop()


def flash(client: Bootloader, image: bytes = IMAGE, **options):
    return flash_image(client, image, ORIGIN, chip_id=0x413, sectors=F4_SECTORS,
                       board_name="stm32f4-discovery", **options)


def assert_flashed(simulator: Stm32F4Bootloader, image: bytes = IMAGE) -> None:
    assert simulator.flash[:len(image)] == image
    assert simulator.flash[len(image):] == b"\xff" * (len(simulator.flash) - len(image))


# --- clean runs ----------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_clean_flash(start, transport):
    simulator, client = start(transport=transport)
    stages = []
    report = flash(client, progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert_flashed(simulator)
    assert simulator.erased_sectors == [0, 1, 2] and simulator.mass_erases == 0
    assert EXTENDED_ERASE in simulator.commands and ERASE not in simulator.commands
    assert simulator.go_address == ORIGIN
    assert report.sectors_erased == (0, 1, 2) and report.sectors_rewritten == ()
    assert report.image_size == len(IMAGE) and report.bytes_written == len(IMAGE) + 1
    assert report.chip_id == 0x413 and report.bootloader_version == 0x31
    assert ("write", len(IMAGE), len(IMAGE)) in stages and ("verify", len(IMAGE), len(IMAGE)) in stages
    assert stages[-1] == ("go", 1, 1)


def test_second_flash_on_a_synced_bootloader(start):
    # The chip stays synced: its answer to 0x7F is now a NACK, which the client accepts.
    simulator, client = start()
    flash(client, go=False)
    other = bytes(reversed(IMAGE))
    report = flash(client, other)
    assert_flashed(simulator, other)
    assert simulator.erased_sectors == [0, 1, 2, 0, 1, 2] and report.sectors_erased == (0, 1, 2)


def test_legacy_erase_when_extended_erase_is_missing(start):
    simulator, client = start(extended_erase=False)
    flash(client)
    assert_flashed(simulator)
    assert ERASE in simulator.commands and EXTENDED_ERASE not in simulator.commands
    assert simulator.erased_sectors == [0, 1, 2]


@pytest.mark.parametrize("extended", [True, False])
def test_mass_erase(start, extended):
    simulator, client = start(extended_erase=extended)
    simulator.flash[-4:] = b"\x00" * 4          # left over from an earlier application
    report = flash(client, mass_erase=True)
    assert_flashed(simulator)
    assert simulator.mass_erases == 1 and simulator.erased_sectors == []
    assert report.mass_erase and report.sectors_erased == tuple(range(12))


def test_slow_erase_has_its_own_timeout(start):
    # 3 sectors x 0.25 s: longer than the reply timeout, shorter than 3 x sector_erase_timeout.
    simulator, client = start(Faults(erase_seconds_per_sector=0.25))
    report = flash(client)
    assert_flashed(simulator)
    assert report.retries == 0 and simulator.erased_sectors == [0, 1, 2]


# --- faults that retries repair --------------------------------------------------------------

REPAIRABLE = {
    "nack 5th write": Faults(nack_write=5),
    "lose write command byte": Faults(drop_host_byte=(WRITE_MEMORY, 3, 0)),
    "lose write complement": Faults(drop_host_byte=(WRITE_MEMORY, 4, 1)),
    "lose write address byte": Faults(drop_host_byte=(WRITE_MEMORY, 6, 4)),
    "lose write length byte": Faults(drop_host_byte=(WRITE_MEMORY, 7, 7)),
    "lose write data byte": Faults(drop_host_byte=(WRITE_MEMORY, 8, WRITE_DATA + 100)),
    "lose write checksum": Faults(drop_host_byte=(WRITE_MEMORY, 9, WRITE_DATA + BLOCK)),
    "lose write ACK": Faults(drop_device_byte=(WRITE_MEMORY, 10, 2)),
    "lose read data byte": Faults(drop_device_byte=(READ_MEMORY, 20, READ_DATA + 255)),
    "lose read count byte": Faults(drop_host_byte=(READ_MEMORY, 21, 7)),
    "lose erase sector byte": Faults(drop_host_byte=(EXTENDED_ERASE, 1, 5)),
    "lose Get reply byte": Faults(drop_device_byte=(GET, 1, 3)),
    "lose Get ID reply byte": Faults(drop_device_byte=(GET_ID, 1, 2)),
    "late write ACK": Faults(delay_reply=(WRITE_MEMORY, 11, 2 * TIMEOUT)),
    "late read data": Faults(delay_reply=(READ_MEMORY, 30, 2 * TIMEOUT)),
}


@pytest.mark.parametrize("faults", REPAIRABLE.values(), ids=REPAIRABLE.keys())
def test_fault_is_retried(start, faults):
    simulator, client = start(faults)
    report = flash(client)
    assert simulator.faults_fired, "the fault was never injected"
    assert_flashed(simulator)
    assert report.retries > 0 and simulator.go_address == ORIGIN


@pytest.mark.parametrize("faults", [Faults(drop_device_byte=(READ_MEMORY, 20, READ_DATA + 7)),
                                    Faults(drop_host_byte=(WRITE_MEMORY, 8, WRITE_DATA + 9))],
                         ids=["lose read data byte", "lose write data byte"])
def test_fault_is_retried_over_tcp(start, faults):
    simulator, client = start(faults, transport="tcp")
    report = flash(client)
    assert simulator.faults_fired and report.retries > 0
    assert_flashed(simulator)


def test_flipped_bit_is_caught_by_verify_and_its_sector_rewritten(start):
    simulator, client = start(Faults(flip_bit_on_write=70))    # 70 x 256 B: in sector 1
    report = flash(client)
    assert simulator.faults_fired
    assert_flashed(simulator)
    assert report.sectors_rewritten == (1,) and report.retries > 0
    assert simulator.erased_sectors == [0, 1, 2, 1]


def test_short_read_is_never_accepted(start):
    simulator, client = start(Faults(drop_device_byte=(READ_MEMORY, 1, READ_DATA + 255)))
    client.tries = 1
    client.sync()
    with pytest.raises(FlashError, match=r"^no answer to Read Memory at 0x08000000 after 1 try$"):
        client.read_memory(ORIGIN, 256)


# --- faults that end in a FlashError -----------------------------------------------------------

def test_persistent_write_nack(start):
    simulator, client = start(Faults(nack_writes_to=0x08004000))
    with pytest.raises(FlashError, match=r"^write NACK at 0x08004000 after 3 tries$"):
        flash(client)
    assert simulator.go_address is None


def test_persistent_read_silence(start):
    simulator, client = start(Faults(silent_reads_at=0x08004000))
    with pytest.raises(FlashError, match=r"^no answer to Read Memory at 0x08004000 after 3 tries$"):
        flash(client)
    assert simulator.go_address is None


def test_stuck_bit_fails_after_one_rewrite(start):
    image = bytearray(IMAGE)
    image[0x4010] = 0xA5                           # bit 0 set, but the cell holds it at 0
    simulator, client = start(Faults(stuck_zero=(0x08004010, 0x01)))
    with pytest.raises(FlashError, match=r"^flash at 0x08004010 reads 0xA4, expected 0xA5, "
                                         r"after erasing and writing sector 1 again"):
        flash(client, bytes(image))
    assert simulator.erased_sectors == [0, 1, 2, 1] and simulator.go_address is None


def test_wrong_chip_id(start):
    simulator, client = start(chip_id=0x419)
    with pytest.raises(FlashError, match=r"^chip ID 0x419 but board stm32f4-discovery expects 0x413$"):
        flash(client)
    assert simulator.erased_sectors == [] and WRITE_MEMORY not in simulator.commands


def test_image_larger_than_flash_touches_nothing(start):
    simulator, client = start()
    with pytest.raises(FlashError, match=r"image of 1048580 bytes at 0x08000000-0x08100004 does "
                                         r"not fit the 1048576-byte flash at 0x08000000-0x08100000: "
                                         r"it runs 4 bytes past the end"):
        flash(client, bytes(1024 * 1024 + 4))
    assert simulator.commands == [] and not simulator.synced


def test_no_bootloader_on_the_line():
    with socket.create_server(("127.0.0.1", 0)) as silent:   # accepts, never answers
        url = f"socket://127.0.0.1:{silent.getsockname()[1]}"
        port = open_port(url, 115200, 0.02)
        try:
            with pytest.raises(FlashError, match=rf"^no answer to sync on {url}: set BOOT0 high "
                                                 r"and reset the board, check the port and baud rate$"):
                flash(Bootloader(port, timeout=0.15))
        finally:
            port.close()


def test_open_port_framing(start):
    # 8E1 on a real port; a pty has no parity bit, so the client falls back to 8N1 there.
    _, on_pty = start()
    assert (on_pty.link.bytesize, on_pty.link.parity, on_pty.link.stopbits) == (8, "N", 1)
    _, on_tcp = start(transport="tcp")
    assert on_tcp.link.parity == "E"
    assert on_tcp.link._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_missing_port():
    with pytest.raises(FlashError, match=r"^cannot open /dev/ttyNOPE0: \[Errno 2\] No such file or "
                                         r"directory; check the port name \(`python -m serial"):
        open_port("/dev/ttyNOPE0", 115200, 0.1)


# --- reset lines --------------------------------------------------------------------------------

class RecordingPort:
    def __init__(self):
        self.changes = []

    def __setattr__(self, name, value):
        if name in ("dtr", "rts"):
            self.changes.append((name, value))
        object.__setattr__(self, name, value)


def test_reset_lines_hold_boot0_and_pulse_reset():
    port, lines = RecordingPort(), ResetLines(reset="rts", boot0="dtr", hold_reset=False,
                                              boot0_high=True)
    enter_bootloader(port, lines)
    assert port.changes == [("dtr", True), ("rts", False), ("rts", True)]
    release_boot0(port, lines)
    assert port.changes[3:] == [("dtr", False)]
    enter_bootloader(port, None)
    release_boot0(port, None)
    assert len(port.changes) == 4


def test_reset_lines_on_a_pty_say_there_are_none(start):
    _, client = start()
    with pytest.raises(FlashError, match=r"^cannot drive DTR/RTS on /dev/pts/\d+: .*no modem lines"):
        enter_bootloader(client.link, ResetLines())


# --- sectors_for ----------------------------------------------------------------------------------

KIB = 1024


@pytest.mark.parametrize("start_address, length, expected", [
    (ORIGIN, 1, [0]),
    (ORIGIN, 16 * KIB, [0]),
    (ORIGIN, 16 * KIB + 1, [0, 1]),
    (ORIGIN + 16 * KIB - 1, 2, [0, 1]),
    (ORIGIN + 16 * KIB, 16 * KIB, [1]),
    (ORIGIN + 64 * KIB - 1, 1, [3]),
    (ORIGIN + 64 * KIB, 64 * KIB, [4]),
    (ORIGIN + 64 * KIB, 64 * KIB + 1, [4, 5]),
    (ORIGIN + 128 * KIB, 128 * KIB, [5]),
    (ORIGIN + 1024 * KIB - 1, 1, [11]),
    (ORIGIN, 1024 * KIB, list(range(12))),
    (ORIGIN, 0, []),
])
def test_sectors_for(start_address, length, expected):
    assert sectors_for(start_address, length, F4_SECTORS) == expected


@pytest.mark.parametrize("start_address, length, message", [
    (ORIGIN + 1024 * KIB - 1, 2, r"it runs 1 bytes past the end"),
    (ORIGIN - 4, 8, r"it starts 4 bytes below the flash"),
])
def test_sectors_for_refuses_images_outside_the_flash(start_address, length, message):
    with pytest.raises(FlashError, match=r"does not fit the 1048576-byte flash at "
                                         r"0x08000000-0x08100000: " + message):
        sectors_for(start_address, length, F4_SECTORS)
