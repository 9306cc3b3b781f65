"""greenmeter.footprint: runs found, counted once, grouped, filtered and summed.

The truth in every test is computed independently: plain sums of the saved reports' own
totals, and for runs written per rank, :func:`merge_reports` on those reports.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from footprint_support import (
    CPU,
    GPU_B_ID,
    GPU_ID,
    START_UTC,
    as_version_1,
    checkpoint_of,
    make_report,
    save,
    sums,
)
from greenmeter.footprint import NO_TAG, FootprintError, FootprintSummary, footprint
from greenmeter.footprint.models import FootprintTotals
from greenmeter.report import Report, merge_reports


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def run(paths: list[Path] | Path, **kw: object) -> FootprintSummary:
    items = paths if isinstance(paths, list) else [paths]
    return footprint([str(p) for p in items], index=None, **kw)  # type: ignore[arg-type]


def assert_totals(t: FootprintTotals, reports: list[Report]) -> None:
    truth = sums(reports)
    assert t.runs.total == len(reports)
    for name in ("it_energy_j", "facility_energy_j", "estimated_energy_j", "gpu_hours",
                 "wall_time_s", "co2e_location_g"):  # fmt: skip
        assert getattr(t, name) == approx(truth[name]), name
    assert t.it_energy_kwh == approx(truth["it_energy_j"] / 3.6e6)
    assert t.measured_energy_j == approx(truth["it_energy_j"] - truth["estimated_energy_j"])
    if truth["it_energy_j"]:
        assert t.estimated_share == approx(truth["estimated_energy_j"] / truth["it_energy_j"])


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, Report]]:
    """Six runs of two experiments; one without a model tag; one failed; one CPU-only."""
    root = tmp_path / "runs"
    reports = {
        "a1": make_report(1, tags={"experiment": "ablation", "model": "small"}),
        "a2": make_report(2, tags={"experiment": "ablation", "model": "small"}, day=1),
        "a3": make_report(3, tags={"experiment": "ablation", "model": "large"},
                          ids=[*CPU, GPU_ID, GPU_B_ID], day=2),
        "b1": make_report(4, tags={"experiment": "sweep", "model": "small", "seed": "1"},
                          status="failed", day=3),
        "b2": make_report(5, tags={"experiment": "sweep"}, ids=CPU, day=4),
        "c1": make_report(6, day=5),
    }  # fmt: skip
    for name, report in reports.items():
        save(report, root / name[0] / f"{name}.json")
    return root, reports


def test_totals_are_the_sum_of_the_runs(project: tuple[Path, dict[str, Report]]) -> None:
    root, reports = project
    summary = run(root)
    assert_totals(summary.total, list(reports.values()))
    assert summary.files.found == summary.files.reports == 6 and summary.files.skipped == 0
    assert summary.total.runs.complete == 5 and summary.total.runs.failed == 1
    embodied = sum(r.totals.co2e.embodied_g for r in reports.values())
    assert summary.total.co2e_embodied_g == approx(embodied)
    assert summary.total.runs_with_embodied == 6
    # Location-based, market-based and embodied are kept apart: none is added to another.
    assert summary.total.co2e_location_g == approx(sums(list(reports.values()))["co2e_location_g"])
    assert summary.total.co2e_market_g is None and summary.total.runs_with_market == 0
    assert summary.total.first_start_utc == START_UTC
    assert summary.total.last_end_utc == START_UTC + timedelta(days=5, seconds=100)


def test_groups_by_tags_with_a_none_group(project: tuple[Path, dict[str, Report]]) -> None:
    root, reports = project
    summary = run(root, group_by=["experiment", "model"])
    groups = {tuple(g.key.values()): g for g in summary.groups}
    expected = {
        ("ablation", "large"): ["a3"],
        ("ablation", "small"): ["a1", "a2"],
        ("sweep", "small"): ["b1"],
        ("sweep", NO_TAG): ["b2"],
        (NO_TAG, NO_TAG): ["c1"],
    }
    assert set(groups) == set(expected)
    for key, names in expected.items():
        assert_totals(groups[key], [reports[n] for n in names])
    assert groups[("sweep", "small")].runs.failed == 1
    assert groups[("sweep", NO_TAG)].label == f"experiment=sweep, model={NO_TAG}"
    # groups partition the runs: their sums add up to the total
    assert sum(g.it_energy_j for g in summary.groups) == approx(summary.total.it_energy_j)
    # the "(none)" groups come after the named ones
    assert [tuple(g.key.values()) for g in summary.groups][-1] == (NO_TAG, NO_TAG)


def test_gpu_hours_by_model(project: tuple[Path, dict[str, Report]]) -> None:
    root, reports = project
    summary = run(root)
    by_model = summary.total.gpu_hours_by_model
    assert list(by_model) == ["NVIDIA H100 80GB HBM3"]  # both test GPUs are H100 boards
    assert by_model["NVIDIA H100 80GB HBM3"] == approx(
        sum(r.totals.gpu_hours for r in reports.values())
    )
    # a3 has two boards for 100 s, four other runs one: 6 x 100 s
    assert summary.total.gpu_hours == approx(6 * 100 / 3600)


def test_statuses_are_counted_and_labelled(tmp_path: Path) -> None:
    reports = [
        make_report(1, status="complete"),
        make_report(2, status="failed"),
        make_report(3, status="interrupted"),
        make_report(4, status="running"),
        make_report(5, status="running"),
    ]
    for r in reports:
        save(r, tmp_path / f"{r.run_id}.json")
    summary = run(tmp_path)
    runs = summary.total.runs
    assert (runs.total, runs.complete, runs.failed, runs.interrupted, runs.running) == (
        5,
        1,
        1,
        1,
        2,
    )
    assert_totals(summary.total, reports)
    assert any("2 run(s) end with a periodic checkpoint" in n for n in summary.notes)
    assert any("first checkpoint" in n and "cannot be counted" in n for n in summary.notes)


def test_repeated_checkpoints_count_once(tmp_path: Path) -> None:
    final = make_report(1, tags={"model": "a"})
    early = checkpoint_of(final, 30.0)
    later = checkpoint_of(final, 60.0)
    save(early, tmp_path / "ckpt" / "early.json")
    save(later, tmp_path / "ckpt" / "later.json")
    save(final, tmp_path / "final" / "run.json")
    other = save(make_report(2), tmp_path / "other.json")
    summary = run(tmp_path)
    assert summary.files.reports == 4 and summary.files.checkpoints_dropped == 2
    assert_totals(summary.total, [final, Report.load(other)])
    assert summary.total.runs.running == 0
    # without the final report, the latest checkpoint is what counts
    (tmp_path / "final" / "run.json").unlink()
    summary = run(tmp_path)
    assert summary.total.runs.running == 1 and summary.files.checkpoints_dropped == 1
    assert_totals(summary.total, [later, Report.load(other)])


def test_ranks_and_nodes_are_merged(tmp_path: Path) -> None:
    # two ranks on one host, both counting the host's CPU package: merged, counted once
    r0 = make_report(1, ids=[*CPU, GPU_ID], rank=0, world_size=2, tags={"model": "m"})
    r1 = make_report(1, ids=[*CPU, GPU_B_ID], rank=1, world_size=2, tags={"model": "m"})
    save(r0, tmp_path / "rank0.json")
    save(r1, tmp_path / "rank1.json")
    # two nodes of another run
    n0 = make_report(2, ids=[*CPU, GPU_ID], host="node-a", rank=0, world_size=2)
    n1 = make_report(2, ids=[*CPU, GPU_B_ID], host="node-b", rank=1, world_size=2)
    save(n0, tmp_path / "nodes" / "a.json")
    save(n1, tmp_path / "nodes" / "b.json")
    summary = run(tmp_path, include_runs=True)
    merged = [merge_reports([r0, r1]), merge_reports([n0, n1])]
    assert_totals(summary.total, merged)
    assert summary.total.runs.total == 2 and summary.files.parts_merged == 4
    # de-duplication is real: the two ranks' own totals add up to more
    assert summary.total.it_energy_j < sums([r0, r1, n0, n1])["it_energy_j"] - 1.0
    assert {r.files for r in summary.runs or []} == {2}
    assert summary.groups == [] and all(r.tags.get("model") in ("m", None) for r in summary.runs)


def test_a_gathered_report_covers_the_ranks_own_files(tmp_path: Path) -> None:
    r0 = make_report(1, ids=[*CPU, GPU_ID], rank=0, world_size=2)
    r1 = make_report(1, ids=[GPU_B_ID], rank=1, world_size=2)
    gathered = merge_reports([r0, r1])
    save(gathered, tmp_path / "run.json")
    save(r0, tmp_path / "ranks" / "0.json")
    save(r1, tmp_path / "ranks" / "1.json")
    summary = run(tmp_path)
    assert_totals(summary.total, [gathered])
    assert summary.files.parts_merged == 0


def test_a_resumed_run_covers_its_earlier_segment(tmp_path: Path) -> None:
    first = make_report(1, status="interrupted", host="node-a")
    resumed = make_report(
        1,
        host="node-b",
        shift_s=200.0,
        segments=[{
            "start_utc": first.start_utc, "end_utc": first.end_utc,
            "duration_s": first.duration_s, "host": "node-a", "it_energy_j": 1000.0,
        }],
    )  # fmt: skip
    save(first, tmp_path / "first.json")
    save(resumed, tmp_path / "resumed.json")
    summary = run(tmp_path)
    assert_totals(summary.total, [resumed])


def test_corrupt_and_foreign_files_are_listed_and_skipped(tmp_path: Path) -> None:
    good = [make_report(1), make_report(2, day=1)]
    for r in good:
        save(r, tmp_path / f"{r.run_id}.json")
    bad = {
        "truncated.json": good[0].to_json()[:500],
        "not-json.json": "{ this is not json",
        "array.json": "[1, 2, 3]",
        "foreign.json": json.dumps({"name": "a package.json", "version": "1.0"}),
        "future.json": json.dumps({"schema_version": "99"}),
        "empty.json": "",
        "binary.json": "\x00\xff\xfe garbage",
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text, encoding="latin-1")
    invalid = json.loads(good[0].to_json())
    invalid["totals"]["it_energy_j"] = -5.0
    (tmp_path / "invalid.json").write_text(json.dumps(invalid))
    (tmp_path / "notes.txt").write_text("not looked at: not .json")
    summary = run(tmp_path)
    assert_totals(summary.total, good)
    skipped = {Path(s.path).name: s.problem for s in summary.skipped}
    assert set(skipped) == {*bad, "invalid.json"}
    assert summary.files.skipped == len(bad) + 1 and summary.files.found == len(bad) + 3
    assert "not valid JSON" in skipped["not-json.json"]
    assert "no schema_version" in skipped["foreign.json"]
    assert "unknown schema_version '99'" in skipped["future.json"]
    assert "empty" in skipped["empty.json"]
    assert "totals.it_energy_j" in skipped["invalid.json"]
    assert all(str(tmp_path) in s.path for s in summary.skipped)


def test_mixed_schema_versions(tmp_path: Path) -> None:
    old = make_report(1)
    new = make_report(2, tags={"model": "b"})
    (tmp_path / "old.json").write_text(as_version_1(old))
    save(new, tmp_path / "new.json")
    summary = run(tmp_path, group_by=["model"])
    assert summary.files.schema_versions == {"1": 1, "2": 1}
    assert_totals(summary.total, [old, new])
    assert [g.key["model"] for g in summary.groups] == ["b", NO_TAG]


def test_since_until_and_where(project: tuple[Path, dict[str, Report]]) -> None:
    root, reports = project
    day = lambda n: START_UTC + timedelta(days=n)  # noqa: E731
    summary = run(root, since=day(1), until=day(4))
    assert_totals(summary.total, [reports[n] for n in ("a2", "a3", "b1")])
    assert summary.files.filtered_out == 3
    assert summary.filters.since_utc == day(1) and summary.filters.until_utc == day(4)
    summary = run(root, where={"experiment": ["ablation"], "model": ["small"]})
    assert_totals(summary.total, [reports["a1"], reports["a2"]])
    summary = run(root, where={"model": ["small", "large"]}, since=day(2))
    assert_totals(summary.total, [reports["a3"], reports["b1"]])
    summary = run(root, where={"model": ["none-such"]})
    assert summary.total.runs.total == 0 and summary.total.estimated_share is None


def test_inputs_files_directories_and_globs(project: tuple[Path, dict[str, Report]]) -> None:
    root, reports = project
    one = run([root / "a" / "a1.json"])
    assert_totals(one.total, [reports["a1"]])
    globbed = footprint([str(root / "*" / "b*.json")], index=None)
    assert_totals(globbed.total, [reports["b1"], reports["b2"]])
    recursive = footprint([str(root / "**" / "*.json")], index=None)
    assert recursive.total.runs.total == 6
    # the same file through two inputs counts once
    twice = run([root / "a", root / "a" / "a1.json"])
    assert twice.files.found == 3 and twice.total.runs.total == 3
    with pytest.raises(FootprintError, match="no-such-dir"):
        run([root, root / "no-such-dir"])


def test_runs_without_carbon_are_counted_but_not_in_co2e(tmp_path: Path) -> None:
    with_carbon = make_report(1)
    without = make_report(2, carbon=None)
    save(with_carbon, tmp_path / "a.json")
    save(without, tmp_path / "b.json")
    summary = run(tmp_path)
    assert_totals(summary.total, [with_carbon, without])
    assert summary.total.runs_with_co2e == 1
    assert summary.total.co2e_location_g == approx(with_carbon.totals.co2e.operational_g)
    assert any("no carbon accounting" in n for n in summary.notes)


def test_intensity_sources_are_listed_with_their_runs(tmp_path: Path) -> None:
    reports = [make_report(1, carbon="fr"), make_report(2, carbon="fr", day=1),
               make_report(3, carbon="de", day=2)]  # fmt: skip
    for r in reports:
        save(r, tmp_path / f"{r.run_id}.json")
    summary = run(tmp_path, group_by=["model"])
    by_location = {s.location: s for s in summary.sources}
    assert set(by_location) == {"France (FRA)", "Germany (DEU)"}
    fr, de = by_location["France (FRA)"], by_location["Germany (DEU)"]
    assert fr.runs == 2 and de.runs == 1
    assert fr.facility_energy_kwh == approx(sum(r.totals.facility_energy_kwh for r in reports[:2]))
    assert fr.intensity_g_per_kwh == reports[0].carbon.intensity.value_g_per_kwh
    assert "ember_yearly" in fr.citation_keys and "uptime_2024" in de.citation_keys
    assert sorted(summary.total.sources) == sorted(s.id for s in summary.sources)


def test_summary_json_round_trips(project: tuple[Path, dict[str, Report]]) -> None:
    root, _ = project
    summary = run(root, group_by=["experiment"], include_runs=True)
    again = FootprintSummary.model_validate_json(summary.model_dump_json())
    assert again == summary
    assert len(summary.runs or []) == 6
    assert sum(r.it_energy_j for r in summary.runs or []) == approx(summary.total.it_energy_j)
    assert summary.period_days == 1
    assert sum(p.runs for p in summary.total.by_period) == 6
    assert summary.total.by_period[0].start_utc == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_long_projects_get_wider_chart_periods(tmp_path: Path) -> None:
    reports = [make_report(n, day=n * 20) for n in range(1, 11)]  # 180 days apart
    for r in reports:
        save(r, tmp_path / f"{r.run_id}.json")
    summary = run(tmp_path)
    assert summary.period_days == 4  # 181 days in at most 60 periods
    assert len(summary.total.by_period) == 10
    assert sum(p.facility_energy_kwh for p in summary.total.by_period) == approx(
        summary.total.facility_energy_kwh
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_an_unreadable_file_is_skipped(tmp_path: Path) -> None:
    path = save(make_report(1), tmp_path / "a.json")
    path.chmod(0)
    try:
        summary = run(tmp_path)
    finally:
        path.chmod(0o644)
    assert summary.total.runs.total == 0
    assert "cannot read" in summary.skipped[0].problem


def test_a_fifo_given_by_name_is_skipped_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    save(make_report(1), tmp_path / "a.json")
    summary = run([tmp_path / "a.json", fifo])
    assert summary.total.runs.total == 1
    assert [s.problem for s in summary.skipped] == ["not a regular file"]
    assert run(tmp_path).files.found == 1  # inside a directory it is not a candidate at all


def test_a_tag_no_run_carries_is_pointed_out(project: tuple[Path, dict[str, Report]]) -> None:
    root, reports = project
    summary = run(root, group_by=["Model"], where={"experiment": ["ablation"]})
    assert [g.key for g in summary.groups] == [{"Model": NO_TAG}]
    assert_totals(summary.total, [reports[n] for n in ("a1", "a2", "a3")])
    assert any("No run carries the tag 'Model'" in n for n in summary.notes)
    assert not any("'experiment'" in n for n in summary.notes)
