"""The `mcu-compile` command line."""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import traceback
from importlib.metadata import version
from pathlib import Path

import click
import numpy as np

from .errors import McuCompileError, InputError

EPILOG = """\b
A typical session:
  mcu-compile compile model.tflite --board mps3-an547 --out fw/
  mcu-compile run fw/          # build, run in QEMU, compare with the host reference
  mcu-compile report fw/       # flash and RAM per memory region
"""


EXIT_ERROR = 2
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class _OneLineErrors(click.Group):
    """Every error ends the command with one line: `error: ...` for what the user can act
    on (McuCompileError; exit code 2, or 1 when the device failed: flashing, the serial
    link), `internal error: ...` naming a log file with the traceback for anything else."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except McuCompileError as err:
            click.echo(f"error: {_printable(str(err))}", err=True)
            ctx.exit(getattr(err, "exit_code", EXIT_ERROR))
        except Exception as err:
            log = _write_log(err)
            click.echo(f"internal error: {type(err).__name__}: {_printable(str(err))} (details in {log})", err=True)
        ctx.exit(EXIT_ERROR)


def _printable(text: str) -> str:
    """A message as one line for the terminal: each run of control characters (line breaks,
    escape sequences: a tensor name in a message may hold any) becomes a space."""
    return CONTROL.sub(" ", text.strip())


def _write_log(err: Exception) -> str:
    """The traceback of an unexpected error, in a new file in the system's temporary folder."""
    fd, path = tempfile.mkstemp(prefix="mcu-compile-", suffix=".log")
    with os.fdopen(fd, "w") as log:
        log.write(f"mcu-compile {version('mcu-compile')}: {' '.join(sys.argv)}\n")
        log.write("".join(traceback.format_exception(err)))
    return path


