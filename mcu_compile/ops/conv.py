"""Weighted ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, and CONV_2D_ADD,
a convolution with a residual addition fused into its epilogue (firmware only, made by
passes/fuse.py).

Inputs: x (NHWC int8), weights (int8; conv OHWI, depthwise 1HW(C*M), FC OI), bias
(int32 or ""), and for CONV_2D_ADD the residual. Weights are per output channel.
TRANSPOSE_CONV's inputs are TFLite's: the output shape (int32 constant), weights (OHWI,
zero point 0), x, and an optional bias; its padding is the one a convolution from its
output back to its input would have.
A pad op folded into a convolution (passes/fuse.py) sets `explicit_padding` to
[top, left, bottom, right]; the op's padding stays VALID.
"""
from __future__ import annotations

import numpy as np

from ..codegen import c_text as c
from ..errors import IRError
from ..ir.program import Op, Program
from . import common, elementwise, params
from .registry import OpKind, TfliteForm, register

_CONV_FIELDS = {**common.WINDOW, "dilation_h_factor": 1, "dilation_w_factor": 1, **common.FUSED}


# ---------------------------------------------------------------- shapes and parameters

def _conv_channels(program: Program, op: Op) -> int:
    return common.shape(program, op, 1)[0]


def _depthwise_channels(program: Program, op: Op) -> int:
    return common.shape(program, op, 1)[3]


def _window_shapes(channels):
    def shapes(program: Program, op: Op):
        n = common.shape(program, op)[0]
        return [(n, *common.window_output_hw(program, op, common.shape(program, op, 1)[1:3]), channels(program, op))]
    return shapes


