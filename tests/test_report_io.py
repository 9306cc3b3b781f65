"""Loading and saving: size limits, version dispatch, readable errors, atomic writes.

The loader is fuzzed with hypothesis: random JSON, values mutated in a valid report,
truncated files, wrong types, NaN/Infinity, negative quantities, unknown fields and
versions. Only ``ReportError`` may come out, with a readable message, and an invalid
value is never accepted silently.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenmeter.report import (
    Report,
    ReportError,
    build_report,
    load_report,
    parse_report,
    register_schema,
    save_report,
    validate_files,
)
from greenmeter.report.io import SCHEMA_VERSIONS
from test_report_support import HOST_INFO, StubAccountant, make_snapshot

#: Field-name endings of quantities that can never be negative.
UNIT_SUFFIXES = ("_j", "_s", "_w", "_g", "_kwh", "_bytes", "_hours")
#: Mappings whose keys are free-form (anything else rejects unknown keys).
FREE_FORM = {"detail", "attrs", "extra", "dtypes", "embodied_by_kind_g"}

CASES: dict[str, int] = {}


def _count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


def _base_report() -> Report:
    return build_report(
        make_snapshot(timeline_step_s=10.0),
        carbon=StubAccountant(),
        host_info=HOST_INFO,
        include_git=False,
        command=["train.py"],
        model={"name": "m", "parameters_total": 10, "dtypes": {"float32": 10}},
        extra={"note": "fuzz"},
        segments=[
            {
                "start_utc": "2020-01-01T00:00:00Z",
                "end_utc": "2020-01-01T00:10:00Z",
                "duration_s": 600.0,
                "host": "node-a",
                "it_energy_j": 1.0,
            }
        ],
    )


BASE = _base_report()
BASE_TEXT = BASE.to_json()
BASE_DICT = json.loads(BASE_TEXT)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE_DICT)


def _get_at(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


NUMBER_PATHS = [
    p
    for p in PATHS
    if isinstance(_get_at(BASE_DICT, p), (int, float))
    and not isinstance(_get_at(BASE_DICT, p), bool)
]
UNIT_NUMBER_PATHS = [
    p
    for p in NUMBER_PATHS
    if any(isinstance(k, str) and k.endswith(UNIT_SUFFIXES) for k in p) and "extra" not in p
]
STRING_PATHS = [p for p in PATHS if isinstance(_get_at(BASE_DICT, p), str) and p[0] != "extra"]
OBJECT_PATHS = [()] + [
    p
    for p in PATHS
    if isinstance(_get_at(BASE_DICT, p), dict)
    and not (isinstance(p[-1], str) and p[-1] in FREE_FORM)
    and not (isinstance(p[-1], str) and p[-1].endswith(("energy_j", "power_w", "_hours")))
    and "extra" not in p
]


def _set_at(doc: Any, path: tuple, value: Any) -> None:
    parent = _get_at(doc, path[:-1])
    parent[path[-1]] = value


def _check_accepted(report: Report) -> None:
    """An accepted report holds no invalid value and survives its own round trip."""
    data = json.loads(report.to_json())

    def walk(node: Any, keys: tuple) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*keys, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*keys, i))
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            assert math.isfinite(node), keys
            if any(isinstance(k, str) and k.endswith(UNIT_SUFFIXES) for k in keys):
                assert "extra" in keys or node >= 0, f"negative {keys} accepted"

    walk(data, ())
    assert parse_report(report.to_json()) == report


def _load_text(text: str | bytes) -> Report | None:
    """Parse; return the report or None on ReportError; any other exception fails."""
    try:
        report = parse_report(text)
    except ReportError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        assert len(message) < 20_000
        return None
    _check_accepted(report)
    return report


# --------------------------------------------------------------------------------------
# plain behaviour


def test_segments_are_checked_against_the_totals() -> None:
    data = json.loads(_base_report().to_json())
    assert data["segments"][0]["it_energy_j"] == 1.0
    data["segments"][0]["it_energy_j"] = data["totals"]["it_energy_j"] * 2
    with pytest.raises(ReportError, match="segments"):
        parse_report(json.dumps(data))
    data = json.loads(_base_report().to_json())
    data["segments"][0]["end_utc"] = "2019-01-01T00:00:00Z"
    with pytest.raises(ReportError, match="before its start"):
        parse_report(json.dumps(data))


def test_save_and_load_round_trip(tmp_path) -> None:
    path = save_report(BASE, tmp_path / "sub" / "run.json")
    assert path.exists() and not list(path.parent.glob(".*.tmp"))
    assert load_report(path) == BASE
    assert Report.load(str(path)) == BASE


def test_save_is_atomic_under_concurrent_readers(tmp_path) -> None:
    path = tmp_path / "run.json"
    BASE.save(path)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                load_report(path)
            except BaseException as exc:  # a torn file would show here
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for k in range(30):
            BASE.model_copy(update={"run_name": f"r{k}" * 50}).save(path)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert load_report(path).run_name == "r29" * 50


def test_unknown_version_lists_the_known_ones() -> None:
    doc = copy.deepcopy(BASE_DICT)
    doc["schema_version"] = "99"
    with pytest.raises(ReportError, match=r"unknown schema_version '99'.*'1', '2'"):
        parse_report(json.dumps(doc))
    del doc["schema_version"]
    with pytest.raises(ReportError, match="no schema_version"):
        parse_report(json.dumps(doc))


def test_registered_older_version_keeps_loading() -> None:
    from typing import Literal

    class ReportV0(Report):
        schema_version: Literal["0"] = "0"  # type: ignore[assignment]

    doc = copy.deepcopy(BASE_DICT)
    doc["schema_version"] = "0"
    register_schema("0", ReportV0)
    try:
        loaded = parse_report(json.dumps(doc))
        assert isinstance(loaded, ReportV0) and loaded.totals == BASE.totals
    finally:
        SCHEMA_VERSIONS.pop("0")


def test_error_messages_name_the_field_and_expectation() -> None:
    doc = copy.deepcopy(BASE_DICT)
    doc["phases"][0]["children"][0]["duration_s"] = -3
    doc["totals"]["pue"] = "high"
    doc["components"][0]["bogus"] = 1
    with pytest.raises(ReportError) as info:
        parse_report(json.dumps(doc))
    text = str(info.value)
    assert "phases[0].children[0].duration_s" in text
    assert "greater than or equal to 0" in text and "found -3" in text
    assert "totals.pue" in text and "valid number" in text
    assert "bogus: unknown field" in text
    assert "Traceback" not in text


def test_consistency_is_checked_not_just_types() -> None:
    fac = {"facility_energy_j": 3.6e6, "facility_energy_kwh": 1.0}
    for path, value, words in [
        (("totals", "it_energy_kwh"), 123.0, "totals: it_energy_kwh does not equal"),
        (("totals",), {**BASE_DICT["totals"], **fac}, "it_energy_j x pue"),
        (("phases", 0, "it_energy_j"), 1.0, "sum of energy_j"),
        (("phases", 0, "children", 0, "path"), ["other", "train"], "not below"),
        (("phases",), [*BASE_DICT["phases"], BASE_DICT["phases"][1]], "appears twice"),
        (("phases", 0, "energy_j", "x@y"), 0.0, r"unknown component\(s\): x@y"),
        (("end_utc",), "2025-01-01T00:00:00Z", "end_utc is before start_utc"),
        (("run_id",), "xyz", "run_id"),
        (("phases", 0, "children", 0, "efficiency", "samples_per_s"), 1.0, "inputs give"),
        (("phases", 1, "efficiency", "latency_p99_s"), 0.5, "inputs give"),
        (("start_utc",), "2026-01-01T00:00:00", "timezone"),
    ]:
        doc = copy.deepcopy(BASE_DICT)
        _set_at(doc, path, value)
        with pytest.raises(ReportError, match=words) as info:
            parse_report(json.dumps(doc))
        assert "found {" not in str(info.value)


def test_file_limits_and_damaged_files(tmp_path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(64 * 1024 * 1024 + 1)  # sparse: costs no disk
    with pytest.raises(ReportError, match="over the 67108864-byte limit"):
        load_report(big)
    small = tmp_path / "run.json"
    BASE.save(small)
    with pytest.raises(ReportError, match="limit"):
        load_report(small, max_bytes=1000)
    for name, data in [
        ("empty.json", b""),
        ("latin.json", b'{"schema_version": "1", "x": "\xff"}'),
        ("deep.json", b"[" * 200_000),
        ("list.json", b"[1, 2]"),
        ("nan.json", b'{"schema_version": "1", "duration_s": NaN}'),
    ]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ReportError):
            load_report(p)
    with pytest.raises(ReportError, match="cannot read"):
        load_report(tmp_path / "missing.json")
    with pytest.raises(ReportError, match="cannot read"):
        load_report(tmp_path)


def test_validate_files_reports_each(tmp_path) -> None:
    good = BASE.save(tmp_path / "good.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "1"}')
    out = validate_files([good, bad, tmp_path / "none.json"])
    assert [ok for _, ok, _ in out] == [True, False, False]
    assert "valid schema 2 report" in out[0][2] and BASE.run_id in out[0][2]
    assert "run_id: required field is missing" in out[1][2]


# --------------------------------------------------------------------------------------
# fuzzing

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(data=st.data())
def _mutated(data: st.DataObject) -> None:
    """Mutate one spot of a valid report; invalid values must be rejected."""
    doc = copy.deepcopy(BASE_DICT)
    op = data.draw(
        st.sampled_from(
            ["replace", "nan", "negative", "wrong_type", "delete", "unknown_key", "string"]
        )
    )
    must_reject = False
    if op == "replace":
        path = data.draw(st.sampled_from(PATHS))
        _set_at(doc, path, data.draw(json_values))
    elif op == "nan":
        path = data.draw(st.sampled_from(NUMBER_PATHS))
        _set_at(doc, path, data.draw(st.sampled_from([math.nan, math.inf, -math.inf])))
        must_reject = True
    elif op == "negative":
        path = data.draw(st.sampled_from(UNIT_NUMBER_PATHS))
        _set_at(doc, path, -data.draw(st.floats(min_value=1e-9, max_value=1e12)))
        must_reject = True
    elif op == "wrong_type":
        path = data.draw(st.sampled_from(NUMBER_PATHS))
        _set_at(doc, path, data.draw(st.sampled_from(["12", "", True, [1], {"a": 1}])))
        must_reject = "extra" not in path
    elif op == "string":
        path = data.draw(st.sampled_from(STRING_PATHS))
        _set_at(doc, path, data.draw(st.sampled_from([7, 1.5, True, [], {}])))
        must_reject = True
    elif op == "delete":
        path = data.draw(st.sampled_from(PATHS))
        parent = _get_at(doc, path[:-1])
        del parent[path[-1]]
    else:
        path = data.draw(st.sampled_from(OBJECT_PATHS))
        _get_at(doc, path)["zz_" + data.draw(st.text(max_size=6))] = 1
        must_reject = True
    _count(op)
    result = _load_text(json.dumps(doc, allow_nan=True))
    if must_reject:
        assert result is None, f"{op} at {path} was accepted"


FUZZ_DIR = tempfile.mkdtemp(prefix="greenmeter-fuzz-")
FUZZ_FILE = os.path.join(FUZZ_DIR, "report.json")


@settings(max_examples=300, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(BASE_TEXT.rstrip()) - 1),
    limit=st.integers(min_value=0, max_value=len(BASE_TEXT) - 1),
)
def _truncated(cut: int, limit: int) -> None:
    """A file cut short anywhere, and a whole file over a (lowered) size limit."""
    os.makedirs(FUZZ_DIR, exist_ok=True)
    _count("truncated")
    with open(FUZZ_FILE, "w", encoding="utf-8") as fh:
        fh.write(BASE_TEXT[:cut])
    with pytest.raises(ReportError):
        load_report(FUZZ_FILE)
    _count("over_size_limit")
    with open(FUZZ_FILE, "w", encoding="utf-8") as fh:
        fh.write(BASE_TEXT)
    with pytest.raises(ReportError, match="limit"):
        load_report(FUZZ_FILE, max_bytes=limit)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def _random_json(value: Any) -> None:
    _count("random_json")
    assert _load_text(json.dumps(value, allow_nan=True)) is None


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=200), version=st.one_of(st.text(max_size=5), st.integers()))
def _bytes_and_versions(blob: bytes, version: Any) -> None:
    _count("bytes_and_versions")
    assert _load_text(blob) is None
    doc = copy.deepcopy(BASE_DICT)
    doc["schema_version"] = version
    if version not in ("1", "2"):
        assert _load_text(json.dumps(doc)) is None


def test_fuzz_loader(capsys: pytest.CaptureFixture[str]) -> None:
    """Only ReportError comes out; invalid values are never accepted; prints the counts."""
    CASES.clear()
    try:
        _mutated()
        _truncated()
        _random_json()
        _bytes_and_versions()
    finally:
        shutil.rmtree(FUZZ_DIR, ignore_errors=True)
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nreport loader fuzz: {total} cases {dict(sorted(CASES.items()))}")
    assert CASES.get("truncated", 0) >= 100 and CASES.get("random_json", 0) >= 100
    assert sum(CASES.get(k, 0) for k in ("nan", "negative", "wrong_type", "string")) >= 500
