"""Turn IT energy into CO2e: :func:`resolve` the settings, then :meth:`CarbonAccountant.co2e`.

Operational (location-based) CO2e = facility energy x grid intensity, where facility
energy = IT energy x PUE, summed per time bucket when the intensity varies. Market-based
and embodied figures are computed beside it, never added to or subtracted from it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.constants import (
    EMBODIED_DEFAULTS,
    EmbodiedDefault,
    cloud_pue_preset,
    pue_preset,
)
from greenmeter.carbon.dataset import (
    CloudRegion,
    GridRecord,
    dataset,
    dataset_date,
    dataset_version,
    lookup,
    lookup_cloud,
    world,
)
from greenmeter.carbon.models import (
    CarbonInfo,
    Co2eBreakdown,
    EmbodiedDeviceInfo,
    EmbodiedInfo,
    IntensityInfo,
    MarketInfo,
    PueInfo,
    ResolvedFrom,
    TimeSeriesInfo,
)
from greenmeter.carbon.series import IntensitySeries, load_series

__all__ = ["J_PER_KWH", "CarbonAccountant", "resolve"]

J_PER_KWH = 3.6e6
DEFAULT_TOKEN_ENV = "ELECTRICITYMAPS_TOKEN"

Segment = tuple[datetime, datetime, float]


@dataclass(frozen=True)
class _Static:
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
        static: _Static,
        pue: float,
        pue_low: float,
        pue_high: float,
        series: IntensitySeries | None = None,
        out_of_range: str = "nearest",
        market_factor_g_per_kwh: float | None = None,
        renewable_share: float | None = None,
        embodied: Mapping[str, EmbodiedDefault] | None = None,
        warnings: list[tuple[str, str]] | None = None,
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
        self._embodied = dict(embodied) if embodied is not None else None

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

    def co2e(
        self, segments: Sequence[Segment], device_hours: Mapping[str, float] | None = None
    ) -> Co2eBreakdown:
        """CO2e for energy segments ``(start_utc, end_utc, it_energy_j)``.

        Args:
            segments: When IT energy (joules, before PUE) was drawn. With a time series,
                each segment's energy is split across the buckets it overlaps in
                proportion to the overlap (constant power within a segment).
            device_hours: Device-hours per component kind ("gpu": 8.0) for embodied
                emissions; ignored when embodied emissions are off.

        Returns:
            A :class:`Co2eBreakdown`. Bad segments (negative or non-finite energy) are
            skipped with a warning; this method does not raise on measurement data.
        """
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
            market_g = op_g * (1.0 - self._renewable_share)

        embodied_g: float | None = None
        by_kind: dict[str, float] | None = None
        if self._embodied is not None:
            by_kind = {}
            for kind, hours in sorted((device_hours or {}).items()):
                spec = self._embodied.get(kind)
                if spec is None:
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
                by_kind[kind] = h * spec.per_device_hour_g
            embodied_g = sum(by_kind.values())

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


def _epoch(t: datetime) -> float:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _dt(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, tz=timezone.utc)


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class _Layer:
    origin: ResolvedFrom  # "explicit" | "env" | "config_file"
    config: CarbonConfig
    label: str

    def first(self, name: str) -> object | None:
        return getattr(self.config, name)


def _pick(layers: Sequence[_Layer], name: str) -> tuple[object | None, _Layer | None]:
    for layer in layers:
        value = layer.first(name)
        if value is not None:
            return value, layer
    return None, None


def _describe(rec: GridRecord) -> str:
    year = rec.year if rec.year is not None else "year n/a"
    return f"{rec.key} {rec.name}: {rec.g_per_kwh:g} {rec.unit} ({rec.source}, {year})"


def _origin(layer: _Layer, kind: ResolvedFrom) -> ResolvedFrom:
    return kind if layer.origin == "explicit" else layer.origin


def _setting(layer: _Layer, name: str, env_names: Mapping[str, str]) -> str:
    if layer.origin == "env":
        return f"environment {env_names.get(name, name)}"
    if layer.origin == "config_file":
        return f"config file {layer.label}: {name}"
    return f"argument {name}"


def _grid_intensity(rec: GridRecord, resolved_from: ResolvedFrom, **extra: object) -> IntensityInfo:
    return IntensityInfo(
        value_g_per_kwh=rec.g_per_kwh,
        low_g_per_kwh=rec.low_g_per_kwh,
        high_g_per_kwh=rec.high_g_per_kwh,
        unit="gCO2/kWh" if rec.unit == "gCO2/kWh" else "gCO2e/kWh",
        basis=rec.basis if rec.basis in ("lifecycle", "direct_combustion") else "unknown",
        year=rec.year,
        source=rec.describe_source(),
        licence=rec.licence,
        location=rec.key if rec.kind != "cloud_provider" else None,
        location_name=rec.name,
        resolved_from=resolved_from,
        **extra,  # type: ignore[arg-type]
    )


def resolve(
    config: CarbonConfig | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> CarbonAccountant:
    """Decide every carbon constant and return an accountant that applies them.

    Resolution, first match wins (for the grid intensity): an explicit
    ``intensity_g_per_kwh``; an explicit ``location`` (or, without one, ``cloud``);
    environment variables (same order); a config file (same order); else the bundled
    world average, with the warning ``carbon.default_intensity``. Other settings (PUE,
    series, market, embodied) are taken from the first of argument, environment, config
    file that sets them. Nothing touches the network unless ``live_provider`` is set.

    Args:
        config: User settings (None = all unset).
        cwd: Where to start looking for a config file (default: the working directory).
        env: Environment mapping (default: ``os.environ``); pass ``{}`` to ignore it.

    Raises:
        CarbonError: an invalid setting (unknown location, PUE < 1, malformed series...).
    """
    config = config if config is not None else CarbonConfig()
    environ: Mapping[str, str] = os.environ if env is None else env
    from greenmeter.carbon.settings import from_env, load_config_layers

    steps: list[str] = []
    warnings: list[tuple[str, str]] = []
    env_cfg, env_names = from_env(environ)
    layers = [_Layer("explicit", config, "argument"), _Layer("env", env_cfg, "environment")]

    cfg_path_raw, cfg_layer = _pick(layers, "config_file")
    file_layers, file_steps, file_warnings = load_config_layers(
        cfg_path_raw,  # type: ignore[arg-type]
        cwd=Path(cwd) if cwd is not None else None,
        env=environ,
        explicit_source=_setting(cfg_layer, "config_file", env_names) if cfg_layer else "",
    )
    layers += [_Layer("config_file", file_cfg, label) for file_cfg, label in file_layers]
    steps += file_steps
    warnings += file_warnings

    # Cloud region (also sets the default PUE).
    cloud_raw, _ = _pick(layers, "cloud")
    cloud: CloudRegion | None = lookup_cloud(str(cloud_raw)) if cloud_raw is not None else None
    provider_fig_raw, _ = _pick(layers, "use_provider_figure")
    use_provider = bool(provider_fig_raw)

    # Grid intensity.
    intensity: IntensityInfo | None = None
    static: _Static | None = None
    grid_rec: GridRecord | None = None
    for layer in layers:
        c = layer.config
        if c.intensity_g_per_kwh is not None:
            value = c.intensity_g_per_kwh
            intensity = IntensityInfo(
                value_g_per_kwh=value,
                low_g_per_kwh=c.intensity_low_g_per_kwh,
                high_g_per_kwh=c.intensity_high_g_per_kwh,
                basis="user",
                source=c.intensity_source
                or f"user-supplied ({_setting(layer, 'intensity_g_per_kwh', env_names)})",
                licence=None,
                resolved_from=_origin(layer, "explicit"),
            )
            static = _Static(
                value,
                c.intensity_low_g_per_kwh if c.intensity_low_g_per_kwh is not None else value,
                c.intensity_high_g_per_kwh if c.intensity_high_g_per_kwh is not None else value,
            )
            where = _setting(layer, "intensity_g_per_kwh", env_names)
            steps.append(f"intensity {value:g} gCO2e/kWh from {where}")
            break
        if c.location is not None:
            grid_rec = lookup(c.location)
            intensity = _grid_intensity(
                grid_rec,
                _origin(layer, "location"),
                cloud_region=cloud.key if cloud else None,
            )
            steps.append(
                f"location {c.location!r} from {_setting(layer, 'location', env_names)} -> "
                f"{_describe(grid_rec)}"
            )
            if c.cloud is not None and cloud is not None:
                steps.append(f"cloud {cloud.key} also given: the location's grid figure is used")
            break
        if c.cloud is not None:
            region = lookup_cloud(c.cloud)
            grid_rec = region.grid
            if use_provider and region.provider_figure is not None:
                rec = region.provider_figure
                intensity = _grid_intensity(
                    rec, _origin(layer, "cloud"), cloud_region=region.key, provider_figure=True
                )
                intensity = intensity.model_copy(update={"location": region.grid.key})
                steps.append(
                    f"cloud {region.key} from {_setting(layer, 'cloud', env_names)} -> provider "
                    f"figure {rec.g_per_kwh:g} gCO2e/kWh ({rec.source})"
                )
            else:
                if use_provider:
                    warnings.append(
                        (
                            "carbon.no_provider_figure",
                            f"{region.key} has no provider-published figure in the bundled "
                            f"data; the grid figure for {region.grid.key} is used",
                        )
                    )
                intensity = _grid_intensity(
                    region.grid, _origin(layer, "cloud"), cloud_region=region.key
                )
                steps.append(
                    f"cloud {region.key} ({region.city}) from "
                    f"{_setting(layer, 'cloud', env_names)} -> grid {_describe(region.grid)}"
                )
            break
    if intensity is None:
        rec = world()
        intensity = _grid_intensity(rec, "default", is_fallback=True)
        intensity = intensity.model_copy(update={"location": None})
        steps.append(f"no intensity, location or cloud given -> world average {_describe(rec)}")
        warnings.append(
            (
                "carbon.default_intensity",
                f"NO GRID LOCATION GIVEN: CO2e uses the world average {rec.g_per_kwh:g} "
                f"gCO2e/kWh ({rec.source_title}). Real grids range from under 50 to over "
                "800 gCO2e/kWh. Set location= (e.g. 'FR', 'US-CA'), cloud= (e.g. "
                "'aws:us-east-1'), GREENMETER_LOCATION, or [tool.greenmeter] location.",
            )
        )
    if static is None:
        low = intensity.low_g_per_kwh
        high = intensity.high_g_per_kwh
        v = intensity.value_g_per_kwh
        static = _Static(v, v if low is None else low, v if high is None else high)

    # PUE.
    pue_raw, pue_layer = _pick(layers, "pue")
    if pue_raw is not None and pue_layer is not None:
        pc = pue_layer.config
        if isinstance(pue_raw, str):
            preset = pue_preset(pue_raw)
            pue_value, p_low, p_high = preset.value, preset.low, preset.high
            pue_source, preset_name = preset.source, preset.name
        else:
            pue_value = float(pue_raw)  # type: ignore[arg-type]
            p_low, p_high = pc.pue_low, pc.pue_high
            pue_source = pc.pue_source or f"user-supplied ({_setting(pue_layer, 'pue', env_names)})"
            preset_name = None
        pue_from = _origin(pue_layer, "explicit")
        steps.append(f"PUE {pue_value:g} from {_setting(pue_layer, 'pue', env_names)}")
    elif cloud is not None:
        preset = cloud_pue_preset(cloud.key.split(":", 1)[0])
        pue_value, p_low, p_high = preset.value, preset.low, preset.high
        pue_source, preset_name, pue_from = preset.source, preset.name, "cloud"
        steps.append(f"PUE {pue_value:g}: {preset.name} fleet figure for {cloud.key}")
    else:
        preset = pue_preset("workstation")
        pue_value, p_low, p_high = preset.value, preset.low, preset.high
        pue_source, preset_name, pue_from = preset.source, preset.name, "default"
        steps.append("PUE 1.0 (workstation default: no facility overhead)")
    pue_info = PueInfo(
        value=pue_value,
        low=p_low,
        high=p_high,
        preset=preset_name,
        source=pue_source,
        resolved_from=pue_from,  # type: ignore[arg-type]
    )

    # Time-varying intensity.
    policy_raw, _ = _pick(layers, "series_out_of_range")
    policy = str(policy_raw) if policy_raw is not None else "nearest"
    series: IntensitySeries | None = None
    ts_info: TimeSeriesInfo | None = None
    series_raw, series_layer = _pick(layers, "intensity_series")
    live_raw, _ = _pick(layers, "live_provider")
    if series_raw is not None and series_layer is not None:
        series = load_series(os.fspath(series_raw))  # type: ignore[arg-type]
        ts_info = TimeSeriesInfo(
            origin="file",
            path=series.origin,
            points=len(series.times_s),
            start_utc=_dt(series.start_s),
            end_utc=_dt(series.end_s),
            bucket_s=series.step_s,
            out_of_range=policy,  # type: ignore[arg-type]
            source="user-supplied series ("
            + _setting(series_layer, "intensity_series", env_names)
            + ")",
        )
        steps.append(f"intensity series {series.origin}: {len(series.times_s)} points")
        if live_raw is not None:
            warnings.append(
                (
                    "carbon.live_ignored",
                    "both an intensity series file and a live provider are set; the file "
                    "is used and the live provider is not contacted",
                )
            )
    elif live_raw is not None:
        series, ts_info = _fetch_live(layers, environ, grid_rec, policy, steps, warnings)

    # Market-based.
    market: MarketInfo | None = None
    factor = share = None
    for layer in layers:
        c = layer.config
        if c.market_factor_g_per_kwh is not None:
            factor = c.market_factor_g_per_kwh
            market = MarketInfo(
                method="factor",
                factor_g_per_kwh=factor,
                note=(
                    f"Market-based: facility energy x {factor:g} gCO2e/kWh "
                    f"({_setting(layer, 'market_factor_g_per_kwh', env_names)}); reported "
                    "beside the location-based figure, not netted from it."
                ),
            )
            break
        if c.renewable_share is not None:
            share = c.renewable_share
            market = MarketInfo(
                method="renewable_share",
                renewable_share=share,
                note=(
                    f"Market-based: location-based figure x (1 - {share:g}), counting the "
                    "contracted renewable share at 0 gCO2e/kWh "
                    f"({_setting(layer, 'renewable_share', env_names)}); reported beside "
                    "the location-based figure, not netted from it."
                ),
            )
            break

    # Embodied.
    embodied_raw, _ = _pick(layers, "embodied")
    embodied: dict[str, EmbodiedDefault] | None = None
    embodied_info: EmbodiedInfo | None = None
    if embodied_raw is True:
        embodied = dict(EMBODIED_DEFAULTS)
    elif isinstance(embodied_raw, tuple):
        embodied = {
            kind: EmbodiedDefault(kind, kg, hours, source)
            for kind, kg, hours, source in embodied_raw
        }
    if embodied is not None:
        embodied_info = EmbodiedInfo(
            devices=[
                EmbodiedDeviceInfo(
                    kind=d.kind,
                    manufacturing_kgco2e=d.manufacturing_kgco2e,
                    lifetime_h=d.lifetime_h,
                    per_device_hour_g=d.per_device_hour_g,
                    source=d.source,
                )
                for d in embodied.values()
            ],
            note=(
                "Manufacturing emissions amortised linearly over the stated lifetime and "
                "charged per device-hour of the run; reported separately from operational "
                "emissions."
            ),
        )

    info = CarbonInfo(
        intensity=intensity,
        pue=pue_info,
        time_series=ts_info,
        market=market,
        embodied=embodied_info,
        dataset_version=dataset_version(),
        dataset_date=dataset_date(),
        resolution=steps,
    )
    return CarbonAccountant(
        info=info,
        static=static,
        pue=pue_value,
        pue_low=p_low if p_low is not None else pue_value,
        pue_high=p_high if p_high is not None else pue_value,
        series=series,
        out_of_range=policy,
        market_factor_g_per_kwh=factor,
        renewable_share=share,
        embodied=embodied,
        warnings=warnings,
    )


def _fetch_live(
    layers: Sequence[_Layer],
    environ: Mapping[str, str],
    grid_rec: GridRecord | None,
    policy: str,
    steps: list[str],
    warnings: list[tuple[str, str]],
) -> tuple[IntensitySeries | None, TimeSeriesInfo | None]:
    from greenmeter.carbon.live import DEFAULT_BASE_URL, LiveFetchError, fetch_history

    zone_raw, _ = _pick(layers, "live_zone")
    zone = str(zone_raw) if zone_raw is not None else None
    if zone is None and grid_rec is not None:
        zone = dataset()["locations"].get(grid_rec.key, {}).get("alpha2")
    if zone is None:
        warnings.append(
            (
                "carbon.live_failed",
                "live provider set but no zone: give live_zone (e.g. 'FR', 'US-CAL-CISO'); "
                "the static intensity is used",
            )
        )
        return None, None
    base_raw, _ = _pick(layers, "live_base_url")
    base_url = str(base_raw) if base_raw is not None else DEFAULT_BASE_URL
    token_env_raw, _ = _pick(layers, "live_token_env")
    token_env = str(token_env_raw) if token_env_raw is not None else DEFAULT_TOKEN_ENV
    timeout_raw, _ = _pick(layers, "live_timeout_s")
    timeout_s = float(timeout_raw) if timeout_raw is not None else 5.0  # type: ignore[arg-type]
    token = environ.get(token_env) or None
    try:
        series = fetch_history(zone, token=token, base_url=base_url, timeout_s=timeout_s)
    except LiveFetchError as exc:
        message = str(exc)
        if token:
            message = message.replace(token, "***")
        warnings.append(
            (
                "carbon.live_failed",
                f"live intensity unavailable ({message}); the static intensity is used",
            )
        )
        steps.append(f"live provider electricitymaps zone {zone}: failed, static value kept")
        return None, None
    steps.append(
        f"live provider electricitymaps zone {zone}: {len(series.times_s)} hourly points "
        f"({'token from ' + token_env if token else 'no token'})"
    )
    info = TimeSeriesInfo(
        origin="electricitymaps",
        zone=zone,
        points=len(series.times_s),
        start_utc=_dt(series.start_s),
        end_utc=_dt(series.end_s),
        bucket_s=series.step_s,
        out_of_range=policy,  # type: ignore[arg-type]
        source=f"Electricity Maps API, carbon-intensity/history, zone {zone} ({base_url})",
    )
    return series, info
