"""``greenmeter footprint``: options, outputs, errors as one line, exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from footprint_support import make_report, save, sums
from greenmeter.cli import main
from greenmeter.cli.footprint import parse_when
from greenmeter.footprint import FootprintSummary


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    save(make_report(1, tags={"experiment": "a", "model": "x"}), root / "1.json")
    save(make_report(2, tags={"experiment": "a", "model": "y"}, day=1), root / "2.json")
    save(make_report(3, tags={"experiment": "b"}, day=2, status="failed"), root / "sub" / "3.json")
    (root / "sub" / "junk.json").write_text("nope")
    return root


def test_json_output_to_a_file(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fp.json"
    index = tmp_path / "i.sqlite3"
    code = main(["footprint", str(runs), "--by", "experiment,model", "-f", "json", "-o",
                 str(out), "--index", str(index)])  # fmt: skip
    assert code == 0 and index.is_file()
    summary = FootprintSummary.model_validate_json(out.read_text())
    truth = sums([make_report(1), make_report(2, day=1), make_report(3, day=2)])
    assert summary.total.it_energy_j == pytest.approx(truth["it_energy_j"])
    assert [g.label for g in summary.groups] == [
        "experiment=a, model=x", "experiment=a, model=y", "experiment=b, model=(none)",
    ]  # fmt: skip
    assert summary.runs is None and summary.total.runs.failed == 1
    assert capsys.readouterr().out == ""


def test_table_is_the_default(runs: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["footprint", str(runs), "--no-index"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("greenmeter footprint: 3 run(s) from 3 report file(s), 1 file(s) skipped")
    assert "junk.json" in out and "Total" in out


def test_filters(runs: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["footprint", str(runs), "--no-index", "-f", "json"]
    assert main([*args, "--where", "experiment=a", "--where", "model=y"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["runs"]["total"] == 1
    assert main([*args, "--where", "model=x", "--where", "model=y"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["runs"]["total"] == 2
    # a bare --until date includes that day; --since is inclusive
    assert main([*args, "--since", "2026-01-02", "--until", "2026-01-02"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"]["runs"]["total"] == 1 and doc["files"]["filtered_out"] == 2
    assert doc["filters"]["until_utc"] == "2026-01-03T00:00:00Z"


def test_csv_with_runs_lists_skipped_files_on_stderr(
    runs: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["footprint", str(runs), "--no-index", "-f", "csv", "--runs"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["level"] for r in rows] == ["total", "run", "run", "run"]
    assert "1 file(s) skipped" in captured.err and "junk.json" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "novalue"], "is not tag=value"),
        (["--where", "=x"], "is not tag=value"),
        (["--by", ","], "give tag names"),
        (["--since", "May 1st"], "not an ISO date"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "--until must be later"),
        (["-f", "docx"], "invalid choice"),
        (["--index", "x.db", "--no-index"], "not allowed with argument"),
    ],
)
def test_usage_errors_are_one_line(
    runs: Path, args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    index = [] if "--no-index" in args else ["--no-index"]
    code = main(["footprint", str(runs), *index, *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_path_that_matches_nothing(runs: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["footprint", str(runs), str(runs / "missing"), "--no-index"])
    err = capsys.readouterr().err
    assert code == 2 and "missing" in err and err.startswith("greenmeter footprint: error:")


def test_parse_when() -> None:
    assert parse_when("2024-05-01").isoformat() == "2024-05-01T00:00:00+00:00"
    assert parse_when("2024-05-01", end_of_day=True).isoformat() == "2024-05-02T00:00:00+00:00"
    assert parse_when("2024-05-01T12:00+02:00").isoformat() == "2024-05-01T10:00:00+00:00"
    assert parse_when("2024-05-01T12:00:00Z").isoformat() == "2024-05-01T12:00:00+00:00"
    assert parse_when("2024-05-01T12:00").isoformat() == "2024-05-01T12:00:00+00:00"


def test_the_installed_command(runs: Path, tmp_path: Path) -> None:
    env_cache = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "greenmeter", "footprint", str(runs), "-f", "md"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"GREENMETER_CACHE_DIR": str(env_cache), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# Compute and carbon footprint")
    assert (env_cache / "footprint-index.sqlite3").is_file()
