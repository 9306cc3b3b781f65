"""Report-level carbon models: which constants were used, and the CO2e they give.

These are the carbon parts of the report schema. They follow the report conventions:
``extra="forbid"``, no NaN or infinity, non-negative quantities, units in field names
(``_g`` grams CO2e, ``_j`` joules, ``_g_per_kwh`` grams CO2e per kilowatt-hour,
``_kgco2e`` kilograms CO2e, ``_h`` hours), timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "CarbonInfo",
    "Co2eBreakdown",
    "EmbodiedDeviceInfo",
    "EmbodiedInfo",
    "Gas",
    "IntensityInfo",
    "MarketInfo",
    "PueInfo",
    "ResolvedFrom",
    "TimeSeriesInfo",
]

#: Where a constant came from, in the order the resolver tries them.
ResolvedFrom = Literal["explicit", "location", "cloud", "env", "config_file", "default"]

#: What an intensity figure counts. ``lifecycle``: upstream fuel supply, plant
#: construction and combustion (Ember / IPCC AR5 factors). ``direct_combustion``: stack
#: emissions only (EPA eGRID output rates, most utility disclosures). ``user``: a figure
#: the user supplied, basis unknown to greenmeter. ``unknown``: the source does not say.
IntensityBasis = Literal["lifecycle", "direct_combustion", "user", "unknown"]

#: Which gases a figure counts: ``CO2e`` (CO2, CH4, N2O as CO2-equivalent) or ``CO2`` only.
Gas = Literal["CO2e", "CO2"]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


#: A timezone-aware datetime normalised to UTC (naive datetimes are rejected).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class IntensityInfo(_Model):
    """The grid carbon intensity applied to facility energy (location-based)."""

    value_g_per_kwh: float = Field(ge=0, description="Static intensity used, g per kWh of `gas`.")
    low_g_per_kwh: float | None = Field(default=None, ge=0)
    high_g_per_kwh: float | None = Field(default=None, ge=0)
    range_note: str | None = Field(
        default=None, description="What low/high are (only set where a range was given)."
    )
    unit: Literal["gCO2e/kWh", "gCO2/kWh"] = "gCO2e/kWh"
    gas: Gas = Field(default="CO2e", description="Gases the figure counts.")
    basis: IntensityBasis = "unknown"
    year: int | None = Field(default=None, ge=1900, le=2200)
    source: str
    source_id: str | None = Field(
        default=None, description="Bundled source id, e.g. 'ember-yearly'."
    )
    source_url: str | None = None
    licence: str | None = None
    scope3_g_per_kwh: float | None = Field(
        default=None, ge=0, description="The source's separate scope 3 factor; not included."
    )
    location: str | None = Field(default=None, description="Dataset key, e.g. 'FRA', 'US-CA'.")
    location_name: str | None = None
    cloud_region: str | None = Field(default=None, description="e.g. 'gcp:europe-west1'.")
    provider_figure: bool = Field(
        default=False, description="True when the cloud provider's own published figure is used."
    )
    resolved_from: ResolvedFrom
    is_fallback: bool = Field(
        default=False, description="True when no location was given and a default was used."
    )


class PueInfo(_Model):
    """Power usage effectiveness: facility energy = IT energy x PUE."""

    value: float = Field(ge=1.0)
    low: float | None = Field(default=None, ge=1.0)
    high: float | None = Field(default=None, ge=1.0)
    preset: str | None = None
    source: str
    source_url: str | None = None
    resolved_from: ResolvedFrom


class TimeSeriesInfo(_Model):
    """A time-varying intensity applied per bucket, energy-weighted."""

    origin: Literal["file", "electricitymaps"]
    path: str | None = Field(default=None, description="File the series was read from.")
    zone: str | None = Field(default=None, description="Live provider zone.")
    points: int = Field(ge=0)
    start_utc: UtcDatetime | None = None
    end_utc: UtcDatetime | None = None
    bucket_s: float | None = Field(default=None, gt=0, description="Length of the last bucket.")
    out_of_range: Literal["nearest", "static"] = Field(
        default="nearest",
        description="Energy outside the series: nearest point's value, or the static value.",
    )
    source: str
    basis: IntensityBasis = Field(
        default="unknown", description="Basis of the series' own figures, where it says."
    )
    covers_run: bool | None = Field(
        default=None, description="Whether the series spans all energy it was applied to."
    )


class MarketInfo(_Model):
    """Market-based figure, reported beside (never instead of) the location-based one."""

    method: Literal["factor", "renewable_share"]
    factor_g_per_kwh: float | None = Field(default=None, ge=0)
    renewable_share: float | None = Field(default=None, ge=0, le=1)
    uncovered_factor_g_per_kwh: float | None = Field(
        default=None, ge=0, description="Factor applied to the share not covered by contracts."
    )
    uncovered_basis: Literal["residual_mix", "location_average"] | None = Field(
        default=None,
        description="residual_mix where a residual-mix factor was given; location_average "
        "when none was, which the GHG Protocol Scope 2 Guidance does not prefer (disclosed).",
    )
    disclosure: str | None = None
    note: str


class EmbodiedDeviceInfo(_Model):
    """Manufacturing emissions of one device kind, amortised per device-hour."""

    kind: str
    manufacturing_kgco2e: float = Field(ge=0)
    lifetime_h: float = Field(gt=0)
    per_device_hour_g: float = Field(ge=0)
    counted_per: Literal["host", "board", "device"] = Field(
        default="device", description="host: once per machine; board: once per GPU board."
    )
    source: str


class EmbodiedInfo(_Model):
    devices: list[EmbodiedDeviceInfo] = Field(default_factory=list)
    note: str = ""


class CarbonInfo(_Model):
    """Every constant the carbon accounting used, with source, year and licence."""

    intensity: IntensityInfo
    pue: PueInfo
    time_series: TimeSeriesInfo | None = None
    market: MarketInfo | None = None
    embodied: EmbodiedInfo | None = None
    dataset_version: str
    dataset_date: str = Field(description="ISO date the bundled dataset was built.")
    resolution: list[str] = Field(
        default_factory=list, description="Steps the resolver took, in order."
    )


class Co2eBreakdown(_Model):
    """CO2e for one set of energy segments (a phase, or the whole run).

    ``operational_*`` is location-based: facility energy x grid intensity. ``market_g``
    and ``embodied_g`` are separate figures, never added to or netted from it.
    """

    it_energy_j: float = Field(ge=0)
    facility_energy_j: float = Field(ge=0)
    pue: float = Field(ge=1.0)
    intensity_g_per_kwh: float = Field(ge=0, description="Effective, energy-weighted.")
    operational_g: float = Field(ge=0)
    operational_low_g: float = Field(ge=0)
    operational_high_g: float = Field(ge=0)
    market_g: float | None = Field(default=None, ge=0)
    embodied_g: float | None = Field(default=None, ge=0)
    embodied_by_kind_g: dict[str, Annotated[float, Field(ge=0)]] | None = None
    time_varying: bool = False
