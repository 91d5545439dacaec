"""Register state of the U55 while a stream runs, and typed views of its fields.

Vela emits a register only when its value changes (regor EthosU55Emitter::SetRegister),
so the state persists from one operation to the next and every view reads the
latest value. Field positions are those of ethos_u65_interface.hpp (U55 = U65 here).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .isa import Command, NpuError

# precision field -> bytes per element
_BITS = {0: 1, 1: 2, 2: 4, 3: 8}
_DTYPES = {(1, True): np.int8, (1, False): np.uint8, (2, True): np.int16, (2, False): np.uint16,
           (4, True): np.int32, (4, False): np.uint32, (8, True): np.int64}
NHWC, NHCWB16 = 0, 1


def sign_extend(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class Registers:
    """Register name -> latest value, with the command that set it (for messages)."""

    def __init__(self):
        self.values: dict[str, int] = {}
        self.setters: dict[str, Command] = {}

    def set(self, command: Command) -> None:
        self.values[command.name] = command.value
        self.setters[command.name] = command

    def get(self, name: str, op: Command, default: int | None = None) -> int:
        if name in self.values:
            return self.values[name]
        if default is not None:
            return default
        raise NpuError(f"{op.name} at byte {op.offset} uses register {name}, which the stream never set")

    def where(self, name: str) -> str:
        cmd = self.setters.get(name)
        return f"{name} (set at byte {cmd.offset})" if cmd else name


@dataclass
class FeatureMap:
    """One of IFM, IFM2, OFM as the registers describe it."""

    prefix: str
    region: int
    bases: tuple[int, int, int, int]
    height0: int
    height1: int
    width0: int
    stride_x: int
    stride_y: int
    stride_c: int
    elem: int          # bytes per element
    signed: bool
    layout: int        # NHWC or NHCWB16
    zero_point: int

    @property
    def dtype(self):
        return _DTYPES[(self.elem, self.signed)]

    def offsets(self, height: int, width: int, depth: int) -> np.ndarray:
        """Byte offset in the region of every element (y, x, c) of a height x width x depth box.

        Tiles: base0 holds rows < height0 and columns < width0, base1 the columns from
        width0 (rows < height1), base2 the rows from height0, base3 the rest
        (regor EthosU55RCSGenerator::GetTiles).
        """
        y = np.arange(height)
        x = np.arange(width)
        c = np.arange(depth)
        right = x >= self.width0
        lx = np.where(right, x - self.width0, x)
        below_left = y >= self.height0
        below_right = y >= self.height1
        ly_left = np.where(below_left, y - self.height0, y)
        ly_right = np.where(below_right, y - self.height1, y)
        tile = np.where(right[None, :], np.where(below_right[:, None], 3, 1), np.where(below_left[:, None], 2, 0))
        ly = np.where(right[None, :], ly_right[:, None], ly_left[:, None])
        base = np.asarray(self.bases, dtype=np.int64)[tile]
        row = base + ly * self.stride_y + lx[None, :] * self.stride_x
        if self.layout == NHCWB16:
            chan = (c // 16) * self.stride_c + (c % 16) * self.elem
        else:  # U55 ignores the channel stride for NHWC (regor InsertTransposeCommand note)
            chan = c * self.elem
        return row[:, :, None] + chan[None, None, :]


def feature_map(regs: Registers, prefix: str, op: Command, precision_register: str) -> FeatureMap:
    precision = regs.get(precision_register, op)
    if prefix == "OFM":
        signed, size, layout = precision & 1, (precision >> 1) & 3, (precision >> 6) & 3
    else:
        signed, size, layout = precision & 1, (precision >> 2) & 3, (precision >> 6) & 3
    if layout not in (NHWC, NHCWB16):
        raise NpuError(f"{op.name} at byte {op.offset}: {regs.where(precision_register)} has layout {layout}")
    elem = _BITS[size]
    if (elem, bool(signed)) not in _DTYPES:
        raise NpuError(f"{op.name} at byte {op.offset}: {regs.where(precision_register)} gives an unsupported "
                       f"{'signed' if signed else 'unsigned'} {8 * elem}-bit type")
    zp = regs.get(f"{prefix}_ZERO_POINT", op, 0)
    zp = sign_extend(zp, 16) if signed else zp

    def reg(name, default=None):
        return regs.get(f"{prefix}_{name}", op, default)
    return FeatureMap(
        prefix, reg("REGION") & 7, tuple(reg(f"BASE{i}", 0) for i in range(4)),
        reg("HEIGHT0_M1") + 1, reg("HEIGHT1_M1", reg("HEIGHT0_M1")) + 1, reg("WIDTH0_M1") + 1,
        sign_extend(reg("STRIDE_X"), 40), sign_extend(reg("STRIDE_Y"), 40), sign_extend(reg("STRIDE_C"), 40),
        elem, bool(signed), layout, zp)
