"""`mcu-compile profile` and `debug`: per-layer cost from timer marks between the kernel
calls, and the first layer whose output differs from the host reference (found here on a
firmware whose weights were corrupted on purpose)."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

import mcu_compile
from mcu_compile.cli import main
from mcu_compile.report.layers import debug, profile

MODELS = "../shared/models"
QEMU_BOARDS = ["mps3-an547", "mps2-an386", "mps2-an500", "mps2-an505", "netduinoplus2"]


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    return mcu_compile.compile(f"{MODELS}/kws_ref_model.tflite", board="mps3-an547",
                               out_dir=tmp_path_factory.mktemp("layers") / "kws")


def test_profile_adds_up_to_the_inference(kws):
    data = profile(kws)
    rows = data["layers"]
    assert data["unit"] == "instructions"
    assert [r["kind"] for r in rows] == [op["kind"] for op in kws.report["plan"]["ops"]]
    assert rows[0]["kind"] == "CONV_2D" and rows[0]["macs"] == 25 * 5 * 64 * 10 * 4 * 1   # 10x4 kernel, Cin 1
    assert rows[1]["kind"] == "DEPTHWISE_CONV_2D" and rows[1]["macs"] == 25 * 5 * 64 * 9
    assert rows[11]["kind"] == "FULLY_CONNECTED" and rows[11]["macs"] == 64 * 12
    whole = kws.run().instructions[0]
    # the marks add one timer read per layer (tens of instructions), nothing else
    assert whole <= data["total"] <= whole + 60 * len(rows)
    assert abs(sum(r["share"] for r in rows) - 100) < 0.1
    assert all(r["instructions"] > 0 for r in rows)
    assert (kws.project_dir / "app.elf").is_file() and (kws.project_dir / "app-profile.elf").is_file()
    # kept in the report: the HTML page draws a bar per layer
    from mcu_compile.report.html import render_html
    page = render_html(mcu_compile.load(kws.project_dir).report)
    assert 'id="profile"' in page and page.count('<td><div class="bar" title=') == len(rows)


def test_debug_finds_no_difference_in_a_good_firmware(kws):
    found = debug(kws)
    assert found.divergence is None
    assert len(found.compared) == len(kws.report["plan"]["ops"])


def test_debug_names_the_layer_with_a_corrupted_weight(kws, tmp_path):
    project = mcu_compile.compile(f"{MODELS}/kws_ref_model.tflite", board="mps3-an547", out_dir=tmp_path / "bad")
    model_c = project.project_dir / "model.c"
    text = model_c.read_text()
    # the weights of op 4 (a 1x1 convolution): the third constant its call names
    call = text[text.index("CHECK(4, "):]
    weights = re.findall(r"\b(c_\w+)", call)[0]
    definition = re.search(rf"{weights}\[\d+\][^=]*= {{\n    (-?\d+)", text)
    first = int(definition[1])
    start = definition.start(1)
    model_c.write_text(text[:start] + str(first ^ 0x40 if first >= 0 else first + 64) + text[definition.end(1):])
    found = debug(project)
    assert found.divergence is not None
    assert found.divergence.index == 4 and found.divergence.kind == "CONV_2D"
    assert found.divergence.differing_bytes > 0 and found.divergence.largest_difference > 0
    assert found.compared == [0, 1, 2, 3, 4]
    result = CliRunner().invoke(main, ["debug", str(project.project_dir)])
    assert result.exit_code == 1
    assert "op 4 (CONV_2D -> " in result.output and "is the first layer whose output differs" in result.output


@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_profile_and_debug_on_every_qemu_board(board, tmp_path):
    compiled = mcu_compile.compile(f"{MODELS}/ad01_int8.tflite", board=board, out_dir=tmp_path / "ad",
                                   console="uart" if board == "netduinoplus2" else None)
    result = CliRunner().invoke(main, ["profile", str(compiled.project_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert '"unit": "instructions"' in result.output and '"FULLY_CONNECTED"' in result.output
    checked = CliRunner().invoke(main, ["debug", str(compiled.project_dir)])
    assert checked.exit_code == 0, checked.output
    assert "compared layer outputs equal the host reference" in checked.output
