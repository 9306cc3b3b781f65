"""Filter runs, group them by tags and add them up into a :class:`FootprintSummary`.

Every total is a plain sum over the runs it covers (each run's own totals, as its
report states them). CO2e stays in three separate sums: location-based (every run that
carried one), market-based and embodied (only the runs that carried those); they are
never added together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from greenmeter.footprint.models import (
    NO_TAG,
    FileCounts,
    FootprintFilters,
    FootprintGroup,
    FootprintRun,
    FootprintSummary,
    FootprintTotals,
    IntensitySource,
    PeriodEnergy,
    RunCounts,
    SkippedFile,
)
from greenmeter.footprint.record import CarbonSetting, RunRecord
from greenmeter.report.models import J_PER_KWH

if TYPE_CHECKING:
    from greenmeter.render.sources import Source

__all__ = ["MAX_PERIODS", "Filters", "group_label", "summarize"]

#: Most bars in a group's chart: the period grows (in whole days) to keep to this.
MAX_PERIODS = 60
_DAY_S = 86400.0


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


@dataclass(frozen=True)
class Filters:
    """Which runs count: started in ``[since, until)`` and carrying the tags in ``where``.

    ``where`` maps a tag to the values accepted (any one of them); every tag listed must
    match.
    """

    since: datetime | None = None
    until: datetime | None = None
    where: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def accepts(self, run: RunRecord) -> bool:
        """Whether ``run`` passes every filter."""
        if self.since is not None and run.start_ts < self.since.timestamp():
            return False
        if self.until is not None and run.start_ts >= self.until.timestamp():
            return False
        return all(run.tags.get(k) in values for k, values in self.where.items())

    def model(self) -> FootprintFilters:
        """The filters as they appear in the summary."""
        return FootprintFilters(
            since_utc=self.since,
            until_utc=self.until,
            where={k: list(v) for k, v in self.where.items()},
        )


def group_label(key: Mapping[str, str]) -> str:
    """``"experiment=ablation, model=small"``; ``"all runs"`` without grouping tags."""
    return ", ".join(f"{k}={v}" for k, v in key.items()) or "all runs"


class _Sum:
    """Running sums over runs."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.n = 0
        self.wall_s = 0.0
        self.first: float | None = None
        self.last: float | None = None
        self.gpu_h = 0.0
        self.gpu_by_model: dict[str, float] = {}
        self.it_j = 0.0
        self.fac_j = 0.0
        self.est_j = 0.0
        self.loc = [0.0, 0.0, 0.0, 0]
        self.market = [0.0, 0]
        self.embodied = [0.0, 0]
        self.sources: set[str] = set()

    def add(self, r: RunRecord, source: str | None) -> None:
        self.n += 1
        self.status[r.status] = self.status.get(r.status, 0) + 1
        self.wall_s += r.duration_s
        self.first = r.start_ts if self.first is None else min(self.first, r.start_ts)
        self.last = r.end_ts if self.last is None else max(self.last, r.end_ts)
        self.gpu_h += r.gpu_hours
        for name, hours in r.gpu_hours_by_model.items():
            self.gpu_by_model[name] = self.gpu_by_model.get(name, 0.0) + hours
        self.it_j += r.it_energy_j
        self.fac_j += r.facility_energy_j
        self.est_j += r.estimated_energy_j
        if r.co2e_location_g is not None:
            self.loc[0] += r.co2e_location_g
            self.loc[1] += r.co2e_location_low_g or 0.0
            self.loc[2] += r.co2e_location_high_g or 0.0
            self.loc[3] += 1
        if r.co2e_market_g is not None:
            self.market[0] += r.co2e_market_g
            self.market[1] += 1
        if r.co2e_embodied_g is not None:
            self.embodied[0] += r.co2e_embodied_g
            self.embodied[1] += 1
        if source is not None:
            self.sources.add(source)

    def fields(self) -> dict[str, object]:
        return {
            "runs": RunCounts(
                total=self.n,
                complete=self.status.get("complete", 0),
                failed=self.status.get("failed", 0),
                interrupted=self.status.get("interrupted", 0),
                running=self.status.get("running", 0),
            ),
            "wall_time_s": self.wall_s,
            "first_start_utc": _utc(self.first) if self.first is not None else None,
            "last_end_utc": _utc(self.last) if self.last is not None else None,
            "gpu_hours": self.gpu_h,
            "gpu_hours_by_model": dict(sorted(self.gpu_by_model.items())),
            "it_energy_j": self.it_j,
            "it_energy_kwh": self.it_j / J_PER_KWH,
            "facility_energy_j": self.fac_j,
            "facility_energy_kwh": self.fac_j / J_PER_KWH,
            "measured_energy_j": max(0.0, self.it_j - self.est_j),
            "estimated_energy_j": self.est_j,
            "estimated_share": min(1.0, self.est_j / self.it_j) if self.it_j > 0 else None,
            "co2e_location_g": self.loc[0],
            "co2e_location_low_g": self.loc[1],
            "co2e_location_high_g": self.loc[2],
            "runs_with_co2e": self.loc[3],
            "co2e_market_g": self.market[0] if self.market[1] else None,
            "runs_with_market": self.market[1],
            "co2e_embodied_g": self.embodied[0] if self.embodied[1] else None,
            "runs_with_embodied": self.embodied[1],
            "sources": sorted(self.sources, key=lambda s: int(s[1:])),
        }


