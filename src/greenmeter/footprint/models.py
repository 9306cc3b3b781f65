"""The footprint summary (version 1): pydantic models, the one source of every output.

A :class:`FootprintSummary` adds up the runs of a project: per group of runs (by tags)
and in total. Every renderer (terminal table, Markdown, LaTeX, HTML, CSV, JSON) reads
only this model. Its JSON Schema is committed as ``docs/schema/footprint.schema.json``
(:mod:`greenmeter.footprint.schema`).

Conventions are the report's: units in the field names (``_j`` joules, ``_kwh``
kilowatt-hours, ``_s`` seconds, ``_h`` hours, ``_g`` grams CO2e), finite non-negative
numbers, timezone-aware UTC datetimes, unknown fields rejected. Location-based,
market-based and embodied CO2e are separate fields and are never added together.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "FOOTPRINT_SCHEMA_VERSION",
    "NO_TAG",
    "FileCounts",
    "FootprintFilters",
    "FootprintGroup",
    "FootprintRun",
    "FootprintSummary",
    "FootprintTotals",
    "IntensitySource",
    "PeriodEnergy",
    "RunCounts",
    "SkippedFile",
]

FOOTPRINT_SCHEMA_VERSION = "1"
#: The value a run without a grouping tag is grouped under.
NO_TAG = "(none)"


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


# Defined here, not imported from the report models: a warm footprint never loads those.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
NonNegFloat = Annotated[float, Field(ge=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class RunCounts(_Model):
    """How many runs, by the status their (merged) report ends with."""

    total: NonNegInt = 0
    complete: NonNegInt = 0
    failed: NonNegInt = 0
    interrupted: NonNegInt = Field(0, description="Stopped by a signal (SIGINT, SIGTERM...).")
    running: NonNegInt = Field(
        0,
        description="The last report is a periodic checkpoint: the run was still going, or "
        "was killed without a chance to write its final report (SIGKILL, power loss).",
    )


class PeriodEnergy(_Model):
    """Energy of the runs that started in one period (one bar of a group's chart)."""

    start_utc: UtcDatetime
    days: Annotated[int, Field(ge=1)] = Field(description="Length of the period in days.")
    runs: NonNegInt
    it_energy_kwh: NonNegFloat
    facility_energy_kwh: NonNegFloat


class FootprintTotals(_Model):
    """Sums over a set of runs (a group, or all of them)."""

    runs: RunCounts
    wall_time_s: NonNegFloat = Field(description="Sum of the runs' wall-clock durations.")
    first_start_utc: UtcDatetime | None = None
    last_end_utc: UtcDatetime | None = None
    gpu_hours: NonNegFloat = Field(description="GPU-hours: each GPU board's time in each run.")
    gpu_hours_by_model: dict[str, NonNegFloat] = Field(
        default_factory=dict, description="GPU-hours per GPU model name."
    )
    it_energy_j: NonNegFloat = Field(description="Measured components' energy (joules).")
    it_energy_kwh: NonNegFloat
    facility_energy_j: NonNegFloat = Field(description="IT energy x each run's PUE (joules).")
    facility_energy_kwh: NonNegFloat
    measured_energy_j: NonNegFloat = Field(
        description="Part of the IT energy read from hardware counters or sampled power."
    )
    estimated_energy_j: NonNegFloat = Field(
        description="Part of the IT energy that is a model estimate, not a measurement."
    )
    estimated_share: Share | None = Field(
        None, description="estimated_energy_j / it_energy_j (None when there is no energy)."
    )
    co2e_location_g: NonNegFloat = Field(
        0.0, description="Location-based operational CO2e (facility energy x grid intensity)."
    )
    co2e_location_low_g: NonNegFloat = 0.0
    co2e_location_high_g: NonNegFloat = 0.0
    runs_with_co2e: NonNegInt = Field(0, description="Runs that carried a location-based CO2e.")
    co2e_market_g: NonNegFloat | None = Field(
        None, description="Market-based CO2e of the runs that had one; never added to the rest."
    )
    runs_with_market: NonNegInt = 0
    co2e_embodied_g: NonNegFloat | None = Field(
        None, description="Embodied (manufacturing) CO2e amortised over device-hours; separate."
    )
    runs_with_embodied: NonNegInt = 0
    sources: list[str] = Field(
        default_factory=list, description="Ids of the intensity sources these runs used."
    )
    by_period: list[PeriodEnergy] = Field(
        default_factory=list,
        description="Energy by period of run start (periods of the summary's period_days, "
        "the first starting at midnight UTC of the earliest run's day; empty ones left out).",
    )


class FootprintGroup(FootprintTotals):
    """The runs that share the values of the grouping tags."""

    key: dict[str, str] = Field(
        description=f"Grouping tag -> value ('{NO_TAG}' for runs without the tag)."
    )
    label: str


class IntensitySource(_Model):
    """One carbon setting the runs used: grid intensity and PUE, with their sources."""

    id: str
    runs: NonNegInt
    facility_energy_kwh: NonNegFloat = Field(description="Facility energy of those runs.")
    intensity_g_per_kwh: NonNegFloat = Field(description="The static intensity value.")
    unit: str
    basis: str
    data_year: int | None = None
    location: str | None = None
    cloud_region: str | None = None
    source: str
    source_id: str | None = Field(
        None, description="Id of the bundled dataset the figure comes from, if any."
    )
    licence: str | None = None
    is_fallback: bool = Field(False, description="A world-average default (no location given).")
    time_series_origin: str | None = Field(
        None, description="Origin of a time-varying intensity (file, electricitymaps), if used."
    )
    time_series_source: str | None = None
    pue: NonNegFloat
    pue_source: str
    dataset_version: str
    citation_keys: list[str] = Field(
        default_factory=list, description="BibTeX keys of the sources behind these figures."
    )


class SkippedFile(_Model):
    """A file that was found but is not a readable greenmeter report."""

    path: str
    problem: str


class FileCounts(_Model):
    """What the footprint read."""

    found: NonNegInt = Field(description="Files considered (every match of the inputs).")
    reports: NonNegInt = Field(description="Valid report files among them.")
    read: NonNegInt = Field(description="Files parsed this time (new or changed).")
    from_index: NonNegInt = Field(description="Files whose figures came from the index.")
    skipped: NonNegInt
    schema_versions: dict[str, NonNegInt] = Field(
        default_factory=dict, description="Report files per schema version."
    )
    checkpoints_dropped: NonNegInt = Field(
        0, description="Older copies of the same run part (repeated checkpoints) left out."
    )
    parts_merged: NonNegInt = Field(
        0, description="Per-rank or per-node reports merged into their run."
    )
    filtered_out: NonNegInt = Field(0, description="Runs left out by --since/--until/--where.")


class FootprintFilters(_Model):
    """Which runs were kept: by start time and by tags."""

    since_utc: UtcDatetime | None = Field(None, description="Runs that started at or after.")
    until_utc: UtcDatetime | None = Field(None, description="Runs that started before.")
    where: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Tag -> accepted values (any of them); every tag given must match.",
    )


