"""Float edges of a model from another converter: a QUANTIZE right after a float32 graph
input and a DEQUANTIZE right before a float32 graph output leave the program, which then
takes and gives int8; the host does both conversions, with TFLite's arithmetic
(ir/inputs.py: quantizing run inputs, dequantizing run outputs). The firmware stays
integer-only and its bytes equal TFLite Micro's on the int8 tensors."""
from __future__ import annotations

from ..ir.program import Program


def quantize_edges_on_host(program: Program) -> Program:
    ops, inputs, outputs = list(program.ops), list(program.inputs), list(program.outputs)
    for i, name in enumerate(inputs):
        readers = program.consumers(name)
        if program.tensor(name).dtype == "float32" and len(readers) == 1 and readers[0].kind == "QUANTIZE":
            inputs[i] = readers[0].outputs[0]
            ops.remove(readers[0])
    for i, name in enumerate(outputs):
        writer = program.producer(name)
        if (program.tensor(name).dtype == "float32" and writer is not None and writer.kind == "DEQUANTIZE"
                and program.tensor(writer.inputs[0]).dtype == "int8"):
            outputs[i] = writer.inputs[0]
            ops.remove(writer)
    if len(ops) == len(program.ops):
        return program
    used = {n for op in ops for n in op.inputs + op.outputs} | set(inputs) | set(outputs)
    return Program({n: t for n, t in program.tensors.items() if n in used}, ops, inputs, outputs,
                   dict(program.metadata))
