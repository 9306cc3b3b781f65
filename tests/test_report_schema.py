"""The committed JSON Schema matches the models, and describes real reports."""

from __future__ import annotations

import json

import pytest

from greenmeter.records import PHASE_KINDS
from greenmeter.report import build_report, json_schema
from greenmeter.report.models import ComponentKindName, MethodName, PhaseKindName, ScopeName
from greenmeter.report.schema import SCHEMA_PATH, schema_text
from greenmeter.sensors.base import ComponentKind, Method, Scope
from test_report_support import HOST_INFO, StubAccountant, make_snapshot

REGENERATE = 'python -c "from greenmeter.report import write_schema; write_schema()"'


def test_committed_schema_has_not_drifted() -> None:
    assert SCHEMA_PATH.exists(), f"{SCHEMA_PATH} is missing; create it with: {REGENERATE}"
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), (
        f"docs/schema/report.schema.json differs from the models; regenerate it with: {REGENERATE}"
    )


def test_schema_is_strict_and_versioned() -> None:
    schema = json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["schema_version"]["const"] == "2"
    assert schema["additionalProperties"] is False
    for name, sub in schema["$defs"].items():
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, name


def test_literals_follow_the_sensor_enums() -> None:
    from typing import get_args

    assert set(get_args(MethodName)) == {m.value for m in Method}
    assert set(get_args(ComponentKindName)) == {k.value for k in ComponentKind}
    assert set(get_args(ScopeName)) == {s.value for s in Scope}
    assert set(get_args(PhaseKindName)) == set(PHASE_KINDS)


def test_a_built_report_validates_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    report = build_report(
        make_snapshot(), carbon=StubAccountant(), host_info=HOST_INFO, include_git=False,
        model={"name": "m", "parameters_total": 3, "dtypes": {"float16": 3}},
    )  # fmt: skip
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(report.to_json()))
    bad = json.loads(report.to_json())
    bad["totals"]["it_energy_j"] = -1
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))


def test_report_phase_kinds_are_the_meters() -> None:
    """The schema's phase kinds and the meter's must not drift apart."""
    from typing import get_args

    from greenmeter.records import PHASE_KINDS
    from greenmeter.report.models import PhaseKindName

    assert set(get_args(PhaseKindName)) == set(PHASE_KINDS)