@click.group(cls=_OneLineErrors, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mcu-compile", prog_name="mcu-compile")
def main():
    """Compile a neural network into heapless C firmware for an Arm microcontroller,
    with every byte of memory planned at compile time."""


def _npz_samples(path: Path, names: list[str], what: str) -> list[tuple]:
    """The samples of an .npz: one array per model input (matched by name when the
    names are the inputs', else in the order saved), first axis = sample."""
    from .ir.inputs import samples_from_arrays
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not an .npz file ({err}); save the {what} with np.savez") from None
    if not hasattr(data, "files"):
        raise InputError(f"{path} holds a single array (.npy); save the {what} with np.savez, one array per input")
    return samples_from_arrays({k: data[k] for k in data.files}, names, f"{path} ({what})")


def _calibration_inputs(path: Path | None, model: str):
    if path is None:
        return None
    names = _pt2_input_names(model) if model.endswith(".pt2") else []
    return _npz_samples(path, names or list(np.load(path).files), "calibration data")


@main.command("compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", "-b", default="mps3-an547", show_default=True,
              help="Target board (see `mcu-compile boards`) or a board .toml file.")
@click.option("--out", "-o", "out_dir", default="mcu_out", show_default=True,
              type=click.Path(file_okay=False), help="Directory of the generated firmware project.")
@click.option("--calibrate", type=click.Path(exists=True, dir_okay=False),
              help="Calibration data for a .pt2 model: an .npz with one array per forward() argument "
                   "(first axis = sample), matched by argument name, else in the order saved.")
@click.option("--max-ram", type=int, help="RAM budget in bytes (arena + stack + data); stop if exceeded.")
@click.option("--max-flash", type=int, help="Flash budget in bytes (weights + code); stop if exceeded.")
@click.option("--no-npu", is_flag=True, help="Keep every op on the CPU even if the board has an NPU.")
@click.option("--weights-in-ram", is_flag=True,
              help="Copy the weights from flash to the data RAM at start-up (if it fits).")
@click.option("--console", type=click.Choice(["uart", "semihosting"]),
              help="The firmware's console, instead of the board's own: results in frames over the UART "
                   "(real boards; any QEMU board too) or lines over semihosting (simulators).")
@click.option("--name", default="model", show_default=True,
              help="The model's C name: model.c's API is <name>_invoke(), <name>.h, NAME_NUM_INPUTS...; "
                   "two models with different names link into one firmware.")
@click.option("--optimize", type=click.Choice(["balanced", "speed", "ram"]), default="balanced", show_default=True,
              help="RAM against instructions: ram computes the first layers in strips of rows for the smallest "
                   "arena, speed runs layer by layer, balanced takes the smallest arena within 10% of the fastest.")
@click.option("--force", is_flag=True, help="Replace --out even if it holds files that are not an mcu-compile project.")
def compile_cmd(model, board, out_dir, calibrate, max_ram, max_flash, no_npu, weights_in_ram, console, name,
                optimize, force):
    """Compile MODEL (.tflite int8, or .pt2 from torch.export.save) into a firmware project."""
    from .api import compile as compile_model
    calibration = _calibration_inputs(Path(calibrate) if calibrate else None, model)
    example = _pt2_example_inputs(model, calibration)
    compiled = compile_model(model, example, calibration=calibration, board=board, out_dir=out_dir,
                             max_ram=max_ram, max_flash=max_flash, npu=not no_npu,
                             weights_in_ram=weights_in_ram, force=force, console=console, name=name,
                             optimize=optimize)
    click.echo(f"wrote {compiled.project_dir}/ (Edge program: {compiled.program_path})")
    click.echo(compiled.report_text())


def _pt2_input_names(model: str) -> list[str]:
    from .frontend.export import export
    return [spec.arg.name for spec in export(model, ()).graph_signature.input_specs
            if spec.kind.name == "USER_INPUT"]


def _pt2_example_inputs(model: str, calibration):
    if not model.endswith(".pt2"):
        return None
    if calibration:
        return calibration[0]
    from .frontend.export import export
    exported = export(model, ())
    args = getattr(exported, "example_inputs", None)
    if not args or not args[0]:
        raise InputError(f"{model} carries no example inputs; pass --calibrate data.npz")
    return tuple(args[0])


@main.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False))
def build(project):
    """Build the firmware ELF of a compiled PROJECT directory (arm-none-eabi-gcc)."""
    from .api import load
    click.echo(f"built {load(project).build()}")


@main.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False))
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before the run counts as hung.")
@click.option("--npu-sim", type=click.Choice(["fvp", "model"]),
              help="Who runs the NPU jobs of an Ethos-U board's firmware (default: the board's FVP).")
@click.option("--inputs", "inputs_path", type=click.Path(exists=True, dir_okay=False),
              help="Run these inputs instead of the bundled test vectors: an .npz with one array per model "
                   "input (first axis = sample; float in PyTorch's layout, or int8 in the program's), matched "
                   "by input name, else in the order saved.")
@click.option("--outputs", "outputs_path", type=click.Path(dir_okay=False),
              help="Save the firmware's outputs to this .npz: output<i> (int8, the program's layout) and "
                   "output<i>_float (dequantized, PyTorch's layout), first axis = sample.")
@click.option("--port", help="Run on firmware already flashed and running instead of a simulator: a serial "
                             "device (/dev/ttyACM0) or a pyserial URL (socket://HOST:PORT, rfc2217://...).")
