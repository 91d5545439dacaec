"""Measures the model zoo (tests/zoo.py): small PyTorch models of the kinds microcontroller
users bring, random weights. One Markdown row per model:

- ops: the op kinds of the compiled Edge program (program.tflite), counted;
- M55 / M4: the firmware run in QEMU (mps3-an547, mps2-an386) on the bundled test vectors,
  "yes" when firmware == host reference == TFLite Micro interpreter byte for byte ("yes*":
  firmware == host reference, the program holds an op TFLM cannot run), and its
  instructions per inference (QEMU -icount, first vector);
- arena: planned arena bytes (mps3-an547) / lower bound;
- float vs int8 on N random inputs (standard normal, not the calibration data) through the
  host reference: the largest |int8 - float| in output quantization steps (over all inputs;
  and the median over inputs of each input's largest: the maximum is set by the few inputs
  whose outputs leave the range calibrated on 8 samples and clip) and the Pearson
  correlation with the float model's outputs (the lowest over the model's outputs).

    python examples/zoo.py [--models a,b] [--boards mps3-an547,mps2-an386] [--samples 200] [--out DIR]
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import zoo  # noqa: E402

from mcu_compile.ir.inputs import to_float_outputs, to_program_inputs  # noqa: E402
from mcu_compile.reference import interpreter as reference  # noqa: E402
from mcu_compile.reference.oracle import tflm_outputs  # noqa: E402

BOARDS = ["mps3-an547", "mps2-an386"]


def op_counts(compiled) -> str:
    counts = collections.Counter(op.kind for op in compiled.program.ops)
    return " ".join(f"{kind} {n}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def three_way(compiled, run, name: str) -> str:
    """'yes' when firmware == host reference == TFLM on every bundled vector."""
    if not run.bit_exact:
        return "**NO** (firmware != reference)"
    if name in zoo.TFLM_CANNOT_RUN:
        return "yes*"
    for vector, outputs in zip(run.inputs, run.outputs):
        if not all(np.array_equal(a, b) for a, b in zip(tflm_outputs(compiled.program_path, vector), outputs)):
            return "**NO** (TFLM differs)"
    return "yes"


def float_agreement(compiled, model, shape, samples: int, seed: int = 2) -> tuple[float, float, float]:
    """(max |int8 - float| in output steps, the median over inputs of each input's max,
    lowest Pearson r) over `samples` random inputs."""
    program = compiled.reference_program
    scales = [float(program.tensor(name).quant.scale[0]) for name in program.outputs]
    generator = torch.Generator().manual_seed(seed)
    got, want = collections.defaultdict(list), collections.defaultdict(list)
    per_input = []
    for _ in range(samples):
        x = torch.randn(shape, generator=generator)
        with torch.no_grad():
            expected = model(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        outputs = to_float_outputs(program, reference.run(program, to_program_inputs(program, (x,))))
        worst = 0.0
        for i, (a, b) in enumerate(zip(outputs, expected)):
            assert a.shape == tuple(b.shape), (a.shape, b.shape)
            got[i].append(a.ravel())
            want[i].append(b.numpy().ravel())
            worst = max(worst, float(np.abs(a - b.numpy()).max()) / scales[i])
        per_input.append(worst)
    correlation = 1.0
    for i in range(len(program.outputs)):
        a, b = np.concatenate(got[i]).astype(np.float64), np.concatenate(want[i]).astype(np.float64)
        correlation = min(correlation, float(np.corrcoef(a, b)[0, 1]))
    return max(per_input), float(np.median(per_input)), correlation


def measure(name: str, boards: list[str], samples: int, out: Path) -> dict:
    row = {"model": name}
    for board in boards:
        start = time.monotonic()
        compiled, model, shape = zoo.compile_zoo(name, board, out / board / name, force=True)
        row[f"compile_s {board}"] = time.monotonic() - start
        if board == boards[0]:
            row["ops"] = op_counts(compiled)
            row["n_ops"] = len(compiled.program.ops)
            row["arena"] = compiled.report["arena"]["bytes"]
            row["lower_bound"] = compiled.report["arena"]["lower_bound"]
            row["steps"], row["median_steps"], row["pearson"] = float_agreement(compiled, model, shape, samples)
        run = compiled.run()
        row[f"exact {board}"] = three_way(compiled, run, name)
        row[f"instructions {board}"] = run.instructions[0]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(zoo.ZOO))
    parser.add_argument("--boards", default=",".join(BOARDS))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="where the projects go (default: a temporary folder)")
    args = parser.parse_args()
    boards = args.boards.split(",")
    names = args.models.split(",")
    cores = {"mps3-an547": "M55", "mps2-an386": "M4"}
    labels = [cores.get(b, b) for b in boards]
    header = (["model", "ops"] + [f"bit-exact {c}" for c in labels] + [f"instructions {c}" for c in labels]
              + [f"arena B (lower bound), {labels[0]}", f"max err in steps, {args.samples} inputs (median)", "Pearson r"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="zoo-") as scratch:
        out = args.out or Path(scratch)
        for name in names:
            try:
                row = measure(name, boards, args.samples, out)
            except Exception as error:  # one line per failing model, the table goes on
                print(f"| {name} | **failed**: {type(error).__name__}: {str(error).splitlines()[0][:200]} |",
                      flush=True)
                ok = False
                continue
            ok &= all(row[f"exact {b}"].startswith("yes") for b in boards)
            cells = ([name, f"{row['n_ops']}: {row['ops']}"] + [row[f"exact {b}"] for b in boards]
                     + [f"{row[f'instructions {b}']:,}" for b in boards]
                     + [f"{row['arena']:,} ({row['lower_bound']:,})",
                        f"{row['steps']:.1f} ({row['median_steps']:.1f})", f"{row['pearson']:.4f}"])
            print("| " + " | ".join(cells) + " |", flush=True)
    if zoo.TFLM_CANNOT_RUN:
        print("\nyes*: firmware == host reference; TFLite Micro cannot run the program ("
              + "; ".join(f"{n}: {why}" for n, why in zoo.TFLM_CANNOT_RUN.items()) + ")")
    for name, bug in zoo.FIRMWARE_BUGS.items():
        if name in names:
            print(f"\nknown compiler bug, {name}: {bug}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
