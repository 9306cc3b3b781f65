"""The bundled grid-intensity dataset: lazy loading and lookups.

The JSON file ``carbon/data/grid_intensity.json`` is read on first use and cached. It is
built by :mod:`greenmeter.carbon.regenerate`; see ``docs/carbon-data.md`` for sources,
years and licences.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from greenmeter.carbon.errors import CarbonError

__all__ = [
    "CloudRegion",
    "GridRecord",
    "dataset",
    "dataset_date",
    "dataset_version",
    "lookup",
    "lookup_cloud",
    "normalize",
    "parent_of",
    "world",
]

_FILE = "grid_intensity.json"


def normalize(text: str) -> str:
    """Lookup key for a location string: lower case, no accents, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\s_]+", " ", ascii_text.strip().lower())


@dataclass(frozen=True)
class GridRecord:
    """One grid intensity figure with its provenance.

    Attributes:
        key: Dataset key ("FRA", "US-CA", "EGRID-CAMX", "CA-QC", ...).
        name: Human name.
        kind: "country", "us_state", "egrid_subregion", "ca_province", "cn_province",
            "bidding_zone", "world" or "cloud_provider".
        g_per_kwh: Intensity, grams CO2e (or CO2, see ``unit``) per kWh.
        unit: "gCO2e/kWh", or "gCO2/kWh" where the source counts CO2 only.
        year: Data year (None where the source does not state it).
        source: Source id; ``source_title``/``source_url`` expand it.
        licence: Licence of the figure.
        basis: "lifecycle", "direct_combustion" or "unknown".
        gas: "CO2e" (CO2, CH4, N2O) or "CO2" (CO2 only), as the source counts.
        scope3_g_per_kwh: The source's separate scope 3 factor, where it gives one
            (never added to ``g_per_kwh``).
        parent: Key of the country an area belongs to ("USA" for "US-CA").
        note: What the source's figure counts, in one or two sentences.
    """

    key: str
    name: str
    kind: str
    g_per_kwh: float
    unit: str
    year: int | None
    source: str
    source_title: str
    source_url: str
    licence: str
    basis: str
    gas: str = "CO2e"
    scope3_g_per_kwh: float | None = None
    parent: str | None = None
    note: str = ""

    def describe_source(self) -> str:
        """One line naming the source, its year and URL."""
        year = f", {self.year}" if self.year is not None else ", year not stated"
        return f"{self.source_title}{year} <{self.source_url}>"


@dataclass(frozen=True)
class CloudRegion:
    """A cloud region, the grid it draws from, and the provider's own figure if any.

    ``grid`` is None where the bundled data knows the provider's figure but not the
    site (then only the provider's figure, or an explicit location, can be used).
    """

    key: str
    city: str
    grid: GridRecord | None
    provider_figure: GridRecord | None
    location_source: str = ""


@lru_cache(maxsize=1)
def dataset() -> dict[str, Any]:
    """The parsed dataset (read once, cached)."""
    text = resources.files("greenmeter.carbon").joinpath("data", _FILE).read_text("utf-8")
    data = json.loads(text)
    if data.get("format") != 2:
        raise CarbonError(f"unsupported carbon dataset format {data.get('format')!r}")
    return data


def dataset_version() -> str:
    """Version string of the bundled dataset."""
    return str(dataset()["version"])


def dataset_date() -> str:
    """ISO date the bundled dataset was built."""
    return str(dataset()["date"])


def _record(key: str, raw: dict[str, Any]) -> GridRecord:
    src = dataset()["sources"].get(raw["source"], {})
    return GridRecord(
        key=key,
        name=raw["name"],
        kind=raw["kind"],
        g_per_kwh=float(raw["g_per_kwh"]),
        unit=raw.get("unit", "gCO2e/kWh"),
        year=raw.get("year"),
        source=raw["source"],
        source_title=src.get("title", raw["source"]),
        source_url=src.get("url", ""),
        licence=raw.get("licence", src.get("licence_short", "unknown")),
        basis=raw.get("basis", "unknown"),
        gas=raw.get("gas", "CO2e"),
        scope3_g_per_kwh=raw.get("scope3_g_per_kwh"),
        parent=raw.get("parent"),
        note=src.get("note", ""),
    )


