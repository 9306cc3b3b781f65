"""Shared pieces of the command line: errors, argument types, format lists."""

from __future__ import annotations

import argparse
import math

__all__ = [
    "COMPARE_FORMATS",
    "REPORT_FORMATS",
    "CliError",
    "gpus_arg",
    "non_negative_float",
    "positive_float",
    "positive_int",
]

#: Formats ``greenmeter report`` accepts (rendered by :mod:`greenmeter.render`).
REPORT_FORMATS: tuple[str, ...] = (
    "md",
    "latex",
    "html",
    "csv",
    "json",
    "hf-card",
    "codecarbon-csv",
)
#: Formats ``greenmeter compare`` accepts.
COMPARE_FORMATS: tuple[str, ...] = ("md", "latex", "html", "csv", "json")


class CliError(Exception):
    """An expected problem: printed as one line (no traceback), then exit ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (seconds, for instance)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    """A number >= 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def gpus_arg(text: str) -> list[int | str]:
    """``"0,1"`` -> ``[0, 1]``; ``"GPU-ab.."`` stays a UUID; ``"none"`` -> ``[]``."""
    text = text.strip()
    if text.lower() == "none":
        return []
    out: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise argparse.ArgumentTypeError(
                f"{text!r} has an empty entry; use indices or UUIDs like 0,1 or GPU-5c1e..."
            )
        if part.isdigit():
            out.append(int(part))
        elif part.startswith(("GPU-", "MIG-")):
            out.append(part)
        else:
            raise argparse.ArgumentTypeError(
                f"{part!r} is neither a GPU index nor a UUID (GPU-... or MIG-...)"
            )
    return out
