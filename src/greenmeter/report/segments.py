"""Segments of a run resumed from a checkpoint: what a checkpoint keeps, and the folding.

A training resumed from a checkpoint is measured in stretches (segments), one per
process that ran it. Each segment's measurement is kept as plain data
(:func:`segment_summary`, stored in the checkpoint); the last segment's meter folds the
earlier ones into its own figures (:func:`fold_segments`) so the report covers the whole
run, and :func:`cover_segments` makes the report's duration cover the same segments as
its energy. Energies are joules per component id, durations seconds, instants ISO-8601
UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from greenmeter.core.intervals import coalesce
from greenmeter.records import MeterSnapshot, PhaseRecord

if TYPE_CHECKING:
    from greenmeter.report.models import Report

__all__ = ["SEGMENT_INTERVALS", "cover_segments", "fold_segments", "segment_summary"]

#: Most active spans kept per phase in a checkpointed segment.
SEGMENT_INTERVALS = 32


def _utc_iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat()


def _parse_utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _add_opt(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


def segment_summary(snapshot: MeterSnapshot, meter_id: str) -> dict[str, Any]:
    """The measurement so far as plain data (stored in checkpoints by ``state_dict``).

    Energies are joules per component id, durations seconds, instants ISO-8601 UTC.
    """

    def utc(t_mono: float) -> datetime:
        return snapshot.started_utc + timedelta(seconds=t_mono - snapshot.started_mono)

    phases = []
    for rec in snapshot.phases:
        spans = coalesce(rec.intervals_mono, SEGMENT_INTERVALS)
        phases.append(
            {
                "path": list(rec.path),
                "kind": rec.kind,
                "count": int(rec.count),
                "duration_s": float(rec.duration_s),
                "energy_j": {k: float(v) for k, v in rec.energy_j.items()},
                "samples": rec.samples,
                "tokens": rec.tokens,
                "steps": rec.steps,
                "intervals_utc": [[_utc_iso(utc(a)), _utc_iso(utc(b))] for a, b in spans],
                "attrs": dict(rec.attrs),
            }
        )
    return {
        "meter_id": meter_id,
        "host": snapshot.host,
        "rank": int(snapshot.rank),
        "start_utc": _utc_iso(snapshot.started_utc),
        "end_utc": _utc_iso(utc(snapshot.started_mono + snapshot.duration_s)),
        "duration_s": float(snapshot.duration_s),
        "energy_j": {k: float(v) for k, v in snapshot.energy_j.items()},
        "phases": phases,
    }


def fold_segments(
    snapshot: MeterSnapshot, segments: Sequence[Mapping[str, Any]]
) -> tuple[MeterSnapshot, dict[str, Any], list[dict[str, Any]]]:
    """Add earlier segments (from :func:`segment_summary`) into ``snapshot``.

    Per phase path: energies (per component id this meter also measures), durations,
    entry counts and items are added; a path only the earlier segments have is added
    with its time spans, placed before this segment's start. The run totals gain the
    earlier energies. Returns the new snapshot, the facts to record in the report's
    ``extra`` (segment count, earlier energy and duration, anything left out) and the
    earlier segments for the report's ``segments`` list.
    """
    known = {c.id for c in snapshot.components}
    anchor_utc, anchor_mono = snapshot.started_utc, snapshot.started_mono

    def mono(text: str) -> float:
        return anchor_mono + (_parse_utc(text) - anchor_utc).total_seconds()

    records: dict[tuple[str, ...], PhaseRecord] = {}
    for rec in snapshot.phases:
        records[rec.path] = replace(
            rec,
            energy_j=dict(rec.energy_j),
            intervals_mono=list(rec.intervals_mono),
            latencies_s=list(rec.latencies_s),
            attrs=dict(rec.attrs),
        )
    order: list[tuple[str, ...]] = []
    totals = dict(snapshot.energy_j)
    extra: dict[str, Any] = {"resume.segments": len(segments) + 1}
    listed: list[dict[str, Any]] = []
    earlier_j = earlier_s = dropped_j = 0.0
    for seg in segments:
        seg_j = 0.0
        for cid, value in dict(seg.get("energy_j", {})).items():
            if cid in known:
                totals[cid] = totals.get(cid, 0.0) + float(value)
                seg_j += float(value)
            else:
                dropped_j += float(value)
        earlier_j += seg_j
        earlier_s += float(seg.get("duration_s", 0.0))
        listed.append(
            {
                "start_utc": seg.get("start_utc"),
                "end_utc": seg.get("end_utc"),
                "duration_s": float(seg.get("duration_s", 0.0)),
                "host": seg.get("host"),
                "it_energy_j": seg_j,
            }
        )
        for ph in seg.get("phases", []):
            path = tuple(str(p) for p in ph["path"])
            if path not in order:
                order.append(path)
            rec = records.get(path)
            spans = [(mono(a), mono(b)) for a, b in ph.get("intervals_utc", [])]
            if rec is None:
                rec = PhaseRecord(path=path, kind=str(ph.get("kind", "custom")))
                rec.intervals_mono = spans
                rec.last_end_mono = max((b for _, b in spans), default=None)
                records[path] = rec
            else:  # measured in this segment too: its time spans both
                rec.intervals_mono = sorted([*spans, *rec.intervals_mono])
            rec.count += int(ph.get("count", 0))
            rec.duration_s += float(ph.get("duration_s", 0.0))
            for cid, value in dict(ph.get("energy_j", {})).items():
                if cid in known:
                    rec.energy_j[cid] = rec.energy_j.get(cid, 0.0) + float(value)
            rec.samples = _add_opt(rec.samples, ph.get("samples"))
            rec.tokens = _add_opt(rec.tokens, ph.get("tokens"))
            rec.steps = _add_opt(rec.steps, ph.get("steps"))
            if spans:
                first = min(a for a, _ in spans)
                if rec.first_start_mono is None or first < rec.first_start_mono:
                    rec.first_start_mono = first
            for key, value in dict(ph.get("attrs", {})).items():
                rec.attrs.setdefault(str(key), str(value))
    order += [p for p in records if p not in order]
    extra["resume.earlier_it_energy_j"] = earlier_j
    extra["resume.earlier_duration_s"] = earlier_s
    if segments:
        extra["resume.first_start_utc"] = segments[0].get("start_utc")
    if dropped_j > 0:
        extra["resume.left_out_energy_j"] = dropped_j
    extra["resume.note"] = (
        "resumed from a checkpoint: phases and totals include the earlier segments' energy "
        "up to their last checkpoint (listed in the report's segments); start_utc is the "
        "first segment's start and duration_s the measured time of all segments"
    )
    folded = replace(snapshot, phases=[records[p] for p in order], energy_j=totals)
    return folded, extra, listed


def cover_segments(report: Report) -> Report:
    """``report`` with its duration covering the same segments as its energy.

    A report built from a folded snapshot (:func:`fold_segments`) has the earlier
    segments' energy in its totals but only the last segment's time. This returns a copy
    whose ``duration_s`` (and ``totals.duration_s``) is the measured time of every
    segment (the gaps between them left out: nothing was measured there) and whose
    ``start_utc`` is the first segment's start, so energy over duration is the run's
    mean power. The last segment's own figures go to ``extra`` as
    ``resume.this_duration_s`` (seconds) and ``resume.this_it_energy_j`` (joules), beside
    the earlier segments listed in ``segments``. A report without segments is returned
    as it is.
    """
    if not report.segments:
        return report
    earlier_s = sum(seg.duration_s for seg in report.segments)
    earlier_j = sum(seg.it_energy_j for seg in report.segments)
    duration_s = report.duration_s + earlier_s
    start = min([report.start_utc, *(seg.start_utc for seg in report.segments)])
    extra = dict(report.extra)
    extra["resume.this_duration_s"] = report.duration_s
    extra["resume.this_it_energy_j"] = max(0.0, report.totals.it_energy_j - earlier_j)
    totals = report.totals.model_copy(update={"duration_s": duration_s})
    updated = report.model_copy(
        update={"duration_s": duration_s, "start_utc": start, "totals": totals, "extra": extra}
    )
    return type(report).model_validate(updated.model_dump())
