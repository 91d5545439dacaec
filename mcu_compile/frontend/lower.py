"""Stage 3, lower: the quantized ATen graph -> the int8 Edge program (TFLite semantics).

The converted PT2E graph has the form  q -> dq -> float op(s) -> q -> dq -> ...
Every quantize node marks an int8 tensor of the Edge program; the float ops between
a tensor's dequantize nodes and the next quantize node become one Edge op, with a
relu/relu6 in between fused as its activation. 4-D activations are NHWC: the
lowering tracks which tensors are NHWC and inserts TRANSPOSE only where PyTorch's
NCHW order is observable (flattening a map larger than 1x1, permute).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.fx import GraphModule, Node

from ..errors import IRError, UnsupportedOpError
from .export import adaptive_pool_window, source_line
from ..ir.program import Op, Program, Quant, Tensor
from ..ops.params import quantize_value, window
from ..ops.repeat import tile_steps
from .aten_ops import aten_name, aten_ops, lowers, role_of
from .quantize import FUSABLE_PRODUCERS, OWN_OP_CLAMPS, activation_bounds

QUANTIZE = "quantized_decomposed.quantize_per_tensor.default"
DEQUANTIZE = "quantized_decomposed.dequantize_per_tensor.default"
DEQUANTIZE_PER_CHANNEL = "quantized_decomposed.dequantize_per_channel.default"

def channels_last(rank: int) -> tuple[int, ...]:
    """The permutation storing a PyTorch (N, C, spatial...) tensor channels-last."""
    return (0, *range(2, rank), 1)


def channels_first(rank: int) -> tuple[int, ...]:
    return (0, rank - 1, *range(1, rank - 1))


def _target_name(node: Node) -> str:
    return str(node.target) if node.op == "call_function" else ""


def _fail(node: Node, why: str):
    where = source_line(node)
    raise UnsupportedOpError(f"{aten_name(node.target)}: {why}" + (f" (at {where})" if where else ""))


@dataclass
class Lowering:
    """State of one lowering: the program built so far and the int8 value of each node."""

    gm: GraphModule
    program: Program = field(default_factory=Program)
    values: dict[Node, str] = field(default_factory=dict)  # q/dq node -> tensor name
    nhwc: set[str] = field(default_factory=set)  # 4-D tensors stored NHWC
    node: Node | None = None  # the op being lowered, for messages

    # ---- tensors -------------------------------------------------------------------
    def new_activation(self, base: str, shape, quant: Quant) -> str:
        name = self.program.unique_name(base)
        self.program.add_tensor(Tensor(name, tuple(shape), "int8", quant))
        return name

    def new_const(self, base: str, data: np.ndarray, dtype: str, quant: Quant | None = None) -> str:
        name = self.program.unique_name(base)
        self.program.add_tensor(Tensor(name, data.shape, dtype, quant, data))
        return name

    def int8_scalar(self, base: str, code: int, quant: Quant) -> str:
        """A one-element int8 constant holding `code` on `quant` (a pad value or clamp bound
        compared with raw values of a tensor quantized alike)."""
        return self.new_const(base, np.array([code], np.int8), "int8", quant)

    def emit(self, kind: str, inputs: list[str], outputs: list[str], **options) -> Op:
        source = source_line(self.node) if self.node is not None else ""
        return self.program.add_op(Op(kind, inputs, outputs, options, source=source))

    def shape(self, name: str) -> tuple[int, ...]:
        return self.program.tensor(name).shape

    def quant(self, name: str) -> Quant:
        return self.program.tensor(name).quant

    def torch_shape(self, name: str) -> tuple[int, ...]:
        """The shape PyTorch sees (NCHW / NCL for tensors stored channels-last)."""
        shape = self.shape(name)
        return tuple(shape[i] for i in channels_first(len(shape))) if name in self.nhwc else shape

    def torch_axis(self, name: str, dim: int) -> int:
        """Storage axis of a PyTorch dimension."""
        rank = len(self.shape(name))
        dim %= rank
        return channels_last(rank).index(dim) if name in self.nhwc else dim

    def as_plain(self, name: str) -> str:
        """The tensor in PyTorch's own dimension order (TRANSPOSE if it is channels-last)."""
        if name not in self.nhwc:
            return name
        shape = self.shape(name)
        if all(d == 1 for d in shape[1:-1]):  # 1x1 maps: both orders hold the same bytes
            out = self.new_activation(name + "_nchw", self.torch_shape(name), self.quant(name))
            self.emit("RESHAPE", [name], [out], new_shape=list(self.torch_shape(name)))
            return out
        return self.transpose(name, channels_first(len(shape)), name + "_nchw")

    def as_channels_last(self, name: str, rank: int = 4) -> str:
        """The tensor stored channels-last (NHWC for 2-D ops, NLC for 1-D ones)."""
        if name in self.nhwc:
            return name
        if len(self.shape(name)) != rank:
            _fail(self.node, f"expects a {rank}-D input, got shape {list(self.shape(name))}")
        out = self.transpose(name, channels_last(rank), name + "_nhwc")
        self.nhwc.add(out)
        return out

    def transpose(self, name: str, perm, base: str) -> str:
        shape = self.shape(name)
        out = self.new_activation(base, [shape[p] for p in perm], self.quant(name))
        perm_name = self.new_const(base + "_perm", np.array(perm, dtype=np.int32), "int32")
        self.emit("TRANSPOSE", [name, perm_name], [out])
        return out

    # ---- graph walk ----------------------------------------------------------------
    def value(self, node) -> str:
        if not isinstance(node, Node) or node not in self.values:
            _fail(self.node, "an input is not a quantized activation (a constant or Python number "
                             "is supported as an operand of add, sub, mul, div, maximum and minimum)")
        return self.values[node]

    def operand(self, arg, layout_of: str, transform=None) -> str:
        """An elementwise operand: an activation, or a constant (a Python number or a tensor
        of the module) stored int8 on its own symmetric scale (max |value| / 127, so the
        largest value is exact), in layout_of's layout (NHWC when layout_of is), after
        transform (e.g. a negation) of its values."""
        if isinstance(arg, Node) and arg.op != "get_attr":
            return self.value(arg)
        data = _attribute(self.gm, arg.target) if isinstance(arg, Node) else arg
        if isinstance(data, bool) or not isinstance(data, (int, float, torch.Tensor)):
            _fail(self.node, f"operand {data!r} is neither a tensor nor a number")
        values = np.asarray(data.detach().float() if isinstance(data, torch.Tensor) else data, np.float64)
        values = transform(values) if transform is not None else values
        rank = len(self.shape(layout_of)) if layout_of else 0
        if layout_of in self.nhwc and values.ndim > 1:  # a NCHW-broadcast constant, e.g. (C, 1, 1)
            values = values.reshape((1,) * (rank - values.ndim) + values.shape).transpose(channels_last(rank))
        values = values.reshape(values.shape or (1,))
        if not np.all(np.isfinite(values)):
            _fail(self.node, "a constant operand holds NaN or infinity")
        scale = float(np.abs(values).max()) / 127 or 1.0
        q = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        return self.new_const(f"{self.node.name}_constant", q, "int8", Quant.per_tensor(scale, 0))

    def run(self, example_inputs: tuple) -> Program:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        for node in self.gm.graph.nodes:
            name = _target_name(node)
            if name == QUANTIZE:
                self.values[node] = self.quantize_node(node, placeholders)
            elif name == DEQUANTIZE:
                self.values[node] = self.value(node.args[0])
            elif node.op == "output":
                self.outputs(node)
        return self.program

    def quantize_node(self, node: Node, placeholders: list[Node]) -> str:
        """A quantize node: a graph input, or the result of the float ops before it."""
        scale, zero_point = float(node.args[1]), int(node.args[2])
        quant = Quant.per_tensor(scale, zero_point)
        source = node.args[0]
        if source.op == "placeholder":
            return self.graph_input(source, quant)
        if _target_name(source) == DEQUANTIZE:  # a requantization PT2E put between two scales
            return self.requantize(self.value(source), node.name, quant)
        activation = None
        if role_of(source.target) == "activation":
            producer = source.args[0]
            if role_of(producer.target) in FUSABLE_PRODUCERS:
                activation, source = source, producer
        self.node = source
        aten_op = aten_ops().get(aten_name(source.target))
        if aten_op is None:
            _fail(source, "has no int8 lowering")
        fused = fused_activation_name(activation) if activation is not None else "NONE"
        out = aten_op.lower(self, source, quant, fused)
        self.check_shape(source, out)
        return out

    def check_shape(self, node: Node, name: str) -> None:
        """The lowered tensor must have the shape PyTorch computed for the node: a
        lowering that disagrees would give firmware and host reference the same wrong
        program, which no bit-exact comparison can catch."""
        val = node.meta.get("val")
        if val is None or not hasattr(val, "shape"):
            return
        if tuple(val.shape) != self.torch_shape(name):
            raise IRError(f"{aten_name(node.target)} at {source_line(node) or node.name}: lowered to shape "
                          f"{list(self.torch_shape(name))} but PyTorch computes {list(val.shape)}; "
                          f"this is a bug in mcu-compile's lowering, please report it")

    def requantize(self, x: str, base: str, quant: Quant) -> str:
        out = self.new_activation(base, self.shape(x), quant)
        if x in self.nhwc:
            self.nhwc.add(out)
        self.emit("QUANTIZE", [x], [out])
        return out

    def graph_input(self, node: Node, quant: Quant) -> str:
        shape = tuple(node.meta["val"].shape)
        if len(shape) == 4:
            name = self.new_activation(node.name, [shape[i] for i in channels_last(4)], quant)
            self.nhwc.add(name)
        else:
            name = self.new_activation(node.name, shape, quant)
        self.program.inputs.append(name)
        return name

    def outputs(self, node: Node) -> None:
        """The graph outputs; a 4-D one channels-last, as every 4-D input and output of the
        program is (model.h says so; to_float_outputs turns it back)."""
        for out in node.args[0]:
            if not (isinstance(out, Node) and _target_name(out) == DEQUANTIZE):
                raise UnsupportedOpError("every model output must be a quantized activation "
                                         "(a float computation reaches the output unquantized)")
            name = self.values[out]
            self.program.outputs.append(self.as_channels_last(name) if len(self.shape(name)) == 4 else name)

    # ---- constants from the converted graph --------------------------------------
    def constant(self, node: Node) -> tuple[np.ndarray, np.ndarray]:
        """(integer values, per-channel scales) of a dequantize_per_channel constant."""
        if _target_name(node) != DEQUANTIZE_PER_CHANNEL:
            _fail(self.node, "weights must be constant parameters of the module")
        values, scales = (getattr(self.gm, arg.target) for arg in node.args[:2])
        return values.numpy(), scales.numpy().astype(np.float64)


