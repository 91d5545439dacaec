"""Data-movement, reduction and resize kinds (ops/slice.py, ops/reduce.py, ops/resize.py):
each kernel against the host reference and the TFLite Micro interpreter byte for byte
(kernel_harness), strict shape rules, one-line refusals, the .tflite round trip, and a
small program of these kinds bit-exact in QEMU on Cortex-M55 and Cortex-M4."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from kernel_harness import (Builder, assert_kernel_case, assert_program_matches_tflm, assert_refused_in_one_line,
                            firmware_run, quant, random_inputs, run_c)
from mcu_compile.codegen.emit import emit_op
from mcu_compile.errors import IRError, UnsupportedOpError
from mcu_compile.ir.program import Op, Program, Tensor
from mcu_compile.ir.tflite_io import read_tflite, write_tflite
from mcu_compile.ops import registry
from mcu_compile.ops.shape import merged_transpose
from mcu_compile.reference import interpreter as reference

SCALE, ZP = 0.05, 4  # the input's quantization, which the data-movement outputs share


def _op(kind, in_shape, out_shape, ints=(), out_scale=SCALE, out_zp=ZP, seed=0, **options) -> Program:
    """x (in_shape, SCALE, ZP) plus int32 constants -> kind -> y."""
    b = Builder(seed)
    x = b.input(in_shape, scale=SCALE, zp=ZP)
    return b.op(kind, [x, *(b.ints(v) for v in ints)], out_shape, out_scale, out_zp, **options)


def _reduce(kind, in_shape, axes, keep_dims, same_quant=False, seed=0) -> Program:
    axes_mod = {a % len(in_shape) for a in axes}
    out = [1 if i in axes_mod else d for i, d in enumerate(in_shape)] if keep_dims else \
        [d for i, d in enumerate(in_shape) if i not in axes_mod]
    scale, zp = (SCALE, ZP) if same_quant else ((0.3, -9) if kind == "SUM" else (0.02, 9))
    return _op(kind, in_shape, tuple(out), [list(axes)], scale, zp, seed, keep_dims=keep_dims)


def _split(kind, in_shape, axis, sizes, seed=0) -> Program:
    b = Builder(seed)
    x = b.input(in_shape, scale=SCALE, zp=ZP)
    names = []
    for i, size in enumerate(sizes):
        shape = list(in_shape)
        shape[axis] = size
        names.append(f"y{i}")
        b.p.add_tensor(Tensor(names[-1], tuple(shape), "int8", quant(SCALE, ZP)))
    inputs = [b.ints([axis]), x] if kind == "SPLIT" else [x, b.ints(list(sizes)), b.ints([axis])]
    b.p.outputs = names
    b.p.add_op(Op(kind, inputs, names, {"num_splits": len(sizes)}))
    return b.p


def _split_v_unknown(seed=0) -> Program:
    program = _split("SPLIT_V", (2, 9, 3), -2, [2, 4, 3], seed)
    program.tensors[program.ops[0].inputs[1]].data[1] = -1  # the size the others leave
    return program


def _slice_int64(in_shape, begin, size, out_shape) -> Program:
    b = Builder(0)
    x = b.input(in_shape, scale=SCALE, zp=ZP)
    consts = []
    for values in (begin, size):
        consts.append(b.p.unique_name("p"))
        b.p.add_tensor(Tensor(consts[-1], (len(values),), "int64", None, np.array(values, dtype=np.int64)))
    return b.op("SLICE", [x, *consts], out_shape, SCALE, ZP)


def _strided(in_shape, begin, end, strides, out_shape, **masks) -> Program:
    return _op("STRIDED_SLICE", in_shape, out_shape, [begin, end, strides], **masks)


def _resize(kind, in_shape, size, **flags) -> Program:
    return _op(kind, in_shape, (in_shape[0], *size, in_shape[3]), [size], **flags)


CASES = {
    # MEAN, SUM, REDUCE_MAX, REDUCE_MIN: any axes, negative ones, keep_dims both ways
    "mean_hw_keep": lambda: _reduce("MEAN", (2, 5, 3, 4), (1, 2), True),
    "mean_hw_same_quant": lambda: _reduce("MEAN", (1, 7, 7, 16), (2, 1), False, same_quant=True),
    "mean_last_axis_negative": lambda: _reduce("MEAN", (2, 5, 3, 7), (-1,), True),
    "mean_outer_and_inner": lambda: _reduce("MEAN", (3, 5, 2, 4), (0, 3), False),
    "mean_outer_and_inner_rank3": lambda: _reduce("MEAN", (3, 5, 7), (0, 2), True),
    "mean_duplicate_axes_rank2": lambda: _reduce("MEAN", (6, 300), (1, -1), False),
    "sum_alternating_axes": lambda: _reduce("SUM", (2, 3, 4, 5), (0, 2), False),
    "sum_channels_keep": lambda: _reduce("SUM", (1, 4, 5, 6), (3,), True),
    "reduce_max_hw": lambda: _reduce("REDUCE_MAX", (2, 5, 3, 4), (1, 2), True, same_quant=True),
    "reduce_max_batch_and_width": lambda: _reduce("REDUCE_MAX", (3, 2, 5, 4), (0, -2), False, same_quant=True),
    "reduce_min_channels": lambda: _reduce("REDUCE_MIN", (2, 3, 9), (2,), False, same_quant=True),
    # STRIDED_SLICE: steps of either sign, negative and out-of-range indices, every mask
    "strided_steps_both_signs": lambda: _strided((3, 7, 5, 4), [0, -1, 1, 3], [3, 0, 5, 0], [2, -2, 2, -1],
                                                 (2, 3, 2, 3)),
    "strided_clamped_indices": lambda: _strided((2, 6, 5), [-9, 1, 0], [9, 100, -1], [1, 2, 3], (2, 3, 2)),
    "strided_begin_end_masks": lambda: _strided((3, 7, 5, 4), [2, 5, 3, 1], [1, 1, 1, 3], [1, -1, 1, 1],
                                                (3, 5, 5, 2), begin_mask=0b0111, end_mask=0b0101),
    "strided_shrink_axes": lambda: _strided((3, 7, 5, 4), [1, 0, -2, 0], [2, 7, -1, 4], [1, 3, 1, 2], (3, 2),
                                            shrink_axis_mask=0b0101),
    "strided_shrink_negative_begin": lambda: _strided((4, 6, 5), [-1, 2, 0], [0, 0, 5], [1, 1, 1], (5,),
                                                      shrink_axis_mask=0b011),
    "strided_channels_run": lambda: _strided((1, 4, 6, 9), [0, 0, 0, 2], [1, 4, 6, 7], [1, 1, 1, 1], (1, 4, 6, 5)),
    # SLICE: size -1, int64 begin/size, rank 5 (axes merged to fit the 4-D kernel)
    "slice_to_the_end": lambda: _op("SLICE", (3, 7, 5, 4), (2, 5, 5, 2), [[1, 2, 0, 1], [2, -1, 5, 2]]),
    "slice_int64_rank2": lambda: _slice_int64((5, 9), [3, 1], [2, 7], (2, 7)),
    "slice_rank5": lambda: _op("SLICE", (2, 3, 4, 5, 6), (2, 2, 4, 3, 6),
                               [[0, 1, 0, 2, 0], [-1, 2, -1, 3, -1]]),
    # SPLIT, SPLIT_V: several outputs
    "split_channels_3": lambda: _split("SPLIT", (1, 4, 5, 9), 3, [3, 3, 3]),
    "split_negative_axis": lambda: _split("SPLIT", (2, 6, 3), -2, [2, 2, 2]),
    "split_v_rows": lambda: _split("SPLIT_V", (2, 7, 5, 3), 1, [1, 4, 2]),
    "split_v_unknown_size": lambda: _split_v_unknown(),
    # MIRROR_PAD (mode 0 REFLECT, 1 SYMMETRIC)
    "mirror_reflect_4d": lambda: _op("MIRROR_PAD", (1, 6, 5, 4), (1, 9, 9, 6),
                                     [[[0, 0], [2, 1], [0, 4], [1, 1]]], mode=0),
    "mirror_symmetric_4d": lambda: _op("MIRROR_PAD", (2, 3, 5, 4), (2, 6, 7, 4),
                                       [[[0, 0], [3, 0], [1, 1], [0, 0]]], mode=1),
    "mirror_reflect_rank2": lambda: _op("MIRROR_PAD", (4, 7), (7, 13), [[[1, 2], [6, 0]]], mode=0),
    # RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR: up and down, align_corners, half_pixel_centers
    "nearest_up": lambda: _resize("RESIZE_NEAREST_NEIGHBOR", (1, 3, 4, 5), (6, 8)),
    "nearest_odd_half_pixel": lambda: _resize("RESIZE_NEAREST_NEIGHBOR", (2, 6, 5, 3), (11, 3),
                                              half_pixel_centers=True),
    "nearest_down_align_corners": lambda: _resize("RESIZE_NEAREST_NEIGHBOR", (1, 9, 7, 4), (4, 3),
                                                  align_corners=True),
    "nearest_up_align_corners": lambda: _resize("RESIZE_NEAREST_NEIGHBOR", (1, 4, 5, 2), (7, 13),
                                                align_corners=True),
    "bilinear_up": lambda: _resize("RESIZE_BILINEAR", (1, 3, 4, 5), (7, 9)),
    "bilinear_up_half_pixel": lambda: _resize("RESIZE_BILINEAR", (2, 4, 5, 3), (11, 8), half_pixel_centers=True),
    "bilinear_down_half_pixel": lambda: _resize("RESIZE_BILINEAR", (1, 9, 10, 4), (4, 3), half_pixel_centers=True),
    "bilinear_align_corners": lambda: _resize("RESIZE_BILINEAR", (1, 5, 4, 3), (9, 3), align_corners=True),
    "bilinear_down_align_corners": lambda: _resize("RESIZE_BILINEAR", (1, 11, 8, 2), (3, 5), align_corners=True),
    # SQUEEZE, EXPAND_DIMS (copied when not planned in place)
    "squeeze_given_dims": lambda: _op("SQUEEZE", (1, 1, 5, 1), (1, 5), squeeze_dims=[1, -1]),
    "squeeze_all_ones": lambda: _op("SQUEEZE", (1, 3, 1, 4), (3, 4)),
    "expand_dims_last": lambda: _op("EXPAND_DIMS", (3, 5), (3, 5, 1), [[-1]]),
    "expand_dims_front": lambda: _op("EXPAND_DIMS", (2, 3, 4), (1, 2, 3, 4), [[0]]),
    # TRANSPOSE of rank 5 whose axes merge to at most 4: torchvision's channel shuffle
    # (N, g, C/g, H, W) -> (N, C/g, g, H, W), and two axes moving together
    "transpose_rank5_channel_shuffle": lambda: _op("TRANSPOSE", (1, 2, 4, 3, 5), (1, 4, 2, 3, 5), [[0, 2, 1, 3, 4]]),
    "transpose_rank5_merged_pair": lambda: _op("TRANSPOSE", (2, 3, 4, 5, 2), (5, 2, 2, 3, 4), [[3, 4, 0, 1, 2]]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_matches_reference_and_tflm(case, kernel_build, tmp_path):
    assert_kernel_case(CASES[case](), kernel_build, tmp_path)


def test_reference_follows_numpy_semantics():
    """The gathers against numpy's own slicing, splitting and padding of the same input."""
    x = random_inputs(CASES["strided_steps_both_signs"](), 0)[0]
    [got] = reference.run(CASES["strided_steps_both_signs"](), [x])
    np.testing.assert_array_equal(got, x[0:3:2, -1:0:-2, 1:5:2, 3:0:-1])
    program = CASES["split_v_rows"]()
    x = random_inputs(program, 1)[0]
    for got, want in zip(reference.run(program, [x]), np.split(x, [1, 5], axis=1)):
        np.testing.assert_array_equal(got, want)
    program = CASES["mirror_symmetric_4d"]()
    x = random_inputs(program, 2)[0]
    [got] = reference.run(program, [x])
    np.testing.assert_array_equal(got, np.pad(x, [[0, 0], [3, 0], [1, 1], [0, 0]], mode="symmetric"))


