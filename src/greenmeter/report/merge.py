"""Combine reports written per rank or per node into one.

The rules, chosen so that the merged totals equal those of the same work measured as
one run:

* **Order.** Reports are taken in order of their lowest rank (then start time).
* **Components are de-duplicated.** A GPU is identified by its UUID, anything else (CPU
  package, DRAM, estimates) by ``(host, component id)``, i.e. its key. When several
  reports carry the same component (two ranks on one host both counting the package),
  it is taken once: the reading of the first report that has it, in the order above,
  for the totals and for each phase. A warning names what was de-duplicated.
* **Phases merge by path.** Energies: the de-duplicated sum per component. Items
  (samples, tokens, steps): summed. Count: the largest (ranks running the same phase
  side by side enter it together). Time: the union of the parts' active intervals,
  kept between the longest part and the sum of the parts. Latency samples are pooled
  and the efficiency figures recomputed by the one efficiency function. Peak power: the
  sum of the parts' peaks (an upper bound: the peaks need not coincide). Confidence:
  the worst of the parts. Device-hours: each kept device's hours from the part that
  kept it. Exclusive energy: recomputed on the merged tree.
* **CO2e** is linear in energy: each part's figure counts in proportion to the share
  of its energy that was kept (operational, low/high, market), and embodied emissions in
  proportion to its kept device-hours.
* **Run facts.** Start: earliest; end: latest; duration: union of the parts' spans.
  Status: the worst (failed, interrupted, running, complete). Hosts are merged by
  hostname, ranks listed once each, GPUs once per UUID. Carbon settings, software,
  command line and git state come from the first report; a mismatch between parts'
  carbon settings or PUE is warned about.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from greenmeter.report.build import DEVICE_HOUR_KINDS, _coalesce, _downsample_reservoir
from greenmeter.report.efficiency import efficiency
from greenmeter.report.errors import ReportError, format_validation_error
from greenmeter.report.inputs import Warnings
from greenmeter.report.models import (
    CONFIDENCE_LEVELS,
    J_PER_KWH,
    MAX_LATENCY_SAMPLES,
    MAX_PHASE_INTERVALS,
    Component,
    HostInfo,
    Items,
    Phase,
    PowerSeries,
    Report,
    Totals,
)
from greenmeter.report.tags import MAX_TAGS
from greenmeter.report.tree import nest

__all__ = ["merge_reports"]

_STATUS_ORDER = ("complete", "running", "interrupted", "failed")


def _merged_tags(reports: Sequence[Report]) -> dict[str, str]:
    """Every tag of the merged reports; where two disagree, the earliest report's value."""
    out: dict[str, str] = {}
    for report in reports:
        for key, value in report.tags.items():
            out.setdefault(key, value)
    return dict(list(out.items())[:MAX_TAGS])


def _union(intervals: Iterable[tuple[float, float]]) -> tuple[list[tuple[float, float]], float]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged, sum(b - a for a, b in merged)


def _span(union_s: float, parts: Sequence[float]) -> float:
    if len(parts) == 1:
        return parts[0]
    return min(max(union_s, max(parts)), sum(parts))


def _ident(component: Component) -> tuple[str, str]:
    if component.kind == "gpu":
        gpu_uuid = component.detail.get("uuid") or component.id.partition(":")[2]
        if gpu_uuid:
            return ("gpu", gpu_uuid)
    return ("key", component.key)


_Share = tuple[Any, float, float, dict[str, float]]


def _combine_co2e(parts: Sequence[_Share], it_j: float, pue: float) -> Any:
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


class _Parts:
    """Which component keys each part contributes, after de-duplication."""

    def __init__(self, reports: Sequence[Report], warn: Warnings) -> None:
        self.keymap: list[dict[str, str]] = []
        self.components: list[Component] = []
        self.kind: dict[str, str] = {}
        canon: dict[tuple[str, str], str] = {}
        dup: dict[str, list[str]] = {}
        for i, report in enumerate(reports):
            mapping: dict[str, str] = {}
            for comp in report.components:
                ident = _ident(comp)
                if ident in canon:
                    mapping[comp.key] = canon[ident]
                    dup.setdefault(canon[ident], []).append(_who(report, i))
                else:
                    canon[ident] = comp.key
                    mapping[comp.key] = comp.key
                    self.components.append(comp)
                    self.kind[comp.key] = comp.kind
            self.keymap.append(mapping)
        for key, who in dup.items():
            warn.add(
                "merge.duplicate_component",
                f"{key} was also reported by {', '.join(who)}; counted once",
                key,
            )

    def take(
        self, items: Sequence[tuple[int, dict[str, float]]]
    ) -> tuple[dict[str, float], list[set[str]]]:
        """De-duplicated energies, and which of each part's own keys were kept."""
        out: dict[str, float] = {}
        kept: list[set[str]] = [set() for _ in items]
        for n, (i, energy) in enumerate(items):
            for key, value in energy.items():
                canon = self.keymap[i].get(key, key)
                if canon not in out:
                    out[canon] = value
                    kept[n].add(key)
        return out, kept

    def hours(self, i: int, keys: Iterable[str], seconds: float) -> dict[str, float]:
        hours: dict[str, float] = {}
        for key in keys:
            kind = self.kind.get(self.keymap[i].get(key, key))
            if kind in DEVICE_HOUR_KINDS:
                hours[kind] = hours.get(kind, 0.0) + seconds / 3600.0
        return hours