def _source_ids(runs: Sequence[RunRecord]) -> dict[CarbonSetting, str]:
    """``S1``, ``S2``... by facility energy, largest first."""
    energy: dict[CarbonSetting, float] = {}
    for r in runs:
        if r.carbon is not None:
            energy[r.carbon] = energy.get(r.carbon, 0.0) + r.facility_energy_j
    order = sorted(energy, key=lambda c: (-energy[c], c.key()))
    return {c: f"S{n}" for n, c in enumerate(order, 1)}


def _sources(runs: Sequence[RunRecord], ids: Mapping[CarbonSetting, str]) -> list[IntensitySource]:
    """The carbon settings used, with the citation keys :func:`citations` gives them."""
    counts: dict[CarbonSetting, list[float]] = {}
    for r in runs:
        if r.carbon is not None:
            c = counts.setdefault(r.carbon, [0, 0.0])
            c[0] += 1
            c[1] += r.facility_energy_j
    run_year = _utc(max(r.end_ts for r in runs)).year if runs else 1970
    out = []
    for c, sid in ids.items():
        source = IntensitySource(
            id=sid,
            runs=int(counts[c][0]),
            facility_energy_kwh=counts[c][1] / J_PER_KWH,
            intensity_g_per_kwh=c.intensity_g_per_kwh,
            unit=c.unit,
            basis=c.basis,
            data_year=c.data_year,
            location=c.location,
            cloud_region=c.cloud_region,
            source=c.source,
            licence=c.licence,
            is_fallback=c.is_fallback,
            time_series_origin=c.series_origin,
            time_series_source=c.series_source,
            pue=c.pue,
            pue_source=c.pue_source,
            dataset_version=c.dataset_version,
        )
        keys = [s.key for s in citations(source, run_year)]
        out.append(source.model_copy(update={"citation_keys": list(dict.fromkeys(keys))}))
    return out


def citations(source: IntensitySource, run_year: int) -> list[Source]:
    """The works behind one carbon setting's intensity and PUE (may be empty).

    Args:
        source: The setting.
        run_year: Year of the latest run (dates a live provider's data).
    """
    from greenmeter.render.sources import intensity_sources, pue_sources

    return intensity_sources(
        source.source,
        source.data_year,
        series_origin=source.time_series_origin,
        series_source=source.time_series_source,
        run_year=run_year,
    ) + pue_sources(source.pue_source)


def _period_days(runs: Sequence[RunRecord]) -> tuple[float, int]:
    """Start of the first period (midnight UTC, POSIX s) and the period length in days."""
    if not runs:
        return 0.0, 1
    first = min(r.start_ts for r in runs)
    last = max(r.start_ts for r in runs)
    origin = math.floor(first / _DAY_S) * _DAY_S
    span_days = math.floor((last - origin) / _DAY_S) + 1
    return origin, max(1, math.ceil(span_days / MAX_PERIODS))


