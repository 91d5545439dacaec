"""C text for one Edge op: what every op family's emitter (mcu_compile/ops/) builds with.

An emitter returns a CodeFragment: the file-scope declarations (per-channel
requantization tables) and the statements the model's invoke function runs for the op: a
comment naming the op, its shapes and main parameters, then a block filling the CMSIS-NN
parameter structs and calling the kernel with fixed pointers. A kernel that returns a
status is called through checked_call(): `CHECK(<op index>, kernel(...));`, where model.c's
CHECK macro ends the inference with an error naming the op when the kernel refuses its
arguments. Every integer parameter comes from the op's family module, where the host
reference takes it too.

No text from a model or a board file reaches C as code: names become identifiers only
through identifier() and appear in comments only through comment().
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..ops import params as op_params
from ..errors import UnsupportedOpError
from ..ir.program import Op, Program


@dataclass
class CodeFragment:
    declarations: list[str]  # file-scope C, each a complete statement
    statements: list[str]  # C statements inside the invoke function, in order


Ref = Callable[[str], str]
NPU_DEVICE = "npu_device"  # the mcu_npu_device model.c defines from the board's [npu]


@dataclass
class Site:
    """Everything an emitter needs about the op being emitted."""

    program: Program
    op: Op
    ref: Ref
    scratch: str | None
    uid: str
    index: int = 0  # the op's position in the program: what CHECK reports when its kernel fails

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


# ---------------------------------------------------------------- names from the model

IDENTIFIER_LENGTH = 60


def identifier(name: str, prefix: str, taken: set[str]) -> str:
    """A C identifier for `name` (a tensor name from a .tflite, say): prefix + the name with
    every run of characters outside [A-Za-z0-9_] as one '_', numbered (_1, _2...) to differ
    from every identifier in `taken` (to which it is added) and cut to IDENTIFIER_LENGTH.
    With a prefix that no C keyword, header name or fixed symbol of model.c starts with
    (codegen/model.py's), it is none of them."""
    stem = prefix + (re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "t")
    ident, n = stem[:IDENTIFIER_LENGTH], 1
    while ident in taken:
        suffix = f"_{n}"
        ident, n = stem[:IDENTIFIER_LENGTH - len(suffix)] + suffix, n + 1
    taken.add(ident)
    return ident


def comment_text(text: str) -> str:
    """`text` as it may stand inside a one-line C comment: control characters (newlines
    too) become spaces, other non-ASCII characters '?', runs of '?' one '?' (no trigraph),
    backslashes '/' (no line splice), and no '/*' or '*/' is left."""
    text = "".join(ch if " " <= ch <= "~" else "?" if ord(ch) > 0x7F else " " for ch in str(text))
    text = re.sub(r"\?{2,}", "?", text.replace("\\", "/"))
    return text.replace("*/", "* /").replace("/*", "/ *")  # the second cannot recreate the first


def comment(text: str) -> str:
    """A one-line C comment holding `text` made safe by comment_text()."""
    return f"/* {comment_text(text)} */"


# ---------------------------------------------------------------- C text helpers

def dims(shape) -> str:
    """mcu_nn_dims initializer {n, h, w, c}."""
    return "{" + ", ".join(str(int(d)) for d in shape) + "}"


def nhwc4(shape, site: Site) -> tuple[int, ...]:
    """A tensor shape of rank <= 4 as 4D, leading dimensions 1 (TFLite's broadcast alignment)."""
    if len(shape) > 4:
        raise site.unsupported(f"{site.op.kind} on a rank-{len(shape)} tensor is not supported (at most 4D)")
    return (1,) * (4 - len(shape)) + tuple(shape)


def shape_text(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def call(function: str, args: list[str], check: int | None = None) -> str:
    """`function(args);` wrapped at 110 columns, continuation lines aligned after the parenthesis;
    with check (an op index) `CHECK(check, function(args));`: for a function returning a status."""
    head = f"{function}(" if check is None else f"CHECK({int(check)}, {function}("
    end = ");" if check is None else "));"
    lines, line = [], head
    for i, arg in enumerate(args):
        text = arg + (end if i == len(args) - 1 else ",")
        if not line.endswith("(") and len(line) + 1 + len(text) > 110:
            lines.append(line)
            line = " " * len(head) + text
        else:
            line += ("" if line.endswith("(") else " ") + text
    return "\n".join(lines + [line])


def checked_call(site: Site, function: str, args: list[str]) -> str:
    """A call of a kernel returning mcu_nn_status: `CHECK(<op index>, function(args));`."""
    return call(function, args, check=site.index)


def block(site: Site, summary: str, body: list[str]) -> str:
    """The op's statement: a one-line comment, then its body in a block."""
    op = site.op
    ins = ", ".join(shape_text(site.program.tensor(n).shape) for n in op.inputs
                    if n and not site.program.tensor(n).is_const)
    text = f"{op.kind} {op.outputs[0]}: {ins} -> {shape_text(site.shape(output=True))}"
    if summary:
        text += f", {summary}"
    inner = "\n".join("    " + line for stmt in body for line in stmt.splitlines())
    return f"{comment(text)}\n{{\n{inner}\n}}"


def int_array(name: str, values) -> str:
    values = [int(v) for v in values]
    rows = [", ".join(str(v) for v in values[i:i + 8]) for i in range(0, len(values), 8)]
    body = ",\n    ".join(rows)
    return f"static const int32_t {name}[{len(values)}] = {{\n    {body}\n}};"


def activation(site: Site) -> tuple[int, int]:
    return op_params.op_activation_range(site.program, site.op)


def activation_text(site: Site) -> str:
    fused = site.op.options.get("fused_activation_function", "NONE")
    return "" if fused == "NONE" else f", {fused}"


def bias_ref(site: Site) -> str:
    name = site.op.inputs[2] if len(site.op.inputs) > 2 else ""
    return site.ref(name) if name else "NULL"


def per_channel_tables(site: Site, multipliers, shifts) -> list[str]:
    """File-scope multiplier and shift arrays, one entry per output channel."""
    return [int_array(f"{site.uid}_multiplier", multipliers), int_array(f"{site.uid}_shift", shifts)]


def quant_params_line(site: Site) -> str:
    return (f"const mcu_nn_per_channel_quant_params quant_params = "
            f"{{(int32_t *){site.uid}_multiplier, (int32_t *){site.uid}_shift}};")


def padding(site: Site, kernel: tuple[int, int]) -> tuple[int, int]:
    """(pad_h, pad_w): the op's leading padding (ops/common.window_padding)."""
    from ..ops.common import window_padding  # the op families import this module
    (top, _), (left, _) = window_padding(site.program, site.op, kernel)
    return top, left


def window_text(site: Site, kernel, pads) -> str:
    o = site.op.options
    return (f"{kernel[0]}x{kernel[1]} stride {o.get('stride_h', 1)}x{o.get('stride_w', 1)}, "
            f"pad top {pads[0]} left {pads[1]} ({'folded PAD' if o.get('explicit_padding') else o.get('padding', 'VALID')})")


def named_ints(pairs: list[tuple[str, int]]) -> str:
    """`const int32_t a = 1, b = 2;`: names the bare integers a kernel call takes."""
    return "const int32_t " + ", ".join(f"{name} = {int(value)}" for name, value in pairs) + ";"


def const_ints(site: Site, index: int) -> list[int]:
    inputs = site.op.inputs
    if index >= len(inputs) or not inputs[index] or not site.program.tensor(inputs[index]).is_const:
        raise site.unsupported(f"{site.op.kind} needs a constant input {index}")
    return [int(v) for v in site.program.tensor(inputs[index]).data.reshape(-1)]
