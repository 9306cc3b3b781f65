"""Whatever greenmeter writes it can read back: reports are bounded by construction.

A report of 10,000 phases nested 32 deep with 512-character names, each phase with the
most intervals and latency samples the schema allows, is written well under the reader's
limits and loads back; beyond the limits (deeper nesting, more phases) the builder says
so in a ReportError, and a hand-made file beyond them is refused with a clear line. The
builder raises nothing but ReportError.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from greenmeter.records import MeterSnapshot, PhaseRecord
from greenmeter.report import (
    MAX_REPORT_BYTES,
    Report,
    ReportError,
    build_report,
    load_report,
    parse_report,
)
from greenmeter.report.models import (
    MAX_LATENCY_SAMPLES,
    MAX_PHASE_DEPTH,
    MAX_PHASE_INTERVALS,
    MAX_PHASES,
)
from greenmeter.sensors.base import SensorWarning
from test_report_support import HOST_INFO, T0, StubAccountant, make_snapshot


def build(snap: MeterSnapshot, **kw: object) -> Report:
    kw.setdefault("carbon", StubAccountant())
    kw.setdefault("host_info", HOST_INFO)
    kw.setdefault("include_git", False)
    return build_report(snap, **kw)  # type: ignore[arg-type]


def snapshot_with(
    n: int, *, depth: int = 1, intervals: int = 1, latencies: int = 0, name_chars: int = 4
) -> MeterSnapshot:
    """``n`` phases in chains ``depth`` deep; every phase with the given content.

    The interval and latency lists are shared between the records (the builder copies
    what it keeps), so the snapshot itself stays small.
    """
    snap = make_snapshot(phases=[])
    ids = [c.id for c in snap.components]
    ivs = [(T0 + 1 + k * 0.05, T0 + 1 + k * 0.05 + 0.02) for k in range(intervals)]
    lat = [0.001 * (1 + k % 97) for k in range(latencies)]
    records = []
    for k in range(n):
        chain, level = divmod(k, depth)
        path = tuple(f"c{chain}l{d}-".ljust(name_chars, "x") for d in range(level + 1))
        records.append(
            PhaseRecord(
                path=path, kind="custom", count=len(ivs), first_start_mono=ivs[0][0],
                last_end_mono=ivs[-1][1], duration_s=0.02 * len(ivs),
                energy_j=dict.fromkeys(ids, 1.0 / (level + 1)), intervals_mono=ivs,
                latencies_s=lat, samples=64, tokens=6400, steps=1, peak_power_w=900.0,
                attrs={"epoch": str(chain)},
            )
        )  # fmt: skip
    snap.phases = records
    return snap


def test_budget_is_shared_by_the_longest_lists() -> None:
    from greenmeter.report.limits import share_budget

    assert share_budget([10, 10], budget=12, cap=100) == 6
    assert share_budget([1, 100], budget=12, cap=100) == 11
    assert share_budget([5, 5], budget=100, cap=8) == 8
    assert share_budget([100] * 10, budget=5, cap=50, floor=2) == 2
    for sizes, budget, cap in [([3, 9, 27, 81], 50, 60), ([1024] * 7, 1000, 1024)]:
        level = share_budget(sizes, budget, cap)
        assert sum(min(s, level) for s in sizes) <= budget
        assert sum(min(s, level + 1) for s in sizes) > budget


def test_phases_share_the_interval_and_latency_budgets() -> None:
    from greenmeter.report.limits import REPORT_INTERVALS, REPORT_LATENCY_SAMPLES

    n = 200
    report = build(snapshot_with(n, intervals=MAX_PHASE_INTERVALS, latencies=MAX_LATENCY_SAMPLES))
    phases = list(report.iter_phases())
    assert len(phases) == n
    assert {len(p.intervals_s) for p in phases} == {REPORT_INTERVALS // n}
    assert {len(p.latency_samples_s) for p in phases} == {REPORT_LATENCY_SAMPLES // n}
    # coalesced intervals still cover every active span, from the first start to the last end
    phase = phases[0]
    assert phase.intervals_s[0][0] == pytest.approx(1.0)
    assert phase.intervals_s[-1][1] == pytest.approx(1 + (MAX_PHASE_INTERVALS - 1) * 0.05 + 0.02)
    # the figures derive from what is kept, so the report checks out
    assert parse_report(report.to_json()) == report


@pytest.mark.slow
def test_the_largest_report_within_the_limits_loads_back(tmp_path) -> None:
    """MAX_PHASES phases, chains MAX_PHASE_DEPTH deep, 512-character names, and the most
    intervals and latency samples a phase may hold: well under the reader's limits."""
    from greenmeter.report.limits import MAX_JSON_KEYS, MAX_JSON_VALUES
    from greenmeter.report.reader import count_json_values

    snap = snapshot_with(
        MAX_PHASES, depth=MAX_PHASE_DEPTH, intervals=MAX_PHASE_INTERVALS,
        latencies=MAX_LATENCY_SAMPLES, name_chars=512,
    )  # fmt: skip
    report = build(snap)
    text = report.to_json().encode()
    values, keys = count_json_values(text)
    assert len(text) < MAX_REPORT_BYTES / 2, len(text)
    assert values < MAX_JSON_VALUES / 2 and keys < MAX_JSON_KEYS * 0.75, (values, keys)
    assert b"\n" not in text  # large reports are written compact
    assert "report.names_shortened" in {w.code for w in report.warnings}
    assert sum(1 for _ in report.iter_phases()) == MAX_PHASES
    assert max(len(p.path) for p in report.iter_phases()) == MAX_PHASE_DEPTH
    path = report.save(tmp_path / "largest.json")
    again = load_report(path)
    assert again.totals == report.totals
    assert [p.path for p in again.iter_phases()] == [p.path for p in report.iter_phases()]