def int8_code(value: float, quant: Quant) -> int:
    """The int8 code nearest a real value on quant (TFLite's rounding), saturated to
    [-128, 127] (an infinite value too)."""
    scale, zero_point = float(quant.scale[0]), int(quant.zero_point[0])
    real = min(max(value, (-128 - zero_point) * scale), (127 - zero_point) * scale)
    return int(np.clip(quantize_value(real, quant), -128, 127))


def _attribute(module, target: str):
    """A get_attr node's tensor ("norm.weight": an attribute of a submodule)."""
    for part in target.split("."):
        module = getattr(module, part)
    return module


def fused_activation_name(node: Node) -> str | None:
    """TFLite's fused activation with the node's bounds; None when TFLite has none."""
    return {(0.0, float("inf")): "RELU", (0.0, 6.0): "RELU6",
            (-1.0, 1.0): "RELU_N1_TO_1"}.get(activation_bounds(node))


# ---- one lowering per ATen op, registered with its quantization role (aten_ops.py) -----------
@lowers("aten.conv2d.default", "aten.conv2d.padding", role="weighted")
def lower_conv2d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    x_node, w_node, b_node, stride, padding, dilation, groups = _conv_args(node)
    weights, w_scales = lw.constant(w_node)  # [O, I/groups, kh, kw]
    x = lw.as_channels_last(lw.value(x_node))
    return _convolution(lw, node, quant, fused, x, weights, w_scales, b_node, _pair(stride, [1]),
                        padding if isinstance(padding, str) else _pair(padding, [0]), _pair(dilation, [1]), groups)


@lowers("aten.conv1d.default", "aten.conv1d.padding", role="weighted")
def lower_conv1d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """A 1-D convolution is a 2-D one over a 1 x L map: (N, L, C) channels-last, viewed
    as (N, 1, L, C) by a RESHAPE that shares its bytes."""
    x_node, w_node, b_node, stride, padding, dilation, groups = _conv_args(node)
    weights, w_scales = lw.constant(w_node)  # [O, I/groups, k]
    x2d = _as_2d(lw, lw.as_channels_last(lw.value(x_node), rank=3))
    padding = padding if isinstance(padding, str) else [0, _pair(padding, [0])[0]]
    return _as_1d(lw, _convolution(lw, node, quant, fused, x2d, weights[:, :, None, :], w_scales, b_node,
                                   [1, _pair(stride, [1])[0]], padding, [1, _pair(dilation, [1])[0]], groups))


def _as_2d(lw: Lowering, x: str) -> str:
    """A channels-last (N, L, C) tensor viewed as the (N, 1, L, C) map 2-D kernels take
    (a RESHAPE: the same bytes)."""
    n, length, channels = lw.shape(x)
    out = lw.new_activation(x + "_2d", (n, 1, length, channels), lw.quant(x))
    lw.nhwc.add(out)
    lw.emit("RESHAPE", [x], [out], new_shape=[n, 1, length, channels])
    return out


def _as_1d(lw: Lowering, y: str) -> str:
    """The (N, 1, L, C) result of a 2-D kernel as the channels-last (N, L, C) tensor."""
    n, _, length, channels = lw.shape(y)
    out = lw.new_activation(y + "_1d", (n, length, channels), lw.quant(y))
    lw.nhwc.add(out)
    lw.emit("RESHAPE", [y], [out], new_shape=[n, length, channels])
    return out


def _conv_args(node: Node) -> list:
    """x, weight, bias, stride, padding, dilation, groups (None where not given)."""
    args = list(node.args) + [None] * (7 - len(node.args))
    for i, key in enumerate(("input", "weight", "bias", "stride", "padding", "dilation", "groups")):
        args[i] = node.kwargs.get(key, args[i])
    return args


