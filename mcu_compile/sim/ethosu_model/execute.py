"""Executing a U55 register stream over region byte arrays (ETHOSU.md section 7, step 2);
run_payload hands U85 streams to u85.py.

Every kernel operation reads the register state at the moment its NPU_OP_* command is
parsed; DMA and kernel operations complete in stream order (the waits only order
them on the hardware, and Vela's stream is correct for any completion order).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import arith
from .isa import Command, NpuError, parse_payload
from .memory import read_bytes, read_fm, write_fm
from .registers import FeatureMap, Registers, feature_map, sign_extend
from .weights import DEPTH_FIRST, DEPTHWISE, PART_KERNEL, unpack_scales, unpack_weights

SHRAM_BANK = 1024
LUT_SLOT = 256
# macs -> (SHRAM banks, banks reserved for LUTs at the end): regor s_EthosU55Configs
SHRAM = {32: (16, 0), 64: (16, 0), 128: (24, 2), 256: (48, 2)}
ACCELERATORS = {"ethos-u55-32": 32, "ethos-u55-64": 64, "ethos-u55-128": 128, "ethos-u55-256": 256}
ACCELERATORS_U85 = {"ethos-u85-256": 256}  # u85.py: the U85 dialect


@dataclass
class Npu:
    """What persists while one stream runs."""

    regs: Registers
    macs: int
    shram: np.ndarray  # internal memory: the LUTs live in its last banks
    regions: dict


# ---- geometry ---------------------------------------------------------------------------
@dataclass
class Window:
    kh: int
    kw: int
    stride_y: int
    stride_x: int
    dil_y: int
    dil_x: int
    part_kernel: bool
    top: int
    left: int
    bottom: int
    right: int

    @property
    def span_y(self) -> int:
        return (self.kh - 1) * self.dil_y + 1

    @property
    def span_x(self) -> int:
        return (self.kw - 1) * self.dil_x + 1


def ofm_shape(regs: Registers, op: Command) -> tuple[int, int, int]:
    return (regs.get("OFM_HEIGHT_M1", op) + 1, regs.get("OFM_WIDTH_M1", op) + 1, regs.get("OFM_DEPTH_M1", op) + 1)


def window(regs: Registers, op: Command) -> Window:
    """KERNEL_* and IFM_PAD_* registers. KERNEL_STRIDE: stride lsb bits 0/1, weight order
    bit 2, dilation bits 3/4, stride msb bits 6/9 (of the parameter)."""
    k = regs.get("KERNEL_STRIDE", op)
    stride_x = ((k & 1) | ((k >> 6) & 1) << 1) + 1
    stride_y = (((k >> 1) & 1) | ((k >> 9) & 1) << 1) + 1
    dil_x, dil_y = ((k >> 3) & 1) + 1, ((k >> 4) & 1) + 1
    span_y, span_x = regs.get("KERNEL_HEIGHT_M1", op) + 1, regs.get("KERNEL_WIDTH_M1", op) + 1
    if (span_y - 1) % dil_y or (span_x - 1) % dil_x:
        raise NpuError(f"{op.name} at byte {op.offset}: dilated kernel {span_y}x{span_x} does not fit dilation "
                       f"{dil_y}x{dil_x}")
    pads = [regs.get(f"IFM_PAD_{side}", op, 0) & 0x7F for side in ("TOP", "LEFT", "BOTTOM", "RIGHT")]
    return Window((span_y - 1) // dil_y + 1, (span_x - 1) // dil_x + 1, stride_y, stride_x, dil_y, dil_x,
                  bool((k >> 2) & 1), *pads)


def ifm_extent(out: tuple[int, int, int], win: Window) -> tuple[int, int]:
    """IFM rows and columns the op reads: the OFM area through the kernel, less padding."""
    return ((out[0] - 1) * win.stride_y + win.span_y - win.top - win.bottom,
            (out[1] - 1) * win.stride_x + win.span_x - win.left - win.right)


def check_upscale(regs: Registers, op: Command) -> None:
    if regs.get("IFM_UPSCALE", op, 0) & 3:
        raise NpuError(f"{op.name} at byte {op.offset}: {regs.where('IFM_UPSCALE')} asks for IFM upscaling "
                       f"(transpose convolution / resize), which the functional model does not cover")


def windows(x: np.ndarray, out: tuple[int, int, int], win: Window, fill: int) -> np.ndarray:
    """(OH, OW, C, kh, kw) view of the padded IFM under every kernel position."""
    padded = np.pad(x, ((win.top, max(win.bottom, 0)), (win.left, max(win.right, 0)), (0, 0)),
                    constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, (win.span_y, win.span_x), axis=(0, 1))
    view = view[::win.stride_y, ::win.stride_x][:out[0], :out[1]]
    return view[..., ::win.dil_y, ::win.dil_x]


# ---- output stage -------------------------------------------------------------------------
def output_stage(npu: Npu, op: Command, acc: np.ndarray, scale, shift, ofm: FeatureMap) -> np.ndarray:
    """Scale, add the OFM zero point, clamp, then the activation (LUT) if any."""
    regs = npu.regs
    mode = (regs.get("OFM_PRECISION", op) >> 14) & 3
    values = arith.rescale(acc, scale, shift, mode) + ofm.zero_point
    return activation(npu, op, values, ofm)


def activation(npu: Npu, op: Command, values: np.ndarray, ofm: FeatureMap) -> np.ndarray:
    regs = npu.regs
    act = regs.get("ACTIVATION", op, 0)
    function, clip = act & 0x1F, (act >> 12) & 7
    low = sign_extend(regs.get("ACTIVATION_MIN", op, 0), 16) if ofm.signed else regs.get("ACTIVATION_MIN", op, 0)
    high = sign_extend(regs.get("ACTIVATION_MAX", op, 0), 16) if ofm.signed else regs.get("ACTIVATION_MAX", op, 0)
    info = np.iinfo(ofm.dtype)
    if clip == 0:  # OFM precision: min/max apply to 8/16-bit OFMs only
        low, high = (info.min, info.max) if ofm.elem == 4 else (max(low, info.min), min(high, info.max))
    elif clip == 3:
        low, high = max(low, -128), min(high, 127)
    elif clip == 2:
        low, high = max(low, 0), min(high, 255)
    elif clip == 5:
        low, high = max(low, -32768), min(high, 32767)
    else:
        raise NpuError(f"{op.name} at byte {op.offset}: {regs.where('ACTIVATION')} has clip range {clip}")
    values = arith.clamp(values, low, high)
    if function == 0:
        return values
    if 16 <= function <= 23:
        return lut(npu, op, values, function - 16, ofm)
    raise NpuError(f"{op.name} at byte {op.offset}: {regs.where('ACTIVATION')} selects activation function "
                   f"{function} (TANH/SIGMOID are int16-only and not covered)")


def lut(npu: Npu, op: Command, values: np.ndarray, table: int, ofm: FeatureMap) -> np.ndarray:
    """8-bit LUT: index = value + 128 (signed); 256 entries of the OFM's element size."""
    banks, reserved = SHRAM[npu.macs]
    if not reserved:
        raise NpuError(f"{op.name} at byte {op.offset}: LUTs on a {npu.macs}-MAC U55 (no reserved LUT banks) "
                       f"are not covered")
    if values.min() < -128 or values.max() > 127:
        raise NpuError(f"{op.name} at byte {op.offset}: LUT input outside int8 (16-bit LUTs are not covered)")
    start = (banks - reserved) * SHRAM_BANK + table * LUT_SLOT
    entries = npu.shram[start:start + 256 * ofm.elem]
    if entries.size != 256 * ofm.elem:
        raise NpuError(f"{op.name} at byte {op.offset}: LUT {table} of {256 * ofm.elem} bytes overruns SHRAM")
    return entries.view(ofm.dtype).astype(np.int64)[values + 128]


