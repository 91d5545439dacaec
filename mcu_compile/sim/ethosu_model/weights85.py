"""U85 weight and scale streams: decode (Vela's codec), then undo the brick ordering.

The ordering is the loop nest of regor/architecture/ethosu85/ethos_u85_weight_encoder.cpp
(EthosU85WeightOrdering::GetNext), single stream (one core), standard weight decoding
(SWD), no 2:4 sparsity. Differences from the U55: IFM blocks are walked forwards for even
OFM blocks and backwards for odd ones, strided part-kernel/depthwise kernels are split
into stride phases, kernel rows alternate direction, OFM micro-blocks are fed 4 channels
at a time, and scale records are 10 bytes with a 32-bit (or 48-bit) bias.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .isa import NpuError
from .weights import DEPTH_FIRST, DEPTHWISE, PART_KERNEL, decode, place_weights

INTERLEAVE = 4


def _round_away(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@lru_cache(maxsize=4096)
def brick_order85(traversal: str, ofm_depth: int, ifm_depth: int, kh: int, kw: int, ofm_block: int,
                  ifm_block: int, ofm_ublock: int, stride_x: int, stride_y: int, dil_x: int = 1,
                  dil_y: int = 1, sparse: bool = False) -> np.ndarray:
    """Stream position -> flat index into the (O, kh, kw, I) weights (I = 1 for depthwise),
    or -1 for padding; 8-bit IFM, U85-128/256 with one core. 2:4 sparse streams hold every
    weight (zeros included) in 16-deep IFM micro-blocks."""
    if traversal == PART_KERNEL:
        sub_round, ifm_ublock = (10 if sparse else 5), ifm_block
    elif traversal == DEPTH_FIRST:
        stride_x = stride_y = 1
        sub_round, ifm_ublock = 1, ifm_block
    else:
        sub_round, ifm_ublock = 10, 1
    decomp_x, decomp_y = 8 // dil_x, 8 // dil_y
    inner_step = 1 if traversal == DEPTHWISE else (16 if sparse else 8)
    ofm_in = np.arange(INTERLEAVE)[:, None]
    ifm_in = np.arange(inner_step)[None, :]
    pieces = []
    ifm_blocks = list(range(0, 1 if traversal == DEPTHWISE else ifm_depth, ifm_block))
    for index, ofm_z0 in enumerate(range(0, ofm_depth, ofm_block)):
        clipped_ofm = min(ofm_block, ofm_depth - ofm_z0)
        for ifm_z0 in (ifm_blocks if index % 2 == 0 else ifm_blocks[::-1]):
            clipped_ifm = min(ifm_block, ifm_depth - ifm_z0)
            for sx in range(0, kw, decomp_x):
                sub_w = min(kw - sx, decomp_x)
                for sy in range(0, kh, decomp_y):
                    sub_h = min(kh - sy, decomp_y)
                    outer_depth = 1 if traversal == DEPTHWISE else clipped_ifm
                    for ifm_outer in range(0, outer_depth, ifm_ublock):
                        for ofm_outer in range(0, clipped_ofm, ofm_ublock):
                            remaining = _round_away(sub_w * sub_h, sub_round)
                            for phase_y in range(stride_y):
                                strided_h = (sub_h + stride_y - 1 - phase_y) // stride_y
                                for phase_x in range(stride_x):
                                    strided_w = (sub_w + stride_x - 1 - phase_x) // stride_x
                                    for ky in range(strided_h):
                                        for kx in range(strided_w):
                                            x = kx if ky % 2 == 0 else strided_w - 1 - kx
                                            remaining -= 1
                                            wx = sx + phase_x + x * stride_x
                                            wy = sy + phase_y + ky * stride_y
                                            for ifm_inner in range(0, ifm_ublock, inner_step):
                                                for ofm_u in range(0, ofm_ublock, INTERLEAVE):
                                                    ifm_z = ifm_z0 + ifm_outer + ifm_inner + ifm_in
                                                    ofm_z = ofm_z0 + ofm_outer + ofm_u + ofm_in
                                                    if traversal == DEPTHWISE:
                                                        flat = (ofm_z * kh + wy) * kw + wx + 0 * ifm_z
                                                    else:
                                                        flat = ((ofm_z * kh + wy) * kw + wx) * ifm_depth + ifm_z
                                                    valid = (ifm_z < ifm_depth) & (ofm_z < ofm_depth)
                                                    pieces.append(np.where(valid, flat, -1).ravel())
                            if remaining > 0:  # padding to the sub-kernel rounding
                                pieces.append(np.full(remaining * ifm_ublock * ofm_ublock, -1, dtype=np.int64))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def _bits(raw: np.ndarray, start: int, width: int, count: int) -> np.ndarray:
    """count unsigned width-bit fields from bit position start, LSB first (regor bitbuf_t)."""
    positions = start + width * np.arange(count)[:, None] + np.arange(width)[None, :]
    return (raw[positions] << np.arange(width)).sum(axis=1)


def _unfold(values: np.ndarray) -> np.ndarray:
    return np.where(values & 1, -(values >> 1), values >> 1)


def decode_fwd(stream: bytes, count: int, where: str) -> np.ndarray:
    """The fast-weight-decoder format (regor mlw_encode_fwd.cpp): a 256-bit header (raw flag,
    small-LUT flag, 8-bit zero adjust at bit 104, sixteen 9-bit folded LUT entries from bit
    112), then 2-bit (small LUT), 4-bit (LUT) or 8-bit (raw) values, LSB first."""
    raw = np.unpackbits(np.frombuffer(stream, dtype=np.uint8), bitorder="little").astype(np.int64)
    if raw.size < 256:
        raise NpuError(f"{where}: fast weight stream of {len(stream)} bytes is shorter than its header")
    raw_mode, small = int(raw[0]), int(raw[1])
    if raw_mode:
        width = 8
    else:
        width = 2 if small else 4
    if 256 + width * count > raw.size:
        raise NpuError(f"{where}: fast weight stream of {len(stream)} bytes holds fewer than {count} "
                       f"{width}-bit weights")
    values = _bits(raw, 256, width, count)
    if raw_mode:
        adjust = int(_bits(raw, 104, 8, 1)[0])
        adjust = adjust - 256 if adjust >= 128 else adjust
        return np.where(values >= 128, values - 256, values) - adjust
    lut = _unfold(_bits(raw, 112, 9, 16))
    return lut[values]


def _fwd_bytes(stream: bytes, count: int) -> int:
    """Size of a fast-weight stream of count weights: header and values padded to 256 bits."""
    width = 8 if stream[0] & 1 else (2 if stream[0] & 2 else 4)
    return -(-(256 + width * count) // 256) * 32


def unpack_weights85(stream: bytes, traversal: str, ofm_depth: int, ifm_depth: int, kh: int, kw: int,
                     ofm_block: int, ifm_block: int, ofm_ublock: int, stride: tuple[int, int],
                     dil: tuple[int, int], where: str, sparse: bool = False, fast: bool = False) -> np.ndarray:
    """(O, kh, kw, I) int weights (I = 1 for depthwise) from one encoded U85 stream."""
    order = brick_order85(traversal, ofm_depth, ifm_depth, kh, kw, ofm_block, ifm_block, ofm_ublock,
                          stride[0], stride[1], dil[0], dil[1], sparse)
    values = decode_fwd(stream, len(order), where) if fast else decode(stream)
    # Vela encodes exactly the ordered weights (padding included): a different count means the
    # brick-order parameters read from the registers do not describe this stream
    length = _fwd_bytes(stream, len(order)) if fast else len(values)
    expected = len(stream) if fast else len(order)
    if length != expected:
        raise NpuError(f"{where}: {'fast ' if fast else ''}weight stream holds "
                       f"{len(stream) if fast else len(values)} {'bytes' if fast else 'weights'}, the op's "
                       f"{ofm_depth} OFM x {kh}x{kw} x {ifm_depth} IFM channels in {traversal} order need "
                       f"{length if fast else len(order)}")
    return place_weights(values, order, traversal, ofm_depth, kh, kw, ifm_depth)


def unpack_scales85(data: bytes, count: int, acc48: bool, where: str):
    """(bias, scale, shift) per OFM channel from 10-byte records (regor EncodeBias32/48):
    32-bit bias, 31-bit scale, 6-bit shift; or 48-bit bias, 15-bit scale, 6-bit shift."""
    if len(data) < 10 * count:
        raise NpuError(f"{where}: scale stream has {len(data)} bytes, {count} OFM channels need {10 * count}")
    rec = np.frombuffer(bytes(data[:10 * count]), dtype=np.uint8).reshape(count, 10).astype(np.int64)
    bias_bytes = 6 if acc48 else 4
    bias = sum(rec[:, i] << (8 * i) for i in range(bias_bytes))
    bits = 8 * bias_bytes
    bias = np.where(bias >= 1 << (bits - 1), bias - (1 << bits), bias)
    if acc48:
        scale = rec[:, 6] | ((rec[:, 7] & 0x7F) << 8)
    else:
        scale = rec[:, 4] | (rec[:, 5] << 8) | (rec[:, 6] << 16) | ((rec[:, 7] & 0x7F) << 24)
    shift = rec[:, 8] & 0x3F
    return bias, scale, shift
