"""ETHOS_U: an Ethos-U NPU partition (passes/delegate.py), TFLite's CUSTOM "ethos-u" operator.

Inputs: command stream, read-only data (NPU weights), scratch, fast scratch, then
the partition's feature maps, as TFLite Micro's kernel takes them. The feature maps
live inside the scratch at the offsets Vela chose (options["io_offsets"]).
"""
from __future__ import annotations

from ..codegen import c_text as c
from ..ir.program import Op, Program
from .registry import OpKind, TfliteForm, register


def _outputs_as_given(program: Program, op: Op):
    return None  # Vela decides; the partition's outputs keep the shapes of the ops it replaced


def _const_sections(op: Op) -> dict[str, str]:
    """The read-only data lives where the NPU fetches it, not in the CPU's code region."""
    return {op.inputs[1]: op.options["const_section"]}


def _npu_const_bytes(program: Program, op: Op) -> int:
    return program.tensor(op.inputs[1]).nbytes + len(op.options["cop2_payload"])


def _emit_ethos_u(site: c.Site) -> c.CodeFragment:
    """An Ethos-U partition (passes/delegate.py): the COP2 command stream as a const array in the
    NPU's constant region, and one job whose region bases are the planned buffers
    themselves: 0 read-only data, 1 scratch, 2 fast scratch, 3 input, 4 output, with each
    region's bytes (what a co-simulating host reads and writes back, sim/cosim.py)."""
    op = site.op
    payload = op.options["cop2_payload"]
    name = f"{site.uid}_command_stream"
    rows = [", ".join(f"0x{b:02x}" for b in payload[i:i + 16]) for i in range(0, len(payload), 16)]
    body = ",\n    ".join(rows)
    declaration = (c.comment(f"NPU partition {op.options['partition']}: Vela's COP2 command stream, "
                             f"{len(payload)} B") + "\n"
                   f"static const uint8_t {name}[{len(payload)}] "
                   f"__attribute__((section(\"{op.options['const_section']}\"), aligned(16))) = {{\n    {body}\n}};")
    _, read_only, scratch, fast, ifm = op.inputs[:5]
    regions = (read_only, scratch, fast, ifm, op.outputs[0])
    bases = ", ".join(f"(uintptr_t){site.ref(n)}" for n in regions)
    sizes = ", ".join(f"{site.program.tensor(n).nbytes}u" for n in regions)
    lines = [
        f"const uintptr_t base[5] = {{{bases}}};",
        f"const uint32_t bytes[5] = {{{sizes}}};",
        "/* The NPU reads and writes memory the CPU may hold in its D-cache: the span over",
        "   scratch, input and output (regions 1-4) is cleaned before the job and invalidated after. */",
        "uintptr_t lo = base[1], hi = base[1] + bytes[1];",
        "for (int r = 2; r < 5; r++)",
        "{",
        "    lo = base[r] < lo ? base[r] : lo;",
        "    hi = base[r] + bytes[r] > hi ? base[r] + bytes[r] : hi;",
        "}",
        "const mcu_npu_job job = {",
        f"    .payload = {name}, .payload_bytes = {len(payload)},",
        "    .region_base = {base[0], base[1], base[2], base[3], base[4]},",
        "    .clean_start = (const void *)lo, .clean_bytes = (uint32_t)(hi - lo),",
        "    .invalidate_start = (void *)lo, .invalidate_bytes = (uint32_t)(hi - lo),",
        "    .region_bytes = {bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]}};",
        f"CHECK_NPU({site.index}, mcu_npu_run(&{c.NPU_DEVICE}, &job));",
    ]
    summary = (f"{len(payload)} B command stream, {site.program.tensor(read_only).nbytes} B read-only, "
               f"{site.program.tensor(scratch).nbytes} B scratch, Vela estimate {op.options['npu_cycles']} NPU cycles")
    return c.CodeFragment([declaration], [c.block(site, summary, lines)])


register(
    OpKind("ETHOS_U", _outputs_as_given, None, _emit_ethos_u, inputs=(4, -1), const_inputs=(0, 1),
           tflite=TfliteForm(custom_code="ethos-u", builtin="CUSTOM"), storage="workspace", int8_input=False,
           uses_npu=True, const_sections=_const_sections, npu_const_bytes=_npu_const_bytes, label="npu"),
)
