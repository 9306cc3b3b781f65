"""What each bundled carbon source is: title, URL, year, basis, gas and licence.

Read by :mod:`greenmeter.carbon.regenerate` (which copies it into the dataset, so every
value's provenance travels with it) and by the renderers' citations. Each entry names
the raw file under ``carbon/data/sources/`` it is built from; ``sources/SOURCES.md``
says where each raw file was obtained.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COUNTRY_ALIASES", "SOURCES", "US_STATES"]

SOURCES: dict[str, dict[str, Any]] = {
    "ember-yearly": {
        "title": "Ember, Yearly Electricity Data: emissions intensity of electricity "
        "generation per country (each country's newest year)",
        "publisher": "Ember",
        "url": "https://ember-energy.org/data/yearly-electricity-data/",
        "raw_file": "ember_yearly_latest.json",
        "licence": "CC BY 4.0 (Ember)",
        "licence_short": "CC-BY-4.0",
        "basis": "lifecycle",
        "gas": "CO2e",
        "note": "Lifecycle emissions per kWh generated (Ember applies lifecycle factors per "
        "fuel); generation-based. Each country carries its own data year.",
    },
    "ember-world": {
        "title": "Ember, Yearly Electricity Data: world emissions intensity of electricity "
        "generation",
        "publisher": "Ember",
        "url": "https://ember-energy.org/data/yearly-electricity-data/",
        "raw_file": "ember_yearly_latest.json",
        "licence": "CC BY 4.0 (Ember)",
        "licence_short": "CC-BY-4.0",
        "basis": "lifecycle",
        "gas": "CO2e",
        "note": "Ember's own World row, with its own data year.",
    },
    "epa-egrid2023-state": {
        "title": "U.S. EPA eGRID2023, state annual CO2-equivalent total output emission "
        "rate (STC2ERTA)",
        "publisher": "U.S. Environmental Protection Agency",
        "url": "https://www.epa.gov/egrid",
        "raw_file": "egrid2023_states_codecarbon.json",
        "year": 2023,
        "licence": "Public domain (U.S. Government work)",
        "licence_short": "public-domain",
        "basis": "direct_combustion",
        "gas": "CO2e",
        "note": "Emissions at the generating plants (CO2, CH4, N2O), not lifecycle; "
        "converted from lb/MWh with 453.59237 g/lb / 1000 kWh/MWh.",
    },
    "epa-egrid2022-subregion": {
        "title": "U.S. EPA eGRID2022, subregion annual CO2 total output emission rate (SRCO2RTA)",
        "publisher": "U.S. Environmental Protection Agency",
        "url": "https://www.epa.gov/egrid",
        "raw_file": "egrid2022_subregion_co2.csv",
        "year": 2022,
        "licence": "Public domain (U.S. Government work)",
        "licence_short": "public-domain",
        "basis": "direct_combustion",
        "gas": "CO2",
        "note": "CO2 only (no CH4 or N2O), emissions at the generating plants; total output "
        "rate (all generation in the subregion), not the non-baseload rate; converted "
        "from lb/MWh with 453.59237 g/lb / 1000 kWh/MWh.",
    },
    "dcceew-nga-2024": {
        "title": "Australian Government DCCEEW, National Greenhouse Accounts Factors 2024, "
        "Table 1: scope 2 emission factors for purchased grid electricity, by state, "
        "territory or grid",
        "publisher": "Australian Government, Department of Climate Change, Energy, the "
        "Environment and Water",
        "url": "https://www.dcceew.gov.au/climate-change/publications/"
        "national-greenhouse-accounts-factors",
        "raw_file": "au_nga2024_states.csv",
        "year": 2024,
        "licence": "CC BY 4.0 (Commonwealth of Australia, DCCEEW)",
        "licence_short": "CC-BY-4.0",
        "basis": "direct_combustion",
        "gas": "CO2e",
        "note": "Scope 2: emissions at generation per kWh consumed. The publication's scope "
        "3 factor (fuel supply, network losses) is kept beside it (scope3_g_per_kwh), "
        "never added and never shown as a range.",
    },
    "electricitymaps-yearly-2024": {
        "title": "Electricity Maps, yearly carbon intensity per zone",
        "publisher": "Electricity Maps",
        "url": "https://www.electricitymaps.com/data-portal",
        "raw_file": "electricitymaps_yearly_2024.json",
        "year": 2024,
        "licence": "Open Database License (ODbL) 1.0 (Electricity Maps free data)",
        "licence_short": "ODbL-1.0",
        "basis": "lifecycle",
        "gas": "CO2e",
        "note": "Electricity Maps' default carbon intensity for the zone (lifecycle "
        "emission factors; the intensity of electricity available in the zone, imports "
        "included).",
    },
    "mee-china-2023": {
        "title": "Ministry of Ecology and Environment and National Bureau of Statistics of "
        "China, Announcement 2025 No. 47, provincial average electricity CO2 emission "
        "factors, 2023",
        "publisher": "Ministry of Ecology and Environment of China",
        "url": "https://www.mee.gov.cn/xxgk2018/xxgk/xxgk01/202512/t20251231_1139517.html",
        "raw_file": "mee2023_china_codecarbon.json",
        "year": 2023,
        "licence": "Official government publication; no open licence stated",
        "licence_short": "no-licence-stated",
        "basis": "direct_combustion",
        "gas": "CO2",
        "note": "CO2 only, not lifecycle; accounts for inter-provincial transfers.",
    },
    "google-region-carbon-2024": {
        "title": "Google Cloud, Carbon free energy for Google Cloud regions: grid carbon "
        "intensity per region",
        "publisher": "Google",
        "url": "https://github.com/GoogleCloudPlatform/region-carbon-info",
        "raw_file": "google_region_carbon_2024.csv",
        "year": 2024,
        "licence": "Apache License 2.0 (GoogleCloudPlatform/region-carbon-info)",
        "licence_short": "Apache-2.0",
        "basis": "direct_combustion",
        "gas": "CO2e",
        "note": "Google's own figure for the grid at the region's site, described by Google "
        "as the average operational gross emissions per unit of energy from the grid "
        "(operational: no upstream emissions).",
    },
    "iso3166-pycountry": {
        "title": "ISO 3166-1 codes and names from Debian iso-codes, via pycountry 26.2.16",
        "publisher": "Debian iso-codes",
        "url": "https://salsa.debian.org/iso-codes-team/iso-codes",
        "raw_file": "iso3166.csv",
        "licence": "LGPL-2.1 (iso-codes / pycountry)",
        "licence_short": "LGPL-2.1",
        "basis": "unknown",
        "gas": "CO2e",
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
