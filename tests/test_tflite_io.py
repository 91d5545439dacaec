"""TFLite flatbuffer reading and writing: round trips, corrupt files, unsupported ops; what
converters write that TFLite Micro has no kernel for (TILE, read as CONCATENATIONs) or
computes in float inside the graph (DEQUANTIZE -> QUANTIZE), bit-exact in firmware."""
from __future__ import annotations

import shutil
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from kernel_harness import firmware_run, random_inputs, tflm_run
from mcu_compile.errors import McuCompileError, TFLiteFormatError, UnsupportedOpError
from mcu_compile.ir.program import Op, Program, Quant, Tensor
from mcu_compile.ir.tflite_io import load_tflite, read_tflite, write_tflite
from mcu_compile.ops import common, params, registry
from mcu_compile.ops.quantize import dequantize_quantize_table
from mcu_compile.reference import interpreter as reference

MODELS = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8", "ad01_int8"]


def q(scale: float, zp: int) -> Quant:
    return Quant.per_tensor(float(np.float32(scale)), zp)


def small_program() -> Program:
    """conv (per-channel) -> depthwise -> avg pool -> reshape -> FC -> softmax, plus metadata."""
    rng = np.random.default_rng(0)
    p = Program()
    add = p.add_tensor
    add(Tensor("x", (1, 8, 8, 3), quant=q(0.05, -3)))
    add(Tensor("w1", (4, 3, 3, 3), data=rng.integers(-127, 128, (4, 3, 3, 3)),
               quant=Quant(np.array([0.01, 0.02, 0.015, 0.005], dtype=np.float32), np.zeros(4), 0)))
    add(Tensor("b1", (4,), "int32", data=rng.integers(-500, 500, 4),
               quant=Quant(np.array([0.01, 0.02, 0.015, 0.005], dtype=np.float32) * 0.05, np.zeros(4))))
    add(Tensor("c1", (1, 4, 4, 4), quant=q(0.1, -128)))
    add(Tensor("w2", (1, 3, 3, 8), data=rng.integers(-127, 128, (1, 3, 3, 8)),
               quant=Quant(np.full(8, 0.02, dtype=np.float32), np.zeros(8), 3)))
    add(Tensor("b2", (8,), "int32", data=rng.integers(-500, 500, 8),
               quant=Quant(np.full(8, 0.002, dtype=np.float32), np.zeros(8))))
    add(Tensor("c2", (1, 4, 4, 8), quant=q(0.2, 5)))
    add(Tensor("p", (1, 1, 1, 8), quant=q(0.2, 5)))
    add(Tensor("shape", (2,), "int32", data=np.array([1, 8])))
    add(Tensor("r", (1, 8), quant=q(0.2, 5)))
    add(Tensor("w3", (3, 8), data=rng.integers(-127, 128, (3, 8)), quant=q(0.03, 0)))
    add(Tensor("f", (1, 3), quant=q(0.3, 2)))
    add(Tensor("y", (1, 3), quant=q(1 / 256, -128)))
    p.add_op(Op("CONV_2D", ["x", "w1", "b1"], ["c1"], {
        "padding": "SAME", "stride_h": 2, "stride_w": 2, "dilation_h_factor": 1,
        "dilation_w_factor": 1, "fused_activation_function": "RELU6"}))
    p.add_op(Op("DEPTHWISE_CONV_2D", ["c1", "w2", "b2"], ["c2"], {
        "padding": "SAME", "stride_h": 1, "stride_w": 1,
        "dilation_h_factor": 1, "dilation_w_factor": 1, "depth_multiplier": 2,
        "fused_activation_function": "NONE"}))
    p.add_op(Op("AVERAGE_POOL_2D", ["c2"], ["p"], {
        "padding": "VALID", "stride_h": 1, "stride_w": 1, "filter_height": 4, "filter_width": 4,
        "fused_activation_function": "NONE"}))
    p.add_op(Op("RESHAPE", ["p", "shape"], ["r"], {"new_shape": [1, 8]}))
    p.add_op(Op("FULLY_CONNECTED", ["r", "w3", ""], ["f"],
                {"fused_activation_function": "RELU", "keep_num_dims": False}))
    p.add_op(Op("SOFTMAX", ["f"], ["y"], {"beta": 1.0}))
    p.inputs, p.outputs = ["x"], ["y"]
    p.metadata["mcu_compile_version"] = b"0.1.0"
    return p


