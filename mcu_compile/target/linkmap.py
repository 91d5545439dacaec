"""Which object file each byte of flash came from, read from the GNU ld map file.

The ELF's symbol table cannot say that a static helper belongs to a kernel or that a
string belongs to libc; the linker's map lists every input section with its object.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Output sections that occupy flash (code, constants, the .data load image).
FLASH_OUTPUT_SECTIONS = (".text", ".rodata", ".data", ".vectors", ".ARM.exidx", ".ARM.extab")
_OUTPUT = re.compile(r"^(\.[\w.]+)\s*(0x[0-9a-f]+\s+0x[0-9a-f]+)?")
_INPUT = re.compile(r"^ (\.[\w.$]+|\*\w+\*|COMMON)?\s*\n?\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+)")


@dataclass(frozen=True)
class InputSection:
    output: str  # output section, e.g. ".text"
    name: str  # input section, e.g. ".text.mcu_convolve_s8"
    size: int
    origin: str  # object file or archive(member)


def input_sections(map_path: Path) -> list[InputSection]:
    text = Path(map_path).read_text()
    body = text.split("Linker script and memory map", 1)[-1]
    # an input section's name and numbers may be split over two lines
    body = re.sub(r"\n (\.[\w.$]+)\n\s+(0x)", r"\n \1 \2", body)
    result, output = [], ""
    for line in body.splitlines():
        if line.startswith("."):
            output = _OUTPUT.match(line).group(1)
            continue
        match = re.match(r"^ (\.[\w.$]+|COMMON)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+)", line)
        if match and int(match.group(3), 16):
            result.append(InputSection(output, match.group(1), int(match.group(3), 16), match.group(4)))
    return result


def flash_sections(map_path: Path) -> list[InputSection]:
    """Input sections of the loadable read-only image: code, constants, the .data image and
    the model constants kept in other read-only regions (.const.<region>)."""
    return [s for s in input_sections(map_path)
            if s.output in FLASH_OUTPUT_SECTIONS or s.output.startswith(".const.")]
