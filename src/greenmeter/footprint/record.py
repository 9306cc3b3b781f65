"""What a footprint keeps of one report: a few figures per run part, as plain data.

A :class:`RunRecord` is small (no phases, no timeline), so the index can store one per
file and a warm footprint never opens a report. Records of one run's ranks or nodes are
combined by :mod:`greenmeter.footprint.runs`, which merges the parts' reports with
:func:`greenmeter.report.merge_reports`; for that, a part that is not the whole run also
keeps a slim copy of its report (:func:`slim_report`).
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, astuple, dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # the report models load only when a report is read
    from greenmeter.report.models import Report

__all__ = [
    "CarbonSetting",
    "RunRecord",
    "file_schema_version",
    "load_slim",
    "record_from_report",
    "slim_report",
]

#: The GPU model name used when a report does not name its GPU.
UNKNOWN_GPU = "unknown GPU"
_VERSION = re.compile(rb'"schema_version"\s*:\s*"([^"\\]{1,16})"')


@dataclass(frozen=True)
class CarbonSetting:
    """The carbon constants one run used: grid intensity and PUE, with their sources."""

    intensity_g_per_kwh: float
    unit: str
    basis: str
    data_year: int | None
    location: str | None
    cloud_region: str | None
    source: str
    source_id: str | None
    licence: str | None
    is_fallback: bool
    series_origin: str | None
    series_source: str | None
    pue: float
    pue_source: str
    dataset_version: str

    def __hash__(self) -> int:
        # computed once: settings are dictionary keys for every run summed
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(astuple(self))
            object.__setattr__(self, "_hash", cached)
        return cached

    def key(self) -> str:
        """A stable text form (JSON, sorted keys): equal settings have equal keys."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_key(cls, text: str) -> CarbonSetting:
        """The setting back from :meth:`key`."""
        return cls(**json.loads(text))


class RunRecord(NamedTuple):
    """One report file's figures (or, after merging, one run's).

    A named tuple: small, quick to make from a stored row (see
    :mod:`greenmeter.footprint.index`). Times are POSIX seconds (UTC). ``tags`` and
    ``gpu_hours_by_model`` are mappings that must not be changed (records may share
    them). ``part`` names the ``host#rank`` members the report covers; ``world_size``
    is how many ranks the run had, so a report with fewer members than that is one part
    of a larger run. ``segments`` are the spans of earlier segments of a resumed run,
    whose energy this report already includes.
    """

    path: str
    run_id: str
    run_name: str | None
    schema_version: str
    status: str
    start_ts: float
    end_ts: float
    duration_s: float
    tags: dict[str, str]
    part: tuple[str, ...]
    world_size: int
    segments: tuple[tuple[float, float], ...]
    it_energy_j: float
    facility_energy_j: float
    estimated_energy_j: float
    gpu_hours: float
    gpu_hours_by_model: dict[str, float]
    co2e_location_g: float | None
    co2e_location_low_g: float | None
    co2e_location_high_g: float | None
    co2e_market_g: float | None
    co2e_embodied_g: float | None
    carbon: CarbonSetting | None
    greenmeter_version: str
    files: int = 1

    @property
    def partial(self) -> bool:
        """The report covers fewer ranks than the run had."""
        return len(self.part) < self.world_size


def file_schema_version(data: bytes) -> str | None:
    """The ``schema_version`` a report file declares (before any upgrade on load)."""
    found = _VERSION.search(data, 0, 4096) or _VERSION.search(data)
    return found.group(1).decode("utf-8", "replace") if found else None


def _carbon(report: Report) -> CarbonSetting | None:
    carbon = report.carbon
    if carbon is None:
        return None
    i = carbon.intensity
    where = i.location_name or i.location
    if i.location and i.location_name and i.location != i.location_name:
        where = f"{i.location_name} ({i.location})"
    series = carbon.time_series
    return CarbonSetting(
        intensity_g_per_kwh=i.value_g_per_kwh,
        unit=i.unit,
        basis=i.basis,
        data_year=i.year,
        location=where,
        cloud_region=i.cloud_region,
        source=i.source,
        source_id=i.source_id,
        licence=i.licence,
        is_fallback=i.is_fallback,
        series_origin=series.origin if series is not None else None,
        series_source=series.source if series is not None else None,
        pue=carbon.pue.value,
        pue_source=carbon.pue.source,
        dataset_version=carbon.dataset_version,
    )


