"""Rebuild the bundled grid-intensity dataset from the raw source files kept in the repo.

    python -m greenmeter.carbon.regenerate [--output PATH] [--check]

Every figure comes from a raw file under ``carbon/data/sources/`` (see ``SOURCES.md``
there for where each was obtained, and :mod:`greenmeter.carbon.source_meta` for what it
counts); :mod:`greenmeter.carbon.readers` parses them. The output is deterministic: the
same inputs give the same bytes, and a test checks that the bundled file is reproduced
exactly. This module is never imported by greenmeter at run time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from greenmeter.carbon import readers
from greenmeter.carbon.dataset import normalize
from greenmeter.carbon.readers import LB_PER_MWH_TO_G_PER_KWH
from greenmeter.carbon.source_meta import COUNTRY_ALIASES, SOURCES

__all__ = ["DATASET_DATE", "DATASET_VERSION", "LB_PER_MWH_TO_G_PER_KWH", "build", "main"]

DATASET_VERSION = "2026.11.3"
DATASET_DATE = "2026-11-28"
FORMAT = 2

DATA_DIR = Path(__file__).resolve().parent / "data"
SOURCES_DIR = DATA_DIR / "sources"
OUTPUT = DATA_DIR / "grid_intensity.json"


class _Aliases:
    """Alias table that refuses silent collisions (the first owner keeps an alias)."""

    def __init__(self) -> None:
        self.table: dict[str, str] = {}

    def add(self, alias: str, key: str, *, override: bool = False) -> None:
        norm = normalize(alias)
        if norm and (override or norm not in self.table):
            self.table[norm] = key


def _grid_key(row: dict[str, str], locations: dict[str, Any], alpha2: dict[str, str]) -> str:
    """The dataset key of the grid a cloud site sits on (finest level bundled)."""
    zone = row["em_zone"]
    if zone.startswith("US-"):
        if not row["us_state"]:
            raise SystemExit(f"regenerate: {row['provider']}:{row['region']} has no US state")
        return f"US-{row['us_state']}"
    if zone in locations:
        return zone
    country = alpha2.get(zone[:2])
    if country is None or country not in locations:
        raise SystemExit(f"regenerate: no grid for zone {zone} ({row['region']})")
    return country


def build(sources_dir: Path = SOURCES_DIR) -> dict[str, Any]:
    """Build the dataset dictionary from the raw source files."""
    src = Path(sources_dir)
    iso = readers.iso3166(src / "iso3166.csv")
    countries, world = readers.ember(src / "ember_yearly_latest.json", iso)
    groups = [
        countries,
        readers.us_states(src / "egrid2023_states_codecarbon.json"),
        readers.us_subregions(src / "egrid2022_subregion_co2.csv"),
        readers.australia(src / "au_nga2024_states.csv"),
        readers.em_zones(src / "electricitymaps_yearly_2024.json"),
        readers.china(src / "mee2023_china_codecarbon.json"),
    ]
    locations: dict[str, dict[str, Any]] = {}
    aliases = _Aliases()
    for group in groups:
        for key, item, names in group:
            if key in locations:
                raise SystemExit(f"regenerate: key {key} defined twice")
            locations[key] = item
            for name in names:
                aliases.add(name, key)
    for alias, alpha3 in sorted(COUNTRY_ALIASES.items()):
        if alpha3 in locations:
            aliases.add(alias, alpha3, override=True)
    for key in locations:
        aliases.add(key, key, override=True)

    alpha2 = {row["alpha2"]: a3 for a3, row in iso.items()}
    google = readers.google_regions(src / "google_region_carbon_2024.csv")
    cloud: dict[str, dict[str, Any]] = {}
    for row in readers.cloud_sites(src / "cloud_datacentres.csv"):
        key = f"{row['provider']}:{row['region']}"
        item: dict[str, Any] = {
            "location": _grid_key(row, locations, alpha2),
            "site": row["site"],
            "lonlat": [float(row["lon"]), float(row["lat"])],
            "location_source": row["source"],
        }
        if row["provider"] == "gcp" and row["region"] in google:
            item["provider"] = google[row["region"]]
        cloud[key] = item
    for region, fig in sorted(google.items()):
        cloud.setdefault(f"gcp:{region}", {"location": None, "provider": fig})

    return {
        "format": FORMAT,
        "version": DATASET_VERSION,
        "date": DATASET_DATE,
        "generator": "python -m greenmeter.carbon.regenerate",
        "sources": SOURCES,
        "world": world,
        "locations": dict(sorted(locations.items())),
        "aliases": dict(sorted(aliases.table.items())),
        "cloud": dict(sorted(cloud.items())),
    }


def dumps(data: dict[str, Any]) -> str:
    """Serialise deterministically (sorted keys, one level of indentation)."""
    import json

    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m greenmeter.carbon.regenerate",
        description="Rebuild greenmeter's bundled grid-intensity dataset from its raw sources.",
    )
    parser.add_argument("--sources", type=Path, default=SOURCES_DIR, help=f"default: {SOURCES_DIR}")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    parser.add_argument(
        "--check", action="store_true", help="compare with --output instead of writing it"
    )
    args = parser.parse_args(argv)
    text = dumps(build(args.sources))
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