def test_views_in_place_emit_nothing(kernel_build, tmp_path):
    for case, shape in (("squeeze_given_dims", (1, 5)), ("expand_dims_front", (1, 2, 3, 4))):
        program = CASES[case]()
        fragment = emit_op(program, program.ops[0], lambda n: "(arena + 0)", None, "op0")
        assert fragment.statements == [] and fragment.declarations == []
        inputs = random_inputs(program, 0)
        [[got]] = run_c(program, [inputs], kernel_build, tmp_path, aliases={"y": "x0"})
        np.testing.assert_array_equal(got, inputs[0].reshape(shape))


def test_gathers_copy_runs_and_keep_tables_small():
    """Rows read whole are one memcpy each (no table); only strided or picked axes get one."""
    program = CASES["strided_channels_run"]()
    fragment = emit_op(program, program.ops[0], str, None, "op0")
    assert fragment.declarations == [] and "runs only" in fragment.statements[0]
    assert registry.of(program.ops[0]).table_bytes(program, program.ops[0]) == 0
    program = CASES["nearest_up"]()
    assert registry.of(program.ops[0]).table_bytes(program, program.ops[0]) == 4 * (6 + 8)  # rows, columns
    assert registry.scratch_bytes(*_first(CASES["mean_hw_keep"]())) == 4 * 2 * 4  # int32 per output value


