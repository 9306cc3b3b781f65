"""Sourced constants: PUE presets and embodied-emission defaults.

Figures a reader cannot re-derive from the bundled dataset live here, each with its
source. A PUE preset exists only where a reader can open its source (``url``); cloud
providers' fleet figures are not presets: give the figure your provider publishes.

Embodied emissions are counted once per host for the server (``"server"``) and once per
GPU board (``"gpu"``), over the run's wall time.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenmeter.carbon.errors import CarbonError

__all__ = [
    "EMBODIED_COUNTED_PER",
    "EMBODIED_DEFAULTS",
    "PUE_PRESETS",
    "EmbodiedDefault",
    "PuePreset",
    "pue_preset",
]


@dataclass(frozen=True)
class PuePreset:
    """A named power usage effectiveness (facility energy / IT energy)."""

    name: str
    value: float
    source: str
    low: float | None = None
    high: float | None = None
    url: str | None = None


PUE_PRESETS: dict[str, PuePreset] = {
    p.name: p
    for p in (
        PuePreset(
            "workstation",
            1.0,
            "No facility overhead counted: a desktop or laptop in an office or home.",
        ),
        PuePreset(
            "uptime-2024",
            1.56,
            "Uptime Institute Global Data Center Survey 2024: average annual PUE 1.56 "
            "reported by surveyed operators for their largest data centre.",
            url="https://uptimeinstitute.com/resources/research-and-reports",
        ),
    )
}

_PRESET_ALIASES = {
    "uptime": "uptime-2024",
    "datacenter-average": "uptime-2024",
    "laptop": "workstation",
    "desktop": "workstation",
}


def pue_preset(name: str) -> PuePreset:
    """The preset called ``name`` (case-insensitive; a few aliases)."""
    norm = name.strip().lower()
    norm = _PRESET_ALIASES.get(norm, norm)
    preset = PUE_PRESETS.get(norm)
    if preset is None:
        known = ", ".join(sorted(PUE_PRESETS))
        raise CarbonError(
            f"unknown PUE preset {name!r}; known presets: {known}. Or give a number >= 1.0, "
            "e.g. the PUE your provider or data centre publishes, with pue_source."
        )
    return preset


@dataclass(frozen=True)
class EmbodiedDefault:
    """Manufacturing emissions of one device kind, amortised over a lifetime."""

    kind: str
    manufacturing_kgco2e: float
    lifetime_h: float
    source: str

    @property
    def per_device_hour_g(self) -> float:
        """Grams CO2e charged per device-hour."""
        return self.manufacturing_kgco2e * 1000.0 / self.lifetime_h


_SIX_YEARS_H = 6 * 365 * 24.0
_BLOOM = (
    "Luccioni, Viguier & Ligozat, 'Estimating the Carbon Footprint of BLOOM, a 176B "
    "Parameter Language Model', JMLR 24(253), 2023"
)

#: Embodied kinds and what one device-hour of each is counted per.
EMBODIED_COUNTED_PER: dict[str, str] = {"server": "host", "gpu": "board"}

EMBODIED_DEFAULTS: dict[str, EmbodiedDefault] = {
    "gpu": EmbodiedDefault(
        "gpu",
        150.0,
        _SIX_YEARS_H,
        f"{_BLOOM}: about 150 kgCO2e per data-centre GPU (A100 class), amortised here over "
        "6 years; charged once per GPU board.",
    ),
    "server": EmbodiedDefault(
        "server",
        2500.0,
        _SIX_YEARS_H,
        f"{_BLOOM}: about 2500 kgCO2e for a GPU server without its GPUs (HPE Apollo 6500 "
        "Gen10 Plus), amortised here over 6 years; charged once per host, however many "
        "CPU sockets it has.",
    ),
}