def _by_period(runs: Sequence[RunRecord], origin: float, days: int) -> list[PeriodEnergy]:
    buckets: dict[int, list[float]] = {}
    for r in runs:
        k = int((r.start_ts - origin) // (days * _DAY_S))
        b = buckets.setdefault(k, [0, 0.0, 0.0])
        b[0] += 1
        b[1] += r.it_energy_j
        b[2] += r.facility_energy_j
    return [
        PeriodEnergy(
            start_utc=_utc(origin) + timedelta(days=k * days),
            days=days,
            runs=int(b[0]),
            it_energy_kwh=b[1] / J_PER_KWH,
            facility_energy_kwh=b[2] / J_PER_KWH,
        )
        for k, b in sorted(buckets.items())
    ]


def _notes(runs: Sequence[RunRecord], sources: Sequence[IntensitySource]) -> list[str]:
    notes = [
        "Runs that ended before writing their first report (a crash before the first "
        "checkpoint) left no file and cannot be counted."
    ]
    running = sum(1 for r in runs if r.status == "running")
    if running:
        notes.append(
            f"{running} run(s) end with a periodic checkpoint (status running): still going, "
            "or killed without writing a final report; energy after that checkpoint is not "
            "counted."
        )
    no_carbon = sum(1 for r in runs if r.co2e_location_g is None)
    if no_carbon:
        notes.append(
            f"{no_carbon} run(s) carried no carbon accounting: their energy is counted, but "
            "they are not in the CO2e figures."
        )
    fallback = sum(s.runs for s in sources if s.is_fallback)
    if fallback:
        notes.append(
            f"{fallback} run(s) used a world-average grid intensity (no location was given): "
            "their CO2e may be off several-fold."
        )
    return notes


def summarize(
    runs: Sequence[RunRecord],
    *,
    inputs: Sequence[str],
    files: FileCounts,
    group_by: Sequence[str] = (),
    filters: Filters | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    include_runs: bool = False,
    greenmeter_version: str | None = None,
) -> FootprintSummary:
    """The footprint of ``runs`` (one record per run), per group and in total.

    Args:
        runs: One record per run (see :func:`greenmeter.footprint.runs.combine_runs`).
        inputs: The paths given, as the user wrote them.
        files: What was read (``filtered_out`` is filled in here).
        group_by: Tags to group by, in order.
        filters: Which runs count (default: all).
        skipped: ``(path, problem)`` of files that are not usable reports.
        notes: Further notes (merges that failed, the index...).
        include_runs: List every run counted.
        greenmeter_version: Version written in the summary (default: this greenmeter's).
    """
    from greenmeter import __version__

    filters = filters or Filters()
    kept = [r for r in runs if filters.accepts(r)]
    ids = _source_ids(kept)
    total = _Sum()
    groups: dict[tuple[str, ...], tuple[_Sum, list[RunRecord]]] = {}
    listing: list[FootprintRun] = []
    for r in kept:
        source = ids.get(r.carbon) if r.carbon is not None else None
        total.add(r, source)
        if group_by or include_runs:
            key = tuple(r.tags.get(t, NO_TAG) for t in group_by)
            acc, members = groups.setdefault(key, (_Sum(), []))
            acc.add(r, source)
            members.append(r)
            if include_runs:
                listing.append(
                    _run_entry(r, group_label(dict(zip(group_by, key, strict=True))), source)
                )
    origin, days = _period_days(kept)
    out_groups = []
    if group_by:
        order = sorted(groups, key=lambda k: [(v == NO_TAG, v) for v in k])
        for key in order:
            acc, members = groups[key]
            named = dict(zip(group_by, key, strict=True))
            out_groups.append(
                FootprintGroup(
                    key=named,
                    label=group_label(named),
                    by_period=_by_period(members, origin, days),
                    **acc.fields(),  # type: ignore[arg-type]
                )
            )
    sources = _sources(kept, ids)
    counts = files.model_copy(update={"filtered_out": len(runs) - len(kept)})
    return FootprintSummary(
        generated_utc=datetime.now(timezone.utc),
        greenmeter=greenmeter_version or __version__,
        greenmeter_versions=sorted({r.greenmeter_version for r in kept}),
        inputs=list(inputs),
        group_by=list(group_by),
        filters=filters.model(),
        period_days=days,
        files=counts,
        groups=out_groups,
        total=FootprintTotals(
            by_period=_by_period(kept, origin, days),
            **total.fields(),  # type: ignore[arg-type]
        ),
        sources=sources,
        skipped=[SkippedFile(path=p, problem=m) for p, m in skipped],
        notes=[*_notes(kept, sources), *notes],
        runs=listing if include_runs else None,
    )


def _run_entry(r: RunRecord, group: str, source: str | None) -> FootprintRun:
    return FootprintRun(
        run_id=r.run_id,
        run_name=r.run_name,
        status=r.status,  # type: ignore[arg-type]
        group=group,
        start_utc=_utc(r.start_ts),
        end_utc=_utc(r.end_ts),
        duration_s=r.duration_s,
        files=r.files,
        path=r.path,
        tags=dict(r.tags),
        gpu_hours=r.gpu_hours,
        it_energy_j=r.it_energy_j,
        facility_energy_j=r.facility_energy_j,
        estimated_energy_j=r.estimated_energy_j,
        co2e_location_g=r.co2e_location_g,
        co2e_market_g=r.co2e_market_g,
        co2e_embodied_g=r.co2e_embodied_g,
        source=source,
    )
