"""User input for carbon accounting: :class:`CarbonConfig`.

Every field is optional; what is left unset may come from environment variables or a
config file (see :func:`greenmeter.carbon.resolve`). Values are checked when the config
is built, so a typo fails at once with a message naming the fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from greenmeter.carbon.errors import CarbonError

__all__ = ["EMBODIED_KEYS", "LIVE_PROVIDERS", "OUT_OF_RANGE_POLICIES", "CarbonConfig"]

LIVE_PROVIDERS = ("electricitymaps",)
OUT_OF_RANGE_POLICIES = ("nearest", "static")
EMBODIED_KEYS = ("kgco2e", "lifetime_h", "source")

#: (kind, manufacturing kgCO2e, lifetime hours, source)
EmbodiedItem = tuple[str, float, float, str]


def _number(name: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CarbonError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise CarbonError(f"{name} must be finite, got {value!r}")
    if minimum is not None and out < minimum:
        raise CarbonError(f"{name} must be >= {minimum:g}, got {out:g}")
    return out


def _optional_number(name: str, value: Any, *, minimum: float | None = None) -> float | None:
    return None if value is None else _number(name, value, minimum=minimum)


def _normalize_embodied(value: Any) -> bool | tuple[EmbodiedItem, ...] | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 4 for v in value):
        items = value
    elif isinstance(value, Mapping):
        items_list: list[EmbodiedItem] = []
        for kind, spec in value.items():
            if not isinstance(kind, str) or not kind:
                raise CarbonError(f"embodied keys must be device kinds like 'gpu', got {kind!r}")
            source = "user-supplied"
            if isinstance(spec, Mapping):
                unknown = set(spec) - set(EMBODIED_KEYS)
                if unknown:
                    raise CarbonError(
                        f"embodied[{kind!r}] has unknown keys {sorted(unknown)}; "
                        f"use {', '.join(EMBODIED_KEYS)}"
                    )
                if "kgco2e" not in spec or "lifetime_h" not in spec:
                    raise CarbonError(
                        f"embodied[{kind!r}] needs 'kgco2e' (manufacturing, kg CO2e) and "
                        "'lifetime_h' (hours of service)"
                    )
                kg, hours = spec["kgco2e"], spec["lifetime_h"]
                source = str(spec.get("source", source))
            elif isinstance(spec, (tuple, list)) and len(spec) == 2:
                kg, hours = spec
            else:
                raise CarbonError(
                    f"embodied[{kind!r}] must be {{'kgco2e': ..., 'lifetime_h': ...}} "
                    f"or (kgco2e, lifetime_h), got {spec!r}"
                )
            kg_f = _number(f"embodied[{kind!r}].kgco2e", kg, minimum=0.0)
            hours_f = _number(f"embodied[{kind!r}].lifetime_h", hours)
            if hours_f <= 0:
                raise CarbonError(f"embodied[{kind!r}].lifetime_h must be > 0, got {hours_f:g}")
            items_list.append((kind, kg_f, hours_f, source))
        items = tuple(sorted(items_list))
    else:
        raise CarbonError(
            "embodied must be True (sourced defaults), False/None, or a mapping "
            "{kind: {'kgco2e': ..., 'lifetime_h': ...}}"
        )
    return items


@dataclass(frozen=True)
class CarbonConfig:
    """What the user says about the grid, the facility and optional extra figures.

    Attributes:
        intensity_g_per_kwh: Explicit grid intensity, gCO2e/kWh (wins over everything).
        intensity_low_g_per_kwh / intensity_high_g_per_kwh: Optional range around it.
        intensity_source: Free text naming where the explicit figure comes from.
        location: Country code or name, US state ("US-CA"), eGRID subregion ("CAMX"),
            Canadian province ("CA-QC"), Chinese province ("CN-BJ"), Nordic zone ("SE3").
        cloud: Cloud region, "aws:us-east-1", "gcp:europe-west1", "azure:westeurope".
        use_provider_figure: Use the provider's own published figure for the region
            (where one exists, e.g. Google Cloud) instead of the grid's.
        pue: Power usage effectiveness (>= 1.0) or a preset name ("workstation",
            "uptime-2024", "gcp", "aws", "azure"). Facility energy = IT energy x PUE.
        pue_source / pue_low / pue_high: Source text and range for a numeric PUE.
        intensity_series: CSV or JSON time series of intensity (see
            :mod:`greenmeter.carbon.series`).
        series_out_of_range: Energy outside the series' time range uses the
            "nearest" point's value (default) or the "static" value; both warn.
        live_provider: "electricitymaps" to fetch the zone's recent hourly intensity;
            None (default) never touches the network.
        live_zone: Provider zone (defaults to the location's ISO alpha-2 code).
        live_base_url: API base URL (default ``https://api.electricitymap.org/v3``);
            ``https://`` only, or ``http://`` to a loopback address (tests). Never read
            from a config file.
        live_token_env: Name of the environment variable holding the API token
            (default ``ELECTRICITYMAPS_TOKEN``). Only from code, never from a config file.
        live_timeout_s: Deadline for the whole live request, seconds (default 5).
        market_factor_g_per_kwh: Market-based factor (supplier or residual mix),
            reported separately.
        renewable_share: Contracted renewable share 0..1, counted at 0 gCO2e/kWh in the
            market-based figure (reported separately).
        residual_mix_g_per_kwh: Residual-mix factor, gCO2e/kWh, for the share not covered
            by contracts (e.g. the AIB European Residual Mix of the country); without it
            that share is charged at the location-based figure, disclosed in the report.
        embodied: True for sourced defaults per device kind, or
            ``{"gpu": {"kgco2e": 150, "lifetime_h": 52560}}``; reported separately.
        config_file: Read this pyproject.toml / greenmeter.toml instead of searching.
    """

    intensity_g_per_kwh: float | None = None
    intensity_low_g_per_kwh: float | None = None
    intensity_high_g_per_kwh: float | None = None
    intensity_source: str | None = None
    location: str | None = None
    cloud: str | None = None
    use_provider_figure: bool | None = None
    pue: float | str | None = None
    pue_source: str | None = None
    pue_low: float | None = None
    pue_high: float | None = None
    intensity_series: str | os.PathLike[str] | None = None
    series_out_of_range: str | None = None
    live_provider: str | None = None
    live_zone: str | None = None
    live_base_url: str | None = None
    live_token_env: str | None = None
    live_timeout_s: float | None = None
    market_factor_g_per_kwh: float | None = None
    renewable_share: float | None = None
    residual_mix_g_per_kwh: float | None = None
    embodied: bool | Mapping[str, Any] | tuple[EmbodiedItem, ...] | None = None
    config_file: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        value = _optional_number("intensity_g_per_kwh", self.intensity_g_per_kwh)
        if value is not None and value < 0:
            raise CarbonError(
                f"intensity_g_per_kwh must be >= 0 gCO2e/kWh, got {value:g}; grid "
                "intensity is never negative (for contracts use renewable_share)"
            )
        low = _optional_number("intensity_low_g_per_kwh", self.intensity_low_g_per_kwh, minimum=0)
        high = _optional_number(
            "intensity_high_g_per_kwh", self.intensity_high_g_per_kwh, minimum=0
        )
        if (low is not None or high is not None) and value is None:
            raise CarbonError(
                "intensity_low/high_g_per_kwh need intensity_g_per_kwh (the central value)"
            )
        if value is not None and low is not None and low > value:
            raise CarbonError(f"intensity_low_g_per_kwh {low:g} is above the value {value:g}")
        if value is not None and high is not None and high < value:
            raise CarbonError(f"intensity_high_g_per_kwh {high:g} is below the value {value:g}")
        object.__setattr__(self, "intensity_g_per_kwh", value)
        object.__setattr__(self, "intensity_low_g_per_kwh", low)
        object.__setattr__(self, "intensity_high_g_per_kwh", high)

        for name in ("intensity_source", "pue_source", "live_zone", "live_token_env"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise CarbonError(f"{name} must be a non-empty string, got {v!r}")
        if self.live_base_url is not None:
            from greenmeter.carbon.live import check_base_url

            check_base_url(self.live_base_url)

        if self.location is not None:
            from greenmeter.carbon.dataset import lookup

            if not isinstance(self.location, str):
                raise CarbonError(f"location must be a string, got {self.location!r}")
            lookup(self.location)
        if self.cloud is not None:
            from greenmeter.carbon.dataset import lookup_cloud

            if not isinstance(self.cloud, str):
                raise CarbonError(
                    f"cloud must be a string like 'aws:us-east-1', got {self.cloud!r}"
                )
            lookup_cloud(self.cloud)
        if self.use_provider_figure is not None and not isinstance(self.use_provider_figure, bool):
            raise CarbonError(
                f"use_provider_figure must be True or False, got {self.use_provider_figure!r}"
            )

        if isinstance(self.pue, str):
            from greenmeter.carbon.constants import pue_preset

            pue_preset(self.pue)
            if self.pue_low is not None or self.pue_high is not None:
                raise CarbonError("pue_low/pue_high apply to a numeric pue, not to a preset")
        elif self.pue is not None:
            pue = _number("pue", self.pue)
            if pue < 1.0:
                raise CarbonError(
                    f"pue must be >= 1.0 (facility energy / IT energy), got {pue:g}; use "
                    "1.0 when no facility overhead applies"
                )
            object.__setattr__(self, "pue", pue)
        for name in ("pue_low", "pue_high"):
            v = _optional_number(name, getattr(self, name))
            if v is not None and v < 1.0:
                raise CarbonError(f"{name} must be >= 1.0, got {v:g}")
            object.__setattr__(self, name, v)
        if (self.pue_low is not None or self.pue_high is not None) and self.pue is None:
            raise CarbonError("pue_low/pue_high need pue (the central value)")
        if isinstance(self.pue, float):
            if self.pue_low is not None and self.pue_low > self.pue:
                raise CarbonError(f"pue_low {self.pue_low:g} is above pue {self.pue:g}")
            if self.pue_high is not None and self.pue_high < self.pue:
                raise CarbonError(f"pue_high {self.pue_high:g} is below pue {self.pue:g}")

        if self.intensity_series is not None and not isinstance(
            self.intensity_series, (str, os.PathLike)
        ):
            raise CarbonError(
                f"intensity_series must be a file path, got {self.intensity_series!r}"
            )
        if self.series_out_of_range is not None and (
            self.series_out_of_range not in OUT_OF_RANGE_POLICIES
        ):
            raise CarbonError(
                f"series_out_of_range must be one of {OUT_OF_RANGE_POLICIES}, "
                f"got {self.series_out_of_range!r}"
            )
        if self.live_provider is not None:
            if not isinstance(self.live_provider, str):
                raise CarbonError(f"live_provider must be a string, got {self.live_provider!r}")
            norm = self.live_provider.strip().lower().replace(" ", "").replace("_", "")
            if norm not in LIVE_PROVIDERS:
                raise CarbonError(
                    f"live_provider must be one of {LIVE_PROVIDERS} or None, "
                    f"got {self.live_provider!r}"
                )
            object.__setattr__(self, "live_provider", norm)
        timeout = _optional_number("live_timeout_s", self.live_timeout_s)
        if timeout is not None and not 0 < timeout <= 120:
            raise CarbonError(f"live_timeout_s must be in (0, 120] seconds, got {timeout:g}")
        object.__setattr__(self, "live_timeout_s", timeout)

        factor = _optional_number("market_factor_g_per_kwh", self.market_factor_g_per_kwh)
        if factor is not None and factor < 0:
            raise CarbonError(f"market_factor_g_per_kwh must be >= 0, got {factor:g}")
        share = _optional_number("renewable_share", self.renewable_share)
        if share is not None and not 0.0 <= share <= 1.0:
            raise CarbonError(
                f"renewable_share must be a fraction in [0, 1], got {share:g} "
                "(0.6 means 60 % of the energy is covered by a renewable contract)"
            )
        if factor is not None and share is not None:
            raise CarbonError(
                "give either market_factor_g_per_kwh or renewable_share, not both: they are "
                "two ways of stating the same market-based figure"
            )
        object.__setattr__(self, "market_factor_g_per_kwh", factor)
        object.__setattr__(self, "renewable_share", share)
        object.__setattr__(self, "embodied", _normalize_embodied(self.embodied))
        self._check_residual_mix()

        if self.config_file is not None and not isinstance(self.config_file, (str, os.PathLike)):
            raise CarbonError(f"config_file must be a path, got {self.config_file!r}")

    def _check_residual_mix(self) -> None:
        value = _optional_number("residual_mix_g_per_kwh", self.residual_mix_g_per_kwh, minimum=0.0)
        if value is not None and self.market_factor_g_per_kwh is not None:
            raise CarbonError(
                "residual_mix_g_per_kwh applies with renewable_share, not with "
                "market_factor_g_per_kwh (which already is the whole market-based factor)"
            )
        object.__setattr__(self, "residual_mix_g_per_kwh", value)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all settings (also the keys accepted in config files)."""
        return tuple(f.name for f in fields(cls))

    def given(self) -> dict[str, Any]:
        """The settings that are set (not None)."""
        return {n: getattr(self, n) for n in self.field_names() if getattr(self, n) is not None}
