"""Decide every carbon constant: :func:`resolve` returns a :class:`CarbonAccountant`.

Resolution order for the grid intensity, first match wins: an explicit intensity, an
explicit location or cloud region, environment variables, a config file, else the
bundled world figure (flagged). A cloud region uses its provider's own published figure
where the bundled data has one (Google Cloud), else the grid its site sits on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from greenmeter.carbon.accountant import CarbonAccountant, Refetch, StaticIntensity
from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.constants import (
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
    parent_of,
    world,
)
from greenmeter.carbon.errors import CarbonError
from greenmeter.carbon.extras import embodied_settings, market_settings
from greenmeter.carbon.layers import Layer, origin, pick, setting
from greenmeter.carbon.models import (
    CarbonInfo,
    IntensityInfo,
    PueInfo,
    ResolvedFrom,
    TimeSeriesInfo,
)
from greenmeter.carbon.series import IntensitySeries, load_series

__all__ = ["DEFAULT_TOKEN_ENV", "pue_warning_text", "resolve"]

DEFAULT_TOKEN_ENV = "ELECTRICITYMAPS_TOKEN"


def _dt(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, tz=timezone.utc)


def _describe(rec: GridRecord) -> str:
    year = rec.year if rec.year is not None else "year n/a"
    return f"{rec.key} {rec.name}: {rec.g_per_kwh:g} {rec.unit} ({rec.source}, {year})"


def _grid_intensity(rec: GridRecord, resolved_from: ResolvedFrom, **extra: object) -> IntensityInfo:
    return IntensityInfo(
        value_g_per_kwh=rec.g_per_kwh,
        unit="gCO2/kWh" if rec.gas == "CO2" else "gCO2e/kWh",
        gas="CO2" if rec.gas == "CO2" else "CO2e",
        basis=rec.basis if rec.basis in ("lifecycle", "direct_combustion") else "unknown",
        year=rec.year,
        source=rec.describe_source(),
        source_id=rec.source,
        source_url=rec.source_url or None,
        licence=rec.licence,
        scope3_g_per_kwh=rec.scope3_g_per_kwh,
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
    config_search: bool = True,
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
        config_search: Look for a config file from ``cwd`` upward (False: only
            ``config.config_file``, if given).

    Raises:
        CarbonError: an invalid setting (unknown location, PUE < 1, malformed series...).
    """
    config = config if config is not None else CarbonConfig()
    environ: Mapping[str, str] = os.environ if env is None else env
    from greenmeter.carbon.settings import from_env, load_config_layers

    steps: list[str] = []
    warnings: list[tuple[str, str]] = []
    env_cfg, env_names = from_env(environ)
    layers = [Layer("explicit", config, "argument"), Layer("env", env_cfg, "environment")]

    cfg_path_raw, cfg_layer = pick(layers, "config_file")
    if cfg_path_raw is not None or config_search:
        file_layers, file_steps, file_warnings = load_config_layers(
            cfg_path_raw,  # type: ignore[arg-type]
            cwd=Path(cwd) if cwd is not None else None,
            env=environ,
            explicit_source=setting(cfg_layer, "config_file", env_names) if cfg_layer else "",
        )
        layers += [Layer("config_file", file_cfg, label) for file_cfg, label in file_layers]
        steps += file_steps
        warnings += file_warnings

    # Cloud region (also sets the default PUE).
    cloud_raw, _ = pick(layers, "cloud")
    cloud: CloudRegion | None = lookup_cloud(str(cloud_raw)) if cloud_raw is not None else None
    provider_fig_raw, _ = pick(layers, "use_provider_figure")
    use_provider = provider_fig_raw is not False  # the provider's own figure by default

    # Grid intensity.
    intensity: IntensityInfo | None = None
    static: StaticIntensity | None = None
    grid_rec: GridRecord | None = None
    for layer in layers:
        c = layer.config
        if c.intensity_g_per_kwh is not None:
            value = c.intensity_g_per_kwh
            ranged = c.intensity_low_g_per_kwh is not None or c.intensity_high_g_per_kwh is not None
            intensity = IntensityInfo(
                value_g_per_kwh=value,
                low_g_per_kwh=c.intensity_low_g_per_kwh,
                high_g_per_kwh=c.intensity_high_g_per_kwh,
                range_note="range given with the intensity" if ranged else None,
                basis="user",
                source=c.intensity_source
                or f"user-supplied ({setting(layer, 'intensity_g_per_kwh', env_names)})",
                licence=None,
                resolved_from=origin(layer, "explicit"),
            )
            static = StaticIntensity(
                value,
                c.intensity_low_g_per_kwh if c.intensity_low_g_per_kwh is not None else value,
                c.intensity_high_g_per_kwh if c.intensity_high_g_per_kwh is not None else value,
            )
            where = setting(layer, "intensity_g_per_kwh", env_names)
            steps.append(f"intensity {value:g} gCO2e/kWh from {where}")
            break
        if c.location is not None:
            grid_rec = lookup(c.location)
            intensity = _grid_intensity(
                grid_rec,
                origin(layer, "location"),
                cloud_region=cloud.key if cloud else None,
            )
            steps.append(
                f"location {c.location!r} from {setting(layer, 'location', env_names)} -> "
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
                    rec, origin(layer, "cloud"), cloud_region=region.key, provider_figure=True
                )
                intensity = intensity.model_copy(update={"location": region.grid.key})
                steps.append(
                    f"cloud {region.key} from {setting(layer, 'cloud', env_names)} -> provider "
                    f"figure {rec.g_per_kwh:g} {rec.unit} ({rec.source}, {rec.year})"
                )
            else:
                if region.grid is None:
                    raise CarbonError(
                        f"the bundled data has no site for {region.key}, only the provider's "
                        "own figure; allow it (use_provider_figure unset or true) or give "
                        "location= for the region's grid"
                    )
                intensity = _grid_intensity(
                    region.grid, origin(layer, "cloud"), cloud_region=region.key
                )
                steps.append(
                    f"cloud {region.key} ({region.city}) from "
                    f"{setting(layer, 'cloud', env_names)} -> grid {_describe(region.grid)}"
                )
            break
    if intensity is None:
        rec = world()
        grid_rec = None
        intensity = _grid_intensity(rec, "default", is_fallback=True)
        intensity = intensity.model_copy(update={"location": None})
        steps.append(f"no intensity, location or cloud given -> world average {_describe(rec)}")
        warnings.append(
            (
                "carbon.default_intensity",
                f"NO GRID LOCATION GIVEN: CO2e uses the world figure {rec.g_per_kwh:g} "
                f"gCO2e/kWh ({rec.source_title}, {rec.year}) as a fallback. Real grids range "
                "from under 50 to over "
                "800 gCO2e/kWh. Set location= (e.g. 'FR', 'US-CA'), cloud= (e.g. "
                "'aws:us-east-1'), GREENMETER_LOCATION, or [tool.greenmeter] location.",
            )
        )
    if grid_rec is not None and not intensity.provider_figure:
        _basis_warning(grid_rec, warnings)
    if static is None:
        low = intensity.low_g_per_kwh
        high = intensity.high_g_per_kwh
        v = intensity.value_g_per_kwh
        static = StaticIntensity(v, v if low is None else low, v if high is None else high)

    # PUE.
    pue_raw, pue_layer = pick(layers, "pue")
    if pue_raw is not None and pue_layer is not None:
        pc = pue_layer.config
        if isinstance(pue_raw, str):
            preset = pue_preset(pue_raw)
            pue_value, p_low, p_high = preset.value, preset.low, preset.high
            pue_source, preset_name = preset.source, preset.name
        else:
            pue_value = float(pue_raw)  # type: ignore[arg-type]
            p_low, p_high = pc.pue_low, pc.pue_high
            pue_source = pc.pue_source or f"user-supplied ({setting(pue_layer, 'pue', env_names)})"
            preset_name = None
        pue_from = origin(pue_layer, "explicit")
        steps.append(f"PUE {pue_value:g} from {setting(pue_layer, 'pue', env_names)}")
    else:
        pue_value, p_low, p_high, preset_name, pue_from = 1.0, None, None, None, "default"
        pue_source = "No PUE given: 1.0 assumed, no facility overhead counted."
        steps.append("PUE 1.0: none given, no facility overhead counted")
        if cloud is not None:
            warnings.append(("carbon.pue_default_datacentre", pue_warning_text(cloud.key)))
    preset_url = pue_preset(str(pue_raw)).url if isinstance(pue_raw, str) else None
    pue_info = PueInfo(
        source_url=preset_url,
        value=pue_value,
        low=p_low,
        high=p_high,
        preset=preset_name,
        source=pue_source,
        resolved_from=pue_from,  # type: ignore[arg-type]
    )

    # Time-varying intensity.
    policy_raw, _ = pick(layers, "series_out_of_range")
    policy = str(policy_raw) if policy_raw is not None else "nearest"
    series: IntensitySeries | None = None
    ts_info: TimeSeriesInfo | None = None
    series_raw, series_layer = pick(layers, "intensity_series")
    live_raw, _ = pick(layers, "live_provider")
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
            + setting(series_layer, "intensity_series", env_names)
            + ")",
            basis=series.basis,  # type: ignore[arg-type]
            zone=series.zone,
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
    refetch = None
    if series_raw is None and live_raw is not None:
        series, ts_info, refetch = _fetch_live(layers, environ, grid_rec, policy, steps, warnings)

    market, factor, share, uncovered = market_settings(layers, env_names)
    embodied, embodied_info = embodied_settings(layers)

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
        uncovered_factor_g_per_kwh=uncovered,
        embodied=embodied,
        warnings=warnings,
        refetch=refetch,
    )


