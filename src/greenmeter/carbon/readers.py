"""Readers for the raw carbon source files: one function per file, each returning entries.

Used only by :mod:`greenmeter.carbon.regenerate`; greenmeter never reads the raw files
at run time. Every reader checks the units and fields it relies on and stops with a
message naming the file when they are not what it expects.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from greenmeter.carbon.source_meta import SOURCES, US_STATES

__all__ = [
    "LB_PER_MWH_TO_G_PER_KWH",
    "Entry",
    "australia",
    "china",
    "cloud_sites",
    "em_zones",
    "ember",
    "google_regions",
    "iso3166",
    "us_states",
    "us_subregions",
]

#: 1 lb/MWh = 453.59237 g / 1000 kWh.
LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0

#: (dataset key, entry, aliases)
Entry = tuple[str, dict[str, Any], list[str]]


def _fail(path: Path, message: str) -> SystemExit:
    return SystemExit(f"regenerate: {path.name}: {message}")


def read_json(path: Path) -> Any:
    """Parse a JSON source file (a missing file stops the build with its name)."""
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"regenerate: missing source file {path}") from None


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV source file; lines starting with ``#`` are provenance comments."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            lines = [line for line in f if not line.startswith("#")]
    except FileNotFoundError:
        raise SystemExit(f"regenerate: missing source file {path}") from None
    return [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(lines)]


def entry(
    name: str,
    kind: str,
    value_g: float,
    year: int | None,
    source: str,
    **extra: Any,
) -> dict[str, Any]:
    """One dataset value with the provenance fields of its source."""
    src = SOURCES[source]
    out: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "g_per_kwh": round(value_g, 3),
        "unit": "gCO2/kWh" if src["gas"] == "CO2" else "gCO2e/kWh",
        "gas": src["gas"],
        "year": year,
        "source": source,
        "licence": src["licence_short"],
        "basis": src["basis"],
    }
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def iso3166(path: Path) -> dict[str, dict[str, str]]:
    """ISO 3166 rows by alpha-3."""
    return {row["alpha3"]: row for row in read_csv(path)}


def ember(path: Path, iso: dict[str, dict[str, str]]) -> tuple[list[Entry], dict[str, Any]]:
    """Country entries and the world entry from Ember's yearly data (newest year each)."""
    data = read_json(path)
    out: list[Entry] = []
    world: dict[str, Any] | None = None
    for key, row in sorted(data.items()):
        value = row.get("emissions_intensity_gco2_per_kwh")
        year = row.get("year")
        if value is None or not isinstance(year, int):
            continue
        if key == "World":
            world = entry("World", "world", float(value), year, "ember-world")
            continue
        code = row.get("country_code") or ""
        if len(code) != 3 or code != key:
            continue  # Ember's regional aggregates (EU, G7, Asia...)
        name = row.get("country_or_region") or iso.get(code, {}).get("name") or code
        iso_row = iso.get(code)
        e = entry(name, "country", float(value), year, "ember-yearly")
        aliases = [code, name]
        if iso_row:
            e["alpha2"] = iso_row["alpha2"]
            aliases += [
                iso_row["alpha2"],
                iso_row["name"],
                iso_row["common_name"],
                iso_row["official_name"],
            ]
        out.append((code, e, aliases))
    if world is None:
        raise _fail(path, "no World row")
    return out, world


def us_states(path: Path) -> list[Entry]:
    """US states and DC from the eGRID2023 state rates (lb CO2e/MWh)."""
    data = read_json(path)
    meta = data.get("_source", {})
    unit = str(data.get("_unit", {}).get("emissions", "")).replace(" ", "").lower()
    if unit not in {"lbs/mwh", "lb/mwh"} or meta.get("field") != "STC2ERTA":
        raise _fail(path, f"expected STC2ERTA in lb/MWh, got {meta.get('field')!r} {unit!r}")
    by_code = {v["regionCode"]: v for k, v in data.items() if not k.startswith("_")}
    out: list[Entry] = []
    for code, name in sorted(US_STATES.items()):
        lb = float(by_code[code]["emissions"])
        key = f"US-{code}"
        e = entry(
            name,
            "us_state",
            lb * LB_PER_MWH_TO_G_PER_KWH,
            int(meta["year"]),
            "epa-egrid2023-state",
            parent="USA",
            original=f"{lb} lb/MWh",
        )
        out.append((key, e, [key, f"US:{code}", f"{name}, US", f"{name}, USA", name]))
    return out


_SUBREGION_NAMES = {
    "AKGD": "ASCC Alaska Grid", "AKMS": "ASCC Miscellaneous", "AZNM": "WECC Southwest",
    "CAMX": "WECC California", "ERCT": "ERCOT All", "FRCC": "FRCC All",
    "HIMS": "HICC Miscellaneous", "HIOA": "HICC Oahu", "MROE": "MRO East",
    "MROW": "MRO West", "NEWE": "NPCC New England", "NWPP": "WECC Northwest",
    "NYCW": "NPCC NYC/Westchester", "NYLI": "NPCC Long Island", "NYUP": "NPCC Upstate NY",
    "PRMS": "Puerto Rico Miscellaneous", "RFCE": "RFC East", "RFCM": "RFC Michigan",
    "RFCW": "RFC West", "RMPA": "WECC Rockies", "SPNO": "SPP North", "SPSO": "SPP South",
    "SRMV": "SERC Mississippi Valley", "SRMW": "SERC Midwest", "SRSO": "SERC South",
    "SRTV": "SERC Tennessee Valley", "SRVC": "SERC Virginia/Carolina",
}  # fmt: skip


