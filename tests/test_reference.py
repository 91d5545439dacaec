"""The numpy reference interpreter must match TFLite Micro byte for byte.

Each case builds a one-op Program with the IR, writes it with write_tflite, runs it in
the TFLite Micro Python interpreter and compares with reference.run.
"""
from __future__ import annotations

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

from mcu_compile.reference import interpreter as reference
from mcu_compile.errors import InputError
from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.ops.params import window
from mcu_compile.ir.tflite_io import read_tflite, write_tflite

MLPERF_TINY = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]


def f32(x: float) -> float:
    """Scales live as float32 in a .tflite file: use representable values."""
    return float(np.float32(x))


def random_input(rng: np.random.Generator, tensor: Tensor) -> np.ndarray:
    if tensor.dtype == "float32":
        return rng.normal(0, 2, tensor.shape).astype(np.float32)
    return rng.integers(-128, 128, tensor.shape).astype(tensor.dtype)


def tflm_run(model: bytes, inputs: list[np.ndarray], n_outputs: int) -> list[np.ndarray]:
    interp = runtime.Interpreter.from_bytes(model, arena_size=1 << 22)
    for i, x in enumerate(inputs):
        interp.set_input(x, i)
    interp.invoke()
    return [interp.get_output(i) for i in range(n_outputs)]


def assert_matches_tflm(program: Program, seed: int = 0, runs: int = 2):
    model = write_tflite(program)
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        inputs = [random_input(rng, program.tensor(n)) for n in program.inputs]
        expected = tflm_run(model, inputs, len(program.outputs))
        got = reference.run(program, inputs)
        assert len(got) == len(expected) == len(program.outputs)
        for e, g in zip(expected, got):
            assert g.dtype == e.dtype and g.shape == e.shape
            np.testing.assert_array_equal(g, e)


