"""Talking to real devices: serial links, flashing."""