def _first(program: Program) -> tuple[Program, Op]:
    return program, program.ops[0]


IMPOSSIBLE = {
    "stride 0": lambda: _strided((3, 4), [0, 0], [3, 4], [1, 0], (3, 4)),
    "selects nothing": lambda: _strided((3, 4), [2, 0], [1, 4], [1, 1], (1, 4)),
    "begin, end and strides need 2": lambda: _strided((3, 4), [0], [3], [1], (3, 4)),
    "outside its 4 entries": lambda: _strided((3, 4), [0, 4], [3, 5], [1, 1], (3,), shrink_axis_mask=2),
    "size -2 on axis 1": lambda: _op("SLICE", (3, 4), (3, 2), [[0, 1], [3, -2]]),
    "begin 3, size 2": lambda: _op("SLICE", (4, 4), (2, 4), [[3, 0], [2, 4]]),
    "do not split into 4 equal parts": lambda: _split("SPLIT", (2, 6), 1, [2, 2, 1, 1]),
    "size_splits": lambda: _split("SPLIT_V", (2, 6), 1, [2, 3, 2]),
    "reflect padding": lambda: _op("MIRROR_PAD", (3, 4), (9, 4), [[[3, 3], [0, 0]]], mode=0),
    "mode 2": lambda: _op("MIRROR_PAD", (3, 4), (5, 4), [[[1, 1], [0, 0]]], mode=2),
    "squeeze_dims [1]": lambda: _op("SQUEEZE", (1, 3, 1), (1, 1), squeeze_dims=[1]),
    "axis [3]": lambda: _op("EXPAND_DIMS", (3, 4), (3, 4, 1), [[3]]),
    "axes [4] outside": lambda: _reduce("MEAN", (2, 3, 4, 5), (4,), True),
    "cannot both be set": lambda: _resize("RESIZE_BILINEAR", (1, 3, 4, 5), (6, 8), align_corners=True,
                                          half_pixel_centers=True),
    "needs a 4-D NHWC input": lambda: _op("RESIZE_NEAREST_NEIGHBOR", (3, 4, 5), (3, 6, 5), [[6, 5]]),
}


