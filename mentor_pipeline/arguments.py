"""Argument types shared by every command line (`mentor-pipeline ...`, `python -m
mentor_pipeline.emulator`): a bad value is refused with the same one-line reason everywhere."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], refused with a one-line reason."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a whole number {bound}")
        return value
    return parse


# A TCP port; 0 asks the system for a free one.
port = whole(0, 65535)


def seconds(text: str) -> float:
    """An argparse type: 0 or more seconds (not infinity, not nan)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is out of range: give 0 or more seconds")
    return value
