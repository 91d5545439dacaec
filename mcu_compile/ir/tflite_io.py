"""Read and write Edge programs as TFLite flatbuffers (schema v3), without TensorFlow.

The file form lets Vela, the TFLite Micro interpreter and Netron consume a Program,
and lets users bring an existing int8 .tflite model.
"""
from __future__ import annotations

import math
from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..errors import TFLiteFormatError, UnsupportedOpError
from .program import Op, Program, Quant, Tensor
from ..ops.params import FUSED_ACTIVATION_BOUNDS

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
BUFFER_ALIGNMENT = 16  # like the TFLite converter: lets kernels read int32/float data in place
# A bigger tensor is a corrupt shape, not a model: refused before any array is made.
MAX_TENSOR_BYTES = 64 << 20

_DTYPE_TO_TFL = {"float32": fb.TensorType.FLOAT32, "int32": fb.TensorType.INT32,
                 "uint8": fb.TensorType.UINT8, "int64": fb.TensorType.INT64,
                 "int16": fb.TensorType.INT16, "int8": fb.TensorType.INT8}
_TFL_TO_DTYPE = {v: k for k, v in _DTYPE_TO_TFL.items()}
_TFL_TYPE_NAMES = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_PADDING = {"SAME": fb.Padding.SAME, "VALID": fb.Padding.VALID}
_ACTIVATION = {name: getattr(fb.ActivationFunctionType, name) for name in FUSED_ACTIVATION_BOUNDS}
_ENUMS = {"padding": _PADDING, "fused_activation_function": _ACTIVATION}


def _form(kind: str):
    """The op kind's TFLite form (options table and fields), from the op registry."""
    from ..ops import registry  # the registry's families import this package's program module
    form = registry.get(kind).tflite
    if form is None:
        raise UnsupportedOpError(f"{kind}: a firmware-only fused form, which a .tflite cannot hold; "
                                 "write the program before the fusion passes")
    return form


def _file_kinds() -> dict:
    from ..ops import registry
    return registry.file_kinds()


def _kind_of(code: int, custom_code: str) -> str:
    """The op kind of an operator code: a builtin's name, or the kind whose custom code it is."""
    name = _OP_NAMES.get(code, f"builtin code {code}")
    for kind, k in _file_kinds().items():
        builtin = k.tflite.builtin or kind
        if builtin == name and (k.tflite.custom_code is None or k.tflite.custom_code == custom_code):
            return kind
    return f"CUSTOM op {custom_code!r}" if code == fb.BuiltinOperator.CUSTOM else name


def _camel(key: str) -> str:
    """IR option key (TFLite's snake_case field name) -> object-API attribute name."""
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


# ---------------------------------------------------------------------------- writer

class _AlignedBufferT(fb.BufferT):
    """BufferT whose data vector starts on a BUFFER_ALIGNMENT boundary."""

    def Pack(self, builder):
        data = None
        if self.data is not None:  # as Builder.CreateNumpyVector, with a wider alignment
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        fb.BufferStart(builder)
        if data is not None:
            fb.BufferAddData(builder, data)
        return fb.BufferEnd(builder)


def _buffer(data: bytes | None) -> fb.BufferT:
    buf = _AlignedBufferT()
    buf.data = data
    return buf


def _quant_to_tfl(quant: Quant) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale = quant.scale.astype(np.float32)
    q.zeroPoint = quant.zero_point.astype(np.int64)
    q.quantizedDimension = int(quant.axis)
    return q


def _options_to_tfl(program: Program, op: Op):
    form = _form(op.kind)
    table, fields = form.options_table, form.fields
    if table is None:
        return fb.BuiltinOptions.NONE, None
    options = getattr(fb, table + "T")()
    for key, default in fields.items():
        value = op.options.get(key, default)
        if key == "new_shape":
            value = np.array(value if value is not None else program.tensor(op.outputs[0]).shape,
                             dtype=np.int32)
        elif key in _ENUMS:
            if value not in _ENUMS[key]:
                raise UnsupportedOpError(f"{op.kind}: {key}={value!r} cannot be written; "
                                         f"use one of {', '.join(_ENUMS[key])}")
            value = _ENUMS[key][value]
        setattr(options, _camel(key), value)
    return getattr(fb.BuiltinOptions, table), options


