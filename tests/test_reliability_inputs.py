"""Hostile input: malformed or huge configs, time series and trace files; secrets; network.

Configs (``greenmeter.toml``, ``[tool.greenmeter]`` in ``pyproject.toml``) and intensity
time series are fuzzed with hypothesis: random documents, one bad value put into a valid
document, random bytes. Only the module's own error type may come out, with a message
that names the file, and an invalid value is never accepted. The report loader has its
own fuzzing in ``test_report_io.py``; huge and deeply nested files are checked here for
every format. The source is scanned for code execution on file content, the live
provider's token is followed through every output, and a full run is made with the
network patched shut.
"""

from __future__ import annotations

import ast
import http.server
import io
import json
import logging
import math
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenmeter
from greenmeter.carbon import CarbonConfig, CarbonError, resolve
from greenmeter.carbon import settings as carbon_settings
from greenmeter.carbon.series import MAX_SERIES_BYTES, load_series, parse
from greenmeter.testing.trace import PowerTrace

SRC = Path(greenmeter.__file__).resolve().parent
CASES: dict[str, int] = {}


def _count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --------------------------------------------------------------------------------------
# configs

NUMERIC_FIELDS = (
    "intensity_g_per_kwh",
    "intensity_low_g_per_kwh",
    "intensity_high_g_per_kwh",
    "pue",
    "pue_low",
    "pue_high",
    "live_timeout_s",
    "market_factor_g_per_kwh",
    "renewable_share",
)
STRING_FIELDS = (
    "intensity_source",
    "location",
    "cloud",
    "pue_source",
    "intensity_series",
    "series_out_of_range",
    "live_provider",
    "live_zone",
    "live_base_url",
    "live_token_env",
)
#: A valid config that touches many settings at once.
VALID = {
    "intensity_g_per_kwh": 56.0,
    "intensity_low_g_per_kwh": 40.0,
    "intensity_high_g_per_kwh": 70.0,
    "intensity_source": "supplier letter, 2024",
    "pue": 1.3,
    "pue_low": 1.2,
    "pue_high": 1.5,
    "pue_source": "facility meter",
    "renewable_share": 0.4,
    "embodied": {"gpu": {"kgco2e": 150.0, "lifetime_h": 35040.0}},
}

toml_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
toml_scalars = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | toml_text
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True), inner, max_size=3
        )
    ),
    max_leaves=6,
)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml_doc(table: dict[str, Any], layout: str) -> tuple[str, str]:
    """(file name, text) of ``table`` placed as ``layout`` says."""
    body = "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in table.items())
    if layout == "greenmeter.toml":
        return "greenmeter.toml", body
    if layout == "greenmeter.toml [carbon]":
        return "greenmeter.toml", "[carbon]\n" + body
    if layout == "[tool.greenmeter]":
        return "pyproject.toml", "[project]\nname = 'x'\n[tool.greenmeter]\n" + body
    return "pyproject.toml", "[tool.greenmeter.carbon]\n" + body


LAYOUTS = [
    "greenmeter.toml",
    "greenmeter.toml [carbon]",
    "[tool.greenmeter]",
    "[tool.greenmeter.carbon]",
]


def _check_config(config: CarbonConfig) -> None:
    """An accepted config holds only values that make sense."""
    for name in NUMERIC_FIELDS:
        v = getattr(config, name)
        if isinstance(v, float):
            assert math.isfinite(v) and v >= 0, (name, v)
    if isinstance(config.pue, float):
        assert config.pue >= 1.0
    if config.renewable_share is not None:
        assert 0 <= config.renewable_share <= 1
    for name in STRING_FIELDS:
        v = getattr(config, name)
        assert v is None or isinstance(v, (str, os.PathLike)), (name, v)


def _load_config(folder: Path, name: str, text: str | bytes) -> CarbonConfig | None:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    try:
        config, _label = carbon_settings.from_file(path)
    except CarbonError as exc:
        assert str(path) in str(exc) and "Traceback" not in str(exc)
        return None
    _check_config(config)
    return config


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("configs")


