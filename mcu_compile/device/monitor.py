"""`mcu-compile monitor PORT`: the raw console of a board, with frames shown as text."""
from __future__ import annotations

import struct
import time

from . import frames
from .frames import Frame, FrameReader, LinkError
from .session import open_link, protocol_lines

SHOWN_BYTES = 32   # of an output: enough to recognise it, short enough for a terminal


def describe(frame: Frame) -> str:
    """One frame as a line a person reads."""
    p = frame.payload
    if frame.kind == frames.TEXT:
        return p.decode(errors="replace").rstrip("\n")
    if frame.kind == frames.READY:
        r = frames.parse_ready(p)
        return (f"[READY] inputs {r.input_sizes} B, outputs {r.output_sizes} B, timer overhead "
                f"{r.timer_overhead} ticks{', exits on QUIT' if r.exits_on_quit else ''}")
    if frame.kind == frames.OUTPUT:
        vector, index = struct.unpack_from("<II", p)
        data = p[8:]
        more = "..." if len(data) > SHOWN_BYTES else ""
        return f"[OUTPUT] vector {vector} output {index}: {len(data)} B {data[:SHOWN_BYTES].hex()}{more}"
    if frame.kind == frames.RESULT:
        vector, status, ticks, stack = struct.unpack("<IiQI", p)
        return f"[RESULT] vector {vector}: status {status}, {ticks:,} ticks, stack {stack:,} B"
    if frame.kind == frames.NACK:
        reason = struct.unpack_from("<I", p)[0] if len(p) >= 4 else 0
        return f"[NACK] {frames.NACK_REASONS.get(reason, reason)}"
    return f"[{frame.name}] {protocol_lines(frame).strip()}"


def monitor(url: str, baud: int, echo, seconds: float | None = None) -> int:
    """Prints what arrives on the port (echo: called per line) until `seconds` pass (None:
    until interrupted or the link closes). Returns the number of damaged frames seen."""
    link = open_link(url, baud)
    reader = FrameReader(link)
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while end is None or time.monotonic() < end:
            try:
                frame = reader.next_frame(0.5 if end is None else max(0.0, min(0.5, end - time.monotonic())))
            except frames.LinkClosed:
                echo("[link closed]")
                break
            except LinkError:
                _flush_raw(reader, echo)
                continue
            _flush_raw(reader, echo)
            echo(describe(frame))
    finally:
        link.close()
    _flush_raw(reader, echo)
    return reader.damaged_frames


def _flush_raw(reader: FrameReader, echo) -> None:
    """Bytes outside frames (a boot loader's text, noise), shown as they came."""
    if reader.raw_text:
        for line in bytes(reader.raw_text).decode(errors="replace").splitlines():
            echo(line)
        reader.raw_text.clear()