def us_subregions(path: Path) -> list[Entry]:
    """eGRID2022 subregions (lb CO2/MWh, total output)."""
    out: list[Entry] = []
    for row in read_csv(path):
        sub = row.get("Region", "").upper()
        rate_col = next((k for k in row if "emission rate (lb/MWh)" in k), None)
        if rate_col is None or "CO2 total output" not in rate_col:
            raise _fail(path, "expected a 'CO2 total output emission rate (lb/MWh)' column")
        if sub == "US":
            continue
        if row.get("Year") != "2022":
            raise _fail(path, f"row {sub} is not year 2022")
        lb = float(row[rate_col])
        key = f"EGRID-{sub}"
        name = _SUBREGION_NAMES.get(sub, sub)
        e = entry(
            f"eGRID {sub} ({name})",
            "egrid_subregion",
            lb * LB_PER_MWH_TO_G_PER_KWH,
            2022,
            "epa-egrid2022-subregion",
            parent="USA",
            original=f"{lb} lb/MWh",
        )
        out.append((key, e, [key, sub, f"eGRID:{sub}", f"eGRID {sub}", f"US-{sub}"]))
    return out


def australia(path: Path) -> list[Entry]:
    """Australian states and territories (NGA Factors 2024, scope 2; scope 3 beside it)."""
    out: list[Entry] = []
    for row in read_csv(path):
        code = row["code"].upper()
        scope2 = float(row["scope2_kg_per_kwh"])
        scope3 = float(row["scope3_kg_per_kwh"])
        key = f"AU-{code}"
        e = entry(
            row["name"],
            "au_state",
            scope2 * 1000.0,
            2024,
            "dcceew-nga-2024",
            parent="AUS",
            scope3_g_per_kwh=round(scope3 * 1000.0, 3),
            original=f"scope 2 {scope2} kg/kWh, scope 3 {scope3} kg/kWh",
        )
        aliases = [key, f"AU:{code}", f"{row['name']}, Australia", f"{row['name']}, AU"]
        if code != "WA-NWIS":
            aliases.append(row["name"])
        out.append((key, e, aliases))
    return out


#: Electricity Maps zones bundled as sub-national grids, by prefix -> (kind, parent).
EM_ZONE_KINDS = {"CA-": ("ca_province", "CAN"), "SE-": ("bidding_zone", "SWE"),
                 "NO-": ("bidding_zone", "NOR")}  # fmt: skip


def em_zones(path: Path) -> list[Entry]:
    """Canadian provinces and Swedish/Norwegian bidding zones from Electricity Maps 2024."""
    data = read_json(path)
    out: list[Entry] = []
    for zone, row in sorted(data.items()):
        kind = next((v for p, v in EM_ZONE_KINDS.items() if zone.startswith(p)), None)
        if kind is None:
            continue
        ci = row.get("carbonIntensity", {})
        if ci.get("unit") != "gCO2eq/kWh" or ci.get("value") is None:
            raise _fail(path, f"zone {zone}: expected carbonIntensity in gCO2eq/kWh")
        name = row.get("zone", {}).get("zoneName") or zone
        e = entry(
            name, kind[0], float(ci["value"]), 2024, "electricitymaps-yearly-2024", parent=kind[1]
        )
        code = zone.split("-", 1)[1]
        aliases = [zone, f"{zone[:2]}:{code}"]
        if kind[0] == "ca_province":
            aliases += [f"{name}, Canada", f"{name}, CA", name]
        else:
            aliases.append(code)
        out.append((zone, e, aliases))
    return out


def china(path: Path) -> list[Entry]:
    """Chinese provinces (MEE 2023, gCO2/kWh, CO2 only)."""
    data = read_json(path)
    if data.get("metadata", {}).get("unit") != "gCO2/kWh":
        raise _fail(path, "expected unit gCO2/kWh")
    out: list[Entry] = []
    for key, row in sorted(data["data"].items()):
        e = entry(
            row["description"],
            "cn_province",
            float(row["emission_factor"]),
            int(row["year"]),
            "mee-china-2023",
            parent="CHN",
        )
        names = [key, f"{row['description']}, China", *row.get("names", []), row["description"]]
        out.append((key, e, names))
    return out


def google_regions(path: Path) -> dict[str, dict[str, Any]]:
    """Google's per-region grid intensity, by region code, as provider-figure entries."""
    out: dict[str, dict[str, Any]] = {}
    for row in read_csv(path):
        col = next((k for k in row if k.startswith("Grid carbon intensity")), None)
        if col is None or "gCO2eq / kWh" not in col:
            raise _fail(path, "expected a 'Grid carbon intensity (gCO2eq / kWh)' column")
        region = row["Google Cloud Region"]
        out[region] = entry(
            f"Google Cloud {region} ({row['Location']})",
            "cloud_provider",
            float(row[col]),
            2024,
            "google-region-carbon-2024",
        )
    return out


def cloud_sites(path: Path) -> Iterator[dict[str, str]]:
    """Rows of the cloud data-centre site list."""
    yield from read_csv(path)