def test_fuzz_configs(fuzz_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    CASES.clear()
    keys = st.sampled_from(CarbonConfig.field_names()) | st.from_regex(
        r"[a-z_]{1,12}", fullmatch=True
    )

    @FUZZ
    @given(table=st.dictionaries(keys, toml_values, max_size=5), layout=st.sampled_from(LAYOUTS))
    def random_tables(table: dict[str, Any], layout: str) -> None:
        _count("config_random")
        name, text = _toml_doc(table, layout)
        _load_config(fuzz_dir, name, text)

    @FUZZ
    @given(
        field=st.sampled_from(NUMERIC_FIELDS),
        bad=st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9, "12", True, [1.0]]),
        layout=st.sampled_from(LAYOUTS),
    )
    def one_bad_number(field: str, bad: Any, layout: str) -> None:
        _count("config_bad_number")
        table = {k: v for k, v in VALID.items() if k != "renewable_share"} | {field: bad}
        name, text = _toml_doc(table, layout)
        assert _load_config(fuzz_dir, name, text) is None, (field, bad)

    @FUZZ
    @given(
        field=st.sampled_from(STRING_FIELDS),
        bad=st.sampled_from([7, 1.5, False, [], {}, ["x"]]),
        layout=st.sampled_from(LAYOUTS),
    )
    def one_bad_string(field: str, bad: Any, layout: str) -> None:
        _count("config_bad_string")
        name, text = _toml_doc({**VALID, field: bad}, layout)
        assert _load_config(fuzz_dir, name, text) is None, (field, bad)

    @settings(max_examples=200, deadline=None)
    @given(blob=st.binary(max_size=300))
    def random_bytes(blob: bytes) -> None:
        _count("config_bytes")
        _load_config(fuzz_dir, "greenmeter.toml", blob)

    random_tables()
    one_bad_number()
    one_bad_string()
    random_bytes()
    # a valid config in every layout is read back exactly
    for layout in LAYOUTS:
        name, text = _toml_doc(VALID, layout)
        config = _load_config(fuzz_dir, name, text)
        assert config is not None and config.pue == 1.3 and config.renewable_share == 0.4
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nconfig fuzz: {total} cases {dict(sorted(CASES.items()))}")
    assert total >= 1000


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("greenmeter.toml", "a = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("greenmeter.toml", "a = " + "{b = " * 3000 + "1" + "}" * 3000, "nested too deeply"),
        ("greenmeter.toml", b"\xff\xfe = 1\n", "not UTF-8"),
        ("greenmeter.toml", "pue = \n", "not valid TOML"),
        ("pyproject.toml", "[tool]\ngreenmeter = 3\n", "must be a table"),
        ("greenmeter.toml", "[carbon]\npuee = 1.2\n", "did you mean 'pue'"),
    ],
    ids=["deep-array", "deep-table", "not-utf8", "bad-toml", "tool-not-table", "typo"],
)
def test_malformed_configs_are_rejected_clearly(
    tmp_path: Path, name: str, data: str | bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(CarbonError, match=words):
        carbon_settings.from_file(path)
    if name == "greenmeter.toml":  # through the resolver, as a run would find it
        with pytest.raises(CarbonError):
            resolve(None, cwd=tmp_path, env={})


def test_huge_config_is_rejected_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "greenmeter.toml"
    with open(path, "wb") as fh:
        fh.truncate(carbon_settings.MAX_CONFIG_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(CarbonError, match="larger than 1 MB"):
        carbon_settings.from_file(path)


# --------------------------------------------------------------------------------------
# intensity time series

VALID_POINTS = [[f"2024-05-01T{h:02d}:00:00Z", 100.0 + 10 * h] for h in range(6)]


def _parse(text: str, fmt: str | None) -> Any:
    try:
        series = parse(text, origin="series.csv", fmt=fmt)
    except CarbonError as exc:
        assert "series.csv" in str(exc) and "Traceback" not in str(exc)
        return None
    assert all(math.isfinite(v) and v >= 0 for v in series.values_g_per_kwh)
    assert all(b > a for a, b in zip(series.times_s, series.times_s[1:], strict=False))
    assert 0 <= series.start_s and series.end_s <= 253_402_300_799
    return series


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=25),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)


