"""Stage 1, export: a user's model -> torch.export ExportedProgram (ATen ops).

Checks that every op is one mcu-compile can lower before any time is spent on
quantization, so an unsupported op fails in seconds with its source line.
"""
from __future__ import annotations

import operator
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InputError, UnsupportedOpError
from .aten_ops import FOLDED_ATEN_OPS, aten_name, aten_ops, supported_list


def export(model, example_inputs: tuple) -> torch.export.ExportedProgram:
    """nn.Module, ExportedProgram or a .pt2 path -> ExportedProgram."""
    if isinstance(model, (str, Path)):
        model = _load_pt2(Path(model))
    if isinstance(model, torch.export.ExportedProgram):
        exported = model
    elif isinstance(model, torch.nn.Module):
        example_inputs = tuple(example_inputs)
        was_training = model.training
        try:
            exported = torch.export.export(model.eval(), example_inputs)
        except Exception as err:  # torch's own message is long; keep its first line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"torch.export could not trace the model: {first} "
                             f"(check example_inputs match forward()'s arguments)") from err
        finally:
            model.train(was_training)  # the user's module is left as it was given
    else:
        raise InputError(f"model must be an nn.Module, an ExportedProgram or a path to a .pt2/.tflite "
                         f"file, not {type(model).__name__}")
    check_uses(exported)
    exported = decompose(exported)
    check_supported(exported)
    return exported


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    """(x - mean) * rsqrt(variance + eps) * weight + bias over the normalized dims, from ops
    the quantizer gives their own scales (so its accuracy is measured, not assumed)."""
    dims = list(range(-len(normalized_shape), 0))
    centred = x - x.mean(dims, keepdim=True)
    out = centred * torch.rsqrt((centred * centred).mean(dims, keepdim=True) + eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def _split_with_sizes(x, sizes, dim=0):
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [torch.ops.aten.slice.Tensor(x, dim, start, start + size) for start, size in zip(starts, sizes)]


def _split(x, size, dim=0):
    length = x.shape[dim]
    return [torch.ops.aten.slice.Tensor(x, dim, start, min(start + size, length)) for start in range(0, length, size)]


def _chunk(x, chunks, dim=0):
    """torch.chunk: parts of ceil(size / chunks), the last one shorter (so maybe fewer parts)."""
    return _split(x, -(-x.shape[dim] // chunks), dim)


def _time_steps(input, batch_first: bool) -> list:
    return [input[:, t] if batch_first else input[t] for t in range(input.shape[1 if batch_first else 0])]


def _gru_cell(x, state, w_ih, w_hh, b_ih, b_hh):
    """One GRU step: two linears, sigmoid and tanh gates (256-entry tables in firmware),
    elementwise updates."""
    (h,) = state
    hidden = w_hh.shape[1]
    gi, gh = F.linear(x, w_ih, b_ih), F.linear(h, w_hh, b_hh)
    r = torch.sigmoid(gi[:, :hidden] + gh[:, :hidden])
    z = torch.sigmoid(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
    n = torch.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
    return (n + z * (h - n),)


def _lstm_cell(x, state, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step, as _gru_cell."""
    h, c = state
    hidden = w_hh.shape[1]
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    i, f = torch.sigmoid(gates[:, :hidden]), torch.sigmoid(gates[:, hidden:2 * hidden])
    g, o = torch.tanh(gates[:, 2 * hidden:3 * hidden]), torch.sigmoid(gates[:, 3 * hidden:])
    c = f * c + i * g
    return o * torch.tanh(c), c


def _unrolled(cell, initial_states):
    """aten.gru/aten.lstm unrolled over the fixed sequence length, every layer and direction:
    layer l, direction d uses params[(2l + d) * k ...] (k: 4 tensors with biases, else 2) and
    initial state index 2l + d; a reverse direction walks the steps backwards, and the layer's
    output per step is the directions' outputs concatenated (what the next layer reads)."""
    def run(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
        directions, per = (2 if bidirectional else 1), (4 if has_biases else 2)
        steps, finals = _time_steps(input, batch_first), []
        for layer in range(num_layers):
            per_direction = []
            for d in range(directions):
                k = layer * directions + d
                w_ih, w_hh, b_ih, b_hh = (*params[k * per:(k + 1) * per], None, None)[:4]
                state, outputs = initial_states(hx, k), []
                for x in (steps if d == 0 else steps[::-1]):
                    state = cell(x, state, w_ih, w_hh, b_ih, b_hh)
                    outputs.append(state[0])
                per_direction.append(outputs if d == 0 else outputs[::-1])
                finals.append(state)
            steps = [torch.cat(out, -1) if directions > 1 else out[0] for out in zip(*per_direction)]
        axis = 1 if batch_first else 0
        output = torch.cat([h.unsqueeze(axis) for h in steps], axis)
        return (output, *(torch.cat([s[i].unsqueeze(0) for s in finals], 0) for i in range(len(finals[0]))))
    return run


_gru = _unrolled(_gru_cell, lambda hx, k: (hx[k],))
_lstm = _unrolled(_lstm_cell, lambda hx, k: (hx[0][k], hx[1][k]))


def plain_pool_window(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) when PyTorch's adaptive windows over `size` into `out` (window i from
    floor(i * size / out) to ceil((i + 1) * size / out)) are a plain pool's: all as long and
    evenly spaced (so TFLite's VALID places them); None otherwise (e.g. 5 into 3: 2, 3, 2)."""
    starts = [i * size // out for i in range(out)]
    lengths = {-(-(i + 1) * size // out) - start for i, start in enumerate(starts)}
    steps = {b - a for a, b in zip(starts, starts[1:])} or lengths
    return (min(lengths), min(steps)) if len(lengths) == len(steps) == 1 else None


def adaptive_pool_window(name: str, in_hw, output_size) -> tuple[list[int], list[int]]:
    """(kernel, stride) of an adaptive 2-D pool from in_hw to output_size (None keeps a size),
    refused in one line when its windows are not a plain pool's."""
    out = [o or size for o, size in zip(list(output_size) * (3 - len(output_size)), in_hw)]
    windows = [plain_pool_window(size, o) for size, o in zip(in_hw, out)]
    if None in windows:
        raise UnsupportedOpError(
            f"{name} from {in_hw[0]}x{in_hw[1]} to {out[0]}x{out[1]} needs windows of unequal sizes; use an "
            f"output size whose windows are alike (one that divides {in_hw[0]}x{in_hw[1]}), or pad or crop "
            f"the input to a multiple of {out[0]}x{out[1]}")
    return [w[0] for w in windows], [w[1] for w in windows]


def _adaptive_max_pool2d(x, output_size):
    """An adaptive max pool whose windows are a plain pool's (check_uses refused the others
    and any use of its indices): max_pool2d; the indices, never read, are left unset."""
    kernel, stride = adaptive_pool_window("adaptive_max_pool2d", tuple(x.shape[-2:]), output_size)
    pooled = torch.ops.aten.max_pool2d.default(x, kernel, stride)
    return pooled, torch.zeros(pooled.shape, dtype=torch.int64)


ADAPTIVE_POOLS = {torch.ops.aten.adaptive_max_pool2d.default: "adaptive_max_pool2d",
                  torch.ops.aten.adaptive_avg_pool2d.default: "adaptive_avg_pool2d"}


def _use_problem(node) -> str | None:
    """Why this use of a supported op cannot lower (checked before calibration), or None."""
    if node.target not in ADAPTIVE_POOLS:
        return None
    if any(user.target is operator.getitem and user.args[1] == 1 and user.users for user in node.users):
        return (f"{ADAPTIVE_POOLS[node.target]} with return_indices=True is not supported (no int8 index "
                f"output); return the pooled values and find the indices on the host")
    try:
        adaptive_pool_window(ADAPTIVE_POOLS[node.target], tuple(node.args[0].meta["val"].shape[-2:]), node.args[1])
    except UnsupportedOpError as err:
        return str(err)
    return None


def check_uses(exported: torch.export.ExportedProgram) -> None:
    """Refuses at once every use of a supported op that cannot lower (an adaptive pool's
    uneven windows), each with its source line, on the graph as the user wrote it: before
    the decompositions rewrite it, before calibration."""
    problems = []
    for node in exported.graph.nodes:
        problem = _use_problem(node) if node.op == "call_function" else None
        if problem:
            where = source_line(node)
            problems.append(problem + (f" (at {where})" if where else ""))
    if problems:
        raise UnsupportedOpError("; ".join(problems))


# PyTorch ops rewritten into ones mcu-compile lowers, before quantization (as ExecuTorch's
# decomposition passes do): each split or chunk part is a slice; layer_norm is its arithmetic; a
# GRU or LSTM (any number of layers, one or two directions) is unrolled over its sequence; an
# adaptive max pool with a plain pool's windows is that max pool.
DECOMPOSITIONS = {torch.ops.aten.layer_norm.default: _layer_norm,
                  torch.ops.aten.split_with_sizes.default: _split_with_sizes,
                  torch.ops.aten.split.Tensor: _split,
                  torch.ops.aten.chunk.default: _chunk,
                  torch.ops.aten.gru.input: _gru,
                  torch.ops.aten.lstm.input: _lstm,
                  torch.ops.aten.adaptive_max_pool2d.default: _adaptive_max_pool2d}


def decompose(exported: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The program with DECOMPOSITIONS applied, when it uses any of those ops."""
    if not any(node.target in DECOMPOSITIONS for node in exported.graph.nodes):
        return exported
    return exported.run_decompositions(DECOMPOSITIONS)


def _load_pt2(path: Path) -> torch.export.ExportedProgram:
    if not path.is_file():
        raise InputError(f"{path}: no such file (give a .pt2 saved with torch.export.save, or a .tflite)")
    try:
        return torch.export.load(str(path))
    except Exception as err:
        raise InputError(f"{path}: not a torch.export .pt2 archive ({type(err).__name__}); "
                         f"save the model with torch.export.save(exported, path)") from err


def source_line(node) -> str:
    """'model.py:42 in forward' from torch.export's stack trace, or ''."""
    trace = node.meta.get("stack_trace") or ""
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip().startswith("File ")]
    if not lines:
        return ""
    # 'File "/x/model.py", line 42, in forward'
    parts = lines[-1].split(",")
    file = parts[0].split('"')[1] if '"' in parts[0] else parts[0]
    line = parts[1].strip().replace("line ", "") if len(parts) > 1 else "?"
    func = parts[2].strip().replace("in ", "") if len(parts) > 2 else ""
    return f"{Path(file).name}:{line} in {func}"


# The nearest supported rewrite of ops users reach for that have no int8 kernel here.
REWRITES = {
    "aten.pow.Tensor_Scalar": "for x**2 write x * x",
    "aten.square.default": "write x * x",
    "aten.sqrt.default": "write x * torch.rsqrt(x)",
    "aten.exp.default": "use softmax, sigmoid or elu, which cover the usual uses",
    "aten.log.default": "use log_softmax",
    "aten.erf.default": "use F.gelu, which has a table",
    "aten.sin.default": "compute it on the host or as a constant input",
    "aten.cos.default": "compute it on the host or as a constant input",
    "aten.argmax.default": "return the scores and take argmax on the host",
    "aten.max.dim": "use amax for the values; take argmax on the host",
    "aten.einsum.default": "write it with matmul/bmm and permute",
    "aten.group_norm.default": "use layer_norm, or batch norm after a conv (folded)",
    "aten.instance_norm.default": "use layer_norm, or batch norm after a conv (folded)",
    "aten._native_batch_norm_legit_no_training.default": "put the batch norm right after a conv so it folds into it",
    "aten.upsample_bicubic2d.vec": "use bilinear or nearest",
    "aten.gather.default": "use slicing (x[..., a:b]) or select",
    "aten.index.Tensor": "use slicing (x[..., a:b]) or select",
    "aten.flip.default": "reverse the data on the host, or use a reversed weight",
    "aten.clamp.Tensor": "clamp to Python numbers: clamp(0, 6), or use hardtanh / relu6",
    "aten.floor_divide.default": "no integer division: scale with a multiplication",
    "aten.tile.default": "use x.repeat(...)",
}


def check_supported(exported: torch.export.ExportedProgram) -> None:
    """Refuses every unsupported op at once, each with its source line."""
    known = aten_ops()
    unsupported = {}
    for node in exported.graph.nodes:
        if node.op != "call_function":
            continue
        name = aten_name(node.target)
        if name in known or name in FOLDED_ATEN_OPS or node.target is operator.getitem:  # a part of a known op
            continue
        where = source_line(node)
        hint = f" ({REWRITES[name]})" if name in REWRITES else ""
        unsupported.setdefault(name + (f" at {where}" if where else "") + hint, None)
    if unsupported:
        raise UnsupportedOpError(f"unsupported op{'s' if len(unsupported) > 1 else ''} {', '.join(unsupported)}"
                                 f"; supported ops: {supported_list()}")
