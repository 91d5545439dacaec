"""The Ethos-U functional model: parser, access checker, and bit-exactness against
TFLite Micro on the MLPerf Tiny models, seed 003's MobileNetV2 and single operators, for
the Ethos-U55-128 (corstone-300) and the Ethos-U85-256 (corstone-320)."""
from __future__ import annotations

import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from mcu_compile.target.boards import load_board
from mcu_compile.passes.delegate import delegate
from mcu_compile.sim.ethosu_model import NpuError, check_accesses, parse_payload, run_payload
from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.ir.tflite_io import load_tflite, write_tflite

BOARD = "corstone-300"
ACCEL = "ethos-u55-128"
U85_BOARD = "corstone-320"
U85_ACCEL = "ethos-u85-256"


# ---- helpers ----------------------------------------------------------------------------
def compile_partition(program: Program, board: str = BOARD):
    delegation = delegate(program, load_board(board))
    assert len(delegation.partitions) == 1, delegation.placement
    return delegation.partitions[0]


def regions_for(part, inputs: list[np.ndarray]) -> dict[int, bytearray]:
    """As the firmware does: region 0 the read-only data, region 1 the scratch with the
    feature maps inside it at Vela's offsets; region 2 (fast scratch) aliases it."""
    scratch = bytearray(part.scratch_bytes)
    for name, array in zip(part.inputs, inputs):
        offset = part.io_offsets[name]
        scratch[offset:offset + array.nbytes] = array.tobytes()
    return {0: bytearray(part.read_only), 1: scratch, 2: scratch}


def npu_outputs(part, inputs, like: list[np.ndarray], accel: str = ACCEL) -> tuple[list[np.ndarray], float]:
    regions = regions_for(part, inputs)
    start = time.perf_counter()
    run_payload(part.payload_cop2, regions, accel)
    elapsed = time.perf_counter() - start
    outs = []
    for name, ref in zip(part.outputs, like):
        offset = part.io_offsets[name]
        outs.append(np.frombuffer(bytes(regions[1][offset:offset + ref.nbytes]), dtype=ref.dtype).reshape(ref.shape))
    return outs, elapsed


def tflm_outputs(tflite_path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """TFLM's reference kernels, with an arena large enough for weightless one-op files
    (the oracle's default arena is ten times the file size)."""
    from tflite_micro.python.tflite_micro import runtime
    data = Path(tflite_path).read_bytes()
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=max(10 * len(data), 1 << 20))
    for index, array in enumerate(inputs):
        interpreter.set_input(array, index)
    interpreter.invoke()
    return [interpreter.get_output(i) for i in range(len(load_tflite(tflite_path).outputs))]


def random_inputs(program: Program, rng) -> list[np.ndarray]:
    return [rng.integers(-128, 128, program.tensor(n).shape, dtype=np.int8) for n in program.inputs]


def assert_bit_exact(tflite_path: Path, program: Program, part, count: int, seed: int = 0,
                     accel: str = ACCEL) -> float:
    """Runs `count` random inputs through both; returns the slowest NPU-model run in ms."""
    rng = np.random.default_rng(seed)
    slowest = 0.0
    for index in range(count):
        inputs = random_inputs(program, rng)
        ref = tflm_outputs(tflite_path, inputs)
        got, elapsed = npu_outputs(part, inputs, ref, accel)
        slowest = max(slowest, elapsed * 1000)
        for g, r in zip(got, ref):
            diff = np.abs(g.astype(int) - r.astype(int))
            assert not diff.any(), f"input {index}: {np.count_nonzero(diff)} of {diff.size} differ (max {diff.max()})"
    return slowest


