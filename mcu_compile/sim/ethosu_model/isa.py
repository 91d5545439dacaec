"""The Ethos-U command-stream format: payload wrappers, opcodes, register stream.

Facts from Vela 5.2.0 (regor/architecture/ethosu65/ethos_u65_interface.hpp, shared by
U55/U65, and ethosu85/ethos_u85_interface.hpp; regor/tflite/custom_operator_ethosu.hpp for
the COP1/COP2 wrappers). Each command is a 32-bit word: opcode bits 0-9, control bits
14-15 (0 = CMD0, 1 = CMD1), parameter bits 16-31; a CMD1 command carries one more
32-bit data word. A CMD0 with bit 8 clear and a CMD1 with bit 8 set are operations;
everything else loads a register.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ...errors import McuCompileError


class NpuError(McuCompileError):
    """The command stream is malformed, uses what the model does not cover, or touches
    memory outside its regions; the message names the command and its byte offset."""


# ---- opcodes (U55 and U65 share them) ----------------------------------------------------
CMD0_U55 = {
    0x000: "NPU_OP_STOP", 0x001: "NPU_OP_IRQ", 0x002: "NPU_OP_CONV", 0x003: "NPU_OP_DEPTHWISE",
    0x005: "NPU_OP_POOL", 0x006: "NPU_OP_ELEMENTWISE", 0x010: "NPU_OP_DMA_START",
    0x011: "NPU_OP_DMA_WAIT", 0x012: "NPU_OP_KERNEL_WAIT", 0x013: "NPU_OP_PMU_MASK",
    0x100: "IFM_PAD_TOP", 0x101: "IFM_PAD_LEFT", 0x102: "IFM_PAD_RIGHT", 0x103: "IFM_PAD_BOTTOM",
    0x104: "IFM_DEPTH_M1", 0x105: "IFM_PRECISION", 0x107: "IFM_UPSCALE", 0x109: "IFM_ZERO_POINT",
    0x10A: "IFM_WIDTH0_M1", 0x10B: "IFM_HEIGHT0_M1", 0x10C: "IFM_HEIGHT1_M1", 0x10D: "IFM_IB_END",
    0x10F: "IFM_REGION", 0x111: "OFM_WIDTH_M1", 0x112: "OFM_HEIGHT_M1", 0x113: "OFM_DEPTH_M1",
    0x114: "OFM_PRECISION", 0x115: "OFM_BLK_WIDTH_M1", 0x116: "OFM_BLK_HEIGHT_M1",
    0x117: "OFM_BLK_DEPTH_M1", 0x118: "OFM_ZERO_POINT", 0x11A: "OFM_WIDTH0_M1",
    0x11B: "OFM_HEIGHT0_M1", 0x11C: "OFM_HEIGHT1_M1", 0x11F: "OFM_REGION",
    0x120: "KERNEL_WIDTH_M1", 0x121: "KERNEL_HEIGHT_M1", 0x122: "KERNEL_STRIDE",
    0x123: "PARALLEL_MODE", 0x124: "ACC_FORMAT", 0x125: "ACTIVATION", 0x126: "ACTIVATION_MIN",
    0x127: "ACTIVATION_MAX", 0x128: "WEIGHT_REGION", 0x129: "SCALE_REGION", 0x12D: "AB_START",
    0x12F: "BLOCKDEP", 0x130: "DMA0_SRC_REGION", 0x131: "DMA0_DST_REGION", 0x132: "DMA0_SIZE0",
    0x133: "DMA0_SIZE1", 0x180: "IFM2_BROADCAST", 0x181: "IFM2_SCALAR", 0x185: "IFM2_PRECISION",
    0x189: "IFM2_ZERO_POINT", 0x18A: "IFM2_WIDTH0_M1", 0x18B: "IFM2_HEIGHT0_M1",
    0x18C: "IFM2_HEIGHT1_M1", 0x18D: "IFM2_IB_START", 0x18F: "IFM2_REGION",
}
CMD1_U55 = {
    0x000: "IFM_BASE0", 0x001: "IFM_BASE1", 0x002: "IFM_BASE2", 0x003: "IFM_BASE3",
    0x004: "IFM_STRIDE_X", 0x005: "IFM_STRIDE_Y", 0x006: "IFM_STRIDE_C",
    0x010: "OFM_BASE0", 0x011: "OFM_BASE1", 0x012: "OFM_BASE2", 0x013: "OFM_BASE3",
    0x014: "OFM_STRIDE_X", 0x015: "OFM_STRIDE_Y", 0x016: "OFM_STRIDE_C",
    0x020: "WEIGHT_BASE", 0x021: "WEIGHT_LENGTH", 0x022: "SCALE_BASE", 0x023: "SCALE_LENGTH",
    0x024: "OFM_SCALE", 0x025: "OPA_SCALE", 0x026: "OPB_SCALE",
    0x030: "DMA0_SRC", 0x031: "DMA0_DST", 0x032: "DMA0_LEN", 0x033: "DMA0_SKIP0", 0x034: "DMA0_SKIP1",
    0x080: "IFM2_BASE0", 0x081: "IFM2_BASE1", 0x082: "IFM2_BASE2", 0x083: "IFM2_BASE3",
    0x084: "IFM2_STRIDE_X", 0x085: "IFM2_STRIDE_Y", 0x086: "IFM2_STRIDE_C",
    0x090: "WEIGHT1_BASE", 0x091: "WEIGHT1_LENGTH", 0x092: "SCALE1_BASE", 0x093: "SCALE1_LENGTH",
}

# U85: a different dialect (new registers, some renamed, NPU_OP_RESIZE and NPU_OP_BRANCH)
CMD0_U85 = {k: v for k, v in CMD0_U55.items()
            if v not in ("PARALLEL_MODE", "AB_START", "IFM_IB_END", "IFM2_IB_START", "IFM2_SCALAR")}
CMD0_U85.update({0x007: "NPU_OP_RESIZE", 0x108: "IFM_BROADCAST", 0x12A: "RESIZE_X_SCALE_N_M1",
                 0x12B: "RESIZE_Y_SCALE_N_M1", 0x12C: "RESIZE_X_OFFSET", 0x12D: "RESIZE_Y_OFFSET",
                 0x12E: "WEIGHT_FORMAT", 0x134: "DMA0_IDX_REGION"})
CMD1_U85 = {k: v for k, v in CMD1_U55.items()
            if v not in ("OPA_SCALE", "OPB_SCALE", "DMA0_SKIP0", "DMA0_SKIP1", "SCALE1_BASE", "SCALE1_LENGTH")}
CMD1_U85.update({0x025: "IFM_SCALE", 0x026: "IFM2_SCALE", 0x027: "OP_SCALAR",
                 0x033: "DMA0_SRC_STRIDE0", 0x034: "DMA0_SRC_STRIDE1", 0x035: "DMA0_DST_STRIDE0",
                 0x036: "DMA0_DST_STRIDE1", 0x037: "DMA0_IDX", 0x038: "DMA0_IDX_MAX",
                 0x039: "DMA0_IDX_SKIP1", 0x092: "WEIGHT2_BASE", 0x093: "WEIGHT2_LENGTH",
                 0x094: "WEIGHT3_BASE", 0x095: "WEIGHT3_LENGTH", 0x096: "RESIZE_X", 0x097: "RESIZE_Y",
                 0x100: "NPU_OP_BRANCH"})

PRODUCTS = {0: "ethos-u55", 1: "ethos-u65", 2: "ethos-u85"}


@dataclass(frozen=True)
class Command:
    offset: int      # byte offset of the command word in the payload
    name: str        # "NPU_OP_CONV" for operations, the register name ("IFM_BASE0") otherwise
    param: int       # the 16-bit parameter
    data: int | None  # the CMD1 data word

    @property
    def is_op(self) -> bool:
        return self.name.startswith("NPU_OP_")

    @property
    def value(self) -> int:
        """The register value: CMD1 registers hold data | param << 32 (address high bits)."""
        return self.param if self.data is None else self.data | (self.param << 32)


@dataclass
class CommandStream:
    fourcc: str            # "COP1" or "COP2"
    config: int            # NPU CONFIG word the stream was compiled for
    npu_id: int            # NPU ID word
    product: str           # "ethos-u55" / "ethos-u85" from CONFIG
    macs: int              # MACs per cycle from CONFIG
    addressing: int | None = None   # COP2: 1 network-wide, 2 separate IO regions
    fast_scratch: int | None = None  # COP2: staging (fast scratch) size
    stream_offset: int = 0  # where the register stream starts in the payload
    commands: list[Command] = field(default_factory=list)


def _u32(payload: bytes, offset: int, what: str) -> int:
    if offset + 4 > len(payload):
        raise NpuError(f"payload truncated: {what} at byte {offset} needs 4 bytes, payload has {len(payload)}")
    return struct.unpack_from("<I", payload, offset)[0]


def _unwrap(payload: bytes) -> tuple[CommandStream, int, int]:
    """(header fields, start, end) of the register stream inside a COP1/COP2 payload."""
    fourcc = bytes(payload[:4])
    if fourcc == b"COP2":
        if len(payload) < 64:
            raise NpuError(f"COP2 payload of {len(payload)} bytes is shorter than its 64-byte header")
        total = struct.unpack_from("<Q", payload, 8)[0]  # 64-bit length of everything after the header
        if total + 16 != len(payload):
            raise NpuError(f"COP2 header says {total + 16} bytes at byte 8, payload has {len(payload)}")
        if _u32(payload, 16, "entry type") != 1:
            raise NpuError(f"COP2 entry at byte 16 is not a command stream (type {_u32(payload, 16, '')})")
        entry_len = _u32(payload, 20, "entry length")
        meta_len = _u32(payload, 24, "metadata length")
        if bytes(payload[28:32]) != b"VEUM":
            raise NpuError(f"COP2 metadata at byte 28 is {bytes(payload[28:32])!r}, not VEUM")
        start = 28 + meta_len  # the metadata length counts from after its own word
        if start % 16 or start > len(payload) or 24 + entry_len != len(payload):
            raise NpuError(f"COP2 entry lengths at byte 20/24 ({entry_len}, {meta_len}) do not fit the payload")
        config, npu_id, mode = (_u32(payload, o, "metadata") for o in (40, 44, 48))
        staging = struct.unpack_from("<Q", payload, 52)[0]
        head = CommandStream("COP2", config, npu_id, "", 0, mode, staging)
        return head, start, len(payload)
    if fourcc == b"COP1":
        config, npu_id = _u32(payload, 8, "config"), _u32(payload, 12, "id")
        offset = 16
        while True:
            tag = _u32(payload, offset, "driver action")
            kind = tag & 0xFF
            if kind == 0x05:  # NOP
                offset += 4
                continue
            if kind != 0x02:
                raise NpuError(f"COP1 driver action 0x{kind:02x} at byte {offset} is not a command stream")
            words = ((tag >> 8) & 0xFF) << 16 | (tag >> 16)
            start = offset + 4
            if start + 4 * words > len(payload):
                raise NpuError(f"COP1 command stream at byte {start} claims {words} words, payload too short")
            return CommandStream("COP1", config, npu_id, "", 0), start, start + 4 * words
    raise NpuError(f"payload starts with {fourcc!r} at byte 0, not COP1 or COP2")


def parse_payload(payload: bytes) -> CommandStream:
    """The wrapper's config/ID words and every command of the register stream."""
    head, start, end = _unwrap(payload)
    product = (head.config >> 28) & 0xF
    if product not in PRODUCTS:
        raise NpuError(f"CONFIG word 0x{head.config:08x} (byte {8 if head.fourcc == 'COP1' else 40}) "
                       f"names unknown NPU product {product}")
    head.product = PRODUCTS[product]
    head.macs = 1 << (head.config & 0xF)
    head.stream_offset = start
    cmd0, cmd1 = (CMD0_U85, CMD1_U85) if head.product == "ethos-u85" else (CMD0_U55, CMD1_U55)
    offset = start
    while offset < end:
        word = _u32(payload, offset, "command")
        opcode, control, param = word & 0x3FF, (word >> 14) & 3, word >> 16
        if control == 0:
            name = cmd0.get(opcode)
            data = None
        elif control == 1:
            name = cmd1.get(opcode)
            if offset + 8 > end:
                raise NpuError(f"CMD1 0x{opcode:03x} at byte {offset} has no data word before the stream ends")
            data = _u32(payload, offset + 4, "data word")
        else:
            raise NpuError(f"command word 0x{word:08x} at byte {offset} has control bits {control} (neither CMD0 nor CMD1)")
        if name is None:
            raise NpuError(f"unknown {head.product} {'CMD0' if control == 0 else 'CMD1'} opcode 0x{opcode:03x} "
                           f"at byte {offset}")
        head.commands.append(Command(offset, name, param, data))
        offset += 4 if data is None else 8
    if not head.commands or head.commands[-1].name != "NPU_OP_STOP":
        raise NpuError(f"register stream ending at byte {end} does not end with NPU_OP_STOP")
    return head
