"""C code for one Edge op: a call into the CMSIS-NN-compatible kernels of cmsis_kernels/.

emit_op() returns the file-scope declarations (per-channel requantization tables)
and the statements model_invoke() runs for the op: a comment naming the op, its
shapes and main parameters, then a block filling the CMSIS-NN parameter structs
and calling the kernel with fixed pointers. Every integer parameter comes from
op_params, the same place the host reference interpreter takes it from.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ops import params as op_params
from ..errors import UnsupportedOpError
from ..ir.program import Op, Program


@dataclass
class CodeFragment:
    declarations: list[str]  # file-scope C, each a complete statement
    statements: list[str]  # C statements inside model_invoke(), in order


Ref = Callable[[str], str]


@dataclass
class _Site:
    """Everything an emitter needs about the op being emitted."""

    program: Program
    op: Op
    ref: Ref
    scratch: str | None
    uid: str

    def shape(self, index: int = 0, output: bool = False) -> tuple[int, ...]:
        names = self.op.outputs if output else self.op.inputs
        return self.program.tensor(names[index]).shape

    def zero_point(self, name: str) -> int:
        return int(self.program.tensor(name).quant.zero_point[0])

    @property
    def x(self) -> str:
        return self.ref(self.op.inputs[0])

    @property
    def y(self) -> str:
        return self.ref(self.op.outputs[0])

    def unsupported(self, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.op.source or self.op.kind}: {why}")


# ---------------------------------------------------------------- C text helpers

def _dims(shape) -> str:
    """cmsis_nn_dims initializer {n, h, w, c}."""
    return "{" + ", ".join(str(int(d)) for d in shape) + "}"


def _nhwc(shape, site: _Site) -> tuple[int, ...]:
    """A tensor shape of rank <= 4 as 4D, leading dimensions 1 (TFLite's broadcast alignment)."""
    if len(shape) > 4:
        raise site.unsupported(f"{site.op.kind} on a rank-{len(shape)} tensor is not supported (at most 4D)")
    return (1,) * (4 - len(shape)) + tuple(shape)


def _shape_text(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _call(function: str, args: list[str]) -> str:
    """`function(args);` wrapped at 110 columns, continuation lines aligned after the parenthesis."""
    head = f"{function}("
    lines, line = [], head
    for i, arg in enumerate(args):
        text = arg + (");" if i == len(args) - 1 else ",")
        if not line.endswith("(") and len(line) + 1 + len(text) > 110:
            lines.append(line)
            line = " " * len(head) + text
        else:
            line += ("" if line.endswith("(") else " ") + text
    return "\n".join(lines + [line])


def _block(site: _Site, summary: str, body: list[str]) -> str:
    """The op's statement: a one-line comment, then its body in a block."""
    op = site.op
    ins = ", ".join(_shape_text(site.program.tensor(n).shape) for n in op.inputs
                    if n and not site.program.tensor(n).is_const)
    comment = f"{op.kind} {op.outputs[0]}: {ins} -> {_shape_text(site.shape(output=True))}"
    if summary:
        comment += f", {summary}"
    comment = comment.replace("*/", "* /")
    inner = "\n".join("    " + line for stmt in body for line in stmt.splitlines())
    return f"/* {comment} */\n{{\n{inner}\n}}"


def _int_array(name: str, values) -> str:
    values = [int(v) for v in values]
    rows = [", ".join(str(v) for v in values[i:i + 8]) for i in range(0, len(values), 8)]
    body = ",\n    ".join(rows)
    return f"static const int32_t {name}[{len(values)}] = {{\n    {body}\n}};"


def _activation(site: _Site) -> tuple[int, int]:
    return op_params.op_activation_range(site.program, site.op)


def _activation_text(site: _Site) -> str:
    fused = site.op.options.get("fused_activation_function", "NONE")
    return "" if fused == "NONE" else f", {fused}"


def _bias_ref(site: _Site) -> str:
    name = site.op.inputs[2] if len(site.op.inputs) > 2 else ""
    return site.ref(name) if name else "NULL"


def _per_channel_tables(site: _Site) -> list[str]:
    """File-scope multiplier and shift arrays, one entry per output channel."""
    multipliers, shifts = op_params.per_channel_requant(site.program, site.op)
    return [_int_array(f"{site.uid}_multiplier", multipliers), _int_array(f"{site.uid}_shift", shifts)]


def _quant_params_line(site: _Site) -> str:
    return (f"const cmsis_nn_per_channel_quant_params quant_params = "
            f"{{(int32_t *){site.uid}_multiplier, (int32_t *){site.uid}_shift}};")


def _padding(site: _Site, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """(pad_h, pad_w): TFLite's leading padding for the op's SAME/VALID padding, or the
    padding of a PAD folded into the op (fuse.py)."""
    o = site.op.options
    if "explicit_padding" in o:
        return tuple(o["explicit_padding"])
    _, h, w, _ = site.shape()
    strides = (o.get("stride_h", 1), o.get("stride_w", 1))
    return tuple(op_params.window(size, k, s, d, o.get("padding", "VALID")).pad_before
                 for size, k, s, d in zip((h, w), kernel, strides, dilation))


def _window_text(site: _Site, kernel, pads) -> str:
    o = site.op.options
    return (f"{kernel[0]}x{kernel[1]} stride {o.get('stride_h', 1)}x{o.get('stride_w', 1)}, "
            f"pad top {pads[0]} left {pads[1]} ({'folded PAD' if 'explicit_padding' in o else o.get('padding', 'VALID')})")


# ---------------------------------------------------------------- convolutions and FC

def _conv_2d(site: _Site) -> CodeFragment:
    x_channels, w_shape = site.shape(0)[3], site.shape(1)
    if w_shape[3] != x_channels:
        raise site.unsupported(f"grouped CONV_2D (input channels {x_channels}, filter {w_shape[3]}) "
                               "is not supported")
    if "residual_add" in site.op.options:
        return _conv_2d_residual_add(site)
    context = f"{{{site.scratch}, {scratch_bytes(site.program, site.op)}}}"
    return _convolution(site, "arm_convolve_s8", "cmsis_nn_conv_params conv_params", "", context,
                        out_channels=w_shape[0], extra_summary="")


def _conv_2d_residual_add(site: _Site) -> CodeFragment:
    """A CONV_2D with a fused residual ADD (fuse.py): the convolution's parameters come
    from its own output tensor, the ADD's from a virtual ADD(conv output, residual)."""
    op, fused = site.op, site.op.options["residual_add"]
    conv_output, residual, out = fused["conv_output"], op.inputs[3], op.outputs[0]
    conv_options = {k: v for k, v in op.options.items() if k != "residual_add"}
    conv_op = Op("CONV_2D", op.inputs[:3], [conv_output], conv_options, op.target, op.source)
    add_op = Op("ADD", [conv_output, residual], [out],
                {"fused_activation_function": fused["fused_activation_function"]})
    p = op_params.add_params(site.program, add_op)
    lo, hi = op_params.op_activation_range(site.program, add_op)
    add_quant = (f"const mcu_add_quant add_quant = {{{p.input1_offset}, {p.input1_multiplier}, "
                 f"{p.input1_shift}, {p.input2_offset}, {p.input2_multiplier}, {p.input2_shift},\n"
                 f"    {p.left_shift}, {p.output_offset}, {p.output_multiplier}, {p.output_shift}, {lo}, {hi}}};")
    conv_site = _Site(site.program, conv_op, lambda n: site.ref(out if n == conv_output else n),
                      site.scratch, site.uid)
    context = f"{{{site.scratch}, {scratch_bytes(site.program, op)}}}"
    added = f", + residual {residual}" + (f" then {fused['fused_activation_function']}"
                                          if fused["fused_activation_function"] != "NONE" else "")
    return _convolution(conv_site, "mcu_convolve_add_s8", "cmsis_nn_conv_params conv_params", "", context,
                        out_channels=site.shape(1)[0], extra_summary=added,
                        residual=(add_quant, site.ref(residual)))


def _depthwise_conv_2d(site: _Site) -> CodeFragment:
    ch_mult = site.shape(1)[3] // site.shape(0)[3]  # as TFLite, the shapes decide, not depth_multiplier
    return _convolution(site, "arm_depthwise_conv_s8", "cmsis_nn_dw_conv_params dw_conv_params",
                        f" .ch_mult = {ch_mult},", "{NULL, 0}", out_channels=site.shape(1)[3],
                        extra_summary=f", depth multiplier {ch_mult}")


def _convolution(site: _Site, kernel: str, params_decl: str, extra_params: str, context: str,
                 out_channels: int, extra_summary: str, residual: tuple[str, str] | None = None) -> CodeFragment:
    """The call of a convolution kernel (regular, depthwise, or with a fused residual
    add: residual = (the mcu_add_quant declaration, the residual's pointer)): all take
    the same context, quantization, dims and window parameters."""
    o = site.op.options
    x_shape, w_shape, y_shape = site.shape(0), site.shape(1), site.shape(output=True)
    dilation = (o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1))
    pads = _padding(site, w_shape[1:3], dilation)
    lo, hi = _activation(site)
    params_name = params_decl.split()[-1]
    body = [
        f"const cmsis_nn_context ctx = {context};",
        f"const {params_decl} = {{"
        f".input_offset = {-site.zero_point(site.op.inputs[0])}, "
        f".output_offset = {site.zero_point(site.op.outputs[0])},{extra_params}\n"
        f"    .stride = {{.w = {o.get('stride_w', 1)}, .h = {o.get('stride_h', 1)}}}, "
        f".padding = {{.w = {pads[1]}, .h = {pads[0]}}},\n"
        f"    .dilation = {{.w = {dilation[1]}, .h = {dilation[0]}}}, "
        f".activation = {{.min = {lo}, .max = {hi}}}}};",
        _quant_params_line(site),
        f"const cmsis_nn_dims input_dims = {_dims(x_shape)};",
        f"const cmsis_nn_dims filter_dims = {_dims(w_shape)};",
        f"const cmsis_nn_dims bias_dims = {_dims((1, 1, 1, out_channels))};",
        f"const cmsis_nn_dims output_dims = {_dims(y_shape)};",
    ]
    residual_args = []
    if residual is not None:
        body.append(residual[0])
        residual_args = ["&add_quant", residual[1]]
    body.append(_call(kernel, ["&ctx", f"&{params_name}", "&quant_params", "&input_dims", site.x, "&filter_dims",
                               site.ref(site.op.inputs[1]), "&bias_dims", _bias_ref(site), *residual_args,
                               "&output_dims", site.y]))
    summary = _window_text(site, w_shape[1:3], pads) + extra_summary
    if dilation != (1, 1):
        summary += f", dilation {dilation[0]}x{dilation[1]}"
    return CodeFragment(_per_channel_tables(site), [_block(site, summary + _activation_text(site), body)])


def _fully_connected(site: _Site) -> CodeFragment:
    w = site.program.tensor(site.op.inputs[1])
    out_ch, depth = w.shape
    batches = site.program.tensor(site.op.inputs[0]).size // depth
    w_zp = w.quant.zero_point
    if np.any(w_zp != w_zp[0]):
        raise site.unsupported("FULLY_CONNECTED weights with per-channel zero points are not supported; "
                               "quantize the weights symmetrically")
    lo, hi = _activation(site)
    multipliers, shifts = op_params.per_channel_requant(site.program, site.op)
    per_channel = len(set(zip(multipliers.tolist(), shifts.tolist()))) > 1
    if per_channel:
        declarations = _per_channel_tables(site)
        quant_line, function = _quant_params_line(site), "arm_fully_connected_per_channel_s8"
    else:
        declarations = []
        quant_line = (f"const cmsis_nn_per_tensor_quant_params quant_params = "
                      f"{{{int(multipliers[0])}, {int(shifts[0])}}};")
        function = "arm_fully_connected_s8"
    body = [
        "const cmsis_nn_context ctx = {NULL, 0};",
        f"const cmsis_nn_fc_params fc_params = {{.input_offset = {-site.zero_point(site.op.inputs[0])}, "
        f".filter_offset = {-int(w_zp[0])},\n"
        f"    .output_offset = {site.zero_point(site.op.outputs[0])}, "
        f".activation = {{.min = {lo}, .max = {hi}}}}};",
        quant_line,
        f"const cmsis_nn_dims input_dims = {_dims((batches, 1, 1, depth))};",
        f"const cmsis_nn_dims filter_dims = {_dims((depth, 1, 1, out_ch))};",
        f"const cmsis_nn_dims bias_dims = {_dims((1, 1, 1, out_ch))};",
        f"const cmsis_nn_dims output_dims = {_dims((batches, 1, 1, out_ch))};",
        _call(function, ["&ctx", "&fc_params", "&quant_params", "&input_dims", site.x, "&filter_dims",
                         site.ref(site.op.inputs[1]), "&bias_dims", _bias_ref(site), "&output_dims", site.y]),
    ]
    summary = f"{batches}x{depth} -> {out_ch}, {'per-channel' if per_channel else 'per-tensor'}"
    return CodeFragment(declarations, [_block(site, summary + _activation_text(site), body)])


# ---------------------------------------------------------------- elementwise

def _binary_shapes(site: _Site) -> tuple[tuple, tuple, tuple] | None:
    """The three 4D shapes when the op broadcasts, None when all shapes are equal."""
    a, b, y = site.shape(0), site.shape(1), site.shape(output=True)
    if a == b == y:
        return None
    return _nhwc(a, site), _nhwc(b, site), _nhwc(y, site)


def _named_ints(pairs: list[tuple[str, int]]) -> str:
    """`const int32_t a = 1, b = 2;`: names the bare integers a kernel call takes."""
    return "const int32_t " + ", ".join(f"{name} = {int(value)}" for name, value in pairs) + ";"


def _output_quant_lines(site: _Site, offset: int, multiplier: int, shift: int) -> list[str]:
    lo, hi = _activation(site)
    return [_named_ints([("out_offset", offset), ("out_mult", multiplier), ("out_shift", shift)]),
            _named_ints([("act_min", lo), ("act_max", hi)])]


def _elementwise(site: _Site, name: str, quant_lines: list[str], quant_args: list[str]) -> CodeFragment:
    """ADD/MUL: the CMSIS-NN kernel on equal shapes, the mcu_ broadcasting one otherwise."""
    a, b = (site.ref(n) for n in site.op.inputs[:2])
    out_args = ["out_offset", "out_mult", "out_shift", "act_min", "act_max"]
    shapes = _binary_shapes(site)
    if shapes is None:
        size = site.program.tensor(site.op.outputs[0]).size
        call = _call(f"arm_elementwise_{name}_s8", [a, b, *quant_args, site.y, *out_args, str(size)])
        return CodeFragment([], [_block(site, f"{size} elements" + _activation_text(site), quant_lines + [call])])
    dims = [f"const cmsis_nn_dims input_1_dims = {_dims(shapes[0])};",
            f"const cmsis_nn_dims input_2_dims = {_dims(shapes[1])};",
            f"const cmsis_nn_dims output_dims = {_dims(shapes[2])};"]
    call = _call(f"mcu_broadcast_{name}_s8", [a, "&input_1_dims", b, "&input_2_dims", *quant_args, site.y,
                                              "&output_dims", *out_args])
    return CodeFragment([], [_block(site, "broadcast" + _activation_text(site), quant_lines + dims + [call])])


def _add(site: _Site) -> CodeFragment:
    p = op_params.add_params(site.program, site.op)
    lines = [_named_ints([("in1_offset", p.input1_offset), ("in1_mult", p.input1_multiplier),
                          ("in1_shift", p.input1_shift)]),
             _named_ints([("in2_offset", p.input2_offset), ("in2_mult", p.input2_multiplier),
                          ("in2_shift", p.input2_shift)]),
             _named_ints([("left_shift", p.left_shift)]),
             *_output_quant_lines(site, p.output_offset, p.output_multiplier, p.output_shift)]
    args = ["in1_offset", "in1_mult", "in1_shift", "in2_offset", "in2_mult", "in2_shift", "left_shift"]
    return _elementwise(site, "add", lines, args)


def _mul(site: _Site) -> CodeFragment:
    p = op_params.mul_params(site.program, site.op)
    lines = [_named_ints([("in1_offset", p.input1_offset), ("in2_offset", p.input2_offset)]),
             *_output_quant_lines(site, p.output_offset, p.output_multiplier, p.output_shift)]
    return _elementwise(site, "mul", lines, ["in1_offset", "in2_offset"])


def _relu(site: _Site) -> CodeFragment:
    p = op_params.requant_params(site.program, site.op)
    lo, hi = op_params.activation_range("RELU", site.program.tensor(site.op.outputs[0]).quant)
    size = site.program.tensor(site.op.outputs[0]).size
    body = [_named_ints([("in_offset", p.input_offset)]),
            _named_ints([("out_offset", p.output_offset), ("out_mult", p.multiplier), ("out_shift", p.shift)]),
            _named_ints([("act_min", lo), ("act_max", hi)]),
            _call("mcu_relu_s8", [site.x, site.y, str(size), "in_offset", "out_offset", "out_mult", "out_shift",
                                  "act_min", "act_max"])]
    return CodeFragment([], [_block(site, "requantizing", body)])


def _relu6(site: _Site) -> CodeFragment:
    lo, hi = op_params.relu6_range(site.program, site.op)
    size = site.program.tensor(site.op.outputs[0]).size
    body = [_call("mcu_relu6_s8", [site.x, site.y, str(size), str(lo), str(hi)])]
    return CodeFragment([], [_block(site, f"clamp to [{lo}, {hi}]", body)])


# ---------------------------------------------------------------- pooling and softmax

def _pool(site: _Site, function: str, ctx: str) -> CodeFragment:
    o = site.op.options
    kernel = (o.get("filter_height", 1), o.get("filter_width", 1))
    pads = _padding(site, kernel, (1, 1))
    lo, hi = _activation(site)
    body = [
        ctx,
        "const cmsis_nn_pool_params pool_params = {"
        f".stride = {{.w = {o.get('stride_w', 1)}, .h = {o.get('stride_h', 1)}}},\n"
        f"    .padding = {{.w = {pads[1]}, .h = {pads[0]}}}, .activation = {{.min = {lo}, .max = {hi}}}}};",
        f"const cmsis_nn_dims input_dims = {_dims(site.shape())};",
        f"const cmsis_nn_dims filter_dims = {_dims((1, *kernel, 1))};",
        f"const cmsis_nn_dims output_dims = {_dims(site.shape(output=True))};",
        _call(function, ["&ctx", "&pool_params", "&input_dims", site.x, "&filter_dims", "&output_dims",
                         site.y]),
    ]
    return CodeFragment([], [_block(site, _window_text(site, kernel, pads) + _activation_text(site), body)])


def _max_pool_2d(site: _Site) -> CodeFragment:
    return _pool(site, "arm_max_pool_s8", "const cmsis_nn_context ctx = {NULL, 0};")


def _average_pool_2d(site: _Site) -> CodeFragment:
    size = scratch_bytes(site.program, site.op)
    return _pool(site, "arm_avgpool_s8", f"const cmsis_nn_context ctx = {{{site.scratch}, {size}}};")


def _softmax(site: _Site) -> CodeFragment:
    p = op_params.softmax_params(site.program, site.op)
    shape = site.shape()
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    body = [_named_ints([("beta_mult", p.input_multiplier), ("beta_left_shift", p.input_left_shift),
                         ("diff_min", p.diff_min)]),
            _call("arm_softmax_s8", [site.x, str(rows), str(shape[-1]), "beta_mult", "beta_left_shift", "diff_min",
                                     site.y])]
    summary = f"{rows} row(s) of {shape[-1]}, beta {site.op.options.get('beta', 1.0)}"
    return CodeFragment([], [_block(site, summary, body)])


# ---------------------------------------------------------------- data movement

def _reshape(site: _Site) -> CodeFragment:
    if site.x == site.y:
        return CodeFragment([], [])
    size = site.program.tensor(site.op.outputs[0]).nbytes
    # memmove: the planner may place the two buffers overlapping.
    body = [f"memmove({site.y}, {site.x}, {size});"]
    return CodeFragment([], [_block(site, "copy", body)])


def _const_ints(site: _Site, index: int) -> list[int]:
    t = site.program.tensor(site.op.inputs[index])
    if not t.is_const:
        raise site.unsupported(f"{site.op.kind} needs a constant {t.name!r}")
    return [int(v) for v in t.data.reshape(-1)]


def _transpose(site: _Site) -> CodeFragment:
    shape = site.shape()
    dims = _nhwc(shape, site)
    lead = 4 - len(shape)
    perm = list(range(lead)) + [p % len(shape) + lead for p in _const_ints(site, 1)]
    body = [f"const cmsis_nn_dims input_dims = {_dims(dims)};",
            f"const int32_t perm[4] = {{{', '.join(str(p) for p in perm)}}};",
            _call("mcu_transpose_s8", [site.x, "&input_dims", "perm", site.y])]
    return CodeFragment([], [_block(site, f"perm {_const_ints(site, 1)}", body)])


def _concatenation(site: _Site) -> CodeFragment:
    op, program = site.op, site.program
    quants = {(float(program.tensor(n).quant.scale[0]), site.zero_point(n)) for n in op.inputs + op.outputs}
    if len(quants) > 1:
        raise site.unsupported("CONCATENATION inputs and output must share one scale and zero point; "
                               "requantize the inputs first")
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise site.unsupported("CONCATENATION with a fused activation is not supported")
    y_shape = site.shape(output=True)
    axis = op.options.get("axis", 0) % len(y_shape)
    outer = int(np.prod(y_shape[:axis], dtype=np.int64))
    rows = [int(np.prod(program.tensor(n).shape[axis:], dtype=np.int64)) for n in op.inputs]
    body = [f"const int8_t *const inputs[{len(rows)}] = {{{', '.join(site.ref(n) for n in op.inputs)}}};",
            f"const int32_t row_sizes[{len(rows)}] = {{{', '.join(str(r) for r in rows)}}};",
            _call("mcu_concat_s8", ["inputs", "row_sizes", str(len(rows)), str(outer), site.y])]
    return CodeFragment([], [_block(site, f"axis {axis}", body)])


def _pad(site: _Site) -> CodeFragment:
    shape = site.shape()
    paddings = np.asarray(_const_ints(site, 1)).reshape(len(shape), 2)
    if np.any(paddings < 0):
        raise site.unsupported("PAD with negative padding is not supported")
    dims = _nhwc(shape, site)
    before = (0,) * (4 - len(shape)) + tuple(int(p) for p in paddings[:, 0])
    pad_value = site.zero_point(site.op.outputs[0])
    body = [f"const cmsis_nn_dims input_dims = {_dims(dims)};",
            f"const cmsis_nn_dims pad_before = {_dims(before)};",
            f"const cmsis_nn_dims output_dims = {_dims(_nhwc(site.shape(output=True), site))};",
            _call("mcu_pad_s8", [site.x, "&input_dims", "&pad_before", str(pad_value), "&output_dims", site.y])]
    return CodeFragment([], [_block(site, f"paddings {paddings.tolist()}, value {pad_value}", body)])


# ---------------------------------------------------------------- NPU partitions

NPU_DEVICE = "npu_device"  # the mcu_npu_device model.c defines from the board's [npu]


def _ethos_u(site: _Site) -> CodeFragment:
    """An Ethos-U partition (delegate.py): the COP2 command stream as a const array in the
    NPU's constant region, and one job whose region bases are the planned buffers
    themselves: 0 read-only data, 1 scratch, 2 fast scratch, 3 input, 4 output, with each
    region's bytes (what a co-simulating host reads and writes back, cosim.py)."""
    op = site.op
    payload = op.options["cop2_payload"]
    name = f"{site.uid}_command_stream"
    rows = [", ".join(f"0x{b:02x}" for b in payload[i:i + 16]) for i in range(0, len(payload), 16)]
    body = ",\n    ".join(rows)
    declaration = (f"/* NPU partition {op.options['partition']}: Vela's COP2 command stream, {len(payload)} B */\n"
                   f"static const uint8_t {name}[{len(payload)}] "
                   f"__attribute__((section(\"{op.options['const_section']}\"), aligned(16))) = {{\n    {body}\n}};")
    _, read_only, scratch, fast, ifm = op.inputs[:5]
    regions = (read_only, scratch, fast, ifm, op.outputs[0])
    bases = ", ".join(f"(uintptr_t){site.ref(n)}" for n in regions)
    sizes = ", ".join(f"{site.program.tensor(n).nbytes}u" for n in regions)
    lines = [
        f"const uintptr_t base[5] = {{{bases}}};",
        f"const uint32_t bytes[5] = {{{sizes}}};",
        "/* The NPU reads and writes memory the CPU may hold in its D-cache: the span over",
        "   scratch, input and output (regions 1-4) is cleaned before the job and invalidated after. */",
        "uintptr_t lo = base[1], hi = base[1] + bytes[1];",
        "for (int r = 2; r < 5; r++)",
        "{",
        "    lo = base[r] < lo ? base[r] : lo;",
        "    hi = base[r] + bytes[r] > hi ? base[r] + bytes[r] : hi;",
        "}",
        "const mcu_npu_job job = {",
        f"    .payload = {name}, .payload_bytes = {len(payload)},",
        "    .region_base = {base[0], base[1], base[2], base[3], base[4]},",
        "    .clean_start = (const void *)lo, .clean_bytes = (uint32_t)(hi - lo),",
        "    .invalidate_start = (void *)lo, .invalidate_bytes = (uint32_t)(hi - lo),",
        "    .region_bytes = {bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]}};",
        f"mcu_npu_check(mcu_npu_run(&{NPU_DEVICE}, &job));",
    ]
    summary = (f"{len(payload)} B command stream, {site.program.tensor(read_only).nbytes} B read-only, "
               f"{site.program.tensor(scratch).nbytes} B scratch, Vela estimate {op.options['npu_cycles']} NPU cycles")
    return CodeFragment([declaration], [_block(site, summary, lines)])


_EMITTERS: dict[str, Callable[[_Site], CodeFragment]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _add,
    "MUL": _mul,
    "MAX_POOL_2D": _max_pool_2d,
    "AVERAGE_POOL_2D": _average_pool_2d,
    "SOFTMAX": _softmax,
    "RESHAPE": _reshape,
    "TRANSPOSE": _transpose,
    "CONCATENATION": _concatenation,
    "PAD": _pad,
    "RELU": _relu,
    "RELU6": _relu6,
    "ETHOS_U": _ethos_u,
}

SUPPORTED_OPS: frozenset[str] = frozenset(_EMITTERS)


def scratch_bytes(program: Program, op: Op) -> int:
    """Kernel scratch for the op, as its *_get_buffer_size() computes it (0 if none)."""
    if op.kind == "CONV_2D":
        _, kh, kw, in_ch = program.tensor(op.inputs[1]).shape
        return 2 * in_ch * kh * kw * 2  # two im2col columns of int16
    if op.kind == "AVERAGE_POOL_2D":
        return program.tensor(op.inputs[0]).shape[-1] * 4  # one int32 sum per channel
    return 0


def emit_op(program: Program, op: Op, ref: Ref, scratch: str | None, uid: str) -> CodeFragment:
    """C declarations and statements running `op` (see the module docstring)."""
    emitter = _EMITTERS.get(op.kind)
    if emitter is None:
        raise UnsupportedOpError(f"{op.source or op.kind}: no C kernel for {op.kind}; "
                                 f"supported: {', '.join(sorted(SUPPORTED_OPS))}")
    if scratch is None and scratch_bytes(program, op):
        raise ValueError(f"{op.kind} needs {scratch_bytes(program, op)} B of scratch but none was planned")
    return emitter(_Site(program, op, ref, scratch, uid))
