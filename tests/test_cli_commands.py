"""The non-run subcommands: doctor, schema, validate, merge, report/compare/demo dispatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from greenmeter import __version__
from greenmeter.cli import main
from greenmeter.runner import TESTING_TRACES_ENV


@pytest.fixture(scope="module")
def run_report(tmp_path_factory) -> Path:
    """A real report written by ``greenmeter run`` on trace-driven sensors."""
    tmp = tmp_path_factory.mktemp("run")
    spec = {"trace:cpu": {"steps": [[0.05, 100.0], [0.05, 10.0]], "t0": time.monotonic()}}
    (tmp / "traces.json").write_text(json.dumps(spec))
    out = tmp / "run.json"
    env = {**os.environ, TESTING_TRACES_ENV: str(tmp / "traces.json")}
    cmd = [sys.executable, "-m", "greenmeter", "run", "-q", "--location", "FR", "-o", str(out)]
    subprocess.run([*cmd, "--", sys.executable, "-c", "pass"], env=env, check=True)
    return out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"greenmeter {__version__}"


def test_import_is_light():
    code = "import sys, greenmeter.cli; print(sorted({m.split('.')[0] for m in sys.modules}))"
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(mods.stdout.replace("'", '"')))
    assert not loaded & {"torch", "pydantic", "numpy", "lightning", "matplotlib"}


def test_usage_errors_are_one_line_with_exit_2(capsys, tmp_path):
    assert main(["report", str(tmp_path / "x.json"), "--format", "pdf"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'pdf'" in err and "--help" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["report", str(tmp_path / "missing.json")]) in (2,)
    err = capsys.readouterr().err
    assert "missing.json" in err and "Traceback" not in err
    assert main([]) == 2
    assert main(["nosuch"]) == 2


# -- doctor ------------------------------------------------------------------------------


def test_doctor_names_reason_and_fix_for_every_missing_source(tmp_path, capsys):
    empty = tmp_path / "powercap"
    empty.mkdir()
    assert main(["doctor", "--json", "--powercap-root", str(empty)]) == 0
    diag = json.loads(capsys.readouterr().out)
    missing = {(u["sensor"], u["kind"]): u for u in diag["unavailable"]}
    rapl = missing[("rapl", "cpu")]
    assert rapl["reason"] and rapl["fix"]
    # this host: no RAPL counters (an empty tree), CPU falls back to a labelled estimate
    assert {c["method"] for c in diag["components"] if c["kind"] == "cpu"} == {"estimated"}
    assert main(["doctor", "--powercap-root", str(empty)]) == 0
    text = capsys.readouterr().out
    for u in diag["unavailable"]:
        assert u["reason"] in text
        if u["fix"]:
            assert u["fix"] in text
    if not any(c["kind"] == "gpu" for c in diag["components"]):
        nvml = missing[("nvml", "gpu")]
        # No library at all, or (when an earlier test loaded the fake one in this process)
        # a library without a driver behind it.
        assert any(w in nvml["reason"] for w in ("libnvidia-ml", "NVML", "NVIDIA management"))
        assert nvml["fix"] and nvml["fix"] in text
    assert "Carbon:" in text and "gCO2e/kWh" in text


def test_doctor_shows_the_resolved_carbon_settings(capsys):
    assert main(["doctor", "--json", "--location", "FR", "--pue", "1.2"]) == 0
    diag = json.loads(capsys.readouterr().out)
    assert diag["carbon"]["intensity"]["location"] in ("FR", "FRA")
    assert diag["carbon"]["intensity"]["is_fallback"] is False
    assert diag["carbon"]["pue"]["value"] == 1.2


def test_doctor_on_emulated_rapl_reports_counters(make_powercap, capsys):
    from greenmeter.testing import PowerTrace

    pc = make_powercap(package_traces=[PowerTrace.constant(50.0)])
    assert main(["doctor", "--json", "--gpus", "none", "--powercap-root", str(pc.root)]) == 0
    diag = json.loads(capsys.readouterr().out)
    assert {c["id"]: c["method"] for c in diag["components"]}["rapl:package-0"] == "counter"


# -- schema and validate --------------------------------------------------------------------


def test_schema_prints_the_json_schema(capsys, tmp_path):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"phases", "totals", "status"} <= set(schema["properties"])
    target = tmp_path / "s.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == schema


def test_validate_accepts_a_real_report(run_report, capsys):
    assert main(["validate", str(run_report)]) == 0
    out = capsys.readouterr().out
    assert str(run_report) in out and "OK" in out


def test_validate_names_the_field_and_what_was_expected(run_report, tmp_path, capsys):
    data = json.loads(run_report.read_text())
    data["totals"]["duration_s"] = -5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    torn = tmp_path / "torn.json"
    torn.write_text(run_report.read_text()[:200])
    assert main(["validate", str(run_report), str(bad), str(torn)]) == 1
    captured = capsys.readouterr()
    assert "totals.duration_s" in captured.err and "greater than or equal to 0" in captured.err
    assert str(torn) in captured.err
    assert "2 of 3 file(s) invalid" in captured.err
    assert "Traceback" not in captured.err


def test_merge_writes_a_valid_report(run_report, tmp_path, capsys):
    merged = tmp_path / "merged.json"
    assert main(["merge", str(run_report), str(run_report), "-o", str(merged)]) in (0, 2)
    err = capsys.readouterr().err
    if merged.exists():
        assert main(["validate", "-q", str(merged)]) == 0
    else:  # merging a report with itself may be refused; then the reason is one clear line
        assert "cannot merge" in err and "Traceback" not in err


# -- dispatch to the renderers and the demo --------------------------------------------------


@pytest.fixture
def fake_render(monkeypatch):
    calls: list[tuple] = []
    mod = types.ModuleType("greenmeter.render")
    mod.render = lambda subject, fmt: calls.append(("render", subject, fmt)) or f"<{fmt}>"
    mod.compare = lambda reports, fmt: calls.append(("compare", reports, fmt)) or "cmp"
    mod.plot = lambda report, path: calls.append(("plot", report, path)) or Path(path).touch()
    monkeypatch.setitem(sys.modules, "greenmeter.render", mod)
    return calls


def test_report_dispatches_to_render(run_report, fake_render, tmp_path, capsys):
    assert main(["report", str(run_report), "--format", "latex"]) == 0
    assert capsys.readouterr().out == "<latex>\n"
    (name, subject, fmt) = fake_render[-1]
    assert name == "render" and fmt == "latex" and subject.run_id  # a loaded Report
    out, png = tmp_path / "r.html", tmp_path / "p.png"
    argv = ["report", str(run_report), str(run_report), "-f", "html", "-o", str(out)]
    assert main(argv) == 0
    assert out.read_text() == "<html>\n" and isinstance(fake_render[-1][1], list)
    assert main(["report", str(run_report), "--plot", str(png)]) == 0
    assert fake_render[-1][0] == "plot" and png.exists()
    assert main(["compare", str(run_report), str(run_report), "-f", "csv"]) == 0
    assert fake_render[-1][0] == "compare" and len(fake_render[-1][1]) == 2
    assert main(["compare", str(run_report)]) == 2


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["report", "{r}"], "greenmeter.render"),
        (["compare", "{r}", "{r}"], "greenmeter.render"),
        (["demo", "--out", "{d}"], "greenmeter.demo"),
    ],
)
def test_missing_render_or_demo_is_a_clear_error(
    run_report, tmp_path, monkeypatch, capsys, argv, module
):
    monkeypatch.setitem(sys.modules, module, None)  # import now fails as if absent
    args = [a.format(r=run_report, d=tmp_path / "demo") for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert module in err and "reinstall" in err and "Traceback" not in err


def test_demo_dispatches_with_the_output_dir(tmp_path, monkeypatch):
    seen = []
    mod = types.ModuleType("greenmeter.demo")
    mod.main = lambda out_dir: seen.append(out_dir) or 0
    monkeypatch.setitem(sys.modules, "greenmeter.demo", mod)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    assert seen == [str(tmp_path / "d")]