def _who(report: Report, index: int) -> str:
    ranks = sorted({r.rank for r in report.ranks})
    return f"rank {', '.join(map(str, ranks))}" if ranks else f"report #{index}"


def _shares(
    parts: _Parts, items: Sequence[tuple[int, Any]], kept: Sequence[set[str]], seconds: Any
) -> tuple[list[_Share], dict[str, float]]:
    """Per part: (co2e, kept energy share, kept device-hour share, per kind); device-hours."""
    shares: list[_Share] = []
    hours: dict[str, float] = {}
    for n, (i, obj) in enumerate(items):
        energy = obj.energy_j
        total = sum(energy.values())
        kept_e = sum(energy[k] for k in kept[n])
        own_all = parts.hours(i, energy, seconds(obj))
        own_kept = parts.hours(i, kept[n], seconds(obj))
        for kind, h in own_kept.items():
            hours[kind] = hours.get(kind, 0.0) + h
        f = kept_e / total if total > 0 else (1.0 if kept[n] == set(energy) else 0.0)
        all_h, kept_h = sum(own_all.values()), sum(own_kept.values())
        g = kept_h / all_h if all_h > 0 else f
        g_kind = {k: own_kept.get(k, 0.0) / h for k, h in own_all.items() if h > 0}
        shares.append((obj.co2e, f, g, g_kind))
    return shares, hours


def merge_reports(reports: Sequence[Report]) -> Report:
    """Combine per-rank or per-node reports of one run into one report.

    See this module's docstring for the rules. Merging is associative in its totals, so
    node-level merges can be merged again.

    Raises:
        ReportError: no reports given, or the parts do not combine into a valid report.
    """
    if not reports:
        raise ReportError("no reports to merge")
    order = sorted(
        reports,
        key=lambda r: (min((x.rank for x in r.ranks), default=1 << 30), r.start_utc),
    )
    warn = Warnings()
    parts = _Parts(order, warn)
    start = min(r.start_utc for r in order)
    end = max(r.end_utc for r in order)
    offset = [(r.start_utc - start).total_seconds() for r in order]
    pue = order[0].totals.pue
    if any(abs(r.totals.pue - pue) > 1e-9 for r in order):
        warn.add("merge.pue_mismatch", f"parts used different PUE values; {pue} applied")
    carbon = next((r.carbon for r in order if r.carbon is not None), None)
    if any(r.carbon is not None and r.carbon != carbon for r in order):
        warn.add(
            "merge.carbon_mismatch",
            "parts used different carbon settings; the first part's are reported, and each "
            "part's CO2e keeps its own intensity",
        )

    _, run_union = _union((offset[i], offset[i] + r.duration_s) for i, r in enumerate(order))
    duration = _span(run_union, [r.duration_s for r in order])

    # phases, by path in order of first appearance
    by_path: dict[tuple[str, ...], list[tuple[int, Phase]]] = {}
    for i, report in enumerate(order):
        for phase in report.iter_phases():
            by_path.setdefault(tuple(phase.path), []).append((i, phase))
    flat = {path: _merge_phase(path, items, parts, offset, pue) for path, items in by_path.items()}
    phases = nest(flat, warn)

    # totals
    items = [(i, r.totals) for i, r in enumerate(order)]
    energy, kept = parts.take([(i, t.energy_j) for i, t in items])
    for comp in parts.components:
        energy.setdefault(comp.key, 0.0)
    shares, hours = _shares(parts, items, kept, lambda t: t.duration_s)
    totals = Totals.from_energy(
        energy_j=energy,
        kind_of=parts.kind,
        estimated={c.key for c in parts.components if c.method == "estimated"},
        duration_s=duration,
        pue=pue,
        co2e=_combine_co2e(shares, sum(energy.values()), pue),
        device_hours=hours,
    )

    for i, report in enumerate(order):
        for w in report.warnings:
            comp = parts.keymap[i].get(w.component, w.component) if w.component else None
            at = w.at_s + offset[i] if w.at_s is not None else None
            warn.add(w.code, w.message, comp, host=w.host, at_s=at)
    seen: set[tuple[Any, ...]] = set()
    warnings = []
    for w in warn.items:
        ident = (w.code, w.message, w.component, w.host)
        if ident not in seen:
            seen.add(ident)
            warnings.append(w)

    run_ids = sorted({r.run_id for r in order})
    run_id = (
        run_ids[0] if len(run_ids) == 1 else uuid.uuid5(uuid.NAMESPACE_OID, ",".join(run_ids)).hex
    )
    status = max((r.status for r in order), key=_STATUS_ORDER.index)
    try:
        return Report(
            run_id=run_id,
            run_name=next((r.run_name for r in order if r.run_name), None),
            tags=_merged_tags(order),
            status=status,
            start_utc=start,
            end_utc=max(end, start),
            duration_s=duration,
            hosts=_hosts(order),
            ranks=_dedupe(
                sorted((x for r in order for x in r.ranks), key=lambda x: (x.rank, x.host)),
                lambda x: (x.rank, x.host),
            ),
            gpus=_dedupe(
                [
                    g
                    for i, r in enumerate(order)
                    for g in r.gpus
                    if parts.keymap[i].get(g.component) == g.component
                ],
                lambda g: g.uuid,
            ),
            software=order[0].software,
            command=order[0].command,
            git=order[0].git,
            components=parts.components,
            unavailable=_dedupe(
                [u for r in order for u in r.unavailable],
                lambda u: (u.host, u.sensor, u.kind, u.reason),
            ),
            carbon=carbon,
            models=_dedupe([m for r in order for m in r.models], lambda m: m.model_dump_json()),
            phases=phases,
            totals=totals,
            power_timeline=_timelines(order, parts, offset),
            segments=_segments_of(order),
            warnings=warnings,
            extra={k: v for r in reversed(order) for k, v in r.extra.items()},
        )
    except ValidationError as exc:
        raise ReportError(
            "the reports do not combine into a valid report", format_validation_error(exc)
        ) from None


