"""Which NVIDIA boards this process sees, matched by UUID through NVML.

By default the boards this process can see, honouring ``CUDA_VISIBLE_DEVICES`` the way
CUDA does (indices, ``GPU-`` UUIDs or unique prefixes of them, ``MIG-`` ids; parsing
stops at the first invalid entry). NVML itself ignores that variable and enumerates
every board, so boards are matched by UUID. A MIG slice has no power reading of its own:
its parent board is measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from greenmeter.sensors.base import ComponentKind, Unavailable

__all__ = ["parse_visible_devices", "select_boards", "text"]


def text(value: Any) -> str:
    """An NVML string (bytes or str) as text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass
class Board:
    index: int
    handle: Any
    uuid: str
    mig_uuids: list[str] = field(default_factory=list)  # visible slices of this board


def parse_visible_devices(spec: str) -> list[str]:
    """Split a ``CUDA_VISIBLE_DEVICES`` value into entries, as CUDA reads it.

    Entries are stripped; empty entries end the list. The entries are not validated
    here (see :func:`probe` for the matching rules).
    """
    out: list[str] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            break
        out.append(item)
    return out


def _match_uuid(token: str, uuids: Sequence[str]) -> int | None:
    """Index of the one UUID that ``token`` equals or prefixes (case-insensitive)."""
    t = token.lower()
    exact = [i for i, u in enumerate(uuids) if u.lower() == t]
    if exact:
        return exact[0]
    hits = [i for i, u in enumerate(uuids) if u.lower().startswith(t)]
    return hits[0] if len(hits) == 1 else None


class Resolver:
    """Maps indices, UUIDs and MIG ids to physical boards through NVML."""

    def __init__(self, nvml: Any, handles: list[Any], uuids: list[str]) -> None:
        self.nvml = nvml
        self.handles = handles
        self.uuids = uuids
        self._mig: dict[str, int] | None = None

    def mig_map(self) -> dict[str, int]:
        """MIG slice UUID -> parent board index (enumerated once, lazily)."""
        if self._mig is None:
            self._mig = {}
            nv = self.nvml
            for i, h in enumerate(self.handles):
                try:
                    if nv.nvmlDeviceGetMigMode(h)[0] != 1:
                        continue
                    count = nv.nvmlDeviceGetMaxMigDeviceCount(h)
                except nv.NVMLError:
                    continue
                for k in range(count):
                    try:
                        m = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, k)
                        self._mig[text(nv.nvmlDeviceGetUUID(m))] = i
                    except nv.NVMLError:
                        continue
        return self._mig

    def board_of(self, token: str) -> tuple[int, str | None] | None:
        """(board index, MIG id or None) for a UUID-like token, or None if unknown."""
        if token.upper().startswith("MIG-"):
            if token.upper().startswith("MIG-GPU-"):  # legacy MIG-GPU-<uuid>/<gi>/<ci>
                parent = token[4:].split("/", 1)[0]
                i = _match_uuid(parent, self.uuids)
                return None if i is None else (i, token)
            mig = self.mig_map()
            for u, i in mig.items():
                if u.lower() == token.lower():
                    return i, u
            hits = [(u, i) for u, i in mig.items() if u.lower().startswith(token.lower())]
            return (hits[0][1], hits[0][0]) if len(hits) == 1 else None
        i = _match_uuid(token, self.uuids)
        return None if i is None else (i, None)


def select_boards(
    resolver: Resolver, gpus: Sequence[int | str] | None, env: dict[str, str]
) -> tuple[list[Board], list[Unavailable]]:
    """The boards to measure, and the requested ones that could not be matched."""
    unavailable: list[Unavailable] = []
    n = len(resolver.handles)
    # 1. The process's visible devices (CUDA ordinal -> (board index, MIG id or None)).
    spec = env.get("CUDA_VISIBLE_DEVICES")
    visible: list[tuple[int, str | None]] = []
    if spec is None:
        visible = [(i, None) for i in range(n)]
    else:
        for token in parse_visible_devices(spec):
            if token.lstrip("-").isdigit():
                i = int(token)
                if i < 0 or i >= n:
                    break  # CUDA ignores this and every later entry
                hit: tuple[int, str | None] | None = (i, None)
            else:
                hit = resolver.board_of(token)
                if hit is None:
                    break
            if hit not in visible:
                visible.append(hit)
        if not visible:
            unavailable.append(
                Unavailable(
                    "nvml",
                    ComponentKind.GPU,
                    f"CUDA_VISIBLE_DEVICES={spec!r} hides every GPU from this process "
                    f"(NVML sees {n})",
                    "unset CUDA_VISIBLE_DEVICES or list the GPUs to use",
                )
            )
    # 2. An explicit selection: ints are CUDA ordinals in this process; strings are
    #    ordinals, GPU UUIDs (or unique prefixes) or MIG ids.
    chosen: list[tuple[int, str | None]] = []
    if gpus is None:
        chosen = list(visible)
    else:
        for item in gpus:
            hit = None
            if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
                k = int(item)
                hit = visible[k] if 0 <= k < len(visible) else None
            else:
                hit = resolver.board_of(str(item).strip())
            if hit is None:
                unavailable.append(
                    Unavailable(
                        "nvml",
                        ComponentKind.GPU,
                        f"GPU {item!r} not found: this process sees {len(visible)} GPU(s) "
                        f"({', '.join(resolver.uuids[i] for i, _ in visible) or 'none'})",
                        "pass a CUDA device index visible to this process or a GPU UUID",
                    )
                )
            elif hit not in chosen:
                chosen.append(hit)
    boards: dict[int, Board] = {}
    for i, mig in chosen:
        b = boards.setdefault(i, Board(i, resolver.handles[i], resolver.uuids[i]))
        if mig is not None and mig not in b.mig_uuids:
            b.mig_uuids.append(mig)
    return list(boards.values()), unavailable