def write_tflite(program: Program) -> bytes:
    """Serialise a Program as a TFLite flatbuffer that TFLite Micro can run."""
    writer = _Writer()
    for t in program.tensors.values():
        writer.add_tensor(t)
    operators = [writer.operator(program, op) for op in program.ops]

    subgraph = fb.SubGraphT()
    subgraph.tensors = writer.tensors
    subgraph.operators = operators
    subgraph.inputs = np.array([writer.index[n] for n in program.inputs], dtype=np.int32)
    subgraph.outputs = np.array([writer.index[n] for n in program.outputs], dtype=np.int32)
    subgraph.name = b"main"

    model = fb.ModelT()
    model.version = SCHEMA_VERSION
    model.description = b"mcu-compile"
    model.operatorCodes = [_opcode(code) for code in writer.opcodes]
    model.subgraphs = [subgraph]
    model.metadata = []
    for key, value in program.metadata.items():
        md = fb.MetadataT()
        md.name, md.buffer = key.encode(), writer.add_buffer(bytes(value))
        model.metadata.append(md)
    model.buffers = writer.buffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


class _Writer:
    def __init__(self):
        self.buffers = [_buffer(None)]  # buffer 0: the empty buffer of every activation
        self.tensors: list[fb.TensorT] = []
        self.index: dict[str, int] = {}
        self.opcodes: list[tuple[int, str | None]] = []  # (builtin code, custom code)

    def add_buffer(self, data: bytes) -> int:
        self.buffers.append(_buffer(data))
        return len(self.buffers) - 1

    def add_tensor(self, t: Tensor) -> int:
        tt = fb.TensorT()
        tt.name = t.name.encode()
        tt.shape = np.array(t.shape, dtype=np.int32)
        tt.type = _DTYPE_TO_TFL[t.dtype]
        if t.quant is not None:
            tt.quantization = _quant_to_tfl(t.quant)
        if t.is_const:
            tt.buffer = self.add_buffer(t.data.astype(t.data.dtype.newbyteorder("<")).tobytes())
        self.tensors.append(tt)
        self.index[t.name] = len(self.tensors) - 1
        return self.index[t.name]

    def operator(self, program: Program, op: Op) -> fb.OperatorT:
        form = _form(op.kind)
        code = (getattr(fb.BuiltinOperator, form.builtin or op.kind), form.custom_code)
        if code not in self.opcodes:
            self.opcodes.append(code)
        inputs = [self.index[n] if n else -1 for n in op.inputs]
        if form.zero_bias_dim is not None and (len(inputs) < 3 or inputs[2] < 0):
            inputs[2:] = [self.zero_bias(program, op, form.zero_bias_dim)]
        o = fb.OperatorT()
        o.opcodeIndex = self.opcodes.index(code)
        o.inputs = np.array(inputs, dtype=np.int32)
        o.outputs = np.array([self.index[n] for n in op.outputs], dtype=np.int32)
        o.builtinOptionsType, o.builtinOptions = _options_to_tfl(program, op)
        return o

    def zero_bias(self, program: Program, op: Op, channels_dim: int) -> int:
        """Zeros for a kind whose TFLite Micro kernel crashes without a bias."""
        channels = program.tensor(op.inputs[1]).shape[channels_dim]
        s_in = program.tensor(op.inputs[0]).quant.scale[0]
        w_scale = np.broadcast_to(program.tensor(op.inputs[1]).quant.scale, (channels,))
        name = program.unique_name(f"{op.outputs[0]}_zero_bias")
        while name in self.index:
            name += "_"
        return self.add_tensor(Tensor(name, (channels,), "int32",
                                      Quant(s_in * w_scale, np.zeros(channels)),
                                      np.zeros(channels, dtype=np.int32)))


