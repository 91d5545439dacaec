"""U55 weight and scale streams: decode, then undo the brick ordering.

The codec itself is Vela's (ethosu.mlw_codec.decode). The ordering is the loop nest of
regor/architecture/ethosu55/ethos_u55_weight_encoder.cpp (EthosUWeightOrdering::GetNext):
OFM blocks of OFM_BLK_DEPTH, IFM blocks of 32 (16 part-kernel-first), 8x8 sub-kernels,
then micro-blocks of 8 OFM x 8 IFM channels (U55-128, -256; U55-32/64 differ).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .isa import NpuError

DEPTH_FIRST, PART_KERNEL, DEPTHWISE = "depth_first", "part_kernel", "depthwise"

# macs -> (ofm micro-block depth, ifm micro-block depth): regor s_EthosU55Configs
UBLOCK = {32: (4, 8), 64: (8, 8), 128: (8, 8), 256: (8, 8)}


@lru_cache(maxsize=4096)
def brick_order(traversal: str, ofm_depth: int, ifm_depth: int, kh: int, kw: int, ofm_block: int,
                ofm_ublock: int, ifm_ublock: int, dil_x: int = 1, dil_y: int = 1) -> np.ndarray:
    """Stream position -> flat index into the (O, kh, kw, I) weights, or -1 for padding."""
    ifm_block = 16 if traversal == PART_KERNEL else 32
    decomp_x, decomp_y = 8 // dil_x, 8 // dil_y
    sub_round = 4 if traversal in (PART_KERNEL, DEPTHWISE) else 1
    ifm_total = 1 if traversal == DEPTHWISE else ifm_depth
    oz = np.arange(ofm_ublock)[:, None]
    iz = np.arange(1 if traversal == DEPTHWISE else ifm_ublock)[None, :]
    pieces = []
    for ofm_z0 in range(0, ofm_depth, ofm_block):
        clipped_ofm = min(ofm_block, ofm_depth - ofm_z0)
        for ifm_z0 in range(0, ifm_total, ifm_block):
            if traversal == DEPTHWISE:
                clipped_ifm = ifm_ublock
            elif traversal == PART_KERNEL:
                clipped_ifm = min(ifm_block, ifm_depth - ifm_z0)
            else:
                clipped_ifm = ifm_block
            outer = clipped_ifm if traversal == PART_KERNEL else 1
            inner = 1 if traversal == PART_KERNEL else clipped_ifm
            for sy in range(0, kh, decomp_y):
                sub_h = min(kh - sy, decomp_y)
                for sx in range(0, kw, decomp_x):
                    sub_w = min(kw - sx, decomp_x)
                    elements = -(-sub_w * sub_h // sub_round) * sub_round
                    for ifm_outer in range(0, outer, ifm_ublock):
                        for ofm_u in range(0, clipped_ofm, ofm_ublock):
                            for element in range(elements):
                                kx, ky = element % sub_w, element // sub_w
                                for ifm_inner in range(0, inner, ifm_ublock):
                                    ifm_z = ifm_z0 + ifm_inner + ifm_outer + iz
                                    ofm_z = ofm_z0 + ofm_u + oz
                                    wy, wx = sy + ky, sx + kx
                                    if traversal == DEPTHWISE:
                                        index = ((ofm_z * kh + wy) * kw + wx) + 0 * ifm_z
                                        valid = (ofm_z < ofm_depth) & (ky < sub_h) & (ifm_z == 0)
                                    else:
                                        index = ((ofm_z * kh + wy) * kw + wx) * ifm_depth + ifm_z
                                        valid = (ifm_z < ifm_depth) & (ofm_z < ofm_depth) & (ky < sub_h)
                                    pieces.append(np.where(valid, index, -1).ravel())
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


_DECODED: dict[bytes, np.ndarray] = {}


def decode(stream: bytes) -> np.ndarray:
    """Vela's decoder, cached: the same stream runs once per inference."""
    values = _DECODED.get(stream)
    if values is None:
        from ethosu import mlw_codec
        values = np.asarray(mlw_codec.decode(bytearray(stream)), dtype=np.int64)
        if len(_DECODED) > 4096:
            _DECODED.clear()
        _DECODED[stream] = values
    return values


def unpack_weights(stream: bytes, traversal: str, ofm_depth: int, ifm_depth: int, kh: int, kw: int,
                   ofm_block: int, macs: int, where: str, dil: tuple[int, int] = (1, 1)) -> np.ndarray:
    """(O, kh, kw, I) int weights (I = 1 for depthwise) from one encoded stream."""
    ofm_u, ifm_u = UBLOCK[macs]
    order = brick_order(traversal, ofm_depth, ifm_depth, kh, kw, ofm_block, ofm_u, ifm_u, dil[0], dil[1])
    values = decode(stream)
    if len(values) < len(order):
        raise NpuError(f"{where}: weight stream decodes to {len(values)} weights, the op needs {len(order)} "
                       f"({ofm_depth} OFM x {kh}x{kw} x {ifm_depth} IFM channels in {traversal} order)")
    return place_weights(values, order, traversal, ofm_depth, kh, kw, ifm_depth)


def place_weights(values, order: np.ndarray, traversal: str, ofm_depth: int, kh: int, kw: int,
                  ifm_depth: int) -> np.ndarray:
    """Decoded weights in stream order -> [OFM, kh, kw, IFM] (IFM 1 for depthwise); order[i]
    is the flat destination of stream value i, negative for padding in the bricks."""
    kept = order >= 0
    channels = 1 if traversal == DEPTHWISE else ifm_depth
    weights = np.zeros(ofm_depth * kh * kw * channels, dtype=np.int64)
    weights[order[kept]] = values[:len(order)][kept]
    return weights.reshape(ofm_depth, kh, kw, channels)


def unpack_scales(data: bytes, count: int, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bias, scale, shift) per OFM channel from 10-byte records: 40-bit bias, 32-bit scale,
    6-bit shift (regor EncodeBias)."""
    if len(data) < 10 * count:
        raise NpuError(f"{where}: scale stream has {len(data)} bytes, {count} OFM channels need {10 * count}")
    rec = np.frombuffer(bytes(data[:10 * count]), dtype=np.uint8).reshape(count, 10).astype(np.int64)
    bias = sum(rec[:, i] << (8 * i) for i in range(5))
    bias = np.where(bias >= 1 << 39, bias - (1 << 40), bias)
    scale = sum(rec[:, 5 + i] << (8 * i) for i in range(4))
    scale = np.where(scale >= 1 << 31, scale - (1 << 32), scale)
    shift = rec[:, 9] & 0x3F
    return bias, scale, shift
