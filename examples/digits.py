"""A small CNN trained in seconds on sklearn's 8x8 digits, quantized to int8, run in QEMU.

    python examples/digits.py [--board mps3-an547|mps2-an386]

Prints float accuracy and int8 accuracy (host reference, bit-exact with the
firmware) on the held-out split, and runs a few test images on the board.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import DigitsCNN  # noqa: E402

import mcu_compile  # noqa: E402
from mcu_compile.reference import interpreter as reference  # noqa: E402
from mcu_compile.ir.inputs import to_program_inputs  # noqa: E402


def digits_split():
    """(x_train, x_test, y_train, y_test), images as N x 1 x 8 x 8 floats in [0, 1]."""
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(images, data.target, test_size=0.2, random_state=0, stratify=data.target)


def train(x_train, y_train, epochs: int = 30, seed: int = 0) -> DigitsCNN:
    torch.manual_seed(seed)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def float_accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def int8_accuracy(program, x, y) -> float:
    """Accuracy of the int8 Edge program (host reference) over the whole split."""
    correct = 0
    for image, label in zip(x, y):
        (logits,) = reference.run(program, to_program_inputs(program, (image[None],)))
        correct += int(np.argmax(logits) == label)
    return correct / len(y)


def compile_digits(board: str, out: Path, firmware_images: int = 4):
    x_train, x_test, y_train, y_test = digits_split()
    model = train(x_train, y_train)
    calibration = [(torch.from_numpy(x_train[i:i + 1]),) for i in range(0, 256, 2)]
    compiled = mcu_compile.compile(
        model, calibration[0], calibration=calibration, board=board, out_dir=out,
        test_inputs=[(x_test[i:i + 1],) for i in range(firmware_images)])
    return model, compiled, (x_test, y_test)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--board", default="mps3-an547")
    parser.add_argument("--out", default="build/digits", type=Path)
    args = parser.parse_args(argv)
    model, compiled, (x_test, y_test) = compile_digits(args.board, args.out / args.board)
    fp = float_accuracy(model, x_test, y_test)
    q = int8_accuracy(compiled.reference_program, x_test, y_test)
    run = compiled.run()
    print(f"float accuracy {fp:.2%}, int8 accuracy {q:.2%} on {len(y_test)} held-out digits")
    print(f"firmware on {args.board}: {len(run.outputs)} images, bit-exact={run.bit_exact}, "
          f"instructions/inference={run.instructions[0]:,}")
    return 0 if run.bit_exact and abs(fp - q) <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