@pytest.fixture(scope="module")
def mlperf():
    """name -> (path, program, partition), compiled once."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "models"
    if not shared.is_dir():
        pytest.skip(f"{shared} not found")
    cache = {}

    def get(name, board=BOARD):
        if (name, board) not in cache:
            path = shared / f"{name}.tflite"
            program = load_tflite(path)
            cache[name, board] = (path, program, compile_partition(program, board))
        return cache[name, board]
    return get


# ---- parser -------------------------------------------------------------------------------
def test_cop1_and_cop2_carry_the_same_register_stream(mlperf):
    _, _, part = mlperf("ad01_int8")
    cop2, cop1 = parse_payload(part.payload_cop2), parse_payload(part.payload_cop1)
    assert (cop2.fourcc, cop1.fourcc) == ("COP2", "COP1")
    assert cop2.config == cop1.config == 0x00001807 and cop2.npu_id == cop1.npu_id == 0x10066001
    assert (cop2.product, cop2.macs) == ("ethos-u55", 128)
    assert cop2.stream_offset == 64 and cop1.stream_offset == 32
    assert cop2.addressing == 1  # feature maps inside the scratch: network-wide addressing
    strip = [(c.name, c.param, c.data) for c in cop2.commands]
    assert strip == [(c.name, c.param, c.data) for c in cop1.commands]
    assert strip[-1][0] == "NPU_OP_STOP" and sum(c.name == "NPU_OP_CONV" for c in cop2.commands) == 10


def _patched(payload: bytes, offset: int, word: int) -> bytes:
    data = bytearray(payload)
    struct.pack_into("<I", data, offset, word)
    return bytes(data)


def test_unknown_opcode_is_an_error_naming_it_and_its_offset(mlperf):
    _, _, part = mlperf("ad01_int8")
    bad = _patched(part.payload_cop2, 64, 0x01FE)  # CMD0 0x1fe does not exist
    with pytest.raises(NpuError, match=r"opcode 0x1fe at byte 64"):
        parse_payload(bad)
    with pytest.raises(NpuError, match=r"opcode 0x1fe at byte 64"):
        run_payload(bad, regions_for(part, [np.zeros(640, np.int8)]))
    with pytest.raises(NpuError, match=r"at byte 68 has control bits 3"):
        parse_payload(_patched(part.payload_cop2, 68, 0xC000))


def test_malformed_wrappers_are_errors(mlperf):
    _, _, part = mlperf("ad01_int8")
    with pytest.raises(NpuError, match="not COP1 or COP2"):
        parse_payload(b"XXXX" + part.payload_cop2[4:])
    with pytest.raises(NpuError, match="COP2 header says"):
        parse_payload(part.payload_cop2[:-4])
    with pytest.raises(NpuError, match="claims 213 words, payload too short"):
        parse_payload(part.payload_cop1[:-4])
    last = len(part.payload_cop2) - 4  # NPU_OP_STOP -> NPU_SET_BLOCKDEP
    with pytest.raises(NpuError, match="does not end with NPU_OP_STOP"):
        parse_payload(_patched(part.payload_cop2, last, 0x012F))


def test_an_operation_using_a_register_never_set_is_an_error(mlperf):
    _, _, part = mlperf("ad01_int8")
    stream = parse_payload(part.payload_cop2)
    scale_length = next(c for c in stream.commands if c.name == "SCALE_LENGTH")
    # turn SCALE_LENGTH into a second SCALE_BASE: the first conv has no scale length
    bad = _patched(part.payload_cop2, scale_length.offset, 0x4022)
    with pytest.raises(NpuError, match=r"NPU_OP_CONV at byte \d+ uses register SCALE_LENGTH"):
        run_payload(bad, regions_for(part, [np.zeros(640, np.int8)]))


# ---- access checker ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"])
def test_accesses_fit_velas_regions_exactly(mlperf, name):
    _, _, part = mlperf(name)
    sizes = {0: len(part.read_only), 1: part.scratch_bytes, 2: part.scratch_bytes}
    accesses = check_accesses(part.payload_cop2, sizes)
    assert {a.what for a in accesses} >= {"IFM", "OFM", "weights", "scales"}
    assert max(a.end for a in accesses if a.region == 1) <= part.scratch_bytes
    # the scratch is used up to (almost) its last byte: one byte less must be refused
    last = max(a.end for a in accesses if a.region == 1)
    with pytest.raises(NpuError, match=r"NPU_OP_\w+ at byte \d+: \w+.* region 1, which has"):
        check_accesses(part.payload_cop2, {**sizes, 1: last - 1})
    for io_name, offset in part.io_offsets.items():
        assert any(a.region == 1 and a.start <= offset < a.end for a in accesses), io_name


def test_missing_region_and_misaligned_brick_base_are_errors(mlperf):
    _, _, part = mlperf("ad01_int8")
    with pytest.raises(NpuError, match="region 0, which has no buffer"):
        check_accesses(part.payload_cop2, {1: part.scratch_bytes})
    stream = parse_payload(part.payload_cop2)
    ofm_base = next(c for c in stream.commands if c.name == "OFM_BASE0")  # an NHCWB16 OFM
    data = bytearray(part.payload_cop2)
    struct.pack_into("<I", data, ofm_base.offset + 4, 8)
    with pytest.raises(NpuError, match="16-byte aligned"):
        check_accesses(bytes(data), {0: len(part.read_only), 1: part.scratch_bytes})


# ---- whole models -------------------------------------------------------------------------------
# Bit-exactness only: speed is measured (README, closing note), never asserted in wall-clock time.
@pytest.mark.parametrize("name, count", [("ad01_int8", 10), ("kws_ref_model", 10),
                                         ("pretrainedResnet_quant", 8), ("vww_96_int8", 6)])
def test_mlperf_models_are_bit_exact_with_tflm(mlperf, name, count):
    path, program, part = mlperf(name)
    assert_bit_exact(path, program, part, count)


@pytest.mark.parametrize("board, accel", [(BOARD, ACCEL), (U85_BOARD, U85_ACCEL)])
def test_seed003_mobilenetv2_is_bit_exact_with_tflm(tmp_path, board, accel):
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from models import MobileNetV2, seeded
    from mcu_compile.api import build_program
    generator = torch.Generator().manual_seed(0)
    example = (torch.randn((1, 3, 96, 96), generator=generator),)
    calibration = [(torch.randn((1, 3, 96, 96), generator=generator),) for _ in range(4)]
    program = build_program(seeded(MobileNetV2(width=0.05), seed=2), example, calibration)
    path = tmp_path / "mobilenetv2.tflite"
    path.write_bytes(write_tflite(program))
    assert_bit_exact(path, program, compile_partition(program, board), 5, accel=accel)


@pytest.mark.parametrize("name, board, accel, seed", [("kws_ref_model", BOARD, ACCEL, 7),
                                                      ("vww_96_int8", U85_BOARD, U85_ACCEL, 11)])
def test_cop1_payload_and_separate_io_regions_run_the_same(mlperf, name, board, accel, seed):
    """The .tflite's COP1 stream, and a stream with its input in region 3 and output in 4."""
    from mcu_compile.passes.delegate import run_vela
    path, program, part = mlperf(name, board)
    inputs = random_inputs(program, np.random.default_rng(seed))
    ref = tflm_outputs(path, inputs)
    regions = regions_for(part, inputs)
    run_payload(part.payload_cop1, regions, accel)
    offset = part.io_offsets[part.outputs[0]]
    assert bytes(regions[1][offset:offset + ref[0].nbytes]) == ref[0].tobytes()
    model, _ = run_vela(load_board(board), path.read_bytes(), "raw", "COP2", separate_io=True)
    assert parse_payload(bytes(model.command_stream)).addressing == 2
    scratch = bytearray(model.scratch.size)
    regions = {0: bytearray(model.read_only.data), 1: scratch, 2: scratch,
               3: bytearray(inputs[0].tobytes()), 4: bytearray(ref[0].nbytes)}
    assert {a.region for a in check_accesses(bytes(model.command_stream), {k: len(v) for k, v in regions.items()})} \
        >= {0, 1, 3, 4}
    run_payload(bytes(model.command_stream), regions, accel)
    assert bytes(regions[4]) == ref[0].tobytes()


