"""The project folder belongs to mcu-compile: a user's folder is never overwritten, a
compile replaces the folder as a whole or not at all, and a project whose model files
changed since its compile is refused instead of being compared with the wrong model."""
from __future__ import annotations

import shutil

import numpy as np

import pytest

import mcu_compile
from mcu_compile import api
from mcu_compile.errors import BoardFitError, InputError
from mcu_compile.report.budget import ram_bytes


@pytest.fixture
def model(shared_dir):
    return shared_dir / "models" / "ad01_int8.tflite"


def test_a_users_folder_is_refused_and_left_alone(model, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "helper.c").write_text("int helper(void) { return 1; }\n")
    with pytest.raises(InputError, match=r"not empty and not an mcu-compile project \(helper.c\).*--force"):
        mcu_compile.compile(model, out_dir=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["helper.c"]
    mcu_compile.compile(model, out_dir=folder, force=True)
    assert not (folder / "helper.c").exists() and (folder / "model.c").is_file()


def test_a_second_compile_leaves_nothing_of_the_first(model, tmp_path):
    folder = tmp_path / "fw"
    mcu_compile.compile(model, out_dir=folder)
    (folder / "program_reference.tflite").write_bytes((folder / "program.tflite").read_bytes())
    with pytest.raises(InputError, match="program_reference.tflite was not written by the compile"):
        mcu_compile.load(folder)
    mcu_compile.compile(model, out_dir=folder)
    assert not (folder / "program_reference.tflite").exists()
    mcu_compile.load(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["fw"]  # no staging folders left behind


def test_an_interrupted_compile_keeps_the_previous_project(model, tmp_path, monkeypatch):
    folder = tmp_path / "fw"
    mcu_compile.compile(model, out_dir=folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "write_vectors", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mcu_compile.compile(model, out_dir=folder, stack_bytes=4096)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["fw"]


def test_a_changed_model_file_is_refused(model, shared_dir, tmp_path):
    folder = tmp_path / "fw"
    mcu_compile.compile(model, out_dir=folder)
    shutil.copy(shared_dir / "models" / "kws_ref_model.tflite", folder / "program.tflite")
    with pytest.raises(InputError, match=r"program.tflite is missing or changed since it was compiled"):
        mcu_compile.load(folder)


def test_budgets_judge_exact_sizes_before_the_build_and_the_elf_after(model, tmp_path):
    """A RAM budget the built firmware meets is not refused because of the estimated stack
    and code; one byte less is refused by the build, with the real figures."""
    built = mcu_compile.compile(model, out_dir=tmp_path / "free")
    built.build()
    ram = ram_bytes(built.report)
    compiled = mcu_compile.compile(model, out_dir=tmp_path / "exact", max_ram=ram)
    compiled.build()
    assert ram_bytes(compiled.report) == ram
    tight = mcu_compile.compile(model, out_dir=tmp_path / "tight", max_ram=ram - 1)
    with pytest.raises(BoardFitError, match=rf"built firmware does not fit: the RAM budget of {ram - 1:,} B "
                                            rf"is exceeded: needs {ram:,} B, over by 1 B"):
        tight.build()
    arena = built.report["arena"]["bytes"]
    with pytest.raises(BoardFitError, match=rf"the RAM budget of {arena - 1:,} B is exceeded: needs \d[\d,]* B "
                                            r"before the [\d,]+ B still estimated \(code, stack\) are known"):
        mcu_compile.compile(model, out_dir=tmp_path / "small", max_ram=arena - 1)


def test_a_stray_c_file_in_the_project_is_not_built(model, tmp_path):
    compiled = mcu_compile.compile(model, out_dir=tmp_path / "fw")
    (tmp_path / "fw" / "helper.c").write_text("#error a file mcu-compile did not write\n")
    assert compiled.run().bit_exact


def test_non_finite_run_inputs_are_refused(model, tmp_path):
    compiled = mcu_compile.compile(model, out_dir=tmp_path / "fw")
    shape = compiled.program.tensor(compiled.program.inputs[0]).shape
    with pytest.raises(InputError, match="holds NaN, infinity or non-numbers"):
        compiled.run(inputs=[(np.full(shape, np.nan, np.float32),)])


def test_float_edges_of_a_converted_model_are_quantized_on_the_host(tmp_path):
    """float32 input -> QUANTIZE -> ... -> DEQUANTIZE -> float32 output (a converter's float
    interface): the firmware runs the int8 part; run() quantizes and dequantizes as TFLite."""
    from tflite_micro.python.tflite_micro import runtime
    from mcu_compile.ir.program import Op, Program, Quant, Tensor
    from mcu_compile.ir.tflite_io import write_tflite
    program = Program()
    program.add_tensor(Tensor("x", (1, 6), "float32"))
    program.add_tensor(Tensor("q", (1, 6), "int8", Quant.per_tensor(0.02, 3)))
    program.add_tensor(Tensor("q2", (1, 6), "int8", Quant.per_tensor(0.03, -5)))
    program.add_tensor(Tensor("r", (1, 6), "int8", Quant.per_tensor(0.03, -5)))
    program.add_tensor(Tensor("y", (1, 6), "float32"))
    program.add_op(Op("QUANTIZE", ["x"], ["q"]))
    program.add_op(Op("QUANTIZE", ["q"], ["q2"]))  # an int8 -> int8 requantization inside: in firmware
    program.add_op(Op("RELU6", ["q2"], ["r"]))
    program.add_op(Op("DEQUANTIZE", ["r"], ["y"]))
    program.inputs, program.outputs = ["x"], ["y"]
    path = tmp_path / "float_edges.tflite"
    path.write_bytes(write_tflite(program))
    compiled = mcu_compile.compile(path, out_dir=tmp_path / "fw")
    assert [op.kind for op in compiled.program.ops] == ["QUANTIZE", "RELU6"]
    x = np.array([[-1.0, -0.05, 0.01, 0.03, 2.5, 7.0]], np.float32)  # 0.01 / 0.02 is a tie: away from zero
    run = compiled.run(inputs=[(x,)])
    interpreter = runtime.Interpreter.from_bytes(path.read_bytes())
    interpreter.set_input(x, 0)
    interpreter.invoke()
    assert run.bit_exact
    np.testing.assert_array_equal(run.outputs_float[0][0], interpreter.get_output(0))
