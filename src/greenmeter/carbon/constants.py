"""Sourced constants: PUE presets and embodied-emission defaults.

Figures a reader cannot re-derive from the bundled dataset live here, each with its
source. Where a figure could not be checked against its primary document when this file
was written, the source string says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenmeter.carbon.errors import CarbonError

__all__ = [
    "EMBODIED_DEFAULTS",
    "PUE_PRESETS",
    "EmbodiedDefault",
    "PuePreset",
    "cloud_pue_preset",
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


PUE_PRESETS: dict[str, PuePreset] = {
    p.name: p
    for p in (
        PuePreset(
            "workstation",
            1.0,
            "No facility overhead counted: a desktop or laptop in an office or home "
            "(greenmeter's default outside the cloud).",
        ),
        PuePreset(
            "uptime-2024",
            1.56,
            "Uptime Institute Global Data Center Survey 2024: industry-average annual "
            "PUE 1.56 (self-reported by surveyed operators).",
        ),
        PuePreset(
            "gcp",
            1.10,
            "Google, 2024 Environmental Report: trailing-twelve-month fleet-wide PUE of "
            "1.10 for its data centres in 2023 (value not re-verified offline).",
        ),
        PuePreset(
            "aws",
            1.15,
            "Amazon, 2023 Amazon Sustainability Report: global AWS data-centre PUE of 1.15 "
            "for 2023 (value not re-verified offline).",
        ),
        PuePreset(
            "azure",
            1.18,
            "Microsoft data-centre sustainability fact sheets: fleet-average PUE of about "
            "1.18 for FY2022, new designs 1.12 (value not re-verified offline).",
            low=1.12,
            high=1.18,
        ),
    )
}

_PRESET_ALIASES = {
    "google": "gcp",
    "google-fleet": "gcp",
    "gcp-fleet": "gcp",
    "amazon": "aws",
    "aws-fleet": "aws",
    "microsoft": "azure",
    "azure-fleet": "azure",
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
            f"unknown PUE preset {name!r}; known presets: {known}. Or give a number >= 1.0."
        )
    return preset


def cloud_pue_preset(provider: str) -> PuePreset:
    """Fleet PUE preset of a cloud provider ("aws", "gcp", "azure")."""
    return pue_preset(provider)


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

EMBODIED_DEFAULTS: dict[str, EmbodiedDefault] = {
    "gpu": EmbodiedDefault(
        "gpu",
        150.0,
        _SIX_YEARS_H,
        "Luccioni, Viguier & Ligozat, 'Estimating the Carbon Footprint of BLOOM' "
        "(JMLR 2023): about 150 kgCO2e per data-centre GPU (A100 class), amortised over "
        "a 6-year lifetime; value not re-verified offline.",
    ),
    "cpu": EmbodiedDefault(
        "cpu",
        2500.0,
        _SIX_YEARS_H,
        "Same study: about 2500 kgCO2e for the rest of a GPU server (HPE Apollo 6500 "
        "Gen10 Plus LCA, GPUs excluded), 6-year lifetime, charged per 'cpu' device-hour: "
        "count one 'cpu' hour per host-hour; value not re-verified offline.",
    ),
}
