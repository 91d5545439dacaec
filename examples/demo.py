"""The README's main job: compile seed 003's MobileNetV2-0.05 (96x96x3) for the
Cortex-M55 board, run it in QEMU, check it bit for bit against the host reference,
and print the instruction count and the budget report.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed003 import SEED003_MOBILENETV2_PLANNED_BYTES, calibration_set, seed003_models  # noqa: E402

import mcu_compile  # noqa: E402


def main() -> int:
    model, shape = seed003_models()["mobilenetv2"]
    calibration = calibration_set(shape, 8, seed=3)
    start = time.monotonic()
    print("compiling MobileNetV2 (width 0.05, 96x96x3) for mps3-an547 (Cortex-M55)...")
    compiled = mcu_compile.compile(model, calibration[0], calibration=calibration,
                                   board="mps3-an547", out_dir="build/demo/mobilenetv2",
                                   test_inputs=calibration[:1])
    print(f"  Edge program: {compiled.program_path}  ({time.monotonic() - start:.1f} s)")
    print("building the firmware and running it in QEMU (-icount, deterministic)...")
    run = compiled.run()
    verdict = "equal the host reference byte for byte" if run.bit_exact else "DIFFER from the host reference"
    print(f"  firmware outputs {verdict}")
    print(f"  instructions per inference: {run.instructions[0]:,}")
    arena = compiled.report["arena"]["bytes"]
    print(f"  arena {arena:,} B vs the {SEED003_MOBILENETV2_PLANNED_BYTES:,} B seed 003's ExecuTorch "
          f"run planned ({SEED003_MOBILENETV2_PLANNED_BYTES / arena:.0f}x less), known before flashing")
    print()
    print(compiled.report_text())
    return 0 if run.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
