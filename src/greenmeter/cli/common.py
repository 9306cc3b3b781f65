"""Shared pieces of the command line: errors, argument types, format lists, suggestions,
and the guard that turns a failing standard output into one clear line."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

__all__ = [
    "COMPARE_FORMATS",
    "FORMAT_ALIASES",
    "MESSAGE_LIMIT",
    "REPORT_FORMATS",
    "CliError",
    "GuardedStdout",
    "StdoutError",
    "clip",
    "did_you_mean",
    "emit",
    "format_name",
    "gpus_arg",
    "non_negative_float",
    "one_line",
    "option_names",
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
#: Other names accepted for a format (as :data:`greenmeter.render.FORMAT_ALIASES`).
FORMAT_ALIASES: dict[str, str] = {"markdown": "md"}
#: Longest error message printed; longer ones lose their middle (a value echoed whole).
MESSAGE_LIMIT = 1000


class CliError(Exception):
    """An expected problem: printed as one line (no traceback), then exit ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StdoutError(CliError):
    """Standard output cannot be written (a full disk, ``> /dev/full``, a lost terminal)."""


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` on one line, at most about ``limit`` characters.

    Line breaks and other control characters become spaces; a longer message keeps its
    start (the problem) and its end (the fix) and says how much was left out between.
    """
    flat = re.sub(r"[\x00-\x1f\x7f]", " ", message)
    if len(flat) <= limit:
        return flat
    keep = max(1, (limit - 40) // 2)
    return f"{flat[:keep]} ... [{len(flat) - 2 * keep:,} characters left out] ... {flat[-keep:]}"


def clip(value: object, limit: int = 80) -> str:
    """``repr(value)``, shortened to about ``limit`` characters, for echoing user input."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(str(value)):,} characters)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices`` to ``word``; else ``""``."""
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {found[0]!r}?" if found else ""


def format_name(text: str) -> str:
    """An argument type for ``--format``: case-insensitive, aliases mapped to formats.

    An unknown name is returned as given (lowered): the parser's choices check names it
    and suggests the closest format.
    """
    name = text.strip().lower()
    return FORMAT_ALIASES.get(name, name)


def option_names(message: str, names: Mapping[str, str]) -> str:
    """``message`` with API parameter names replaced by the options that set them.

    ``names`` maps a parameter (``intensity_g_per_kwh``) to its option (``--intensity``).
    A name with an underscore is replaced wherever it stands as a word; a plain word
    (``pue``) only where it starts the message, as the subject ("pue must be ...").
    """
    for name, option in names.items():
        pattern = rf"(?<![\w-]){re.escape(name)}(?!\w)" if "_" in name else rf"^{name}\b"
        message = re.sub(pattern, option, message)
    return message


class GuardedStdout:
    """Standard output whose write errors become :class:`StdoutError`.

    A broken pipe stays a ``BrokenPipeError`` (the reader left: not an error). For any
    other failure the descriptor is pointed at ``/dev/null`` first, so the text still
    buffered cannot fail again, with a traceback, when the interpreter exits.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _fail(self, exc: OSError) -> StdoutError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # not a real descriptor (a test's capture): nothing is left to flush
        reason = exc.strerror or str(exc)
        return StdoutError(
            f"cannot write to standard output: {reason}; redirect it somewhere writable"
        )

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._fail(exc) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._fail(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


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


def emit(text: str, output: str | None) -> None:
    """Write ``text`` (a newline added) to standard output, or atomically to ``output``."""
    if not text.endswith("\n"):
        text += "\n"
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from greenmeter.files import write_file

    try:
        write_file(output, text)
    except OSError as exc:  # an OutputError: its message names the path and the fix
        raise CliError(str(exc)) from None
