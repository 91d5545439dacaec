"""The command line a newcomer uses, and the errors a user can cause."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mcu_compile
import mcu_compile.reference.interpreter
import mcu_compile.target.boards
from mcu_compile.cli import main
from mcu_compile.errors import BoardFitError, InputError


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("compile", "build", "run", "report", "boards"):
        assert command in result.output
    assert "Exits 1 when they differ" in invoke("run", "--help").output


def test_boards_lists_both_qemu_boards():
    result = invoke("boards")
    assert "mps3-an547" in result.output and "mps2-an386" in result.output


def test_compile_run_report_a_tflite_model(shared_dir, tmp_path):
    out = tmp_path / "ad"
    result = invoke("compile", shared_dir / "models" / "ad01_int8.tflite", "--out", out)
    assert result.exit_code == 0, result.output
    assert "arena: 768 B" in result.output
    result = invoke("run", out)
    assert result.exit_code == 0, result.output
    assert "bit-exact with the host reference" in result.output
    report = json.loads(invoke("report", out, "--json").output)
    assert report["run"]["bit_exact"] is True
    assert report["arena"]["bytes"] == 768
    assert report["elf"]["weights_bytes"] == report["weights_bytes"]


def test_run_exits_1_when_firmware_differs_from_reference(shared_dir, tmp_path):
    out = tmp_path / "ad"
    assert invoke("compile", shared_dir / "models" / "ad01_int8.tflite", "--out", out).exit_code == 0
    expected = dict(np.load(out / "expected.npz"))
    expected["v0_0"] = expected["v0_0"] ^ np.int8(1)  # a reference the firmware cannot match
    np.savez(out / "expected.npz", **expected)
    result = invoke("run", out)
    assert result.exit_code == 1
    assert "DIFFERENT" in result.output


def test_corrupt_tflite_is_one_clear_line(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(50))
    result = invoke("compile", bad, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_not_a_project_directory(tmp_path):
    result = invoke("run", tmp_path)
    assert result.exit_code == 2 and "not an mcu-compile project" in result.output


def test_model_too_large_for_the_board_stops_before_building(tmp_path):
    model = torch.nn.Linear(2048, 512)  # 1 MiB of int8 weights, the F407's flash is 1 MiB
    with pytest.raises(BoardFitError) as err:
        mcu_compile.compile(model, (torch.randn(1, 2048),), board="stm32f4-discovery", out_dir=tmp_path / "big")
    message = str(err.value)
    # weights 1,050,624 + tables 6,144 (per channel: multiplier, shift, folded input offset) - 1,048,576; the code is not built yet: its
    # 24,576 B estimate is named but does not decide (a real board: nothing loads its RAM)
    assert "region flash (flash)" in message and "over by 8,192 B" in message
    assert "needs 1,056,768 B before the 24,576 B still estimated (code, stack) are known" in message
    assert "weights of FULLY_CONNECTED linear 1,050,624 B" in message
    assert not (tmp_path / "big").exists()


def test_wrong_input_shape_is_refused(tmp_path):
    compiled = mcu_compile.compile(torch.nn.Linear(4, 3), (torch.randn(1, 4),), out_dir=tmp_path / "lin")
    with pytest.raises(InputError, match=r"expected shape \[1, 4\].*got \[1, 5\]"):
        compiled.run(inputs=[(np.zeros((1, 5), np.float32),)])


def test_run_with_new_inputs_is_bit_exact(tmp_path):
    compiled = mcu_compile.compile(torch.nn.Linear(4, 3), (torch.randn(1, 4),), out_dir=tmp_path / "lin")
    inputs = [(np.full((1, 4), v, np.float32),) for v in (-1.0, 0.5, 2.0)]
    run = compiled.run(inputs=inputs)
    assert run.bit_exact and len(run.outputs) == 3
    assert not np.array_equal(run.outputs[0][0], run.outputs[2][0])


def test_ram_budget_names_overshoot_and_biggest_buffers(shared_dir, tmp_path):
    result = invoke("compile", shared_dir / "models" / "vww_96_int8.tflite", "--out", tmp_path / "vww",
                    "--max-ram", 40000, "--optimize", "speed")
    assert result.exit_code == 2
    assert "RAM budget of 40,000 B is exceeded" in result.output and "over by" in result.output
    assert "activation_2/Relu 36,864 B" in result.output  # the largest tensor at the peak
    assert not (tmp_path / "vww").exists()


def test_arena_too_big_for_dtcm_goes_to_the_next_fastest_region(tmp_path):
    """mps3-an547's DTCM holds 512 KiB; a 600 KiB arena is placed in SRAM and still runs."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 24, 3, padding=1), torch.nn.ReLU())
    compiled = mcu_compile.compile(model, (torch.randn(1, 3, 160, 160),), out_dir=tmp_path / "big")
    assert compiled.report["arena"]["bytes"] > 512 * 1024
    assert compiled.report["arena"]["region"] == "sram"
    run = compiled.run()
    assert run.bit_exact
    assert compiled.report["regions"]["sram"]["used"] == compiled.report["arena"]["bytes"]