@pytest.mark.parametrize("message", sorted(IMPOSSIBLE))
def test_impossible_parameters_are_ir_errors(message):
    program = IMPOSSIBLE[message]()
    with pytest.raises(IRError, match=re.escape(message)):
        program.verify()


REFUSED = {
    "ellipsis_mask is not supported": lambda: _strided((3, 4), [0, 0], [3, 4], [1, 1], (3, 4), ellipsis_mask=1),
    "new_axis_mask is not supported": lambda: _strided((3, 4), [0, 0], [3, 4], [1, 1], (3, 4), new_axis_mask=2),
    "negative stride is not supported": lambda: _strided((3, 4), [2, 0], [0, 4], [-1, 1], (4,), shrink_axis_mask=1),
    "on a rank-5 tensor": lambda: _strided((1, 2, 3, 4, 5), [0] * 5, [1, 2, 3, 4, 5], [1] * 5, (1, 2, 3, 4, 5)),
    "over 5 axes that do not merge": lambda: _op("SLICE", (2, 3, 4, 5, 6), (1, 2, 3, 4, 5),
                                                 [[1, 1, 1, 1, 1], [1, 2, 3, 4, 5]]),
}


def test_rank5_transpose_merges_axes_that_move_together():
    assert merged_transpose((1, 2, 4, 8, 8), [0, 2, 1, 3, 4]) == ((2, 4, 64), [1, 0, 2])
    assert merged_transpose((2, 3, 4, 5, 2), [3, 4, 0, 1, 2]) == ((24, 10), [1, 0])
    assert merged_transpose((2, 1, 3, 1), [3, 2, 1, 0]) == ((2, 3), [1, 0])
    assert merged_transpose((1, 1), [1, 0]) == ((1,), [0])
    assert merged_transpose((2, 3, 4, 5, 6), [4, 2, 0, 3, 1]) == ((2, 3, 4, 5, 6), [4, 2, 0, 3, 1])


