"""Reading and writing feature maps in the region byte arrays, with bounds checks."""
from __future__ import annotations

import numpy as np

from .isa import Command, NpuError
from .registers import FeatureMap


def region_view(regions: dict[int, bytearray | np.ndarray], region: int, op: Command, what: str) -> np.ndarray:
    if region not in regions:
        raise NpuError(f"{op.name} at byte {op.offset}: {what} uses region {region}, which was not given "
                       f"(regions: {sorted(regions)})")
    data = regions[region]
    return data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)


def _check(offsets: np.ndarray, elem: int, size: int, region: int, op: Command, what: str) -> None:
    if offsets.size == 0:
        return
    low, high = int(offsets.min()), int(offsets.max()) + elem
    if low < 0 or high > size:
        raise NpuError(f"{op.name} at byte {op.offset}: {what} touches bytes [{low}, {high}) of region {region}, "
                       f"which has {size} bytes")


def read_fm(regions, fm: FeatureMap, shape: tuple[int, int, int], op: Command, what: str) -> np.ndarray:
    """The (H, W, C) elements of a feature map as int64."""
    mem = region_view(regions, fm.region, op, what)
    offsets = fm.offsets(*shape)
    _check(offsets, fm.elem, mem.size, fm.region, op, what)
    if fm.elem == 1:
        raw = mem[offsets]
    else:
        raw = mem[offsets[..., None] + np.arange(fm.elem)]
        raw = np.ascontiguousarray(raw).view(np.dtype(fm.dtype).newbyteorder("<")).reshape(shape)
    return raw.view(fm.dtype).astype(np.int64) if fm.elem == 1 else raw.astype(np.int64)


def write_fm(regions, fm: FeatureMap, values: np.ndarray, op: Command, what: str) -> None:
    mem = region_view(regions, fm.region, op, what)
    offsets = fm.offsets(*values.shape)
    _check(offsets, fm.elem, mem.size, fm.region, op, what)
    raw = np.ascontiguousarray(values.astype(fm.dtype)).view(np.uint8)
    if fm.elem == 1:
        mem[offsets] = raw.reshape(values.shape)
    else:
        mem[offsets[..., None] + np.arange(fm.elem)] = raw.reshape(values.shape + (fm.elem,))


def read_bytes(regions, region: int, start: int, length: int, op: Command, what: str) -> np.ndarray:
    mem = region_view(regions, region, op, what)
    if start < 0 or length < 0 or start + length > mem.size:
        raise NpuError(f"{op.name} at byte {op.offset}: {what} reads bytes [{start}, {start + length}) of "
                       f"region {region}, which has {mem.size} bytes")
    return mem[start:start + length]
