"""Which AMD GPUs a process sees, by ``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES``.

AMD SMI, like NVML, lists every GPU of the machine and ignores these variables, so the
sensor applies them itself, the way ROCm's runtimes do (ROCr's ``RvdFilter`` and HIP's
device list in CLR):

1. **ROCR_VISIBLE_DEVICES** (the ROCm runtime, under every ROCm program) is applied
   first, to all GPUs in the runtime's order (KFD topology order; each compute partition
   is a GPU of its own). Entries are separated by commas, trimmed and upper-cased; an
   entry starting with ``G`` is a UUID ``GPU-<16 hex digits of the unique id>`` or a
   unique prefix of one (5 to 20 characters), any other is an index read like C's
   ``strtol`` with base 0 (``0x1f`` hex, ``010`` octal). The first entry that is
   invalid, out of range, ambiguous or a repeat ends the list; at most as many entries
   as there are GPUs are read. Set but empty, it hides every GPU.
2. **HIP_VISIBLE_DEVICES** (the HIP runtime) is applied next, to what ROCr left, in the
   order ROCr left it; when it is unset or empty, HIP reads **CUDA_VISIBLE_DEVICES**
   instead. Entries are separated by commas and taken as they are (no trimming): a
   plain decimal index (``1``, not ``01`` or `` 1``), or a string containing ``GPU-``
   that is part of a GPU's runtime UUID (lower-case hex). The first invalid entry ends
   the list; repeats are skipped. Empty means no filter.

``GPU_DEVICE_ORDINAL`` applies to OpenCL programs only and is ignored here. The
process's device ``N`` (``torch.device("cuda", N)`` on ROCm) is entry ``N`` of the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "LogicalGpu",
    "hip_variable",
    "hip_visible",
    "parse_c_long",
    "rocr_visible",
    "visible_gpus",
]


@dataclass(frozen=True)
class LogicalGpu:
    """One GPU as the ROCm runtime numbers them: a whole board, or one compute partition.

    Attributes:
        index: Its position in AMD SMI's list of processors.
        ordinal: Its position in the ROCm runtime's list, before any visibility variable.
        uuid: AMD SMI's UUID (shared by the partitions of one board).
        rocr_uuid: The runtime's UUID ``GPU-<16 lower-case hex digits>``, None when the
            board has no unique id.
        bdf: Its PCI address, ``domain:bus:device.function``.
        board: The physical board it belongs to: ``domain:bus:device`` (AMD SMI's socket).
        partition: Its compute partition id on the board (0 for an unpartitioned board).
    """

    index: int
    ordinal: int
    uuid: str
    rocr_uuid: str | None
    bdf: str
    board: str
    partition: int = 0


_HEX = re.compile(r"[+-]?0X[0-9A-F]+")
_OCT = re.compile(r"[+-]?0[0-7]*")
_DEC = re.compile(r"[+-]?[1-9][0-9]*")
_INDEX = re.compile(r"0|[1-9][0-9]*")  # what equals C++'s std::to_string of itself


def parse_c_long(token: str) -> int | None:
    """``token`` read as C's ``strtol(token, &end, 0)`` with ``*end == '\\0'``, else None.

    Expects an upper-cased, trimmed token (as ROCr prepares them).
    """
    if _HEX.fullmatch(token):
        sign = -1 if token.startswith("-") else 1
        return sign * int(token.lstrip("+-")[2:], 16)
    if _OCT.fullmatch(token):
        return int(token.lstrip("+-") or "0", 8) * (-1 if token.startswith("-") else 1)
    if _DEC.fullmatch(token):
        return int(token)
    return None


def rocr_visible(gpus: Sequence[LogicalGpu], spec: str | None) -> list[LogicalGpu]:
    """The GPUs ``ROCR_VISIBLE_DEVICES=spec`` leaves, in the order listed.

    Args:
        gpus: All GPUs, in the runtime's order (``ordinal`` 0, 1, ...).
        spec: The variable's value; None when it is not set.
    """
    if spec is None:
        return list(gpus)
    if spec == "":
        return []
    tokens = [t.strip().upper() for t in spec.split(",")]
    if spec.endswith(","):
        tokens.pop()  # a trailing separator ends the list without an empty entry
    names = [("GPU-" + g.rocr_uuid[4:].upper()) if g.rocr_uuid else "Invalid-UUID" for g in gpus]
    chosen: list[int] = []
    for token in tokens[: len(gpus)]:
        if not token:
            break
        if token[0] == "G":
            if not 5 <= len(token) <= 20:
                break
            hits = [i for i, name in enumerate(names) if name.startswith(token)]
            if len(hits) != 1:
                break
            index: int | None = hits[0]
        else:
            index = parse_c_long(token)
        if index is None or not 0 <= index < len(gpus) or index in chosen:
            break
        chosen.append(index)
    return [gpus[i] for i in chosen]


def hip_visible(gpus: Sequence[LogicalGpu], spec: str | None) -> list[LogicalGpu]:
    """The GPUs a HIP device list ``spec`` leaves of ``gpus``, in the order listed.

    Args:
        gpus: What ROCr left, in its order.
        spec: ``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES``); None or empty: all.
    """
    if not spec:
        return list(gpus)
    chosen: list[int] = []
    pos = 0
    while True:
        end = spec.find(",", pos)
        end = len(spec) if end < 0 else end
        token = spec[pos:end]
        if "GPU-" in token:
            for i, g in enumerate(gpus):
                if g.rocr_uuid and token in g.rocr_uuid:
                    token = str(i)
                    break
        valid = _INDEX.fullmatch(token) is not None and int(token) < len(gpus)
        if not valid:
            break
        if int(token) not in chosen:
            chosen.append(int(token))
        pos = end + 1
        if pos >= len(spec):
            break
    return [gpus[i] for i in chosen]


def hip_variable(env: Mapping[str, str]) -> tuple[str, str] | None:
    """``(name, value)`` of the variable HIP reads, or None when neither is set non-empty."""
    for name in ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        value = env.get(name)
        if value:
            return name, value
    return None


def visible_gpus(
    gpus: Sequence[LogicalGpu], env: Mapping[str, str]
) -> tuple[list[LogicalGpu], str | None]:
    """The GPUs this process sees, in its own numbering, and why none when none.

    Args:
        gpus: All GPUs, in any order (sorted here by ``ordinal``).
        env: The process environment.

    Returns:
        ``(visible, reason)``: ``reason`` names the variable that hid every GPU, else None.
    """
    ordered = sorted(gpus, key=lambda g: g.ordinal)
    rocr_spec = env.get("ROCR_VISIBLE_DEVICES")
    after_rocr = rocr_visible(ordered, rocr_spec)
    if ordered and not after_rocr:
        return [], f"ROCR_VISIBLE_DEVICES={rocr_spec!r} hides every AMD GPU"
    hip = hip_variable(env)
    after_hip = hip_visible(after_rocr, hip[1] if hip else None)
    if after_rocr and not after_hip and hip is not None:
        name, value = hip
        why = f"{name}={value!r} hides every AMD GPU"
        if name == "CUDA_VISIBLE_DEVICES":
            why += " (HIP reads it because HIP_VISIBLE_DEVICES is not set)"
        return [], why
    return after_hip, None
