"""Weights that do not fit beside the code go to the fastest region something loads: on
mps3-an547 a model with 2 MiB of weights (more than the 512 KiB ITCM) runs from the 4 MiB
SRAM, bit-exact; a real board has no loader for its RAM, so there only flash counts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import mcu_compile
from mcu_compile.errors import BoardFitError
from mcu_compile.target.elf import symbols

WIDE = 2048 * 1024   # int8 weights of the first layer: 2 MiB


def _wide_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, 10)).eval()
    samples = [(torch.randn(1, 2048),) for _ in range(4)]
    return model, samples


def test_two_mib_of_weights_run_from_sram(tmp_path):
    model, samples = _wide_model()
    compiled = mcu_compile.compile(model, samples[0], calibration=samples, board="mps3-an547", out_dir=tmp_path / "fw")
    home = compiled.report["weights_region"]
    assert home["name"] == "sram" and home["moved"]
    assert "do not fit in itcm" in home["why"]
    assert "in sram (" in compiled.report_text()
    run = compiled.run()
    assert run.bit_exact
    big = max((s for s in symbols(compiled.project_dir / "app.elf") if s.name.startswith("c_")), key=lambda s: s.size)
    assert big.size == WIDE and compiled.board.region_at(big.address).name == "sram"
    assert compiled.report["regions"]["sram"]["used"] >= WIDE
    assert compiled.report["regions"]["itcm"]["used"] < 512 * 1024


def test_a_real_board_keeps_weights_in_flash(tmp_path):
    model, samples = _wide_model()
    with pytest.raises(BoardFitError, match="region flash .* of stm32f4-discovery"):
        mcu_compile.compile(model, samples[0], calibration=samples, board="stm32f4-discovery", out_dir=tmp_path / "fw")