def _opcode(key: tuple[int, str | None]) -> fb.OperatorCodeT:
    code, custom_code = key
    oc = fb.OperatorCodeT()
    oc.builtinCode = code
    if custom_code is not None:
        oc.customCode = custom_code.encode()
    # Readers older than schema 3a only look at the 8-bit deprecated field.
    oc.deprecatedBuiltinCode = min(code, fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    oc.version = 1
    return oc


# ---------------------------------------------------------------------------- reader

def load_tflite(path: str | Path) -> Program:
    """Read a .tflite file from disk into a Program."""
    path = Path(path)
    if not path.is_file():
        raise TFLiteFormatError(f"{path}: no such file; check the path to your .tflite model")
    return read_tflite(path.read_bytes(), source=path.name)


def read_tflite(data: bytes, *, source: str = "model") -> Program:
    """Parse an int8 TFLite flatbuffer into a Program (first subgraph)."""
    data = bytes(data)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise TFLiteFormatError(
            f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier); "
            "give a .tflite file exported by the TFLite converter")
    try:
        model = fb.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # the flatbuffers runtime raises anything from struct.error to IndexError
        raise TFLiteFormatError(
            f"{source}: corrupt or truncated TFLite file ({type(exc).__name__}: {exc}); "
            "re-export the model") from None
    return _Reader(model, data, source).program()


class _Reader:
    def __init__(self, model: fb.ModelT, data: bytes, source: str):
        self.model, self.data, self.source = model, data, source
        if not model.subgraphs:
            self.fail("the file has no subgraph")
        self.graph = model.subgraphs[0]
        self.buffers = model.buffers or []
        self.names: list[str] = []

    def fail(self, why: str):
        raise TFLiteFormatError(f"{self.source}: corrupt TFLite file: {why}; re-export the model")

    def program(self) -> Program:
        """The file's first subgraph as an Edge program (_as_edge_ops)."""
        prog = Program()
        for i, t in enumerate(self.graph.tensors or []):
            tensor = self.tensor(prog, i, t)
            prog.add_tensor(tensor)
            self.names.append(tensor.name)
        unknown = self.unsupported_kinds()
        if unknown:
            raise UnsupportedOpError(
                f"{self.source}: operator{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"{'are' if len(unknown) > 1 else 'is'} not supported by mcu-compile; it runs: "
                f"{', '.join(sorted(_file_kinds()))}")
        for i, o in enumerate(self.graph.operators or []):
            prog.add_op(self.op(prog, i, o))
        prog.inputs = [self.name(i, "subgraph input") for i in self.graph.inputs]
        prog.outputs = [self.name(i, "subgraph output") for i in self.graph.outputs]
        for md in self.model.metadata or []:
            prog.metadata[_text(md.name)] = self.buffer_bytes(md.buffer, f"metadata {_text(md.name)!r}")
        return _as_edge_ops(prog)

    def unsupported_kinds(self) -> list[str]:
        """Every operator kind of the file mcu-compile does not know, each once, with the
        indices of the operators using it: all problems named at once."""
        codes, found = self.model.operatorCodes or [], {}
        for index, o in enumerate(self.graph.operators or []):
            if 0 <= o.opcodeIndex < len(codes):
                oc = codes[o.opcodeIndex]
                kind = _kind_of(max(oc.builtinCode, oc.deprecatedBuiltinCode), _text(oc.customCode))
                if kind not in _file_kinds():
                    found.setdefault(kind, []).append(index)
        return [f"{kind} (operator{'s' if len(ops) > 1 else ''} {', '.join(map(str, ops[:5]))}"
                f"{', ...' if len(ops) > 5 else ''})" for kind, ops in found.items()]

    def name(self, index: int, what: str) -> str:
        if not 0 <= index < len(self.names):
            self.fail(f"{what} refers to tensor {index}, but there are {len(self.names)}")
        return self.names[index]

    def buffer_bytes(self, index: int, what: str) -> bytes:
        if not 0 <= index < len(self.buffers):
            self.fail(f"{what} refers to buffer {index}, but there are {len(self.buffers)}")
        buf = self.buffers[index]
        if buf.offset > 1:  # data stored after the flatbuffer (models > 2 GB)
            if buf.offset + buf.size > len(self.data):
                self.fail(f"{what}: buffer {index} extends past the end of the file")
            return self.data[buf.offset:buf.offset + buf.size]
        return b"" if buf.data is None else np.asarray(buf.data, dtype=np.uint8).tobytes()

    def tensor(self, prog: Program, index: int, t: fb.TensorT) -> Tensor:
        name = prog.unique_name(_text(t.name) or f"tensor_{index}")
        if t.type not in _TFL_TO_DTYPE:
            raise UnsupportedOpError(
                f"{self.source}: tensor {name!r} has type {_TFL_TYPE_NAMES.get(t.type, t.type)}; "
                "mcu-compile needs an int8-quantized model (int8/int32 tensors)")
        dtype = _TFL_TO_DTYPE[t.type]
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        if any(d < 0 for d in shape):
            self.fail(f"tensor {name!r} has negative dimension in shape {shape}")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > MAX_TENSOR_BYTES:
            self.fail(f"tensor {name!r} of shape {list(shape)} would take {nbytes:,} B, more than "
                      f"{MAX_TENSOR_BYTES >> 20} MiB (no microcontroller model has such a tensor)")
        raw = self.buffer_bytes(t.buffer, f"tensor {name!r}")
        data = None
        if raw:
            if len(raw) != nbytes:
                self.fail(f"tensor {name!r} {shape} {dtype} needs {nbytes} bytes, "
                          f"its buffer has {len(raw)}")
            data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
        return Tensor(name, shape, dtype, _quant_from_tfl(t.quantization), data)

    def op(self, prog: Program, index: int, o: fb.OperatorT) -> Op:
        codes = self.model.operatorCodes or []
        if not 0 <= o.opcodeIndex < len(codes):
            self.fail(f"operator {index} refers to opcode {o.opcodeIndex}, but there are {len(codes)}")
        oc = codes[o.opcodeIndex]
        kind = _kind_of(max(oc.builtinCode, oc.deprecatedBuiltinCode), _text(oc.customCode))
        inputs = [self.name(i, f"operator {index} ({kind})") if i >= 0 else ""
                  for i in (o.inputs if o.inputs is not None else [])]
        outputs = [self.name(i, f"operator {index} ({kind})")
                   for i in (o.outputs if o.outputs is not None else [])]
        if not inputs or not outputs:
            self.fail(f"operator {index} ({kind}) has no inputs or no outputs")
        self.check_int8(prog, index, kind, inputs[0])
        return Op(kind, inputs, outputs, _options_from_tfl(kind, o.builtinOptions),
                  source=f"{self.source}: operator {index} ({kind}) -> {outputs[0]}")

    def check_int8(self, prog: Program, index: int, kind: str, first_input: str):
        if not _file_kinds()[kind].int8_input or not first_input:
            return
        dtype = prog.tensor(first_input).dtype
        if dtype != "int8":
            raise UnsupportedOpError(
                f"{self.source}: operator {index} ({kind}) computes in {dtype}; mcu-compile needs "
                "int8 activations: export with full-integer (int8) quantization")