def test_size_grows_linearly_with_depth() -> None:
    """Each level nests the JSON two levels deeper: indented, a phase 120 deep made 4.8 MB.

    Compact, a chain's size grows about linearly with its depth; indentation (kept for
    reports under 1 MiB) makes it at most a few times larger.
    """
    reports = {d: build(snapshot_with(d, depth=d)) for d in (8, 16, 32)}
    compact = {d: len(r.to_json(indent=None)) for d, r in reports.items()}
    assert compact[32] / compact[16] < 2.5 and compact[16] / compact[8] < 2.5, compact
    deepest = reports[MAX_PHASE_DEPTH]
    assert len(deepest.to_json()) < 6 * compact[MAX_PHASE_DEPTH]
    assert parse_report(deepest.to_json()) == deepest


def test_small_reports_are_indented_large_ones_compact() -> None:
    small = build(make_snapshot()).to_json()
    assert small.startswith('{\n  "schema_version": "2"')
    large = build(snapshot_with(3000)).to_json()
    assert len(large) > 1024 * 1024 and "\n" not in large


def test_beyond_the_nesting_limit_the_builder_says_so() -> None:
    for depth in (MAX_PHASE_DEPTH + 1, 300):
        with pytest.raises(ReportError, match=f"nested {depth} levels deep; .* at most 32"):
            build(snapshot_with(depth, depth=depth))


def test_beyond_the_phase_limit_the_builder_says_so() -> None:
    with pytest.raises(ReportError, match=f"{MAX_PHASES + 1} distinct phases; .* at most"):
        build(snapshot_with(MAX_PHASES + 1))


def test_a_file_beyond_the_limits_is_refused_clearly() -> None:
    doc = json.loads(build(snapshot_with(3, depth=3)).to_json())
    node = doc["phases"][0]
    while node["children"]:
        node = node["children"][0]
    for level in range(4, MAX_PHASE_DEPTH + 2):  # grow the chain to 33 levels
        child = json.loads(json.dumps(node))
        child["children"] = []
        child["name"] = f"l{level}"
        child["path"] = [*node["path"], child["name"]]
        node["children"] = [child]
        node = child
    with pytest.raises(ReportError) as info:
        parse_report(json.dumps(doc))
    line = str(info.value).splitlines()[1]
    assert line.startswith("  - phases[0].children[0].children[0]") and len(line) <= 400
    assert line.endswith(".children[0]: nested more than 32 levels deep (at most 32)")


def test_builder_raises_only_report_errors() -> None:
    snap = make_snapshot()
    snap.phases.append(PhaseRecord(path=("p",) * 300, kind="custom", count=1, duration_s=1.0))
    with pytest.raises(ReportError, match="nested 300 levels deep"):
        build(snap)
    snap = make_snapshot()
    snap.rank = "x"  # type: ignore[assignment]
    with pytest.raises(ReportError, match="the meter's data did not make a valid report"):
        build(snap)
    snap = make_snapshot()
    snap.phases.append(PhaseRecord(path=("",), kind="custom", count=1, duration_s=1.0))
    with pytest.raises(ReportError, match="did not make a valid report") as info:
        build(snap)
    assert type(info.value) is ReportError


def test_names_and_warnings_the_schema_refuses_do_not_stop_the_report() -> None:
    snap = make_snapshot()
    long = "n" * 600
    snap.phases.append(
        replace(snap.phases[0], path=(long,), intervals_mono=list(snap.phases[0].intervals_mono))
    )
    snap.warnings += [
        SensorWarning("", "empty code"),
        SensorWarning("c" * 600, "long code"),
        SensorWarning("x.long", "m" * 100_000),
    ]
    report = build(snap)
    names = [p.name for p in report.phases]
    assert any(len(n) == 512 and n.startswith("n" * 400) for n in names), names
    assert "report.names_shortened" in {w.code for w in report.warnings}
    codes = [w.code for w in report.warnings]
    assert "unnamed" in codes and "c" * 512 in codes
    assert all(len(w.message) <= 4096 for w in report.warnings)
    assert parse_report(report.to_json()) == report
    assert math.isfinite(report.totals.it_energy_j)
