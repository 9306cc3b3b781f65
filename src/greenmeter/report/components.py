"""What was measured: the components (counters, sampled sensors, estimates) and the
sources that were considered and not used."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from greenmeter.report.base import (
    ComponentKindName,
    Name,
    NonNegFloat,
    ScopeName,
    _Model,
    component_key,
)

__all__ = [
    "Component",
    "CounterComponent",
    "EstimatedComponent",
    "SampledComponent",
    "UnavailableSource",
]


class _ComponentBase(_Model):
    key: Name = Field(description="'<id>@<host>', the key used in every energy mapping.")
    id: Name = Field(description="Sensor-level id, e.g. 'rapl:package-0' or 'nvml:GPU-...'.")
    kind: ComponentKindName
    scope: ScopeName
    sensor: Name
    label: str
    host: Name
    resolution_s: NonNegFloat = Field(
        description="Shortest interval over which a reading is meaningful (seconds)."
    )
    shared: bool = False
    degraded: bool = False
    degraded_reason: str | None = None
    degraded_at_s: NonNegFloat | None = Field(
        None,
        description="From when it was not measured (it stopped reading or a read hung; a "
        "GPU counter: its latest update before the failure): seconds since the report's "
        "start_utc (null when not degraded or the instant is unknown).",
    )
    recovered_at_s: NonNegFloat | None = Field(
        None,
        description="When it answered again after degrading: seconds since the report's "
        "start_utc (null when it did not). Energy between degraded_at_s and this instant "
        "is not measured.",
    )
    detail: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_key(self) -> _ComponentBase:
        if self.key != component_key(self.id, self.host):
            raise ValueError(f"component key must be '<id>@<host>' ({self.id}@{self.host})")
        return self


class CounterComponent(_ComponentBase):
    """Energy from a hardware counter read at phase boundaries (RAPL, NVML total energy)."""

    method: Literal["counter"]
    sampling_period_s: NonNegFloat | None = Field(
        None, description="Wrap-guard polling period, when the sensor polls."
    )


class SampledComponent(_ComponentBase):
    """Energy integrated from power samples (trapezoid rule)."""

    method: Literal["sampled"]
    sampling_period_s: Annotated[float, Field(gt=0)]
    power_source: str | None = Field(
        None, description="Which reading was sampled, e.g. 'instant_field'."
    )


class EstimatedComponent(_ComponentBase):
    """Energy from a model, not a measurement: carries the model and its constants."""

    method: Literal["estimated"]
    sampling_period_s: NonNegFloat | None = None
    estimate_model: str = Field(description="The formula, e.g. 'rated power x utilisation'.")
    estimate_constants: str = Field(description="The constants used, as the sensor states them.")
    estimate_source: str | None = Field(None, description="Where the constants come from.")


Component = Annotated[
    CounterComponent | SampledComponent | EstimatedComponent,
    Field(discriminator="method"),
]


class UnavailableSource(_Model):
    """A source that was considered and not used."""

    sensor: Name
    kind: ComponentKindName
    host: Name
    reason: str
    fix: str | None = None
