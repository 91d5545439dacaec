"""Access checker (ETHOSU.md section 7, step 1): the byte ranges every DMA and kernel
operation reads and writes in each region, checked against the region sizes, without
doing any arithmetic."""
from __future__ import annotations

from dataclasses import dataclass

from .execute import ifm_extent, ofm_shape, window
from .isa import Command, NpuError, parse_payload
from .registers import NHCWB16, FeatureMap, Registers, feature_map

SHRAM_REGION = -1  # DMA into the NPU's internal memory (LUTs): not a base-pointer region


@dataclass(frozen=True)
class Access:
    offset: int    # byte offset of the NPU_OP_* command in the payload
    command: str   # "NPU_OP_CONV", ...
    what: str      # "IFM", "IFM2", "OFM", "weights", "scales", "DMA source", "DMA destination"
    region: int    # base-pointer index; SHRAM_REGION for the internal memory
    start: int
    end: int       # exclusive
    write: bool


def _fm_access(regs: Registers, op: Command, fm: FeatureMap, shape, what: str, write: bool) -> Access:
    if fm.layout == NHCWB16 and any(b % 16 for b in fm.bases):
        raise NpuError(f"{op.name} at byte {op.offset}: {what} in NHCWB16 needs 16-byte aligned bases, "
                       f"{regs.where(fm.prefix + '_BASE0')}.. are {[hex(b) for b in fm.bases]}")
    offsets = fm.offsets(*shape)
    return Access(op.offset, op.name, what, fm.region, int(offsets.min()), int(offsets.max()) + fm.elem, write)


def _stream_access(regs: Registers, op: Command, kind: str, what: str) -> Access:
    base, length = regs.get(f"{kind}_BASE", op), regs.get(f"{kind}_LENGTH", op)
    region = regs.get("WEIGHT_REGION" if kind.startswith("WEIGHT") else "SCALE_REGION", op) & 7
    return Access(op.offset, op.name, what, region, base, base + length, False)


def _in_memory(regs: Registers, op: Command, precision_register: str, u85: bool) -> bool:
    """U85 feature maps can be chained between operations (storage 2) or absent (3)."""
    return not u85 or (regs.get(precision_register, op) >> 14) & 3 < 2


def _broadcast_shape(regs: Registers, op: Command, register: str, out, u85: bool):
    """(shape read, is a scalar) under IFM(2)_BROADCAST: bits H=1, W=2, C=4; the scalar flag is
    bit 7 on U55 (IFM2_SCALAR) and mode 8 on U85 (OP_SCALAR)."""
    flags = regs.get(register, op, 0)
    scalar = flags == 8 if u85 else bool(flags & 0x80)
    return tuple(1 if flags & bit else n for n, bit in zip(out, (1, 2, 4))), scalar


def op_accesses(regs: Registers, op: Command, product: str = "ethos-u55") -> list[Access]:
    """What one operation touches, from the current register state."""
    u85 = product == "ethos-u85"
    if op.name == "NPU_OP_DMA_START":
        src, dst = regs.get("DMA0_SRC_REGION", op), regs.get("DMA0_DST_REGION", op)
        if (src >> 9) & 7 or (dst >> 9) & 7:
            raise NpuError(f"{op.name} at byte {op.offset}: strided or indexed DMA ({regs.where('DMA0_SRC_REGION')}, "
                           f"{regs.where('DMA0_DST_REGION')}) is not covered by the access checker")
        length = regs.get("DMA0_LEN", op)
        s, d = regs.get("DMA0_SRC", op), regs.get("DMA0_DST", op)
        return [Access(op.offset, op.name, "DMA source", SHRAM_REGION if (src >> 8) & 1 else src & 7, s, s + length, False),
                Access(op.offset, op.name, "DMA destination", SHRAM_REGION if (dst >> 8) & 1 else dst & 7,
                       d, d + length, True)]
    if op.name == "NPU_OP_RESIZE":
        raise NpuError(f"{op.name} at byte {op.offset} is not covered by the access checker")
    if op.name not in ("NPU_OP_CONV", "NPU_OP_DEPTHWISE", "NPU_OP_POOL", "NPU_OP_ELEMENTWISE"):
        return []
    out = ofm_shape(regs, op)
    result = []
    if _in_memory(regs, op, "IFM_PRECISION", u85):
        ifm = feature_map(regs, "IFM", op, "IFM_PRECISION")
        if op.name == "NPU_OP_ELEMENTWISE":
            shape = _broadcast_shape(regs, op, "IFM_BROADCAST", out, u85)[0] if u85 else out
        else:
            h, w = ifm_extent(out, window(regs, op))
            shape = (h, w, regs.get("IFM_DEPTH_M1", op) + 1)
        result.append(_fm_access(regs, op, ifm, shape, "IFM", False))
    unary = {5, 6, 7, 36} if u85 else {5, 6, 7}  # LRELU, ABS, CLZ (, NOT) have no IFM2
    if op.name == "NPU_OP_ELEMENTWISE" and (op.param & 0x3F) not in unary \
            and _in_memory(regs, op, "IFM2_PRECISION", u85):
        shape, scalar = _broadcast_shape(regs, op, "IFM2_BROADCAST", out, u85)
        if not scalar:
            ifm2 = feature_map(regs, "IFM2", op, "IFM2_PRECISION")
            result.append(_fm_access(regs, op, ifm2, shape, "IFM2", False))
    if op.name in ("NPU_OP_CONV", "NPU_OP_DEPTHWISE"):
        result += [_stream_access(regs, op, kind, "weights") for kind in ("WEIGHT", "WEIGHT1", "WEIGHT2", "WEIGHT3")
                   if kind == "WEIGHT" or regs.values.get(f"{kind}_LENGTH", 0)]
        result += [_stream_access(regs, op, kind, "scales") for kind in ("SCALE", "SCALE1")
                   if kind == "SCALE" or regs.values.get(f"{kind}_LENGTH", 0)]
    if _in_memory(regs, op, "OFM_PRECISION", u85):
        ofm = feature_map(regs, "OFM", op, "OFM_PRECISION")
        if u85:  # a transposed OFM is laid out in the permuted shape (u85.TRANSPOSES)
            from .u85 import TRANSPOSES
            transpose = (regs.get("OFM_PRECISION", op) >> 11) & 7
            if transpose not in TRANSPOSES:
                raise NpuError(f"{op.name} at byte {op.offset}: {regs.where('OFM_PRECISION')} selects OFM "
                               f"transpose {transpose}, which is unknown")
            out = tuple(out[axis] for axis in TRANSPOSES[transpose])
        result.append(_fm_access(regs, op, ofm, out, "OFM", True))
    return result


def check_accesses(payload: bytes, region_sizes: dict[int, int]) -> list[Access]:
    """Every DMA/kernel access of the stream; NpuError on the first that leaves its region."""
    stream = parse_payload(payload)
    regs = Registers()
    accesses = []
    for command in stream.commands:
        if not command.is_op:
            regs.set(command)
            continue
        for access in op_accesses(regs, command, stream.product):
            if access.region == SHRAM_REGION:
                accesses.append(access)
                continue
            if access.region not in region_sizes:
                raise NpuError(f"{command.name} at byte {command.offset}: {access.what} uses region "
                               f"{access.region}, which has no buffer (regions: {sorted(region_sizes)})")
            size = region_sizes[access.region]
            if access.start < 0 or access.end > size or access.start > access.end:
                raise NpuError(f"{command.name} at byte {command.offset}: {access.what} touches bytes "
                               f"[{access.start}, {access.end}) of region {access.region}, which has {size} bytes")
            accesses.append(access)
    return accesses
