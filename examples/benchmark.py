"""Measures every example and the MLPerf Tiny models: arena, lower bound, TFLite Micro's
arena for the same .tflite (reference kernels, total incl. its bookkeeping), flash,
instructions per inference (QEMU -icount, deterministic), bit-exactness, compile time.

    python examples/benchmark.py [--board mps3-an547] [--markdown]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits  # noqa: E402
import seed003  # noqa: E402

import mcu_compile  # noqa: E402
from mcu_compile.reference.oracle import tflm_arena  # noqa: E402
from mcu_compile.ir.tflite_io import write_tflite  # noqa: E402

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
MLPERF = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]


def tflm_baseline(compiled) -> Path:
    """The compiled .tflite without our offline plan: TFLM planning on its own."""
    program = compiled.program
    program.metadata.pop("OfflineMemoryAllocation", None)
    path = compiled.project_dir / "program_tflm_planned.tflite"
    path.write_bytes(write_tflite(program))
    return path


def measure(name: str, compile_fn) -> dict:
    start = time.monotonic()
    compiled = compile_fn()
    seconds = time.monotonic() - start
    run = compiled.run()
    report = compiled.report
    tflm = tflm_arena(tflm_baseline(compiled), len(compiled.program.inputs))["total"]
    return {"tflm_arena": tflm,"model": name, "arena": report["arena"]["bytes"], "lower_bound": report["arena"]["lower_bound"],
            "flash": report["elf"]["flash_bytes"], "weights": report["elf"]["weights_bytes"],
            "instructions": run.instructions[0], "bit_exact": run.bit_exact, "compile_s": seconds}


def cases(board: str, out: Path):
    for name in seed003.seed003_models():
        model, shape = seed003.seed003_models()[name]
        calibration = seed003.calibration_set(shape, 8, seed=3)
        yield name, lambda m=model, c=calibration, n=name: mcu_compile.compile(
            m, c[0], calibration=c, board=board, out_dir=out / n, test_inputs=c[:1])
    yield "digits CNN", lambda: digits.compile_digits(board, out / "digits", firmware_images=1)[1]
    for name in MLPERF:
        path = SHARED_MODELS / f"{name}.tflite"
        if path.is_file():
            yield name, lambda p=path, n=name: mcu_compile.compile(p, board=board, out_dir=out / n)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--board", default="mps3-an547")
    parser.add_argument("--out", default="build/benchmark", type=Path)
    args = parser.parse_args(argv)
    print(f"| model ({args.board}) | arena B | lower bound B | TFLM arena B | arena / TFLM | flash B | "
          f"weights B | instructions/inference | bit-exact | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for name, fn in cases(args.board, args.out / args.board):
        r = measure(name, fn)
        ok &= r["bit_exact"]
        print(f"| {r['model']} | {r['arena']:,} | {r['lower_bound']:,} | {r['tflm_arena']:,} | "
              f"{r['arena'] / r['tflm_arena']:.2f} | {r['flash']:,} | {r['weights']:,} | "
              f"{r['instructions']:,} | {'yes' if r['bit_exact'] else 'NO'} | {r['compile_s']:.1f} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
