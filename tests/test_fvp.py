"""FVP runner (mcu_compile/fvp.py) without an FVP: command lines from the board files, the
executable lookup, and runs of a fake FVP (a shell script) that replays a recorded session."""
import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mcu_compile.sim import fvp
from mcu_compile.target.boards import BoardFileError, load_board
from mcu_compile.errors import InputError, ToolchainError
from mcu_compile.sim.backends import choose_simulator, simulate
from mcu_compile.sim.fvp import FvpNotFoundError, fvp_command, locate_fvp, run_fvp
from mcu_compile.sim.outcome import FirmwareFault, FirmwareTimeout, RunError, parse_output
from mcu_compile.sim.qemu import load_simulator

ENV = "MCU_COMPILE_FVP_DIR"
FVP_300 = "FVP_Corstone_SSE-300_Ethos-U55"
FVP_320 = "FVP_Corstone_SSE-320"

ARGV_300 = [
    "-C", "ethosu.num_macs=128",
    "-C", "mps3_board.visualisation.disable-visualisation=1",
    "-C", "mps3_board.telnetterminal0.start_telnet=0",
    "-C", "mps3_board.uart0.out_file=-",
    "-C", "mps3_board.uart0.unbuffered_output=1",
    "-C", "mps3_board.uart0.shutdown_on_eot=1",
    "-C", "cpu0.semihosting-enable=1",
    "-C", "cpu0.semihosting-stack_base=0",
    "-C", "cpu0.semihosting-heap_limit=0",
]
ARGV_320 = [
    "-C", "mps4_board.subsystem.ethosu.num_macs=256",
    "-C", "mps4_board.visualisation.disable-visualisation=1",
    "-C", "vis_hdlcd.disable_visualisation=1",
    "-C", "mps4_board.telnetterminal0.start_telnet=0",
    "-C", "mps4_board.uart0.out_file=-",
    "-C", "mps4_board.uart0.unbuffered_output=1",
    "-C", "mps4_board.uart0.shutdown_on_eot=1",
    "-C", "mps4_board.subsystem.cpu0.semihosting-enable=1",
    "-C", "mps4_board.subsystem.cpu0.semihosting-stack_base=0",
    "-C", "mps4_board.subsystem.cpu0.semihosting-heap_limit=0",
]

# A Corstone-300 FVP session as the FVP prints it: its terminal listeners (telnet clients
# disabled), the Ethos-U model's banner, a UART line left without a newline so that the
# next semihosting line follows it, our protocol, and the FVP's stop messages.
RECORDED = """\
telnetterminal0: Listening for serial connection on port 5000
telnetterminal1: Listening for serial connection on port 5001
telnetterminal2: Listening for serial connection on port 5002
telnetterminal5: Listening for serial connection on port 5003

    Ethos-U rev 136b7d75 --- Nov 25 2024 12:05:57
    (C) COPYRIGHT 2019-2024 Arm Limited
    ALL RIGHTS RESERVED

WARNING: ethosu.num_macs is overridden to 128
MCU-TIMER 7
MCU-OUT 0 0 0102037f
MCU-OUT 0 1 80
MCU-TICKS 0 15234
uart: npu job 1 startedMCU-OUT 1 0 fffefd00
MCU-OUT 1 1 7f
MCU-TICKS 1 15301
MCU-STACK 344
MCU-DONE

Info: Simulation is stopping. Reason: Simulation stopped on semihosting exit.
Info: /OSCI/SystemC: Simulation stopped by user.
"""

FAULT = """\
telnetterminal0: Listening for serial connection on port 5000
MCU-TIMER 7

MCU-FAULT exception=3 pc=0x00001000 lr=0x00001001 xpsr=0x01000000 sp=0x20000f00 exc_return=0xffffffb9 cfsr=0x00010000 hfsr=0x40000000 mmfar=0x00000000 bfar=0x00000000
Info: /OSCI/SystemC: Simulation stopped by user.
"""

