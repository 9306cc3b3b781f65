"""Combine reports written per rank or per node into one.

The rules, chosen so that the merged totals equal those of the same work measured as
one run:

* **Order.** Reports are taken in order of their lowest rank (then start time).
* **Components are counted once per instant.** A GPU is identified by its UUID, anything
  else (CPU package, DRAM, estimates) by ``(host, component id)``, i.e. its key. The
  energy of a component carried by several reports is their sum over the time they
  cover together, counted once where they overlap in time: taken in the order above,
  each report adds its reading of the component in proportion to its time not covered
  yet by the reports before it that carry the component. So two ranks on one host
  (the same package, over the same time) count the package once; two runs one after
  the other on one host add up; and a report that overlaps the ones before it for part
  of its time adds that share of its reading. **Partial overlap:** within one report
  the energy is taken as spread evenly over its time (the report does not say more),
  so a report overlapping 30 s of its 100 s adds 70 % of its reading. A report's time
  is the spans of its ranks and earlier segments (a merged report keeps the gaps
  between its parts); a phase's time is its active intervals. A warning names each
  component counted once over an overlap, and for how long.
* **Phases merge by path.** Energies: per component, counted once per instant as above,
  over the phases' active intervals. Items (samples, tokens, steps): summed. Count: the
  parts' counts added in proportion to their time not overlapping earlier parts (ranks
  running a phase side by side enter it together), at least the largest. Time: the union
  of the active intervals of the parts whose energy is counted (all parts when none
  has energy), kept between the longest of them and their sum, so a phase's energy and
  duration come from the same window (a rank that measures no component, beside the
  one that measures the host, does not lengthen the phase). Latency samples are
  pooled and the efficiency figures recomputed by the one efficiency function. Peak
  power: a part's peak adds to the peak so far when its time overlaps earlier parts'
  (an upper bound: the peaks need not coincide), else the larger counts; never below
  the mean power. Confidence: the worst of the parts. Device-hours:
  each device's hours, counted once per instant like its energy. A phase never exceeds
  its parent: where the time weighting leaves a child above its parent, the child is cut
  to its parent's figures (with a warning when that is more than rounding). Intervals
  and latency samples share the report's budgets (:mod:`greenmeter.report.limits`).
  Exclusive energy: recomputed on the merged tree.
* **CO2e** is linear in energy: each part's figure counts in proportion to the share
  of its energy that was kept (operational, low/high, market), and embodied emissions in
  proportion to its kept device-hours.
* **Run facts.** Start: earliest; end: latest; duration: union of the parts' spans.
  Status: the worst (failed, interrupted, running, complete). Hosts are merged by
  hostname, ranks listed once per run (a rank of two runs one after the other is
  listed with each run's span), GPUs once per UUID. A component is degraded when
  any part says so, from the earliest instant given. Carbon settings, software, command
  line and git state come from the first report; a mismatch between parts' carbon
  settings or PUE is warned about. Power timelines: see
  :func:`~greenmeter.report.merge_parts.merged_timelines`.
* **Size.** The merged report must load back like any other: more than
  :data:`~greenmeter.report.limits.MAX_PHASES` distinct phases, or a result over the
  reader's limits, is a :class:`~greenmeter.report.errors.ReportError` saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError

from greenmeter.report.bounds import check_readable
from greenmeter.report.build import _coalesce, _downsample_reservoir
from greenmeter.report.efficiency import efficiency
from greenmeter.report.errors import ReportError, format_validation_error
from greenmeter.report.gpu_figures import merged_gpu_fields
from greenmeter.report.inputs import Warnings
from greenmeter.report.limits import (
    MAX_LATENCY_SAMPLES,
    MAX_PHASE_INTERVALS,
    MAX_PHASES,
    REPORT_INTERVALS,
    REPORT_LATENCY_SAMPLES,
    share_budget,
)
from greenmeter.report.merge_parts import (
    Parts,
    combine_co2e,
    dedupe,
    merged_hosts,
    merged_segments,
    merged_tags,
    merged_timelines,
    shares,
)
from greenmeter.report.models import (
    CONFIDENCE_LEVELS,
    J_PER_KWH,
    Items,
    Phase,
    Report,
    Totals,
)
from greenmeter.report.spans import Spans, length, overlap, union
from greenmeter.report.tree import ROUNDING, nest, parent_of

__all__ = ["merge_reports"]

_STATUS_ORDER = ("complete", "running", "interrupted", "failed")


def _span(union_s: float, parts: Sequence[float]) -> float:
    if len(parts) == 1:
        return parts[0]
    return min(max(union_s, max(parts)), sum(parts))


def merge_reports(reports: Sequence[Report]) -> Report:
    """Combine per-rank or per-node reports of one run, or several runs, into one report.

    See this module's docstring for the rules. Merging is associative in its totals, so
    node-level merges can be merged again.

    Raises:
        ReportError: no reports given, more phases than a report holds, or the parts do
            not combine into a valid report (the message says why).
    """
    if not reports:
        raise ReportError("no reports to merge")
    order = sorted(
        reports,
        key=lambda r: (min((x.rank for x in r.ranks), default=1 << 30), r.start_utc),
    )
    warn = Warnings()
    start = min(r.start_utc for r in order)
    end = max(r.end_utc for r in order)
    offset = [(r.start_utc - start).total_seconds() for r in order]
    parts = Parts(order, offset, start, warn)
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

    run_union = length(union((offset[i], offset[i] + r.duration_s) for i, r in enumerate(order)))
    duration = _span(run_union, [r.duration_s for r in order])

    # totals (first: they give each report's weight per component, which the timelines use)
    items = [(i, r.totals) for i, r in enumerate(order)]
    energy, weights = parts.weights(
        [(i, t.energy_j, parts.coverage[i]) for i, t in items], what="totals"
    )
    parts.run_weights = list(weights)
    for comp in parts.components:
        energy.setdefault(comp.key, 0.0)
    part_shares, hours = shares(parts, items, weights, lambda t: t.duration_s)
    totals = Totals.from_energy(
        energy_j=energy,
        kind_of=parts.kind,
        estimated={c.key for c in parts.components if c.method == "estimated"},
        duration_s=duration,
        pue=pue,
        co2e=combine_co2e(part_shares, sum(energy.values()), pue),
        device_hours=hours,
    )

    # phases, by path in order of first appearance; parents merged before their children
    by_path: dict[tuple[str, ...], list[tuple[int, Phase]]] = {}
    for i, report in enumerate(order):
        for phase in report.iter_phases():
            by_path.setdefault(tuple(phase.path), []).append((i, phase))
    if len(by_path) > MAX_PHASES:
        raise ReportError(
            f"the reports hold {len(by_path)} distinct phases together; a report holds at "
            f"most {MAX_PHASES}: merge fewer reports at once"
        )
    spans = {path: _phase_spans(items, parts) for path, items in by_path.items()}
    caps = (
        share_budget(
            [max(1, len(union(s for sp in v for s in sp))) for v in spans.values()],
            REPORT_INTERVALS,
            MAX_PHASE_INTERVALS,
        ),
        share_budget(
            [sum(len(p.latency_samples_s) for _, p in v) for v in by_path.values()],
            REPORT_LATENCY_SAMPLES,
            MAX_LATENCY_SAMPLES,
        ),
    )
    merged: dict[tuple[str, ...], Phase] = {}
    for path in sorted(by_path, key=len):
        parent = parent_of(path, merged)
        merged[path] = _merge_phase(
            path, by_path[path], spans[path], parts, pue, caps,
            merged[parent] if parent is not None else None, warn,
        )  # fmt: skip
    phases = nest({path: merged[path] for path in by_path}, warn)

    for i, report in enumerate(order):
        for w in report.warnings:
            comp = parts.canon(i, w.component) if w.component else None
            at = w.at_s + offset[i] if w.at_s is not None else None
            warn.add(w.code, w.message, comp, host=w.host, at_s=at)
    warnings = dedupe(warn.items, lambda w: (w.code, w.message, w.component, w.host))

    run_ids = sorted({r.run_id for r in order})
    run_id = (
        run_ids[0] if len(run_ids) == 1 else uuid.uuid5(uuid.NAMESPACE_OID, ",".join(run_ids)).hex
    )
    status = max((r.status for r in order), key=_STATUS_ORDER.index)
    try:
        report = Report(
            run_id=run_id,
            run_name=next((r.run_name for r in order if r.run_name), None),
            tags=merged_tags(order),
            status=status,
            start_utc=start,
            end_utc=max(end, start),
            duration_s=duration,
            hosts=merged_hosts(order),
            ranks=dedupe(
                sorted(
                    (x for r in order for x in r.ranks),
                    key=lambda x: (x.rank, x.host, x.start_utc),
                ),
                lambda x: (x.rank, x.host, x.start_utc),
            ),
            gpus=dedupe(
                [
                    g
                    for i, r in enumerate(order)
                    for g in r.gpus
                    if parts.canon(i, g.component) == g.component
                ],
                lambda g: g.uuid,
            ),
            software=order[0].software,
            command=order[0].command,
            git=order[0].git,
            components=parts.components,
            unavailable=dedupe(
                [u for r in order for u in r.unavailable],
                lambda u: (u.host, u.sensor, u.kind, u.reason),
            ),
            carbon=carbon,
            models=dedupe([m for r in order for m in r.models], lambda m: m.model_dump_json()),
            phases=phases,
            totals=totals,
            power_timeline=merged_timelines(parts),
            segments=merged_segments(order),
            warnings=warnings,
            extra={k: v for r in reversed(order) for k, v in r.extra.items()},
        )
    except ValidationError as exc:
        raise ReportError(
            "the reports do not combine into a valid report", format_validation_error(exc)
        ) from None
    check_readable(report, "the merged report")
    return report


def _phase_spans(items: Sequence[tuple[int, Phase]], parts: Parts) -> list[Spans]:
    """Each part's active time in a phase, on the merged clock (its whole time when the
    phase lists no intervals)."""
    return [
        union((a + parts.offset[i], b + parts.offset[i]) for a, b in p.intervals_s)
        or parts.coverage[i]
        for i, p in items
    ]


def _within(
    energy: dict[str, float], parent: Phase | None, path: tuple[str, ...], warn: Warnings
) -> dict[str, float]:
    """``energy`` cut down to the parent's: per component, then in total."""
    if parent is None:
        return energy
    out = {k: min(v, parent.energy_j.get(k, v)) for k, v in energy.items()}
    total, limit = sum(out.values()), parent.it_energy_j
    if total > limit:
        out = {k: v * limit / total for k, v in out.items()} if total > 0 else out
    cut = sum(energy.values()) - sum(out.values())
    if cut > ROUNDING * max(limit, 1e-9):
        warn.add(
            "merge.child_exceeds_parent",
            f"phase {'/'.join(path)}: weighting the parts by time left it {cut:.6g} J above "
            f"its parent {parent.path_str}; it is cut to its parent's energy",
        )
    return out