def _convolution(lw: Lowering, node: Node, quant: Quant, fused: str, x: str, weights, w_scales, b_node,
                 stride, padding, dilation, groups, name: str | None = None) -> str:
    """CONV_2D or DEPTHWISE_CONV_2D over the NHWC tensor x; weights [O, I/groups, kh, kw];
    b_node the bias (a graph node, an int32 array or None)."""
    groups = groups or 1
    out_ch, in_per_group, kh, kw = weights.shape
    in_ch = lw.shape(x)[3]
    depthwise = groups > 1 and groups == in_ch and in_per_group == 1
    if groups > 1 and not depthwise:
        return _grouped_convolution(lw, node, quant, fused, x, weights, w_scales, b_node, stride, padding,
                                    dilation, groups)
    if isinstance(padding, str):  # PyTorch's "same" (stride 1) pads as TFLite's SAME
        pad_kind = {"same": "SAME", "valid": "VALID"}[padding]
    else:
        x, pad_kind = _explicit_padding(lw, x, (kh, kw), stride, padding, dilation)
    _, h, w, _ = lw.shape(x)
    oh = window(h, kh, stride[0], dilation[0], pad_kind).out
    ow = window(w, kw, stride[1], dilation[1], pad_kind).out
    base = name or node.name
    if depthwise:
        w_data, axis, kind = weights.transpose(1, 2, 3, 0), 3, "DEPTHWISE_CONV_2D"
    else:
        w_data, axis, kind = weights.transpose(0, 2, 3, 1), 0, "CONV_2D"
    w_name = lw.new_const(base + "_weights", w_data.astype(np.int8), "int8",
                          Quant(w_scales, np.zeros(out_ch, np.int64), axis))
    b_name = _bias(lw, base, b_node, lw.quant(x), w_scales, out_ch)
    out = lw.new_activation(base, (lw.shape(x)[0], oh, ow, out_ch), quant)
    lw.nhwc.add(out)
    options = dict(padding=pad_kind, stride_h=stride[0], stride_w=stride[1],
                   dilation_h_factor=dilation[0], dilation_w_factor=dilation[1],
                   fused_activation_function=fused)
    if depthwise:
        options["depth_multiplier"] = out_ch // in_ch
    lw.emit(kind, [x, w_name, b_name], [out], **options)
    return out


def _explicit_padding(lw: Lowering, x: str, kernel, stride, padding, dilation) -> tuple[str, str]:
    """PyTorch pads symmetrically; TFLite's SAME may pad one side more. Use SAME/VALID
    when they agree with PyTorch, else a PAD op (padding with the zero point) + VALID."""
    _, h, w, c = lw.shape(x)
    if all(p == 0 for p in padding):
        return x, "VALID"
    same = [window(size, k, s, d, "SAME") for size, k, s, d in zip((h, w), kernel, stride, dilation)]
    torch_out = [(size + 2 * p - ((k - 1) * d + 1)) // s + 1
                 for size, k, s, d, p in zip((h, w), kernel, stride, dilation, padding)]
    if all(sw.pad_before == p and sw.out == o for sw, p, o in zip(same, padding, torch_out)):
        return x, "SAME"
    ph, pw = padding
    out = lw.new_activation(x + "_padded", (lw.shape(x)[0], h + 2 * ph, w + 2 * pw, c), lw.quant(x))
    lw.nhwc.add(out)
    pads = lw.new_const(x + "_paddings", np.array([[0, 0], [ph, ph], [pw, pw], [0, 0]], np.int32), "int32")
    lw.emit("PAD", [x, pads], [out])
    return out, "VALID"


def _grouped_convolution(lw: Lowering, node: Node, quant: Quant, fused: str, x: str, weights, w_scales, b_node,
                         stride, padding, dilation, groups) -> str:
    """groups > 1 (not depthwise): one convolution per group over its slice of the input
    channels (STRIDED_SLICE), the results joined along the channels (CONCATENATION)."""
    n, h, w, in_ch = lw.shape(x)
    in_per_group, out_per_group = in_ch // groups, weights.shape[0] // groups
    bias = lw.constant(b_node)[0] if isinstance(b_node, Node) else b_node
    scales = np.broadcast_to(w_scales, (weights.shape[0],))
    parts = []
    for g in range(groups):
        part = lw.new_activation(f"{node.name}_group{g}_input", (n, h, w, in_per_group), lw.quant(x))
        lw.nhwc.add(part)
        bounds = [lw.new_const(f"{part}_{what}", np.array(v, np.int32), "int32") for what, v in (
            ("begin", [0, 0, 0, g * in_per_group]), ("end", [n, h, w, (g + 1) * in_per_group]), ("strides", [1] * 4))]
        lw.emit("STRIDED_SLICE", [x, *bounds], [part])
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        parts.append(_convolution(lw, node, quant, fused, part, weights[rows], scales[rows],
                                  None if bias is None else bias[rows], stride, padding, dilation, 1,
                                  name=f"{node.name}_group{g}"))
    out = lw.new_activation(node.name, (*lw.shape(parts[0])[:3], weights.shape[0]), quant)
    lw.nhwc.add(out)
    lw.emit("CONCATENATION", parts, [out], axis=3, fused_activation_function="NONE")
    return out


def _bias(lw: Lowering, base: str, b_node, x_quant: Quant, w_scales, out_ch: int) -> str:
    scales = float(x_quant.scale[0]) * np.broadcast_to(w_scales, (out_ch,))
    if b_node is None:
        data = np.zeros(out_ch, np.int32)
    elif isinstance(b_node, Node):
        data, b_scales = lw.constant(b_node)
        if not np.allclose(b_scales, scales, rtol=1e-6, atol=0):
            # one bias read by several layers (a recurrent cell's, each step): PT2E quantized it
            # for one of them; requantize to this layer's s_in * s_w
            data = np.clip(np.round(data * (b_scales / scales)), -(2**31) + 1, 2**31 - 1)
    else:
        data = b_node
    return lw.new_const(base + "_bias", data.astype(np.int32), "int32",
                        Quant(scales, np.zeros(out_ch, np.int64), 0))


