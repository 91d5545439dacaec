"""A bit-exact functional model of the Ethos-U55 and Ethos-U85 command streams (ETHOSU.md
section 7); the U85 dialect runs in u85.py with its weight format in weights85.py.

parse_payload reads a COP1/COP2 payload, check_accesses lists the bytes every DMA and
kernel operation reads and writes per region, run_payload executes the stream over
one byte array per base-pointer region.
"""
from .access import Access, check_accesses
from .execute import run_payload
from .isa import Command, CommandStream, NpuError, parse_payload

__all__ = ["Access", "Command", "CommandStream", "NpuError", "check_accesses", "parse_payload", "run_payload"]
