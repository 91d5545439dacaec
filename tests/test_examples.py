"""The issue's examples, end to end: PyTorch model -> firmware -> QEMU, bit-exact."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import digits  # noqa: E402
import seed003  # noqa: E402

from mcu_compile.target.elf import heap_symbols, symbols  # noqa: E402
from mcu_compile.reference.oracle import tflm_outputs  # noqa: E402


def assert_three_way_bit_exact(compiled, run):
    """firmware == host reference == TFLite Micro, byte for byte, on every test vector."""
    assert run.bit_exact
    for inputs, want in zip(run.inputs, run.expected):
        got = tflm_outputs(compiled.program_path, inputs)
        assert [g.tobytes() for g in got] == [w.tobytes() for w in want]


@pytest.mark.parametrize("name", ["softmax", "linear", "add"])
def test_seed003_small_models_bit_exact_on_m55(name, tmp_path):
    """The models that hang in ExecuTorch's Arm flow run and match here."""
    compiled, run = seed003.compile_and_run(name, "mps3-an547", tmp_path)
    assert_three_way_bit_exact(compiled, run)
    assert len(run.outputs) == 2 and all(count > 0 for count in run.instructions)
    assert heap_symbols(run.elf) == []


def test_seed003_mobilenetv2_bit_exact_and_arena_known_at_compile_time(tmp_path):
    compiled, run = seed003.compile_and_run("mobilenetv2", "mps3-an547", tmp_path)
    assert_three_way_bit_exact(compiled, run)
    report = compiled.report
    arena = report["arena"]["bytes"]
    assert report["arena"]["lower_bound"] <= arena < seed003.SEED003_MOBILENETV2_PLANNED_BYTES
    # the PADs lowering inserted (PyTorch pads the top, TFLite's SAME the bottom) are
    # folded into the convolutions: no padded copies in the arena
    assert "PAD" not in report["model"]["op_counts"]
    # layer by layer: the 48x48x48 expansion + its 24x24x48 depthwise output; the default
    # (optimize="balanced") runs the first five layers in strips of 12 rows instead
    schedule = report["arena"]["schedule"]
    assert (schedule["layer_by_layer_arena"], schedule["chosen"]) == (138_240, "first 5 ops in strips of 12 rows")
    assert arena == 94_880
    # prediction == ELF: the arena symbol is exactly the planned size, in the planned region
    (arena_symbol,) = [s for s in symbols(run.elf) if s.name == "arena"]
    assert arena_symbol.size == arena
    assert compiled.board.region_at(arena_symbol.address).name == report["arena"]["region"]
    weights = sum(t.nbytes for t in compiled.program.weights())
    assert report["elf"]["weights_bytes"] == weights == report["weights_bytes"]
    # every flash byte is attributed (from the linker map) to what it holds
    split = report["elf"]["flash"]
    assert sum(split.values()) == report["elf"]["flash_bytes"] and 0 <= split["alignment"] < 64
    assert 0 <= split["test_vectors"] - 2 * 96 * 96 * 3 < 64  # the two bundled int8 images + table
    assert split["kernels"] > 1000 and split["libc"] < 2048
    assert heap_symbols(run.elf) == []


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_digits_cnn_accuracy_and_bit_exact_firmware(board, tmp_path):
    model, compiled, (x_test, y_test) = digits.compile_digits(board, tmp_path)
    float_acc = digits.float_accuracy(model, x_test, y_test)
    int8_acc = digits.int8_accuracy(compiled.reference_program, x_test, y_test)
    assert float_acc > 0.9
    assert abs(float_acc - int8_acc) <= 0.01
    run = compiled.run()
    assert len(run.outputs) == 4
    assert_three_way_bit_exact(compiled, run)
    # the firmware's int8 logits classify the images as the host reference does
    assert [int(o[0].argmax()) for o in run.outputs] == [int(o[0].argmax()) for o in run.expected]
