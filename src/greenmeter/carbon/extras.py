"""Market-based and embodied settings, reported beside operational emissions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from greenmeter.carbon.constants import EMBODIED_COUNTED_PER, EMBODIED_DEFAULTS, EmbodiedDefault
from greenmeter.carbon.layers import Layer, pick, setting
from greenmeter.carbon.models import EmbodiedDeviceInfo, EmbodiedInfo, MarketInfo

__all__ = ["embodied_settings", "market_settings"]


def market_settings(
    layers: Sequence[Layer], env_names: Mapping[str, str]
) -> tuple[MarketInfo | None, float | None, float | None, float | None]:
    """Market-based settings: (info, factor, renewable share, factor for the uncovered share)."""
    for layer in layers:
        c = layer.config
        if c.market_factor_g_per_kwh is not None:
            factor = c.market_factor_g_per_kwh
            return (
                MarketInfo(
                    method="factor",
                    factor_g_per_kwh=factor,
                    note=(
                        f"Market-based: facility energy x {factor:g} gCO2e/kWh "
                        f"({setting(layer, 'market_factor_g_per_kwh', env_names)}); reported "
                        "beside the location-based figure, not netted from it."
                    ),
                ),
                factor,
                None,
                None,
            )
        if c.renewable_share is not None:
            share = c.renewable_share
            residual, _ = pick(layers, "residual_mix_g_per_kwh")
            where = setting(layer, "renewable_share", env_names)
            if residual is not None:
                r = float(residual)  # type: ignore[arg-type]
                note = (
                    f"Market-based: the contracted renewable share {share:g} at 0 gCO2e/kWh and "
                    f"the rest at the residual mix {r:g} gCO2e/kWh ({where}); reported beside the "
                    "location-based figure, not netted from it."
                )
                disclosure = None
                basis = "residual_mix"
            else:
                r = None
                basis = "location_average"
                disclosure = (
                    "No residual-mix factor was given, so the share not covered by contracts "
                    "is charged at the location-based average; the GHG Protocol Scope 2 "
                    "Guidance asks for the residual mix there, which is usually higher. Give "
                    "residual_mix_g_per_kwh to use it."
                )
                note = (
                    f"Market-based: location-based figure x (1 - {share:g}), the contracted "
                    f"share at 0 gCO2e/kWh ({where}). {disclosure}"
                )
            return (
                MarketInfo(
                    method="renewable_share",
                    renewable_share=share,
                    uncovered_factor_g_per_kwh=r,
                    uncovered_basis=basis,  # type: ignore[arg-type]
                    disclosure=disclosure,
                    note=note,
                ),
                None,
                share,
                r,
            )
    return None, None, None, None


def embodied_settings(
    layers: Sequence[Layer],
) -> tuple[dict[str, EmbodiedDefault] | None, EmbodiedInfo | None]:
    """Embodied settings; a user kind 'cpu' means the server, counted once per host."""
    embodied_raw, _ = pick(layers, "embodied")
    embodied: dict[str, EmbodiedDefault] | None = None
    if embodied_raw is True:
        embodied = dict(EMBODIED_DEFAULTS)
    elif isinstance(embodied_raw, tuple):
        embodied = {}
        for kind, kg, hours, source in embodied_raw:
            name = "server" if kind == "cpu" else kind
            embodied[name] = EmbodiedDefault(name, kg, hours, source)
    if embodied is None:
        return None, None
    per = {"host": "host", "board": "board"}
    info = EmbodiedInfo(
        devices=[
            EmbodiedDeviceInfo(
                kind=d.kind,
                manufacturing_kgco2e=d.manufacturing_kgco2e,
                lifetime_h=d.lifetime_h,
                per_device_hour_g=d.per_device_hour_g,
                counted_per=per.get(EMBODIED_COUNTED_PER.get(d.kind, ""), "device"),  # type: ignore[arg-type]
                source=d.source,
            )
            for d in embodied.values()
        ],
        note=(
            "Manufacturing emissions amortised linearly over the stated lifetime and charged "
            "over the run's wall time: the server once per host, each GPU once per board; "
            "reported separately from operational emissions."
        ),
    )
    return embodied, info