def test_round_trip_preserves_program():
    original = small_program()
    back = read_tflite(write_tflite(original))
    assert list(back.tensors) == list(original.tensors)
    assert (back.inputs, back.outputs, back.metadata) == (original.inputs, original.outputs,
                                                          original.metadata)
    for a, b in zip(original.ops, back.ops):
        assert (a.kind, a.inputs, a.outputs, a.options) == (b.kind, b.inputs, b.outputs, b.options)
    for name, t in original.tensors.items():
        u = back.tensors[name]
        assert (u.shape, u.dtype, u.is_const) == (t.shape, t.dtype, t.is_const)
        if t.is_const:
            np.testing.assert_array_equal(u.data, t.data)
        if t.quant is not None:
            np.testing.assert_array_equal(u.quant.scale, t.quant.scale.astype(np.float32))
            np.testing.assert_array_equal(u.quant.zero_point, t.quant.zero_point)
            assert u.quant.axis == t.quant.axis


def test_write_read_write_is_stable():
    first = write_tflite(small_program())
    assert write_tflite(read_tflite(first)) == first


def test_written_model_runs_in_tflite_micro():
    interp = runtime.Interpreter.from_bytes(write_tflite(small_program()))
    interp.set_input(np.zeros((1, 8, 8, 3), np.int8), 0)
    interp.invoke()
    assert interp.get_output(0).shape == (1, 3)


def test_depthwise_without_bias_gets_zero_bias():
    p = small_program()
    p.ops[1].inputs[2] = ""
    back = read_tflite(write_tflite(p))
    bias = back.tensor(back.ops[1].inputs[2])
    assert bias.shape == (8,) and not bias.data.any()


def test_constant_buffers_are_aligned():
    data = write_tflite(small_program())
    model = fb.Model.GetRootAs(data, 0)
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength():
            assert buf.DataAsNumpy().ctypes.data % 16 == np.frombuffer(data, np.uint8).ctypes.data % 16


@pytest.mark.parametrize("name", MODELS)
def test_real_models_round_trip(shared_dir, name):
    program = load_tflite(shared_dir / "models" / f"{name}.tflite")
    assert program.inputs and program.outputs and program.ops
    data = write_tflite(program)
    assert write_tflite(read_tflite(data)) == data


def _check_format_error(data: bytes):
    with pytest.raises(TFLiteFormatError) as info:
        read_tflite(data, source="m.tflite")
    message = str(info.value)
    assert "\n" not in message and message.startswith("m.tflite:")
    return message


@pytest.mark.parametrize("data", [b"", b"TFL3", bytes(range(256)) * 4,
                                  np.random.default_rng(0).bytes(5000)])
def test_garbage_is_a_format_error(data):
    assert "TFL3" in _check_format_error(data)


def test_wrong_identifier():
    data = bytearray(write_tflite(small_program()))
    data[4:8] = b"XXXX"
    assert "not a TFLite" in _check_format_error(bytes(data))


