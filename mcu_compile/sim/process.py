"""The simulator processes: started in their own process group, their output captured, and
killed as a group and reaped on every way out (the one place that does it).

Process is the handle (cosim.py keeps QEMU running while it drives its gdbstub);
run_process runs a command to its end (QEMU and FVP runs).
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import ToolchainError


class Process:
    """A command in its own process group, its stdout/stderr pumped into memory by threads
    (so that the simulator never blocks on its output, e.g. while a host holds its CPU).

    With `finished`, the first stdout line for which it returns True sets the event `seen`.
    """

    def __init__(self, cmd: list[str], finished: Callable[[str], bool] | None = None):
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise ToolchainError(f"cannot start {cmd[0]}: {e.strerror or e}; check that it is an "
                                 f"executable for this machine") from e
        self.seen = threading.Event()
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, self._out, finished),
                                        daemon=True),
                       threading.Thread(target=self._pump, args=(self.proc.stderr, self._err, None),
                                        daemon=True)]
        for t in self._pumps:
            t.start()

    def _pump(self, stream, sink: list[bytes], finished: Callable[[str], bool] | None) -> None:
        for line in iter(stream.readline, b""):
            sink.append(line)
            if finished is not None and finished(line.decode(errors="replace")):
                self.seen.set()
        stream.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the exit; whether it exited."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace: float = 0.0) -> int | None:
        """Waits up to `grace` seconds for the exit, then kills the whole group (a wrapper
        script cannot leave its children running), reaps the process and collects its output.
        The exit code, None when it had to be killed."""
        killed = self.alive() and not self.wait(grace)
        if killed:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # its own session: the group is proc's
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        code = self.proc.wait()
        for t in self._pumps:
            t.join(timeout=5)
        return None if killed else code

    @property
    def stdout(self) -> str:
        return b"".join(self._out).decode(errors="replace")

    @property
    def stderr(self) -> str:
        return b"".join(self._err).decode(errors="replace")


@dataclass
class ProcessOutput:
    returncode: int | None   # None when killed on timeout
    stdout: str
    stderr: str
    timed_out: bool = False
    stopped: bool = False    # killed by us after `finished` matched and the linger ran out


def run_process(cmd: list[str], timeout: float, finished: Callable[[str], bool] | None = None,
                linger: float = 2.0) -> ProcessOutput:
    """Runs cmd to its end, with its output captured, in its own process group.

    On timeout the whole group is killed and the output so far is returned with timed_out
    set. With `finished`, a stdout line for which it returns True gives the process `linger`
    seconds to exit by itself before it is killed (stopped set): for simulators that may not
    stop on the firmware's exit.
    """
    proc = Process(cmd, finished)
    timed_out = stopped = False
    deadline = time.monotonic() + timeout
    try:
        while proc.alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            if finished is None:
                proc.wait(remaining)
            elif proc.seen.wait(min(remaining, 0.1)):
                if not proc.wait(max(0.0, min(linger, deadline - time.monotonic()))):
                    stopped = True
                    break
    finally:
        proc.stop()
    return ProcessOutput(None if timed_out else proc.proc.returncode, proc.stdout, proc.stderr,
                         timed_out, stopped)
