"""Seed 003's MobileNetV2-0.05 on Corstone-300's Ethos-U55: compile, see what runs where,
run the firmware (on the FVP if installed, else QEMU + the functional NPU model) and compare
with the CPU-only build of the same model.

    python examples/npu_mobilenetv2.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed003 import calibration_set, seed003_models  # noqa: E402

import mcu_compile  # noqa: E402
from mcu_compile.reference.oracle import tflm_outputs  # noqa: E402


def main() -> int:
    model, shape = seed003_models()["mobilenetv2"]
    calibration = calibration_set(shape, 8, seed=3)
    npu = mcu_compile.compile(model, calibration[0], calibration=calibration, board="corstone-300",
                              out_dir="build/npu_demo/npu")
    cpu = mcu_compile.compile(model, calibration[0], calibration=calibration, board="corstone-300",
                              out_dir="build/npu_demo/cpu", npu=False)
    run = npu.run(inputs=[(c[0],) for c in calibration[:3]])
    held_out = all(o[0].tobytes() == tflm_outputs(cpu.program_path, list(v))[0].tobytes()
                   for o, v in zip(run.outputs, run.inputs))
    print(npu.report_text())
    print(f"NPU jobs run by: {run.npu_sim} ({run.npu_jobs} jobs); firmware == host reference: {run.bit_exact}; "
          f"== TFLM on the CPU-only build: {held_out}")
    print(f"CPU instructions per inference: {run.instructions[0]:,} "
          f"(Vela's NPU estimate {npu.report['npu']['estimated_cycles']:,} cycles)")
    return 0 if run.bit_exact and held_out else 1


if __name__ == "__main__":
    sys.exit(main())
