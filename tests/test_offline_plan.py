"""Our static memory plan, written as TFLite Micro's offline memory plan: TFLM runs the
program with exactly our arena layout and computes the same bytes.

What is checked against TFLM itself:
  * outputs with our plan == TFLM without it == mcu_compile.reference.interpreter, byte for byte;
  * the non-persistent ("head") arena TFLM reports equals the extent of our offsets
    (offset + size rounded up to TFLM's 16-byte buffer alignment), and moves by exactly
    K when every offset is moved by K;
  * every activation tensor sits at its planned offset: after an invoke (TFLM keeping
    all tensors readable), each tensor's bytes are what a simulated arena holds when
    every op writes its output at the planned offset, including tensors whose bytes a
    later op has overwritten, which is possible only with our layout.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from mcu_compile.errors import IRError
from mcu_compile.ops.registry import scratch_bytes
from mcu_compile.reference import interpreter as reference
from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.ir.offline_plan import (METADATA_NAME, ONLINE, offline_offsets, offline_plan_metadata,
                                      parse_offline_plan, with_offline_plan, written_tensor_names)
from mcu_compile.passes.plan import align, plan_memory
from mcu_compile.ir.tflite_io import load_tflite, read_tflite, write_tflite

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models"
MLPERF_TINY = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]
ARENA = 1 << 22
TFLM_ALIGNMENT = 16  # MicroArenaBufferAlignment(): TFLM rounds every buffer up to it


# ---------------------------------------------------------------------------- programs

def q(scale: float, zp: int) -> Quant:
    return Quant.per_tensor(float(np.float32(scale)), zp)


def hand_program() -> Program:
    """Two inputs, a bias-less depthwise conv (the writer adds a zero-bias tensor of its
    own), an in-place-able ADD, a RESHAPE, and two graph outputs."""
    rng = np.random.default_rng(3)
    p = Program()
    add = p.add_tensor
    add(Tensor("x", (1, 4, 4, 4), quant=q(0.05, -3)))
    add(Tensor("skip", (1, 4, 4, 4), quant=q(0.04, 2)))
    add(Tensor("dw_w", (1, 3, 3, 4), data=rng.integers(-127, 128, (1, 3, 3, 4)),
               quant=Quant(np.full(4, 0.02, dtype=np.float32), np.zeros(4), 3)))
    add(Tensor("d", (1, 4, 4, 4), quant=q(0.1, 1)))
    add(Tensor("s", (1, 4, 4, 4), quant=q(0.12, -5)))
    add(Tensor("shape", (2,), "int32", data=np.array([1, 64])))
    add(Tensor("r", (1, 64), quant=q(0.12, -5)))
    add(Tensor("fc_w", (8, 64), data=rng.integers(-127, 128, (8, 64)), quant=q(0.01, 0)))
    add(Tensor("fc_b", (8,), "int32", data=rng.integers(-300, 300, 8),
               quant=q(0.12 * 0.01, 0)))
    add(Tensor("f", (1, 8), quant=q(0.3, 2)))
    add(Tensor("y", (1, 8), quant=q(1 / 256, -128)))
    p.add_op(Op("DEPTHWISE_CONV_2D", ["x", "dw_w"], ["d"], {
        "padding": "SAME", "stride_h": 1, "stride_w": 1, "dilation_h_factor": 1,
        "dilation_w_factor": 1, "depth_multiplier": 1, "fused_activation_function": "RELU"}))
    p.add_op(Op("ADD", ["d", "skip"], ["s"], {"fused_activation_function": "NONE"}))
    p.add_op(Op("RESHAPE", ["s", "shape"], ["r"], {"new_shape": [1, 64]}))
    p.add_op(Op("FULLY_CONNECTED", ["r", "fc_w", "fc_b"], ["f"],
                {"fused_activation_function": "NONE", "keep_num_dims": False}))
    p.add_op(Op("SOFTMAX", ["f"], ["y"], {"beta": 1.0}))
    p.inputs, p.outputs = ["x", "skip"], ["f", "y"]
    return p


def torch_program() -> Program:
    """A small PyTorch model through export -> PT2E quantization -> lowering."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from mcu_compile.frontend.export import export
    from mcu_compile.frontend.lower import lower
    from mcu_compile.frontend.quantize import quantize

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.pw = nn.Conv2d(8, 8, 1)
            self.fc = nn.Linear(8 * 4 * 4, 6)

        def forward(self, x):
            y = torch.relu(self.stem(x))
            y = torch.relu(self.pw(torch.relu(self.dw(y))) + y)  # residual
            y = nn.functional.max_pool2d(y, 2)
            return torch.softmax(self.fc(y.flatten(1)), dim=-1)

    torch.manual_seed(0)
    model = Net().eval()
    generator = torch.Generator().manual_seed(1)
    calibration = [(torch.randn(1, 3, 8, 8, generator=generator),) for _ in range(4)]
    return lower(quantize(export(model, calibration[0]), calibration, calibration[0]), calibration[0])