def test_rank5_transpose_that_does_not_merge_is_refused_in_one_line():
    program = _op("TRANSPOSE", (2, 3, 4, 5, 6), (6, 4, 2, 5, 3), [[4, 2, 0, 3, 1]])
    program.ops[0].source = "model.py:7 in forward"
    with pytest.raises(UnsupportedOpError) as error:
        registry.check_compilable(program.verify())
    assert str(error.value) == ("model.py:7 in forward: TRANSPOSE of a rank-5 tensor by [4, 2, 0, 3, 1] moves 5 "
                                "separate axis groups, the kernel at most 4; permute fewer axes at a time (two "
                                "transposes) or merge axes that move together with a reshape")


@pytest.mark.parametrize("message", sorted(REFUSED))
def test_variants_no_kernel_takes_are_refused_in_one_line(message):
    assert_refused_in_one_line(REFUSED[message](), message)


@pytest.mark.parametrize("case", ["reduce_max_hw", "strided_steps_both_signs", "bilinear_up", "split_v_rows",
                                  "squeeze_all_ones"])
def test_outputs_must_keep_the_input_quantization(case):
    program = CASES[case]()
    program.tensors[program.outputs[-1]].quant = quant(0.1, 0)
    with pytest.raises(UnsupportedOpError, match="needs int8 outputs with the input's scale and zero point"):
        registry.check_compilable(program)


@pytest.mark.parametrize("case", sorted(CASES))
def test_tflite_round_trip(case):
    program = CASES[case]()
    again = read_tflite(write_tflite(program))
    [op], [back] = program.ops, again.ops
    assert back.kind == op.kind
    assert {k: v for k, v in back.options.items() if v != registry.of(op).tflite.fields[k]} == \
        {k: v for k, v in op.options.items() if v != registry.of(op).tflite.fields[k]}
    assert [again.tensor(n).shape for n in back.outputs] == [program.tensor(n).shape for n in op.outputs]
    assert registry.infer_output_shapes(again, back) == [program.tensor(n).shape for n in op.outputs]


