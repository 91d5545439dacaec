"""TFLite Micro's Python interpreter as an independent oracle: its outputs and its arena.

The interpreter prints its arena accounting to the C-level stderr, so the arena
measurement runs in a child Python process whose stderr we read.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..ir.tflite_io import load_tflite

_ARENA_SCRIPT = """
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
it = runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read())
for i in range(len(sys.argv) - 2):
    d = it.get_input_details(i)
    it.set_input(np.zeros(d['shape'], d['dtype']), i)
it.invoke()
it.print_allocations()
"""


def tflm_outputs(tflite_path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """One inference of the TFLM interpreter (reference kernels) on the .tflite file."""
    from tflite_micro.python.tflite_micro import runtime
    interpreter = runtime.Interpreter.from_bytes(Path(tflite_path).read_bytes())
    for index, array in enumerate(inputs):
        interpreter.set_input(array, index)
    interpreter.invoke()
    count = len(load_tflite(tflite_path).outputs)
    return [interpreter.get_output(index) for index in range(count)]

def tflm_arena(tflite_path: Path, num_inputs: int = 1) -> dict[str, int]:
    """TFLM's arena after one invoke: total, head (activations), tail (its bookkeeping)."""
    result = subprocess.run([sys.executable, "-c", _ARENA_SCRIPT, str(tflite_path)] + ["x"] * num_inputs,
                            capture_output=True, text=True, timeout=300)
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", result.stderr))
    if len(found) != 3:
        raise RuntimeError(f"TFLM interpreter gave no arena figures for {tflite_path}: "
                           f"{result.stderr.strip().splitlines()[-1:] or result.returncode}")
    return {key: int(value) for key, value in found.items()}
