"""The facts about a model that the report's ``models`` list holds (:func:`model_size`,
re-exported by :mod:`greenmeter.integrations.torch`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    pass


__all__ = ["model_size"]


def model_size(module: torch.nn.Module, name: str | None = None) -> dict[str, Any]:
    """Facts about ``module`` for the report: ``meter.report(model=model_size(net))``.

    Returns a dict with the fields of :class:`greenmeter.report.ModelInfo`:
    ``name`` (``name`` or the class name), ``parameters_total`` and
    ``parameters_trainable`` (counts; shared parameters counted once),
    ``size_bytes`` (parameters and buffers, in bytes) and ``dtypes`` (parameter count
    per dtype name, e.g. ``{"float32": 1024}``).
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"model_size() needs a torch.nn.Module, got {type(module).__name__}")
    total = trainable = size_bytes = 0
    dtypes: dict[str, int] = {}
    for p in module.parameters():  # parameters() yields each shared tensor once
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
        size_bytes += n * p.element_size()
        key = str(p.dtype).removeprefix("torch.")
        dtypes[key] = dtypes.get(key, 0) + n
    for b in module.buffers():
        size_bytes += b.numel() * b.element_size()
    return {
        "name": name if name is not None else type(module).__name__,
        "parameters_total": total,
        "parameters_trainable": trainable,
        "size_bytes": size_bytes,
        "dtypes": dtypes,
    }