def _data_program() -> Program:
    """x (1, 6, 8, 4) -> nearest x2 -> split channels -> [mean over H, W; strided slice;
    mirror pad -> bilinear] with a few more: seven of the new kinds in one firmware."""
    p = Program()

    def tensor(name, shape, scale=SCALE, zp=ZP, data=None):
        dtype = "int8" if data is None else "int32"
        p.add_tensor(Tensor(name, shape, dtype, quant(scale, zp) if data is None else None,
                            None if data is None else np.array(data, dtype=np.int32)))
        return name

    tensor("x", (1, 6, 8, 4))
    p.inputs = ["x"]
    p.add_op(Op("RESIZE_NEAREST_NEIGHBOR", ["x", tensor("size", (2,), data=[12, 16])], [tensor("up", (1, 12, 16, 4))],
                {"half_pixel_centers": True}))
    p.add_op(Op("SPLIT", [tensor("axis", (1,), data=[3]), "up"],
                [tensor("s0", (1, 12, 16, 2)), tensor("s1", (1, 12, 16, 2))], {"num_splits": 2}))
    p.add_op(Op("MEAN", ["s0", tensor("hw", (2,), data=[1, 2])], [tensor("m", (1, 2), 0.01, -3)], {}))
    p.add_op(Op("EXPAND_DIMS", ["m", tensor("at", (1,), data=[1])], [tensor("m3", (1, 1, 2), 0.01, -3)]))
    p.add_op(Op("STRIDED_SLICE", ["s1", tensor("b", (4,), data=[0, 1, 0, 1]), tensor("e", (4,), data=[1, 12, 16, 2]),
                                  tensor("st", (4,), data=[1, 3, -2, 1])], [tensor("sl", (1, 4, 8))],
                {"end_mask": 4, "begin_mask": 4, "shrink_axis_mask": 8}))
    p.add_op(Op("MIRROR_PAD", ["sl", tensor("pads", (3, 2), data=[[0, 0], [1, 2], [0, 3]])],
                [tensor("mp", (1, 7, 11))], {"mode": 1}))
    p.add_op(Op("EXPAND_DIMS", ["mp", tensor("last", (1,), data=[-1])], [tensor("mp4", (1, 7, 11, 1))]))
    p.add_op(Op("RESIZE_BILINEAR", ["mp4", tensor("size2", (2,), data=[5, 17])], [tensor("bl", (1, 5, 17, 1))],
                {"align_corners": True}))
    p.add_op(Op("REDUCE_MAX", ["s1", tensor("c", (1,), data=[-1])], [tensor("mx", (1, 12, 16, 1))],
                {"keep_dims": True}))
    p.outputs = ["m3", "bl", "mx"]
    return p.verify()


def test_data_program_is_bit_exact_with_tflm():
    assert_program_matches_tflm(_data_program())


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")
@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_data_program_firmware_is_bit_exact(board, tmp_path):
    run = firmware_run(_data_program(), board, tmp_path)
    assert all(np.unique(out).size > 1 for outputs in run.outputs for out in outputs)


def test_split_output_nobody_reads_is_planned_and_written():
    """Several outputs per op through the planner and model.c: an unread SPLIT_V output
    still gets its own bytes, live only while the split runs."""
    from mcu_compile.codegen.model import ModelSource
    from mcu_compile.passes.plan import plan_memory
    program = CASES["split_v_rows"]()
    program.outputs = ["y1"]
    scratch = [registry.scratch_bytes(program, op) for op in program.ops]
    plan = plan_memory(program, scratch).verify()
    assert {b.name: (b.first, b.last) for b in plan.buffers} == {"x0": (-1, 0), "y0": (0, 0), "y1": (0, 1),
                                                                 "y2": (0, 0)}
    model_c = ModelSource(program, plan, ".arena.sram").model_c()
    assert model_c.count("mcu_gather_axes_s8(") == 3 and "T_y0" in model_c and "T_y2" in model_c
