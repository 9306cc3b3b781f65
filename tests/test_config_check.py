"""Configuration mistakes are loud at the start: check_configuration, run, meter, doctor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from greenmeter.carbon import (
    CarbonConfig,
    CarbonError,
    ConfigurationWarning,
    check_configuration,
    warn_configuration,
)
from greenmeter.carbon.dataset import lookup
from greenmeter.carbon.settings import ENV_VARS, OTHER_ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
GM = (sys.executable, "-m", "greenmeter")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENMETER_")}
    env.pop("XDG_CONFIG_HOME", None)
    env.update(extra)
    return env


def _suggestions(text: str) -> list[str]:
    with pytest.raises(CarbonError) as info:
        lookup(text)
    match = re.search(r"Did you mean: (.*?)\? Use", str(info.value))
    assert match, str(info.value)
    return [s.split(" (")[0] for s in re.split(r", (?=[A-Z]{2,}[-A-Z0-9]* \()", match.group(1))]


@pytest.mark.parametrize(
    "typo, first",
    [
        ("Frnace", "FRA"),
        ("Germny", "DEU"),
        ("Untied States", "USA"),
        ("Swedn", "SWE"),
        ("Autralia", "AUS"),
        ("Japn", "JPN"),
        ("Californa", "US-CA"),
        ("Quebc", "CA-QC"),
    ],
)
def test_countries_are_suggested_before_subregions(typo: str, first: str) -> None:
    shown = _suggestions(typo)
    assert shown[0] == first
    kinds = [lookup(key).kind for key in shown]
    tiers = [{"country": 0}.get(k, 1 if k in ("us_state", "ca_province", "au_state",
             "cn_province") else 2) for k in kinds]  # fmt: skip
    assert tiers == sorted(tiers)


def test_location_typo_on_the_command_line_suggests_the_country_first(tmp_path: Path) -> None:
    done = subprocess.run(
        [*GM, "run", "--location", "Frnace", "--", sys.executable, "-c", "pass"],
        cwd=tmp_path, env=_env(HOME=str(tmp_path)), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    err = done.stderr
    assert "Did you mean: FRA (France)" in err
    assert err.index("FRA (France)") < err.index("EGRID-FRCC")


CASES = [
    ({"GREENMETER_LOCATION": "Germny"}, None, "config.unknown_location", "DEU (Germany)"),
    ({"GREENMETER_CLOUD_REGION": "aws:us-est-1"}, None, "config.unknown_cloud_region",
     "aws:us-east-1"),
    ({"GREENMETER_LOCATON": "DE"}, None, "config.unknown_env", "GREENMETER_LOCATION?"),
    ({"GREENMETER_PUE": "0.8"}, None, "config.invalid_value", "GREENMETER_PUE='0.8'"),
    ({}, ("pyproject.toml", '[tool.greenmeter]\nlocaton = "DE"\n'), "config.unknown_key",
     "'location'"),
    ({}, ("pyproject.toml", '[tool.greenmeter.carbon]\nlocation = "Frnace"\n'),
     "config.unknown_location", "FRA (France)"),
    ({}, ("greenmeter.toml", 'pue = 1.2\nlocaton = "DE"\n'), "config.unknown_key", "'location'"),
    ({}, ("greenmeter.toml", '[carbon]\ncloud = "gcp:europe-wst1"\n'),
     "config.unknown_cloud_region", "gcp:europe-west1"),
    ({}, ("greenmeter.toml", "[other]\nx = 1\n"), "config.unknown_key", "'other'"),
    ({"GREENMETER_CONFIG": "/nonexistent/g.toml"}, None, "config.missing_file",
     "GREENMETER_CONFIG"),
]  # fmt: skip


@pytest.mark.parametrize("env, file, code, hint", CASES)
def test_each_source_is_checked(project: Path, env, file, code: str, hint: str) -> None:
    if file is not None:
        (project / file[0]).write_text(file[1], encoding="utf-8")
    problems = check_configuration(None, cwd=project, env=env)
    assert [p.code for p in problems] == [code]
    assert problems[0].fatal and hint in problems[0].message
    assert "\n" not in problems[0].message


def test_every_problem_is_reported_at_once(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.greenmeter]\nlocaton = "DE"\npue = 0.5\n[tool.greenmeter.carbon]\nregion = 1\n'
    )
    env = {"GREENMETER_LOCATION": "Germny", "GREENMETER_PUE": "abc", "GREENMETER_FOO": "1"}
    problems = check_configuration(None, cwd=project, env=env)
    sources = sorted((p.code, p.setting) for p in problems)
    assert sources == [
        ("config.invalid_value", "pue"),
        ("config.invalid_value", "pue"),
        ("config.unknown_env", "GREENMETER_FOO"),
        ("config.unknown_key", "locaton"),
        ("config.unknown_key", "region"),
        ("config.unknown_location", "location"),
    ]


def test_a_clean_configuration_has_no_problem(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.greenmeter]\nlocation = "DE"\npue = 1.2\n')
    env = {"GREENMETER_PUE": "1.3", "GREENMETER_POWERCAP_ROOT": "/x", "GREENMETER_TAGS": "a=b"}
    assert check_configuration(CarbonConfig(cloud="aws:us-east-1"), cwd=project, env=env) == []
    assert check_configuration(False, cwd=project, env={}) == []


def test_every_variable_greenmeter_reads_is_known_to_the_checker() -> None:
    names: set[str] = set()
    for folder in ("src", "integrations", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"GREENMETER_[A-Z0-9_]*[A-Z0-9]", path.read_text("utf-8")))
    assert names, "no variable found: the scan is broken"
    assert names - set(ENV_VARS) - OTHER_ENV_VARS == set()


def test_warned_once_on_stderr_and_through_warnings(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"GREENMETER_LOCATION": "Germanyy-once"}
    with pytest.warns(ConfigurationWarning, match="Germanyy-once"):
        problems = warn_configuration(None, cwd=project, env=env)
    assert [p.code for p in problems] == ["config.unknown_location"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second time: nothing, not even a warning
        warn_configuration(None, cwd=project, env=env)
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "Germanyy-once" in line]) == 1
    assert err.startswith("greenmeter: configuration: ")


def test_warnings_turned_into_errors_do_not_stop_the_meter(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    monkeypatch.chdir(project)
    monkeypatch.setenv("GREENMETER_LOCATION", "Frnace-error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with EnergyMeter([TraceSensor({"t:cpu": PowerTrace.constant(5.0)})]) as meter:
            with meter.phase("train"):
                pass
    assert "Frnace-error" in capsys.readouterr().err


TRAINING = textwrap.dedent(
    """
    import sys, time
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    meter = EnergyMeter([TraceSensor({"t:cpu": PowerTrace.constant(20.0)})],
                        report_path=sys.argv[1])
    meter.start()
    print("TRAINING STARTED", file=sys.stderr, flush=True)
    for epoch in range(3):
        with meter.phase(f"epoch-{epoch}", kind="epoch"):
            time.sleep(0.02)
    meter.stop()
    print("TRAINING DONE", file=sys.stderr, flush=True)
    """
)


def test_a_location_typo_warns_once_at_start_and_the_training_goes_on(project: Path) -> None:
    report_path = project / "run.json"
    done = subprocess.run(
        [sys.executable, "-c", TRAINING, str(report_path)],
        cwd=project, env=_env(GREENMETER_LOCATION="Germny", HOME=str(project)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    warned = [i for i, line in enumerate(lines) if "Germny" in line]
    assert len(warned) == 1, done.stderr
    assert warned[0] < lines.index("TRAINING STARTED")
    assert lines[warned[0]].startswith("greenmeter: configuration: environment variable ")
    assert "DEU (Germany)" in lines[warned[0]]
    assert lines[-1] == "TRAINING DONE"
    report = json.loads(report_path.read_text())
    assert [p["name"] for p in report["phases"]] == ["epoch-0", "epoch-1", "epoch-2"]
    # no grid figure is guessed for a place that was misspelt: carbon stays empty, and
    # the report says why and how to fix it
    assert report["carbon"] is None
    why = [w for w in report["warnings"] if w["code"] == "carbon.unavailable"]
    assert len(why) == 1
    assert "GREENMETER_LOCATION='Germny'" in why[0]["message"]
    assert "DEU (Germany)" in why[0]["message"]


def test_greenmeter_run_refuses_to_start_on_a_mistake(project: Path) -> None:
    marker = project / "ran"
    cmd = [*GM, "run", "-q", "-o", str(project / "r.json"), "--", sys.executable, "-c",
           f"open({str(marker)!r}, 'w').close()"]  # fmt: skip
    for env in (
        {"GREENMETER_LOCATION": "Germny"},
        {"GREENMETER_LOCATON": "DE"},
    ):
        done = subprocess.run(
            cmd, cwd=project, env=_env(HOME=str(project), **env),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("greenmeter run: error: ")
        assert len(done.stderr.strip().splitlines()) == 1
        assert not marker.exists()
    (project / "pyproject.toml").write_text('[tool.greenmeter]\nlocaton = "DE"\n')
    done = subprocess.run(
        cmd, cwd=project, env=_env(HOME=str(project)), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "unknown carbon setting 'locaton'" in done.stderr
    assert "did you mean 'location'?" in done.stderr
    assert not marker.exists()


def test_greenmeter_run_notes_a_skipped_file_once_and_runs(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    (proj / ".git").mkdir(parents=True)
    (proj / "greenmeter.toml").write_text('location = "FR"\n')
    (proj / "greenmeter.toml").chmod(0o666)
    done = subprocess.run(
        [*GM, "run", "-q", "-o", str(tmp_path / "r.json"), "--", sys.executable, "-c", "pass"],
        cwd=proj, env=_env(HOME=str(tmp_path)), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("not read: it is writable by every user") == 1


def test_doctor_names_the_source_of_each_setting(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.greenmeter]\nlocation = "FR"\npue = 1.3\n')
    env = _env(HOME=str(project), GREENMETER_LOCATION="DE", GREENMETER_LOCATON="x")
    done = subprocess.run(
        [*GM, "doctor", "--json"], cwd=project, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    diag = json.loads(done.stdout)
    label = f"{project.resolve() / 'pyproject.toml'} [tool.greenmeter]"
    assert diag["settings"] == [
        {"setting": "location", "value": "DE", "source": "environment variable "
         "GREENMETER_LOCATION", "used": True},
        {"setting": "location", "value": "FR", "source": label, "used": False},
        {"setting": "pue", "value": 1.3, "source": label, "used": True},
    ]  # fmt: skip
    assert [p["code"] for p in diag["config_problems"]] == ["config.unknown_env"]
    text = subprocess.run(
        [*GM, "doctor"], cwd=project, env=env, capture_output=True, text=True, timeout=120
    ).stdout
    assert "location = 'DE'  from environment variable GREENMETER_LOCATION" in text
    assert f"pue = 1.3  from {label}" in text
    assert "error: unknown environment variable GREENMETER_LOCATON" in text