def _fc_shapes(program: Program, op: Op):
    x, (out_ch, depth) = program.tensor(op.inputs[0]), common.shape(program, op, 1)
    keep = op.options.get("keep_num_dims")
    if x.shape[-1] != depth if keep else depth and x.size % depth:
        raise IRError(f"{op.kind} {op.source or op.outputs[0]!r}: input {x.shape} does not split into rows of "
                      f"the weights' depth {depth}" + (" (keep_num_dims: its last axis)" if keep else ""))
    if keep:
        return [(*x.shape[:-1], out_ch)]
    return [(x.size // depth if depth else 0, out_ch)]


def _as_conv(op: Op) -> Op:
    """A TRANSPOSE_CONV with the inputs in a convolution's order (x, weights, bias), for the
    per-channel requantization and the kernel call the convolutions share."""
    return Op(op.kind, [op.inputs[2], op.inputs[1], *op.inputs[3:]], op.outputs, op.options, op.target, op.source)


def _transpose_conv_shapes(program: Program, op: Op):
    where = f"{op.kind} {op.source or op.outputs[0]!r}"
    shape_input = program.tensor(op.inputs[0])
    out = [int(d) for d in shape_input.data.reshape(-1)] if shape_input.dtype == "int32" else []
    x, w = common.shape(program, op, 2), common.shape(program, op, 1)
    if len(out) != 4 or min(out) < 1 or len(x) != 4 or len(w) != 4:
        raise IRError(f"{where}: needs an int32 output shape of 4 positive sizes, a 4-D NHWC input and OHWI "
                      f"weights, not {out or shape_input.dtype}, {x} and {w}")
    if out[0] != x[0] or out[3] != w[0] or x[3] != w[3]:
        raise IRError(f"{where}: output shape {out}, input {x} and weights {w} disagree on the batch or channels")
    strides, _, padding = common.window_options(op)
    if min(strides) < 1:
        raise IRError(f"{where}: strides {strides} must be positive")
    for axis, (size, k, s, in_size) in enumerate(zip(out[1:3], w[1:3], strides, x[1:3])):
        if params.window(size, k, s, 1, padding).out != in_size:
            raise IRError(f"{where}: a {padding} {k}-tap stride-{s} window over output size {size} gives "
                          f"{params.window(size, k, s, 1, padding).out} positions, not the input's {in_size} "
                          f"(axis {axis + 1})")
    return [tuple(out)]


def _transpose_conv_pads(program: Program, op: Op) -> tuple[int, int]:
    _, out_h, out_w, _ = program.tensor(op.outputs[0]).shape
    strides, _, padding = common.window_options(op)
    return tuple(params.window(size, k, s, 1, padding).pad_before
                 for size, k, s in zip((out_h, out_w), common.shape(program, op, 1)[1:3], strides))


def _transpose_conv_check(program: Program, op: Op) -> None:
    x, w = (program.tensor(op.inputs[i]) for i in (2, 1))
    bias = program.tensor(op.inputs[3]) if len(op.inputs) > 3 and op.inputs[3] else None
    if x.dtype != "int8" or (bias is not None and bias.dtype != "int32"):
        raise common.unsupported(op, f"TRANSPOSE_CONV needs an int8 input and an int32 bias, not {x.dtype} "
                                     f"and {'none' if bias is None else bias.dtype}")
    if np.any(w.quant.zero_point != 0):
        raise common.unsupported(op, "TRANSPOSE_CONV weights with a nonzero zero point are not supported; "
                                     "quantize the weights symmetrically")


def _transpose_conv_scratch(program: Program, op: Op) -> int:
    return 4 * program.tensor(op.outputs[0]).size  # one int32 accumulator per output value


def _requant_tables(channels):
    def table_bytes(program: Program, op: Op) -> int:
        return 8 * channels(program, op)  # one int32 multiplier and one shift per output channel
    return table_bytes


def _conv_check(program: Program, op: Op) -> None:
    x_channels, w_channels = common.shape(program, op)[3], common.shape(program, op, 1)[3]
    if w_channels != x_channels:
        raise common.unsupported(op, f"grouped {op.kind} (input channels {x_channels}, filter {w_channels}) "
                                "is not supported")


def _fc_check(program: Program, op: Op) -> None:
    w_zp = program.tensor(op.inputs[1]).quant.zero_point
    if np.any(w_zp != w_zp[0]):
        raise common.unsupported(op, f"{op.kind} weights with per-channel zero points are not supported; "
                                "quantize the weights symmetrically")


def _conv_scratch(program: Program, op: Op) -> int:
    _, kh, kw, in_ch = common.shape(program, op, 1)
    return 2 * in_ch * kh * kw * 2  # two im2col columns of int16


def _conv_add_direct(program: Program, op: Op) -> bool:
    """CONV_2D_ADD with a 1x1 filter whose every output pixel reads an input pixel (no
    padding before, none reached after): mcu_convolve_add_s8 dots the rows with the input
    directly and needs no scratch (the kernel makes the same choice from the same shapes)."""
    _, kh, kw, _ = common.shape(program, op, 1)
    if (kh, kw) != (1, 1):
        return False
    o = op.options
    in_hw, out_hw = common.shape(program, op)[1:3], program.tensor(op.outputs[0]).shape[1:3]
    strides = (o.get("stride_h", 1), o.get("stride_w", 1))
    return _leading_pads(program, op) == (0, 0) and all((out - 1) * st < size for out, st, size in zip(out_hw, strides, in_hw))


def _conv_add_scratch(program: Program, op: Op) -> int:
    """CONV_2D_ADD: none for a direct 1x1; else the convolution's scratch and one output row
    (the kernel convolves a row into it, then adds it to the residual's row)."""
    if _conv_add_direct(program, op):
        return 0
    _, _, out_w, out_ch = program.tensor(op.outputs[0]).shape
    return _conv_scratch(program, op) + out_w * out_ch


# ---------------------------------------------------------------- reference kernels (TFLM's Eval)

def _bias(args: list) -> np.ndarray | int:
    return args[2].astype(np.int64) if len(args) > 2 and args[2] is not None else 0


def conv_2d(program: Program, op: Op, args: list) -> np.ndarray:
    _conv_check(program, op)
    x, w = args[0], args[1]
    _, zp_in = common.quant(program, op.inputs[0])
    # Zero padding after removing the zero point adds nothing, as TFLite skips out-of-bounds taps.
    patches = common.window_patches(x.astype(np.int64) - zp_in, op, w.shape[1:3], 0)
    cols = np.concatenate(patches, axis=-1)  # [N, OH, OW, KH*KW*C], tap-major like OHWI
    acc = common.int_matmul(cols, w.reshape(w.shape[0], -1).T) + _bias(args)
    return common.requantize(acc, *params.per_channel_requant(program, op, w.shape[0]), program, op)


def depthwise_conv_2d(program: Program, op: Op, args: list) -> np.ndarray:
    x, w = args[0], args[1]
    _, zp_in = common.quant(program, op.inputs[0])
    multiplier = w.shape[3] // x.shape[3]  # as TFLite, trust the shapes over depth_multiplier
    # Output channel c*M + m reads input channel c.
    xr = np.repeat(x.astype(np.int64) - zp_in, multiplier, axis=-1)
    patches = common.window_patches(xr, op, w.shape[1:3], 0)
    taps = w.reshape(-1, w.shape[3]).astype(np.int64)
    acc = sum(p * tap for p, tap in zip(patches, taps)) + _bias(args)
    return common.requantize(acc, *params.per_channel_requant(program, op, w.shape[3]), program, op)


def fully_connected(program: Program, op: Op, args: list) -> np.ndarray:
    x, w = args[0], args[1]
    _, zp_in = common.quant(program, op.inputs[0])
    w_zp = program.tensor(op.inputs[1]).quant.zero_point
    wz = w.astype(np.int64) - (w_zp[:, None] if w_zp.size > 1 else w_zp[0])
    acc = common.int_matmul(x.reshape(-1, w.shape[1]).astype(np.int64) - zp_in, wz.T) + _bias(args)
    return common.requantize(acc, *params.per_channel_requant(program, op, w.shape[0]), program, op)


def transpose_conv(program: Program, op: Op, args: list) -> np.ndarray:
    """TFLM's scatter: input pixel (iy, ix) adds to the output pixels (iy * s - pad + ky,
    ix * s - pad + kx); here each tap's products land in a buffer wide enough for all taps,
    of which the output is the window from the padding on."""
    _transpose_conv_check(program, op)
    conv_args = [args[2], args[1], *args[3:]]
    x, w = conv_args[0], conv_args[1]
    _, zp_in = common.quant(program, op.inputs[2])
    (sh, sw), _, _ = common.window_options(op)
    (ph, pw), (n, oh, ow, oc) = _transpose_conv_pads(program, op), program.tensor(op.outputs[0]).shape
    _, ih, iw, _ = x.shape
    _, kh, kw, _ = w.shape
    full = np.zeros((n, max((ih - 1) * sh + kh, ph + oh), max((iw - 1) * sw + kw, pw + ow), oc), dtype=np.int64)
    xz = x.astype(np.int64) - zp_in
    for ky in range(kh):
        for kx in range(kw):
            full[:, ky:ky + (ih - 1) * sh + 1:sh, kx:kx + (iw - 1) * sw + 1:sw] += common.int_matmul(xz, w[:, ky, kx].T)
    acc = full[:, ph:ph + oh, pw:pw + ow] + _bias(conv_args)
    return common.requantize(acc, *params.per_channel_requant(program, _as_conv(op), oc), program, op)


# ---------------------------------------------------------------- C emitters

def _per_channel(site: c.Site, channels: int) -> list[str]:
    return c.per_channel_tables(site, *params.per_channel_requant(site.program, site.op, channels))


def _emit_conv_2d(site: c.Site) -> c.CodeFragment:
    context = f"{{{site.scratch}, {_conv_scratch(site.program, site.op)}}}"
    return _convolution(site, "mcu_convolve_s8", "mcu_nn_conv_params conv_params", "", context,
                        out_channels=site.shape(1)[0], extra_summary="")


def _emit_conv_2d_add(site: c.Site) -> c.CodeFragment:
    """The convolution's parameters come from its own (never stored) output tensor,
    the addition's from add(conv output, residual) -> the op's output."""
    op = site.op
    conv_output, residual, out = op.options["conv_output"], op.inputs[3], op.outputs[0]
    add_activation = op.options.get("add_fused_activation_function", "NONE")
    conv_options = {k: v for k, v in op.options.items() if k in _CONV_FIELDS or k == "explicit_padding"}
    conv_op = Op(op.kind, op.inputs[:3], [conv_output], conv_options, op.target, op.source)
    quants = [site.program.tensor(n).quant for n in (conv_output, residual, out)]
    p = elementwise.add_params_for(*quants)
    lo, hi = params.activation_range(add_activation, quants[2])
    add_quant = (f"const mcu_add_quant add_quant = {{{p.input1_offset}, {p.input1_multiplier}, "
                 f"{p.input1_shift}, {p.input2_offset}, {p.input2_multiplier}, {p.input2_shift},\n"
                 f"    {p.left_shift}, {p.output_offset}, {p.output_multiplier}, {p.output_shift}, {lo}, {hi}}};")
    conv_site = c.Site(site.program, conv_op, lambda n: site.ref(out if n == conv_output else n),
                       site.scratch, site.uid, site.index)
    scratch = _conv_add_scratch(site.program, op)
    context = f"{{{site.scratch}, {scratch}}}" if scratch else "{NULL, 0}"
    added = f", + residual {residual}" + (f" then {add_activation}" if add_activation != "NONE" else "")
    return _convolution(conv_site, "mcu_convolve_add_s8", "mcu_nn_conv_params conv_params", "", context,
                        out_channels=site.shape(1)[0], extra_summary=added,
                        residual=(add_quant, site.ref(residual)))


def _emit_depthwise_conv_2d(site: c.Site) -> c.CodeFragment:
    ch_mult = site.shape(1)[3] // site.shape(0)[3]  # as TFLite, the shapes decide, not depth_multiplier
    return _convolution(site, "mcu_depthwise_conv_s8", "mcu_nn_dw_conv_params dw_conv_params",
                        f" .ch_mult = {ch_mult},", "{NULL, 0}", out_channels=site.shape(1)[3],
                        extra_summary=f", depth multiplier {ch_mult}")


def _emit_transpose_conv(site: c.Site) -> c.CodeFragment:
    conv_site = c.Site(site.program, _as_conv(site.op), site.ref, site.scratch, site.uid, site.index)
    context = f"{{{site.scratch}, {_transpose_conv_scratch(site.program, site.op)}}}"
    return _convolution(conv_site, "mcu_transpose_conv_s8", "mcu_nn_conv_params conv_params", "", context,
                        out_channels=site.shape(1)[0], extra_summary=", transposed",
                        pads=_transpose_conv_pads(site.program, site.op))


def _emit_depthwise_in_place(site: c.Site) -> c.CodeFragment:
    """The in-place kernel when the planner put the output over the input, which it does
    whenever it can (storage "overwrite"); else the usual one."""
    if site.x != site.y:
        return _emit_depthwise_conv_2d(site)
    context = f"{{{site.scratch}, {_dw_in_place_scratch(site.program, site.op)}}}"
    return _convolution(site, "mcu_depthwise_conv_in_place_s8", "mcu_nn_dw_conv_params dw_conv_params",
                        " .ch_mult = 1,", context, out_channels=site.shape(1)[3],
                        extra_summary=", in place over its input", in_place=True)


def _dw_in_place_scratch(program: Program, op: Op) -> int:
    """A ring of pad_top + 1 input rows (mcu_depthwise_conv_in_place_s8_get_buffer_size)."""
    _, _, w, ch = common.shape(program, op)
    return (_leading_pads(program, op)[0] + 1) * w * ch


def _leading_pads(program: Program, op: Op) -> tuple[int, int]:
    """(top, left) padding of a convolution."""
    (top, _), (left, _) = common.window_padding(program, op, common.shape(program, op, 1)[1:3])
    return top, left


def in_place_depthwise_ok(program: Program, op: Op) -> bool:
    """Whether mcu_depthwise_conv_in_place_s8 runs the op: stride 1, multiplier 1, the
    output the input's shape, a filter at most MCU_DW_IN_PLACE_MAX_KH rows tall."""
    if op.kind != "DEPTHWISE_CONV_2D":
        return False
    o, w = op.options, common.shape(program, op, 1)
    return (o.get("stride_h", 1) == 1 and o.get("stride_w", 1) == 1
            and program.tensor(op.outputs[0]).shape == common.shape(program, op) and w[3] == common.shape(program, op)[3]
            and w[1] <= DW_IN_PLACE_MAX_KH)


DW_IN_PLACE_MAX_KH = 16  # MCU_DW_IN_PLACE_MAX_KH in mcu_nnfunctions.h


def _convolution(site: c.Site, kernel: str, params_decl: str, extra_params: str, context: str,
                 out_channels: int, extra_summary: str, residual: tuple[str, str] | None = None,
                 pads: tuple[int, int] | None = None, in_place: bool = False) -> c.CodeFragment:
    """The call of a convolution kernel (regular, depthwise, transposed, or with a fused
    residual add: residual = (the mcu_add_quant declaration, the residual's pointer)): all
    take the same context, quantization, dims and window parameters. pads: the leading
    padding when not the input's SAME/VALID one (a transposed convolution's). in_place: the
    kernel takes one map (dims, data) for input and output."""
    o = site.op.options
    x_shape, w_shape, y_shape = site.shape(0), site.shape(1), site.shape(output=True)
    dilation = (o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1))
    pads = c.padding(site, w_shape[1:3]) if pads is None else pads
    lo, hi = c.activation(site)
    params_name = params_decl.split()[-1]
    body = [
        f"const mcu_nn_context ctx = {context};",
        f"const {params_decl} = {{"
        f".input_offset = {-site.zero_point(site.op.inputs[0])}, "
        f".output_offset = {site.zero_point(site.op.outputs[0])},{extra_params}\n"
        f"    .stride = {{.w = {o.get('stride_w', 1)}, .h = {o.get('stride_h', 1)}}}, "
        f".padding = {{.w = {pads[1]}, .h = {pads[0]}}},\n"
        f"    .dilation = {{.w = {dilation[1]}, .h = {dilation[0]}}}, "
        f".activation = {{.min = {lo}, .max = {hi}}}}};",
        c.quant_params_line(site),
        f"const mcu_nn_dims input_dims = {c.dims(x_shape)};",
        f"const mcu_nn_dims filter_dims = {c.dims(w_shape)};",
    ]
    if in_place:
        body.append(c.checked_call(site, kernel, ["&ctx", f"&{params_name}", "&quant_params", "&input_dims",
                                                  "&filter_dims", site.ref(site.op.inputs[1]), c.bias_ref(site),
                                                  site.y]))
        summary = c.window_text(site, w_shape[1:3], pads) + extra_summary
        return c.CodeFragment(_per_channel(site, out_channels),
                              [c.block(site, summary + c.activation_text(site), body)])
    body += [f"const mcu_nn_dims bias_dims = {c.dims((1, 1, 1, out_channels))};",
             f"const mcu_nn_dims output_dims = {c.dims(y_shape)};"]
    residual_args = []
    if residual is not None:
        body.append(residual[0])
        residual_args = ["&add_quant", residual[1]]
    body.append(c.checked_call(site, kernel, ["&ctx", f"&{params_name}", "&quant_params", "&input_dims", site.x,
                                              "&filter_dims", site.ref(site.op.inputs[1]), "&bias_dims",
                                              c.bias_ref(site), *residual_args, "&output_dims", site.y]))
    summary = c.window_text(site, w_shape[1:3], pads) + extra_summary
    if dilation != (1, 1):
        summary += f", dilation {dilation[0]}x{dilation[1]}"
    return c.CodeFragment(_per_channel(site, out_channels),
                          [c.block(site, summary + c.activation_text(site), body)])


def _emit_fully_connected(site: c.Site) -> c.CodeFragment:
    w = site.program.tensor(site.op.inputs[1])
    out_ch, depth = w.shape
    batches = site.program.tensor(site.op.inputs[0]).size // depth
    w_zp = w.quant.zero_point
    lo, hi = c.activation(site)
    multipliers, shifts = params.per_channel_requant(site.program, site.op, out_ch)
    per_channel = len(set(zip(multipliers.tolist(), shifts.tolist()))) > 1
    # the input offset's products with each weight row, folded per output channel
    acc_init = c.int_array(f"{site.uid}_acc_init", fc_acc_init(site.program, site.op))
    if per_channel:
        declarations = c.per_channel_tables(site, multipliers, shifts)
        quant_line, function = c.quant_params_line(site), "mcu_fully_connected_per_channel_s8"
    else:
        declarations = []
        quant_line = (f"const mcu_nn_per_tensor_quant_params quant_params = "
                      f"{{{int(multipliers[0])}, {int(shifts[0])}}};")
        function = "mcu_fully_connected_s8"
    body = [
        "const mcu_nn_context ctx = {NULL, 0};",
        f"const mcu_nn_fc_params fc_params = {{.input_offset = {-site.zero_point(site.op.inputs[0])}, "
        f".filter_offset = {-int(w_zp[0])},\n"
        f"    .output_offset = {site.zero_point(site.op.outputs[0])}, "
        f".activation = {{.min = {lo}, .max = {hi}}}}};",
        quant_line,
        f"const mcu_nn_dims input_dims = {c.dims((batches, 1, 1, depth))};",
        f"const mcu_nn_dims filter_dims = {c.dims((depth, 1, 1, out_ch))};",
        f"const mcu_nn_dims bias_dims = {c.dims((1, 1, 1, out_ch))};",
        f"const mcu_nn_dims output_dims = {c.dims((batches, 1, 1, out_ch))};",
        c.checked_call(site, function, ["&ctx", "&fc_params", "&quant_params", "&input_dims", site.x, "&filter_dims",
                                        site.ref(site.op.inputs[1]), "&bias_dims", c.bias_ref(site),
                                        f"{site.uid}_acc_init", "&output_dims", site.y]),
    ]
    summary = f"{batches}x{depth} -> {out_ch}, {'per-channel' if per_channel else 'per-tensor'}"
    return c.CodeFragment(declarations + [acc_init], [c.block(site, summary + c.activation_text(site), body)])


def _fc_tables(program: Program, op: Op) -> int:
    return 12 * _conv_channels(program, op)  # multiplier, shift and folded acc_init per output channel


def fc_acc_init(program: Program, op: Op) -> np.ndarray:
    """FULLY_CONNECTED's input-offset part of each accumulator, folded for the kernel:
    input_offset * sum_i (w[oc][i] + filter_offset), in int32 arithmetic that wraps as the
    kernel's own sums do (the total is exact whenever the accumulator fits in int32). The
    bias is not folded in: it stays the layer's own constant (the weights in flash are the
    model's, as the budget report counts them) and the kernel adds it."""
    w = program.tensor(op.inputs[1])
    io = -common.quant(program, op.inputs[0])[1]
    fo = -int(w.quant.zero_point[0])
    folded = io * (w.data.reshape(w.shape[0], -1).astype(np.int64).sum(axis=1) + fo * w.shape[1])
    return (folded + (1 << 31)) % (1 << 32) - (1 << 31)


# ---------------------------------------------------------------- the kinds

def _input_zero_point(program: Program, op: Op) -> int:
    return common.quant(program, op.inputs[0])[1]


register(
    OpKind("CONV_2D", _window_shapes(_conv_channels), conv_2d, _emit_conv_2d, inputs=(2, 3), const_inputs=(1, 2),
           tflite=TfliteForm("Conv2DOptions", _CONV_FIELDS), scratch_bytes=_conv_scratch, label="conv",
           check=_conv_check, table_bytes=_requant_tables(_conv_channels), folded_pad_value=_input_zero_point,
           residual_add_kind="CONV_2D_ADD"),
    OpKind("CONV_2D_ADD", _window_shapes(_conv_channels), None, _emit_conv_2d_add, None, inputs=(4, 4),
           const_inputs=(1, 2),
           scratch_bytes=_conv_add_scratch, storage="overwrite", overwritable=(3,), label="conv+add",
           check=_conv_check, table_bytes=_requant_tables(_conv_channels)),
    OpKind("DEPTHWISE_CONV_2D", _window_shapes(_depthwise_channels), depthwise_conv_2d, _emit_depthwise_conv_2d,
           inputs=(2, 3), const_inputs=(1, 2), label="dwconv",
           tflite=TfliteForm("DepthwiseConv2DOptions", {**_CONV_FIELDS, "depth_multiplier": 1}, zero_bias_dim=3),
           table_bytes=_requant_tables(_depthwise_channels), folded_pad_value=_input_zero_point),
    # a depthwise convolution the memory planner may run over its input (passes/in_place.py)
    OpKind("DEPTHWISE_CONV_2D_IN_PLACE", _window_shapes(_depthwise_channels), depthwise_conv_2d,
           _emit_depthwise_in_place, inputs=(2, 3), const_inputs=(1, 2), label="dwconv in place",
           scratch_bytes=_dw_in_place_scratch, storage="overwrite", overwritable=(0,),
           table_bytes=_requant_tables(_depthwise_channels)),
    OpKind("FULLY_CONNECTED", _fc_shapes, fully_connected, _emit_fully_connected, inputs=(2, 3), const_inputs=(1, 2),
           tflite=TfliteForm("FullyConnectedOptions", {**common.FUSED, "keep_num_dims": False}), label="fc",
           check=_fc_check, table_bytes=_fc_tables),
    OpKind("TRANSPOSE_CONV", _transpose_conv_shapes, transpose_conv, _emit_transpose_conv, inputs=(3, 4),
           const_inputs=(0, 1, 3), tflite=TfliteForm("TransposeConvOptions", {**common.WINDOW, **common.FUSED}),
           scratch_bytes=_transpose_conv_scratch, label="tconv", int8_input=False, check=_transpose_conv_check,
           table_bytes=_requant_tables(_conv_channels)),
)
