"""The budget report's NPU section: what Vela put on the NPU, per partition and in total,
next to where the firmware's plan put each partition's buffers."""
from __future__ import annotations

from ..ir.program import Program
from ..ops import registry
from ..passes.delegate import Delegation
from ..passes.plan import MemoryPlan
from ..target.boards import Board


def npu_summary(delegation: Delegation, board: Board, firmware: Program, plan: MemoryPlan) -> dict:
    """The report's NPU section: per partition and in total, with Vela's own figures."""
    parts = []
    for part, op in zip(delegation.partitions, [op for op in firmware.ops if registry.of(op).uses_npu]):
        io = 0 if part.embedded_io else sum(firmware.tensor(n).nbytes for n in op.inputs[4:] + op.outputs)
        scratch = firmware.tensor(op.inputs[2]).nbytes + (
            firmware.tensor(op.inputs[3]).nbytes if op.inputs[3] != op.inputs[2] else 0)
        parts.append({"index": part.index, "ops": len(part.ops), "command_stream_bytes": len(part.payload_cop2),
                      "read_only_bytes": len(part.read_only), "scratch_bytes": scratch, "io_bytes": io,
                      "sram_bytes": scratch + io, "vela_sram_bytes": part.vela_sram_bytes,
                      "estimated_cycles": part.npu_cycles, "io_inside_scratch": part.embedded_io,
                      "region_offsets": {n: plan.offset(n) for n in op.inputs[2:] + op.outputs}})
    npu = board.npu
    on_npu = sum(p["target"] == "npu" for p in delegation.placement)
    return {"accelerator": npu["vela_accelerator"], "system_config": npu["vela_system_config"],
            "memory_mode": npu["vela_memory_mode"], "partitions": parts,
            "sram_bytes": max((p["sram_bytes"] for p in parts), default=0),
            "vela_sram_bytes": max((p["vela_sram_bytes"] for p in parts), default=0),
            "flash_bytes": sum(p["command_stream_bytes"] + p["read_only_bytes"] for p in parts),
            "command_stream_bytes": sum(p["command_stream_bytes"] for p in parts),
            "estimated_cycles": sum(p["estimated_cycles"] for p in parts),
            "ops_on_npu": on_npu, "ops_on_cpu": len(delegation.placement) - on_npu,
            "firmware_stream": "COP2; feature maps read and written in place (no copies at the CPU/NPU boundary)",
            "file_stream": "COP1 in the .tflite's ethos-u operator, for TFLite Micro's kernel"}
