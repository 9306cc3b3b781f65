"""Merging counts a component once per instant: runs one after another add up.

Two consecutive runs on one host carry the same CPU package: merged, their energy is the
sum (it was counted once, as if they overlapped). Ranks side by side still count a
shared component once; a partial overlap adds the share of time not yet covered.
Truth is the traces' exact integrals over the union of the runs' time.
"""

from __future__ import annotations

import pytest

from greenmeter.cli import main
from greenmeter.report import Report, build_report, component_key, merge_reports
from greenmeter.sensors.base import ComponentStatus
from test_report_support import (
    GPU_ID,
    HOST,
    HOST_INFO,
    RUN_S,
    StubAccountant,
    exact,
    make_snapshot,
)

CPU = ["rapl:package-0", "rapl:dram-0", "estimate:ram"]
PKG = component_key("rapl:package-0", HOST)
#: The package draws a constant 50 W, so any share of time is an exact share of energy.
PKG_W = 50.0


def build(snap, run_id: str = "0" * 31 + "1") -> Report:
    return build_report(
        snap, carbon=StubAccountant(), host_info=HOST_INFO, include_git=False,
        include_command=False, run_id=run_id,
    )  # fmt: skip


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def runs(*starts: float, ids=(*CPU, GPU_ID)) -> list[Report]:
    """One report per run on one host, each starting ``start`` s after the first."""
    return [
        build(make_snapshot(ids=ids, shift_s=s), run_id=f"{k + 1:032x}")
        for k, s in enumerate(starts)
    ]


def test_consecutive_runs_add_up() -> None:
    a, b = runs(0.0, RUN_S)
    merged = merge_reports([a, b])
    assert merged.duration_s == approx(2 * RUN_S)
    assert merged.totals.energy_j[PKG] == approx(2 * PKG_W * RUN_S)
    assert merged.totals.it_energy_j == approx(a.totals.it_energy_j + b.totals.it_energy_j)
    assert merged.totals.co2e.operational_g == approx(
        a.totals.co2e.operational_g + b.totals.co2e.operational_g
    )
    assert merged.totals.device_hours["cpu"] == approx(2 * RUN_S / 3600)
    train = merged.phase("fit/train")
    assert train.it_energy_j == approx(2 * a.phase("fit/train").it_energy_j)
    assert train.duration_s == approx(2 * a.phase("fit/train").duration_s)
    assert train.count == 2 * a.phase("fit/train").count
    assert train.items.samples == 2 * a.phase("fit/train").items.samples
    assert train.efficiency.energy_per_sample_j == approx(
        a.phase("fit/train").efficiency.energy_per_sample_j
    )
    assert not [w for w in merged.warnings if w.code == "merge.duplicate_component"]
    # both runs keep their power series: they cover different times
    plotted = [s for s in merged.power_timeline if PKG in s.power_w]
    assert len(plotted) == 2 and plotted[1].t_s[0] > plotted[0].t_s[-1]
    assert Report.model_validate_json(merged.to_json()) == merged


def test_greenmeter_merge_of_consecutive_runs(tmp_path) -> None:
    """The command from the report: two runs of 100 J each give 200 J, not 100 J."""
    a, b = runs(0.0, RUN_S, ids=["rapl:package-0"])
    paths = [a.save(tmp_path / "seq1.json"), b.save(tmp_path / "seq2.json")]
    out = tmp_path / "merged.json"
    assert main(["merge", *map(str, paths), "-o", str(out)]) == 0
    merged = Report.load(out)
    assert merged.totals.it_energy_j == approx(2 * PKG_W * RUN_S)
    assert merged.duration_s == approx(2 * RUN_S)
    assert not [w for w in merged.warnings if w.code == "merge.duplicate_component"]


def test_ranks_side_by_side_count_a_shared_component_once() -> None:
    r0 = make_snapshot(ids=[*CPU, GPU_ID], rank=0, world_size=2, items_scale=0.5)
    r1 = make_snapshot(ids=CPU, rank=1, local_rank=1, world_size=2, items_scale=0.5)
    merged = merge_reports([build(r1), build(r0)])
    assert merged.totals.energy_j[PKG] == approx(PKG_W * RUN_S)
    assert merged.phase("fit/train").energy_j[PKG] == approx(PKG_W * 60.0)
    assert merged.phase("inference").count == 100
    dup = [w for w in merged.warnings if w.code == "merge.duplicate_component"]
    assert {w.component for w in dup} == {component_key(i, HOST) for i in CPU}
    assert all("over the same time (100 s)" in w.message for w in dup)
    plotted = [s for s in merged.power_timeline if PKG in s.power_w]
    assert len(plotted) == 1


def test_three_runs_and_a_merge_of_a_merge() -> None:
    a, b, c = runs(0.0, RUN_S, 2 * RUN_S)
    flat = merge_reports([a, b, c])
    assert flat.totals.energy_j[PKG] == approx(3 * PKG_W * RUN_S)
    nested = merge_reports([merge_reports([a, c]), b])  # a gap in the first part
    assert nested.totals.energy_j[PKG] == approx(3 * PKG_W * RUN_S)
    again = merge_reports([merge_reports([a, b]), b])  # b twice: counted once
    assert again.totals.energy_j[PKG] == approx(2 * PKG_W * RUN_S)
    assert flat.phase("fit/train").count == 3 * a.phase("fit/train").count


def test_partial_overlap_adds_the_time_not_yet_covered() -> None:
    """Run b starts 50 s into run a's 100 s: the package counts over [0, 150] once."""
    a, b = runs(0.0, 50.0)
    merged = merge_reports([a, b])
    assert merged.duration_s == approx(150.0)
    assert merged.totals.energy_j[PKG] == approx(PKG_W * 150.0)
    # a reading is taken as spread evenly over its report's time: b adds half of its GPU
    gpu = component_key(GPU_ID, HOST)
    assert merged.totals.energy_j[gpu] == approx(
        a.totals.energy_j[gpu] + 0.5 * b.totals.energy_j[gpu]
    )
    # train ran [10,40]+[50,80] in a and [60,90]+[100,130] in b: 100 s in all
    train = merged.phase("fit/train")
    assert train.energy_j[PKG] == approx(PKG_W * 100.0)
    assert train.duration_s == approx(100.0)
    # validate ran [40,50]+[80,90] and [90,100]+[130,140]: no overlap, so it adds
    assert merged.phase("fit/validate").energy_j[PKG] == approx(2 * PKG_W * 20.0)
    # every child stays within its parent, and the report loads back
    for phase in merged.iter_phases():
        for child in phase.children:
            assert child.it_energy_j <= phase.it_energy_j * (1 + 1e-9)
            assert child.duration_s <= phase.duration_s * (1 + 1e-9)
    assert Report.model_validate_json(merged.to_json()) == merged
    truth = sum(exact(["rapl:package-0"], [(0.0, RUN_S)]).values()) * 1.5
    assert merged.totals.energy_j[PKG] == approx(truth)


def test_a_component_degraded_in_any_part_is_degraded_in_the_merge() -> None:
    snap = make_snapshot(ids=CPU, shift_s=RUN_S)
    snap.status = {"rapl:dram-0": ComponentStatus(True, "zone removed", snap.started_mono + 30)}
    a, b = build(make_snapshot(ids=CPU)), build(snap)
    merged = merge_reports([a, b])
    dram = merged.component(component_key("rapl:dram-0", HOST))
    assert dram.degraded and dram.degraded_reason == "zone removed"
    assert dram.degraded_at_s == approx(RUN_S + 30.0)