class Builder:
    """Builds a one-op Program with random, realistic quantization."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.program = Program()

    def act(self, name: str, shape, scale: float | None = None, zp: int | None = None) -> str:
        scale = f32(scale if scale is not None else self.rng.uniform(0.005, 0.1))
        zp = int(zp if zp is not None else self.rng.integers(-30, 30))
        self.program.add_tensor(Tensor(name, shape, "int8", Quant.per_tensor(scale, zp)))
        return name

    def const(self, name: str, data, dtype="int32", quant: Quant | None = None) -> str:
        data = np.asarray(data)
        self.program.add_tensor(Tensor(name, data.shape, dtype, quant, data))
        return name

    def scale(self, name: str) -> float:
        return float(self.program.tensor(name).quant.scale[0])

    def weights(self, shape, axis: int, per_channel: bool) -> tuple[str, np.ndarray]:
        n = shape[axis] if per_channel else 1
        scales = np.array([f32(s) for s in self.rng.uniform(0.002, 0.02, n)])
        data = self.rng.integers(-127, 128, shape)
        self.const("w", data, "int8", Quant(scales, np.zeros(n, dtype=np.int64), axis))
        return "w", scales

    def bias(self, x: str, w_scales: np.ndarray, channels: int) -> str:
        scales = np.broadcast_to(w_scales, (channels,)) * self.scale(x)
        data = self.rng.integers(-20000, 20000, channels)
        return self.const("b", data, "int32", Quant(scales, np.zeros(channels, dtype=np.int64)))

    def out_scale(self, x: str, w_scales: np.ndarray, taps: int) -> float:
        """Output scale that keeps a typical accumulator within about 40 quanta."""
        acc_std = 74.0 * 73.0 * np.sqrt(taps) * self.scale(x) * float(np.mean(w_scales))
        return acc_std / 40.0 * self.rng.uniform(0.5, 2.0)

    def op(self, kind: str, inputs: list[str], output: str, **options) -> Program:
        self.program.add_op(Op(kind, inputs, [output], options))
        self.program.inputs = [n for n in inputs if n and not self.program.tensor(n).is_const]
        self.program.outputs = [output]
        return self.program


CONV_CASES = [
    # (batch, h, w, cin, cout, kh, kw, stride, dilation, padding, act, per_channel, bias)
    (1, 7, 9, 3, 5, 3, 3, (1, 1), (1, 1), "SAME", "RELU6", True, True),
    (1, 9, 7, 4, 8, 3, 3, (2, 2), (1, 1), "SAME", "NONE", True, True),  # odd size, stride 2
    (1, 5, 5, 6, 3, 2, 2, (1, 1), (1, 1), "SAME", "RELU", True, True),  # one-sided pad
    (2, 6, 6, 5, 7, 1, 1, (1, 1), (1, 1), "VALID", "NONE", False, False),
    (1, 11, 10, 3, 4, 5, 3, (2, 1), (1, 2), "VALID", "NONE", True, True),
    (1, 8, 8, 2, 3, 4, 4, (2, 2), (2, 1), "SAME", "RELU_N1_TO_1", True, True),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_2d(case):
    n, h, w, cin, cout, kh, kw, stride, dilation, padding, act, per_channel, has_bias = case
    b = Builder(seed=CONV_CASES.index(case))
    x = b.act("x", (n, h, w, cin))
    wname, ws = b.weights((cout, kh, kw, cin), 0, per_channel)
    bias = b.bias(x, ws, cout) if has_bias else ""
    oh = window(h, kh, stride[0], dilation[0], padding).out
    ow = window(w, kw, stride[1], dilation[1], padding).out
    b.act("y", (n, oh, ow, cout), b.out_scale(x, ws, kh * kw * cin))
    prog = b.op("CONV_2D", [x, wname, bias], "y", padding=padding, stride_h=stride[0],
                stride_w=stride[1], dilation_h_factor=dilation[0], dilation_w_factor=dilation[1],
                fused_activation_function=act)
    assert_matches_tflm(prog)


DEPTHWISE_CASES = [
    # (h, w, c, multiplier, k, stride, dilation, padding, act, bias)
    (7, 7, 5, 1, 3, 1, 1, "SAME", "RELU6", True),
    (9, 9, 3, 2, 3, 2, 1, "SAME", "NONE", True),
    (10, 12, 4, 1, 5, 1, 2, "VALID", "RELU", True),
    (6, 5, 2, 3, 2, 2, 1, "SAME", "NONE", False),
]


@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise_conv_2d(case):
    h, w, c, m, k, stride, dilation, padding, act, has_bias = case
    b = Builder(seed=DEPTHWISE_CASES.index(case))
    x = b.act("x", (1, h, w, c))
    wname, ws = b.weights((1, k, k, c * m), 3, True)
    bias = b.bias(x, ws, c * m) if has_bias else ""
    oh = window(h, k, stride, dilation, padding).out
    ow = window(w, k, stride, dilation, padding).out
    b.act("y", (1, oh, ow, c * m), b.out_scale(x, ws, k * k))
    prog = b.op("DEPTHWISE_CONV_2D", [x, wname, bias], "y", padding=padding, stride_h=stride,
                stride_w=stride, dilation_h_factor=dilation, dilation_w_factor=dilation,
                depth_multiplier=m, fused_activation_function=act)
    assert_matches_tflm(prog)


@pytest.mark.parametrize("in_shape,units,per_channel,has_bias,act", [
    ((1, 20), 10, False, True, "RELU"),
    ((3, 2, 8), 7, True, True, "NONE"),  # flattened to [6, 8]
    ((2, 33), 5, False, False, "RELU6"),
])
def test_fully_connected(in_shape, units, per_channel, has_bias, act):
    b = Builder(seed=units)
    x = b.act("x", in_shape)
    depth = in_shape[-1]
    wname, ws = b.weights((units, depth), 0, per_channel)
    bias = b.bias(x, ws, units) if has_bias else ""
    b.act("y", (int(np.prod(in_shape)) // depth, units), b.out_scale(x, ws, depth))
    prog = b.op("FULLY_CONNECTED", [x, wname, bias], "y", fused_activation_function=act)
    assert_matches_tflm(prog)


BINARY_SHAPES = [
    ((1, 4, 4, 3), (1, 4, 4, 3), (1, 4, 4, 3)),
    ((1, 4, 4, 3), (1, 1, 1, 3), (1, 4, 4, 3)),
    ((1, 4, 1, 3), (1, 1, 5, 1), (1, 4, 5, 3)),
    ((2, 7), (7,), (2, 7)),
]


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
@pytest.mark.parametrize("shapes", BINARY_SHAPES)
@pytest.mark.parametrize("act", ["NONE", "RELU"])
def test_add_mul(kind, shapes, act):
    b = Builder(seed=len(shapes[1]) + 10 * len(kind))
    a = b.act("a", shapes[0])
    c = b.act("c", shapes[1])
    out_scale = b.scale(a) + b.scale(c) if kind == "ADD" else b.scale(a) * b.scale(c) * 60
    b.act("y", shapes[2], out_scale * b.rng.uniform(0.7, 1.5))
    assert_matches_tflm(b.op(kind, [a, c], "y", fused_activation_function=act))


POOL_CASES = [
    # (h, w, c, fh, fw, stride, padding, act)
    (9, 9, 3, 3, 3, 2, "SAME", "NONE"),
    (8, 6, 5, 2, 2, 2, "VALID", "NONE"),
    (7, 7, 4, 5, 5, 1, "SAME", "RELU"),
    (6, 6, 8, 6, 6, 1, "VALID", "NONE"),  # global pooling
    (5, 10, 2, 2, 3, 3, "SAME", "RELU6"),
]


@pytest.mark.parametrize("kind", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool(kind, case):
    h, w, c, fh, fw, stride, padding, act = case
    b = Builder(seed=fh * 10 + fw)
    x = b.act("x", (1, h, w, c), scale=0.05)
    oh, ow = window(h, fh, stride, 1, padding).out, window(w, fw, stride, 1, padding).out
    q = b.program.tensor(x).quant
    b.act("y", (1, oh, ow, c), float(q.scale[0]), int(q.zero_point[0]))
    prog = b.op(kind, [x], "y", padding=padding, stride_h=stride, stride_w=stride,
                filter_height=fh, filter_width=fw, fused_activation_function=act)
    assert_matches_tflm(prog)


@pytest.mark.parametrize("shape,scale,beta", [
    ((1, 10), 0.1, 1.0),
    ((1, 10), 0.5, 1.0),  # large differences: many inputs below diff_min
    ((2, 3, 7), 0.02, 1.0),
    ((4, 2), 0.25, 0.5),
    ((1, 1000), 0.0625, 1.0),
])
def test_softmax(shape, scale, beta):
    b = Builder(seed=shape[-1])
    x = b.act("x", shape, scale=scale)
    b.act("y", shape, scale=1 / 256, zp=-128)
    assert_matches_tflm(b.op("SOFTMAX", [x], "y", beta=beta), runs=3)


def _same_quant_output(b: Builder, x: str, name: str, shape) -> str:
    q = b.program.tensor(x).quant
    return b.act(name, shape, float(q.scale[0]), int(q.zero_point[0]))


@pytest.mark.parametrize("with_shape_tensor", [True, False])
def test_reshape(with_shape_tensor):
    b = Builder(seed=1)
    x = b.act("x", (1, 4, 4, 2))
    _same_quant_output(b, x, "y", (1, 32))
    inputs = [x, b.const("shape", np.array([1, 32], dtype=np.int32))] if with_shape_tensor else [x]
    assert_matches_tflm(b.op("RESHAPE", inputs, "y", new_shape=[1, 32]))


@pytest.mark.parametrize("shape,perm", [((1, 3, 4, 5), (0, 2, 1, 3)), ((2, 3, 4), (2, 0, 1))])
def test_transpose(shape, perm):
    b = Builder(seed=2)
    x = b.act("x", shape)
    _same_quant_output(b, x, "y", tuple(shape[p] for p in perm))
    perm_t = b.const("perm", np.array(perm, dtype=np.int32))
    assert_matches_tflm(b.op("TRANSPOSE", [x, perm_t], "y"))


@pytest.mark.parametrize("axis", [3, 1, -1])
def test_concatenation(axis):
    b = Builder(seed=3)
    shapes = [(1, 3, 4, 2), (1, 3, 4, 5)] if axis != 1 else [(1, 2, 4, 3), (1, 5, 4, 3)]
    a = b.act("a", shapes[0], scale=0.04, zp=3)
    c = b.act("c", shapes[1], scale=0.04, zp=3)
    out = list(shapes[0])
    out[axis] = shapes[0][axis] + shapes[1][axis]
    b.act("y", out, scale=0.04, zp=3)
    assert_matches_tflm(b.op("CONCATENATION", [a, c], "y", axis=axis))


def test_pad():
    b = Builder(seed=4)
    x = b.act("x", (1, 5, 5, 3))
    _same_quant_output(b, x, "y", (1, 8, 6, 3))
    paddings = b.const("paddings", np.array([[0, 0], [1, 2], [0, 1], [0, 0]], dtype=np.int32))
    assert_matches_tflm(b.op("PAD", [x, paddings], "y"))


@pytest.mark.parametrize("shape,axes,keep_dims,same_quant", [
    ((2, 5, 3, 4), (1, 2), True, True),
    ((2, 5, 3, 4), (1, 2), False, False),
    ((2, 5, 3, 4), (-1,), True, False),
    ((2, 5, 3, 4), (0, 3), False, True),
    ((1, 7, 7, 16), (1, 2), False, False),  # global average pool of a PyTorch model
    ((1, 1, 300, 2), (2,), True, False),
])
def test_mean(shape, axes, keep_dims, same_quant):
    b = Builder(seed=11)
    x = b.act("x", shape, scale=0.05, zp=-6)
    reduced = [1 if i in [a % 4 for a in axes] else d for i, d in enumerate(shape)]
    if not keep_dims:
        reduced = [d for i, d in enumerate(shape) if i not in [a % 4 for a in axes]]
    if same_quant:
        _same_quant_output(b, x, "y", reduced)
    else:
        b.act("y", reduced, scale=0.02, zp=9)
    axes_t = b.const("axes", np.array(axes, dtype=np.int32))
    assert_matches_tflm(b.op("MEAN", [x, axes_t], "y", keep_dims=keep_dims), runs=4)


@pytest.mark.parametrize("scale,zp", [(0.1, 0), (0.03, -20), (1 / 16, 5), (0.2, 100), (0.004, -128), (0.5, 3)])
def test_logistic_every_int8_input(scale, zp):
    """All 256 inputs at once: the table the firmware uses is exactly these outputs."""
    b = Builder(seed=7)
    x = b.act("x", (1, 256), scale=scale, zp=zp)
    b.act("y", (1, 256), scale=1 / 256, zp=-128)
    program = b.op("LOGISTIC", [x], "y")
    every = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    [want] = tflm_run(write_tflite(program), [every], 1)
    np.testing.assert_array_equal(reference.run(program, [every])[0], want)


def test_relu_rescales():
    b = Builder(seed=5)
    x = b.act("x", (1, 6, 6, 4), scale=0.05, zp=10)
    b.act("y", (1, 6, 6, 4), scale=0.03, zp=-128)
    assert_matches_tflm(b.op("RELU", [x], "y"))


def test_relu6_clamps_in_input_domain():
    b = Builder(seed=6)
    x = b.act("x", (1, 6, 6, 4), scale=0.03, zp=-20)
    _same_quant_output(b, x, "y", (1, 6, 6, 4))
    assert_matches_tflm(b.op("RELU6", [x], "y"))


def test_quantize_requantizes_int8():
    b = Builder(seed=7)
    x = b.act("x", (1, 64), scale=0.02, zp=4)
    b.act("y", (1, 64), scale=0.03, zp=-7)
    assert_matches_tflm(b.op("QUANTIZE", [x], "y"))


def test_quantize_and_dequantize_float():
    b = Builder(seed=8)
    b.program.add_tensor(Tensor("x", (1, 40), "float32"))
    b.act("q", (1, 40), scale=0.03, zp=5)
    b.program.add_tensor(Tensor("y", (1, 40), "float32"))
    b.program.add_op(Op("QUANTIZE", ["x"], ["q"]))
    b.program.add_op(Op("DEQUANTIZE", ["q"], ["y"]))
    b.program.inputs, b.program.outputs = ["x"], ["y"]
    assert_matches_tflm(b.program)


@pytest.mark.parametrize("name", MLPERF_TINY)
def test_mlperf_tiny_model_matches_tflm(shared_dir, name):
    data = (shared_dir / "models" / f"{name}.tflite").read_bytes()
    program = read_tflite(data, source=name)
    rng = np.random.default_rng(42)
    interp = runtime.Interpreter.from_bytes(
        data, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    names = list(program.tensors)  # read_tflite keeps the file's tensor order
    for _ in range(3):
        x = random_input(rng, program.tensor(program.inputs[0]))
        interp.set_input(x, 0)
        interp.invoke()
        values = reference.run_with_intermediates(program, [x])
        for op in program.ops:  # every intermediate, not just the (often saturated) output
            out = op.outputs[0]
            expected = interp.GetTensor(names.index(out), 0)["tensor_data"]
            np.testing.assert_array_equal(values[out].ravel(), expected.ravel(), err_msg=op.source)
        np.testing.assert_array_equal(reference.run(program, [x])[0], interp.get_output(0))


def test_input_errors_name_expected_and_got():
    b = Builder(seed=9)
    x = b.act("x", (1, 4))
    b.act("y", (1, 4), scale=1 / 256, zp=-128)
    prog = b.op("SOFTMAX", [x], "y", beta=1.0)
    with pytest.raises(InputError, match=r"expected int8 .*\(1, 4\).*got int8 \(1, 5\)"):
        reference.run(prog, [np.zeros((1, 5), np.int8)])
    with pytest.raises(InputError, match="got float32"):
        reference.run(prog, [np.zeros((1, 4), np.float32)])
    with pytest.raises(InputError, match="takes 1 input"):
        reference.run(prog, [])


def test_intermediates_include_every_activation():
    b = Builder(seed=10)
    x = b.act("x", (1, 4, 4, 2))
    _same_quant_output(b, x, "r", (1, 32))
    b.program.add_op(Op("RESHAPE", [x], ["r"], {"new_shape": [1, 32]}))
    b.act("y", (1, 32), scale=1 / 256, zp=-128)
    prog = b.op("SOFTMAX", ["r"], "y", beta=1.0)
    prog.inputs = [x]
    values = reference.run_with_intermediates(prog, [np.zeros((1, 4, 4, 2), np.int8)])
    assert set(values) == {"x", "r", "y"}
