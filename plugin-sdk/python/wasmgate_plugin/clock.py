"""Clocks."""

from wit_world.imports import clock as _c


def wall_ms():
    """Milliseconds since the Unix epoch."""
    return _c.wall_ms()


def monotonic_ns():
    """Nanoseconds from an arbitrary start; only differences mean something."""
    return _c.monotonic_ns()