def mlperf_program(name: str) -> Program:
    path = MODELS_DIR / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return load_tflite(path)


_PROGRAMS = {}


def program_named(name: str) -> Program:
    if name not in _PROGRAMS:
        _PROGRAMS[name] = {"hand": hand_program, "torch": torch_program}.get(
            name, lambda: mlperf_program(name))()
    return _PROGRAMS[name]


def our_plan(program: Program):
    return plan_memory(program, [scratch_bytes(program, op) for op in program.ops])


def int8_inputs(program: Program, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, program.tensor(n).shape).astype(np.int8) for n in program.inputs]


# ---------------------------------------------------------------------------- TFLM helpers

def c_stderr(fn) -> str:
    """What `fn` writes to file descriptor 2 (TFLM's MicroPrintf goes there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            fn()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode(errors="replace")


def run_tflm(data: bytes, program: Program, vectors: list[list[np.ndarray]]):
    """(outputs per vector, the non-persistent "head" bytes TFLM's allocator reports)."""
    interp = runtime.Interpreter.from_bytes(data, arena_size=ARENA)
    results = []
    for vector in vectors:
        for i, array in enumerate(vector):
            interp.set_input(array, i)
        interp.invoke()
        results.append([interp.get_output(i).copy() for i in range(len(program.outputs))])
    log = c_stderr(interp.print_allocations)
    match = re.search(r"Arena allocation head (\d+) bytes", log)
    assert match, log
    return results, int(match.group(1))


def planned_extent(program: Program, names: list[str], offsets: list[int]) -> int:
    return max(off + align(program.tensor(n).nbytes, TFLM_ALIGNMENT)
               for n, off in zip(names, offsets) if off != ONLINE)


def shifted(program: Program, plan, shift: int) -> Program:
    moved = with_offline_plan(program, plan)
    _, _, offsets = parse_offline_plan(moved.metadata[METADATA_NAME])
    words = [1, 0, len(offsets)] + [o + shift if o != ONLINE else o for o in offsets]
    moved.metadata[METADATA_NAME] = np.asarray(words, dtype="<i4").tobytes()
    return moved


# ---------------------------------------------------------------------------- format

def test_metadata_layout_matches_the_written_file():
    program = hand_program()
    plan = our_plan(program)
    version, subgraph, offsets = parse_offline_plan(offline_plan_metadata(program, plan))
    assert (version, subgraph) == (1, 0)

    data = write_tflite(with_offline_plan(program, plan))
    model = fb.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    assert len(offsets) == graph.TensorsLength() == len(program.tensors) + 1  # + the zero bias
    names = [graph.Tensors(i).Name().decode() for i in range(graph.TensorsLength())]
    assert names == written_tensor_names(program)
    by_name = dict(zip(names, offsets))
    for name in names:
        tensor = program.tensors.get(name)
        if tensor is None or tensor.is_const:
            assert by_name[name] == ONLINE, name
        else:
            assert by_name[name] == plan.offset(name) >= 0, name
    assert by_name["r"] == by_name["s"]  # the RESHAPE output shares its input's bytes
    assert all(by_name[n] != ONLINE for n in program.inputs + program.outputs)

    # the metadata entry TFLM looks up, its buffer holding exactly our words
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
               for i in range(model.MetadataLength())}
    buffer = model.Buffers(entries[METADATA_NAME])
    assert buffer.DataAsNumpy().tobytes() == offline_plan_metadata(program, plan)
    assert read_tflite(data).metadata[METADATA_NAME] == offline_plan_metadata(program, plan)


def test_with_offline_plan_leaves_the_program_alone():
    program = hand_program()
    program.metadata["keep"] = b"me"
    planned = with_offline_plan(program, our_plan(program))
    assert METADATA_NAME not in program.metadata
    assert planned.metadata["keep"] == b"me"
    assert list(planned.tensors) == list(program.tensors) and planned.ops == program.ops
    assert planned.tensors is not program.tensors and planned.ops is not program.ops


