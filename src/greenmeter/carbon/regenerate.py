"""Rebuild the bundled grid-intensity dataset from its sources.

    python -m greenmeter.carbon.regenerate --codecarbon-data DIR [--output PATH] [--check]

``DIR`` is the ``data`` folder of an installed codecarbon package (MIT licence), e.g.
``.../site-packages/codecarbon/data``. It supplies the country table (Our World in Data /
Ember), the US state table (EPA eGRID2023), the Canadian provincial generation mix, the
Chinese provincial factors (MEE 2023), the Nordic bidding-zone factors and Google Cloud's
published per-region figures. The curated files in ``carbon/data/sources/`` supply the
rest: ISO 3166 codes and names, EPA eGRID subregion rates and the cloud-region-to-grid
map. The output is deterministic: the same inputs give the same bytes, so a test can
check that the bundled file is reproducible.

This module is never imported by greenmeter at run time; codecarbon is never needed to
use greenmeter.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from greenmeter.carbon.dataset import normalize

__all__ = ["DATASET_DATE", "DATASET_VERSION", "LB_PER_MWH_TO_G_PER_KWH", "build", "main"]

DATASET_VERSION = "2026.11.2"
DATASET_DATE = "2026-11-28"
FORMAT = 1

#: 1 lb/MWh = 453.59237 g / 1000 kWh.
LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0

DATA_DIR = Path(__file__).resolve().parent / "data"
SOURCES_DIR = DATA_DIR / "sources"
OUTPUT = DATA_DIR / "grid_intensity.json"

UNIT = "gCO2e/kWh"

SOURCES: dict[str, dict[str, Any]] = {
    "owid-ember": {
        "licence_short": "CC-BY-4.0",
        "title": (
            "Our World in Data, energy dataset, carbon intensity of electricity generation "
            "(underlying data: Ember Yearly Electricity Data and Energy Institute Statistical "
            "Review of World Energy), as shipped in codecarbon 'global_energy_mix.json'"
        ),
        "url": "https://github.com/owid/energy-data",
        "licence": "CC BY 4.0 (Our World in Data; Ember)",
        "basis": "lifecycle",
        "note": (
            "Lifecycle emissions (IPCC AR5 median factors per generation source), "
            "generation-based (not consumption-based)."
        ),
    },
    "owid-ember-world": {
        "licence_short": "CC-BY-4.0",
        "title": (
            "World average derived by greenmeter: generation-weighted mean of the "
            "'owid-ember' country figures (sum of intensity x total generation over "
            "sum of generation)"
        ),
        "url": "https://github.com/owid/energy-data",
        "licence": "CC BY 4.0 (Our World in Data; Ember)",
        "basis": "lifecycle",
        "note": "Countries' latest years differ (mostly 2022-2023).",
    },
    "epa-egrid2023-state": {
        "licence_short": "public-domain",
        "title": (
            "EPA eGRID2023, state annual CO2-equivalent total output emission rate "
            "(field STC2ERTA, lb/MWh), as shipped in codecarbon '2023/usa_emissions.json'"
        ),
        "url": "https://www.epa.gov/egrid/download-data",
        "licence": "Public domain (US Government work)",
        "basis": "direct_combustion",
        "note": (
            "Emissions at the generating plant only (CO2, CH4, N2O), not lifecycle; "
            "converted from lb/MWh with 453.59237 g/lb / 1000."
        ),
    },
    "epa-egrid2016-subregion": {
        "licence_short": "public-domain",
        "title": (
            "EPA eGRID2016 subregion annual total output emission rates, CO2e with IPCC AR5 "
            "GWPs, as tabulated in EPA 'Emission Factors for Greenhouse Gas Inventories', "
            "Table 6 (March 2018)"
        ),
        "url": "https://www.epa.gov/climateleadership/ghg-emission-factors-hub",
        "licence": "Public domain (US Government work)",
        "basis": "direct_combustion",
        "note": (
            "Emissions at the generating plant only; data year 2016, older than the state "
            "figures (eGRID2023). Prefer the state when you know it."
        ),
    },
    "dcceew-nga-2024": {
        "licence_short": "CC-BY-4.0",
        "title": (
            "Australian Government DCCEEW, National Greenhouse Accounts Factors 2024, Table 1: "
            "indirect (scope 2) emission factors for consumption of purchased electricity, "
            "by state, territory or grid (kg CO2-e/kWh)"
        ),
        "url": "https://www.dcceew.gov.au/climate-change/publications/national-greenhouse-accounts-factors",
        "licence": "CC BY 4.0 (Commonwealth of Australia, DCCEEW)",
        "basis": "direct_combustion",
        "note": (
            "Scope 2: emissions at generation per kWh consumed, not lifecycle. The high end "
            "of the range adds the publication's scope 3 factor (fuel supply and network "
            "losses). ACT shares the New South Wales factor; Western Australia is its main "
            "grid (SWIS), the North West grid is AU-WA-NWIS. Transcribed into "
            "carbon/data/sources/au_nga2024_states.csv."
        ),
    },
    "canada-mix-lifecycle": {
        "licence_short": "MIT (codecarbon); upstream licence unstated",
        "title": (
            "Provincial electricity generation mix (percent by source) from codecarbon "
            "'2023/canada_energy_mix.json', multiplied by the lifecycle per-source factors "
            "of codecarbon 'carbon_intensity_per_source.json' (coal 995, petroleum 816, "
            "natural gas 743, biomass 230, solar 48, nuclear 29, hydro 26, wind 26 "
            "gCO2e/kWh; tidal takes the hydro factor)"
        ),
        "url": "https://github.com/mlco2/codecarbon",
        "licence": (
            "MIT (codecarbon tables); the mix file does not name its upstream source or "
            "licence (the figures match the Canada Energy Regulator's provincial energy "
            "profiles, Open Government Licence - Canada; not verified offline)"
        ),
        "basis": "lifecycle",
        "note": (
            "Derived by greenmeter. 'other' generation has no factor: the value counts it "
            "at 0 g/kWh (low end); the high end counts it at the fossil average (635 g/kWh)."
        ),
    },
    "mee-china-2023": {
        "licence_short": "official publication; no open licence stated",
        "title": (
            "Ministry of Ecology and Environment and National Bureau of Statistics of China, "
            "Announcement 2025 No. 47, provincial average electricity CO2 emission factors "
            "2023, as shipped in codecarbon '2023/china_provincial_emissions.json'"
        ),
        "url": "https://www.mee.gov.cn/xxgk2018/xxgk/xxgk01/202512/t20251231_1139517.html",
        "licence": "Official government publication; no open licence stated",
        "basis": "direct_combustion",
        "note": "CO2 only (no CH4/N2O, not lifecycle), accounts for inter-provincial transfers.",
        "unit": "gCO2/kWh",
    },
    "entsoe-nordic-2025": {
        "licence_short": "MIT (codecarbon); ENTSO-E terms",
        "title": (
            "Nordic bidding-zone factors from codecarbon 'nordic_emissions.json': ENTSO-E "
            "Transparency Platform actual generation per production type (A75), 2025, "
            "weighted by codecarbon's lifecycle per-source factors"
        ),
        "url": "https://transparency.entsoe.eu/",
        "licence": (
            "MIT (codecarbon table); underlying ENTSO-E data reused under the ENTSO-E "
            "Transparency Platform terms (attribution)"
        ),
        "basis": "lifecycle",
        "note": (
            "Production-based; generation without a factor counts at 0, so zones with "
            "low coverage (e.g. SE4) are lower bounds. The derivation cited in the file's "
            "metadata could not be checked offline."
        ),
    },
    "google-region-carbon": {
        "licence_short": "CC-BY-4.0 (unverified)",
        "title": (
            "Google Cloud, 'Carbon free energy for Google Cloud regions', grid carbon "
            "intensity per region (gCO2eq/kWh), as shipped in codecarbon 'cloud/impact.csv'"
        ),
        "url": "https://cloud.google.com/sustainability/region-carbon#data",
        "licence": (
            "Google Cloud documentation content, CC BY 4.0 per the Google Developers site "
            "policy (not verified offline)"
        ),
        "basis": "unknown",
        "note": (
            "Provider's own location-based figure for the region's grid; the data year is "
            "not stated in the shipped table (Google updates it yearly)."
        ),
    },
    "iso3166-pycountry": {
        "licence_short": "LGPL-2.1",
        "title": "ISO 3166-1 codes and names from Debian iso-codes, via pycountry 26.2.16",
        "url": "https://salsa.debian.org/iso-codes-team/iso-codes",
        "licence": "LGPL-2.1 (iso-codes / pycountry)",
        "basis": "unknown",
        "note": "Names and codes only; used for lookup aliases.",
    },
}

US_STATES: dict[str, str] = {
    "AK": "Alaska", "AL": "Alabama", "AR": "Arkansas", "AZ": "Arizona", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DC": "District of Columbia", "DE": "Delaware",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "IA": "Iowa", "ID": "Idaho",
    "IL": "Illinois", "IN": "Indiana", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "MA": "Massachusetts", "MD": "Maryland", "ME": "Maine", "MI": "Michigan",
    "MN": "Minnesota", "MO": "Missouri", "MS": "Mississippi", "MT": "Montana",
    "NC": "North Carolina", "ND": "North Dakota", "NE": "Nebraska", "NH": "New Hampshire",
    "NJ": "New Jersey", "NM": "New Mexico", "NV": "Nevada", "NY": "New York", "OH": "Ohio",
    "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island",
    "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas",
    "UT": "Utah", "VA": "Virginia", "VT": "Vermont", "WA": "Washington", "WI": "Wisconsin",
    "WV": "West Virginia", "WY": "Wyoming",
}  # fmt: skip

CA_PROVINCES: dict[str, str] = {
    "AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba", "NB": "New Brunswick",
    "NL": "Newfoundland and Labrador", "NS": "Nova Scotia", "NT": "Northwest Territories",
    "NU": "Nunavut", "ON": "Ontario", "PE": "Prince Edward Island", "QC": "Quebec",
    "SK": "Saskatchewan", "YT": "Yukon",
}  # fmt: skip

#: Canadian mix keys -> codecarbon per-source factor keys.
CA_MIX_FACTORS = {
    "coal": "coal",
    "petroleum": "petroleum",
    "naturalGas": "natural_gas",
    "biomass": "biomass",
    "solar": "solar",
    "nuclear": "nuclear",
    "hydro": "hydroelectricity",
    "tidal": "hydroelectricity",
    "wind": "wind",
}

#: Common names people type, mapped to alpha-3 (beyond the ISO names).
COUNTRY_ALIASES: dict[str, str] = {
    "usa": "USA", "us": "USA", "united states": "USA", "united states of america": "USA",
    "america": "USA", "uk": "GBR", "united kingdom": "GBR", "great britain": "GBR",
    "britain": "GBR", "england": "GBR", "scotland": "GBR", "wales": "GBR",
    "south korea": "KOR", "korea": "KOR", "republic of korea": "KOR", "north korea": "PRK",
    "russia": "RUS", "iran": "IRN", "vietnam": "VNM", "viet nam": "VNM", "laos": "LAO",
    "syria": "SYR", "czech republic": "CZE", "czechia": "CZE", "turkey": "TUR",
    "turkiye": "TUR", "holland": "NLD", "the netherlands": "NLD", "uae": "ARE",
    "emirates": "ARE", "ivory coast": "CIV", "cote d'ivoire": "CIV", "bolivia": "BOL",
    "venezuela": "VEN", "tanzania": "TZA", "moldova": "MDA", "taiwan": "TWN",
    "hong kong": "HKG", "macau": "MAC", "macao": "MAC", "palestine": "PSE",
    "brunei": "BRN", "cape verde": "CPV", "eswatini": "SWZ", "swaziland": "SWZ",
    "burma": "MMR", "myanmar": "MMR", "congo": "COG", "dr congo": "COD", "drc": "COD",
    "democratic republic of congo": "COD", "democratic republic of the congo": "COD",
    "north macedonia": "MKD", "macedonia": "MKD", "vatican": "VAT", "micronesia": "FSM",
    "east timor": "TLS", "timor-leste": "TLS", "the gambia": "GMB", "gambia": "GMB",
    "the bahamas": "BHS", "bahamas": "BHS", "kosovo": "XKX",
}  # fmt: skip


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"regenerate: missing source file {path}") from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    return list(csv.DictReader(lines))


def _entry(
    name: str,
    kind: str,
    value_g: float,
    year: int | None,
    source: str,
    *,
    parent: str | None = None,
    low: float | None = None,
    high: float | None = None,
    original: str | None = None,
) -> dict[str, Any]:
    src = SOURCES[source]
    out: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "g_per_kwh": round(value_g, 3),
        "unit": src.get("unit", UNIT),
        "year": year,
        "source": source,
        "licence": src["licence_short"],
        "basis": src["basis"],
    }
    if parent is not None:
        out["parent"] = parent
    if low is not None:
        out["low_g_per_kwh"] = round(low, 3)
    if high is not None:
        out["high_g_per_kwh"] = round(high, 3)
    if original is not None:
        out["original"] = original
    return out


class _Aliases:
    """Alias table that refuses silent collisions (the first owner keeps an alias)."""

    def __init__(self) -> None:
        self.table: dict[str, str] = {}

    def add(self, alias: str, key: str, *, override: bool = False) -> None:
        norm = normalize(alias)
        if not norm:
            return
        if override or norm not in self.table:
            self.table[norm] = key

    def add_all(self, aliases: Iterable[str], key: str) -> None:
        for alias in aliases:
            self.add(alias, key)


def build(codecarbon_data: Path, sources_dir: Path = SOURCES_DIR) -> dict[str, Any]:
    """Build the dataset dictionary from the codecarbon data folder and curated sources."""
    cc = Path(codecarbon_data)
    if not (cc / "private_infra").is_dir():
        raise SystemExit(
            f"regenerate: {cc} does not look like codecarbon's data folder "
            "(expected a 'private_infra' subfolder)"
        )
    locations: dict[str, dict[str, Any]] = {}
    aliases = _Aliases()

    # Countries (lifecycle, OWID/Ember).
    iso = {row["alpha3"]: row for row in _read_csv(sources_dir / "iso3166.csv")}
    mix = _read_json(cc / "private_infra" / "global_energy_mix.json")
    total_twh = 0.0
    weighted = 0.0
    years: set[int] = set()
    for alpha3, row in sorted(mix.items()):
        intensity = row.get("carbon_intensity")
        if intensity is None:
            continue
        name = row.get("country_name") or iso.get(alpha3, {}).get("name") or alpha3
        entry = _entry(name, "country", float(intensity), int(row["year"]), "owid-ember")
        iso_row = iso.get(alpha3)
        if iso_row:
            entry["alpha2"] = iso_row["alpha2"]
        locations[alpha3] = entry
        total_twh += float(row["total_TWh"])
        weighted += float(row["total_TWh"]) * float(intensity)
        years.add(int(row["year"]))
    for alpha3 in sorted(locations):
        entry = locations[alpha3]
        names = [alpha3, entry["name"]]
        iso_row = iso.get(alpha3)
        if iso_row:
            names += [
                iso_row["alpha2"],
                iso_row["name"],
                iso_row["common_name"],
                iso_row["official_name"],
            ]
        aliases.add_all(names, alpha3)
    for alias, alpha3 in sorted(COUNTRY_ALIASES.items()):
        if alpha3 in locations:
            aliases.add(alias, alpha3, override=True)

    world_year = max(years)
    world = _entry("World", "world", weighted / total_twh, world_year, "owid-ember-world")
    world["note"] = f"Country years {min(years)}-{max(years)}; {len(locations)} countries."

    # US states (eGRID2023, direct).
    usa = _read_json(cc / "private_infra" / "2023" / "usa_emissions.json")
    usa_year = int(usa.get("_source", {}).get("year", 2023))
    unit = usa.get("_unit", {}).get("emissions", "")
    if unit.replace(" ", "").lower() not in {"lbs/mwh", "lb/mwh"}:
        raise SystemExit(f"regenerate: unexpected US unit {unit!r}")
    by_code = {v["regionCode"]: v for k, v in usa.items() if not k.startswith("_")}
    for code, name in sorted(US_STATES.items()):
        lb = float(by_code[code]["emissions"])
        key = f"US-{code}"
        locations[key] = _entry(
            name,
            "us_state",
            lb * LB_PER_MWH_TO_G_PER_KWH,
            usa_year,
            "epa-egrid2023-state",
            parent="USA",
            original=f"{lb} lb/MWh",
        )
        aliases.add_all([key, f"US:{code}", f"{name}, US", f"{name}, USA"], key)
        aliases.add(name, key)  # a country of the same name (Georgia) keeps the bare name

    # eGRID subregions (eGRID2016, direct).
    for row in _read_csv(sources_dir / "egrid2016_subregions.csv"):
        sub = row["subregion"].strip().upper()
        kg = float(row["co2e_kg_per_kwh"])
        key = f"EGRID-{sub}"
        locations[key] = _entry(
            f"eGRID {sub} ({row['name']})",
            "egrid_subregion",
            kg * 1000.0,
            2016,
            "epa-egrid2016-subregion",
            parent="USA",
            original=f"{kg} kg/kWh",
        )
        aliases.add_all([key, sub, f"eGRID:{sub}", f"eGRID {sub}", f"US-{sub}"], key)

    # Australian states and territories (NGA Factors 2024, scope 2; scope 2+3 as the high end).
    for row in _read_csv(sources_dir / "au_nga2024_states.csv"):
        code = row["code"].strip().upper()
        scope2 = float(row["scope2_kg_per_kwh"])
        scope3 = float(row["scope3_kg_per_kwh"])
        key = f"AU-{code}"
        locations[key] = _entry(
            row["name"],
            "au_state",
            scope2 * 1000.0,
            2024,
            "dcceew-nga-2024",
            parent="AUS",
            low=scope2 * 1000.0,
            high=(scope2 + scope3) * 1000.0,
            original=f"scope 2 {scope2} kg/kWh, scope 3 {scope3} kg/kWh",
        )
        aliases.add_all([key, f"AU:{code}", f"{row['name']}, Australia", f"{row['name']}, AU"], key)
        if code != "WA-NWIS":
            aliases.add(row["name"], key)

    # Canadian provinces (lifecycle, derived from the generation mix).
    per_source = _read_json(cc / "private_infra" / "carbon_intensity_per_source.json")
    fossil = float(per_source["fossil"])
    ca_mix = _read_json(cc / "private_infra" / "2023" / "canada_energy_mix.json")
    by_name = {normalize(k): v for k, v in ca_mix.items()}
    for code, name in sorted(CA_PROVINCES.items()):
        shares = by_name[normalize(name)]
        total = float(shares["total"])
        value = sum(
            float(shares.get(k, 0.0)) / total * float(per_source[f])
            for k, f in CA_MIX_FACTORS.items()
        )
        other = float(shares.get("other", 0.0)) / total
        key = f"CA-{code}"
        locations[key] = _entry(
            name,
            "ca_province",
            value,
            2023,
            "canada-mix-lifecycle",
            parent="CAN",
            low=value,
            high=value + other * fossil,
        )
        aliases.add_all([key, f"CA:{code}", f"{name}, Canada", f"{name}, CA"], key)
        aliases.add(name, key)
    aliases.add("quebec", "CA-QC")
    aliases.add("québec", "CA-QC")

    # Chinese provinces (CO2 only, direct).
    china = _read_json(cc / "private_infra" / "2023" / "china_provincial_emissions.json")
    for key, row in sorted(china["data"].items()):
        locations[key] = _entry(
            row["description"],
            "cn_province",
            float(row["emission_factor"]),
            int(row["year"]),
            "mee-china-2023",
            parent="CHN",
        )
        aliases.add_all([key, f"{row['description']}, China"], key)
        aliases.add_all(row.get("names", []), key)
        aliases.add(row["description"], key)

    # Nordic bidding zones (lifecycle, production-based).
    nordic = _read_json(cc / "private_infra" / "nordic_emissions.json")
    for zone, row in sorted(nordic["data"].items()):
        if not re.fullmatch(r"(SE|NO)\d", zone):
            continue  # 'FI' duplicates the country table
        country = {"SE": "SWE", "NO": "NOR"}[zone[:2]]
        key = f"{zone[:2]}-{zone}"
        entry = _entry(
            row.get("description", zone),
            "bidding_zone",
            float(row["emission_factor"]),
            int(row["year"]),
            "entsoe-nordic-2025",
            parent=country,
        )
        if row.get("coverage"):
            entry["coverage"] = row["coverage"]
        locations[key] = entry
        aliases.add_all([key, zone], key)

    # Cloud regions: grid location + Google's own figure where published.
    google: dict[str, dict[str, str]] = {}
    for row in _read_csv(cc / "cloud" / "impact.csv"):
        if row["provider"].strip() != "gcp":
            continue
        region = row["region"].strip()
        region = {"me-cenrtal1": "me-central1"}.get(region, region)  # typo in the source
        google[region] = row
    cloud: dict[str, dict[str, Any]] = {}
    for row in _read_csv(sources_dir / "cloud_regions.csv"):
        provider, region, loc = row["provider"], row["region"], row["location"]
        if loc not in locations:
            raise SystemExit(f"regenerate: cloud region {provider}:{region} -> unknown {loc}")
        item: dict[str, Any] = {"location": loc, "city": row["city"]}
        if provider == "gcp" and region in google:
            g = float(google[region]["impact"])
            item["provider"] = _entry(
                f"Google Cloud {region}", "cloud_provider", g, None, "google-region-carbon"
            )
        cloud[f"{provider}:{region}"] = item

    for key in locations:
        aliases.add(key, key, override=True)

    return {
        "format": FORMAT,
        "version": DATASET_VERSION,
        "date": DATASET_DATE,
        "unit": UNIT,
        "generator": "python -m greenmeter.carbon.regenerate --codecarbon-data DIR",
        "sources": SOURCES,
        "world": world,
        "locations": dict(sorted(locations.items())),
        "aliases": dict(sorted(aliases.table.items())),
        "cloud": dict(sorted(cloud.items())),
    }


def dumps(data: dict[str, Any]) -> str:
    """Serialise deterministically (sorted keys, one level of indentation)."""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m greenmeter.carbon.regenerate",
        description="Rebuild greenmeter's bundled grid-intensity dataset.",
    )
    parser.add_argument("--codecarbon-data", type=Path, required=True, help="codecarbon/data")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    parser.add_argument(
        "--check", action="store_true", help="compare with --output instead of writing it"
    )
    args = parser.parse_args(argv)
    text = dumps(build(args.codecarbon_data))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} differs from a fresh build", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    from greenmeter.files import write_file

    write_file(args.output, text)
    print(f"wrote {args.output} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
