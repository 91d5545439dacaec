"""Which form of a linear layer should the NPU get: FULLY_CONNECTED or a 1x1 CONV_2D over
a reshaped tensor? Compiles every fully connected layer of the models both ways with our
Vela and prints Vela's NPU cycle estimates.

    python examples/npu_fc_vs_conv.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcu_compile.target.boards import load_board  # noqa: E402
from mcu_compile.passes.delegate import run_vela  # noqa: E402
from mcu_compile.ir.program import Op, Program, Tensor  # noqa: E402
from mcu_compile.ir.tflite_io import load_tflite, write_tflite  # noqa: E402

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
MODELS = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]


def single_layer(program: Program, fc: Op, as_conv: bool) -> Program:
    x, w, b = (program.tensor(n) for n in fc.inputs[:3])
    y = program.tensor(fc.outputs[0])
    p = Program()
    batch, depth = x.shape[0], x.size // x.shape[0]
    p.add_tensor(Tensor("x", (batch, depth), "int8", x.quant))
    p.add_tensor(Tensor("b", b.shape, "int32", b.quant, b.data))
    p.add_tensor(Tensor("y", (batch, w.shape[0]), "int8", y.quant))
    if not as_conv:
        p.add_tensor(Tensor("w", w.shape, "int8", w.quant, w.data))
        p.add_op(Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], dict(fc.options)))
    else:
        p.add_tensor(Tensor("w", (w.shape[0], 1, 1, w.shape[1]), "int8", w.quant, w.data.reshape(w.shape[0], 1, 1, -1)))
        p.add_tensor(Tensor("x4", (batch, 1, 1, depth), "int8", x.quant))
        p.add_tensor(Tensor("y4", (batch, 1, 1, w.shape[0]), "int8", y.quant))
        p.add_op(Op("RESHAPE", ["x"], ["x4"], {"new_shape": [batch, 1, 1, depth]}))
        p.add_op(Op("CONV_2D", ["x4", "w", "b"], ["y4"],
                    {"padding": "VALID", "fused_activation_function": fc.options.get("fused_activation_function", "NONE")}))
        p.add_op(Op("RESHAPE", ["y4"], ["y"], {"new_shape": [batch, w.shape[0]]}))
    p.inputs, p.outputs = ["x"], ["y"]
    return p


def cycles(board, program: Program) -> int:
    model, _ = run_vela(board, write_tflite(program), "raw", "COP2", separate_io=False)
    return int(model.perf_report.npuCycles)


def main() -> int:
    boards = [load_board("corstone-300"), load_board("corstone-320")]
    print("| model | layer (in -> out) | " + " | ".join(f"{b.npu['vela_accelerator']} FC / 1x1 conv cycles" for b in boards) + " |")
    print("|---|---|" + "---|" * len(boards))
    for name in MODELS:
        program = load_tflite(SHARED_MODELS / f"{name}.tflite")
        for fc in [op for op in program.ops if op.kind == "FULLY_CONNECTED"]:
            w = program.tensor(fc.inputs[1])
            row = [f"{cycles(b, single_layer(program, fc, False)):,} / {cycles(b, single_layer(program, fc, True)):,}"
                   for b in boards]
            print(f"| {name} | {w.shape[1]} -> {w.shape[0]} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
