"""The pieces of a merge (see :mod:`greenmeter.report.merge` for the rules).

:class:`Parts` knows which component of which report is which (a GPU by its UUID,
anything else by its key) and what time each report covers; :meth:`Parts.weights` says
how much of each report's reading of a component counts, by time. The rest combines
what the reports say about CO2e, hosts, timelines and segments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from greenmeter.report.bounds import timeline_points
from greenmeter.report.build import DEVICE_HOUR_KINDS
from greenmeter.report.curve import downsample_series
from greenmeter.report.inputs import Warnings
from greenmeter.report.models import J_PER_KWH, Component, HostInfo, PowerSeries, Report
from greenmeter.report.spans import Spans, length, overlap, union
from greenmeter.report.tags import MAX_TAGS

__all__ = [
    "Parts",
    "Share",
    "combine_co2e",
    "dedupe",
    "merged_hosts",
    "merged_segments",
    "merged_tags",
    "merged_timelines",
    "shares",
]

#: (CO2e breakdown, share of its energy kept, of its device-hours kept, per device kind).
Share = tuple[Any, float, float, dict[str, float]]


def _ident(component: Component) -> tuple[str, str]:
    if component.kind == "gpu":
        gpu_uuid = component.detail.get("uuid") or component.id.partition(":")[2]
        if gpu_uuid:
            return ("gpu", gpu_uuid)
    return ("key", component.key)


def _who(report: Report, index: int) -> str:
    ranks = sorted({r.rank for r in report.ranks})
    return f"rank {', '.join(map(str, ranks))}" if ranks else f"report #{index}"


def _coverage(report: Report, offset: float, start: Any) -> Spans:
    """What time a report measured, seconds on the merged clock: its ranks' spans and its
    earlier segments (a merged report's ranks may leave gaps between them)."""
    spans = [
        ((x.start_utc - start).total_seconds(), (x.end_utc - start).total_seconds())
        for x in (*report.ranks, *report.segments)
    ]
    return union(spans) or [(offset, offset + report.duration_s)]


class Parts:
    """The reports of a merge: their components, de-duplicated, and their time."""

    def __init__(
        self, reports: Sequence[Report], offset: Sequence[float], start: Any, warn: Warnings
    ) -> None:
        self.reports = reports
        self.offset = offset
        self.warn = warn
        self.keymap: list[dict[str, str]] = []
        self.kind: dict[str, str] = {}
        self.coverage = [_coverage(r, o, start) for r, o in zip(reports, offset, strict=True)]
        canon: dict[tuple[str, str], str] = {}
        carriers: dict[str, list[tuple[int, Component]]] = {}
        for i, report in enumerate(reports):
            mapping: dict[str, str] = {}
            for comp in report.components:
                key = canon.setdefault(_ident(comp), comp.key)
                mapping[comp.key] = key
                carriers.setdefault(key, []).append((i, comp))
                self.kind.setdefault(key, comp.kind)
            self.keymap.append(mapping)
        self.components = [_degraded(items, offset) for items in carriers.values()]
        #: Per report: how much of its own reading of each component counts (set by
        #: the totals' :meth:`weights`).
        self.run_weights: list[dict[str, float]] = [{} for _ in reports]

    def canon(self, i: int, key: str) -> str:
        return self.keymap[i].get(key, key)

    def weights(
        self, items: Sequence[tuple[int, Mapping[str, float], Spans]], *, what: str = ""
    ) -> tuple[dict[str, float], list[dict[str, float]]]:
        """Energy per component counted once by time, and each item's weights.

        Each item is (report index, energy per own component key, the time it covers on
        the merged clock). Taken in order, an item's reading of a component counts in
        proportion to its time not covered yet by earlier items with that component.

        Args:
            what: Names the figures in the warning about overlaps (totals only).
        """
        out: dict[str, float] = {}
        weights: list[dict[str, float]] = []
        covered: dict[str, Spans] = {}
        overlapped: dict[str, tuple[float, list[str]]] = {}
        for i, energy, spans in items:
            own: dict[str, float] = {}
            seconds = length(spans)
            for key, value in energy.items():
                canon = self.canon(i, key)
                before = covered.get(canon)
                if before is None:
                    weight = 1.0
                else:
                    shared = overlap(spans, before) if seconds > 0 else 0.0
                    weight = 1.0 - shared / seconds if seconds > 0 else 0.0
                    if shared > 0 or seconds == 0:
                        total, who = overlapped.get(canon, (0.0, []))
                        overlapped[canon] = (total + shared, [*who, _who(self.reports[i], i)])
                own[key] = max(0.0, min(1.0, weight))
                out[canon] = out.get(canon, 0.0) + own[key] * value
                covered[canon] = union([*(before or []), *spans])
            weights.append(own)
        if what:
            for key, (seconds, who) in overlapped.items():
                self.warn.add(
                    "merge.duplicate_component",
                    f"{key} was also reported by {', '.join(who)} over the same time "
                    f"({seconds:.6g} s): counted once there",
                    key,
                )
        return out, weights

    def hours(self, i: int, weights: Mapping[str, float], seconds: float) -> dict[str, float]:
        """Device-hours per kind of report ``i``'s components, each scaled by its weight."""
        hours: dict[str, float] = {}
        for key, weight in weights.items():
            kind = self.kind.get(self.canon(i, key))
            if kind in DEVICE_HOUR_KINDS:
                hours[kind] = hours.get(kind, 0.0) + weight * seconds / 3600.0
        return hours


def _degraded(carriers: Sequence[tuple[int, Component]], offset: Sequence[float]) -> Component:
    """The component as the first report has it, degraded if any report says so (from the
    earliest instant any report gives, on the merged clock)."""
    first = carriers[0][1]
    bad = [(j, c) for j, c in carriers if c.degraded]
    if not bad:
        return first
    times = [(c.degraded_at_s + offset[j], c) for j, c in bad if c.degraded_at_s is not None]
    at, source = min(times, key=lambda t: t[0]) if times else (None, bad[0][1])
    return first.model_copy(
        update={"degraded": True, "degraded_reason": source.degraded_reason, "degraded_at_s": at}
    )


def shares(
    parts: Parts,
    items: Sequence[tuple[int, Any]],
    weights: Sequence[Mapping[str, float]],
    seconds: Any,
    scale: float = 1.0,
) -> tuple[list[Share], dict[str, float]]:
    """Per part: (co2e, kept energy share, kept device-hour share, per kind); device-hours.

    ``scale`` multiplies every kept energy share (a phase cut down to its parent's energy).
    """
    out: list[Share] = []
    hours: dict[str, float] = {}
    for n, (i, obj) in enumerate(items):
        energy = obj.energy_j
        total = sum(energy.values())
        kept_e = sum(energy[k] * weights[n].get(k, 0.0) for k in energy)
        own_all = parts.hours(i, dict.fromkeys(energy, 1.0), seconds(obj))
        own_kept = parts.hours(i, weights[n], seconds(obj))
        for kind, h in own_kept.items():
            hours[kind] = hours.get(kind, 0.0) + h
        if total > 0:
            f = kept_e / total
        else:
            f = min(weights[n].values(), default=1.0)
        all_h, kept_h = sum(own_all.values()), sum(own_kept.values())
        g = kept_h / all_h if all_h > 0 else f
        g_kind = {k: own_kept.get(k, 0.0) / h for k, h in own_all.items() if h > 0}
        out.append((obj.co2e, f * scale, g, g_kind))
    return out, hours


def combine_co2e(parts: Sequence[Share], it_j: float, pue: float) -> Any:
    """Scale and add Co2eBreakdowns.

    Each part is (breakdown, share of its energy kept, share of its device-hours kept,
    share kept per device kind). Operational and market figures scale with the energy
    share; embodied figures per kind with that kind's device-hour share (the overall
    device-hour share when the breakdown has no per-kind figures).
    """
    used = [p for p in parts if p[1] > 0 or p[2] > 0]
    if not used:
        used = list(parts[:1])
    if any(p[0] is None for p in used):
        return None
    first = used[0][0]

    def scaled(field: str) -> float | None:
        values = [(getattr(b, field), f) for b, f, _, _ in used]
        if all(v is None for v, _ in values):
            return None
        return sum((v or 0.0) * w for v, w in values)

    embodied: float | None = None
    by_kind: dict[str, float] | None = None
    for b, _, g, g_kind in used:
        per_kind = getattr(b, "embodied_by_kind_g", None)
        if per_kind:
            by_kind = by_kind or {}
            for kind, grams in per_kind.items():
                part = grams * g_kind.get(kind, g)
                by_kind[kind] = by_kind.get(kind, 0.0) + part
                embodied = (embodied or 0.0) + part
        elif b.embodied_g is not None:
            embodied = (embodied or 0.0) + b.embodied_g * g
    operational = scaled("operational_g") or 0.0
    facility_j = it_j * pue
    data = first.model_dump()
    data.update(
        it_energy_j=it_j,
        facility_energy_j=facility_j,
        pue=pue,
        operational_g=operational,
        operational_low_g=scaled("operational_low_g") or 0.0,
        operational_high_g=scaled("operational_high_g") or 0.0,
        market_g=scaled("market_g") if all(p[0].market_g is not None for p in used) else None,
        embodied_g=embodied,
        embodied_by_kind_g=by_kind,
        intensity_g_per_kwh=(operational / (facility_j / J_PER_KWH))
        if facility_j > 0
        else first.intensity_g_per_kwh,
        time_varying=any(getattr(p[0], "time_varying", False) for p in used),
    )
    return type(first).model_validate(data)


def merged_tags(reports: Sequence[Report]) -> dict[str, str]:
    """Every tag of the merged reports; where two disagree, the earliest report's value."""
    out: dict[str, str] = {}
    for report in reports:
        for key, value in report.tags.items():
            out.setdefault(key, value)
    return dict(list(out.items())[:MAX_TAGS])


def dedupe(items: Iterable[Any], ident: Any) -> list[Any]:
    """``items`` in order, each ``ident`` once."""
    seen: set[Any] = set()
    out = []
    for item in items:
        key = ident(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def merged_hosts(order: Sequence[Report]) -> list[HostInfo]:
    """Hosts merged by hostname, with all their ranks."""
    hosts: dict[str, HostInfo] = {}
    for report in order:
        for host in report.hosts:
            if host.hostname in hosts:
                have = hosts[host.hostname]
                ranks = sorted(set(have.ranks) | set(host.ranks))
                hosts[host.hostname] = have.model_copy(update={"ranks": ranks})
            else:
                hosts[host.hostname] = host
    return list(hosts.values())


def merged_timelines(parts: Parts) -> list[PowerSeries]:
    """Each report's power series on the merged clock.

    A series keeps a component when at least half of the report's time with it was not
    covered by earlier reports (so two ranks on one host plot it once, two runs one after
    another both), and all series together hold at most the report's timeline budget.
    """
    kept: list[tuple[int, Any, dict[str, list[float]]]] = []
    for i, report in enumerate(parts.reports):
        for series in report.power_timeline:
            power = {
                k: v for k, v in series.power_w.items() if parts.run_weights[i].get(k, 0.0) >= 0.5
            }
            kept.append((i, series, power))
    cap = timeline_points(sum(1 + len(power) for _, _, power in kept) or 1)
    out: list[PowerSeries] = []
    for i, series, power in kept:
        shifted = PowerSeries(
            host=series.host,
            rank=series.rank,
            t_s=[t + parts.offset[i] for t in series.t_s],
            power_w=power,
        )
        out.append(downsample_series(shifted, cap, parts.offset[i]))
    return out


def merged_segments(reports: Sequence[Report]) -> list[Any]:
    """Earlier segments of resumed runs, each once, oldest first."""
    seen: dict[tuple[Any, ...], Any] = {}
    for report in reports:
        for seg in report.segments:
            seen.setdefault((seg.start_utc, seg.host), seg)
    return sorted(seen.values(), key=lambda seg: seg.start_utc)