@lowers("aten.linear.default", role="weighted")
def lower_linear(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    x = lw.as_plain(lw.value(node.args[0]))
    weights, w_scales = lw.constant(node.args[1])
    out_ch = weights.shape[0]
    w_name = lw.new_const(node.name + "_weights", weights.astype(np.int8), "int8",
                          Quant(w_scales, np.zeros(out_ch, np.int64), 0))
    b_node = node.args[2] if len(node.args) > 2 else None
    b_name = _bias(lw, node.name, b_node, lw.quant(x), w_scales, out_ch)
    out = lw.new_activation(node.name, (*lw.shape(x)[:-1], out_ch), quant)  # N-D: over the last dim
    lw.emit("FULLY_CONNECTED", [x, w_name, b_name], [out], fused_activation_function=fused,
            keep_num_dims=len(lw.shape(x)) != 2)
    return out


@lowers("aten.matmul.default", "aten.bmm.default", "aten.mm.default", role="matmul")
def lower_matmul(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """a @ b (ranks 2 to 5, batch dims broadcast; either a constant): BATCH_MATMUL."""
    a = lw.as_plain(lw.operand(node.args[0], ""))
    b = lw.operand(node.args[1], "")
    b = b if lw.program.tensor(b).is_const else lw.as_plain(b)
    if min(len(lw.shape(a)), len(lw.shape(b))) < 2:
        _fail(node, "matmul with a 1-D operand is not supported; unsqueeze it to 2-D")
    out = lw.new_activation(node.name, tuple(node.meta["val"].shape), quant)
    lw.emit("BATCH_MATMUL", [a, b], [out], adj_x=False, adj_y=False)
    return out


@lowers("aten.conv_transpose2d.input", role="transposed_weighted")
def lower_conv_transpose2d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """TRANSPOSE_CONV: VALID (padding 0) or SAME where it places PyTorch's output, else
    VALID over the full output and a STRIDED_SLICE dropping PyTorch's padding."""
    args = list(node.args) + [None] * (8 - len(node.args))
    x_node, w_node, b_node, stride, padding, output_padding, groups, dilation = args
    stride, padding = _pair(stride, [1]), _pair(padding, [0])
    output_padding = _pair(output_padding, [0])
    if (groups or 1) != 1 or any(d != 1 for d in _pair(dilation, [1])):
        _fail(node, "conv_transpose2d with groups or dilation is not supported")
    x = lw.as_channels_last(lw.value(x_node))
    weights, w_scales = lw.constant(w_node)  # [I, O, kh, kw], scales per output channel
    n, h, w, _ = lw.shape(x)
    out_ch, kernel = weights.shape[1], weights.shape[2:]
    torch_out = [(size - 1) * s - 2 * p + k + op
                 for size, s, p, k, op in zip((h, w), stride, padding, kernel, output_padding)]
    same = [window(o, k, s, 1, "SAME") for o, k, s in zip(torch_out, kernel, stride)]
    if not any(padding):
        pad_kind, full = "VALID", torch_out
    elif all(sw.pad_before == p and sw.out == size for sw, p, size in zip(same, padding, (h, w))):
        pad_kind, full = "SAME", torch_out
    else:
        pad_kind, full = "VALID", [(size - 1) * s + k for size, s, k in zip((h, w), stride, kernel)]
    base = node.name if full == torch_out else node.name + "_full"
    w_name = lw.new_const(base + "_weights", weights.transpose(1, 2, 3, 0).astype(np.int8), "int8",
                          Quant(w_scales, np.zeros(out_ch, np.int64), 0))
    inputs = [lw.new_const(base + "_output_shape", np.array([n, *full, out_ch], np.int32), "int32"), w_name, x]
    if b_node is not None:
        inputs.append(_bias(lw, base, b_node, lw.quant(x), w_scales, out_ch))
    out = lw.new_activation(base, (n, *full, out_ch), quant)
    lw.nhwc.add(out)
    lw.emit("TRANSPOSE_CONV", inputs, [out], padding=pad_kind, stride_h=stride[0], stride_w=stride[1],
            fused_activation_function=fused)
    if full == torch_out:
        return out
    begin = [0, padding[0], padding[1], 0]
    return _strided_slice(lw, node, quant, out, begin, [n, padding[0] + torch_out[0], padding[1] + torch_out[1],
                                                        out_ch], [1] * 4)


ELEMENTWISE_KINDS = {"aten.add.Tensor": "ADD", "aten.mul.Tensor": "MUL", "aten.maximum.default": "MAXIMUM",
                     "aten.minimum.default": "MINIMUM", "aten.sub.Tensor": "ADD", "aten.div.Tensor": "MUL",
                     "aten.neg.default": "MUL"}


def _elementwise(lw: Lowering, node: Node, quant: Quant, a: str, b: str, kind: str | None = None, **options) -> str:
    """Two operands broadcast with numpy's rules, in one layout (NHWC if both activations
    are; a constant operand was made in its partner's layout)."""
    constant = lw.program.tensor(a).is_const or lw.program.tensor(b).is_const
    if (a in lw.nhwc) != (b in lw.nhwc) and not constant:
        a, b = lw.as_plain(a), lw.as_plain(b)
    shape = np.broadcast_shapes(lw.shape(a), lw.shape(b))
    out = lw.new_activation(node.name, shape, quant)
    if a in lw.nhwc or b in lw.nhwc:
        lw.nhwc.add(out)
    lw.emit(kind or ELEMENTWISE_KINDS[aten_name(node.target)], [a, b], [out], **options)
    return out


@lowers("aten.add.Tensor", "aten.mul.Tensor", role="binary")
def lower_binary(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    if node.kwargs.get("alpha", 1) != 1:
        _fail(node, "add with alpha != 1 is not supported")
    first, second = node.args[:2]
    if not isinstance(first, Node) or first.op == "get_attr":  # 3 + x: the activation first
        first, second = second, first
    a = lw.operand(first, "")
    return _elementwise(lw, node, quant, a, lw.operand(second, a), fused_activation_function=fused)


@lowers("aten.sub.Tensor", "aten.rsub.Scalar", "aten.div.Tensor", "aten.neg.default", role="binary")
def lower_arithmetic(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """a - b (SUB), x - c as ADD of -c, c - x as SUB, x / c as MUL by 1/c, -x as MUL by -1."""
    name = aten_name(node.target)
    if node.kwargs.get("alpha", 1) != 1 or node.kwargs.get("rounding_mode") is not None:
        _fail(node, "alpha and rounding_mode are not supported")
    x = lw.value(node.args[0])
    other = node.args[1] if len(node.args) > 1 else 1.0
    constant = not isinstance(other, Node) or other.op == "get_attr"
    if name == "aten.rsub.Scalar":  # other - x
        return _elementwise(lw, node, quant, lw.operand(other, x), x, kind="SUB", fused_activation_function=fused)
    if name == "aten.sub.Tensor" and not constant:
        return _elementwise(lw, node, quant, x, lw.value(other), kind="SUB", fused_activation_function=fused)
    if not constant:
        _fail(node, "dividing by an activation is not supported; divide by a constant")
    transform = {"aten.sub.Tensor": np.negative, "aten.div.Tensor": _reciprocal,
                 "aten.neg.default": np.negative}[name]
    return _elementwise(lw, node, quant, x, lw.operand(other, x, transform), fused_activation_function=fused)


def _reciprocal(values: np.ndarray) -> np.ndarray:
    if np.any(values == 0):
        raise UnsupportedOpError("division by a constant that holds 0")
    return 1.0 / values


@lowers("aten.maximum.default", "aten.minimum.default", role="shared")
def lower_maximum_minimum(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    return _elementwise(lw, node, quant, *(lw.value(arg) for arg in node.args[:2]))


UNARY_KINDS = {"aten.sigmoid.default": "LOGISTIC", "aten.tanh.default": "TANH",
               "aten.hardswish.default": "HARD_SWISH", "aten.leaky_relu.default": "LEAKY_RELU",
               "aten.elu.default": "ELU", "aten.abs.default": "ABS", "aten.rsqrt.default": "RSQRT",
               "aten.gelu.default": "GELU"}


@lowers("aten.sigmoid.default", role="unit_output")
@lowers("aten.tanh.default", role="symmetric_unit_output")
@lowers("aten.hardswish.default", "aten.leaky_relu.default", "aten.elu.default", "aten.abs.default",
        "aten.rsqrt.default", "aten.gelu.default", role="unary")
def lower_unary(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """An elementwise function of one int8 value (a 256-entry table in firmware)."""
    name = aten_name(node.target)
    options = {}
    if name == "aten.leaky_relu.default":
        options["alpha"] = float(node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01))
    if name == "aten.gelu.default":
        options["approximate"] = node.kwargs.get("approximate", "none") == "tanh"
    if name == "aten.elu.default" and any(float(v) != 1.0 for v in list(node.args[1:4]) + list(node.kwargs.values())):
        _fail(node, "ELU with alpha, scale or input_scale other than 1 is not supported (TFLite's ELU has none)")
    x = lw.value(node.args[0])
    out = lw.new_activation(node.name, lw.shape(x), quant)
    if x in lw.nhwc:
        lw.nhwc.add(out)
    lw.emit(UNARY_KINDS[name], [x], [out], **options)
    return out


@lowers("aten.relu.default", "aten.relu6.default", "aten.hardtanh.default", "aten.clamp.default",
        "aten.clamp_min.default", "aten.clamp_max.default", role="activation")
def lower_activation(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """A relu/relu6/hardtanh/clamp that could not be fused: RELU or RELU6 (which also
    rescale), any other bounds MAXIMUM and/or MINIMUM against the bounds as int8 constants
    on x's quantization, which the output shares (quantize.py): exactly x's nearest codes
    clamped, bit-exact with TFLite's raw-value comparison."""
    x = lw.value(node.args[0])
    low, high = activation_bounds(node)
    kind = OWN_OP_CLAMPS.get((low, high))
    if kind is None:
        for bound, compare in ((low, "MAXIMUM"), (high, "MINIMUM")):
            if abs(bound) != float("inf"):
                x = _elementwise(lw, node, quant, x, lw.int8_scalar(f"{node.name}_{compare.lower()}",
                                                                    int8_code(bound, quant), quant), kind=compare)
        return x
    out = lw.new_activation(node.name, lw.shape(x), quant)
    if x in lw.nhwc:
        lw.nhwc.add(out)
    lw.emit(kind, [x], [out])
    return out


def _pool(lw: Lowering, node: Node, quant: Quant, kind: str, kernel, stride, padding, ceil_mode=False,
          pad_value: str | None = None, x: str | None = None) -> str:
    """A pooling op over x (default: the node's input as NHWC); where TFLite's SAME/VALID
    cannot place PyTorch's windows, an explicit pad op first (_pad_for_windows): pad_value
    "lowest" pads with -128 (max pooling: never above a real tap), "zero_point" with a
    real 0 that the average counts (count_include_pad=True)."""
    x = x or lw.as_channels_last(lw.value(node.args[0]))
    n, h, w, c = lw.shape(x)
    torch_out = [torch_pool_size(size, k, s, p, bool(ceil_mode))
                 for size, k, s, p in zip((h, w), kernel, stride, padding)]
    pad_kind = _window_kind((h, w), kernel, stride, padding, torch_out, counts_padding=pad_value == "zero_point")
    if pad_kind is None:
        x, pad_kind = _pad_for_windows(lw, node, x, kernel, stride, padding, torch_out, pad_value)
    out = lw.new_activation(node.name, (n, *torch_out, c), quant)
    lw.nhwc.add(out)
    lw.emit(kind, [x], [out], padding=pad_kind, stride_h=stride[0], stride_w=stride[1],
            filter_height=kernel[0], filter_width=kernel[1], fused_activation_function="NONE")
    return out


def torch_pool_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """PyTorch's pooled size: with ceil_mode a last, partial window is kept when it
    starts inside the input or its left padding."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _window_kind(hw, kernel, stride, padding, torch_out, counts_padding: bool) -> str | None:
    """TFLite's VALID or SAME where it places PyTorch's windows exactly: every window over
    the same input positions (TFLite's pooling skips out-of-bounds taps, as PyTorch does
    for max pooling, for an average's padding with count_include_pad=False, and for the
    part of a ceil_mode window past the edge). None when neither does."""
    for kind in ("VALID", "SAME"):
        placed = [window(size, k, s, 1, kind) for size, k, s in zip(hw, kernel, stride)]
        if all(w.pad_before == p and w.out == o for w, p, o in zip(placed, padding, torch_out)):
            if kind == "VALID" or not counts_padding or not any(padding):
                return kind
    return None


def _pad_for_windows(lw: Lowering, node: Node, x: str, kernel, stride, padding, torch_out,
                     pad_value: str | None) -> tuple[str, str]:
    """x padded explicitly, and the TFLite padding that places PyTorch's windows over it.
    Max pooling: -128 before and as far as the last window reaches after, VALID. An average
    counting its padding: the zero point on both sides, as PyTorch pads, then VALID, or SAME
    where a ceil_mode window runs one past the padding (PyTorch's divisor stops at the
    padding's end, as TFLite's SAME counts only in-bounds taps)."""
    n, h, w, c = lw.shape(x)
    if pad_value is None and any(padding):
        _fail(node, _uncounted_padding_problem((h, w), kernel, stride, padding, torch_out))
    if pad_value == "lowest":  # what the last window needs past the input (none, when it ends inside)
        after = [max((o - 1) * s + k - size - p, 0)
                 for o, s, k, size, p in zip(torch_out, stride, kernel, (h, w), padding)]
    else:
        after = list(padding)
    padded = [size + p + a for size, p, a in zip((h, w), padding, after)]
    pad_kind = "VALID" if pad_value == "lowest" else _window_kind(padded, kernel, stride, [0, 0], torch_out, False)
    if pad_kind is None:
        over = [max((o - 1) * s + k - size, 0) for o, s, k, size in zip(torch_out, stride, kernel, padded)]
        _fail(node, f"on a {h}x{w} map, kernel {list(kernel)}, stride {list(stride)}, padding {list(padding)} "
                    f"with ceil_mode give {_hw(torch_out)} windows, the last running {_hw(over)} past the "
                    f"input and its padding, which PyTorch leaves out of its divisor; neither TFLite's VALID "
                    f"nor SAME pooling of the padded map averages it so; use ceil_mode=False, or an input size "
                    f"the windows fit")
    paddings = np.array([[0, 0], [padding[0], after[0]], [padding[1], after[1]], [0, 0]], np.int32)
    out = lw.new_activation(x + "_padded", (n, *padded, c), lw.quant(x))
    lw.nhwc.add(out)
    inputs = [x, lw.new_const(x + "_paddings", paddings, "int32")]
    if pad_value == "lowest":  # PADV2 with -128 on the input's own quantization
        inputs.append(lw.int8_scalar(x + "_pad_value", -128, lw.quant(x)))
    lw.emit("PADV2" if pad_value == "lowest" else "PAD", inputs, [out])
    return out, pad_kind


def _uncounted_padding_problem(hw, kernel, stride, padding, torch_out) -> str:
    """Why an average not counting its padding (count_include_pad=False) has no TFLite form."""
    same = [window(size, k, s, 1, "SAME") for size, k, s in zip(hw, kernel, stride)]
    valid = [window(size, k, s, 1, "VALID").out for size, k, s in zip(hw, kernel, stride)]
    return (f"on a {_hw(hw)} map, kernel {list(kernel)}, stride {list(stride)}, padding {list(padding)} "
            f"give {_hw(torch_out)} windows padded {list(padding)} before; this average can only pool "
            f"as TFLite's SAME ({_hw([w.out for w in same])} windows padded "
            f"{[w.pad_before for w in same]} before, padding not counted) or VALID ({_hw(valid)}, "
            f"no padding); use count_include_pad=True, or change padding/ceil_mode to one of these")


def _hw(sizes) -> str:
    return "x".join(str(n) for n in sizes)


def _pair(v, default=None):
    if v is None or v == []:
        v = default
    return list(v) * 2 if len(v) == 1 else list(v)


@lowers("aten.max_pool2d.default", role="shared")
def lower_max_pool2d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    args = list(node.args) + [None] * (6 - len(node.args))
    _, kernel, stride, padding, dilation, ceil_mode = args
    kernel = _pair(kernel)
    if dilation and any(d != 1 for d in _pair(dilation)):
        _fail(node, "dilated max pooling is not supported")
    return _pool(lw, node, quant, "MAX_POOL_2D", kernel, _pair(stride, kernel), _pair(padding, [0]), ceil_mode,
                 pad_value="lowest")


@lowers("aten.avg_pool2d.default", role="shared")
def lower_avg_pool2d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    args = list(node.args) + [None] * (7 - len(node.args))
    _, kernel, stride, padding, ceil_mode, count_include_pad, divisor = args
    if divisor is not None:
        _fail(node, "avg_pool2d with divisor_override is not supported")
    kernel = _pair(kernel)
    return _pool(lw, node, quant, "AVERAGE_POOL_2D", kernel, _pair(stride, kernel), _pair(padding, [0]), ceil_mode,
                 pad_value=None if count_include_pad is False else "zero_point")


@lowers("aten.adaptive_avg_pool2d.default", role="shared")
def lower_adaptive_avg_pool2d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """An adaptive average pool whose windows are a plain pool's (export's check_uses refused
    the others): AVERAGE_POOL_2D VALID, every window full."""
    x = lw.as_channels_last(lw.value(node.args[0]))
    kernel, stride = adaptive_pool_window("adaptive_avg_pool2d", lw.shape(x)[1:3], node.args[1])
    return _pool(lw, node, quant, "AVERAGE_POOL_2D", kernel, stride, [0, 0], x=x)


@lowers("aten.max_pool1d.default", role="shared")
def lower_max_pool1d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    args = list(node.args) + [None] * (6 - len(node.args))
    _, kernel, stride, padding, dilation, ceil_mode = args
    if dilation and any(d != 1 for d in _pair(dilation)):
        _fail(node, "dilated max pooling is not supported")
    return _pool_1d(lw, node, quant, "MAX_POOL_2D", kernel, stride, padding, ceil_mode, "lowest")


@lowers("aten.avg_pool1d.default", role="shared")
def lower_avg_pool1d(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    args = list(node.args) + [None] * (6 - len(node.args))
    _, kernel, stride, padding, ceil_mode, count_include_pad = args
    return _pool_1d(lw, node, quant, "AVERAGE_POOL_2D", kernel, stride, padding, ceil_mode,
                    None if count_include_pad is False else "zero_point")


def _pool_1d(lw: Lowering, node: Node, quant: Quant, kind: str, kernel, stride, padding, ceil_mode,
             pad_value) -> str:
    kernel = _pair(kernel)[0]
    x2d = _as_2d(lw, lw.as_channels_last(lw.value(node.args[0]), rank=3))
    return _as_1d(lw, _pool(lw, node, quant, kind, [1, kernel], [1, _pair(stride, [kernel])[0]],
                            [0, _pair(padding, [0])[0]], ceil_mode, pad_value, x=x2d))


@lowers("aten.mean.dim", "aten.mean.default", role="shared")
def lower_mean(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """The mean over every spatial dimension of a 3-D or 4-D tensor is a global average pool;
    over other dimensions, TFLite's MEAN."""
    x = lw.value(node.args[0])
    rank = len(lw.shape(x))
    given = node.args[1] if len(node.args) > 1 else None  # aten.mean.default: every dim
    dims = sorted(d % rank for d in given) if rank in (3, 4) and given is not None else None
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if dims != list(range(2, rank)):  # not a global average pool: TFLite's MEAN
        return _reduce(lw, node, quant, "MEAN")
    x = lw.as_channels_last(x, rank)
    x2d = _as_2d(lw, x) if rank == 3 else x
    _, h, w, channels = lw.shape(x2d)
    pooled = _pool(lw, node, quant, "AVERAGE_POOL_2D", [h, w], [h, w], [0, 0], x=x2d)
    if keepdim:
        return _as_1d(lw, pooled) if rank == 3 else pooled
    out = lw.new_activation(node.name + "_squeezed", (lw.shape(pooled)[0], channels), quant)
    lw.emit("RESHAPE", [pooled], [out], new_shape=list(lw.shape(out)))
    return out


@lowers("aten.flatten.using_ints", "aten.view.default", "aten._unsafe_view.default", "aten.reshape.default", "aten.squeeze.dim",
        "aten.squeeze.dims", "aten.squeeze.default", "aten.unsqueeze.default", "aten.unflatten.int", role="shared")
def lower_reshape(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    x = lw.as_plain(lw.value(node.args[0]))
    new_shape = tuple(node.meta["val"].shape)
    out = lw.new_activation(node.name, new_shape, quant)
    lw.emit("RESHAPE", [x], [out], new_shape=list(new_shape))
    return out


@lowers("aten.silu.default", role="unary")
def lower_silu(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """x * sigmoid(x): LOGISTIC (TFLite's fixed 1/256 output) then MUL."""
    x = lw.value(node.args[0])
    gate = lw.new_activation(node.name + "_sigmoid", lw.shape(x), Quant.per_tensor(1 / 256, -128))
    lw.emit("LOGISTIC", [x], [gate])
    if x in lw.nhwc:
        lw.nhwc.add(gate)
    return _elementwise(lw, node, quant, x, gate, kind="MUL", fused_activation_function="NONE")


@lowers("aten.hardsigmoid.default", role="unary")
def lower_hardsigmoid(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """relu6(x + 3) / 6: ADD with a fused RELU6 into [0, 6] on 255 steps, then MUL by 1/6."""
    x = lw.value(node.args[0])
    shifted = lw.new_activation(node.name + "_plus3", lw.shape(x), Quant.per_tensor(6 / 255, -128))
    lw.emit("ADD", [x, lw.operand(3.0, x)], [shifted], fused_activation_function="RELU6")
    if x in lw.nhwc:
        lw.nhwc.add(shifted)
    return _elementwise(lw, node, quant, shifted, lw.operand(1 / 6, x), kind="MUL", fused_activation_function="NONE")


@lowers("aten.pad.default", "aten.constant_pad_nd.default", "aten.reflection_pad1d.default",
        "aten.reflection_pad2d.default", "aten.replication_pad1d.default", "aten.replication_pad2d.default",
        role="shared")
def lower_pad(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """F.pad: constant (PAD for 0, PADV2 for another value), reflect (MIRROR_PAD REFLECT) or
    replicate (edge copies joined on, _replicate)."""
    x = lw.value(node.args[0])
    pads = list(node.args[1])
    rank = len(lw.shape(x))
    torch_pads = [[0, 0] for _ in range(rank)]
    for i in range(len(pads) // 2):  # PyTorch lists the last dimension first
        torch_pads[rank - 1 - i] = [pads[2 * i], pads[2 * i + 1]]
    if any(p < 0 for pair in torch_pads for p in pair):
        _fail(node, "negative padding (cropping) is not supported; slice instead")
    paddings = [torch_pads[channels_last(rank)[a]] if x in lw.nhwc else torch_pads[a] for a in range(rank)]
    mode, value = _pad_mode(node)
    if mode == "replicate":
        return _replicate(lw, node, x, paddings)
    shape = [d + lo + hi for d, (lo, hi) in zip(lw.shape(x), paddings)]
    out = lw.new_activation(node.name, shape, lw.quant(x))
    if x in lw.nhwc:
        lw.nhwc.add(out)
    inputs = [x, lw.new_const(node.name + "_paddings", np.array(paddings, np.int32), "int32")]
    if mode == "reflect":
        lw.emit("MIRROR_PAD", inputs, [out], mode=0)
    elif value == 0.0:
        lw.emit("PAD", inputs, [out])
    else:
        inputs.append(lw.int8_scalar(node.name + "_value", int8_code(value, lw.quant(x)), lw.quant(x)))
        lw.emit("PADV2", inputs, [out])
    return out


def _pad_mode(node: Node) -> tuple[str, float]:
    """("constant", value), ("reflect", 0) or ("replicate", 0) of a padding node; circular is refused."""
    name = aten_name(node.target)
    if name.startswith("aten.reflection_pad"):
        return "reflect", 0.0
    if name.startswith("aten.replication_pad"):
        return "replicate", 0.0
    args = list(node.args) + [None] * (4 - len(node.args))
    if name == "aten.constant_pad_nd.default":
        return "constant", float(node.kwargs.get("value", args[2]) or 0.0)
    mode = node.kwargs.get("mode", args[2]) or "constant"
    if mode not in ("constant", "reflect", "replicate"):
        _fail(node, f"padding mode {mode!r} is not supported; use 'constant', 'reflect' or 'replicate'")
    return mode, float(node.kwargs.get("value", args[3]) or 0.0)


def _replicate(lw: Lowering, node: Node, x: str, paddings) -> str:
    """Replicate padding, one padded axis after the other (so corners repeat the corner
    value): the edge slice (STRIDED_SLICE), widened to the padding (BROADCAST_TO) where it
    is over 1, joined on each side (CONCATENATION); pure copies, one quantization."""
    for axis, (before, after) in enumerate(paddings):
        parts = [_edge_copies(lw, node, x, axis, 0, before), x, _edge_copies(lw, node, x, axis, -1, after)]
        if before or after:
            x = _concatenation(lw, node.name, [p for p in parts if p], axis, lw.quant(x))
    return x


def _edge_copies(lw: Lowering, node: Node, x: str, axis: int, index: int, copies: int) -> str | None:
    """`copies` copies of x's first (index 0) or last (-1) slice along axis; None for none."""
    if not copies:
        return None
    shape = list(lw.shape(x))
    begin, end = [0] * len(shape), list(shape)
    begin[axis] = index % shape[axis]
    end[axis] = begin[axis] + 1
    edge = _strided_slice(lw, node, lw.quant(x), x, begin, end, [1] * len(shape))
    if copies == 1:
        return edge
    shape[axis] = copies
    out = lw.new_activation(node.name + "_edge", shape, lw.quant(x))
    if x in lw.nhwc:
        lw.nhwc.add(out)
    target = lw.new_const(node.name + "_edge_shape", np.array(shape, np.int32), "int32")
    lw.emit("BROADCAST_TO", [edge, target], [out])
    return out


@lowers("aten.zeros.default", role="constant")
def lower_zeros(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """A zero tensor (a recurrent layer's initial state): a constant holding the zero point."""
    shape = tuple(node.meta["val"].shape)
    return lw.new_const(node.name, np.full(shape, int(quant.zero_point[0]), np.int8), "int8", quant)


@lowers("aten.expand.default", role="shared")
def lower_expand(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """x.expand(...): BROADCAST_TO, in PyTorch's order."""
    x = lw.as_plain(lw.value(node.args[0]))
    shape = tuple(node.meta["val"].shape)
    if len(lw.shape(x)) == 0:
        _fail(node, "expanding a 0-D tensor is not supported; reshape it to [1] first")
    out = lw.new_activation(node.name, shape, quant)
    lw.emit("BROADCAST_TO", [x, lw.new_const(node.name + "_shape", np.array(shape, np.int32), "int32")], [out])
    return out


@lowers("aten.repeat.default", role="shared")
def lower_repeat(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """x.repeat(*sizes) (TILE): per repeated dimension a CONCATENATION of copies, a builtin
    TFLite Micro runs (it has no TILE kernel); extra leading sizes add leading dimensions."""
    x = lw.as_plain(lw.value(node.args[0]))
    sizes = [int(r) for r in node.args[1]]
    shape = (1,) * (len(sizes) - len(lw.shape(x))) + tuple(lw.shape(x))
    if shape != lw.shape(x):
        widened = lw.new_activation(node.name + "_widened", shape, quant)
        lw.emit("RESHAPE", [x], [widened], new_shape=list(shape))
        x = widened
    for axis, copies, shape in tile_steps(shape, sizes):
        tiled = lw.new_activation(f"{node.name}_tiled{axis}", shape, quant)
        lw.emit("CONCATENATION", [x] * copies, [tiled], axis=axis, fused_activation_function="NONE")
        x = tiled
    return x


@lowers("aten.prelu.default", role="unary")
def lower_prelu(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """nn.PReLU: PRELU with its slopes an int8 constant on their own scale, one per channel
    (the last, channels-last axis) or one for all."""
    x = lw.value(node.args[0])
    alpha = lw.operand(node.args[1], x)
    out = lw.new_activation(node.name, lw.shape(x), quant)
    if x in lw.nhwc:
        lw.nhwc.add(out)
    lw.emit("PRELU", [x, alpha], [out])
    return out


@lowers("aten.slice.Tensor", "aten.narrow.default", role="shared")
def lower_slice(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """x[..., start:end:step, ...] along one dimension: STRIDED_SLICE, in x's own layout."""
    x = lw.value(node.args[0])
    args = list(node.args) + [None] * (5 - len(node.args))
    if aten_name(node.target) == "aten.narrow.default":
        _, dim, start, length = args[:4]
        end, step = start + length, 1
    else:
        _, dim, start, end, step = args
    axis = lw.torch_axis(x, dim or 0)
    size = lw.shape(x)[axis]
    start, end, step = slice(start, end, step or 1).indices(size)
    begin = [0] * len(lw.shape(x))
    stop, strides = list(lw.shape(x)), [1] * len(begin)
    begin[axis], stop[axis], strides[axis] = start, end, step
    return _strided_slice(lw, node, quant, x, begin, stop, strides)


@lowers("aten.select.int", role="shared")
def lower_select(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """x[..., i, ...]: STRIDED_SLICE dropping the dimension (shrink_axis_mask), in PyTorch's order."""
    x = lw.as_plain(lw.value(node.args[0]))
    axis = node.args[1] % len(lw.shape(x))
    index = node.args[2] % lw.shape(x)[axis]
    begin, stop = [0] * len(lw.shape(x)), list(lw.shape(x))
    begin[axis], stop[axis] = index, index + 1
    return _strided_slice(lw, node, quant, x, begin, stop, [1] * len(begin), shrink_axis_mask=1 << axis)


def _strided_slice(lw: Lowering, node: Node, quant: Quant, x: str, begin, end, strides, **options) -> str:
    shape = [max(0, -(-(e - b) // s)) for b, e, s in zip(begin, end, strides)]
    shape = [d for i, d in enumerate(shape) if not options.get("shrink_axis_mask", 0) >> i & 1]
    out = lw.new_activation(node.name, shape, quant)
    if x in lw.nhwc and len(shape) == len(lw.shape(x)):
        lw.nhwc.add(out)
    consts = [lw.new_const(f"{node.name}_{what}", np.array(v, np.int32), "int32")
              for what, v in (("begin", begin), ("end", end), ("strides", strides))]
    lw.emit("STRIDED_SLICE", [x, *consts], [out], **options)
    return out


@lowers("aten.upsample_nearest2d.vec", "aten.upsample_nearest2d.default", "aten.upsample_bilinear2d.vec",
        "aten.upsample_bilinear2d.default", role="shared")
def lower_upsample(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """F.interpolate / nn.Upsample, nearest (PyTorch's floor(i * in / out): TFLite with both
    flags off) or bilinear (align_corners, else TFLite's half_pixel_centers)."""
    x = lw.as_channels_last(lw.value(node.args[0]))
    n, _, _, channels = lw.shape(x)
    height, width = tuple(node.meta["val"].shape)[2:]
    if "bilinear" in aten_name(node.target):
        corners = bool(node.args[2] if len(node.args) > 2 else node.kwargs.get("align_corners", False))
        kind, options = "RESIZE_BILINEAR", {"align_corners": corners, "half_pixel_centers": not corners}
    else:
        kind, options = "RESIZE_NEAREST_NEIGHBOR", {"align_corners": False, "half_pixel_centers": False}
    out = lw.new_activation(node.name, (n, height, width, channels), quant)
    lw.nhwc.add(out)
    size = lw.new_const(node.name + "_size", np.array([height, width], np.int32), "int32")
    lw.emit(kind, [x, size], [out], **options)
    return out


@lowers("aten.sum.dim_IntList", role="activation")
def lower_sum(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    return _reduce(lw, node, quant, "SUM")


@lowers("aten.amax.default", role="shared")
def lower_amax(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    return _reduce(lw, node, quant, "REDUCE_MAX")


def _reduce(lw: Lowering, node: Node, quant: Quant, kind: str) -> str:
    """A reduction over PyTorch dims, on x's storage axes (the result in PyTorch's order)."""
    x = lw.as_plain(lw.value(node.args[0]))
    rank = len(lw.shape(x))
    dims = node.args[1] if len(node.args) > 1 and node.args[1] is not None else list(range(rank))
    dims = sorted({d % rank for d in ([dims] if isinstance(dims, int) else dims)})
    keepdim = bool(node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False))
    shape = [1 if i in dims else d for i, d in enumerate(lw.shape(x)) if keepdim or i not in dims]
    out = lw.new_activation(node.name, shape, quant)
    axes = lw.new_const(node.name + "_axes", np.array(dims, np.int32), "int32")
    lw.emit(kind, [x, axes], [out], keep_dims=keepdim)
    return out


@lowers("aten.permute.default", "aten.transpose.int", role="shared")
def lower_permute(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    x = lw.value(node.args[0])
    rank = len(lw.shape(x))
    if aten_name(node.target) == "aten.transpose.int":  # swap two dimensions
        dims = list(range(rank))
        a, b = node.args[1] % rank, node.args[2] % rank
        dims[a], dims[b] = dims[b], dims[a]
    else:
        dims = [d % rank for d in node.args[1]]
    perm = [channels_last(len(dims)).index(d) for d in dims] if x in lw.nhwc else dims
    return lw.transpose(x, perm, node.name)


@lowers("aten.cat.default", role="shared")
def lower_cat(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    parts = [lw.value(arg) for arg in node.args[0]]
    dim = node.args[1] if len(node.args) > 1 else 0
    if not all(p in lw.nhwc for p in parts):
        parts = [lw.as_plain(p) for p in parts]
    return _concatenation(lw, node.name, parts, lw.torch_axis(parts[0], dim), quant)


def _concatenation(lw: Lowering, base: str, parts: list[str], axis: int, quant: Quant) -> str:
    """CONCATENATION of parts in one layout along a storage axis."""
    shape = list(lw.shape(parts[0]))
    shape[axis] = sum(lw.shape(p)[axis] for p in parts)
    out = lw.new_activation(base, shape, quant)
    if parts[0] in lw.nhwc:
        lw.nhwc.add(out)
    lw.emit("CONCATENATION", parts, [out], axis=axis, fused_activation_function="NONE")
    return out


@lowers("aten.softmax.int", role="unit_output")
@lowers("aten.log_softmax.int", "aten._log_softmax.default", role="log_unit_output")
def lower_softmax(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    """TFLite's (log) softmax works on the last axis: other axes are moved there and back."""
    x = lw.value(node.args[0])
    rank = len(lw.shape(x))
    axis = lw.torch_axis(x, node.args[1])
    to_last = [a for a in range(rank) if a != axis] + [axis]
    moved = x if axis == rank - 1 else lw.transpose(x, to_last, node.name + "_moved")
    out = lw.new_activation(node.name, lw.shape(moved), quant)
    if aten_name(node.target) == "aten.softmax.int":
        lw.emit("SOFTMAX", [moved], [out], beta=1.0)
    else:
        lw.emit("LOG_SOFTMAX", [moved], [out])
    if axis != rank - 1:
        out = lw.transpose(out, [to_last.index(a) for a in range(rank)], node.name + "_restored")
    if x in lw.nhwc:
        lw.nhwc.add(out)
    return out


@lowers("aten.dropout.default", "aten.clone.default", "aten.contiguous.default", role="identity")
def lower_identity(lw: Lowering, node: Node, quant: Quant, fused: str) -> str:
    x = lw.value(node.args[0])
    out = lw.new_activation(node.name, lw.shape(x), quant)
    if x in lw.nhwc:
        lw.nhwc.add(out)
    lw.emit("RESHAPE", [x], [out], new_shape=list(lw.shape(x)))
    return out


def lower(gm: GraphModule, example_inputs: tuple) -> Program:
    """The converted PT2E graph -> Edge program with int8 inputs and outputs."""
    return Lowering(gm).run(example_inputs)