def _fetch_live(
    layers: Sequence[Layer],
    environ: Mapping[str, str],
    grid_rec: GridRecord | None,
    policy: str,
    steps: list[str],
    warnings: list[tuple[str, str]],
) -> tuple[IntensitySeries | None, TimeSeriesInfo | None, Refetch | None]:
    from greenmeter.carbon.live import DEFAULT_BASE_URL, LiveFetchError, fetch_history, fetch_range

    zone_raw, _ = pick(layers, "live_zone")
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
        return None, None, None
    base_raw, _ = pick(layers, "live_base_url")
    base_url = str(base_raw) if base_raw is not None else DEFAULT_BASE_URL
    token_env_raw, _ = pick(layers, "live_token_env")
    token_env = str(token_env_raw) if token_env_raw is not None else DEFAULT_TOKEN_ENV
    timeout_raw, _ = pick(layers, "live_timeout_s")
    timeout_s = float(timeout_raw) if timeout_raw is not None else 5.0  # type: ignore[arg-type]
    token = environ.get(token_env) or None

    def scrub(exc: Exception) -> str:
        message = str(exc)
        return message.replace(token, "***") if token else message

    def info_for(series: IntensitySeries, how: str) -> TimeSeriesInfo:
        return TimeSeriesInfo(
            origin="electricitymaps",
            zone=series.zone or zone,
            points=len(series.times_s),
            start_utc=_dt(series.start_s),
            end_utc=_dt(series.end_s),
            bucket_s=series.step_s,
            out_of_range=policy,  # type: ignore[arg-type]
            source=f"Electricity Maps API, carbon-intensity/{how}, zone {series.zone or zone} "
            f"({base_url})",
            basis=series.basis,  # type: ignore[arg-type]
        )

    def refetch(start_s: float, end_s: float) -> tuple[IntensitySeries, TimeSeriesInfo] | None:
        try:
            got = fetch_range(
                zone, start_s, end_s, token=token, base_url=base_url, timeout_s=timeout_s
            )
        except LiveFetchError as exc:
            warnings_out = f"live intensity for the run's span unavailable ({scrub(exc)})"
            raise RuntimeError(warnings_out) from None
        steps.append(
            f"live provider electricitymaps zone {zone}: {len(got.times_s)} hourly points "
            f"covering {_dt(got.start_s):%Y-%m-%dT%H:%MZ} to {_dt(got.end_s):%Y-%m-%dT%H:%MZ}"
        )
        return got, info_for(got, "past-range")

    try:
        series = fetch_history(zone, token=token, base_url=base_url, timeout_s=timeout_s)
    except LiveFetchError as exc:
        warnings.append(
            (
                "carbon.live_failed",
                f"live intensity unavailable ({scrub(exc)}); the static intensity is used",
            )
        )
        steps.append(f"live provider electricitymaps zone {zone}: failed, static value kept")
        return None, None, None
    steps.append(
        f"live provider electricitymaps zone {zone}: {len(series.times_s)} hourly points "
        f"({'token from ' + token_env if token else 'no token'})"
    )
    return series, info_for(series, "history"), refetch


def pue_warning_text(where: str) -> str:
    """The warning for PUE 1.0 on data-centre-class hardware (``where`` says why)."""
    return (
        f"PUE 1.0 on data-centre-class hardware ({where}): no cooling or power-distribution "
        "overhead is counted, which understates facility energy. Set the facility's published "
        "PUE: pue=<value> with pue_source=<where it is published>, GREENMETER_PUE, --pue, or "
        "[tool.greenmeter.carbon] pue."
    )


def _basis_warning(rec: GridRecord, warnings: list[tuple[str, str]]) -> None:
    """Warn when an area's figure counts differently from its country's."""
    country = parent_of(rec)
    if country is None:
        return
    if country.basis != rec.basis or country.gas != rec.gas:
        warnings.append(
            (
                "carbon.basis_differs",
                f"{rec.key} ({rec.name}) is {rec.basis.replace('_', ' ')}, {rec.gas} "
                f"({rec.source}, {rec.year}) while the country figure for {country.key} is "
                f"{country.basis.replace('_', ' ')}, {country.gas}: compare runs only on the "
                "same basis",
            )
        )
