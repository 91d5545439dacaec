"""Ethos-U delegation: what goes to the NPU, why the rest does not, and where every NPU
byte lives (compile only: running NPU jobs needs an FVP or the functional model)."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mcu_compile
from mcu_compile.errors import BoardFitError
from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.ir.tflite_io import load_tflite, write_tflite

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from models import MobileNetV2, seeded  # noqa: E402

MLPERF = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]


@pytest.mark.parametrize("board", ["corstone-300", "corstone-320"])
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_models_go_to_the_npu_within_velas_memory(name, board, shared_dir, tmp_path):
    start = time.monotonic()
    compiled = mcu_compile.compile(shared_dir / "models" / f"{name}.tflite", board=board, out_dir=tmp_path / "fw")
    assert time.monotonic() - start < 30
    report = compiled.report
    npu = report["npu"]
    assert npu["ops_on_cpu"] == 0 and npu["ops_on_npu"] == len(report["ops"]) > 0
    assert all(op["target"] == "npu" and op["reason"] == "" for op in report["ops"])
    assert npu["sram_bytes"] <= npu["vela_sram_bytes"]  # no buffer added at the CPU/NPU boundary
    assert npu["command_stream_bytes"] > 0 and npu["estimated_cycles"] > 0
    assert report["arena"]["region"] == "sram"  # the NPU cannot reach the TCMs
    # the .tflite keeps the partition as TFLite's CUSTOM "ethos-u" operator
    program = load_tflite(compiled.program_path)
    assert [op.kind for op in program.ops] == ["ETHOS_U"]


def test_feature_maps_are_shared_in_place_between_cpu_and_npu(shared_dir, tmp_path):
    """The CPU writes the input where the NPU's command stream reads it: the job's base
    pointers and the model's input/output pointers are the planned addresses."""
    compiled = mcu_compile.compile(shared_dir / "models" / "kws_ref_model.tflite", board="corstone-300",
                                   out_dir=tmp_path / "kws")
    (part,) = compiled.report["npu"]["partitions"]
    offsets = part["region_offsets"]
    model_c = (tmp_path / "kws" / "model.c").read_text()
    scratch = re.search(r"#define T_npu0_scratch \(arena \+ (\d+)\)", model_c)
    assert scratch and int(scratch.group(1)) == offsets["npu0_scratch"]
    inside = offsets["input_1"] - offsets["npu0_scratch"]
    assert f"model_inputs[MODEL_NUM_INPUTS] = {{\n    (T_npu0_scratch + {inside})" in model_c
    assert f"(uintptr_t)(T_npu0_scratch + {inside})" in model_c  # region 3 base = the same bytes
    assert "memcpy" not in model_c


def pool_stride_4_program() -> Program:
    """conv -> max pool stride 4 SAME (not on the NPU) -> relu."""
    p = Program()
    q = Quant.per_tensor(0.05, 0)
    p.add_tensor(Tensor("x", (1, 16, 16, 4), "int8", q))
    p.add_tensor(Tensor("w", (8, 3, 3, 4), "int8", Quant(np.full(8, 0.01), np.zeros(8), 0),
                        np.random.default_rng(0).integers(-127, 128, (8, 3, 3, 4))))
    p.add_tensor(Tensor("b", (8,), "int32", Quant(np.full(8, 0.0005), np.zeros(8), 0), np.zeros(8)))
    for name, shape in (("y", (1, 16, 16, 8)), ("z", (1, 4, 4, 8)), ("out", (1, 4, 4, 8))):
        p.add_tensor(Tensor(name, shape, "int8", q))
    p.add_op(Op("CONV_2D", ["x", "w", "b"], ["y"], dict(padding="SAME", stride_h=1, stride_w=1)))
    p.add_op(Op("MAX_POOL_2D", ["y"], ["z"], dict(padding="SAME", stride_h=4, stride_w=4,
                                                   filter_height=5, filter_width=5)))
    p.add_op(Op("RELU", ["z"], ["out"]))
    p.inputs, p.outputs = ["x"], ["out"]
    return p


def test_cpu_ops_carry_velas_reason(tmp_path):
    path = tmp_path / "pool4.tflite"
    path.write_bytes(write_tflite(pool_stride_4_program()))
    compiled = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "fw")
    targets = [(op["op"], op["target"]) for op in compiled.report["ops"]]
    assert targets == [("CONV_2D", "npu"), ("MAX_POOL_2D", "cpu"), ("RELU", "npu")]
    reason = compiled.report["ops"][1]["reason"]
    assert "Unsupported kernel stride: 4, 4" in reason and "Stride>3 is only supported" in reason
    assert compiled.report["npu"]["ops_on_cpu"] == 1 and len(compiled.report["npu"]["partitions"]) == 2
    kinds = [op.kind for op in load_tflite(compiled.program_path).ops]
    assert kinds == ["ETHOS_U", "MAX_POOL_2D", "ETHOS_U"]


