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
from greenmeter.units import J_PER_KWH

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
    """Running sums over runs; one per group, merged into the total."""

    __slots__ = ("carbon", "emb", "emb_n", "est_j", "fac_j", "first", "gpu_by_model", "gpu_h",
                 "high", "it_j", "last", "loc", "loc_n", "low", "market", "market_n",
                 "periods", "status", "wall_s")  # fmt: skip

    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.wall_s = self.gpu_h = self.it_j = self.fac_j = self.est_j = 0.0
        self.first = math.inf
        self.last = -math.inf
        self.gpu_by_model: dict[str, float] = {}
        self.loc = self.low = self.high = self.market = self.emb = 0.0
        self.loc_n = self.market_n = self.emb_n = 0
        #: carbon setting -> [runs, facility energy (J)]
        self.carbon: dict[CarbonSetting, list[float]] = {}
        #: period index -> [runs, IT energy (J), facility energy (J)]
        self.periods: dict[int, list[float]] = {}

    @classmethod
    def of(cls, runs: Sequence[RunRecord], origin: float, width_s: float) -> _Sum:
        """The sums of ``runs``; periods of ``width_s`` seconds from ``origin``."""
        out = cls()
        status, models, carbon, periods = out.status, out.gpu_by_model, out.carbon, out.periods
        wall = gpu = it = fac = est = loc = low = high = market = emb = 0.0
        loc_n = market_n = emb_n = 0
        first, last = math.inf, -math.inf
        for r in runs:  # plain locals: this loop sees every run
            status[r.status] = status.get(r.status, 0) + 1
            wall += r.duration_s
            if r.start_ts < first:
                first = r.start_ts
            if r.end_ts > last:
                last = r.end_ts
            gpu += r.gpu_hours
            for name, hours in r.gpu_hours_by_model.items():
                models[name] = models.get(name, 0.0) + hours
            it_j, fac_j = r.it_energy_j, r.facility_energy_j
            it += it_j
            fac += fac_j
            est += r.estimated_energy_j
            if r.co2e_location_g is not None:
                loc += r.co2e_location_g
                low += r.co2e_location_low_g or 0.0
                high += r.co2e_location_high_g or 0.0
                loc_n += 1
            if r.co2e_market_g is not None:
                market += r.co2e_market_g
                market_n += 1
            if r.co2e_embodied_g is not None:
                emb += r.co2e_embodied_g
                emb_n += 1
            if r.carbon is not None:
                c = carbon.get(r.carbon)
                if c is None:
                    carbon[r.carbon] = [1, fac_j]
                else:
                    c[0] += 1
                    c[1] += fac_j
            k = int((r.start_ts - origin) // width_s)
            b = periods.get(k)
            if b is None:
                periods[k] = [1, it_j, fac_j]
            else:
                b[0] += 1
                b[1] += it_j
                b[2] += fac_j
        out.wall_s, out.gpu_h, out.it_j, out.fac_j, out.est_j = wall, gpu, it, fac, est
        out.loc, out.low, out.high, out.market, out.emb = loc, low, high, market, emb
        out.loc_n, out.market_n, out.emb_n = loc_n, market_n, emb_n
        out.first, out.last = first, last
        return out

    def merge(self, o: _Sum) -> None:
        """Add another set of runs' sums to these."""
        for k, v in o.status.items():
            self.status[k] = self.status.get(k, 0) + v
        for name in ("wall_s", "gpu_h", "it_j", "fac_j", "est_j", "loc", "low", "high",
                     "market", "emb", "loc_n", "market_n", "emb_n"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.first = min(self.first, o.first)
        self.last = max(self.last, o.last)
        for name, hours in o.gpu_by_model.items():
            self.gpu_by_model[name] = self.gpu_by_model.get(name, 0.0) + hours
        for table, other in ((self.carbon, o.carbon), (self.periods, o.periods)):
            for key, values in other.items():
                have = table.setdefault(key, [0] * len(values))
                for i, v in enumerate(values):
                    have[i] += v

    def fields(
        self, ids: Mapping[CarbonSetting, str], origin: float, days: int
    ) -> dict[str, object]:
        n = sum(self.status.values())
        return {
            "runs": RunCounts(
                total=n,
                complete=self.status.get("complete", 0),
                failed=self.status.get("failed", 0),
                interrupted=self.status.get("interrupted", 0),
                running=self.status.get("running", 0),
            ),
            "wall_time_s": self.wall_s,
            "first_start_utc": _utc(self.first) if n else None,
            "last_end_utc": _utc(self.last) if n else None,
            "gpu_hours": self.gpu_h,
            "gpu_hours_by_model": dict(sorted(self.gpu_by_model.items())),
            "it_energy_j": self.it_j,
            "it_energy_kwh": self.it_j / J_PER_KWH,
            "facility_energy_j": self.fac_j,
            "facility_energy_kwh": self.fac_j / J_PER_KWH,
            "measured_energy_j": max(0.0, self.it_j - self.est_j),
            "estimated_energy_j": self.est_j,
            "estimated_share": min(1.0, self.est_j / self.it_j) if self.it_j > 0 else None,
            "co2e_location_g": self.loc,
            "co2e_location_low_g": self.low,
            "co2e_location_high_g": self.high,
            "runs_with_co2e": self.loc_n,
            "co2e_market_g": self.market if self.market_n else None,
            "runs_with_market": self.market_n,
            "co2e_embodied_g": self.emb if self.emb_n else None,
            "runs_with_embodied": self.emb_n,
            "sources": sorted((ids[c] for c in self.carbon), key=lambda s: int(s[1:])),
            "by_period": [
                PeriodEnergy(
                    start_utc=_utc(origin) + timedelta(days=k * days),
                    days=days,
                    runs=int(b[0]),
                    it_energy_kwh=b[1] / J_PER_KWH,
                    facility_energy_kwh=b[2] / J_PER_KWH,
                )
                for k, b in sorted(self.periods.items())
            ],
        }


def _source_ids(total: _Sum) -> dict[CarbonSetting, str]:
    """``S1``, ``S2``... by facility energy, largest first."""
    order = sorted(total.carbon, key=lambda c: (-total.carbon[c][1], c.key()))
    return {c: f"S{n}" for n, c in enumerate(order, 1)}


def _sources(total: _Sum, ids: Mapping[CarbonSetting, str]) -> list[IntensitySource]:
    """The carbon settings used, with the citation keys :func:`citations` gives them."""
    run_year = _utc(total.last).year if total.carbon else 1970
    out = []
    for c, sid in ids.items():
        runs, fac_j = total.carbon[c]
        source = IntensitySource(
            id=sid,
            runs=int(runs),
            facility_energy_kwh=fac_j / J_PER_KWH,
            intensity_g_per_kwh=c.intensity_g_per_kwh,
            unit=c.unit,
            basis=c.basis,
            data_year=c.data_year,
            location=c.location,
            cloud_region=c.cloud_region,
            source=c.source,
            source_id=c.source_id,
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
        source.source_id,
        source.data_year,
        series_origin=source.time_series_origin,
        series_source=source.time_series_source,
        run_year=run_year,
    ) + pue_sources(source.pue_source)


def _period_days(runs: Sequence[RunRecord]) -> tuple[float, int]:
    """Start of the first period (midnight UTC, POSIX s) and the period length in days."""
    if not runs:
        return 0.0, 1
    first = last = runs[0].start_ts
    for r in runs:
        if r.start_ts < first:
            first = r.start_ts
        elif r.start_ts > last:
            last = r.start_ts
    origin = math.floor(first / _DAY_S) * _DAY_S
    span_days = math.floor((last - origin) / _DAY_S) + 1
    return origin, max(1, math.ceil(span_days / MAX_PERIODS))


def _tag_notes(runs: Sequence[RunRecord], group_by: Sequence[str], filters: Filters) -> list[str]:
    """A note per tag asked for (to group by or to select on) that no run carries."""
    wanted = list(dict.fromkeys([*group_by, *filters.where]))
    seen: set[int] = set()
    missing = set(wanted)
    for r in runs:
        if missing and id(r.tags) not in seen:
            seen.add(id(r.tags))
            missing.difference_update(r.tags)
    return [
        f"No run carries the tag {t!r} (tags are case-sensitive; see each run's `tags`)."
        for t in wanted
        if t in missing
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
    no_filter = filters.since is None and filters.until is None and not filters.where
    kept = list(runs) if no_filter else [r for r in runs if filters.accepts(r)]
    origin, days = _period_days(kept)
    width = days * _DAY_S
    members: dict[tuple[str, ...], list[RunRecord]] = {}
    keys: dict[int, list[RunRecord]] = {}  # tags mapping (shared by runs) -> its group
    for r in kept:
        group = keys.get(id(r.tags))
        if group is None:
            key = tuple(r.tags.get(t, NO_TAG) for t in group_by)
            group = keys[id(r.tags)] = members.setdefault(key, [])
        group.append(r)
    groups = {key: _Sum.of(runs_of, origin, width) for key, runs_of in members.items()}
    total = _Sum()
    for acc in groups.values():
        total.merge(acc)
    ids = _source_ids(total)
    out_groups = []
    if group_by:
        for key in sorted(groups, key=lambda k: [(v == NO_TAG, v) for v in k]):
            named = dict(zip(group_by, key, strict=True))
            out_groups.append(
                FootprintGroup(
                    key=named,
                    label=group_label(named),
                    **groups[key].fields(ids, origin, days),  # type: ignore[arg-type]
                )
            )
    listing = None
    if include_runs:
        listing = [
            _run_entry(
                r,
                group_label(dict(zip(group_by, (r.tags.get(t, NO_TAG) for t in group_by),
                                     strict=True))),
                ids.get(r.carbon) if r.carbon is not None else None,
            )
            for r in sorted(kept, key=lambda r: (r.start_ts, r.run_id))
        ]  # fmt: skip
    sources = _sources(total, ids)
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
        total=FootprintTotals(**total.fields(ids, origin, days)),  # type: ignore[arg-type]
        sources=sources,
        skipped=[SkippedFile(path=p, problem=m) for p, m in skipped],
        notes=[*_notes(kept, sources), *_tag_notes(runs, group_by, filters), *notes],
        runs=listing,
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