def _gpu_hours_by_model(report: Report) -> dict[str, float]:
    """The run's GPU-hours split over its GPU boards' model names.

    Every GPU board of a report counts the report's duration (how the report's
    ``device_hours`` are made), so the split is by number of boards per model. In a
    report merged from parts of different lengths the split is by boards too.
    """
    hours = report.totals.gpu_hours
    if hours <= 0:
        return {}
    names = [g.name or UNKNOWN_GPU for g in report.gpus]
    if not names:
        return {UNKNOWN_GPU: hours}
    out: dict[str, float] = {}
    for name in names:
        out[name] = out.get(name, 0.0) + hours / len(names)
    return out


def record_from_report(
    report: Report, path: str, *, schema_version: str | None = None, files: int = 1
) -> RunRecord:
    """The figures a footprint needs from ``report``, read from file ``path``.

    Args:
        report: The validated report.
        path: Its file (for listings).
        schema_version: The version the file declared (default: the report's own).
        files: How many report files the report was merged from.
    """
    t = report.totals
    co2 = t.co2e
    if report.ranks:
        members = {f"{r.host}#{r.rank}" for r in report.ranks}
        world = max(r.world_size for r in report.ranks)
    else:
        members = {f"{h.hostname}#" for h in report.hosts}
        world = 1
    return RunRecord(
        path=path,
        run_id=report.run_id,
        run_name=report.run_name,
        schema_version=schema_version or report.schema_version,
        status=report.status,
        start_ts=report.start_utc.timestamp(),
        end_ts=report.end_utc.timestamp(),
        duration_s=report.duration_s,
        tags=dict(report.tags),
        part=tuple(sorted(members)),
        world_size=world,
        segments=tuple((s.start_utc.timestamp(), s.end_utc.timestamp()) for s in report.segments),
        it_energy_j=t.it_energy_j,
        facility_energy_j=t.facility_energy_j,
        estimated_energy_j=t.estimated_energy_j,
        gpu_hours=t.gpu_hours,
        gpu_hours_by_model=_gpu_hours_by_model(report),
        co2e_location_g=co2.operational_g if co2 is not None else None,
        co2e_location_low_g=co2.operational_low_g if co2 is not None else None,
        co2e_location_high_g=co2.operational_high_g if co2 is not None else None,
        co2e_market_g=co2.market_g if co2 is not None else None,
        co2e_embodied_g=co2.embodied_g if co2 is not None else None,
        carbon=_carbon(report),
        greenmeter_version=report.software.greenmeter,
        files=files,
    )


def slim_report(report: Report) -> bytes:
    """``report`` without what a merge of totals does not use, compressed.

    Phases, the power timeline, warnings, models and the like are dropped; components,
    ranks, hosts, carbon settings and totals stay, so :func:`merge_reports` on slim
    reports gives the same totals as on the full ones.
    """
    slim = report.model_copy(
        update={
            "phases": [],
            "power_timeline": [],
            "warnings": [],
            "models": [],
            "unavailable": [],
            "command": None,
            "git": None,
            "extra": {},
        }
    )
    return zlib.compress(slim.model_dump_json().encode("utf-8"), 6)


def load_slim(blob: bytes) -> Report:
    """A slim report back from :func:`slim_report`'s bytes.

    Raises:
        ValueError: the bytes are not a slim report (a ``pydantic.ValidationError`` or a
            ``zlib.error``, both ``ValueError``-like; callers treat any failure alike).
    """
    from greenmeter.report.models import Report

    return Report.model_validate_json(zlib.decompress(blob))
