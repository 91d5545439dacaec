"""The Ethos-U table: for the MLPerf Tiny models and seed 003's MobileNetV2 on Corstone-300
(U55-128) and Corstone-320 (U85-256): ops on the NPU, our NPU SRAM vs Vela's own peak,
total RAM (arena + static stack + data), Vela's cycle estimate, compile seconds.

    python examples/npu_benchmark.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed003  # noqa: E402

import mcu_compile  # noqa: E402

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
MODELS = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8", "mobilenetv2"]


def compile_model(name: str, board: str, out: Path):
    if name == "mobilenetv2":
        model, shape = seed003.seed003_models()[name]
        calibration = seed003.calibration_set(shape, 8, seed=3)
        return mcu_compile.compile(model, calibration[0], calibration=calibration, board=board, out_dir=out)
    return mcu_compile.compile(SHARED_MODELS / f"{name}.tflite", board=board, out_dir=out)


def main() -> int:
    print("| model | board | ops on NPU | NPU SRAM B (ours / Vela) | total RAM B | NPU flash B | "
          "Vela NPU cycles | compile s |")
    print("|---|---|---|---|---|---|---|---|")
    for board in ("corstone-300", "corstone-320"):
        for name in MODELS:
            start = time.monotonic()
            compiled = compile_model(name, board, Path("build/npu") / board / name)
            seconds = time.monotonic() - start
            compiled.build()
            r, npu = compiled.report, compiled.report["npu"]
            ram = sum(row["used"] for row in r["regions"].values() if row["kind"] == "ram")
            print(f"| {name} | {board} | {npu['ops_on_npu']}/{npu['ops_on_npu'] + npu['ops_on_cpu']} | "
                  f"{npu['sram_bytes']:,} / {npu['vela_sram_bytes']:,} | {ram:,} | {npu['flash_bytes']:,} | "
                  f"{npu['estimated_cycles']:,} | {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
