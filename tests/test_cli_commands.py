"""The non-run subcommands: doctor, schema, validate, merge, report/compare/demo dispatch."""

from __future__ import annotations

import argparse
import errno
import io
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
from greenmeter.cli.run.runner import TESTING_TRACES_ENV


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
    assert "invalid choice 'pdf'" in err and "--help" in err
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
    mod.check_plot_path = lambda path: calls.append(("check_plot_path", path)) or "png"
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
    mod.main = lambda out_dir, quick=False: seen.append((out_dir, quick)) or 0
    monkeypatch.setitem(sys.modules, "greenmeter.demo", mod)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    assert main(["demo", "--quick"]) == 0
    assert seen == [(str(tmp_path / "d"), False), ("greenmeter-demo", True)]


# -- output that cannot be written, long values, suggestions ---------------------------------

_FULL = Path("/dev/full")


@pytest.mark.skipif(not _FULL.exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{r}"],
        ["report", "{r}", "-f", "latex"],
        ["compare", "{r}", "{r}"],
        ["merge", "{r}"],
        ["validate", "{r}"],
        ["schema"],
        ["doctor", "--gpus", "none"],
        ["--help"],
        ["--version"],
    ],
)
def test_a_full_disk_on_stdout_is_one_line_and_a_failure(run_report, argv):
    args = [a.format(r=run_report) for a in argv]
    with _FULL.open("w") as full:
        res = subprocess.run(
            [sys.executable, "-m", "greenmeter", *args],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "cannot write to standard output: No space left on device" in lines[0]
    assert lines[0].startswith("greenmeter")


class _FullStream(io.StringIO):
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_every_printing_subcommand_goes_through_the_guard(monkeypatch, capsys, tmp_path):
    """In process: the demo's summary too (it prints with print())."""
    mod = types.ModuleType("greenmeter.demo")
    mod.main = lambda out_dir, quick=False: print("summary") or 0
    monkeypatch.setitem(sys.modules, "greenmeter.demo", mod)
    monkeypatch.setattr(sys, "stdout", _FullStream())
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "greenmeter demo: error: cannot write to standard output: No space left on device; "
        "redirect it somewhere writable\n"
    )
    assert isinstance(sys.stdout, _FullStream)  # put back as it was


def test_echoed_values_are_shortened(run_report, tmp_path, capsys):
    data = json.loads(run_report.read_text())
    data["schema_version"] = "9" * 10_000_000
    big = tmp_path / "big.json"
    big.write_text(json.dumps(data))
    assert main(["report", str(big)]) == 2
    err = capsys.readouterr().err
    assert len(err) < 1500 and err.count("\n") == 1 and "9" * 200 not in err
    assert err.startswith("greenmeter report: error:") and "unknown schema_version" in err
    assert main(["report", str(run_report), "--format", "x" * 100_000]) == 2
    err = capsys.readouterr().err
    assert len(err) < 1500 and err.count("\n") == 1 and "100,000 characters" in err
    assert main(["report", str(run_report), "--plot", "p" * 50_000 + ".nosuch"]) == 2
    err = capsys.readouterr().err
    assert len(err) < 1500 and err.count("\n") == 1


def _mistyped(option: str) -> str:
    """``--format`` -> ``--fromat``: two letters after the dashes swapped."""
    body = option[2:]
    return "--" + body[0] + body[2] + body[1] + body[3:] if len(body) > 3 else option + "x"


def test_every_option_of_every_subcommand_gets_a_did_you_mean(capsys):
    from greenmeter.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for name, subparser in sub.choices.items():
        options = [s for s in subparser._option_string_actions if s.startswith("--")]
        needs_file = any(a.nargs == "+" for a in subparser._positionals._group_actions)
        for option in options:
            wrong = _mistyped(option)
            if wrong in options or option == "--help":
                continue
            assert main([name, wrong, *(["x.json"] if needs_file else [])]) == 2
            err = capsys.readouterr().err
            assert f"unrecognized argument: '{wrong}'" in err, err
            assert f"did you mean '{option}'?" in err, (option, err)
            assert len(err.strip().splitlines()) == 1
            checked += 1
    assert checked >= 20


def test_format_names_are_suggested_and_markdown_is_md(run_report, capsys):
    assert main(["report", str(run_report), "--fromat", "latex"]) == 2
    assert "did you mean '--format'?" in capsys.readouterr().err
    assert main(["report", str(run_report), "--format", "tex"]) == 2
    assert "did you mean 'latex'?" in capsys.readouterr().err
    assert main(["compare", str(run_report), str(run_report), "-f", "htm"]) == 2
    assert "did you mean 'html'?" in capsys.readouterr().err
    assert main(["reprot", str(run_report)]) == 2
    assert "did you mean 'report'?" in capsys.readouterr().err
    assert main(["report", str(run_report), "--format", "md"]) == 0
    as_md = capsys.readouterr().out
    assert main(["report", str(run_report), "--format", "markdown"]) == 0
    assert capsys.readouterr().out == as_md and as_md.startswith("# Energy report")
    assert main(["compare", str(run_report), str(run_report), "-f", "Markdown"]) == 0
    assert capsys.readouterr().out.startswith("| Phase | Run |")


def test_carbon_errors_name_the_options(capsys):
    assert main(["doctor", "--location", "Germny"]) == 2
    err = capsys.readouterr().err
    assert "--intensity" in err and "intensity_g_per_kwh" not in err
    assert main(["doctor", "--pue", "0.5"]) == 2
    assert "carbon settings: --pue must be >= 1.0" in capsys.readouterr().err


def test_doctor_lists_no_source_that_was_not_requested_or_needed(make_powercap, capsys):
    from greenmeter.testing import PowerTrace

    pc = make_powercap(package_traces=[PowerTrace.constant(50.0)])
    for root in (str(pc.root), str(pc.root) + "-missing"):
        assert main(["doctor", "--json", "--gpus", "none", "--powercap-root", root]) == 0
        diag = json.loads(capsys.readouterr().out)
        reasons = [u["reason"] for u in diag["unavailable"]]
        assert not [r for r in reasons if "not requested" in r or r.startswith("not needed")]
        assert "pyrapl" not in {u["sensor"] for u in diag["unavailable"]}
        assert main(["doctor", "--gpus", "none", "--powercap-root", root]) == 0
        text = capsys.readouterr().out
        assert "not requested" not in text and "not needed" not in text
    assert any(u["sensor"] == "rapl" for u in diag["unavailable"])  # a real gap stays


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("matplotlib") is None, reason="no matplotlib"
)
def test_report_plots_to_any_matplotlib_format_and_errors_name_the_path(
    run_report, tmp_path, capsys
):
    jpg = tmp_path / "power.jpg"
    assert main(["report", str(run_report), "--plot", str(jpg), "-o", str(tmp_path / "r.md")]) == 0
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff"
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = blocker / "p.png"
    out = tmp_path / "r2.md"
    assert main(["report", str(run_report), "--plot", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(bad)) == 1 and ".tmp" not in err and len(err.splitlines()) == 1
    assert "/" not in err.replace(str(bad), "")
    out3 = tmp_path / "r3.md"
    assert (
        main(["report", str(run_report), "--plot", str(tmp_path / "p.docx"), "-o", str(out3)]) == 2
    )
    assert "the suffix .docx; use one of" in capsys.readouterr().err
    assert not out3.exists()  # a plot that cannot be made stops the command before output
