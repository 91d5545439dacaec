"""Below the layer-by-layer memory bound (issue #16): patch-based execution of the first
layers in strips of rows (passes/patch.py), the tensor after the stage overlapping the
stage's input (passes/plan.py Overlap), in-place depthwise convolution
(passes/in_place.py, mcu_depthwise_conv_in_place_s8), and the `optimize` choice.

Bit-exactness: the strip-wise program's host reference equals the layer-by-layer one's on
random inputs, and the firmware equals the host reference in QEMU.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
import mcu_compile
from mcu_compile.errors import InputError, IRError
from mcu_compile.ir.tflite_io import load_tflite
from mcu_compile.ops import registry
from mcu_compile.passes.patch import RowMap, choose_schedule, patch_stage, stage_lengths
from mcu_compile.passes.plan import Buffer, MemoryPlan, Overlap, plan_memory, schedule_for_memory
from mcu_compile.passes.fuse import fold_pads_into_windows, fuse_residual_adds
from mcu_compile.passes.edges import quantize_edges_on_host
from mcu_compile.reference import interpreter

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def scratch(program):
    return [registry.scratch_bytes(program, op) for op in program.ops]


def firmware_program(tflite: Path):
    program = quantize_edges_on_host(load_tflite(tflite).verify())
    program = fuse_residual_adds(fold_pads_into_windows(program)).verify()
    return schedule_for_memory(program, scratch(program))[0]


def random_inputs(program, seed: int):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=program.tensor(n).shape).astype(np.int8) for n in program.inputs]


def test_row_map_reads_the_window_rows_and_pads_only_at_the_border():
    conv = RowMap(kernel=3, stride=2, dilation=1, pad_top=1)
    assert conv.input_rows(0, 2, 96) == (0, 4, 1, 0)  # rows -1..3: one padding row above
    assert conv.input_rows(5, 8, 96) == (9, 16, 0, 0)
    assert conv.input_rows(46, 48, 96) == (91, 96, 0, 0)
    assert RowMap(3, 1, 2, 2).input_rows(0, 1, 5) == (0, 3, 2, 0)  # dilated: rows -2, 0, 2
    assert RowMap(3, 1, 1, 1).input_rows(4, 5, 5) == (3, 5, 0, 1)  # one row below the image


def test_vww_strips_are_bit_exact_and_below_the_layer_by_layer_bound(shared_dir):
    program = firmware_program(shared_dir / "models" / "vww_96_int8.tflite")
    assert stage_lengths(program)[:3] == [1, 2, 3]
    best, schedules = choose_schedule(program, scratch, "ram")
    layer_by_layer = schedules[0]
    assert layer_by_layer.name == "layer by layer" and layer_by_layer.plan.arena_bytes == 55_328
    assert best.plan.arena_bytes <= 40_960 < layer_by_layer.plan.lower_bound
    assert best.instructions > layer_by_layer.instructions  # recomputed rows cost
    for seed in range(2):
        x = random_inputs(program, seed)
        want, got = interpreter.run(program, x), interpreter.run(best.program, x)
        assert all(np.array_equal(a, b) for a, b in zip(want, got))


def test_the_tensor_after_the_stage_overlaps_rows_of_the_input_no_strip_reads_again(shared_dir):
    program = firmware_program(shared_dir / "models" / "vww_96_int8.tflite")
    patched = patch_stage(program, 5, 3)
    concat = next(op for op in patched.ops if op.kind == "ROW_CONCAT")
    assert concat.options["overlaps"] == program.inputs[0] and len(concat.inputs) == 8
    plan = plan_memory(patched, scratch(patched)).verify()
    (overlap,) = plan.overlaps
    assert (overlap.lower, overlap.upper) == (concat.outputs[0], program.inputs[0])
    start = {name: plan.offset(name) for name in (overlap.lower, overlap.upper)}
    # the two share bytes in this plan, as far as the gap allows
    assert start[overlap.upper] - start[overlap.lower] >= overlap.gap
    assert start[overlap.lower] + plan.sizes[overlap.lower] > start[overlap.upper]


def test_plan_verify_refuses_an_overlap_closer_than_its_gap():
    a, b = Buffer("after", 1024, 2, 5), Buffer("input", 2048, -1, 3)
    plan = MemoryPlan(arena_bytes=3072, lower_bound=0, offsets={"after": 0, "input": 512}, sizes={},
                      buffers=[a, b], overlaps=[Overlap("after", "input", 512)])
    plan.verify()
    plan.offsets["input"] = 496
    with pytest.raises(IRError, match="'after' and 'input' share bytes while both are live"):
        plan.verify()
    plan.offsets.update({"after": 1024, "input": 0})  # above it: no Overlap allows that
    with pytest.raises(IRError, match="share bytes"):
        plan.verify()


def test_unknown_optimize_setting_is_one_clear_error(tmp_path, shared_dir):
    with pytest.raises(InputError, match=r"^unknown optimize setting 'fast'; choose one of balanced, speed, ram$"):
        mcu_compile.compile(shared_dir / "models" / "ad01_int8.tflite", out_dir=tmp_path / "fw", optimize="fast")
    assert not (tmp_path / "fw").exists()


def test_speed_never_patches_and_the_report_names_the_schedule(tmp_path, shared_dir):
    model = shared_dir / "models" / "vww_96_int8.tflite"
    speed = mcu_compile.compile(model, out_dir=tmp_path / "speed", optimize="speed")
    ram = mcu_compile.compile(model, out_dir=tmp_path / "ram", optimize="ram")
    assert speed.report["arena"]["schedule"]["chosen"] == "layer by layer"
    assert speed.report["arena"]["bytes"] == 55_328
    schedule = ram.report["arena"]["schedule"]
    assert schedule["chosen"].startswith("first ") and schedule["layer_by_layer_arena"] == 55_328
    assert ram.report["arena"]["bytes"] <= 40_960
    assert "schedule: first " in ram.report_text() and "layer by layer the arena would be 55,328 B" in ram.report_text()
    model_c = (tmp_path / "ram" / "model.c").read_text()
    assert "in place */" in model_c and "memmove" not in model_c  # row views are comments, never copies


@needs_qemu
def test_vww_firmware_in_strips_is_bit_exact(tmp_path, shared_dir):
    compiled = mcu_compile.compile(shared_dir / "models" / "vww_96_int8.tflite", out_dir=tmp_path / "fw",
                                   optimize="ram")
    assert compiled.report["arena"]["bytes"] <= 40_960
    assert compiled.run().bit_exact


@needs_qemu
def test_mobilenetv2_in_strips_with_depthwise_in_place_is_bit_exact(tmp_path):
    from seed003 import calibration_set, seed003_models
    model, shape = seed003_models()["mobilenetv2"]
    calibration = calibration_set(shape, 8, seed=3)
    compiled = mcu_compile.compile(model, calibration[0], calibration=calibration, out_dir=tmp_path / "fw",
                                   test_inputs=calibration[:1], optimize="ram")
    schedule = compiled.report["arena"]["schedule"]
    assert schedule["layer_by_layer_arena"] == 138_240
    assert compiled.report["arena"]["bytes"] <= 46_080
    assert "depthwise in place" in schedule["chosen"]
    assert "mcu_depthwise_conv_in_place_s8(" in (tmp_path / "fw" / "model.c").read_text()
    assert compiled.run().bit_exact


@needs_qemu
@pytest.mark.parametrize("board,name", [("mps3-an547", "resnet_stem_basic_block"),
                                        ("mps2-an386", "mobilenetv2_block")])
def test_zoo_models_under_ram_are_bit_exact(board, name, tmp_path):
    """A max-pooling stem with a residual block (M55) and inverted residuals (M4) in strips."""
    speed, _, _ = zoo.compile_zoo(name, board, tmp_path / "speed", optimize="speed")
    ram, _, _ = zoo.compile_zoo(name, board, tmp_path / "ram", optimize="ram")
    assert ram.report["arena"]["bytes"] < speed.report["arena"]["bytes"]
    run = ram.run()
    assert run.bit_exact
    assert [a.tobytes() for v in run.outputs for a in v] == [a.tobytes() for v in ram.expected() for a in v]


class _WideDepthwise(__import__("torch").nn.Module):
    """A depthwise 5x5 with dilation 2 between two 1x1 convolutions: the depthwise layer is
    the memory peak, so "ram" computes it in place (a ring of 4 + 1 input rows). The
    transpose first keeps strips out (no patch stage starts with it)."""

    def __init__(self):
        import torch
        super().__init__()
        torch.manual_seed(5)
        self.expand = torch.nn.Conv2d(3, 16, 1)
        self.depthwise = torch.nn.Conv2d(16, 16, 5, padding=4, dilation=2, groups=16)
        self.project = torch.nn.Conv2d(16, 4, 1)

    def forward(self, x):
        import torch
        return self.project(torch.relu(self.depthwise(torch.relu(self.expand(x.transpose(2, 3))))))


@needs_qemu
@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_dilated_depthwise_in_place_is_bit_exact(board, tmp_path):
    import torch
    calibration = [(torch.randn(1, 3, 12, 10, generator=torch.Generator().manual_seed(i)),) for i in range(4)]
    compiled = mcu_compile.compile(_WideDepthwise().eval(), calibration[0], calibration=calibration, board=board,
                                   out_dir=tmp_path / "fw", test_inputs=calibration[:2], optimize="ram")
    schedule = compiled.report["arena"]["schedule"]
    assert "depthwise in place" in schedule["chosen"]
    # two 12x10x16 maps layer by layer; one map and the ring of 5 rows in place
    assert schedule["layer_by_layer_arena"] >= 2 * 10 * 12 * 16
    assert compiled.report["arena"]["bytes"] < schedule["layer_by_layer_arena"]
    assert "mcu_depthwise_conv_in_place_s8(" in (tmp_path / "fw" / "model.c").read_text()
    assert compiled.run().bit_exact


@needs_qemu
def test_debug_names_the_strip_whose_output_differs(tmp_path, shared_dir):
    """`debug` compares each strip's rows with the layer-by-layer reference's: a corrupted
    weight of the stage's 1x1 convolution shows in the first strip's call of it."""
    import re
    from mcu_compile.report.layers import debug
    compiled = mcu_compile.compile(shared_dir / "models" / "vww_96_int8.tflite", out_dir=tmp_path / "bad",
                                   optimize="ram")
    ops = compiled.report["plan"]["ops"]
    assert [op["kind"] for op in ops[:4]] == ["ROW_VIEW", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    model_c = compiled.project_dir / "model.c"
    text = model_c.read_text()
    weights = re.findall(r"\b(c_\w+)", text[text.index("CHECK(3, "):])[0]
    definition = re.search(rf"{weights}\[\d+\][^=]*= {{\n    (-?\d+)", text)
    first = int(definition[1])
    model_c.write_text(text[:definition.start(1)] + str(first ^ 0x40 if first >= 0 else first + 64)
                       + text[definition.end(1):])
    found = debug(compiled)
    assert found.divergence is not None and (found.divergence.index, found.divergence.kind) == (3, "CONV_2D")
    assert found.compared == [1, 2, 3] and 0 in found.skipped  # the row view has no tensor of its own
