"""Is PUE 1.0 plausible for this hardware? Data-centre-class hardware says no.

A server GPU (A100, H100, H200, B200, MI300 and their kin) or a multi-socket host runs
in a data centre, where cooling and power distribution add to the IT energy. When the
PUE was not given and 1.0 was assumed, the report says so and how to set it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from greenmeter.carbon.models import PueInfo

__all__ = ["SERVER_GPU_PATTERN", "datacentre_pue_warning", "is_datacentre_hardware"]

#: GPU names of data-centre parts (NVIDIA data-centre lines, AMD Instinct).
SERVER_GPU_PATTERN = re.compile(
    r"\b(A100|A800|A30|A40|A10|H100|H200|H800|H20|GH200|B100|B200|GB200|L40S?|L4|V100|P100|"
    r"T4|MI\d{2,3}X?|Instinct)\b",
    re.IGNORECASE,
)


def is_datacentre_hardware(gpu_names: Sequence[str], sockets: int | None) -> str | None:
    """Why this hardware is data-centre class (a short phrase), or None."""
    for name in gpu_names:
        if name and SERVER_GPU_PATTERN.search(name):
            return f"server GPU {name}"
    if sockets is not None and sockets >= 2:
        return f"{sockets}-socket host"
    return None


def datacentre_pue_warning(
    pue: PueInfo, gpu_names: Sequence[str], sockets: object
) -> tuple[str, str] | None:
    """``(code, message)`` when PUE 1.0 was assumed on data-centre hardware, else None."""
    if pue.value != 1.0 or (pue.resolved_from != "default" and pue.preset != "workstation"):
        return None
    why = is_datacentre_hardware(
        list(gpu_names), sockets if isinstance(sockets, int) and sockets > 0 else None
    )
    if why is None:
        return None
    from greenmeter.carbon.resolve import pue_warning_text

    return ("carbon.pue_default_datacentre", pue_warning_text(why))