TIME_LIMIT = """\
telnetterminal0: Listening for serial connection on port 5000
MCU-TIMER 7
Info: Simulation is stopping. Reason: Time limit has been exceeded.
Info: /OSCI/SystemC: Simulation stopped by user.
"""


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> Path:
    """A tiny real ELF: stack symbols for the stack check, model_invoke at 0x1000 for faults."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    d = tmp_path_factory.mktemp("elf")
    (d / "fw.c").write_text("void model_invoke(void) { for (;;) {} }\n")
    subprocess.run([gcc, "-mcpu=cortex-m55", "-mthumb", "-nostdlib", "-e", "model_invoke",
                    "-Wl,-Ttext=0x1000", "-Wl,--defsym=__stack_top=0x20001000",
                    "-Wl,--defsym=__stack_limit=0x20000800", "-o", str(d / "fw.elf"), str(d / "fw.c")],
                   check=True, capture_output=True)
    return d / "fw.elf"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """PATH holds only an empty directory plus /bin:/usr/bin (for sh, cat, sleep); no env dir."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.delenv(ENV, raising=False)
    return empty


def fake_fvp(directory: Path, name: str, stdout: str = RECORDED, code: int = 0,
             stderr: str = "", sleep: float = 0) -> Path:
    """An executable `name` in directory that records its argv, prints a session and exits."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.out").write_text(stdout)
    (directory / f"{name}.err").write_text(stderr)
    script = directory / name
    wait = f"sleep {sleep} & echo $! > '{directory}/{name}.sleep_pid'; wait\n" if sleep else ""
    script.write_text("#!/bin/sh\n"
                      f"echo $$ > '{directory}/{name}.pid'\n"
                      f"printf '%s\\n' \"$@\" > '{directory}/{name}.argv'\n"
                      f"cat '{directory}/{name}.out'\n"
                      f"cat '{directory}/{name}.err' >&2\n"
                      f"{wait}"
                      f"exit {code}\n")
    script.chmod(0o755)
    return script


def recorded_argv(script: Path) -> list[str]:
    return (script.parent / f"{script.name}.argv").read_text().splitlines()


# --- command lines and lookup ----------------------------------------------------------------

def test_command_corstone_300(isolated):
    board = load_board("corstone-300")
    assert fvp_command(board, Path("/fw/app.elf"), 120) == (
        [FVP_300, "-a", "/fw/app.elf"] + ARGV_300 + ["--timelimit", "120"])
    # fractions round up, never below one second
    assert fvp_command(board, "a.elf", 2.5)[-2:] == ["--timelimit", "3"]
    assert fvp_command(board, "a.elf", 0.2)[-2:] == ["--timelimit", "1"]


def test_command_corstone_320(isolated):
    board = load_board("corstone-320")
    assert fvp_command(board, Path("fw.elf"), 60, executable="/opt/fvp/" + FVP_320) == (
        ["/opt/fvp/" + FVP_320, "-a", "fw.elf"] + ARGV_320 + ["--timelimit", "60"])


def test_macs_come_from_npu_section(isolated):
    board = load_board("corstone-300")
    board = dataclasses.replace(board, npu={**board.npu, "macs": 256})
    assert "ethosu.num_macs=256" in fvp_command(board, "a.elf", 10)


def test_board_params_must_enable_semihosting(isolated):
    board = load_board("corstone-300")
    params = [p for p in board.fvp["params"] if "semihosting-enable" not in p]
    bad = dataclasses.replace(board, fvp={**board.fvp, "params": params})
    with pytest.raises(BoardFileError, match="semihosting-enable=1"):
        fvp_command(bad, "a.elf", 10)


def test_lookup_on_path(isolated, tmp_path, monkeypatch):
    board = load_board("corstone-300")
    assert locate_fvp(board) is None
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    assert locate_fvp(board) == script
    assert fvp_command(board, "a.elf", 5)[0] == str(script)


def test_lookup_in_env_dir(isolated, tmp_path, monkeypatch):
    board = load_board("corstone-320")
    # the installer's layout: <install>/models/Linux64_GCC-9.3/<FVP>
    script = fake_fvp(tmp_path / "install" / "models" / "Linux64_GCC-9.3", FVP_320)
    monkeypatch.setenv(ENV, str(tmp_path / "install"))
    assert locate_fvp(board) == script
    monkeypatch.setenv(ENV, str(script.parent))
    assert fvp_command(board, "a.elf", 5)[0] == str(script)
    # the env dir comes before PATH
    other = fake_fvp(tmp_path / "on_path", FVP_320)
    monkeypatch.setenv("PATH", f"{other.parent}{os.pathsep}{os.environ['PATH']}")
    assert locate_fvp(board) == script
    # and PATH is still searched when the env dir lacks this FVP
    monkeypatch.setenv(ENV, str(isolated))
    assert locate_fvp(board) == other


def test_missing_fvp_error(isolated, tmp_path, elf, monkeypatch):
    board = load_board("corstone-300")
    with pytest.raises(FvpNotFoundError) as info:
        run_fvp(board, elf)
    message = str(info.value)
    assert isinstance(info.value, ToolchainError)
    assert "\n" not in message
    assert message.startswith(f"{FVP_300} not found")
    for words in ("Arm Ecosystem FVPs Corstone-300", "EULA", "PATH", ENV):
        assert words in message
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FvpNotFoundError, match=f"not found in {ENV}=.*nowhere.*Corstone-300"):
        simulate(board, elf, npu_sim="fvp")
    with pytest.raises(FvpNotFoundError, match=f"{FVP_320} not found.*Arm Ecosystem FVPs Corstone-320"):
        simulate(load_board("corstone-320"), elf)


# --- runs of a fake FVP ----------------------------------------------------------------------

def test_run_recorded_session(isolated, tmp_path, elf, monkeypatch):
    board = load_board("corstone-300")
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300)
    monkeypatch.setenv(ENV, str(script.parent))
    result = run_fvp(board, elf, timeout=30)
    assert recorded_argv(script) == ["-a", str(elf)] + ARGV_300 + ["--timelimit", "30"]
    assert result.outputs == [[bytes([1, 2, 3, 0x7F]), bytes([0x80])],
                              [bytes([0xFF, 0xFE, 0xFD, 0]), bytes([0x7F])]]
    assert result.ticks == [15234, 15301]
    assert result.timer_overhead_ticks == 7
    assert result.stack_bytes == 344
    assert result.exit_code == 0
    assert result.simulator == "fvp"
    assert result.timing_measured is False and result.instructions == []
    assert "Simulation stopped by user" in result.stdout


def test_simulate_picks_fvp_for_npu_boards(isolated, tmp_path, elf, monkeypatch):
    script = fake_fvp(tmp_path / "fvp_bin", FVP_320)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    result = simulate(load_board("corstone-320"), elf, timeout=10)
    assert result.simulator == "fvp" and len(result.outputs) == 2
    assert recorded_argv(script)[-2:] == ["--timelimit", "10"]


def test_choose_simulator(monkeypatch):
    from mcu_compile.sim import backends
    c300, c320, an547 = (load_board(n) for n in ("corstone-300", "corstone-320", "mps3-an547"))
    monkeypatch.setattr(backends, "fvp_available", lambda board: True)
    assert choose_simulator(c300) == "fvp"  # an installed FVP wins
    monkeypatch.setattr(backends, "fvp_available", lambda board: False)
    assert choose_simulator(c300) == "cosim"  # else QEMU + the functional NPU model
    assert choose_simulator(c300, npu_sim="model") == "cosim"
    assert choose_simulator(c320) == "fvp"  # no QEMU machine for the M85: FVP (or its clear error)
    assert choose_simulator(c320, npu_sim="fvp") == "fvp"
    assert choose_simulator(an547) == "qemu"
    assert choose_simulator(an547, npu_sim="model") == "qemu"   # no NPU to model
    with pytest.raises(InputError, match="no \\[fvp\\] section"):
        choose_simulator(an547, npu_sim="fvp")
    with pytest.raises(InputError, match="unknown NPU simulation 'verilog'.*fvp, model"):
        choose_simulator(c300, npu_sim="verilog")


def test_fault_on_fvp(isolated, tmp_path, elf, monkeypatch):
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300, stdout=FAULT)
    monkeypatch.setenv(ENV, str(script.parent))
    with pytest.raises(FirmwareFault, match=r"model_invoke.*undefined instruction.*MCU-FAULT"):
        run_fvp(load_board("corstone-300"), elf)


def test_firmware_error_on_fvp(isolated, tmp_path, elf, monkeypatch):
    out = RECORDED.split("MCU-TIMER")[0] + "MCU-ERROR test vector input size differs\n"
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300, stdout=out)
    monkeypatch.setenv(ENV, str(script.parent))
    with pytest.raises(RunError, match="error on the FVP: test vector input size differs"):
        run_fvp(load_board("corstone-300"), elf)


def test_fvp_failure_is_reported(isolated, tmp_path, elf, monkeypatch):
    err = "Error: Unknown parameter 'ethosu.num_macs'\n"
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300, stdout="", stderr=err, code=1)
    monkeypatch.setenv(ENV, str(script.parent))
    with pytest.raises(RunError, match="did not finish.*exit code 1.*Unknown parameter"):
        run_fvp(load_board("corstone-300"), elf)


def test_fvp_time_limit(isolated, tmp_path, elf, monkeypatch):
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300, stdout=TIME_LIMIT)
    monkeypatch.setenv(ENV, str(script.parent))
    with pytest.raises(FirmwareTimeout, match="hung: no exit within 5 s.*stopped at its --timelimit.*MCU-TIMER"):
        run_fvp(load_board("corstone-300"), elf, timeout=5)


def test_timeout_kills_the_fvp(isolated, tmp_path, elf, monkeypatch):
    out = RECORDED.split("MCU-OUT")[0]
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300, stdout=out, sleep=60)
    monkeypatch.setenv(ENV, str(script.parent))
    start = time.monotonic()
    with pytest.raises(FirmwareTimeout, match=f"hung: no exit within 1 s \\({FVP_300} killed\\).*MCU-TIMER 7"):
        run_fvp(load_board("corstone-300"), elf, timeout=1, kill_grace=0.5)
    assert time.monotonic() - start < 10
    for pid_file in ("pid", "sleep_pid"):
        assert not _alive(int((script.parent / f"{FVP_300}.{pid_file}").read_text()))


def test_fvp_that_does_not_stop_after_done(isolated, tmp_path, elf, monkeypatch):
    """An FVP that ignores the semihosting exit is stopped once the firmware is done."""
    script = fake_fvp(tmp_path / "fvp_bin", FVP_300, sleep=60)
    monkeypatch.setenv(ENV, str(script.parent))
    sim = load_simulator("fvp")
    monkeypatch.setattr(fvp, "load_simulator", lambda name: {**sim, "linger_s": 0.3})
    start = time.monotonic()
    result = run_fvp(load_board("corstone-300"), elf, timeout=30)
    assert time.monotonic() - start < 10
    assert result.outputs[1] == [bytes([0xFF, 0xFE, 0xFD, 0]), bytes([0x7F])]
    assert not _alive(int((script.parent / f"{FVP_300}.sleep_pid").read_text()))


def test_parser_ignores_other_lines():
    result = parse_output(RECORDED, 0, None)
    assert len(result.outputs) == 2 and result.ticks == [15234, 15301]
    assert result.instructions == [] and not result.timing_measured
    with pytest.raises(RunError, match="garbled.*MCU-TICKS"):
        parse_output("MCU-TICKS 0 12x\n", 0, 1.0)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True
