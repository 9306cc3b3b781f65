"""Parts of a report besides its phases and totals: warnings, the power timeline and the
earlier segments of a resumed run."""

from __future__ import annotations

from pydantic import Field, model_validator

from greenmeter.report.base import Name, NonNegFloat, NonNegInt, UtcDatetime, _Model
from greenmeter.report.limits import MAX_TIMELINE_POINTS

__all__ = ["PowerSeries", "ReportWarning", "Segment"]


class ReportWarning(_Model):
    """A structured problem noticed while measuring or reporting."""

    code: Name = Field(description="Stable code, e.g. 'rapl.permission', 'carbon.fallback'.")
    message: str
    component: str | None = None
    host: str | None = None
    at_s: NonNegFloat | None = Field(None, description="Seconds since the run's start_utc.")


class PowerSeries(_Model):
    """Power over time of one rank's components, for plots (bounded length).

    ``power_w[key][i]`` is the mean power of that component between the previous point
    and ``t_s[i]`` (seconds since the report's ``start_utc``).
    """

    host: Name
    rank: NonNegInt
    t_s: list[NonNegFloat] = Field(default_factory=list, max_length=MAX_TIMELINE_POINTS)
    power_w: dict[str, list[NonNegFloat]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PowerSeries:
        for key, values in self.power_w.items():
            if len(values) != len(self.t_s):
                raise ValueError(f"power_w[{key!r}] has {len(values)} values for {len(self.t_s)}")
        return self


class Segment(_Model):
    """An earlier stretch of the same run, measured before a resume from a checkpoint.

    A run restarted from a checkpoint (``GreenMeterCallback.load_state_dict``) keeps the
    earlier segments' energy in its phases and totals; each earlier segment is listed
    here with its own figures so a reader sees the whole run's time span. The report's
    ``start_utc`` is the first segment's start and its ``duration_s`` the measured time
    of all segments (the gaps between them left out), so it covers the same segments as
    its energy; the last segment's own figures are in ``extra``
    (``resume.this_duration_s``, ``resume.this_it_energy_j``).
    """

    start_utc: UtcDatetime
    end_utc: UtcDatetime
    duration_s: NonNegFloat
    host: Name | None = None
    it_energy_j: NonNegFloat = Field(
        description="Energy of this segment counted into the report's totals (joules)."
    )

    @model_validator(mode="after")
    def _check(self) -> Segment:
        if self.end_utc < self.start_utc:
            raise ValueError("segment end_utc is before its start_utc")
        return self