# ---- operations ---------------------------------------------------------------------------
def _ifm(npu: Npu, op: Command) -> FeatureMap:
    return feature_map(npu.regs, "IFM", op, "IFM_PRECISION")


def _ofm(npu: Npu, op: Command) -> FeatureMap:
    return feature_map(npu.regs, "OFM", op, "OFM_PRECISION")


def _per_channel(npu: Npu, op: Command, depth: int):
    regs = npu.regs
    where = f"{op.name} at byte {op.offset} ({regs.where('SCALE_BASE')})"
    data = read_bytes(npu.regions, regs.get("SCALE_REGION", op) & 7, regs.get("SCALE_BASE", op),
                      regs.get("SCALE_LENGTH", op), op, "scale stream")
    return unpack_scales(data, depth, where)


def _weights(npu: Npu, op: Command, traversal: str, ofm_depth: int, ifm_depth: int, win: Window) -> np.ndarray:
    regs = npu.regs
    if regs.values.get("WEIGHT1_LENGTH", 0):
        raise NpuError(f"{op.name} at byte {op.offset}: {regs.where('WEIGHT1_LENGTH')} splits weights over two "
                       f"cores, which the functional model does not cover")
    data = read_bytes(npu.regions, regs.get("WEIGHT_REGION", op) & 7, regs.get("WEIGHT_BASE", op),
                      regs.get("WEIGHT_LENGTH", op), op, "weight stream")
    block = regs.get("OFM_BLK_DEPTH_M1", op) + 1
    where = f"{op.name} at byte {op.offset} ({regs.where('WEIGHT_BASE')})"
    return unpack_weights(bytes(data), traversal, ofm_depth, ifm_depth, win.kh, win.kw, block, npu.macs, where,
                          (win.dil_x, win.dil_y))