def test_truncated_model_is_a_format_error(shared_dir):
    data = (shared_dir / "models" / "kws_ref_model.tflite").read_bytes()
    for cut in (9, 64, 1000, len(data) // 2, len(data) - 100):
        message = _check_format_error(data[:cut])
        assert "corrupt" in message and "re-export" in message


def test_bad_buffer_index_is_a_format_error():
    model = fb.ModelT.InitFromPackedBuf(write_tflite(small_program()), 0)
    model.subgraphs[0].tensors[1].buffer = 999
    assert "buffer 999" in _check_format_error(_pack(model))


def test_wrong_buffer_size_is_a_format_error():
    model = fb.ModelT.InitFromPackedBuf(write_tflite(small_program()), 0)
    model.subgraphs[0].tensors[1].shape = np.array([5, 3, 3, 3], dtype=np.int32)
    assert "bytes" in _check_format_error(_pack(model))


def _pack(model: fb.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("code,name", [(fb.BuiltinOperator.ATAN2, "ATAN2"),
                                       (fb.BuiltinOperator.CUSTOM, "CUSTOM op 'MyOp'")])
def test_unsupported_op(code, name):
    model = fb.ModelT.InitFromPackedBuf(write_tflite(small_program()), 0)
    opcode = model.operatorCodes[model.subgraphs[0].operators[-1].opcodeIndex]  # SOFTMAX
    opcode.builtinCode, opcode.deprecatedBuiltinCode = code, min(code, 127)  # 127: see builtinCode
    opcode.customCode = b"MyOp"
    with pytest.raises(UnsupportedOpError, match=name):
        read_tflite(_pack(model))


def test_unsupported_op_on_write():
    p = small_program()
    p.ops[-1].kind = "ATAN2"
    with pytest.raises(UnsupportedOpError, match="ATAN2"):
        write_tflite(p)


def test_every_unsupported_operator_is_named_at_once():
    model = fb.ModelT.InitFromPackedBuf(write_tflite(small_program()), 0)
    atan2, custom = fb.OperatorCodeT(), fb.OperatorCodeT()
    atan2.builtinCode, atan2.deprecatedBuiltinCode = fb.BuiltinOperator.ATAN2, 127  # 127: see builtinCode
    custom.builtinCode = custom.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    custom.customCode = b"MyOp"
    model.operatorCodes += [atan2, custom]
    operators = model.subgraphs[0].operators
    operators[0].opcodeIndex, operators[-1].opcodeIndex = len(model.operatorCodes) - 2, len(model.operatorCodes) - 1
    with pytest.raises(UnsupportedOpError, match=r"operators ATAN2 \(operator 0\), CUSTOM op 'MyOp' \(operator "
                                                 r"\d+\) are not supported by mcu-compile; it runs: ABS, ADD"):
        read_tflite(_pack(model))


def test_float_model_is_rejected():
    sine = Path(runtime.__file__).parent / "sine_float.tflite"
    with pytest.raises(UnsupportedOpError, match="int8"):
        load_tflite(sine)


def test_duplicate_tensor_names_are_made_unique():
    model = fb.ModelT.InitFromPackedBuf(write_tflite(small_program()), 0)
    for t in model.subgraphs[0].tensors:
        t.name = b"same"
    program = read_tflite(_pack(model))
    assert len(set(program.tensors)) == len(model.subgraphs[0].tensors)
    assert program.ops[0].inputs[0] == program.inputs[0]


def test_missing_file(tmp_path):
    with pytest.raises(TFLiteFormatError, match="no such file"):
        load_tflite(tmp_path / "nope.tflite")


def test_errors_share_a_base_class():
    assert issubclass(TFLiteFormatError, McuCompileError)
    assert issubclass(UnsupportedOpError, McuCompileError)


# ---------------------------------------------------------------- TILE (no TFLite Micro kernel)

def _tile_program(in_shape, multiples, dtype="int32", out_quant=None) -> Program:
    """x (int8) -> TILE by constant multiples -> y: what a converter writes for repeat/tile."""
    p = Program()
    p.add_tensor(Tensor("x", in_shape, quant=q(0.05, 4)))
    p.add_tensor(Tensor("multiples", (len(multiples),), dtype, data=np.array(multiples, dtype=dtype)))
    p.add_tensor(Tensor("y", tuple(d * m for d, m in zip(in_shape, multiples)), quant=out_quant or q(0.05, 4)))
    p.add_op(Op("TILE", ["x", "multiples"], ["y"]))
    p.inputs, p.outputs = ["x"], ["y"]
    return p.verify()


TILES = {
    "every_axis_but_one": ((1, 2, 3, 4), [2, 1, 3, 2], "int32"),
    "int64_rank2": ((3, 5), [1, 4], "int64"),
    "nothing_repeats": ((2, 3), [1, 1], "int32"),
}


@pytest.mark.parametrize("case", sorted(TILES))
def test_tile_is_read_as_concatenations_with_tflite_semantics(case):
    """TILE's reference is TFLite's (numpy's tile: copies along each axis); the reader makes
    it CONCATENATIONs (a RESHAPE when nothing repeats), which TFLite Micro runs: its
    outputs equal the reference's byte for byte."""
    in_shape, multiples, dtype = TILES[case]
    tiled = _tile_program(in_shape, multiples, dtype)
    read = read_tflite(write_tflite(tiled), source="tile.tflite").verify()
    repeated = sum(m > 1 for m in multiples)
    assert [op.kind for op in read.ops] == (["CONCATENATION"] * repeated or ["RESHAPE"])
    assert all(op.source == "tile.tflite: operator 0 (TILE) -> y" for op in read.ops)
    for seed in range(2):
        [x] = random_inputs(tiled, seed)
        [want] = reference.run(tiled, [x])
        np.testing.assert_array_equal(want, np.tile(x, multiples))
        [got] = reference.run(read, [x])
        [tflm] = tflm_run(read, [x])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(tflm, want)


def test_tile_refusals_are_one_line():
    other_scale = _tile_program((2, 3), [2, 1], out_quant=q(0.1, 4))
    with pytest.raises(UnsupportedOpError) as error:
        read_tflite(write_tflite(other_scale), source="tile.tflite")
    assert str(error.value) == ("tile.tflite: operator 0 (TILE) -> y: TILE's output scale and zero point differ from "
                                "its input's (TILE copies bytes); give both the same quantization")
    computed = _tile_program((2, 3), [2, 1])
    computed.tensors["multiples"] = Tensor("multiples", (2,), "int32")  # an activation, not a constant
    computed.inputs.append("multiples")
    with pytest.raises(UnsupportedOpError) as error:
        read_tflite(write_tflite(computed), source="tile.tflite")
    assert str(error.value) == ("tile.tflite: operator 0 (TILE) -> y: TILE needs constant multiples; fold them into "
                                "the model (a constant repeat count) before converting")


# ---------------------------------------------------------------- QUANTIZE / DEQUANTIZE inside a graph

def _requantizations() -> Program:
    """x -> DEQUANTIZE -> QUANTIZE -> y (a converter's float requantization),
    x -> RELU -> QUANTIZE (int8 -> int8) -> z, and x -> TILE [1, 2, 3] -> t. The scales:
    TFLite's float32 arithmetic and the int8 requantization's fixed point (it rounds twice)
    give different bytes for 32 of the 256 codes, so folding the pair into an int8 QUANTIZE
    would not be bit-exact."""
    p = Program()
    for name, dtype, quant in (("x", "int8", q(0.16284078, 0)), ("r", "int8", q(0.16284078, 0)),
                               ("f", "float32", None), ("y", "int8", q(0.74601054, 27)),
                               ("z", "int8", q(0.05, -7))):
        p.add_tensor(Tensor(name, (1, 4, 64), dtype, quant))
    p.add_tensor(Tensor("multiples", (3,), "int32", data=np.array([1, 2, 3], dtype=np.int32)))
    p.add_tensor(Tensor("t", (1, 8, 192), quant=q(0.16284078, 0)))
    p.add_op(Op("RELU", ["x"], ["r"]))
    p.add_op(Op("DEQUANTIZE", ["x"], ["f"]))
    p.add_op(Op("QUANTIZE", ["f"], ["y"]))
    p.add_op(Op("QUANTIZE", ["r"], ["z"]))
    p.add_op(Op("TILE", ["x", "multiples"], ["t"]))
    p.inputs, p.outputs = ["x"], ["y", "z", "t"]
    return p.verify()


def test_dequantize_quantize_is_not_an_int8_requantization():
    program = _requantizations()
    codes = np.arange(-128, 128)
    folded = Program({n: program.tensor(n) for n in ("x", "y")}, [Op("QUANTIZE", ["x"], ["y"])], ["x"], ["y"])
    requantized = np.clip(common.rescale(codes, params.requant_params(folded, folded.ops[0])), -128, 127)
    assert int(np.sum(dequantize_quantize_table(program, program.ops[2]) != requantized)) == 32


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
def test_requantizations_and_tile_are_bit_exact_with_tflm_in_firmware(tmp_path):
    """Every int8 code through each: the firmware (Cortex-M55, QEMU) == TFLite Micro on the
    Edge program read from the file (the pair kept as the file has it, TILE as
    CONCATENATIONs) == the host reference, and the tiled output is numpy's tile."""
    program = _requantizations()
    read = read_tflite(write_tflite(program)).verify()
    assert [op.kind for op in read.ops] == ["RELU", "DEQUANTIZE", "QUANTIZE", "QUANTIZE", "CONCATENATION",
                                            "CONCATENATION"]
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 4, 64)
    want = tflm_run(read, [x])
    np.testing.assert_array_equal(want[2], np.tile(x, [1, 2, 3]))
    for got, expected in zip(reference.run(program, [x]), want):
        np.testing.assert_array_equal(got, expected)
    run = firmware_run(program, "mps3-an547", tmp_path, inputs=[[x]])
    for got, expected in zip(run.outputs[0], want):
        np.testing.assert_array_equal(np.asarray(got), expected)


FLOAT_FIX = ("export with full-integer (int8) quantization, so that the requantization is an int8 -> int8 QUANTIZE "
             "and no op computes in float32")


def _float_island(reader_kind: str) -> Program:
    """x -> DEQUANTIZE -> f (float32) read by reader_kind (with an int8 operand first)."""
    p = Program()
    p.add_tensor(Tensor("x", (1, 8), quant=q(0.05, 0)))
    p.add_tensor(Tensor("f", (1, 8), "float32"))
    p.add_tensor(Tensor("y", (1, 8), quant=q(0.05, 0)))
    p.add_op(Op("DEQUANTIZE", ["x"], ["f"]))
    p.add_op(Op(reader_kind, ["x", "f"] if reader_kind == "ADD" else ["f"], ["y"],
                {"fused_activation_function": "NONE"} if reader_kind == "ADD" else {}))
    p.inputs, p.outputs = ["x"], ["y"]
    return p


def test_float_islands_are_refused_in_one_line():
    first_float = _float_island("RELU")
    with pytest.raises(UnsupportedOpError) as error:
        read_tflite(write_tflite(first_float), source="island.tflite")
    assert str(error.value) == ("island.tflite: operator 1 (RELU) computes in float32; mcu-compile needs int8 "
                                "activations: export with full-integer (int8) quantization")
    second_float = read_tflite(write_tflite(_float_island("ADD")), source="island.tflite")
    with pytest.raises(UnsupportedOpError) as error:
        registry.check_compilable(second_float)
    assert str(error.value) == ("island.tflite: operator 0 (DEQUANTIZE) -> f: DEQUANTIZE inside the graph feeds "
                                "island.tflite: operator 1 (ADD) -> y, which computes in float32: the firmware has "
                                f"no float arithmetic (only DEQUANTIZE -> QUANTIZE runs, as a table); {FLOAT_FIX}")


def test_a_float_quantize_without_dequantize_is_refused_in_one_line():
    p = Program()
    p.add_tensor(Tensor("x", (1, 8), "float32"))
    for name in ("a", "b"):
        p.add_tensor(Tensor(name, (1, 8), quant=q(0.05, 0)))
        p.add_op(Op("QUANTIZE", ["x"], [name]))
    p.inputs, p.outputs = ["x"], ["a", "b"]
    program = read_tflite(write_tflite(p), source="float_input.tflite")
    with pytest.raises(UnsupportedOpError) as error:
        registry.check_compilable(program)
    assert str(error.value) == ("float_input.tflite: operator 0 (QUANTIZE) -> a: a QUANTIZE of a float32 tensor no "
                                "DEQUANTIZE made cannot run in firmware (it has no float arithmetic; one right after a "
                                f"float32 graph input runs on the host); {FLOAT_FIX}")
