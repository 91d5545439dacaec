"""The model zoo (tests/zoo.py), checked three ways: firmware in QEMU == host reference ==
TFLite Micro interpreter, byte for byte.

Default suite: every zoo model compiled for mps3-an547, the host reference's outputs on
the bundled vectors compared with TFLM's on the compiled program, and the reference within
reach of the float model; the firmware of a representative subset run in QEMU on the
Cortex-M55 and the Cortex-M4. `-m slow`: the firmware of every model on both CPUs.
Models whose program holds GELU are not run in TFLM (it has no GELU kernel): firmware ==
host reference only (zoo.TFLM_CANNOT_RUN). Firmware runs that hit a known compiler bug
(zoo.FIRMWARE_BUGS) are strict xfails: fixing the bug turns them into failures to remove.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import zoo
from mcu_compile.ir.inputs import to_float_outputs, to_program_inputs
from mcu_compile.reference import interpreter as reference
from mcu_compile.reference.oracle import tflm_outputs

NAMES = list(zoo.ZOO)

# The firmware runs of the default suite, a spread of op families: on the M55 depthwise +
# hardswish + SE, attention with layer_norm and GELU, conv1d + GRU, resize + concatenation,
# transposed convolution; on the M4 SiLU/sigmoid SE, a DS-CNN, an LSTM.
FIRMWARE_DEFAULT = {
    "mps3-an547": ["mobilenetv3_block", "transformer_block", "imu_conv1d_gru", "tiny_unet", "conv_autoencoder"],
    "mps2-an386": ["efficientnet_mbconv", "ds_cnn_kws", "lstm_sequence"],
}

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")


def tflm_or_skip_reason(name: str) -> str | None:
    return zoo.TFLM_CANNOT_RUN.get(name)


def assert_tflm_equals(compiled, vectors, outputs) -> None:
    """TFLM's outputs on the compiled program equal `outputs`, vector by vector."""
    for index, (vector, want) in enumerate(zip(vectors, outputs)):
        got = tflm_outputs(compiled.program_path, vector)
        assert len(got) == len(want)
        for position, (a, b) in enumerate(zip(got, want)):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b), (f"vector {index}, output {position}: TFLM differs in "
                                          f"{int(np.sum(a != b))} of {a.size} values")


def assert_close_to_float(compiled, model, shape, samples: int = 8, min_correlation: float = 0.95) -> None:
    """The host reference on random inputs follows the float model: same output shapes,
    each output's Pearson correlation with the float outputs >= min_correlation."""
    program = compiled.reference_program
    generator = torch.Generator().manual_seed(3)
    got, want = [], []
    for _ in range(samples):
        x = torch.randn(shape, generator=generator)
        with torch.no_grad():
            expected = model(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        outputs = to_float_outputs(program, reference.run(program, to_program_inputs(program, (x,))))
        assert [o.shape for o in outputs] == [tuple(e.shape) for e in expected]
        got.append(outputs)
        want.append([e.numpy() for e in expected])
    for position, name in enumerate(program.outputs):
        a = np.concatenate([g[position].ravel() for g in got])
        b = np.concatenate([w[position].ravel() for w in want])
        correlation = np.corrcoef(a, b)[0, 1]
        assert correlation >= min_correlation, f"output {name}: Pearson r {correlation:.4f} with the float model"


@pytest.mark.parametrize("name", NAMES)
def test_reference_matches_tflm(name, tmp_path):
    compiled, model, shape = zoo.compile_zoo(name, "mps3-an547", tmp_path / "fw")
    assert_close_to_float(compiled, model, shape)
    reason = tflm_or_skip_reason(name)
    if reason:
        pytest.skip(f"compiled and close to the float model; not compared with TFLM: {reason}")
    assert_tflm_equals(compiled, compiled.vectors(), compiled.expected())




def firmware_marks(board: str, name: str) -> list:
    marks = [] if name in FIRMWARE_DEFAULT[board] else [pytest.mark.slow]
    if name in zoo.FIRMWARE_BUGS:  # a known compiler bug: reported, not fixed here
        marks.append(pytest.mark.xfail(reason=zoo.FIRMWARE_BUGS[name], strict=True))
    return marks


FIRMWARE_CASES = [pytest.param(board, name, id=f"{board}-{name}", marks=firmware_marks(board, name))
                  for board in FIRMWARE_DEFAULT for name in NAMES]


@needs_qemu
@pytest.mark.parametrize("board,name", FIRMWARE_CASES)
def test_firmware_three_way(board, name, tmp_path):
    compiled, _, _ = zoo.compile_zoo(name, board, tmp_path / "fw")
    run = compiled.run()
    assert len(run.outputs) == len(compiled.vectors()) == 2
    assert run.bit_exact, "firmware differs from the host reference"
    if tflm_or_skip_reason(name) is None:  # else firmware == host reference is the check
        assert_tflm_equals(compiled, run.inputs, run.outputs)


def test_zoo_is_complete():
    """Each entry builds and runs in PyTorch with its input shape, deterministically."""
    assert len(NAMES) >= 25
    for name in NAMES:
        model, shape = zoo.build(name)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            first, second = model(x), zoo.build(name)[0](x)
        first = first if isinstance(first, tuple) else (first,)
        second = second if isinstance(second, tuple) else (second,)
        assert all(torch.equal(a, b) for a, b in zip(first, second)), name
