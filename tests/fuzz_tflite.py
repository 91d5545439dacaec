"""A seeded mutator of .tflite files and a sandboxed compile of each mutant.

Mutations: bit flips and truncation of the raw bytes, and structured edits of the
flatbuffer (shapes, tensor indices, op order, producers, outputs, quantization,
opcodes). The structured edits marked `breaks` always make a structurally broken
file: a compile that accepts one is a silent acceptance, the worst outcome.
Each compile runs in a forked child with a memory limit and a timeout, so a hang or a
crash is seen as such instead of taking the test run down.
"""
from __future__ import annotations

import multiprocessing
import random
import resource
import tempfile
import traceback
from dataclasses import dataclass

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

TIMEOUT_S = 60
MEMORY_LIMIT = 6 << 30


@dataclass
class Mutant:
    data: bytes
    how: str
    breaks: bool  # structurally broken for sure: must be refused


def _flip_bits(data: bytes, rng: random.Random) -> Mutant:
    raw = bytearray(data)
    positions = [rng.randrange(len(raw)) for _ in range(rng.randint(1, 8))]
    for p in positions:
        raw[p] ^= 1 << rng.randrange(8)
    return Mutant(bytes(raw), f"bit flips at {positions}", False)


def _truncate(data: bytes, rng: random.Random) -> Mutant:
    n = rng.randrange(len(data))
    return Mutant(data[:n], f"truncated to {n} B", False)


def _graph(model: fb.ModelT) -> fb.SubGraphT:
    return model.subgraphs[0]


def _odd_dimension(model, rng):
    t = rng.choice(_graph(model).tensors)
    if t.shape is None or not len(t.shape):
        return "no-op", False
    i = rng.randrange(len(t.shape))
    t.shape[i] = rng.choice([0, -1, 2, 3, 131072, 2**31 - 1])
    return f"tensor shape -> {t.shape.tolist()}", False


def _input_out_of_range(model, rng):
    op = rng.choice(_graph(model).operators)
    op.inputs[0] = len(_graph(model).tensors) + rng.randint(0, 5)
    return "op input index out of range", True


def _read_before_write(model, rng):
    ops = _graph(model).operators
    pairs = [(i, j) for i in range(len(ops)) for j in range(i + 1, min(i + 4, len(ops)))
             if set(ops[i].outputs.tolist()) & set(ops[j].inputs.tolist())]
    i, j = rng.choice(pairs)
    ops[i], ops[j] = ops[j], ops[i]
    return f"ops {i} and {j} swapped (a reader before its writer)", True


def _second_producer(model, rng):
    ops = _graph(model).operators
    i, j = sorted(rng.sample(range(len(ops)), 2))
    ops[j].outputs[0] = ops[i].outputs[0]
    return f"op {j} also writes op {i}'s output", True


def _no_outputs(model, rng):
    _graph(model).outputs = np.array([], dtype=np.int32)
    return "no graph outputs", True


def _bad_scale(model, rng):
    graph = _graph(model)
    written = sorted({int(o) for op in graph.operators for o in op.outputs})
    t = graph.tensors[rng.choice(written)]
    value = rng.choice([float("nan"), 0.0, -1.0, float("inf"), 1e38])
    t.quantization.scale = np.array([value], dtype=np.float32)
    return f"activation scale {value}", True


def _bad_zero_point(model, rng):
    graph = _graph(model)
    written = sorted({int(o) for op in graph.operators for o in op.outputs})
    t = graph.tensors[rng.choice(written)]
    t.quantization.zeroPoint = np.array([rng.choice([-3 * 10**18, 300, -129])], dtype=np.int64)
    return f"zero point {t.quantization.zeroPoint.tolist()}", True


def _other_opcode(model, rng):
    code = rng.choice(model.operatorCodes)
    code.builtinCode = code.deprecatedBuiltinCode = rng.randrange(0, 127)
    return f"opcode -> {code.builtinCode}", False


def _scale_count(model, rng):
    per_channel = [t for t in _graph(model).tensors
                   if t.quantization is not None and t.quantization.scale is not None
                   and len(t.quantization.scale) > 1]
    if not per_channel:
        return "no-op (no per-channel tensor)", False
    t = rng.choice(per_channel)
    t.quantization.scale = t.quantization.scale[:-1]
    return "one per-channel scale missing", True


STRUCTURED = [_odd_dimension, _input_out_of_range, _read_before_write, _second_producer, _no_outputs,
              _bad_scale, _bad_zero_point, _other_opcode, _scale_count]


def _structured(data: bytes, rng: random.Random) -> Mutant:
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)  # writable arrays
    how, breaks = rng.choice(STRUCTURED)(model, rng)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return Mutant(bytes(builder.Output()), how, breaks)


def mutants(models: dict[str, bytes], count: int, seed: int):
    """`count` mutants of the models, the same ones for the same seed."""
    rng = random.Random(seed)
    names = sorted(models)
    for _ in range(count):
        name = rng.choice(names)
        mutate = rng.choices([_flip_bits, _truncate, _structured], weights=[2, 1, 4])[0]
        mutant = mutate(models[name], rng)
        mutant.how = f"{name}: {mutant.how}"
        yield mutant


def _compile_in_child(data: bytes, conn) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import mcu_compile
    from mcu_compile.errors import McuCompileError
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/mutant.tflite"
        with open(path, "wb") as f:
            f.write(data)
        try:
            mcu_compile.compile(path, out_dir=f"{folder}/fw")
            conn.send(("accepted", ""))
        except McuCompileError as err:
            conn.send(("refused", str(err)))
        except BaseException as err:  # what the fuzz test exists to find
            frame = traceback.extract_tb(err.__traceback__)[-1]
            conn.send(("unexpected", f"{type(err).__name__}: {err} at {frame.filename}:{frame.lineno}"))


def compile_mutant(data: bytes) -> tuple[str, str]:
    """('accepted' | 'refused' | 'unexpected' | 'hang' | 'died', detail)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_compile_in_child, args=(data, send))
    child.start()
    send.close()
    if not receive.poll(TIMEOUT_S):
        child.kill()
        child.join()
        return "hang", f"no result after {TIMEOUT_S} s"
    try:
        result = receive.recv()
    except EOFError:  # the child died without a word (a crash, or the memory limit)
        child.join()
        return "died", f"exit code {child.exitcode}"
    child.join()
    return result
