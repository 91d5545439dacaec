"""NPU results without an FVP: the real Corstone-300 firmware runs in QEMU, its NPU jobs in
the functional model, and the outputs equal the host reference and the TFLite Micro
interpreter running the CPU-only compile of the same model, byte for byte."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import mcu_compile
from mcu_compile.ir.inputs import lcg_int8
from mcu_compile.reference.oracle import tflm_outputs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import seed003  # noqa: E402

MLPERF = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]


def random_inputs(program, count: int) -> list[tuple[np.ndarray, ...]]:
    return [tuple(lcg_int8(program.tensor(n).size, seed=100 + 7 * v + i).reshape(program.tensor(n).shape)
                  for i, n in enumerate(program.inputs)) for v in range(count)]


def assert_npu_run_matches_cpu_only_build(npu_build, cpu_build, inputs):
    run = npu_build.run(inputs=inputs)
    assert run.npu_sim == "model" and run.npu_jobs == len(inputs) * len(npu_build.report["npu"]["partitions"])
    assert run.bit_exact  # == the host reference
    for vector, outputs in zip(run.inputs, run.outputs):
        held_out = tflm_outputs(cpu_build.program_path, list(vector))
        assert [o.tobytes() for o in outputs] == [h.tobytes() for h in held_out]
    assert all(count > 0 for count in run.instructions)
    return run


@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_model_on_the_npu_is_bit_exact(name, shared_dir, tmp_path):
    path = shared_dir / "models" / f"{name}.tflite"
    npu_build = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "npu")
    cpu_build = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "cpu", npu=False)
    assert npu_build.report["npu"]["ops_on_cpu"] == 0
    assert_npu_run_matches_cpu_only_build(npu_build, cpu_build, random_inputs(npu_build.program, 3))


def test_seed003_mobilenetv2_on_the_npu_is_bit_exact(tmp_path):
    model, shape = seed003.seed003_models()["mobilenetv2"]
    calibration = seed003.calibration_set(shape, 8, seed=3)
    builds = [mcu_compile.compile(model, calibration[0], calibration=calibration, board="corstone-300",
                                  out_dir=tmp_path / kind, npu=kind == "npu") for kind in ("npu", "cpu")]
    # quantization is deterministic: both builds start from the same Edge program
    inputs = [(c[0],) for c in calibration[4:7]]  # float NCHW, quantized by run()
    assert_npu_run_matches_cpu_only_build(builds[0], builds[1], inputs)


def test_partly_delegated_model_is_bit_exact(tmp_path):
    """NPU, CPU, NPU: two jobs per inference around a CPU max pool."""
    from test_delegate import pool_stride_4_program
    from mcu_compile.ir.tflite_io import write_tflite
    path = tmp_path / "pool4.tflite"
    path.write_bytes(write_tflite(pool_stride_4_program()))
    npu_build = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "npu")
    cpu_build = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "cpu", npu=False)
    assert len(npu_build.report["npu"]["partitions"]) == 2
    assert_npu_run_matches_cpu_only_build(npu_build, cpu_build, random_inputs(npu_build.program, 2))