def test_fuzz_time_series(capsys: pytest.CaptureFixture[str]) -> None:
    CASES.clear()
    assert _parse(json.dumps(VALID_POINTS), "json") is not None

    @FUZZ
    @given(value=json_values)
    def random_json(value: Any) -> None:
        _count("series_random_json")
        _parse(json.dumps(value, allow_nan=True), None)

    @FUZZ
    @given(
        rows=st.lists(st.lists(st.text(max_size=12), min_size=0, max_size=3), max_size=6),
        header=st.sampled_from(["timestamp,intensity", "datetime,carbonIntensity", "a,b", ""]),
    )
    def random_csv(rows: list[list[str]], header: str) -> None:
        _count("series_random_csv")
        buf = io.StringIO()
        buf.write(header + "\n")
        for row in rows:
            buf.write(",".join(json.dumps(c) for c in row) + "\n")
        _parse(buf.getvalue(), "csv")

    @FUZZ
    @given(
        index=st.integers(min_value=0, max_value=len(VALID_POINTS) - 1),
        column=st.sampled_from([0, 1]),
        bad=st.sampled_from(
            [math.nan, math.inf, -1.0, "abc", None, True, [], "", "2024-13-01", 1e300, -1e12]
        ),
        fmt=st.sampled_from(["json", "csv"]),
    )
    def one_bad_point(index: int, column: int, bad: Any, fmt: str) -> None:
        _count("series_bad_point")
        points = [list(p) for p in VALID_POINTS]
        points[index][column] = bad
        if fmt == "json":
            text = json.dumps(points, allow_nan=True)
        else:
            text = "timestamp,intensity\n" + "".join(
                f"{'' if t is None else t},{'' if v is None else v}\n" for t, v in points
            )
        result = _parse(text, fmt)
        absurd_but_finite = column == 1 and bad == 1e300  # a number >= 0: not refused
        assert result is None or absurd_but_finite, (index, column, bad, fmt)

    @FUZZ
    @given(order=st.permutations(range(len(VALID_POINTS))), dup=st.booleans())
    def disorder(order: list[int], dup: bool) -> None:
        _count("series_order")
        points = [VALID_POINTS[i] for i in order]
        if dup:
            points.append(points[0])
        result = _parse(json.dumps(points), "json")
        if dup or order != sorted(order):
            assert result is None

    @settings(max_examples=200, deadline=None)
    @given(blob=st.binary(max_size=300))
    def random_bytes(blob: bytes) -> None:
        _count("series_bytes")
        _parse(blob.decode("utf-8", errors="replace"), None)

    random_json()
    random_csv()
    one_bad_point()
    disorder()
    random_bytes()
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\ntime series fuzz: {total} cases {dict(sorted(CASES.items()))}")
    assert total >= 1200


@pytest.mark.parametrize(
    "text, words",
    [
        ("[" * 100_000, "nested too deeply"),
        ('[["2024-05-01T00:00:00Z", 1], ["2024-05-01T01:00:00Z", ' + "9" * 5000 + "]]", "JSON"),
        ("timestamp,intensity\n1e300,1\n2e300,2\n", "outside 1970-01-01 to 9999-12-31"),
        ("timestamp,intensity\n0001-01-01T00:00:00Z,1\n0001-01-01T01:00:00Z,2\n", "outside"),
        ("timestamp,intensity\n9999-12-31T22:00:00Z,1\n9999-12-31T23:00:00Z,2\n", "outside"),
        (
            "timestamp,intensity\n2024-05-01T00:00:00Z,1\n2024-05-01T01:00:00Z,2\n"
            "2024-05-01T02:00:00Z,2\n2024-05-09T02:00:00Z,2\n",
            "gap",
        ),
    ],
    ids=["deep-json", "huge-int", "huge-timestamps", "year-1", "year-10000", "gap"],
)
def test_malformed_series_are_rejected_clearly(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(CarbonError, match=words):
        parse(text, origin="s")
    path = tmp_path / "series.csv"
    path.write_text(text)
    with pytest.raises(CarbonError):
        resolve(CarbonConfig(intensity_series=path), cwd=tmp_path, env={})


def test_huge_series_file_is_rejected_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    with open(path, "wb") as fh:
        fh.truncate(MAX_SERIES_BYTES + 1)
    with pytest.raises(CarbonError, match="above the 17 MB limit"):
        load_series(path)
    many = tmp_path / "many.json"
    many.write_text(json.dumps([[i * 60, 1.0] for i in range(500_001)]))
    with pytest.raises(CarbonError, match="more than 500000 points"):
        load_series(many)


# --------------------------------------------------------------------------------------
# power-trace files


@FUZZ
@given(rows=st.lists(st.lists(json_values, max_size=3), max_size=5))
def test_fuzz_power_trace_steps(rows: list[list[Any]]) -> None:
    """A trace from arbitrary steps (as a trace file gives them) is valid or refused."""
    _count("trace_steps")
    try:
        trace = PowerTrace([tuple(r) for r in rows], t0=0.0)  # type: ignore[misc]
    except (ValueError, TypeError):
        return
    assert trace.period_s > 0 and math.isfinite(trace.period_energy_j)
    assert all(d > 0 and p >= 0 and math.isfinite(d * p) for d, p in trace.steps)


TRACE_FILES = [
    ("not json", "nothing useful"),
    ("steps missing", json.dumps({"cpu:x": {"t0": 0}})),
    ("negative power", json.dumps({"cpu:x": {"steps": [[1, -5]], "t0": 0}})),
    ("nan duration", '{"cpu:x": {"steps": [[NaN, 5]], "t0": 0}}'),
    ("bad kind", json.dumps({"cpu:x": {"steps": [[1, 5]], "t0": 0, "kind": "toaster"}})),
    ("steps not pairs", json.dumps({"cpu:x": {"steps": [1, 2], "t0": 0}})),
    ("entry not an object", json.dumps({"cpu:x": [1, 2]})),
    ("top level a list", json.dumps([1, 2])),
    ("nested too deeply", "[" * 100_000),
]


@pytest.mark.parametrize("label, text", TRACE_FILES, ids=lambda v: v if len(v) < 30 else "")
def test_malformed_trace_files_are_rejected_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str, text: str
) -> None:
    from greenmeter.cli.run import runner

    path = tmp_path / "traces.json"
    path.write_text(text)
    monkeypatch.setenv(runner.TESTING_TRACES_ENV, str(path))
    with pytest.raises(runner.RunError, match="is not a valid trace file"):
        runner._testing_sensors()


