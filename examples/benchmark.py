"""Measures every example and the MLPerf Tiny models: arena, lower bound, TFLite Micro's
arena for the same .tflite (reference kernels, total incl. its bookkeeping), flash,
instructions per inference (QEMU -icount, deterministic), bit-exactness, compile time.

    python examples/benchmark.py [--board mps3-an547]
    python examples/benchmark.py --speed [--board mps2-an386]   # portable vs optimized vs TFLM + CMSIS-NN
    python examples/benchmark.py --memory [--board mps3-an547]  # arena and instructions per optimize setting
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


# TFLite Micro + CMSIS-NN, instructions per inference, measured on these machines with the same
# method (QEMU -icount, same input): ../shared/TARGETS.md, "Peer baseline measured here".
PEER_INSTRUCTIONS = {
    "cortex-m55": {"kws_ref_model": 1_813_500, "pretrainedResnet_quant": 4_912_062,
                   "vww_96_int8": 6_557_844, "ad01_int8": 149_906},
    "cortex-m4": {"kws_ref_model": 7_697_680, "pretrainedResnet_quant": 29_863_880,
                  "vww_96_int8": 24_101_440, "ad01_int8": 582_880},
    "cortex-m7": {"kws_ref_model": 7_643_480, "pretrainedResnet_quant": 30_026_760,
                  "vww_96_int8": 24_025_080, "ad01_int8": 583_160},
}
SPEED_GOAL = 0.67   # issue #15: at most 0.67x the peer's instructions


def speed_table(board: str, out: Path) -> bool:
    """Per model (MLPerf Tiny, seed 003's MobileNetV2): ours with the portable C kernels, ours
    optimized (Helium / DSP), the peer, and optimized / peer. True when every run was bit-exact."""
    print(f"| model ({board}) | ours, portable C | ours, optimized | TFLM + CMSIS-NN | ours / peer |")
    print("|---|---|---|---|---|")
    ok = True
    for name, compile_fn in memory_models(board, out):
        compiled = compile_fn("speed")
        run = compiled.run()
        portable = compiled.run_variant("portable")
        same = [o for vector in portable.outputs for o in vector] == [bytes(a.tobytes()) for v in run.outputs for a in v]
        ok &= run.bit_exact and same
        peer = PEER_INSTRUCTIONS.get(compiled.board.cpu.core, {}).get(name)
        ratio = f"{run.instructions[0] / peer:.2f}" if peer else "-"
        print(f"| {name} | {portable.instructions[0]:,} | {run.instructions[0]:,}"
              f"{'' if run.bit_exact and same else ' (NOT bit-exact)'} | {f'{peer:,}' if peer else '-'} | {ratio} |",
              flush=True)
    return ok


def memory_models(board: str, out: Path):
    """(name, compile(optimize, out_dir)) for the MLPerf Tiny models and seed 003's MobileNetV2."""
    for name in MLPERF:
        path = SHARED_MODELS / f"{name}.tflite"
        if path.is_file():
            yield name, lambda optimize, p=path, n=name: mcu_compile.compile(
                p, board=board, out_dir=out / f"{n}-{optimize}", optimize=optimize)
    model, shape = seed003.seed003_models()["mobilenetv2"]
    calibration = seed003.calibration_set(shape, 8, seed=3)
    yield "mobilenetv2 (seed 003)", lambda optimize: mcu_compile.compile(
        model, calibration[0], calibration=calibration, board=board, out_dir=out / f"mobilenetv2-{optimize}",
        test_inputs=calibration[:1], optimize=optimize)


def memory_table(board: str, out: Path) -> bool:
    """Per model and `optimize` setting: the arena, the layer-by-layer bound, TFLM's arena,
    instructions per inference, flash and the schedule chosen. True when all bit-exact."""
    print(f"| model ({board}) | optimize | arena B | layer-by-layer arena (bound) B | TFLM arena B | "
          f"instructions | flash B | bit-exact | schedule |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for name, compile_fn in memory_models(board, out):
        for optimize in ("speed", "balanced", "ram"):
            compiled = compile_fn(optimize)
            run = compiled.run()
            ok &= run.bit_exact
            arena, schedule = compiled.report["arena"], compiled.report["arena"]["schedule"]
            tflm = tflm_arena(tflm_baseline(compiled), len(compiled.program.inputs))["total"]
            print(f"| {name} | {optimize} | {arena['bytes']:,} | {schedule['layer_by_layer_arena']:,} "
                  f"({schedule['layer_by_layer_bound']:,}) | {tflm:,} | {run.instructions[0]:,} | "
                  f"{compiled.report['elf']['flash_bytes']:,} | {'yes' if run.bit_exact else 'NO'} | "
                  f"{schedule['chosen']} |", flush=True)
    return ok


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
    parser.add_argument("--speed", action="store_true",
                        help="instructions per inference: portable C, optimized, TFLM + CMSIS-NN (MLPerf Tiny models)")
    parser.add_argument("--memory", action="store_true",
                        help="arena and instructions per optimize setting (speed, balanced, ram)")
    args = parser.parse_args(argv)
    if args.memory:
        return 0 if memory_table(args.board, args.out / f"memory-{args.board}") else 1
    if args.speed:
        return 0 if speed_table(args.board, args.out / f"speed-{args.board}") else 1
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