def test_u85_streams_parse_check_and_refuse_the_wrong_accelerator(mlperf):
    _, program, part55 = mlperf("kws_ref_model")
    part = compile_partition(program, U85_BOARD)
    stream = parse_payload(part.payload_cop2)
    assert (stream.product, stream.macs) == ("ethos-u85", 256)
    accesses = check_accesses(part.payload_cop2, {0: len(part.read_only), 1: part.scratch_bytes,
                                                  2: part.scratch_bytes})
    assert max(a.end for a in accesses if a.region == 1) <= part.scratch_bytes
    zeros = [np.zeros((1, 49, 10, 1), np.int8)]
    with pytest.raises(NpuError, match="compiled for ethos-u85-256"):
        run_payload(part.payload_cop2, regions_for(part, zeros), ACCEL)
    with pytest.raises(NpuError, match="compiled for ethos-u55-128"):
        run_payload(part55.payload_cop2, regions_for(part55, zeros), U85_ACCEL)
    with pytest.raises(NpuError, match="not 'ethos-u85-128'"):
        run_payload(part.payload_cop2, regions_for(part, zeros), "ethos-u85-128")


# ---- single operators on awkward shapes -------------------------------------------------------
def _quant(rng, low=0.01, high=0.2) -> Quant:
    return Quant.per_tensor(float(rng.uniform(low, high)), int(rng.integers(-20, 20)))


