"""The per-rank reports of a ``torch.distributed`` job merged into one on rank 0
(:func:`gather_reports`, :func:`distributed_report`, re-exported by
:mod:`greenmeter.integrations.torch`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter
    from greenmeter.report import Report


__all__ = ["distributed_report", "gather_reports"]


def _gather_parts(report: Report | None, group: Any, dst: int) -> list[Report] | None:
    """Every rank's report on ``dst`` (validated), None elsewhere."""
    import torch.distributed as dist

    from greenmeter.report import Report

    payload = report.model_dump_json() if report is not None else None
    rank = dist.get_rank()
    world = dist.get_world_size(group)
    received: list[Any] | None = [None] * world if rank == dst else None
    dist.gather_object(payload, received, dst=dst, group=group)
    if rank != dst:
        return None
    assert received is not None
    parts: list[Report] = []
    for i, text in enumerate(received):
        if text is None:
            warnings.warn(
                f"greenmeter: rank #{i} of the group sent no report; the merged report lacks it",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        parts.append(Report.model_validate_json(text))
    return parts


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def gather_reports(report: Report, group: Any = None, dst: int = 0) -> Report | None:
    """Merge every rank's report into one on rank ``dst``; None on the other ranks.

    A collective: every rank of ``group`` must call it. Each report travels as its JSON
    text (plain data) through ``torch.distributed.gather_object`` and is validated on
    arrival, then :func:`greenmeter.report.merge_reports` combines them (a host's CPU
    and memory counted once, each GPU once per UUID). Without an initialised process
    group the report is returned unchanged.

    With the NCCL backend, ``gather_object`` uses ``torch.cuda.current_device()``: call
    ``torch.cuda.set_device(local_rank)`` first, as torchrun scripts usually do.

    Args:
        report: This rank's report (``meter.report()``).
        group: The process group (default: the world).
        dst: Global rank that receives the merged report.

    Raises:
        greenmeter.report.ReportError: on ``dst``, when the parts do not merge.
    """
    from greenmeter.report import merge_reports

    if not _distributed():
        return report
    parts = _gather_parts(report, group, dst)
    if not parts:
        return None
    return merge_reports(parts)


def distributed_report(
    meter: EnergyMeter,
    path: str | Path | None = None,
    *,
    group: Any = None,
    dst: int = 0,
    **report_kwargs: Any,
) -> Report | None:
    """Build this rank's report, gather all ranks' on ``dst``, write the merged one there.

    A collective (call it on every rank). The meter is not stopped: call it after
    ``meter.stop()`` for a final report, or while running for an in-progress one.
    Problems never raise: a rank whose report cannot be built is left out (with a
    warning); when the parts cannot be merged, rank ``dst`` warns and writes each part
    next to ``path`` as ``<stem>.rank<N><suffix>`` instead.

    Args:
        meter: This rank's meter.
        path: Where rank ``dst`` writes the merged report (atomically); None: don't write.
        group / dst: As in :func:`gather_reports`.
        **report_kwargs: Passed to ``meter.report()`` (``model=``, ``status=``...).

    Returns:
        The merged report on rank ``dst`` (this rank's own when not distributed), None
        elsewhere or when merging failed.
    """
    from greenmeter.report import merge_reports

    try:
        report: Report | None = meter.report(**report_kwargs)
    except Exception as exc:  # every rank must still join the collective
        warnings.warn(
            f"greenmeter: building this rank's report failed ({exc!r}); it is left out",
            RuntimeWarning,
            stacklevel=2,
        )
        report = None
    if not _distributed():
        parts = [report] if report is not None else []
    else:
        gathered = _gather_parts(report, group, dst)
        if gathered is None:
            return None
        parts = gathered
    if not parts:
        return None
    try:
        merged = merge_reports(parts) if len(parts) > 1 else parts[0]
    except Exception as exc:
        warnings.warn(
            f"greenmeter: merging the ranks' reports failed ({exc!r}); "
            "writing one report per rank instead",
            RuntimeWarning,
            stacklevel=2,
        )
        if path is not None:
            target = Path(path)
            for part in parts:
                rank = min((r.rank for r in part.ranks), default=0)
                part.save(target.with_name(f"{target.stem}.rank{rank}{target.suffix}"))
        return None
    if path is not None:
        merged.save(Path(path))
    return merged