def test_a_plan_that_overlaps_live_tensors_is_refused():
    program = hand_program()
    plan = our_plan(program)
    plan.offsets["d"] = plan.offsets["x"]  # the depthwise conv would overwrite its input
    with pytest.raises(IRError, match="same bytes while both are live"):
        offline_plan_metadata(program, plan)


# ---------------------------------------------------------------------------- TFLM runs our plan

@pytest.mark.parametrize("name", MLPERF_TINY + ["torch", "hand"])
def test_tflm_runs_our_plan_bit_exact(name):
    program = program_named(name)
    plan = our_plan(program)
    vectors = [int8_inputs(program, seed) for seed in range(3)]
    names = written_tensor_names(program)
    offsets = offline_offsets(program, plan, names)

    online, online_head = run_tflm(write_tflite(program), program, vectors)
    ours, our_head = run_tflm(write_tflite(with_offline_plan(program, plan)), program, vectors)
    for vector, got, want in zip(vectors, ours, online):
        expected = reference.run(program, vector)
        for g, w, e in zip(got, want, expected):
            assert g.tobytes() == w.tobytes() == e.tobytes()

    # TFLM's arena head is the extent of our offsets (its kernels request no scratch
    # that would not fit in the gaps) and follows them when they move.
    extent = planned_extent(program, names, offsets)
    assert our_head == extent
    assert extent <= align(plan.arena_bytes, TFLM_ALIGNMENT)
    moved, moved_head = run_tflm(write_tflite(shifted(program, plan, 4096)), program, vectors[:1])
    assert moved_head == extent + 4096
    assert [a.tobytes() for a in moved[0]] == [a.tobytes() for a in ours[0]]
    print(f"\n{name}: TFLM head without our plan {online_head} B, with it {our_head} B "
          f"(our arena incl. CMSIS scratch {plan.arena_bytes} B)")


@pytest.mark.parametrize("name", MLPERF_TINY + ["torch", "hand"])
def test_every_tensor_sits_at_its_planned_offset(name):
    """Reads every activation back from where TFLM put it, and compares with a simulated
    arena in which the inputs and then every op's output are written at our offsets.

    TFLM's Python API gives no tensor addresses, and its keep-all-tensors mode (the one
    GetTensor() works in) uses the linear planner, which rejects offline plans. But
    TFLM honours an offline offset whatever the tensor's lifetime, so a copy of the
    program that declares every activation a graph output, with the original plan,
    lets get_output() read the bytes at each tensor's address after the invoke.
    Tensors whose bytes a later op wrote over hold someone else's data there, which
    happens only if TFLM really laid the arena out as we planned.
    """
    program = program_named(name)
    plan = our_plan(program)
    names = written_tensor_names(program)
    offsets = dict(zip(names, offline_offsets(program, plan, names)))
    probed = [n for n in names if offsets[n] != ONLINE]
    probe = dataclasses.replace(with_offline_plan(program, plan), outputs=probed)
    assert written_tensor_names(probe) == names  # same tensors, same plan

    vector = int8_inputs(program, 7)
    interp = runtime.Interpreter.from_bytes(write_tflite(probe), arena_size=ARENA)
    for i, array in enumerate(vector):
        interp.set_input(array, i)
    interp.invoke()

    values = reference.run_with_intermediates(program, vector)
    image = np.full(plan.arena_bytes, -1, dtype=np.int16)  # -1: never written

    def raw(tensor_name: str) -> bytes:
        return values[tensor_name].astype(program.tensor(tensor_name).dtype).tobytes()

    for tensor_name in program.inputs + [o for op in program.ops for o in op.outputs]:
        data = np.frombuffer(raw(tensor_name), dtype=np.uint8)
        image[offsets[tensor_name]:offsets[tensor_name] + data.size] = data

    overwritten = []
    for index, tensor_name in enumerate(probed):
        span = image[offsets[tensor_name]:offsets[tensor_name] + program.tensor(tensor_name).nbytes]
        assert (span >= 0).all(), tensor_name
        got = interp.get_output(index).tobytes()
        assert got == span.astype(np.uint8).tobytes(), tensor_name
        if got != raw(tensor_name):
            overwritten.append(tensor_name)
    for got, want in zip([interp.get_output(probed.index(n)) for n in program.outputs],
                         reference.run(program, vector)):
        assert got.tobytes() == want.tobytes()
    assert overwritten  # bytes reused as only our layout reuses them
    print(f"\n{name}: {len(probed)} tensors at their planned offsets, "
          f"{len(overwritten)} of them overwritten by later ops as planned")
