"""QEMU started the way a user starts it by hand, with its first UART on a TCP server it
waits on: the other end of `run --port socket://...`, `monitor` and the flash tests."""
from __future__ import annotations

import subprocess
import time

from mcu_compile.sim.qemu import find_qemu, free_tcp_port, qemu_command


def qemu_uart_server(compiled) -> tuple[subprocess.Popen, int]:
    port = free_tcp_port()
    cmd = qemu_command(compiled.board, compiled.project_dir / "app.elf", find_qemu(),
                       serial=f"tcp:127.0.0.1:{port},server=on,wait=on")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return proc, port


def wait_listening(port: int) -> None:
    """Until QEMU listens on the port, seen in /proc/net/tcp: a probe connection would
    start the firmware, and what it sends before the real client connects would be lost."""
    entry = f":{port:04X} "
    for _ in range(200):
        with open("/proc/net/tcp") as table:
            if any(entry in line and line.split()[3] == "0A" for line in table):
                return
        time.sleep(0.05)