def _as_edge_ops(program: Program) -> Program:
    """A file's builtins TFLite Micro has no kernel for, replaced by the Edge ops it runs
    that compute the same bytes: TILE -> CONCATENATIONs (ops/repeat.py)."""
    from ..ops.repeat import tiles_as_concatenations
    return tiles_as_concatenations(program)


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _quant_from_tfl(q: fb.QuantizationParametersT | None) -> Quant | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zero_point = q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else np.zeros(1)
    return Quant(np.asarray(q.scale, dtype=np.float32).astype(np.float64),
                 np.asarray(zero_point, dtype=np.int64), int(q.quantizedDimension))


def _options_from_tfl(kind: str, options) -> dict:
    fields = _form(kind).fields
    result = {}
    for key, default in fields.items():
        value = getattr(options, _camel(key), None) if options is not None else None
        if value is None:
            value = default
            if value is None:  # no new_shape (a reshape's): the output tensor's shape rules
                continue
        elif key in _ENUMS:
            names = {v: k for k, v in _ENUMS[key].items()}
            if value not in names:
                raise UnsupportedOpError(f"{kind}: {key} value {value} is not supported; "
                                         f"use one of {', '.join(_ENUMS[key])}")
            value = names[value]
        elif key == "new_shape" or isinstance(default, list):  # new_shape, squeeze_dims
            value = [int(d) for d in value]
        elif isinstance(default, bool):
            value = bool(value)
        elif isinstance(default, float):
            value = float(value)
        else:
            value = int(value)
        result[key] = value
    return result
