"""CarbonConfig validation and the resolution order of carbon settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenmeter.carbon import CarbonConfig, CarbonError, resolve
from greenmeter.carbon.dataset import lookup, world


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project root (the config search stops here)."""
    (tmp_path / ".git").mkdir()
    return tmp_path


def _pyproject(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(body, encoding="utf-8")
    return path


# ------------------------------------------------------------------ validation


def test_pue_below_one_is_a_clear_error() -> None:
    with pytest.raises(CarbonError, match=r"pue must be >= 1\.0.*got 0\.9"):
        CarbonConfig(pue=0.9)
    with pytest.raises(CarbonError, match=r"pue_low must be >= 1\.0"):
        CarbonConfig(pue=1.2, pue_low=0.8)


def test_negative_intensity_is_a_clear_error() -> None:
    with pytest.raises(CarbonError, match=r"intensity_g_per_kwh must be >= 0.*-5"):
        CarbonConfig(intensity_g_per_kwh=-5)
    with pytest.raises(CarbonError, match="must be a number"):
        CarbonConfig(intensity_g_per_kwh="lots")  # type: ignore[arg-type]
    with pytest.raises(CarbonError, match="finite"):
        CarbonConfig(intensity_g_per_kwh=float("nan"))


def test_unknown_preset_and_location_errors() -> None:
    with pytest.raises(CarbonError, match=r"unknown PUE preset 'hyperscale'.*uptime-2024"):
        CarbonConfig(pue="hyperscale")
    with pytest.raises(CarbonError, match=r"Did you mean.*DEU"):
        CarbonConfig(location="Germny")
    with pytest.raises(CarbonError, match="gcp:europe-west1"):
        CarbonConfig(cloud="gcp:europe-wst1")


def test_range_and_market_consistency() -> None:
    with pytest.raises(CarbonError, match="above the value"):
        CarbonConfig(intensity_g_per_kwh=100, intensity_low_g_per_kwh=150)
    with pytest.raises(CarbonError, match="need intensity_g_per_kwh"):
        CarbonConfig(intensity_high_g_per_kwh=150)
    with pytest.raises(CarbonError, match="not both"):
        CarbonConfig(market_factor_g_per_kwh=10, renewable_share=0.5)
    with pytest.raises(CarbonError, match=r"fraction in \[0, 1\]"):
        CarbonConfig(renewable_share=60)
    with pytest.raises(CarbonError, match="live_provider"):
        CarbonConfig(live_provider="wattime")
    with pytest.raises(CarbonError, match="lifetime_h"):
        CarbonConfig(embodied={"gpu": {"kgco2e": 100}})


def test_config_is_frozen_and_hashable() -> None:
    cfg = CarbonConfig(location="FR", pue="uptime-2024", embodied={"gpu": (100, 1000)})
    with pytest.raises(AttributeError):
        cfg.location = "DE"  # type: ignore[misc]
    assert hash(cfg) == hash(
        CarbonConfig(location="FR", pue="uptime-2024", embodied={"gpu": (100, 1000)})
    )


# ------------------------------------------------------------------ resolution order


def test_explicit_intensity_beats_location(project: Path) -> None:
    acct = resolve(CarbonConfig(intensity_g_per_kwh=123.0, location="FR"), cwd=project, env={})
    assert acct.info.intensity.value_g_per_kwh == 123.0
    assert acct.info.intensity.resolved_from == "explicit"
    assert acct.warnings == []


def test_explicit_location_beats_env(project: Path) -> None:
    env = {"GREENMETER_INTENSITY_G_PER_KWH": "999", "GREENMETER_LOCATION": "DE"}
    acct = resolve(CarbonConfig(location="FR"), cwd=project, env=env)
    assert acct.info.intensity.location == "FRA"
    assert acct.info.intensity.value_g_per_kwh == lookup("FR").g_per_kwh
    assert acct.info.intensity.resolved_from == "location"


def test_explicit_cloud_beats_env(project: Path) -> None:
    acct = resolve(
        CarbonConfig(cloud="azure:westeurope"),
        cwd=project,
        env={"GREENMETER_LOCATION": "PL"},
    )
    assert acct.info.intensity.location == "NLD"
    assert acct.info.intensity.resolved_from == "cloud"
    assert acct.info.intensity.cloud_region == "azure:westeurope"
    # no provider fleet PUE preset: 1.0 is assumed and a data-centre warning says how to set it
    assert acct.info.pue.value == 1.0 and acct.info.pue.resolved_from == "default"
    assert "carbon.pue_default_datacentre" in [c for c, _ in acct.warnings]


def test_env_beats_config_file(project: Path) -> None:
    _pyproject(project, '[tool.greenmeter.carbon]\nlocation = "DE"\npue = 1.4\n')
    acct = resolve(None, cwd=project, env={"GREENMETER_LOCATION": "fr", "GREENMETER_PUE": "1.3"})
    assert acct.info.intensity.location == "FRA"
    assert acct.info.intensity.resolved_from == "env"
    assert acct.pue == 1.3 and acct.info.pue.resolved_from == "env"
    assert any("GREENMETER_LOCATION" in s for s in acct.info.resolution)


def test_config_file_beats_default(project: Path) -> None:
    sub = project / "src" / "pkg"
    sub.mkdir(parents=True)
    _pyproject(project, '[tool.greenmeter.carbon]\nlocation = "DE"\npue = "uptime-2024"\n')
    acct = resolve(None, cwd=sub, env={})
    assert acct.info.intensity.location == "DEU"
    assert acct.info.intensity.resolved_from == "config_file"
    assert acct.pue == 1.56 and "Uptime" in acct.info.pue.source
    assert acct.warnings == []


def test_greenmeter_toml_and_tool_table(project: Path) -> None:
    (project / "greenmeter.toml").write_text("[carbon]\nintensity_g_per_kwh = 42\n")
    assert resolve(None, cwd=project, env={}).info.intensity.value_g_per_kwh == 42
    (project / "greenmeter.toml").unlink()
    _pyproject(project, '[tool.greenmeter]\nlocation = "CA-QC"\n')
    assert resolve(None, cwd=project, env={}).info.intensity.location == "CA-QC"


@pytest.mark.parametrize(
    "name, body",
    [
        ("pyproject.toml", '[tool.greenmeter]\nlocaton = "DE"\n'),
        ("pyproject.toml", '[tool.greenmeter.carbon]\nlocaton = "DE"\n'),
        ("greenmeter.toml", 'locaton = "DE"\n'),
        ("greenmeter.toml", '[carbon]\nlocaton = "DE"\n'),
    ],
)
def test_unknown_key_at_any_level_is_an_error(project: Path, name: str, body: str) -> None:
    (project / name).write_text(body, encoding="utf-8")
    with pytest.raises(CarbonError, match=r"unknown carbon setting 'locaton' \(did you mean "):
        resolve(None, cwd=project, env={})


def test_config_file_errors_name_the_file_and_key(project: Path) -> None:
    path = _pyproject(project, '[tool.greenmeter.carbon]\nlocaton = "DE"\n')
    with pytest.raises(CarbonError, match=r"unknown carbon setting.*'locaton'.*'location'"):
        resolve(None, cwd=project, env={})
    path.write_text("[tool.greenmeter.carbon]\npue = 0.5\n")
    with pytest.raises(CarbonError, match=r"pyproject.toml.*pue must be >= 1\.0"):
        resolve(None, cwd=project, env={})
    with pytest.raises(CarbonError, match="does not exist"):
        resolve(CarbonConfig(config_file=project / "nope.toml"), cwd=project, env={})


def test_config_file_override(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("elsewhere") / "greenmeter.toml"
    other.write_text('location = "NO"\n')
    _pyproject(project, '[tool.greenmeter.carbon]\nlocation = "DE"\n')
    acct = resolve(CarbonConfig(config_file=other), cwd=project, env={})
    assert acct.info.intensity.location == "NOR"
    acct = resolve(None, cwd=project, env={"GREENMETER_CONFIG": str(other)})
    assert acct.info.intensity.location == "NOR"


def test_default_is_world_average_with_loud_warning(project: Path) -> None:
    acct = resolve(None, cwd=project, env={})
    intensity = acct.info.intensity
    assert intensity.is_fallback and intensity.resolved_from == "default"
    assert intensity.value_g_per_kwh == world().g_per_kwh
    codes = [c for c, _ in acct.warnings]
    assert codes == ["carbon.default_intensity"]
    assert "NO GRID LOCATION" in acct.warnings[0][1]
    assert acct.pue == 1.0 and acct.info.pue.resolved_from == "default"
    assert intensity.year == world().year and "fallback" in acct.warnings[0][1]


def test_bad_env_value_names_the_variable(project: Path) -> None:
    with pytest.raises(CarbonError, match="GREENMETER_PUE"):
        resolve(None, cwd=project, env={"GREENMETER_PUE": "0.7"})
    with pytest.raises(CarbonError, match="GREENMETER_INTENSITY_G_PER_KWH='abc' is not a number"):
        resolve(None, cwd=project, env={"GREENMETER_INTENSITY_G_PER_KWH": "abc"})


def test_provider_figure_is_the_default_for_gcp(project: Path) -> None:
    own = resolve(CarbonConfig(cloud="gcp:europe-west1"), cwd=project, env={})
    grid = resolve(
        CarbonConfig(cloud="gcp:europe-west1", use_provider_figure=False), cwd=project, env={}
    )
    assert own.info.intensity.provider_figure and own.info.intensity.year == 2024
    assert own.info.intensity.value_g_per_kwh == 103.37
    assert "Google" in own.info.intensity.source
    assert not grid.info.intensity.provider_figure
    assert grid.info.intensity.value_g_per_kwh == lookup("BEL").g_per_kwh
    aws = resolve(CarbonConfig(cloud="aws:us-east-1"), cwd=project, env={})
    assert aws.info.intensity.value_g_per_kwh == lookup("US-VA").g_per_kwh
    with pytest.raises(CarbonError, match="no site for gcp:us-central2"):
        resolve(
            CarbonConfig(cloud="gcp:us-central2", use_provider_figure=False), cwd=project, env={}
        )


def test_lookup_that_changes_basis_warns(project: Path) -> None:
    state = resolve(CarbonConfig(location="US-TX"), cwd=project, env={})
    codes = {c: m for c, m in state.warnings}
    assert "carbon.basis_differs" in codes and "USA" in codes["carbon.basis_differs"]
    country = resolve(CarbonConfig(location="FR"), cwd=project, env={})
    assert "carbon.basis_differs" not in {c for c, _ in country.warnings}
    china = resolve(CarbonConfig(location="CN-BJ"), cwd=project, env={})
    assert china.info.intensity.gas == "CO2" and china.info.intensity.unit == "gCO2/kWh"


def test_info_names_every_constant(project: Path) -> None:
    acct = resolve(
        CarbonConfig(location="US-TX", pue=1.2, pue_source="site survey 2024", embodied=True),
        cwd=project,
        env={},
    )
    info = acct.info
    assert info.intensity.year == 2023 and "eGRID2023" in info.intensity.source
    assert info.intensity.licence and info.intensity.basis == "direct_combustion"
    assert info.pue.value == 1.2 and info.pue.source == "site survey 2024"
    assert info.dataset_version and info.dataset_date
    assert {d.kind for d in info.embodied.devices} == {"gpu", "server"}
    assert all(d.source for d in info.embodied.devices)
    # Round-trips through the report conventions.
    again = type(info).model_validate_json(info.model_dump_json())
    assert again == info