# --------------------------------------------------------------------------------------
# no code execution on file content


FORBIDDEN_CALLS = {
    ("", "eval"),
    ("", "exec"),
    ("", "__import__"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("cPickle", "load"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
    ("dill", "load"),
    ("dill", "loads"),
    ("torch", "load"),
}


def _constant_source(node: ast.Call) -> bool:
    """``exec("...")`` of one string literal: fixed code, nothing read from data."""
    return (
        len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def _calls(tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _constant_source(node):
            continue
        f = node.func
        if isinstance(f, ast.Name):
            yield node.lineno, "", f.id
        elif isinstance(f, ast.Attribute):
            owner = f.value.id if isinstance(f.value, ast.Name) else ""
            yield node.lineno, owner, f.attr


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "yaml", "dill"}


def _violations(tree: ast.AST) -> list[str]:
    """Calls that execute or unpickle data, and imports of the unsafe loaders."""
    found = [
        f"{lineno}: {owner + '.' if owner else ''}{name}()"
        for lineno, owner, name in _calls(tree)
        if (owner, name) in FORBIDDEN_CALLS or (not owner and ("", name) in FORBIDDEN_CALLS)
    ]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            bad = {m.split(".")[0] for m in mods} & UNSAFE_MODULES
            if bad:
                found.append(f"{node.lineno}: import {sorted(bad)}")
    return found


def test_no_code_execution_on_file_content_in_the_package() -> None:
    # the scanner itself sees what it must refuse
    sample = "import pickle, yaml\npickle.loads(b)\nyaml.load(t)\neval(s)\nexec(c)\n"
    assert len(_violations(ast.parse(sample))) == 5
    assert _violations(ast.parse("exec('raise KeyboardInterrupt')")) == []  # a literal
    files = sorted(SRC.rglob("*.py")) + sorted((SRC.parent.parent / "integrations").rglob("*.py"))
    assert len(files) > 40
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(SRC.parent.parent)
        found += [f"{rel}:{v}" for v in _violations(tree)]
    assert found == []


# --------------------------------------------------------------------------------------
# the live provider's token is never written anywhere

TOKEN = "tok-5e3c1a9f-do-not-leak"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[_Server, str]:
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v3"


def _history_body() -> bytes:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    points = [
        {
            "zone": "FR",
            "carbonIntensity": 40 + h,
            "datetime": (now - timedelta(hours=23 - h)).isoformat(),
        }
        for h in range(24)
    ]
    return json.dumps({"zone": "FR", "history": points}).encode()


@pytest.mark.parametrize("behaviour", ["ok", "http_500", "garbage", "echo_json"])
def test_live_token_never_reaches_reports_logs_or_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    behaviour: str,
) -> None:
    from greenmeter import EnergyMeter
    from greenmeter.render import FORMATS, render
    from greenmeter.report import Report
    from greenmeter.testing.sensors import TraceSensor

    seen_tokens: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            token = self.headers.get("auth-token")
            seen_tokens.append(token)
            if behaviour == "ok":
                status, body = 200, _history_body()
            elif behaviour == "http_500":
                status, body = 500, f"internal error for token {token}".encode()
            elif behaviour == "garbage":
                status, body = 200, f"<html>{token}</html>".encode()
            else:  # a body that is JSON but not a series, quoting the token
                status, body = 200, json.dumps({"error": f"bad token {token}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server, base_url = _serve(Handler)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    try:
        carbon = CarbonConfig(
            live_provider="electricitymaps", live_zone="FR", live_base_url=base_url, location="FR"
        )
        path = tmp_path / "run.json"
        meter = EnergyMeter(
            [TraceSensor({"trace:cpu": PowerTrace.constant(50.0)})],
            carbon=carbon,
            report_path=path,
            checkpoint_interval_s=0.05,
            sample_interval_s=0.02,
        )
        with meter:
            with meter.phase("train"):
                import time

                time.sleep(0.2)
        report = Report.load(path)
        outputs = [path.read_text(), repr(meter.run.accountant().info), repr(meter.snapshot())]
        outputs += [render(report, fmt) for fmt in FORMATS]
    finally:
        server.shutdown()
        server.server_close()
    assert seen_tokens and seen_tokens[0] == TOKEN  # it was really used...
    captured = capfd.readouterr()
    outputs += [caplog.text, captured.out, captured.err]
    outputs += [w.message for w in report.warnings]
    for text in outputs:  # ...and written nowhere
        assert TOKEN not in text
    if behaviour == "ok":
        assert report.carbon is not None and report.carbon.time_series is not None
    else:
        assert any(w.code == "carbon.live_failed" for w in report.warnings)
    for f in tmp_path.iterdir():
        assert TOKEN.encode() not in f.read_bytes(), f


def test_live_token_not_forwarded_on_redirect_to_another_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A redirect to another origin must not carry the token there."""
    from greenmeter.carbon.live import LiveFetchError, fetch_history

    received: list[str | None] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.headers.get("auth-token"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(_history_body())

        def log_message(self, *args: object) -> None:
            pass

    other, other_url = _serve(Elsewhere)
    other_origin = other_url.replace("127.0.0.1", "localhost")

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", other_origin + "/carbon-intensity/history?zone=FR")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server, base_url = _serve(Redirect)
    try:
        try:
            fetch_history("FR", token=TOKEN, base_url=base_url, timeout_s=5.0)
        except LiveFetchError as exc:
            assert TOKEN not in str(exc)
    finally:
        for s in (server, other):
            s.shutdown()
            s.server_close()
    assert TOKEN not in received


# --------------------------------------------------------------------------------------
# nothing goes over the network unless configured


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = str(address[0])
    return host in ("localhost", "::1") or host.startswith("127.")


def test_full_run_report_and_render_make_no_network_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenmeter import EnergyMeter
    from greenmeter.render import FORMATS, render

    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def guard(what: str, address: Any) -> None:
        if not _is_loopback(address):
            attempts.append(f"{what} {address!r}")
            raise OSError(f"network use blocked by the test: {what} {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        guard("connect", address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard("connect_ex", address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: bytes, *args: Any) -> int:
        guard("sendto", args[-1])
        return real_sendto(self, data, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost", socket.gethostname()) and not str(host).startswith(
            "127."
        ):
            attempts.append(f"getaddrinfo {host!r}")
            raise OSError(f"name lookup blocked by the test: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def lookup_blocked(name: str) -> Any:
        def fn(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name} {args!r}")
            raise OSError(f"{name} blocked by the test")

        return fn

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getfqdn"):
        monkeypatch.setattr(socket, name, lookup_blocked(name))
    for var in list(os.environ):
        if var.startswith("GREENMETER_") or var in ("ELECTRICITYMAPS_TOKEN",):
            monkeypatch.delenv(var)
    monkeypatch.setenv("GREENMETER_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.chdir(tmp_path)

    path = tmp_path / "run.json"
    meter = EnergyMeter(report_path=path, checkpoint_interval_s=0.05, sample_interval_s=0.02)
    with meter:  # discovers sensors itself: estimate for CPU/RAM, NVML if present
        with meter.phase("train", kind="train") as ph:
            sum(i * i for i in range(200_000))
            ph.add(samples=10)
    report = meter.report()
    outputs = {fmt: render(report, fmt) for fmt in FORMATS}
    try:
        from greenmeter.render import plot

        plot(report, tmp_path / "power.png")
    except ImportError:  # pragma: no cover - matplotlib missing
        pass
    assert attempts == []
    assert report.status == "complete" and report.phase("train").items.samples == 10
    assert all(outputs.values())
    # the guard does catch a real attempt (TEST-NET-1 address, never routed)
    with socket.socket() as probe, pytest.raises(OSError, match="blocked by the test"):
        probe.connect(("192.0.2.1", 80))
    assert attempts == ["connect ('192.0.2.1', 80)"]
