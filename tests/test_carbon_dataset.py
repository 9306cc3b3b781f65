"""Bundled grid-intensity dataset: published spot values, lookups, provenance, regeneration."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from greenmeter.carbon import CarbonError
from greenmeter.carbon.dataset import dataset, lookup, lookup_cloud, world
from greenmeter.carbon.regenerate import LB_PER_MWH_TO_G_PER_KWH, OUTPUT, build, dumps

SOURCES = Path(__file__).resolve().parents[1] / "src/greenmeter/carbon/data/sources"

#: Published figures, as the publisher prints them, with their year and unit. The bundled
#: value must be the published one converted to g/kWh within TOLERANCE_G (rounding of the
#: conversion only), so that a regression of the data or of its mapping is caught.
TOLERANCE_G = 0.01
LB = LB_PER_MWH_TO_G_PER_KWH
SPOT_VALUES: list[tuple[str, float, int, str]] = [
    # key or cloud region, published figure in g/kWh, data year, source id
    # Ember yearly data (gCO2e/kWh)
    ("FR", 44.18, 2024, "ember-yearly"),
    ("DE", 342.06, 2024, "ember-yearly"),
    ("GB", 215.79, 2024, "ember-yearly"),
    ("US", 383.55, 2024, "ember-yearly"),
    ("IN", 708.96, 2024, "ember-yearly"),
    ("CN", 557.5, 2024, "ember-yearly"),
    ("PL", 614.98, 2024, "ember-yearly"),
    ("SE", 35.89, 2024, "ember-yearly"),
    ("ZW", 298.44, 2023, "ember-yearly"),
    # EPA eGRID2022 subregions, CO2 total output rate (lb/MWh)
    ("CAMX", 497.443 * LB, 2022, "epa-egrid2022-subregion"),
    ("ERCT", 771.083 * LB, 2022, "epa-egrid2022-subregion"),
    ("NWPP", 602.088 * LB, 2022, "epa-egrid2022-subregion"),
    ("SRVC", 622.987 * LB, 2022, "epa-egrid2022-subregion"),
    ("NYUP", 274.559 * LB, 2022, "epa-egrid2022-subregion"),
    # EPA eGRID2023 states, CO2e total output rate (lb/MWh)
    ("US-CA", 394.769 * LB, 2023, "epa-egrid2023-state"),
    ("US-VA", 539.599 * LB, 2023, "epa-egrid2023-state"),
    ("US-OR", 364.963 * LB, 2023, "epa-egrid2023-state"),
    # Electricity Maps 2024, Canadian provinces and Nordic zones (gCO2eq/kWh)
    ("CA-ON", 91, 2024, "electricitymaps-yearly-2024"),
    ("CA-QC", 35, 2024, "electricitymaps-yearly-2024"),
    ("CA-AB", 402, 2024, "electricitymaps-yearly-2024"),
    ("SE3", 21, 2024, "electricitymaps-yearly-2024"),
    ("NO1", 27, 2024, "electricitymaps-yearly-2024"),
    # DCCEEW NGA Factors 2024, scope 2 (kg CO2-e/kWh)
    ("AU-NSW", 660, 2024, "dcceew-nga-2024"),
    ("AU-VIC", 770, 2024, "dcceew-nga-2024"),
    # Google Cloud 2024 (gCO2eq/kWh), the provider's own figure per region
    ("gcp:us-east1", 575.77, 2024, "google-region-carbon-2024"),
    ("gcp:us-central1", 412.72, 2024, "google-region-carbon-2024"),
    ("gcp:us-west1", 79.23, 2024, "google-region-carbon-2024"),
    ("gcp:europe-west3", 275.82, 2024, "google-region-carbon-2024"),
    ("gcp:europe-west9", 16.30, 2024, "google-region-carbon-2024"),
    # AWS and Azure: the grid their site sits on
    ("aws:us-west-2", 364.963 * LB, 2023, "epa-egrid2023-state"),
    ("aws:eu-west-3", 44.18, 2024, "ember-yearly"),
    ("aws:ap-southeast-2", 660, 2024, "dcceew-nga-2024"),
    ("aws:ca-central-1", 35, 2024, "electricitymaps-yearly-2024"),
    ("azure:westeurope", 252.7, 2024, "ember-yearly"),
    ("azure:australiasoutheast", 770, 2024, "dcceew-nga-2024"),
    ("azure:swedencentral", 21, 2024, "electricitymaps-yearly-2024"),
    ("azure:eastus", 539.599 * LB, 2023, "epa-egrid2023-state"),
]


def _resolved(key: str):  # type: ignore[no-untyped-def]
    from greenmeter.carbon import CarbonConfig, resolve

    if ":" in key:
        return resolve(CarbonConfig(cloud=key), env={}).info.intensity
    return resolve(CarbonConfig(location=key), env={}).info.intensity


@pytest.mark.parametrize(("key", "published", "year", "source"), SPOT_VALUES)
def test_spot_value_matches_the_published_figure(
    key: str, published: float, year: int, source: str
) -> None:
    info = _resolved(key)
    assert info.value_g_per_kwh == pytest.approx(published, abs=TOLERANCE_G)
    assert info.year == year
    assert info.source_id == source


def test_spot_table_covers_every_kind() -> None:
    kinds = {lookup(k).kind for k, *_ in SPOT_VALUES if ":" not in k}
    assert {"country", "egrid_subregion", "us_state", "ca_province", "au_state"} <= kinds
    assert {k.split(":")[0] for k, *_ in SPOT_VALUES if ":" in k} == {"aws", "azure", "gcp"}
    assert len(SPOT_VALUES) >= 30


def test_spot_values_are_the_raw_files_figures() -> None:
    ember = json.loads((SOURCES / "ember_yearly_latest.json").read_text())
    assert ember["FRA"]["emissions_intensity_gco2_per_kwh"] == 44.18
    assert ember["FRA"]["year"] == 2024
    with (SOURCES / "google_region_carbon_2024.csv").open() as f:
        google = {r["Google Cloud Region"]: r for r in csv.DictReader(f)}
    assert float(google["us-east1"]["Grid carbon intensity (gCO2eq / kWh)"]) == 575.77


def test_every_value_carries_unit_gas_basis_year_source_licence() -> None:
    data = dataset()
    for key, raw in [*data["locations"].items(), ("WORLD", data["world"])]:
        assert raw["gas"] in ("CO2e", "CO2"), key
        assert raw["unit"] == ("gCO2/kWh" if raw["gas"] == "CO2" else "gCO2e/kWh"), key
        assert raw["basis"] in ("lifecycle", "direct_combustion"), key
        assert isinstance(raw["year"], int) and 2020 <= raw["year"] <= 2026, key
        assert raw["source"] in data["sources"] and raw["licence"], key
        assert "low_g_per_kwh" not in raw and "high_g_per_kwh" not in raw, key


def test_world_is_embers_own_row_with_its_year() -> None:
    rec = world()
    assert (rec.g_per_kwh, rec.year, rec.source) == (472.94, 2024, "ember-world")


@pytest.mark.parametrize(
    ("text", "key"),
    [("FR", "FRA"), ("fra", "FRA"), (" France ", "FRA"), ("UK", "GBR"), ("Georgia", "GEO"),
     ("Georgia, US", "US-GA"), ("California", "US-CA"), ("camx", "EGRID-CAMX"),
     ("eGRID:CAMX", "EGRID-CAMX"), ("Quebec", "CA-QC"), ("Québec", "CA-QC"), ("SE3", "SE-SE3"),
     ("Victoria, Australia", "AU-VIC"), ("CN-BJ", "CN-BJ")],
)  # fmt: skip
def test_lookup_aliases(text: str, key: str) -> None:
    assert lookup(text).key == key


def test_us_values_are_converted_from_lb_per_mwh() -> None:
    raw = dataset()["locations"]["EGRID-CAMX"]
    lb = float(raw["original"].split()[0])
    assert raw["g_per_kwh"] == pytest.approx(lb * 453.59237 / 1000, abs=1e-3)
    assert raw["gas"] == "CO2" and raw["unit"] == "gCO2/kWh"


def test_china_is_co2_only_and_australia_keeps_scope3_apart() -> None:
    assert lookup("CN-BJ").gas == "CO2"
    vic = lookup("AU-VIC")
    assert vic.scope3_g_per_kwh == pytest.approx(90.0)
    assert vic.g_per_kwh == pytest.approx(770.0)


def test_cloud_sites_map_to_their_grid() -> None:
    assert lookup_cloud("aws:ap-southeast-4").grid.key == "AU-VIC"  # type: ignore[union-attr]
    assert lookup_cloud("azure:norwayeast").grid.key == "NO-NO1"  # type: ignore[union-attr]
    assert lookup_cloud("gcp:us-east1").grid.key == "US-SC"  # type: ignore[union-attr]
    region = lookup_cloud("aws:us-east-1")
    assert region.location_source.startswith("https://docs.aws.amazon.com/")


def test_google_only_region_has_no_grid_but_a_figure() -> None:
    region = lookup_cloud("gcp:us-central2")
    assert region.grid is None and region.provider_figure is not None


def test_unknown_location_and_region_list_close_matches() -> None:
    with pytest.raises(CarbonError, match=r"Did you mean.*FRA"):
        lookup("Frnace")
    with pytest.raises(CarbonError, match="aws:us-east-1"):
        lookup_cloud("aws:us-east-l")


def test_regeneration_reproduces_bundled_file_byte_for_byte() -> None:
    assert dumps(build()) == OUTPUT.read_text(encoding="utf-8")


def test_regenerate_is_not_imported_by_the_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, greenmeter, greenmeter.carbon; greenmeter.carbon.resolve; "
        "print(any(m in sys.modules for m in ('greenmeter.carbon.regenerate', "
        "'greenmeter.carbon.readers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
