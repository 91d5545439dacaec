"""Executing an Ethos-U85 register stream (the U85 dialect of ethos_u85_interface.hpp).

Covered: CONV/DEPTHWISE with per-channel scales and standard (dense or 2:4 sparse) or
fast-decoded weights; POOL (max, average, sum, reduce-sum) with a global OFM scale;
ELEMENTWISE ADD, SUB, MUL, MIN, MAX, CLZ, SHR, SHL with IFM/IFM2/OFM scales, broadcast and
OP_SCALAR; chained feature maps (an OFM kept in a chain buffer for the next operation);
OFM transposes; 8-bit-input LUT activations; plain DMA, including LUT loads. Anything else
(accumulator keep/IFM2 input, the 48-bit accumulator, 16-bit IFM convolutions, OFM reverse,
tile 3x1 storage, resize, IFM upscaling, 2D/indexed DMA, 16-bit LUTs, LRELU/ABS/DIV/compare
elementwise modes, the DOUBLE_ASYMMETRIC rounding mode, ...) raises NpuError naming the
command and its byte offset.

Measured bit-exact against TFLM (tests/test_ethosu_model.py): the four MLPerf Tiny models,
MobileNetV2 and single operators. Implemented from the register definitions but not yet
exercised by any Vela stream we compile: OFM rounding modes SYMMETRIC, TRUNCATE_TO_ZERO and
TRUNCATE_TO_LOWER, and the U8->U8 and S8->S16 LUTs.

Register fields (param bits; CMD1 values hold data | param << 32):
  IFM/IFM2_PRECISION: type 0, precision 2-3, format 6-7, storage 14-15.
  OFM_PRECISION: type 0, precision 1-2, format 6-7, scale_mode 8 (1 global), reverse 9-10,
    transpose 11-13, storage 14-15 (0 tile2x2, 1 tile3x1, 2 chained, 3 none).
  OFM/IFM/IFM2_SCALE: scale data bits 0-30, shift 32-37, dbl_rnd 38-42, round_mode 45-47.
  ACC_FORMAT: format 0-1 (I32, I48), input 4-5 (reset, keep, ifm2), output 6 (1 disabled),
    microblock 8-10. ACTIVATION: function 0-4, table 5-7, clip range 12 (1 none).
  WEIGHT_FORMAT: format 0 (1 fast), sparsity 4.
"""
from __future__ import annotations

import numpy as np

from . import arith
from .execute import Npu, check_upscale, clz32, execute_commands, ifm_extent, ofm_shape, window, windows
from .isa import Command, NpuError
from .memory import read_bytes, read_fm, write_fm
from .registers import NHCWB16, FeatureMap, Registers, feature_map, sign_extend
from .weights import DEPTH_FIRST, DEPTHWISE, PART_KERNEL
from .weights85 import unpack_scales85, unpack_weights85

# microblock field -> (height, width); the depth depends on the configuration
MICROBLOCKS = {0: (1, 1), 1: (1, 2), 2: (1, 4), 3: (2, 2), 4: (2, 4), 5: (4, 4)}
# macs -> ofm micro-blocks (H, W, C) (regor s_EthosU85Configs)
UBLOCKS85 = {256: [(1, 2, 16), (1, 4, 8), (2, 2, 8)]}
# OFM round_mode
DOUBLE_SYMMETRIC, NATURAL, DOUBLE_ASYMMETRIC, SYMMETRIC, TRUNCATE_TO_ZERO, TRUNCATE_TO_LOWER = range(6)
_STORAGE = {0: "tile 2x2", 1: "tile 3x1", 2: "chained", 3: "none"}


LUT_RAM = 2048  # 8 slots of 256 bytes (regor ArchEthosU85::LUT_SLOT_SIZE)


class Npu85(Npu):
    """The U85 state: registers, regions, the LUT RAM and the chain buffers."""

    def __init__(self, regs: Registers, macs: int, regions: dict):
        super().__init__(regs, macs, np.zeros(LUT_RAM, dtype=np.uint8), regions)
        self.chain: dict[int, tuple[np.ndarray, FeatureMap]] = {}


