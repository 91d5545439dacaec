"""The full sweep (`make test-all`, marked slow): every model on every board with more
inputs than the default suite, firmware == host reference == TFLM interpreter."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mcu_compile
from mcu_compile.reference.oracle import tflm_outputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_npu_end_to_end import MLPERF, assert_npu_run_matches_cpu_only_build, random_inputs  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_on_cpu_boards_with_ten_inputs(name, board, shared_dir, tmp_path):
    path = shared_dir / "models" / f"{name}.tflite"
    compiled = mcu_compile.compile(path, board=board, out_dir=tmp_path / "fw")
    run = compiled.run(inputs=random_inputs(compiled.program, 10))
    assert run.bit_exact
    for vector, outputs in zip(run.inputs, run.outputs):
        assert [o.tobytes() for o in outputs] == [t.tobytes() for t in tflm_outputs(path, list(vector))]


@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_on_the_npu_with_ten_inputs(name, shared_dir, tmp_path):
    path = shared_dir / "models" / f"{name}.tflite"
    npu_build = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "npu")
    cpu_build = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "cpu", npu=False)
    assert_npu_run_matches_cpu_only_build(npu_build, cpu_build, random_inputs(npu_build.program, 10))
