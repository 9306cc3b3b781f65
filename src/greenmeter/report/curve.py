"""The cumulative energy curve of a run, and what is read from it.

The meter's bounded timeline gives each component's cumulative energy at some instants;
the curve interpolates between them. From it come the time split of a phase's energy
(for time-varying carbon intensity), a phase's peak power when the sampler saw none, and
the report's power timeline.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from greenmeter.records import MeterSnapshot
from greenmeter.report.inputs import Warnings, clean
from greenmeter.report.models import MAX_TIMELINE_POINTS, PowerSeries

__all__ = ["Curve", "downsample_series", "energy_segments", "peak_from_curve", "power_timeline"]


class Curve:
    """Cumulative energy per component id at the timeline's instants, monotone."""

    def __init__(self, snap: MeterSnapshot, end_mono: float, warn: Warnings) -> None:
        start = snap.started_mono
        ids = list(snap.energy_j)
        pts: list[tuple[float, dict[str, float]]] = [(start, dict.fromkeys(ids, 0.0))]
        for point in sorted(snap.timeline, key=lambda p: p.t_mono):
            t = float(point.t_mono)
            if not math.isfinite(t) or t <= pts[-1][0] or t >= end_mono:
                continue
            pts.append((t, {i: float(point.energy_j.get(i, 0.0)) for i in ids}))
        final = {i: clean(snap.energy_j.get(i, 0.0), f"energy of {i}", warn, i) for i in ids}
        if end_mono > pts[-1][0]:
            pts.append((end_mono, final))
        else:
            pts[-1] = (pts[-1][0], final)
        # keep each component's curve finite, non-decreasing and ending at its total
        for i in ids:
            running = 0.0
            for _, energies in pts:
                v = energies.get(i, 0.0)
                running = max(running, v if math.isfinite(v) else running)
                energies[i] = min(running, final[i])
        self.ids = ids
        self.t = [p[0] for p in pts]
        self.e = [p[1] for p in pts]

    def total_at(self, t: float, ids: Iterable[str]) -> float:
        """Interpolated cumulative energy of ``ids`` at monotonic instant ``t``."""
        ids = list(ids)
        if t <= self.t[0]:
            return 0.0
        k = bisect.bisect_right(self.t, t) - 1
        if k >= len(self.t) - 1:
            return sum(self.e[-1].get(i, 0.0) for i in ids)
        t0, t1 = self.t[k], self.t[k + 1]
        a = sum(self.e[k].get(i, 0.0) for i in ids)
        b = sum(self.e[k + 1].get(i, 0.0) for i in ids)
        return a + (b - a) * (t - t0) / (t1 - t0)

    def inner_times(self, a: float, b: float) -> list[float]:
        """Timeline instants strictly inside (a, b)."""
        lo = bisect.bisect_right(self.t, a)
        hi = bisect.bisect_left(self.t, b)
        return self.t[lo:hi]


def energy_segments(
    curve: Curve,
    intervals: Sequence[tuple[float, float]],
    ids: Sequence[str],
    energy_j: float,
    to_utc: Any,
) -> list[tuple[datetime, datetime, float]]:
    """Split intervals at timeline instants; energies follow the curve, sum to energy_j."""
    pieces: list[tuple[float, float, float]] = []
    for a, b in intervals:
        if b <= a:
            continue
        cuts = [a, *curve.inner_times(a, b), b]
        for t0, t1 in itertools.pairwise(cuts):
            e = max(0.0, curve.total_at(t1, ids) - curve.total_at(t0, ids))
            pieces.append((t0, t1, e))
    if not pieces:
        return []
    shape = sum(p[2] for p in pieces)
    if shape > 0:
        scale = energy_j / shape
        out = [(to_utc(a), to_utc(b), e * scale) for a, b, e in pieces]
    else:
        span = sum(b - a for a, b, _ in pieces)
        out = [(to_utc(a), to_utc(b), energy_j * (b - a) / span) for a, b, _ in pieces]
    return out


def peak_from_curve(curve: Curve, intervals: Sequence[tuple[float, float]]) -> float | None:
    """Highest mean power of a timeline step that overlaps the phase, else None."""
    steps: set[int] = set()
    last = len(curve.t) - 1
    for a, b in intervals:
        k = max(0, bisect.bisect_right(curve.t, a) - 1)
        while k < last and curve.t[k] < b:
            if curve.t[k + 1] > a and curve.t[k + 1] > curve.t[k]:
                steps.add(k)
            k += 1
    peak: float | None = None
    for k in steps:
        dt = curve.t[k + 1] - curve.t[k]
        power = (sum(curve.e[k + 1].values()) - sum(curve.e[k].values())) / dt
        peak = power if peak is None else max(peak, power)
    return peak


def power_timeline(
    curve: Curve,
    key_of: Mapping[str, str],
    host: str,
    rank: int,
    start_mono: float,
    max_points: int = MAX_TIMELINE_POINTS,
) -> PowerSeries:
    """Per-component mean power (watts) between timeline instants, at most ``max_points``."""
    steps = [
        (curve.t[k + 1], curve.t[k + 1] - curve.t[k], k)
        for k in range(len(curve.t) - 1)
        if curve.t[k + 1] > curve.t[k]
    ]
    group = max(1, math.ceil(len(steps) / max(1, max_points)))
    t_s: list[float] = []
    power: dict[str, list[float]] = {key_of[i]: [] for i in curve.ids if i in key_of}
    for g in range(0, len(steps), group):
        chunk = steps[g : g + group]
        k0, k1 = chunk[0][2], chunk[-1][2] + 1
        dt = curve.t[k1] - curve.t[k0]
        t_s.append(max(0.0, curve.t[k1] - start_mono))
        for i in curve.ids:
            if i in key_of:
                de = curve.e[k1].get(i, 0.0) - curve.e[k0].get(i, 0.0)
                power[key_of[i]].append(max(0.0, de / dt))
    return PowerSeries(host=host, rank=rank, t_s=t_s, power_w=power)


def downsample_series(series: PowerSeries, max_points: int, start_s: float) -> PowerSeries:
    """``series`` with at most ``max_points`` points: consecutive points merged.

    A merged point keeps the last instant of its group and each component's mean power
    over the group (weighted by the length of each step; ``start_s`` is where the first
    step begins, seconds on the series' clock).
    """
    n = len(series.t_s)
    if n <= max_points:
        return series
    group = math.ceil(n / max(1, max_points))
    before = [start_s, *series.t_s[:-1]]
    steps = [max(0.0, t - b) for t, b in zip(series.t_s, before, strict=True)]
    t_s: list[float] = []
    power: dict[str, list[float]] = {key: [] for key in series.power_w}
    for g in range(0, n, group):
        span = range(g, min(n, g + group))
        total = sum(steps[k] for k in span)
        t_s.append(series.t_s[span[-1]])
        for key, values in series.power_w.items():
            if total > 0:
                power[key].append(sum(values[k] * steps[k] for k in span) / total)
            else:
                power[key].append(sum(values[k] for k in span) / len(span))
    return PowerSeries(host=series.host, rank=series.rank, t_s=t_s, power_w=power)