def _err(op: Command, text: str) -> NpuError:
    return NpuError(f"{op.name} at byte {op.offset}: {text}")


# ---- arithmetic --------------------------------------------------------------------------
def _round_shift(v, shift, mode: int, op: Command, register: str):
    """v / 2**shift rounded in one step (shift >= 0, arrays of Python or numpy ints)."""
    one = v * 0 + 1
    half = np.where(shift > 0, one << np.maximum(shift - 1, 0), 0)
    if mode == NATURAL:
        return (v + half) >> shift
    if mode == SYMMETRIC:
        return np.where(v >= 0, (v + half) >> shift, -((-v + half) >> shift))
    if mode == TRUNCATE_TO_ZERO:
        return np.where(v >= 0, v >> shift, -((-v) >> shift))
    if mode == TRUNCATE_TO_LOWER:
        return v >> shift
    raise _err(op, f"{register} selects rounding mode {mode}, not covered")


def rescale85(acc, scale, shift, mode: int, dbl: int, op: Command, register: str) -> np.ndarray:
    """round(acc * scale / 2**shift). DOUBLE_SYMMETRIC is TFLite's MultiplyByQuantizedMultiplier:
    a doubling high multiply rounding half away from zero at bit 31 - dbl, then a rounding
    divide by the remaining power of two, half away from zero."""
    acc = np.asarray(acc, dtype=np.int64)
    scale = np.asarray(scale, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    peak = int(np.max(np.abs(acc))) if acc.size else 0
    if peak * int(np.max(np.abs(scale))) >= 1 << 62:
        v, shift_o = acc.astype(object) * scale.astype(object), shift.astype(object)
        return _rescale85(v, shift_o, mode, dbl, op, register).astype(np.int64)
    return _rescale85(acc * scale, shift, mode, dbl, op, register)


def _rescale85(v, shift, mode, dbl, op, register):
    if mode == DOUBLE_SYMMETRIC:
        split = 31 - dbl
        first = np.maximum(shift - split, 0)
        high = _round_shift(v, np.minimum(shift, split), SYMMETRIC, op, register)
        return np.where(shift > split, _round_shift(high, first, SYMMETRIC, op, register), high)
    return _round_shift(v, shift, mode, op, register)


def _scale_register(regs: Registers, op: Command, name: str, default_unit: bool = False):
    """(scale, shift, dbl_rnd, round_mode) of OFM_SCALE / IFM_SCALE / IFM2_SCALE."""
    if default_unit and name not in regs.values:
        return 1, 0, 0, 0
    value = regs.get(name, op)
    mode = (value >> 45) & (7 if name == "OFM_SCALE" else 1)
    return value & 0x7FFFFFFF, (value >> 32) & 0x3F, (value >> 38) & 0x1F, mode


# ---- feature maps --------------------------------------------------------------------------
def _bare_fm(regs: Registers, op: Command, prefix: str, region: int) -> FeatureMap:
    """Type and zero point only: a chained feature map or an OP_SCALAR operand."""
    precision = regs.get(f"{prefix}_PRECISION", op)
    elem, signed = 1 << ((precision >> (1 if prefix == "OFM" else 2)) & 3), bool(precision & 1)
    zp = regs.get(f"{prefix}_ZERO_POINT", op, 0)
    return FeatureMap(prefix, region, (0, 0, 0, 0), 0, 0, 0, 0, 0, 0, elem, signed, (precision >> 6) & 3,
                      sign_extend(zp, 16) if signed else zp)


def _storage(regs: Registers, op: Command, prefix: str) -> int:
    return (regs.get(f"{prefix}_PRECISION", op) >> 14) & 3


def _fm(regs: Registers, op: Command, prefix: str, chained_ok: bool = False) -> FeatureMap:
    register = f"{prefix}_PRECISION"
    precision = regs.get(register, op)
    storage = (precision >> 14) & 3
    if storage == 2 and chained_ok:  # region = the chain buffer; no addresses, strides or tiles
        return _bare_fm(regs, op, prefix, regs.get(f"{prefix}_REGION", op) & 7)
    if storage != 0:
        raise _err(op, f"{regs.where(register)} selects {_STORAGE[storage]} storage for the {prefix} "
                       f"(only tile 2x2 feature maps in memory are covered)")
    if prefix == "OFM" and (precision >> 9) & 3:
        raise _err(op, f"{regs.where(register)} reverses the OFM, not covered")
    if prefix == "OFM" and (precision >> 11) & 7 not in TRANSPOSES:
        raise _err(op, f"{regs.where(register)} selects OFM transpose {(precision >> 11) & 7}, which is unknown")
    fm = feature_map(regs, prefix, op, register)
    if fm.layout != NHCWB16 and fm.stride_c != fm.elem:
        raise _err(op, f"{regs.where(prefix + '_STRIDE_C')} is {fm.stride_c} for an NHWC {prefix} of "
                       f"{fm.elem}-byte elements (strided channels are not covered)")
    return fm


def read_input(npu: Npu85, op: Command, fm: FeatureMap, prefix: str, shape) -> np.ndarray:
    """An IFM/IFM2 from memory or from its chain buffer, as int64 (zero point not removed)."""
    if _storage(npu.regs, op, prefix) != 2:
        return read_fm(npu.regions, fm, shape, op, prefix)
    held = npu.chain.pop(fm.region, None)
    if held is None:
        raise _err(op, f"{npu.regs.where(prefix + '_PRECISION')} reads chain buffer {fm.region}, which no "
                       f"operation filled")
    values, ofm = held
    if values.shape != tuple(shape) or (ofm.elem, ofm.signed) != (fm.elem, fm.signed):
        raise _err(op, f"{prefix} reads chain buffer {fm.region} as {tuple(shape)} {8 * fm.elem}-bit, it holds "
                       f"{values.shape} {8 * ofm.elem}-bit")
    return values


# OFM_PRECISION activation_transpose -> axes of the (H, W, C) result in memory order; the OFM
# shape registers give the shape before, the tile and stride registers the layout after it
TRANSPOSES = {0: (0, 1, 2), 1: (1, 0, 2), 2: (0, 2, 1), 3: (1, 2, 0), 6: (2, 0, 1), 7: (2, 1, 0)}


def write_output(npu: Npu85, op: Command, ofm: FeatureMap, values: np.ndarray) -> None:
    if _storage(npu.regs, op, "OFM") == 2:
        if (npu.regs.get("OFM_PRECISION", op) >> 11) & 7:
            raise _err(op, f"{npu.regs.where('OFM_PRECISION')} transposes a chained OFM")
        npu.chain[ofm.region] = (values.astype(np.int64), ofm)
        return
    axes = TRANSPOSES[(npu.regs.get("OFM_PRECISION", op) >> 11) & 7]
    write_fm(npu.regions, ofm, np.transpose(values, axes), op, "OFM")


def _check_common(regs: Registers, op: Command) -> None:
    check_upscale(regs, op)
    if (regs.get("KERNEL_STRIDE", op, 0) >> 5) & 1:
        raise _err(op, f"{regs.where('KERNEL_STRIDE')} sets the decomposition bit, not covered")


def _acc_format(regs: Registers, op: Command) -> tuple[bool, int]:
    """(48-bit accumulator, microblock field); refuses accumulator chaining."""
    value = regs.get("ACC_FORMAT", op)
    fmt, source, output = value & 3, (value >> 4) & 3, (value >> 6) & 1
    if source != 0 or output != 0:
        raise _err(op, f"{regs.where('ACC_FORMAT')} keeps or chains the accumulator (input {source}, "
                       f"output {'disabled' if output else 'enabled'}), not covered")
    if fmt not in (0, 1):
        raise _err(op, f"{regs.where('ACC_FORMAT')} selects accumulator format {fmt}, not covered")
    return fmt == 1, (value >> 8) & 7


def _global_scale(regs: Registers, op: Command) -> bool:
    return bool((regs.get("OFM_PRECISION", op) >> 8) & 1)


# ---- output stage -------------------------------------------------------------------------
def activation85(npu: Npu85, op: Command, values: np.ndarray, ofm: FeatureMap) -> np.ndarray:
    """Clip (ACTIVATION_MIN signed, ACTIVATION_MAX unsigned 16-bit: regor keeps the bounds in
    [-32768, 65535]) unless the clip range is NONE, saturate to the OFM type or the LUT's input
    type, then the LUT."""
    regs = npu.regs
    act = regs.get("ACTIVATION", op, 0)
    function, table, clip_none = act & 0x1F, (act >> 5) & 7, (act >> 12) & 1
    lut_types = {1: (np.uint8, np.uint8), 4: (np.int8, np.int8), 5: (np.int8, np.int16), 7: (np.int8, np.int32)}
    if function and function not in lut_types:
        raise _err(op, f"{regs.where('ACTIVATION')} selects LUT activation {function} (16-bit input or "
                       f"TANH/SIGMOID), not covered")
    in_type, out_type = lut_types.get(function, (ofm.dtype, ofm.dtype))
    if function and np.dtype(out_type) != np.dtype(ofm.dtype):
        raise _err(op, f"{regs.where('ACTIVATION')}: LUT {function} gives {np.dtype(out_type)}, the OFM is "
                       f"{np.dtype(ofm.dtype)}")
    info = np.iinfo(in_type)
    low, high = info.min, info.max
    if not clip_none:
        low = max(low, sign_extend(regs.get("ACTIVATION_MIN", op, 0), 16))
        high = min(high, regs.get("ACTIVATION_MAX", op, 0xFFFF) & 0xFFFF)
    values = arith.clamp(values, low, high)
    if not function:
        return values
    size = 256 * np.dtype(out_type).itemsize
    slot_bytes = table * size
    if slot_bytes + size > npu.shram.size:
        raise _err(op, f"{regs.where('ACTIVATION')}: LUT table {table} of {size} bytes overruns the LUT RAM")
    entries = npu.shram[slot_bytes:slot_bytes + size].view(out_type).astype(np.int64)
    return entries[values - info.min]


def _ofm_out(npu: Npu, op: Command, acc, scale, shift, ofm: FeatureMap, register="OFM_SCALE"):
    regs = npu.regs
    _, _, dbl, mode = _scale_register(regs, op, "OFM_SCALE")
    values = rescale85(acc, scale, shift, mode, dbl, op, regs.where(register)) + ofm.zero_point
    write_output(npu, op, ofm, activation85(npu, op, values, ofm))


# ---- operations ---------------------------------------------------------------------------
def _ublock_depth(npu: Npu, op: Command, microblock: int) -> int:
    shape = MICROBLOCKS.get(microblock)
    for h, w, c in UBLOCKS85.get(npu.macs, []):
        if (h, w) == shape:
            return c
    raise _err(op, f"{npu.regs.where('ACC_FORMAT')}: microblock {microblock} is not one of the "
                   f"ethos-u85-{npu.macs} OFM micro-blocks")


def _weights85(npu: Npu, op: Command, traversal: str, ofm_depth: int, ifm_depth: int, win, microblock: int,
               ifm: FeatureMap):
    regs = npu.regs
    fmt = regs.get("WEIGHT_FORMAT", op, 0)
    sparse = bool((fmt >> 4) & 1)
    fast = bool(fmt & 1)  # never handed to Vela's decoder: it aborts the process on these streams
    if fast and traversal == DEPTHWISE:
        raise _err(op, f"{regs.where('WEIGHT_FORMAT')} selects fast weight decoding for a depthwise op, "
                       f"not covered")
    if sparse and traversal == DEPTHWISE:
        raise _err(op, f"{regs.where('WEIGHT_FORMAT')} selects 2:4 sparsity for a depthwise op, not covered")
    for extra in ("WEIGHT1_LENGTH", "WEIGHT2_LENGTH", "WEIGHT3_LENGTH"):
        if regs.values.get(extra, 0):
            raise _err(op, f"{regs.where(extra)} gives a second weight stream, not covered")
    if ifm.elem != 1:
        raise _err(op, f"{regs.where('IFM_PRECISION')}: {8 * ifm.elem}-bit IFM convolutions are not covered")
    data = read_bytes(npu.regions, regs.get("WEIGHT_REGION", op) & 7, regs.get("WEIGHT_BASE", op),
                      regs.get("WEIGHT_LENGTH", op), op, "weight stream")
    ublock = _ublock_depth(npu, op, microblock)
    ofm_block = regs.get("OFM_BLK_DEPTH_M1", op) + 1
    if traversal == PART_KERNEL:
        ifm_block = 16
    elif ublock == 16 and npu.macs in (128, 256) and not sparse:
        ifm_block = 32
    elif sparse:
        ifm_block = 128
    else:
        ifm_block = 64
    where = f"{op.name} at byte {op.offset} ({regs.where('WEIGHT_BASE')})"
    return unpack_weights85(bytes(data), traversal, ofm_depth, ifm_depth, win.kh, win.kw, ofm_block, ifm_block,
                            ublock, (win.stride_x, win.stride_y), (win.dil_x, win.dil_y), where, sparse, fast)


def _scales85(npu: Npu, op: Command, depth: int, acc48: bool):
    regs = npu.regs
    where = f"{op.name} at byte {op.offset} ({regs.where('SCALE_BASE')})"
    data = read_bytes(npu.regions, regs.get("SCALE_REGION", op) & 7, regs.get("SCALE_BASE", op),
                      regs.get("SCALE_LENGTH", op), op, "scale stream")
    return unpack_scales85(data, depth, acc48, where)


def op_conv85(npu: Npu, op: Command) -> None:
    regs = npu.regs
    _check_common(regs, op)
    if op.name == "NPU_OP_CONV" and op.param & 1:
        raise _err(op, "weights from IFM2 (dynamic weights) are not covered")
    if _global_scale(regs, op):
        raise _err(op, f"{regs.where('OFM_PRECISION')} selects global scaling for a convolution, not covered")
    acc48, microblock = _acc_format(regs, op)
    if acc48:  # the 48-bit bias/15-bit scale records (regor EncodeBias48) are not measured
        raise _err(op, f"{regs.where('ACC_FORMAT')} selects the 48-bit accumulator, not covered")
    ifm, ofm = _fm(regs, op, "IFM"), _fm(regs, op, "OFM", chained_ok=True)
    out, win = ofm_shape(regs, op), window(regs, op)
    h, w = ifm_extent(out, win)
    if op.name == "NPU_OP_DEPTHWISE":
        x = read_fm(npu.regions, ifm, (h, w, out[2]), op, "IFM") - ifm.zero_point
        weights = _weights85(npu, op, DEPTHWISE, out[2], 1, win, microblock, ifm)[..., 0]
        bias, scale, shift = _scales85(npu, op, out[2], acc48)
        acc = np.einsum("hwcij,cij->hwc", windows(x, out, win, 0), weights) + bias
    else:
        depth_in = regs.get("IFM_DEPTH_M1", op) + 1
        x = read_fm(npu.regions, ifm, (h, w, depth_in), op, "IFM") - ifm.zero_point
        weights = _weights85(npu, op, PART_KERNEL if win.part_kernel else DEPTH_FIRST, out[2], depth_in, win,
                             microblock, ifm)
        bias, scale, shift = _scales85(npu, op, out[2], acc48)
        patches = windows(x, out, win, 0)
        lhs = patches.transpose(0, 1, 3, 4, 2).reshape(out[0] * out[1], -1).astype(np.float64)
        rhs = weights.transpose(1, 2, 3, 0).reshape(-1, out[2]).astype(np.float64)
        acc = np.rint(lhs @ rhs).astype(np.int64).reshape(out) + bias  # exact: |acc| << 2**53
    _ofm_out(npu, op, acc, scale, shift, ofm, "SCALE_BASE")


MAX, AVERAGE, REDUCE_SUM, SUM = range(4)


def op_pool85(npu: Npu, op: Command) -> None:
    regs = npu.regs
    _check_common(regs, op)
    mode = op.param & 7
    if mode not in (MAX, AVERAGE, REDUCE_SUM, SUM):
        raise _err(op, f"pooling mode {mode} is not covered")
    if not _global_scale(regs, op):
        raise _err(op, f"{regs.where('OFM_PRECISION')} selects per-channel scaling for pooling, not covered")
    _acc_format(regs, op)
    ifm, ofm = _fm(regs, op, "IFM", chained_ok=True), _fm(regs, op, "OFM", chained_ok=True)
    out, win = ofm_shape(regs, op), window(regs, op)
    h, w = ifm_extent(out, win)
    depth = regs.get("IFM_DEPTH_M1", op) + 1 if mode == REDUCE_SUM else out[2]
    x = read_input(npu, op, ifm, "IFM", (h, w, depth)) - ifm.zero_point
    if mode == REDUCE_SUM:
        x = x.sum(axis=2, keepdims=True)
    scale, shift, _, _ = _scale_register(regs, op, "OFM_SCALE")
    padded = any((win.top, win.left, win.bottom, win.right))
    if mode == MAX:
        acc = windows(x, out, win, np.iinfo(np.int64).min).max(axis=(3, 4))
    else:
        acc = windows(x, out, win, 0).sum(axis=(3, 4))
        if mode == AVERAGE:
            if scale != 1 << shift:  # Vela gives (2**30, 30) or (1, 0)
                raise _err(op, f"average pool with a non-unit {regs.where('OFM_SCALE')} is not covered")
            ones = np.ones((h, w, 1), np.int64)
            count = windows(ones, out, win, 0).sum(axis=(3, 4)) if padded else win.kh * win.kw
            acc = np.where(acc >= 0, (acc + count // 2) // count, -((-acc + count // 2) // count))
    _ofm_out(npu, op, acc, scale, shift, ofm)


EW_MUL, EW_ADD, EW_SUB, EW_MIN, EW_MAX, EW_LRELU, EW_ABS, EW_CLZ, EW_SHR, EW_SHL = range(10)
_EW_COVERED = {EW_MUL: "MUL", EW_ADD: "ADD", EW_SUB: "SUB", EW_MIN: "MIN", EW_MAX: "MAX", EW_CLZ: "CLZ",
               EW_SHR: "SHR", EW_SHL: "SHL"}


def _operand(npu: Npu85, op: Command, prefix: str, out) -> tuple[np.ndarray, FeatureMap]:
    """IFM or IFM2 over the OFM shape: OP_SCALAR, broadcast along H/W/C, chained or in memory."""
    regs = npu.regs
    register = f"{prefix}_BROADCAST"
    flags = regs.get(register, op, 0)
    storage = _storage(regs, op, prefix)
    if flags == 8:
        if storage != 3:
            raise _err(op, f"{regs.where(register)} broadcasts a scalar but {regs.where(prefix + '_PRECISION')} "
                           f"does not select storage none")
        fm = _bare_fm(regs, op, prefix, -1)
        value = regs.get("OP_SCALAR", op) & 0xFFFFFFFF
        value = sign_extend(value, 32) if fm.signed else value
        return np.full(out, value - fm.zero_point, dtype=np.int64), fm
    if flags > 7:
        raise _err(op, f"{regs.where(register)} has broadcast mode {flags}")
    fm = _fm(regs, op, prefix, chained_ok=True)
    own = tuple(1 if flags & bit else n for n, bit in zip(out, (1, 2, 4)))
    values = read_input(npu, op, fm, prefix, own) - fm.zero_point
    return np.broadcast_to(values, out), fm


def _wrap32(values: np.ndarray) -> np.ndarray:
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def op_elementwise85(npu: Npu85, op: Command) -> None:
    regs = npu.regs
    mode = op.param & 0x3F
    if mode not in _EW_COVERED:
        raise _err(op, f"elementwise mode {mode} is not covered on the U85")
    _check_common(regs, op)
    _acc_format(regs, op)
    ofm = _fm(regs, op, "OFM", chained_ok=True)
    out = ofm_shape(regs, op)
    a, fa = _operand(npu, op, "IFM", out)
    scale, shift, dbl, round_mode = _scale_register(regs, op, "OFM_SCALE")
    if mode == EW_CLZ:
        if (scale, shift) != (1, 0):
            raise _err(op, f"CLZ with a non-unit {regs.where('OFM_SCALE')} is not covered")
        values = clz32(a) + ofm.zero_point
        write_output(npu, op, ofm, activation85(npu, op, values, ofm))
        return
    b, fb = _operand(npu, op, "IFM2", out)
    wide = 4 in (fa.elem, fb.elem)
    if mode in (EW_SHR, EW_SHL):
        if (scale, shift) != (1, 0):
            raise _err(op, f"{_EW_COVERED[mode]} with a non-unit {regs.where('OFM_SCALE')} is not covered")
        amount = np.clip(b, 0, 63)
        if mode == EW_SHL:
            acc = _wrap32(a << amount)
        elif round_mode == DOUBLE_SYMMETRIC:  # what SHR does in this mode is not measured
            raise _err(op, f"SHR with {regs.where('OFM_SCALE')} rounding mode 0 is not covered")
        else:
            acc = _round_shift(a, amount, round_mode, op, regs.where("OFM_SCALE"))
        write_output(npu, op, ofm, activation85(npu, op, acc + ofm.zero_point, ofm))
        return
    sa, ha, da, ma = _scale_register(regs, op, "IFM_SCALE", default_unit=True)
    sb, hb, db, mb = _scale_register(regs, op, "IFM2_SCALE", default_unit=True)
    if mode == EW_MUL:
        if wide:
            # 32-bit MUL is shift-only (regor SupportedOFMQuant): the scale is not applied
            values = rescale85(a.astype(object) * b.astype(object), 1, shift, round_mode, dbl, op,
                               regs.where("OFM_SCALE"))
            write_output(npu, op, ofm, activation85(npu, op, values + ofm.zero_point, ofm))
            return
        acc = a * b
    else:
        # IFM round_mode: 0 double symmetric, 1 natural (the OFM's first two modes)
        a = rescale85(a, sa, ha, ma, da, op, regs.where("IFM_SCALE"))
        b = rescale85(b, sb, hb, mb, db, op, regs.where("IFM2_SCALE"))
        if mode == EW_ADD:
            acc = a + b
        elif mode == EW_SUB:
            acc = a - b
        elif mode == EW_MIN:
            acc = np.minimum(a, b)
        else:
            acc = np.maximum(a, b)
    _ofm_out(npu, op, acc, scale, shift, ofm)


def op_dma85(npu: Npu, op: Command) -> None:
    regs = npu.regs
    src_reg, dst_reg = regs.get("DMA0_SRC_REGION", op), regs.get("DMA0_DST_REGION", op)
    if (src_reg >> 9) & 3 or (src_reg >> 11) & 1 or (dst_reg >> 11) & 1:
        raise _err(op, f"strided or indexed DMA ({regs.where('DMA0_SRC_REGION')}, "
                       f"{regs.where('DMA0_DST_REGION')}) is not covered")
    if (src_reg >> 8) & 1:
        raise _err(op, f"DMA from the U85's internal memory ({regs.where('DMA0_SRC_REGION')}) is not covered")
    length = regs.get("DMA0_LEN", op)
    data = read_bytes(npu.regions, src_reg & 7, regs.get("DMA0_SRC", op), length, op, "DMA source").copy()
    dst = regs.get("DMA0_DST", op)
    if (dst_reg >> 8) & 1:  # the LUT RAM (regor: LUT memory, slot * 256)
        if dst < 0 or dst + length > npu.shram.size:
            raise _err(op, f"DMA to LUT RAM bytes [{dst}, {dst + length}) overruns its {npu.shram.size} bytes")
        npu.shram[dst:dst + length] = data
        return
    read_bytes(npu.regions, dst_reg & 7, dst, length, op, "DMA destination")[:] = data


OPERATIONS85 = {"NPU_OP_CONV": op_conv85, "NPU_OP_DEPTHWISE": op_conv85, "NPU_OP_POOL": op_pool85,
                "NPU_OP_ELEMENTWISE": op_elementwise85, "NPU_OP_DMA_START": op_dma85}

NO_EFFECT85 = {"NPU_OP_DMA_WAIT", "NPU_OP_KERNEL_WAIT", "NPU_OP_PMU_MASK", "NPU_OP_IRQ"}


def run_u85(stream, regions: dict, macs: int) -> None:
    execute_commands(Npu85(Registers(), macs, regions), stream, OPERATIONS85, NO_EFFECT85)
