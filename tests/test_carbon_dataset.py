"""Bundled grid-intensity dataset: lookups, provenance, close matches, regeneration."""

from __future__ import annotations

import glob
import importlib.util
import json
import math
from importlib import resources
from pathlib import Path

import pytest

from greenmeter.carbon import CarbonError
from greenmeter.carbon.dataset import dataset, lookup, lookup_cloud, world
from greenmeter.carbon.regenerate import LB_PER_MWH_TO_G_PER_KWH


def _raw(key: str) -> dict:
    return dataset()["locations"][key]


@pytest.mark.parametrize("text", ["FR", "fr", "FRA", "fra", "France", "  FRANCE "])
def test_country_by_alpha2_alpha3_and_name(text: str) -> None:
    rec = lookup(text)
    assert rec.key == "FRA"
    assert rec.g_per_kwh == _raw("FRA")["g_per_kwh"]
    assert rec.year == _raw("FRA")["year"] and 2015 <= rec.year <= 2030
    assert rec.source == "owid-ember"
    assert rec.basis == "lifecycle"
    assert "CC" in rec.licence and "BY" in rec.licence
    assert "ourworldindata" in rec.source_url or "owid" in rec.source_url


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("DE", "DEU"),
        ("Germany", "DEU"),
        ("UK", "GBR"),
        ("united kingdom", "GBR"),
        ("USA", "USA"),
        ("South Korea", "KOR"),
        ("Côte d'Ivoire", "CIV"),
        ("cote d'ivoire", "CIV"),
        ("Georgia", "GEO"),
    ],
)
def test_country_aliases(text: str, key: str) -> None:
    assert lookup(text).key == key


def test_us_state_converted_from_lb_per_mwh() -> None:
    for text in ("US-CA", "us-ca", "California", "california, us"):
        rec = lookup(text)
        assert rec.key == "US-CA"
    raw = _raw("US-CA")
    lb = float(raw["original"].split()[0])
    assert raw["original"].endswith("lb/MWh")
    assert rec.g_per_kwh == pytest.approx(lb * 453.59237 / 1000, abs=1e-3)
    assert LB_PER_MWH_TO_G_PER_KWH == pytest.approx(0.45359237)
    assert rec.year == 2023
    assert rec.source == "epa-egrid2023-state"
    assert rec.basis == "direct_combustion"
    assert rec.licence.lower().startswith("public")
    # The state of Georgia is reachable, the bare name stays the country.
    assert lookup("US-GA").name == "Georgia" and lookup("Georgia, USA").key == "US-GA"


@pytest.mark.parametrize("text", ["CAMX", "camx", "eGRID:CAMX", "EGRID-CAMX"])
def test_egrid_subregion(text: str) -> None:
    rec = lookup(text)
    assert rec.key == "EGRID-CAMX"
    assert rec.year == 2016
    assert rec.source == "epa-egrid2016-subregion"
    assert rec.basis == "direct_combustion"
    assert rec.g_per_kwh == pytest.approx(float(_raw("EGRID-CAMX")["original"].split()[0]) * 1000)


@pytest.mark.parametrize("text", ["CA-QC", "Quebec", "Québec", "quebec, canada"])
def test_canadian_province(text: str) -> None:
    rec = lookup(text)
    assert rec.key == "CA-QC"
    assert rec.year == 2023
    assert rec.source == "canada-mix-lifecycle"
    assert rec.basis == "lifecycle"
    # A hydro province is far below a coal/gas one.
    assert rec.g_per_kwh < lookup("Alberta").g_per_kwh / 5


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("AU-VIC", "AU-VIC"),
        ("Victoria, Australia", "AU-VIC"),
        ("Tasmania", "AU-TAS"),
        ("AU-WA-NWIS", "AU-WA-NWIS"),
        ("Western Australia", "AU-WA"),
    ],
)
def test_australian_state(text: str, key: str) -> None:
    rec = lookup(text)
    assert rec.key == key
    assert rec.year == 2024
    assert rec.source == "dcceew-nga-2024"
    assert rec.basis == "direct_combustion"
    # the value is the scope 2 factor (kg/kWh x 1000); the high end adds scope 3
    scope2, scope3 = (float(x.split()[1]) for x in _raw(key)["original"].split("scope ")[1:])
    assert rec.g_per_kwh == pytest.approx(scope2 * 1000)
    assert rec.high_g_per_kwh == pytest.approx((scope2 + scope3) * 1000)
    # Tasmania (hydro) is far below Victoria (brown coal)
    assert lookup("AU-TAS").g_per_kwh < lookup("AU-VIC").g_per_kwh / 4