def test_weights_copied_to_ram_when_asked(shared_dir, tmp_path):
    compiled = mcu_compile.compile(shared_dir / "models" / "kws_ref_model.tflite", out_dir=tmp_path / "kws",
                                   weights_in_ram=True)
    run = compiled.run()
    assert run.bit_exact
    from mcu_compile.target.elf import symbols
    weights = {s.name: s for s in symbols(run.elf) if s.name.endswith("Conv2D") or "dense" in s.name}
    dtcm = compiled.board.region("dtcm")
    assert weights and all(dtcm.contains(s.address) for s in weights.values())
    # the flash still holds their load image; the data region now holds them too
    assert compiled.report["regions"]["dtcm"]["used"] > compiled.report["weights_bytes"]


def test_run_given_inputs_saves_outputs_in_both_forms(shared_dir, tmp_path):
    out = tmp_path / "ad"
    assert invoke("compile", shared_dir / "models" / "ad01_int8.tflite", "--out", out).exit_code == 0
    compiled = mcu_compile.load(out)
    name = compiled.program.inputs[0]
    shape = compiled.program.tensor(name).shape
    samples = np.stack([np.full(shape, v, np.int8)[0] for v in (-50, 3, 90)])  # first axis = sample
    np.savez(tmp_path / "inputs.npz", **{name: samples})
    result = invoke("run", out, "--inputs", tmp_path / "inputs.npz", "--outputs", tmp_path / "outputs.npz")
    assert result.exit_code == 0, result.output
    assert "bit-exact" in result.output and result.output.count("CPU instructions per inference") == 3
    saved = np.load(tmp_path / "outputs.npz")
    expected = [mcu_compile.reference.interpreter.run(compiled.program, [samples[i:i + 1]])[0] for i in range(3)]
    np.testing.assert_array_equal(saved["output0"], np.concatenate(expected))
    q = compiled.program.tensor(compiled.program.outputs[0]).quant
    np.testing.assert_allclose(saved["output0_float"], (saved["output0"] - q.zero_point[0]) * q.scale[0], rtol=1e-6)


def test_inputs_that_do_not_match_are_one_line(shared_dir, tmp_path):
    out = tmp_path / "ad"
    assert invoke("compile", shared_dir / "models" / "ad01_int8.tflite", "--out", out).exit_code == 0
    np.save(tmp_path / "one.npy", np.zeros(3))
    result = invoke("run", out, "--inputs", tmp_path / "one.npy")
    assert result.exit_code == 2 and "single array (.npy); save the inputs with np.savez" in result.output
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 640)), b=np.zeros((1, 640)))
    result = invoke("run", out, "--inputs", tmp_path / "two.npz")
    assert result.exit_code == 2 and "holds 2 array(s) (a, b) but the model takes 1 input(s)" in result.output
    assert result.output.count("\n") == 1


def test_a_custom_board_file_is_found_again_after_compile(shared_dir, tmp_path):
    board = tmp_path / "my-board.toml"
    text = (mcu_compile.target.boards.resource_dir("boards") / "mps2-an386.toml").read_text()
    board.write_text(text.replace('name = "mps2-an386"', 'name = "my-board"', 1))
    out = tmp_path / "fw"
    assert invoke("compile", shared_dir / "models" / "ad01_int8.tflite", "--board", board, "--out", out).exit_code == 0
    result = invoke("run", out)
    assert result.exit_code == 0 and "bit-exact" in result.output, result.output
    assert json.loads(invoke("report", out, "--json").output)["board"] == "my-board"


def test_compile_force_replaces_a_users_folder(shared_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    model = shared_dir / "models" / "ad01_int8.tflite"
    result = invoke("compile", model, "--out", out)
    assert result.exit_code == 2 and "--force" in result.output and (out / "notes.txt").exists()
    assert invoke("compile", model, "--out", out, "--force").exit_code == 0 and not (out / "notes.txt").exists()