def test_no_npu_keeps_everything_on_the_cpu(shared_dir, tmp_path):
    compiled = mcu_compile.compile(shared_dir / "models" / "ad01_int8.tflite", board="corstone-300",
                                   out_dir=tmp_path / "fw", npu=False)
    assert "npu" not in compiled.report
    assert {op["target"] for op in compiled.report["ops"]} == {"cpu"}
    assert compiled.report["ops"][0]["reason"] == "compiled with npu=False"


def test_torch_mobilenetv2_delegates_whole(tmp_path):
    model = seeded(MobileNetV2(0.05), 3)
    example = (torch.randn(1, 3, 96, 96),)
    compiled = mcu_compile.compile(model, example, board="corstone-300", out_dir=tmp_path / "mnv2")
    npu = compiled.report["npu"]
    assert npu["ops_on_cpu"] == 0 and len(npu["partitions"]) == 1
    assert npu["sram_bytes"] <= npu["vela_sram_bytes"]


def test_npu_model_too_big_for_the_board_names_the_region(shared_dir, tmp_path):
    board = (Path(mcu_compile.__file__).resolve().parents[1] / "boards" / "corstone-300.toml").read_text()
    small = tmp_path / "tiny-sram.toml"
    small.write_text(board.replace('name = "corstone-300"', 'name = "tiny-sram"')
                     .replace("length = 0x00200000   # 2 MiB on the FVP", "length = 0x00002000"))
    with pytest.raises(BoardFitError, match=r"region sram \(ram\) of tiny-sram needs 16,000 B but has 8,192 B"):
        mcu_compile.compile(shared_dir / "models" / "kws_ref_model.tflite", board=str(small), out_dir=tmp_path / "x")


def test_npu_firmware_builds_heapless_and_reports_the_missing_npu(shared_dir, tmp_path):
    """QEMU's mps3-an547 is Corstone-300 without the NPU: the firmware runs up to the first
    job and stops with the driver's clear status; run(npu_sim="fvp") asks for the FVP by name."""
    from mcu_compile.target.elf import heap_symbols
    from mcu_compile.sim.fvp import FvpNotFoundError
    from mcu_compile.sim.outcome import RunError
    from mcu_compile.sim.qemu import run_qemu

    compiled = mcu_compile.compile(shared_dir / "models" / "ad01_int8.tflite", board="corstone-300",
                                   out_dir=tmp_path / "ad")
    elf = compiled.build()
    assert heap_symbols(elf) == []
    split = compiled.report["elf"]["flash"]
    assert split["npu_streams_and_weights"] >= compiled.report["npu"]["flash_bytes"] > 200_000
    assert split["npu_driver"] > 0
    with pytest.raises(RunError, match="NPU not found"):
        run_qemu(compiled.board, elf, timeout=60)
    with pytest.raises(FvpNotFoundError, match="FVP_Corstone_SSE-300_Ethos-U55 not found"):
        compiled.run(npu_sim="fvp")


def test_model_with_nothing_for_the_npu_compiles_for_the_cpu(tmp_path):
    program = pool_stride_4_program()
    program.ops = program.ops[1:2]  # only the stride-4 max pool
    program.inputs, program.outputs = ["y"], ["z"]
    program.tensors = {n: t for n, t in program.tensors.items() if n in ("y", "z")}
    path = tmp_path / "pool.tflite"
    path.write_bytes(write_tflite(program))
    compiled = mcu_compile.compile(path, board="corstone-300", out_dir=tmp_path / "fw")
    assert compiled.report["npu"]["ops_on_npu"] == 0 and compiled.report["npu"]["partitions"] == []
    assert compiled.report["ops"][0]["target"] == "cpu" and "Stride>3" in compiled.report["ops"][0]["reason"]
    assert not compiled.uses_npu


def test_vela_failure_names_the_partition(monkeypatch, shared_dir, tmp_path):
    from mcu_compile.passes import delegate as delegate_module

    def broken(*args, **kwargs):
        raise delegate_module.VelaError("Vela could not compile for ethos-u55-128: out of SHRAM")
    monkeypatch.setattr(delegate_module, "compile_partition", broken)
    with pytest.raises(delegate_module.VelaError, match=r"out of SHRAM \(NPU partition of 10 ops starting "
                                                        r"with FULLY_CONNECTED .*--no-npu"):
        mcu_compile.compile(shared_dir / "models" / "ad01_int8.tflite", board="corstone-300", out_dir=tmp_path / "x")
