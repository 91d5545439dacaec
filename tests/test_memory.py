"""The memory targets on the MLPerf Tiny reference models: every model compiles from its
.tflite, runs bit-exactly in QEMU, and its arena is within 1% of the lower bound and at
most 0.8x the arena TFLite Micro needs for the same file."""
from __future__ import annotations

import time

import pytest

import mcu_compile
from mcu_compile.target.elf import symbols
from mcu_compile.reference.oracle import tflm_arena, tflm_outputs
from mcu_compile.ir.tflite_io import load_tflite

MLPERF = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_model_arena_targets_and_bit_exact_run(name, board, shared_dir, tmp_path):
    path = shared_dir / "models" / f"{name}.tflite"
    start = time.monotonic()
    compiled = mcu_compile.compile(path, board=board, out_dir=tmp_path / name)
    assert time.monotonic() - start < 10.0  # compile time target, with a wide margin
    arena = compiled.report["arena"]
    assert arena["bytes"] <= 1.01 * arena["lower_bound"]
    assert arena["bytes"] <= 0.8 * tflm_arena(path)["total"]
    run = compiled.run()
    assert run.bit_exact
    # the firmware's outputs also equal the TFLite Micro interpreter on the original file
    assert [o.tobytes() for o in tflm_outputs(path, run.inputs[0])] == [o.tobytes() for o in run.outputs[0]]
    (arena_symbol,) = [s for s in symbols(run.elf) if s.name == "arena"]
    assert arena_symbol.size == arena["bytes"]  # prediction == ELF
    # the .tflite carries our plan as TFLM's OfflineMemoryAllocation: TFLM runs with it,
    # gets the same bytes, and needs no more activation memory than with its own planner
    assert "OfflineMemoryAllocation" in load_tflite(compiled.program_path).metadata
    assert [o.tobytes() for o in tflm_outputs(compiled.program_path, run.inputs[0])] == \
        [o.tobytes() for o in run.outputs[0]]
    assert tflm_arena(compiled.program_path)["head"] <= tflm_arena(path)["head"]


def test_resnet_residual_adds_are_fused_and_written_in_place(shared_dir, tmp_path):
    """ResNet-8's blocks hold three 16 KiB maps at once when run op by op; with the ADD
    fused into the second convolution and written over the skip tensor, two."""
    compiled = mcu_compile.compile(shared_dir / "models" / "pretrainedResnet_quant.tflite",
                                   out_dir=tmp_path / "resnet")
    assert "ADD" not in compiled.report["model"]["op_counts"]
    model_c = (tmp_path / "resnet" / "model.c").read_text()
    assert model_c.count("mcu_convolve_add_s8(") == 3
    assert compiled.report["arena"]["bytes"] < 2 * 16384 + 2048