def _dedupe(items: Iterable[Any], ident: Any) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in items:
        key = ident(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _hosts(order: Sequence[Report]) -> list[HostInfo]:
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


def _timelines(
    order: Sequence[Report], parts: _Parts, offset: Sequence[float]
) -> list[PowerSeries]:
    owned = {c.key for c in parts.components}
    out: list[PowerSeries] = []
    claimed: set[str] = set()
    for i, report in enumerate(order):
        for series in report.power_timeline:
            power = {
                k: v
                for k, v in series.power_w.items()
                if parts.keymap[i].get(k) == k and k in owned and k not in claimed
            }
            claimed.update(power)
            out.append(
                PowerSeries(
                    host=series.host,
                    rank=series.rank,
                    t_s=[t + offset[i] for t in series.t_s],
                    power_w=power,
                )
            )
    return out


def _merge_phase(
    path: tuple[str, ...],
    items: Sequence[tuple[int, Phase]],
    parts: _Parts,
    offset: Sequence[float],
    pue: float,
) -> Phase:
    first = items[0][1]
    energy, kept = parts.take([(i, p.energy_j) for i, p in items])
    it_j = sum(energy.values())
    shares, hours = _shares(parts, items, kept, lambda p: p.duration_s)
    ivs, union_s = _union(
        (a + offset[i], b + offset[i]) for i, p in items for a, b in p.intervals_s
    )
    durations = [p.duration_s for _, p in items]
    duration = _span(union_s, durations) if ivs else max(durations)

    def total(field: str) -> int | None:
        values = [getattr(p.items, field) for _, p in items]
        return None if all(v is None for v in values) else sum(v or 0 for v in values)

    merged_items = Items(samples=total("samples"), tokens=total("tokens"), steps=total("steps"))
    latencies = _downsample_reservoir(
        [x for _, p in items for x in p.latency_samples_s], MAX_LATENCY_SAMPLES
    )
    peaks = [p.efficiency.peak_power_w for _, p in items if p.efficiency.peak_power_w is not None]
    worst = max((p.confidence for _, p in items), key=lambda c: CONFIDENCE_LEVELS.index(c.level))
    ends: list[datetime] = [p.end_utc for _, p in items if p.end_utc is not None]
    starts: list[datetime] = [p.start_utc for _, p in items if p.start_utc is not None]
    attrs: dict[str, str] = {}
    for _, p in reversed(items):
        attrs.update(p.attrs)
    return Phase(
        name=first.name,
        path=list(path),
        kind=first.kind,
        count=max(p.count for _, p in items),
        open=any(p.open for _, p in items),
        start_utc=min(starts) if starts else None,
        end_utc=max(ends) if ends else None,
        duration_s=duration,
        intervals_s=_coalesce(ivs, MAX_PHASE_INTERVALS),
        energy_j=energy,
        it_energy_j=it_j,
        it_energy_kwh=it_j / J_PER_KWH,
        facility_energy_j=it_j * pue,
        facility_energy_kwh=it_j * pue / J_PER_KWH,
        co2e=_combine_co2e(shares, it_j, pue),
        items=merged_items,
        efficiency=efficiency(
            it_energy_j=it_j,
            duration_s=duration,
            samples=merged_items.samples,
            tokens=merged_items.tokens,
            steps=merged_items.steps,
            latencies_s=latencies,
            peak_power_w=sum(peaks) if peaks else None,
        ),
        latency_samples_s=latencies,
        confidence=worst,
        device_hours=hours,
        gpu_hours=hours.get("gpu", 0.0),
        attrs=attrs,
    )


def _segments_of(reports: Sequence[Report]) -> list[Any]:
    """Earlier segments of resumed runs, each once, oldest first."""
    seen: dict[tuple[Any, ...], Any] = {}
    for report in reports:
        for seg in report.segments:
            seen.setdefault((seg.start_utc, seg.host), seg)
    return sorted(seen.values(), key=lambda seg: seg.start_utc)