def _check_global_scale(npu: Npu, op: Command, want_global: bool) -> None:
    is_global = bool((npu.regs.get("OFM_PRECISION", op) >> 8) & 1)
    if is_global != want_global:
        raise NpuError(f"{op.name} at byte {op.offset}: {npu.regs.where('OFM_PRECISION')} selects "
                       f"{'global' if is_global else 'per-channel'} scaling, not covered for this operation")


def check_kernel_modes(regs: Registers, op: Command) -> None:
    """Register settings that change the arithmetic in ways the model does not cover."""
    check_upscale(regs, op)
    if regs.get("ACC_FORMAT", op, 0) & 3 == 2:
        raise NpuError(f"{op.name} at byte {op.offset}: {regs.where('ACC_FORMAT')} selects the FP16 accumulator "
                       f"(not covered)")
    if regs.get("PARALLEL_MODE", op, 0):
        raise NpuError(f"{op.name} at byte {op.offset}: {regs.where('PARALLEL_MODE')} splits the work over two "
                       f"cores (U65), not covered")


def op_conv(npu: Npu, op: Command) -> None:
    regs = npu.regs
    check_kernel_modes(regs, op)
    _check_global_scale(npu, op, False)
    ifm, ofm = _ifm(npu, op), _ofm(npu, op)
    out, win = ofm_shape(regs, op), window(regs, op)
    depth_in = regs.get("IFM_DEPTH_M1", op) + 1
    h, w = ifm_extent(out, win)
    x = read_fm(npu.regions, ifm, (h, w, depth_in), op, "IFM") - ifm.zero_point
    weights = _weights(npu, op, PART_KERNEL if win.part_kernel else DEPTH_FIRST, out[2], depth_in, win)
    bias, scale, shift = _per_channel(npu, op, out[2])
    patches = windows(x, out, win, 0)  # (OH, OW, C, kh, kw)
    lhs = patches.transpose(0, 1, 3, 4, 2).reshape(out[0] * out[1], -1).astype(np.float64)
    rhs = weights.transpose(1, 2, 3, 0).reshape(-1, out[2]).astype(np.float64)
    acc = np.rint(lhs @ rhs).astype(np.int64).reshape(out) + bias  # exact: |acc| << 2**53
    write_fm(npu.regions, ofm, output_stage(npu, op, acc, scale, shift, ofm), op, "OFM")


