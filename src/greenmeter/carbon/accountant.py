"""Turn IT energy into CO2e with resolved constants: :class:`CarbonAccountant`.

Operational (location-based) CO2e = facility energy x grid intensity, where facility
energy = IT energy x PUE, summed per time bucket when the intensity varies. Market-based
and embodied figures are computed beside it, never added to or subtracted from it.
:func:`greenmeter.carbon.resolve` (in :mod:`greenmeter.carbon.resolve`) builds one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from greenmeter.carbon.constants import EMBODIED_COUNTED_PER, EmbodiedDefault
from greenmeter.carbon.models import CarbonInfo, Co2eBreakdown, TimeSeriesInfo
from greenmeter.carbon.series import IntensitySeries
from greenmeter.units import J_PER_KWH

__all__ = ["J_PER_KWH", "CarbonAccountant", "StaticIntensity"]


Segment = tuple[datetime, datetime, float]
#: Fetches a series covering (start_s, end_s); None when it cannot.
Refetch = Callable[[float, float], "tuple[IntensitySeries, TimeSeriesInfo] | None"]


@dataclass(frozen=True)
class StaticIntensity:
    value: float
    low: float
    high: float


class CarbonAccountant:
    """Converts energy segments to CO2e with the constants named in :attr:`info`.

    Build one with :func:`resolve`. Attributes:

    * ``info`` (:class:`CarbonInfo`): every constant used, with source, year, licence.
    * ``pue``: facility energy / IT energy.
    * ``warnings``: ``(code, message)`` pairs for the report (fallbacks, live-provider
      failures, series range problems). Messages never contain an API token.
    """

    def __init__(
        self,
        *,
        info: CarbonInfo,
        static: StaticIntensity,
        pue: float,
        pue_low: float,
        pue_high: float,
        series: IntensitySeries | None = None,
        out_of_range: str = "nearest",
        market_factor_g_per_kwh: float | None = None,
        renewable_share: float | None = None,
        uncovered_factor_g_per_kwh: float | None = None,
        embodied: Mapping[str, EmbodiedDefault] | None = None,
        warnings: list[tuple[str, str]] | None = None,
        refetch: Refetch | None = None,
    ) -> None:
        self.info = info
        self.pue = pue
        self.warnings: list[tuple[str, str]] = list(warnings or [])
        self._static = static
        self._pue_low = pue_low
        self._pue_high = pue_high
        self._series = series
        self._out_of_range = out_of_range
        self._market_factor = market_factor_g_per_kwh
        self._renewable_share = renewable_share
        self._uncovered_factor = uncovered_factor_g_per_kwh
        self._embodied = dict(embodied) if embodied is not None else None
        self._refetch = refetch
        self._refetched = False

    @property
    def intensity_g_per_kwh(self) -> float:
        """Static grid intensity, gCO2e/kWh (used when no series applies)."""
        return self._static.value

    def warn(self, code: str, message: str) -> None:
        """Record a warning once per code (a later message replaces an earlier one)."""
        for i, (c, _) in enumerate(self.warnings):
            if c == code:
                self.warnings[i] = (code, message)
                return
        self.warnings.append((code, message))

    def prepare_span(self, start_utc: datetime, end_utc: datetime) -> None:
        """Make a live series cover ``[start_utc, end_utc]`` (the run), fetching once more.

        Called by the report builder before any :meth:`co2e`; a no-op without a live
        provider or when the series already covers the span. Never raises.
        """
        try:
            a, b = _epoch(start_utc), _epoch(end_utc)
        except (TypeError, ValueError, AttributeError, OverflowError):
            return
        self._cover(a, b)

    def _cover(self, a: float, b: float) -> None:
        if self._refetch is None or self._refetched:
            return
        if self._series is not None and self._series.start_s <= a and b <= self._series.end_s:
            self._set_covers(True)
            return
        self._refetched = True
        try:
            got = self._refetch(a, b)
        except Exception as exc:  # measurement problems never crash a run
            self.warn("carbon.live_failed", f"live intensity history unavailable ({exc})")
            got = None
        if got is None:
            self._set_covers(False)
            return
        self._series, ts_info = got
        self.info = self.info.model_copy(update={"time_series": ts_info})
        self._set_covers(self._series.start_s <= a and b <= self._series.end_s)

    def _set_covers(self, covers: bool) -> None:
        ts = self.info.time_series
        if ts is not None and ts.covers_run is not covers:
            self.info = self.info.model_copy(
                update={"time_series": ts.model_copy(update={"covers_run": covers})}
            )

    def co2e(
        self, segments: Sequence[Segment], device_hours: Mapping[str, float] | None = None
    ) -> Co2eBreakdown:
        """CO2e for energy segments ``(start_utc, end_utc, it_energy_j)``.

        Args:
            segments: When IT energy (joules, before PUE) was drawn. With a time series,
                each segment's energy is split across the buckets it overlaps in
                proportion to the overlap (constant power within a segment).
            device_hours: Hours per kind for embodied emissions: ``"gpu"`` GPU-board hours,
                ``"host"`` host hours (wall time x machines; the server is charged per
                host, never per CPU socket). Ignored when embodied emissions are off.

        Returns:
            A :class:`Co2eBreakdown`. Bad segments (negative or non-finite energy) are
            skipped with a warning; this method does not raise on measurement data.
        """
        if self._refetch is not None and not self._refetched:
            span = _span(segments)
            if span is not None:
                self._cover(*span)
        it_j = 0.0
        op_g = 0.0
        outside_j = 0.0
        for seg in segments:
            try:
                start, end, energy_j = seg
                energy_j = float(energy_j)
            except (TypeError, ValueError):
                self.warn("carbon.bad_segment", f"skipped a malformed energy segment {seg!r}")
                continue
            if not math.isfinite(energy_j) or energy_j < 0:
                self.warn(
                    "carbon.bad_segment",
                    f"skipped an energy segment with invalid energy {energy_j!r} J",
                )
                continue
            it_j += energy_j
            kwh = energy_j * self.pue / J_PER_KWH
            if self._series is None:
                op_g += kwh * self._static.value
                continue
            try:
                a, b = _epoch(start), _epoch(end)
            except (TypeError, ValueError, AttributeError, OverflowError):
                self.warn(
                    "carbon.bad_segment",
                    "an energy segment had no valid time; the static intensity was used",
                )
                op_g += kwh * self._static.value
                continue
            for fraction, value, inside in self._series.split(a, b):
                if not inside:
                    outside_j += fraction * energy_j
                    if self._out_of_range == "static":
                        value = self._static.value
                op_g += fraction * kwh * value
        if outside_j > 0 and self._series is not None:
            s = self._series
            rule = (
                "the nearest point's value"
                if self._out_of_range == "nearest"
                else f"the static value {self._static.value:g} gCO2e/kWh"
            )
            self.warn(
                "carbon.series_out_of_range",
                f"some energy fell outside the intensity series ({_iso(s.start_s)} to "
                f"{_iso(s.end_s)}, {s.origin}); {rule} was used for it "
                "(series_out_of_range='nearest' or 'static')",
            )
        facility_j = it_j * self.pue
        facility_kwh = facility_j / J_PER_KWH
        effective = op_g / facility_kwh if facility_kwh > 0 else self._static.value
        if self._series is None and self._static.value > 0:
            low_scale = self._static.low / self._static.value
            high_scale = self._static.high / self._static.value
        else:
            low_scale = high_scale = 1.0
        op_low = op_g * low_scale * self._pue_low / self.pue
        op_high = op_g * high_scale * self._pue_high / self.pue

        market_g: float | None = None
        if self._market_factor is not None:
            market_g = facility_kwh * self._market_factor
        elif self._renewable_share is not None:
            uncovered = 1.0 - self._renewable_share
            if self._uncovered_factor is not None:
                market_g = facility_kwh * uncovered * self._uncovered_factor
            else:
                market_g = op_g * uncovered

        by_kind = self._embodied_g(device_hours) if self._embodied is not None else None
        embodied_g = sum(by_kind.values()) if by_kind is not None else None

        return Co2eBreakdown(
            it_energy_j=it_j,
            facility_energy_j=facility_j,
            pue=self.pue,
            intensity_g_per_kwh=effective,
            operational_g=op_g,
            operational_low_g=min(op_low, op_g),
            operational_high_g=max(op_high, op_g),
            market_g=market_g,
            embodied_g=embodied_g,
            embodied_by_kind_g=by_kind,
            time_varying=self._series is not None,
        )

    def _embodied_g(self, device_hours: Mapping[str, float] | None) -> dict[str, float]:
        """Grams per embodied kind: the server per host-hour, each GPU per board-hour."""
        hours_by = dict(device_hours or {})
        if "host" not in hours_by and "cpu" in hours_by:
            self.warn(
                "carbon.embodied_no_host_hours",
                "host-hours were not given; the server's embodied emissions were charged per "
                "CPU-package hour, which overcounts multi-socket hosts",
            )
            hours_by["host"] = hours_by["cpu"]
        out: dict[str, float] = {}
        for kind, spec in sorted((self._embodied or {}).items()):
            per = EMBODIED_COUNTED_PER.get(kind)
            hours = hours_by.get("host" if per == "host" else kind)
            if hours is None:
                continue
            try:
                h = float(hours)
            except (TypeError, ValueError):
                h = float("nan")
            if not math.isfinite(h) or h < 0:
                self.warn(
                    "carbon.bad_device_hours",
                    f"ignored invalid device-hours {hours!r} for {kind!r}",
                )
                continue
            out[kind] = h * spec.per_device_hour_g
        return out


def _span(segments: Sequence[Segment]) -> tuple[float, float] | None:
    """Earliest start and latest end of the segments, Unix seconds (None if none)."""
    lo = hi = None
    for seg in segments:
        try:
            a, b = _epoch(seg[0]), _epoch(seg[1])
        except (TypeError, ValueError, AttributeError, OverflowError, IndexError):
            continue
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return (lo, hi) if lo is not None and hi is not None else None


def _epoch(t: datetime) -> float:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _dt(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, tz=timezone.utc)
