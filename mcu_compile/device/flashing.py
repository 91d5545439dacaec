"""`mcu-compile flash DIR --port PORT`: the project's firmware into the board's flash
through its ROM bootloader, as its board file's [flash_loader] says."""
from __future__ import annotations

from ..errors import InputError
from ..project import CompiledModel
from ..target.elf import flash_image as elf_flash_image
from .an3155 import Bootloader, FlashError, FlashReport, ResetLines, flash_image, open_port


def reset_lines(loader: dict, use_lines: bool) -> ResetLines | None:
    """The board's wiring of RESET/BOOT0 to DTR/RTS; None when it has none (a pty, TCP)
    or the user turned it off."""
    if not use_lines or loader.get("reset", "none") == "none" or loader.get("boot0", "none") == "none":
        return None
    return ResetLines(reset=loader["reset"], boot0=loader["boot0"])


def flash_project(compiled: CompiledModel, port: str, baud: int | None = None, *, mass_erase: bool = False,
                  go: bool = True, use_reset_lines: bool = True, progress=None,
                  timeout: float = 1.0) -> FlashReport:
    """Builds the project, takes the ELF's load image for the flash, and writes, verifies
    and starts it."""
    board = compiled.board
    loader = board.flash_loader
    if loader is None:
        raise InputError(f"board {board.name} has no [flash_loader] in its board file: flash "
                         f"{compiled.project_dir}/app.elf with your vendor's tool or a debug probe")
    if loader["kind"] != "stm32-uart":
        raise InputError(f"board {board.name}: flash loader '{loader['kind']}' is not supported (only stm32-uart)")
    elf = compiled.build()
    sectors = loader["sectors"]
    origin = sectors[0][0]
    length = sectors[-1][0] + sectors[-1][1] - origin
    try:
        address, image = elf_flash_image(elf, origin, length)
    except ValueError as e:
        raise FlashError(f"{e}: the firmware does not live in {board.name}'s flash alone; flash it with a probe") from None
    link = open_port(port, baud or loader.get("baud", 115200))
    try:
        boot = Bootloader(link, timeout=timeout)
        return flash_image(boot, image, address, chip_id=loader["chip_id"], sectors=sectors,
                           board_name=board.name, mass_erase=mass_erase, go=go, progress=progress,
                           reset_lines=reset_lines(loader, use_reset_lines))
    finally:
        link.close()
