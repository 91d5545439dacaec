"""The issue's examples, end to end: PyTorch model -> firmware -> QEMU, bit-exact."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import digits  # noqa: E402
import seed003  # noqa: E402

from mcu_compile.elf import heap_symbols, symbols  # noqa: E402


@pytest.mark.parametrize("name", ["softmax", "linear", "add"])
def test_seed003_small_models_bit_exact_on_m55(name, tmp_path):
    """The models that hang in ExecuTorch's Arm flow run and match here."""
    compiled, run = seed003.compile_and_run(name, "mps3-an547", tmp_path)
    assert run.bit_exact
    assert len(run.outputs) == 2 and all(count > 0 for count in run.instructions)
    assert heap_symbols(run.elf) == []


def test_seed003_mobilenetv2_bit_exact_and_arena_known_at_compile_time(tmp_path):
    compiled, run = seed003.compile_and_run("mobilenetv2", "mps3-an547", tmp_path)
    assert run.bit_exact
    report = compiled.report
    arena = report["arena"]["bytes"]
    assert report["arena"]["lower_bound"] <= arena < seed003.SEED003_MOBILENETV2_PLANNED_BYTES
    # prediction == ELF: the arena symbol is exactly the planned size, in the planned region
    (arena_symbol,) = [s for s in symbols(run.elf) if s.name == "arena"]
    assert arena_symbol.size == arena
    assert compiled.board.region_at(arena_symbol.address).name == report["arena"]["region"]
    weights = sum(t.nbytes for t in compiled.program.weights())
    assert report["elf"]["weights_bytes"] == weights == report["weights_bytes"]
    assert heap_symbols(run.elf) == []


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_digits_cnn_accuracy_and_bit_exact_firmware(board, tmp_path):
    model, compiled, (x_test, y_test) = digits.compile_digits(board, tmp_path)
    float_acc = digits.float_accuracy(model, x_test, y_test)
    int8_acc = digits.int8_accuracy(compiled.program, x_test, y_test)
    assert float_acc > 0.9
    assert abs(float_acc - int8_acc) <= 0.01
    run = compiled.run()
    assert run.bit_exact and len(run.outputs) == 4
    # the firmware's int8 logits classify the images as the host reference does
    assert [int(o[0].argmax()) for o in run.outputs] == [int(o[0].argmax()) for o in run.expected]