@click.option("--baud", type=int, help="Baud rate for --port (default: the board's console UART).")
def run(project, timeout, npu_sim, inputs_path, outputs_path, port, baud):
    """Build PROJECT, run it in the board's simulator and compare its outputs with the
    host reference byte for byte. Exits 1 when they differ. With --port, run on firmware
    already flashed and running (a board, or a QEMU with its UART on a socket)."""
    from .api import load
    compiled = load(project)
    inputs = _npz_samples(Path(inputs_path), compiled.program.inputs, "inputs") if inputs_path else None
    if port:
        result = _run_on_port(compiled, port, baud, inputs, timeout)
    else:
        result = compiled.run(inputs=inputs, timeout=timeout, npu_sim=npu_sim)
    if outputs_path:
        _save_outputs(Path(outputs_path), result)
        click.echo(f"wrote {len(result.outputs)} output set(s) to {outputs_path}")
    for v, count in enumerate(result.instructions):
        click.echo(f"vector {v}: {count:,} CPU instructions per inference")
    if result.npu_sim not in ("none", "hardware"):
        npu = compiled.report["npu"]
        click.echo(f"NPU: {result.npu_jobs} jobs run by the {result.npu_sim}; Vela's estimate "
                   f"{npu['estimated_cycles']:,} NPU cycles per inference")
    if result.bit_exact:
        click.echo("outputs: bit-exact with the host reference")
    else:
        click.echo("outputs: DIFFERENT from the host reference", err=True)
        sys.exit(1)


def _run_on_port(compiled, port: str, baud: int | None, inputs, timeout: float):
    from .device.remote import run_on_port
    if compiled.board.console["kind"] != "uart":
        raise InputError(f"{compiled.project_dir} was compiled with a {compiled.board.console['kind']} console; "
                         f"--port needs firmware with a UART console (compile with --console uart)")
    done = run_on_port(compiled, port, baud, inputs, timeout=min(timeout, 60.0),
                       log=lambda text: click.echo(f"device: {text.rstrip()}", err=True))
    for v, ticks in enumerate(done.ticks):
        click.echo(f"vector {v}: {ticks:,} timer ticks per inference (core clock cycles on hardware)")
    click.echo(f"stack: {done.stack_bytes:,} B used at most; link re-synchronised {done.resyncs} time(s)")
    return done.run


@main.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write a page with the memory timeline and per-layer sizes to this file.")
def report(project, as_json, html_path):
    """Print the budget report of PROJECT: memory per region, arena, weights, code, stack.
    Sizes are predicted until the project is built, then read from the ELF."""
    from .api import load
    compiled = load(project)
    click.echo(json.dumps(compiled.report, indent=1) if as_json else compiled.report_text())
    if html_path:
        from .report.html import write_html
        click.echo(f"wrote {write_html(compiled.report, Path(html_path))}", err=as_json)


def _save_outputs(path: Path, result) -> None:
    arrays = {}
    for i in range(len(result.outputs[0]) if result.outputs else 0):
        arrays[f"output{i}"] = np.concatenate([o[i] for o in result.outputs])
        arrays[f"output{i}_float"] = np.concatenate([o[i] for o in result.outputs_float])
    np.savez(path, **arrays)


@main.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before the run counts as hung.")
def profile(project, as_json, timeout):
    """Cost of every layer of PROJECT: builds a profiling variant (app-profile.elf, timer
    marks between the kernel calls), runs it in the board's simulator and prints per op its
    kind, output shape, MACs, instructions (QEMU -icount; timer ticks elsewhere), instructions
    per MAC and share of the total."""
    from .api import load
    from .report.layers import format_profile, profile as measure
    data = measure(load(project), timeout=timeout)
    click.echo(json.dumps(data, indent=1) if as_json else format_profile(data))


@main.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False))
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before the run counts as hung.")
def debug(project, timeout):
    """Find the first layer of PROJECT whose output differs from the host reference: builds a
    debug variant (app-debug.elf) that sends every op's output to the host, runs it on the
    first test vector and compares op by op. Exits 1 when a layer differs."""
    from .api import load
    from .report.layers import debug as compare
    found = compare(load(project), timeout=timeout)
    skipped = f"; {len(found.skipped)} not compared (fused, or a row view: the reference has no such tensor)" if found.skipped else ""
    if found.divergence is None:
        click.echo(f"all {len(found.compared)} compared layer outputs equal the host reference{skipped}")
        return
    click.echo(str(found.divergence), err=True)
    sys.exit(1)