def test_other_subnational_tables() -> None:
    bj = lookup("CN-BJ")
    assert bj.unit == "gCO2/kWh" and bj.basis == "direct_combustion" and bj.year == 2023
    assert lookup("Beijing").key == "CN-BJ"
    se3 = lookup("SE3")
    assert se3.key == "SE-SE3" and se3.basis == "lifecycle"


def test_world_is_generation_weighted_mean_of_countries() -> None:
    rec = world()
    assert rec.kind == "world"
    countries = [v for v in dataset()["locations"].values() if v["kind"] == "country"]
    assert len(countries) > 150
    lo = min(v["g_per_kwh"] for v in countries)
    hi = max(v["g_per_kwh"] for v in countries)
    assert lo < rec.g_per_kwh < hi
    assert rec.source == "owid-ember-world"
    assert lookup("world").g_per_kwh == rec.g_per_kwh


def test_every_value_carries_unit_year_source_licence() -> None:
    data = dataset()
    assert data["version"] and data["date"][:2] == "20"
    for key, raw in data["locations"].items():
        assert raw["unit"] in ("gCO2e/kWh", "gCO2/kWh"), key
        assert isinstance(raw["year"], int), key
        assert raw["source"] in data["sources"], key
        assert raw["licence"], key
        assert raw["basis"] in ("lifecycle", "direct_combustion", "unknown"), key
        assert raw["g_per_kwh"] >= 0 and math.isfinite(raw["g_per_kwh"]), key
    for key, item in data["cloud"].items():
        assert item["location"] in data["locations"], key


def test_unknown_location_lists_close_matches() -> None:
    with pytest.raises(CarbonError) as exc:
        lookup("Frnace")
    msg = str(exc.value)
    assert "Frnace" in msg and "FRA (France)" in msg
    with pytest.raises(CarbonError, match="EGRID-CAMX"):
        lookup("CAMZ")
    with pytest.raises(CarbonError, match="unknown location"):
        lookup("Atlantis-Prime")


@pytest.mark.parametrize(
    ("cloud", "grid"),
    [
        ("aws:us-east-1", "US-VA"),
        ("AWS:eu-west-3", "FRA"),
        ("gcp:europe-west1", "BEL"),
        ("azure:westeurope", "NLD"),
        ("azure:canadaeast", "CA-QC"),
    ],
)
def test_cloud_region_maps_to_grid(cloud: str, grid: str) -> None:
    region = lookup_cloud(cloud)
    assert region.grid.key == grid
    assert region.grid.year is not None and region.grid.source


def test_gcp_provider_figure_is_separate() -> None:
    region = lookup_cloud("gcp:europe-west1")
    assert region.provider_figure is not None
    assert region.provider_figure.source == "google-region-carbon"
    assert region.provider_figure.g_per_kwh != region.grid.g_per_kwh
    assert lookup_cloud("aws:us-east-1").provider_figure is None


def test_unknown_cloud_region_lists_close_matches() -> None:
    with pytest.raises(CarbonError, match="aws:us-east-1"):
        lookup_cloud("aws:us-east-9")
    with pytest.raises(CarbonError, match="provider"):
        lookup_cloud("ibm:dal10")
    with pytest.raises(CarbonError, match="aws:us-east-1"):
        lookup_cloud("us-east-1")


def _codecarbon_data() -> Path | None:
    spec = importlib.util.find_spec("codecarbon")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "data"
        if path.is_dir():
            return path
    for hit in sorted(glob.glob("/root/peers/lib/python3*/site-packages/codecarbon/data")):
        return Path(hit)
    return None


def test_regeneration_reproduces_bundled_file() -> None:
    source = _codecarbon_data()
    if source is None:
        pytest.skip("codecarbon is not installed here: its data folder is the regeneration input")
    from greenmeter.carbon.regenerate import build, dumps

    bundled = resources.files("greenmeter.carbon").joinpath("data", "grid_intensity.json")
    fresh = dumps(build(source))
    assert fresh == bundled.read_text("utf-8")
    assert json.loads(fresh)["version"] == dataset()["version"]


def test_regenerate_is_not_imported_by_the_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, greenmeter.carbon as c; c.resolve(c.CarbonConfig(location='FR'), env={});"
        "print('greenmeter.carbon.regenerate' in sys.modules, 'codecarbon' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
