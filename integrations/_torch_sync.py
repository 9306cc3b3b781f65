"""CUDA synchronisation at phase boundaries (:func:`install`, re-exported by
:mod:`greenmeter.integrations.torch`): a meter waits for the measured CUDA devices so
asynchronous kernels count in the phase that launched them."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter


__all__ = ["install"]

_INSTALLED: weakref.WeakKeyDictionary[Any, _CudaSync] = weakref.WeakKeyDictionary()


def _cuda_index_by_uuid() -> dict[str, int]:
    """Visible CUDA device index per ``"GPU-<uuid>"`` (CUDA must be initialised)."""
    out: dict[str, int] = {}
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        if uuid is not None:
            out["GPU-" + str(uuid)] = i
    return out


class _CudaSync:
    """The sync hook: waits for the measured CUDA devices, never initialises CUDA."""

    def __init__(self, meter: Any, devices: Sequence[int | str | torch.device] | None) -> None:
        self._meter_ref = weakref.ref(meter)
        self._requested = list(devices) if devices is not None else None
        self._indices: list[int] | None = None

    def _resolve(self) -> list[int]:
        count = torch.cuda.device_count()
        by_uuid = _cuda_index_by_uuid()
        if self._requested is not None:
            out: list[int] = []
            for dev in self._requested:
                if isinstance(dev, torch.device):
                    idx = dev.index if dev.index is not None else torch.cuda.current_device()
                elif isinstance(dev, int):
                    idx = dev
                elif str(dev).startswith("cuda"):
                    idx = torch.device(str(dev)).index or 0
                else:
                    text = str(dev)
                    idx = by_uuid.get(text if text.startswith("GPU-") else "GPU-" + text, -1)
                if 0 <= idx < count and idx not in out:
                    out.append(idx)
            return out
        meter = self._meter_ref()
        wanted: list[int] = []
        if meter is not None:
            for comp in meter.components:
                if str(getattr(comp.kind, "value", comp.kind)) != "gpu":
                    continue
                uuid = dict(comp.detail).get("uuid") or dict(comp.detail).get("parent_uuid")
                idx = by_uuid.get(str(uuid)) if uuid else None
                if idx is not None and idx not in wanted:
                    wanted.append(idx)
        return wanted or list(range(count))

    def __call__(self) -> None:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return  # nothing launched on a GPU yet; never initialise CUDA from here
        if self._indices is None:
            self._indices = self._resolve()
        for idx in self._indices:
            torch.cuda.synchronize(idx)


def install(meter: EnergyMeter, devices: Sequence[int | str | torch.device] | None = None) -> None:
    """Make ``meter`` synchronise CUDA devices at every phase boundary.

    The hook runs only at phase boundaries (never per batch) and only once CUDA is
    initialised in this process: it never initialises CUDA itself. Installing twice on
    the same meter is a no-op.

    Args:
        meter: The meter to hook.
        devices: CUDA devices to wait for (indices, ``torch.device``, ``"cuda:1"`` or
            ``"GPU-<uuid>"``). Default: the visible devices whose UUIDs match the meter's
            GPU components; all visible devices when none match.
    """
    if meter in _INSTALLED:
        return
    hook = _CudaSync(meter, devices)
    _INSTALLED[meter] = hook
    meter.add_sync_hook(hook)