@main.command("export")
@click.argument("project", type=click.Path(exists=True, file_okay=False))
@click.option("--lib", "lib_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the library into: <name>.c/.h, the kernels, CMakeLists.txt, README.txt.")
@click.option("--force", is_flag=True, help="Replace --lib even if it is not empty.")
def export_cmd(project, lib_dir, force):
    """Write the model of PROJECT as a library for your own firmware: the model's C and
    header (a prefixed API with a status return and an optional caller-supplied arena),
    the kernels, and a CMakeLists.txt building a static library."""
    from .codegen.library import export_library
    out = export_library(project, lib_dir, force=force)
    click.echo(f"wrote {out}/ (see {out}/README.txt)")


@main.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False))
@click.option("--port", required=True, help="The serial port of the board's ROM bootloader: a device "
                                            "(/dev/ttyUSB0) or a pyserial URL (socket://HOST:PORT).")
@click.option("--baud", type=int, help="Baud rate (default: the board file's [flash_loader] baud).")
@click.option("--mass-erase", is_flag=True, help="Erase the whole flash, not only the sectors the image needs.")
@click.option("--no-go", is_flag=True, help="Leave the board in the bootloader instead of starting the firmware.")
@click.option("--no-reset-lines", is_flag=True,
              help="Do not drive RESET/BOOT0 through DTR/RTS (set BOOT0 high and reset by hand).")
def flash(project, port, baud, mass_erase, no_go, no_reset_lines):
    """Build PROJECT and write it into the board's flash through the STM32 ROM UART
    bootloader (AN3155): erase, write, read back every byte, start it. Exits 1 on failure;
    nothing is reported flashed unless it read back equal."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
    from .api import load
    from .device.flashing import flash_project
    compiled = load(project)
    columns = (TextColumn("{task.description:<7}"), BarColumn(), DownloadColumn())
    with Progress(*columns, transient=True) as bar:
        tasks = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        report = flash_project(compiled, port, baud, mass_erase=mass_erase, go=not no_go,
                               use_reset_lines=not no_reset_lines, progress=progress)
    erased = "the whole flash" if report.mass_erase else f"sector(s) {', '.join(map(str, report.sectors_erased))}"
    click.echo(f"flashed {report.image_size:,} B at 0x{report.address:08X} on chip 0x{report.chip_id:03X}: "
               f"erased {erased}, read back equal; {report.retries} retr{'y' if report.retries == 1 else 'ies'}, "
               f"{report.elapsed_s:.1f} s{'' if no_go else '; started'}")


@main.command()
@click.argument("port")
@click.option("--baud", default=115200, show_default=True, help="Baud rate of the board's console UART.")
@click.option("--seconds", type=float, help="Stop after this long (default: until Ctrl-C or the link closes).")
def monitor(port, baud, seconds):
    """Show the console of the board on PORT (a serial device or a pyserial URL such as
    socket://HOST:PORT): its text, and each result frame as one line."""
    from .device.monitor import monitor as watch
    try:
        damaged = watch(port, baud, click.echo, seconds)
    except KeyboardInterrupt:
        return
    if damaged:
        click.echo(f"{damaged} damaged frame(s) skipped (CRC-32 mismatch): check the baud rate and cable", err=True)


@main.command()
def boards():
    """List the boards mcu-compile can target: CPU, memories, and how each runs."""
    from .sim.backends import describe_runner
    from .target.boards import list_boards, load_board
    names = list_boards()
    width = max(map(len, names)) + 1
    for name in names:
        b = load_board(name)
        memories = ", ".join(f"{r.name} {r.length // 1024:,} KiB {r.kind}" for r in b.regions)
        click.echo(f"{name:<{width}} {b.cpu.core:<11} {describe_runner(b):<28} {memories}")
        click.echo(f"{'':<{width}} {b.description}")

if __name__ == "__main__":
    main()