def world() -> GridRecord:
    """The bundled world figure (Ember's own World row, with its own year)."""
    return _record("WORLD", dataset()["world"])


def close_matches(text: str, candidates: list[str], n: int = 5) -> list[str]:
    """Close spellings of ``text`` among ``candidates`` (difflib)."""
    return difflib.get_close_matches(text, candidates, n=n, cutoff=0.6)


def lookup(location: str) -> GridRecord:
    """Grid intensity for a country, state, province, subregion or bidding zone.

    Accepts ISO 3166 alpha-2 or alpha-3 codes, names (case- and accent-insensitive,
    common aliases such as "UK", "USA", "South Korea"), ``US-CA`` / ``California`` /
    ``"Georgia, US"`` for US states, eGRID subregion acronyms (``CAMX``,
    ``eGRID:CAMX``), ``CA-QC`` / ``Quebec`` for Canadian provinces, ``CN-BJ`` for Chinese
    provinces and ``SE3`` / ``NO1`` for Nordic bidding zones.

    Raises:
        CarbonError: unknown location; the message lists close matches.
    """
    data = dataset()
    if not isinstance(location, str) or not location.strip():
        raise CarbonError("location must be a non-empty string such as 'FR', 'DEU', 'US-CA'")
    norm = normalize(location)
    if norm in ("world", "global", "earth"):
        return world()
    key = data["aliases"].get(norm)
    if key is None:
        from greenmeter.carbon.suggest import rank_locations

        ranked = rank_locations(norm, data["aliases"], data["locations"])
        shown = [_display(data, key) for key in ranked]
        hint = f" Did you mean: {', '.join(shown)}?" if shown else ""
        raise CarbonError(
            f"unknown location {location!r}.{hint} Use an ISO 3166 code or name ('FR', "
            "'FRA', 'France'), a US state ('US-CA'), an eGRID subregion ('CAMX'), a "
            "Canadian province ('CA-QC'), or give intensity_g_per_kwh explicitly."
        )
    return _record(key, data["locations"][key])


def _display(data: dict[str, Any], key: str) -> str:
    return f"{key} ({data['locations'][key]['name']})"


def lookup_cloud(cloud: str) -> CloudRegion:
    """Grid location (and provider figure) of a cloud region, e.g. ``"gcp:europe-west1"``.

    Raises:
        CarbonError: unknown provider or region; the message lists close matches.
    """
    data = dataset()
    text = cloud.strip().lower() if isinstance(cloud, str) else ""
    provider, sep, region = text.partition(":")
    if not sep or not provider or not region:
        raise CarbonError(
            f"cloud region {cloud!r} must look like 'aws:us-east-1', 'gcp:europe-west1' "
            "or 'azure:westeurope'"
        )
    provider = {"google": "gcp", "amazon": "aws", "microsoft": "azure"}.get(provider, provider)
    key = f"{provider}:{region.replace(' ', '')}"
    item = data["cloud"].get(key)
    if item is None:
        providers = sorted({k.split(":", 1)[0] for k in data["cloud"]})
        if provider not in providers:
            raise CarbonError(
                f"unknown cloud provider {provider!r} in {cloud!r}; known: "
                f"{', '.join(providers)}. Or give location= for the region's grid."
            )
        suggestions = close_matches(key, list(data["cloud"]))
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise CarbonError(
            f"unknown cloud region {cloud!r}.{hint} If the region is new, give "
            "location= for its grid (e.g. location='US-VA')."
        )
    grid_key = item.get("location")
    grid = _record(grid_key, data["locations"][grid_key]) if grid_key else None
    prov = item.get("provider")
    return CloudRegion(
        key=key,
        city=item.get("site", ""),
        grid=grid,
        provider_figure=_record(key, prov) if prov else None,
        location_source=item.get("location_source", ""),
    )


def parent_of(rec: GridRecord) -> GridRecord | None:
    """The country record an area belongs to (None for a country or when not bundled)."""
    if not rec.parent:
        return None
    raw = dataset()["locations"].get(rec.parent)
    return _record(rec.parent, raw) if raw else None