def _merge_phase(
    path: tuple[str, ...],
    items: Sequence[tuple[int, Phase]],
    spans: Sequence[Spans],
    parts: Parts,
    pue: float,
    caps: tuple[int, int],
    parent: Phase | None,
    warn: Warnings,
) -> Phase:
    first = items[0][1]
    raw, weights = parts.weights(
        [(i, p.energy_j, sp) for (i, p), sp in zip(items, spans, strict=True)]
    )
    energy = _within(raw, parent, path, warn)
    it_j = sum(energy.values())
    scale = it_j / sum(raw.values()) if sum(raw.values()) > 0 else 1.0
    part_shares, hours = shares(parts, items, weights, lambda p: p.duration_s, scale)
    # time from the parts whose energy is counted, so energy / duration is the phase's
    # mean power (a rank that measures nothing does not stretch the phase)
    timed = [k for k, (_, p) in enumerate(items) if p.energy_j] or list(range(len(items)))
    ivs = union(s for k in timed for s in spans[k])
    durations = [items[k][1].duration_s for k in timed]
    duration = _span(length(ivs), durations) if ivs else max(durations)
    if parent is not None:
        duration = min(duration, parent.duration_s)

    # each part's share of time not overlapping the parts before it
    new: list[float] = []
    covered: Spans = []
    for sp in spans:
        seconds = length(sp)
        new.append(1.0 - overlap(sp, covered) / seconds if seconds > 0 else float(not covered))
        covered = union([*covered, *sp])
    added = round(sum(p.count * f for (_, p), f in zip(items, new, strict=True)))
    count = max(max(p.count for _, p in items), added)
    peak: float | None = None
    for (_, p), f in zip(items, new, strict=True):
        if p.efficiency.peak_power_w is not None:
            value = p.efficiency.peak_power_w
            peak = value if peak is None else (max(peak, value) if f >= 1.0 else peak + value)

    def total(field: str) -> int | None:
        values = [getattr(p.items, field) for _, p in items]
        return None if all(v is None for v in values) else sum(v or 0 for v in values)

    merged_items = Items(samples=total("samples"), tokens=total("tokens"), steps=total("steps"))
    latencies = _downsample_reservoir([x for _, p in items for x in p.latency_samples_s], caps[1])
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
        count=count,
        open=any(p.open for _, p in items),
        start_utc=min(starts) if starts else None,
        end_utc=max(ends) if ends else None,
        duration_s=duration,
        intervals_s=_coalesce(ivs, caps[0]),
        energy_j=energy,
        it_energy_j=it_j,
        it_energy_kwh=it_j / J_PER_KWH,
        facility_energy_j=it_j * pue,
        facility_energy_kwh=it_j * pue / J_PER_KWH,
        co2e=combine_co2e(part_shares, it_j, pue),
        items=merged_items,
        efficiency=efficiency(
            it_energy_j=it_j,
            duration_s=duration,
            samples=merged_items.samples,
            tokens=merged_items.tokens,
            steps=merged_items.steps,
            latencies_s=latencies,
            peak_power_w=peak,
        ),
        latency_samples_s=latencies,
        confidence=worst,
        **merged_gpu_fields([p for _, p in items], list(energy)),
        device_hours=hours,
        gpu_hours=hours.get("gpu", 0.0),
        attrs=attrs,
    )