def op_depthwise(npu: Npu, op: Command) -> None:
    regs = npu.regs
    check_kernel_modes(regs, op)
    _check_global_scale(npu, op, False)
    ifm, ofm = _ifm(npu, op), _ofm(npu, op)
    out, win = ofm_shape(regs, op), window(regs, op)
    h, w = ifm_extent(out, win)
    x = read_fm(npu.regions, ifm, (h, w, out[2]), op, "IFM") - ifm.zero_point
    weights = _weights(npu, op, DEPTHWISE, out[2], 1, win)[..., 0]  # (C, kh, kw)
    bias, scale, shift = _per_channel(npu, op, out[2])
    acc = np.einsum("hwcij,cij->hwc", windows(x, out, win, 0), weights) + bias
    write_fm(npu.regions, ofm, output_stage(npu, op, acc, scale, shift, ofm), op, "OFM")


def _ofm_scale(npu: Npu, op: Command) -> tuple[int, int]:
    value = npu.regs.get("OFM_SCALE", op)
    return value & 0xFFFFFFFF, (value >> 32) & 0x3F


def op_pool(npu: Npu, op: Command) -> None:
    regs = npu.regs
    _check_global_scale(npu, op, True)
    mode = op.param & 7
    check_kernel_modes(regs, op)
    ifm, ofm = _ifm(npu, op), _ofm(npu, op)
    out, win = ofm_shape(regs, op), window(regs, op)
    h, w = ifm_extent(out, win)
    depth = regs.get("IFM_DEPTH_M1", op) + 1 if mode == 2 else out[2]
    x = read_fm(npu.regions, ifm, (h, w, depth), op, "IFM") - ifm.zero_point
    if mode == 2:  # REDUCE_SUM also sums over the IFM channels (OFM depth 1)
        x = x.sum(axis=2, keepdims=True)
    scale, shift = _ofm_scale(npu, op)
    padded = any((win.top, win.left, win.bottom, win.right))
    if mode == 0:  # MAX: padding never wins
        acc = windows(x, out, win, np.iinfo(np.int64).min).max(axis=(3, 4))
    elif mode in (1, 2):  # AVERAGE, REDUCE_SUM
        acc = windows(x, out, win, 0).sum(axis=(3, 4))
        if mode == 1 and padded:
            if (scale, shift) != (1, 0):
                raise NpuError(f"{op.name} at byte {op.offset}: padded average pool with a non-unit "
                               f"{regs.where('OFM_SCALE')} is not covered")
            count = windows(np.ones((h, w, 1), np.int64), out, win, 0).sum(axis=(3, 4))
            # the NPU divides by the number of valid elements itself (regor: "HW-scaling")
            acc = np.where(acc >= 0, (acc + count // 2) // count, -((-acc + count // 2) // count))
    else:
        raise NpuError(f"{op.name} at byte {op.offset}: pooling mode {mode} is unknown")
    write_fm(npu.regions, ofm, output_stage(npu, op, acc, scale, shift, ofm), op, "OFM")


# elementwise modes
MUL, ADD, SUB, MIN, MAX, LRELU, ABS, CLZ, SHR, SHL = range(10)
_EW_NAMES = ["MUL", "ADD", "SUB", "MIN", "MAX", "LRELU", "ABS", "CLZ", "SHR", "SHL"]


def _ifm2(npu: Npu, op: Command, shape: tuple[int, int, int]) -> np.ndarray:
    """IFM2 over the OFM shape: a scalar, broadcast along H/W/C, or a full feature map."""
    regs = npu.regs
    flags = regs.get("IFM2_BROADCAST", op, 0)
    fm = feature_map(regs, "IFM2", op, "IFM2_PRECISION")
    if flags & 0x80:  # broadcast_constant: IFM2_SCALAR holds the value
        value = regs.get("IFM2_SCALAR", op)
        value = sign_extend(value, 16) if fm.signed else value
        return np.full(shape, value - fm.zero_point, dtype=np.int64)
    own = tuple(1 if flags & bit else n for n, bit in zip(shape, (1, 2, 4)))
    values = read_fm(npu.regions, fm, own, op, "IFM2") - fm.zero_point
    return np.broadcast_to(values, shape)


def op_elementwise(npu: Npu, op: Command) -> None:
    regs = npu.regs
    mode = op.param & 0x3F
    if mode > SHL:
        raise NpuError(f"{op.name} at byte {op.offset}: elementwise mode {mode} is unknown")
    ifm, ofm = _ifm(npu, op), _ofm(npu, op)
    out = ofm_shape(regs, op)
    a = read_fm(npu.regions, ifm, out, op, "IFM") - ifm.zero_point
    if mode == CLZ:
        write_fm(npu.regions, ofm, activation(npu, op, clz32(a) + ofm.zero_point, ofm), op, "OFM")
        return
    if mode in (ABS, LRELU):
        raise NpuError(f"{op.name} at byte {op.offset}: unary elementwise {_EW_NAMES[mode]} is not covered yet")
    b = _ifm2(npu, op, out)
    if (regs.get("IFM2_BROADCAST", op, 0) >> 6) & 1:  # operand order A: IFM2 is the first operand
        a, b = b, a
    scale, shift = _ofm_scale(npu, op)
    if mode in (ADD, SUB):
        a, b = _scale_operands(npu, op, a, b, ifm)
        acc = a + b if mode == ADD else a - b
    elif mode == MUL:
        acc = a * b
        if ifm.elem == 4:
            write_fm(npu.regions, ofm, _mul32(npu, op, a, b, ofm), op, "OFM")
            return
    elif mode in (MIN, MAX):
        acc = np.minimum(a, b) if mode == MIN else np.maximum(a, b)
    elif mode == SHL:
        acc = a << np.clip(b, 0, 63)
        acc = ((acc + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)  # the 32-bit datapath wraps
        scale, shift = 1, 0
    else:  # SHR: arithmetic, rounding per OFM_PRECISION
        amount = np.clip(b, 0, 63)
        values = arith.rescale(a, 1, amount, (regs.get("OFM_PRECISION", op) >> 14) & 3) + ofm.zero_point
        write_fm(npu.regions, ofm, activation(npu, op, values, ofm), op, "OFM")
        return
    write_fm(npu.regions, ofm, output_stage(npu, op, acc, scale, shift, ofm), op, "OFM")


def clz32(values: np.ndarray) -> np.ndarray:
    """Leading zeros of the 32-bit pattern (32 for zero)."""
    bits = values.astype(np.int64) & 0xFFFFFFFF
    count = np.full(bits.shape, 32, dtype=np.int64)
    nonzero = bits > 0
    count[nonzero] = 31 - np.floor(np.log2(bits[nonzero].astype(np.float64))).astype(np.int64)
    # log2 in float64 is exact enough below 2**32 except right under a power of two
    fix = nonzero & ((bits >> (31 - count)) == 0)
    count[fix] += 1
    return count


def _scale_operands(npu: Npu, op: Command, a, b, ifm: FeatureMap):
    """ADD/SUB input scaling (IFM_PRECISION scale_mode): 16-bit OPA/OPB multipliers, or a
    32-bit scale+shift on one operand while the other is shifted into the same units
    (TFLite's inputs << 20 (8-bit) / << 15 (16-bit), halved)."""
    regs = npu.regs
    precision = regs.get("IFM_PRECISION", op)
    mode, rounding = (precision >> 8) & 3, (precision >> 14) & 3
    opa, opb = regs.get("OPA_SCALE", op, 1), regs.get("OPB_SCALE", op, 1)
    if mode == 0:
        return a * (opa & 0xFFFF), b * (opb & 0xFFFF)
    double_round = {1: 20, 2: 15}.get(ifm.elem, 0)
    scaled = arith.rescale(a if mode == 1 else b, opa & 0xFFFFFFFF, (opa >> 32) & 0x3F, rounding, double_round)
    other = (b if mode == 1 else a) << max(double_round - 1, 0)
    return (scaled, other) if mode == 1 else (other, scaled)


def _mul32(npu: Npu, op: Command, a, b, ofm: FeatureMap) -> np.ndarray:
    """32-bit MUL: the product is shifted by OFM_SCALE's shift only (as gemmlowp's
    SaturatingRoundingDoublingHighMul for shift 31); measured against TFLM's softmax."""
    scale, shift = _ofm_scale(npu, op)
    mode = (npu.regs.get("OFM_PRECISION", op) >> 14) & 3
    product = a.astype(object) * b.astype(object)
    values = arith.rescale_exact(product, 1, shift, mode).astype(np.int64) + ofm.zero_point
    return activation(npu, op, values, ofm)


def op_dma(npu: Npu, op: Command) -> None:
    regs = npu.regs
    src_reg, dst_reg = regs.get("DMA0_SRC_REGION", op), regs.get("DMA0_DST_REGION", op)
    length = regs.get("DMA0_LEN", op)
    if (src_reg >> 9) & 3 or (dst_reg >> 9) & 3:
        raise NpuError(f"{op.name} at byte {op.offset}: 2D/3D DMA ({regs.where('DMA0_SRC_REGION')}) is not covered")
    if (src_reg >> 8) & 1:
        raise NpuError(f"{op.name} at byte {op.offset}: DMA from internal memory is not covered")
    data = read_bytes(npu.regions, src_reg & 7, regs.get("DMA0_SRC", op), length, op, "DMA source").copy()
    dst = regs.get("DMA0_DST", op)
    if (dst_reg >> 8) & 1:  # internal: SHRAM, where the LUTs live
        if dst + length > npu.shram.size:
            raise NpuError(f"{op.name} at byte {op.offset}: DMA to SHRAM bytes [{dst}, {dst + length}) overruns "
                           f"its {npu.shram.size} bytes")
        npu.shram[dst:dst + length] = data
    else:
        read_bytes(npu.regions, dst_reg & 7, dst, length, op, "DMA destination")[:] = data


OPERATIONS = {"NPU_OP_CONV": op_conv, "NPU_OP_DEPTHWISE": op_depthwise, "NPU_OP_POOL": op_pool,
              "NPU_OP_ELEMENTWISE": op_elementwise, "NPU_OP_DMA_START": op_dma}
NO_EFFECT = {"NPU_OP_DMA_WAIT", "NPU_OP_KERNEL_WAIT", "NPU_OP_PMU_MASK", "NPU_OP_IRQ"}


def run_payload(payload: bytes, regions: dict[int, bytearray], accelerator: str = "ethos-u55-128") -> None:
    """Execute the stream, mutating the region byte arrays in place."""
    stream = parse_payload(payload)
    if accelerator in ACCELERATORS_U85:
        return _run_u85(stream, regions, accelerator)
    if accelerator not in ACCELERATORS:
        raise NpuError(f"run_payload covers {sorted(ACCELERATORS) + sorted(ACCELERATORS_U85)}, not {accelerator!r}")
    macs = ACCELERATORS[accelerator]
    if stream.product != "ethos-u55" or stream.macs != macs:
        raise NpuError(f"payload was compiled for {stream.product}-{stream.macs} (CONFIG 0x{stream.config:08x}), "
                       f"not {accelerator}")
    banks, _ = SHRAM[macs]
    npu = Npu(Registers(), macs, np.zeros(banks * SHRAM_BANK, dtype=np.uint8), regions)
    execute_commands(npu, stream, OPERATIONS, NO_EFFECT)


def execute_commands(npu, stream, operations: dict, no_effect: set) -> None:
    """Register commands update the register state; operations run until NPU_OP_STOP."""
    for command in stream.commands:
        if not command.is_op:
            npu.regs.set(command)
        elif command.name in operations:
            operations[command.name](npu, command)
        elif command.name == "NPU_OP_STOP":
            return
        elif command.name not in no_effect:
            raise NpuError(f"{command.name} at byte {command.offset} is not covered by the functional model")


def _run_u85(stream, regions: dict[int, bytearray], accelerator: str) -> None:
    from .u85 import run_u85
    macs = ACCELERATORS_U85[accelerator]
    if stream.product != "ethos-u85" or stream.macs != macs:
        raise NpuError(f"payload was compiled for {stream.product}-{stream.macs} (CONFIG 0x{stream.config:08x}), "
                       f"not {accelerator}")
    run_u85(stream, regions, macs)