class FootprintRun(_Model):
    """One run as counted (listed only when asked for)."""

    run_id: str
    run_name: str | None = None
    status: Literal["complete", "interrupted", "failed", "running"]
    group: str
    start_utc: UtcDatetime
    end_utc: UtcDatetime
    duration_s: NonNegFloat
    files: Annotated[int, Field(ge=1)] = Field(description="Report files merged into the run.")
    path: str = Field(description="The run's report file (the first one, when merged).")
    tags: dict[str, str] = Field(default_factory=dict)
    gpu_hours: NonNegFloat
    it_energy_j: NonNegFloat
    facility_energy_j: NonNegFloat
    estimated_energy_j: NonNegFloat
    co2e_location_g: NonNegFloat | None = None
    co2e_market_g: NonNegFloat | None = None
    co2e_embodied_g: NonNegFloat | None = None
    source: str | None = Field(None, description="Id of the intensity source used.")


class FootprintSummary(_Model):
    """The footprint of a set of runs: per group and in total (schema version 1)."""

    schema_version: Literal["1"] = FOOTPRINT_SCHEMA_VERSION
    generated_utc: UtcDatetime
    greenmeter: str = Field(description="Version of greenmeter that wrote this summary.")
    greenmeter_versions: list[str] = Field(
        default_factory=list, description="Versions of greenmeter that wrote the reports."
    )
    inputs: list[str] = Field(description="The paths, directories and globs given.")
    group_by: list[str] = Field(default_factory=list)
    filters: FootprintFilters = Field(default_factory=FootprintFilters)
    period_days: Annotated[int, Field(ge=1)] = Field(
        1, description="Length of the periods of the groups' charts."
    )
    files: FileCounts
    groups: list[FootprintGroup] = Field(default_factory=list)
    total: FootprintTotals
    sources: list[IntensitySource] = Field(default_factory=list)
    skipped: list[SkippedFile] = Field(default_factory=list)
    notes: list[str] = Field(
        default_factory=list, description="What the totals cannot show, and what was noticed."
    )
    runs: list[FootprintRun] | None = Field(
        None, description="Every run counted (only when asked for)."
    )
