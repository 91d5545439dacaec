"""What a user hands to compile(): calibration data, the model object, the model path.
Each mistake is one line naming the cause and the fix, and the user's model is left
as it was given."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import mcu_compile
from mcu_compile.errors import InputError


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.relu(self.conv(x))


EXAMPLE = (torch.randn(1, 3, 8, 8),)
BAD_CALIBRATION = {
    "nan": ([(torch.full((1, 3, 8, 8), float("nan")),)], r"calibration sample 1, input 0 holds NaN or infinity"),
    "wrong shape": ([(torch.randn(1, 8, 8, 3),)],
                    r"calibration sample 1, input 0 has shape \[1, 8, 8, 3\], the model's input is \[1, 3, 8, 8\] "
                    r"\(PyTorch layout, NCHW for images\)"),
    "wrong count": ([EXAMPLE, (EXAMPLE[0], EXAMPLE[0])], r"calibration sample 2 has 2 array\(s\) but forward\(\) takes 1"),
    "not numbers": ([("abc",)], r"calibration sample 1, input 0: not numeric data"),
    "empty": ([], r"calibration data is empty"),
}


@pytest.mark.parametrize("case", BAD_CALIBRATION)
def test_bad_calibration_is_one_line(case, tmp_path):
    calibration, message = BAD_CALIBRATION[case]
    with pytest.raises(InputError, match=message) as err:
        mcu_compile.compile(Small(), EXAMPLE, calibration=calibration, out_dir=tmp_path / "fw")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "fw").exists()


def test_a_training_model_stays_in_training_mode(tmp_path):
    model = Small().train()
    mcu_compile.compile(model, EXAMPLE, calibration=[EXAMPLE], out_dir=tmp_path / "fw")
    assert model.training and model.conv.training


def test_onnx_gets_its_own_message(tmp_path):
    with pytest.raises(InputError, match=r"model.onnx: ONNX is not supported; export to .pt2"):
        mcu_compile.compile(tmp_path / "model.onnx", out_dir=tmp_path / "fw")
