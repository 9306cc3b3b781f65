"""Run tags: validated where given, carried by the report, kept by merges, and
schema version 1 files still loading."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from fixtures.reports import make_snapshot, student, teacher
from greenmeter.report import build_report, merge_reports, parse_report
from greenmeter.report.tags import TagError, check_tags, parse_tags, tags_from_env


def test_parse_tags_and_environment() -> None:
    assert parse_tags("project=gm, seed=3,final=") == {"project": "gm", "seed": "3", "final": ""}
    assert parse_tags(["model=a=b"]) == {"model": "a=b"}
    assert tags_from_env({"GREENMETER_TAGS": "experiment=ablation"}) == {"experiment": "ablation"}
    assert tags_from_env({}) == {}
    with pytest.raises(TagError, match="GREENMETER_TAGS: tag 'seed' has no '='"):
        tags_from_env({"GREENMETER_TAGS": "seed"})


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"1st": "x"}, "tag name '1st' is not allowed"),
        ({"a b": "x"}, "tag name 'a b' is not allowed"),
        ({"k": "v" * 257}, "value of 257 characters"),
        ({f"k{i}": "v" for i in range(65)}, "at most 64"),
        (["k=v"], "must be a mapping"),
    ],
)
def test_check_tags_rejects_with_the_rule(tags: object, message: str) -> None:
    with pytest.raises(TagError, match=message):
        check_tags(tags)  # type: ignore[arg-type]


def test_values_become_strings() -> None:
    assert check_tags({"seed": 3, "final": True}) == {"seed": "3", "final": "True"}


def test_report_carries_tags_and_drops_malformed_ones_with_a_warning() -> None:
    report = build_report(
        make_snapshot(), carbon=False, include_git=False, tags={"project": "gm", "seed": 1}
    )
    assert report.tags == {"project": "gm", "seed": "1"}
    again = parse_report(report.to_json())
    assert again.tags == report.tags
    bad = build_report(
        make_snapshot(), carbon=False, include_git=False, tags={"ok": "1", "not ok": "2"}
    )
    assert bad.tags == {"ok": "1"}
    assert any(w.code == "report.tags_invalid" for w in bad.warnings)


def test_version_1_file_loads_as_version_2_without_tags() -> None:
    doc = json.loads(teacher().to_json())
    doc["schema_version"] = "1"
    del doc["tags"]
    loaded = parse_report(json.dumps(doc))
    assert loaded.schema_version == "2" and loaded.tags == {}
    assert loaded.totals == teacher().totals
    doc["tags"] = {"x": "y"}  # version 1 had no tags: still a version 1 file otherwise
    assert parse_report(json.dumps(doc)).tags == {"x": "y"}


def test_merge_keeps_every_tag_and_the_lowest_ranks_value() -> None:
    a = teacher().model_copy(update={"tags": {"project": "gm", "model": "teacher"}})
    later = a.start_utc + timedelta(seconds=5)
    b = student().model_copy(
        update={
            "tags": {"project": "other", "seed": "2"},
            "start_utc": later,
            "end_utc": later + timedelta(seconds=student().duration_s),
        }
    )
    for parts in ([a, b], [b, a]):
        merged = merge_reports(parts)
        assert merged.tags == {"project": "gm", "model": "teacher", "seed": "2"}