def _program(tensors, ops, inputs, outputs) -> Program:
    program = Program()
    for tensor in tensors:
        program.add_tensor(tensor)
    for op in ops:
        program.add_op(op)
    program.inputs, program.outputs = inputs, outputs
    return program


def _output_quant(rng, xq: Quant, wscale, fan_in: int) -> Quant:
    """An output scale that keeps random int8 data mostly unsaturated: the accumulator of
    uniform int8 operands has a standard deviation of about 74 * 74 * sqrt(fan_in)."""
    scale = xq.scale[0] * float(np.mean(wscale)) * 74 * 74 * np.sqrt(fan_in) / 40
    return Quant.per_tensor(scale * float(rng.uniform(0.7, 1.4)), int(rng.integers(-20, 20)))


def conv_program(rng, h, w, cin, cout, kh, kw, stride, padding, act="NONE", dilation=1) -> Program:
    xq = _quant(rng)
    wscale = rng.uniform(0.002, 0.02, cout)
    yq = _output_quant(rng, xq, wscale, kh * kw * cin)
    weights = rng.integers(-127, 128, (cout, kh, kw, cin), dtype=np.int8)
    bias = rng.integers(-2000, 2000, cout).astype(np.int32)
    return _program([
        Tensor("x", (1, h, w, cin), "int8", xq),
        Tensor("w", (cout, kh, kw, cin), "int8", Quant(wscale, np.zeros(cout), 0), weights),
        Tensor("b", (cout,), "int32", Quant(xq.scale[0] * wscale, np.zeros(cout), 0), bias),
        Tensor("y", (1, -(-h // stride) if padding == "SAME" else (h - (kh - 1) * dilation - 1) // stride + 1,
                     -(-w // stride) if padding == "SAME" else (w - (kw - 1) * dilation - 1) // stride + 1, cout),
               "int8", yq)],
        [Op("CONV_2D", ["x", "w", "b"], ["y"], {"padding": padding, "stride_h": stride, "stride_w": stride,
                                                "dilation_h_factor": dilation, "dilation_w_factor": dilation,
                                                "fused_activation_function": act})], ["x"], ["y"])


def depthwise_program(rng, h, w, c, multiplier, k, stride, padding, act="NONE") -> Program:
    xq = _quant(rng)
    out_c = c * multiplier
    wscale = rng.uniform(0.002, 0.02, out_c)
    yq = _output_quant(rng, xq, wscale, k * k)
    weights = rng.integers(-127, 128, (1, k, k, out_c), dtype=np.int8)
    bias = rng.integers(-2000, 2000, out_c).astype(np.int32)
    oh = -(-h // stride) if padding == "SAME" else (h - k) // stride + 1
    ow = -(-w // stride) if padding == "SAME" else (w - k) // stride + 1
    return _program([
        Tensor("x", (1, h, w, c), "int8", xq),
        Tensor("w", (1, k, k, out_c), "int8", Quant(wscale, np.zeros(out_c), 3), weights),
        Tensor("b", (out_c,), "int32", Quant(xq.scale[0] * wscale, np.zeros(out_c), 0), bias),
        Tensor("y", (1, oh, ow, out_c), "int8", yq)],
        [Op("DEPTHWISE_CONV_2D", ["x", "w", "b"], ["y"],
            {"padding": padding, "stride_h": stride, "stride_w": stride, "depth_multiplier": multiplier,
             "fused_activation_function": act})], ["x"], ["y"])


def pool_program(rng, kind, h, w, c, k, stride, padding) -> Program:
    q = _quant(rng)
    oh = -(-h // stride) if padding == "SAME" else (h - k) // stride + 1
    ow = -(-w // stride) if padding == "SAME" else (w - k) // stride + 1
    return _program([Tensor("x", (1, h, w, c), "int8", q), Tensor("y", (1, oh, ow, c), "int8", q)],
                    [Op(kind, ["x"], ["y"], {"padding": padding, "stride_h": stride, "stride_w": stride,
                                             "filter_height": k, "filter_width": k})], ["x"], ["y"])


def binary_program(rng, kind, shape_a, shape_b, same_scale=False, act="NONE") -> Program:
    qa = _quant(rng)
    qb = qa if same_scale else _quant(rng)
    out = tuple(max(a, b) for a, b in zip(shape_a, shape_b))
    return _program([Tensor("a", shape_a, "int8", qa), Tensor("b", shape_b, "int8", qb),
                     Tensor("y", out, "int8", _quant(rng, 0.02, 0.3))],
                    [Op(kind, ["a", "b"], ["y"], {"fused_activation_function": act})], ["a", "b"], ["y"])


def fc_program(rng, batch, cin, cout, act="NONE") -> Program:
    xq = _quant(rng)
    wscale = float(rng.uniform(0.002, 0.02))
    yq = _output_quant(rng, xq, wscale, cin)
    return _program([
        Tensor("x", (batch, cin), "int8", xq),
        Tensor("w", (cout, cin), "int8", Quant.per_tensor(wscale, 0), rng.integers(-127, 128, (cout, cin))),
        Tensor("b", (cout,), "int32", Quant.per_tensor(xq.scale[0] * wscale, 0),
               rng.integers(-3000, 3000, cout).astype(np.int32)),
        Tensor("y", (batch, cout), "int8", yq)],
        [Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"], {"fused_activation_function": act})], ["x"], ["y"])


def softmax_program(rng, shape) -> Program:
    return _program([Tensor("x", shape, "int8", Quant.per_tensor(float(rng.uniform(0.01, 0.06)),
                                                                int(rng.integers(-50, 50)))),
                     Tensor("y", shape, "int8", Quant.per_tensor(1 / 256, -128))],
                    [Op("SOFTMAX", ["x"], ["y"], {"beta": 1.0})], ["x"], ["y"])


CASES = {
    "conv 3x3 same, odd channels": lambda r: conv_program(r, 9, 7, 3, 5, 3, 3, 1, "SAME", "RELU"),
    "conv 3x3 stride 2 on odd size": lambda r: conv_program(r, 11, 9, 6, 12, 3, 3, 2, "SAME"),
    "conv 10x4 stride 2 one-sided pad": lambda r: conv_program(r, 49, 10, 1, 16, 10, 4, 2, "SAME", "RELU"),
    "conv 1x1 wide (part-kernel / depth-first)": lambda r: conv_program(r, 5, 6, 40, 24, 1, 1, 1, "VALID"),
    "conv 5x5 valid stride 2 even size": lambda r: conv_program(r, 12, 12, 17, 9, 5, 5, 2, "VALID", "RELU"),
    "conv 9x9 (sub-kernels)": lambda r: conv_program(r, 12, 11, 4, 8, 9, 9, 1, "SAME"),
    "conv dilation 2": lambda r: conv_program(r, 13, 13, 5, 7, 3, 3, 1, "SAME", dilation=2),
    "conv deep (many OFM blocks)": lambda r: conv_program(r, 6, 6, 70, 150, 3, 3, 1, "SAME"),
    "depthwise 3x3 odd channels": lambda r: depthwise_program(r, 10, 9, 7, 1, 3, 1, "SAME", "RELU"),
    "depthwise stride 2 odd size": lambda r: depthwise_program(r, 11, 13, 20, 1, 3, 2, "SAME"),
    "depthwise channel multiplier 3": lambda r: depthwise_program(r, 8, 8, 4, 3, 3, 1, "VALID"),
    "average pool same (padded)": lambda r: pool_program(r, "AVERAGE_POOL_2D", 9, 7, 5, 3, 2, "SAME"),
    "average pool valid": lambda r: pool_program(r, "AVERAGE_POOL_2D", 10, 10, 19, 3, 3, "VALID"),
    "average pool global 25x5": lambda r: _global_pool(r),
    "max pool same odd": lambda r: pool_program(r, "MAX_POOL_2D", 9, 11, 6, 3, 2, "SAME"),
    "add, different scales": lambda r: binary_program(r, "ADD", (1, 5, 7, 9), (1, 5, 7, 9)),
    "add, same scales": lambda r: binary_program(r, "ADD", (1, 4, 4, 17), (1, 4, 4, 17), same_scale=True),
    "add, broadcast channel vector": lambda r: binary_program(r, "ADD", (1, 6, 5, 8), (1, 1, 1, 8), act="RELU"),
    "add, broadcast first operand": lambda r: binary_program(r, "ADD", (1, 1, 5, 1), (1, 3, 5, 4)),
    "mul, broadcast": lambda r: binary_program(r, "MUL", (1, 4, 6, 3), (1, 4, 1, 3)),
    "fully connected batch 3": lambda r: fc_program(r, 3, 37, 11, "RELU"),
    "fully connected wide": lambda r: fc_program(r, 1, 300, 70),
    "softmax 10 classes": lambda r: softmax_program(r, (1, 10)),
    "softmax rows": lambda r: softmax_program(r, (3, 17)),
}


def _global_pool(rng) -> Program:
    q = _quant(rng)
    return _program([Tensor("x", (1, 25, 5, 64), "int8", q), Tensor("y", (1, 1, 1, 64), "int8", q)],
                    [Op("AVERAGE_POOL_2D", ["x"], ["y"], {"padding": "VALID", "filter_height": 25,
                                                          "filter_width": 5})], ["x"], ["y"])


@pytest.mark.parametrize("case", list(CASES))
def test_single_operators_are_bit_exact_with_tflm(case, tmp_path):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    program = CASES[case](rng)
    path = tmp_path / "op.tflite"
    path.write_bytes(write_tflite(program))
    part = compile_partition(program)
    check_accesses(part.payload_cop2, {0: len(part.read_only), 1: part.scratch_bytes, 2: part.scratch_bytes})
    assert_bit_exact(path, program, part, 3, seed=int(rng.integers(1 << 30)))


# ---- Ethos-U85-256 (corstone-320) -----------------------------------------------------------------
# Bit-exactness only: speed is measured (README, closing note), never asserted in wall-clock time.
@pytest.mark.parametrize("name, count", [("ad01_int8", 10), ("kws_ref_model", 10),
                                         ("pretrainedResnet_quant", 8), ("vww_96_int8", 6)])
def test_u85_mlperf_models_are_bit_exact_with_tflm(mlperf, name, count):
    path, program, part = mlperf(name, U85_BOARD)
    assert parse_payload(part.payload_cop2).product == "ethos-u85"
    accesses = check_accesses(part.payload_cop2, {0: len(part.read_only), 1: part.scratch_bytes,
                                                  2: part.scratch_bytes})
    assert max(a.end for a in accesses if a.region == 1) <= part.scratch_bytes
    assert_bit_exact(path, program, part, count, seed=85, accel=U85_ACCEL)


def test_u85_streams_use_what_the_model_covers(mlperf):
    """The four models exercise chaining, LUT loads, 2:4 sparse and fast-decoded weights."""
    seen = set()
    for name in ("kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"):
        for command in parse_payload(mlperf(name, U85_BOARD)[2].payload_cop2).commands:
            if command.name == "OFM_PRECISION" and (command.param >> 14) & 3 == 2:
                seen.add("chained")
            if command.name == "ACTIVATION" and command.param & 0x1F:
                seen.add("lut")
            if command.name == "WEIGHT_FORMAT":
                seen.add({0: "standard", 1: "fast", 0x10: "sparse", 0x11: "fast sparse"}[command.param])
    assert seen >= {"chained", "lut", "standard", "sparse", "fast"}


def _mean_program(rng) -> Program:
    return _program([Tensor("x", (1, 7, 9, 13), "int8", _quant(rng)),
                     Tensor("axes", (2,), "int32", None, np.array([1, 2], np.int32)),
                     Tensor("y", (1, 1, 1, 13), "int8", _quant(rng))],
                    [Op("MEAN", ["x", "axes"], ["y"], {"keep_dims": True})], ["x"], ["y"])


def _pad_program(rng) -> Program:
    q = _quant(rng)
    return _program([Tensor("x", (1, 5, 6, 7), "int8", q),
                     Tensor("p", (4, 2), "int32", None, np.array([[0, 0], [1, 2], [2, 1], [0, 0]], np.int32)),
                     Tensor("y", (1, 8, 9, 7), "int8", q)], [Op("PAD", ["x", "p"], ["y"], {})], ["x"], ["y"])


def _transpose_program(rng) -> Program:
    q = _quant(rng)
    return _program([Tensor("x", (1, 5, 6, 7), "int8", q),
                     Tensor("p", (4,), "int32", None, np.array([0, 2, 1, 3], np.int32)),
                     Tensor("y", (1, 6, 5, 7), "int8", q)], [Op("TRANSPOSE", ["x", "p"], ["y"], {})], ["x"], ["y"])


def _concat_program(rng) -> Program:
    q = _quant(rng)
    return _program([Tensor("a", (1, 4, 5, 3), "int8", q), Tensor("b", (1, 4, 5, 6), "int8", q),
                     Tensor("y", (1, 4, 5, 9), "int8", q)],
                    [Op("CONCATENATION", ["a", "b"], ["y"], {"axis": 3})], ["a", "b"], ["y"])


def _quantize_program(rng) -> Program:
    return _program([Tensor("x", (1, 6, 7, 5), "int8", _quant(rng)), Tensor("y", (1, 6, 7, 5), "int8", _quant(rng))],
                    [Op("QUANTIZE", ["x"], ["y"], {})], ["x"], ["y"])


EXTRA_CASES = {  # run on both NPUs; on the U85 they use OP_SCALAR, 32-bit MUL and OFM transposes
    "mean over H and W": _mean_program,
    "pad": _pad_program,
    "transpose H/W": _transpose_program,
    "concatenation on channels": _concat_program,
    "quantize (requantize int8)": _quantize_program,
    "conv relu6": lambda r: conv_program(r, 8, 8, 4, 6, 3, 3, 1, "SAME", "RELU6"),
    "max pool valid 2x2": lambda r: pool_program(r, "MAX_POOL_2D", 12, 10, 20, 2, 2, "VALID"),
    "mul same shape relu": lambda r: binary_program(r, "MUL", (1, 4, 5, 19), (1, 4, 5, 19), act="RELU"),
}


@pytest.mark.parametrize("case", list(EXTRA_CASES))
def test_more_single_operators_are_bit_exact_with_tflm(case, tmp_path):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    program = EXTRA_CASES[case](rng)
    path = tmp_path / "op.tflite"
    path.write_bytes(write_tflite(program))
    assert_bit_exact(path, program, compile_partition(program), 3, seed=int(rng.integers(1 << 30)))


@pytest.mark.parametrize("case", list(CASES) + list(EXTRA_CASES))
def test_u85_single_operators_are_bit_exact_with_tflm(case, tmp_path):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    program = {**CASES, **EXTRA_CASES}[case](rng)
    path = tmp_path / "op.tflite"
    path.write_bytes(write_tflite(program))
    part = compile_partition(program, U85_BOARD)
    check_accesses(part.payload_cop2, {0: len(part.read_only), 1: part.scratch_bytes, 2: part.scratch_bytes})
    assert_bit_exact(path, program, part, 3, seed=int(rng.integers(1 << 30)), accel=U85_ACCEL)


def _first(stream, name: str):
    return next(c for c in stream.commands if c.name == name)


@pytest.mark.parametrize("register, value, message", [
    ("ACC_FORMAT", 0x0210, r"NPU_OP_CONV at byte \d+: ACC_FORMAT \(set at byte \d+\) keeps or chains"),
    ("ACC_FORMAT", 0x0201, r"NPU_OP_CONV at byte \d+: .*48-bit accumulator"),
    ("OFM_PRECISION", 0x0241, r"NPU_OP_CONV at byte \d+: OFM_PRECISION \(set at byte \d+\) reverses"),
    ("OFM_PRECISION", 0xC041, r"NPU_OP_CONV at byte \d+: .*selects none storage for the OFM"),
    ("IFM_UPSCALE", 0x0001, r"NPU_OP_CONV at byte \d+: IFM_UPSCALE .* upscaling"),
])
def test_u85_uncovered_features_are_errors_naming_the_command(mlperf, register, value, message):
    _, _, part = mlperf("ad01_int8", U85_BOARD)
    command = _first(parse_payload(part.payload_cop2), register)
    word = struct.unpack_from("<I", part.payload_cop2, command.offset)[0]
    bad = _patched(part.payload_cop2, command.offset, (word & 0xFFFF) | value << 16)
    with pytest.raises(NpuError, match=message):
        run_payload(bad, regions_for(part, [np.zeros(640, np.int8)]), U85_ACCEL)


def test_u85_lut_tables_come_from_the_streams_dma(mlperf):
    """The softmax's exp table is what the stream's DMA loads into the LUT RAM: without the
    DMA (turned into a no-op) the output changes; the LUT RAM starts zeroed on every run."""
    path, program, part = mlperf("kws_ref_model", U85_BOARD)
    stream = parse_payload(part.payload_cop2)
    dma = _first(stream, "NPU_OP_DMA_START")
    bad = _patched(part.payload_cop2, dma.offset, 0x0013)  # DMA_START -> PMU_MASK (no effect)
    inputs = random_inputs(program, np.random.default_rng(3))
    ref = tflm_outputs(path, inputs)
    good, _ = npu_outputs(part, inputs, ref, U85_ACCEL)
    assert good[0].tobytes() == ref[0].tobytes()
    regions = regions_for(part, inputs)
    run_payload(bad, regions, U85_ACCEL)
    offset = part.io_offsets[part.outputs[0]]
    assert bytes(regions[1][offset:offset + ref[0].nbytes]) != ref[0].tobytes()


def test_u85_fast_weight_stream_is_decoded_without_vela(tmp_path):
    """Vela's Python decoder aborts the process on fast-weight-decoder streams; ours reads them."""
    from mcu_compile.sim.ethosu_model.weights85 import decode_fwd
    case = "fully connected wide"
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    program = CASES[case](rng)
    part = compile_partition(program, U85_BOARD)
    stream = parse_payload(part.payload_cop2)
    assert _first(stream, "WEIGHT_FORMAT").param & 1
    base, length = _first(stream, "WEIGHT_BASE").value, _first(stream, "WEIGHT_LENGTH").value
    values = decode_fwd(bytes(part.read_only[base:base + length]), 300 * 70, "test")
    assert sorted(np.unique(values)) == sorted(np.unique(program.tensor("w").data))
    with pytest.raises(NpuError, match="holds fewer than"):
        decode_fwd(bytes(part.read_only[base:base + length]), 10 ** 6, "test")
