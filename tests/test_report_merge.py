"""merge_reports: per-rank and per-node reports combine without double counting."""

from __future__ import annotations

import pytest

from greenmeter.report import Report, ReportError, build_report, component_key, merge_reports
from test_report_support import (
    GPU_B_ID,
    GPU_B_UUID,
    GPU_ID,
    HOST,
    HOST_INFO,
    RUN_S,
    StubAccountant,
    exact,
    make_snapshot,
)

CPU = ["rapl:package-0", "rapl:dram-0", "estimate:ram"]
PKG = "rapl:package-0"


def build(snap, pue: float = 1.5) -> Report:
    return build_report(
        snap, carbon=StubAccountant(pue), host_info=HOST_INFO, include_git=False,
        include_command=False, run_id="0" * 31 + "1",
    )  # fmt: skip


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def one_shot() -> Report:
    """Both GPUs and the host's CPU measured by one process."""
    return build(make_snapshot(ids=[*CPU, GPU_ID, GPU_B_ID]))


def ranks(rank1_counts_host: bool) -> list[Report]:
    """The same work measured by two ranks on one host, each with its own GPU."""
    r0 = make_snapshot(ids=[*CPU, GPU_ID], rank=0, world_size=2, items_scale=0.5)
    ids1 = [*CPU, GPU_B_ID] if rank1_counts_host else [GPU_B_ID]
    r1 = make_snapshot(ids=ids1, rank=1, local_rank=1, world_size=2, items_scale=0.5)
    return [build(r1), build(r0)]  # order given does not matter


def assert_same_totals(merged: Report, single: Report) -> None:
    a, b = merged.totals, single.totals
    assert a.energy_j == {k: approx(v) for k, v in b.energy_j.items()}
    for field in ("it_energy_j", "it_energy_kwh", "facility_energy_j", "facility_energy_kwh"):
        assert getattr(a, field) == approx(getattr(b, field)), field
    assert a.duration_s == approx(b.duration_s) and merged.duration_s == approx(single.duration_s)
    assert a.gpu_hours == approx(b.gpu_hours) and a.device_hours == {
        k: approx(v) for k, v in b.device_hours.items()
    }
    assert a.co2e.operational_g == approx(b.co2e.operational_g)
    assert a.co2e.operational_high_g == approx(b.co2e.operational_high_g)
    assert a.co2e.embodied_g == approx(b.co2e.embodied_g)
    assert a.co2e.intensity_g_per_kwh == approx(b.co2e.intensity_g_per_kwh)
    for p in single.iter_phases():
        m = merged.phase(p.path)
        assert m.energy_j == {k: approx(v) for k, v in p.energy_j.items()}, p.path_str
        assert m.duration_s == approx(p.duration_s) and m.count == p.count
        assert m.items == p.items
        assert m.gpu_hours == approx(p.gpu_hours)
        assert m.co2e.operational_g == approx(p.co2e.operational_g)
        assert m.co2e.embodied_g == approx(p.co2e.embodied_g)
        assert m.efficiency.energy_per_sample_j == pytest.approx(p.efficiency.energy_per_sample_j)
        assert m.efficiency.samples_per_s == pytest.approx(p.efficiency.samples_per_s)
        assert m.efficiency.mean_power_w == pytest.approx(p.efficiency.mean_power_w)
        assert m.confidence.level == p.confidence.level
        if p.exclusive_energy_j is None:
            assert m.exclusive_energy_j is None
        else:
            assert m.exclusive_energy_j == approx(p.exclusive_energy_j)


def test_merged_equals_one_shot() -> None:
    merged = merge_reports(ranks(rank1_counts_host=False))
    assert_same_totals(merged, one_shot())
    assert [r.rank for r in merged.ranks] == [0, 1]
    assert merged.hosts[0].ranks == [0, 1] and len(merged.hosts) == 1
    assert sorted(g.uuid for g in merged.gpus) == sorted([GPU_B_UUID, merged.gpus[0].uuid])
    assert len(merged.gpus) == 2
    assert merged.run_id == "0" * 31 + "1"


def test_two_ranks_on_one_host_count_the_package_once() -> None:
    parts = ranks(rank1_counts_host=True)
    assert sum(r.totals.energy_j[component_key(PKG, HOST)] for r in parts) == approx(2 * 50 * RUN_S)
    merged = merge_reports(parts)
    assert merged.totals.energy_j[component_key(PKG, HOST)] == approx(50 * RUN_S)
    assert_same_totals(merged, one_shot())
    assert [c.key for c in merged.components].count(component_key(PKG, HOST)) == 1
    dup = [w for w in merged.warnings if w.code == "merge.duplicate_component"]
    assert {w.component for w in dup} == {component_key(i, HOST) for i in CPU}
    # per-rank detail keeps what each rank measured before de-duplication
    by_rank = {r.rank: r for r in merged.ranks}
    assert by_rank[1].it_energy_j == approx(sum(exact([*CPU, GPU_B_ID], [(0, RUN_S)]).values()))
    # the timeline holds each component once
    keys = [k for s in merged.power_timeline for k in s.power_w]
    assert len(keys) == len(set(keys)) == len(merged.components)


def test_two_hosts_add() -> None:
    a = build(make_snapshot(ids=[*CPU, GPU_ID], host="node-a", rank=0, world_size=2))
    b = build(make_snapshot(ids=[*CPU, GPU_B_ID], host="node-b", rank=1, world_size=2))
    merged = merge_reports([a, b])
    assert merged.totals.it_energy_j == approx(a.totals.it_energy_j + b.totals.it_energy_j)
    assert merged.totals.energy_j[component_key(PKG, "node-a")] == approx(50 * RUN_S)
    assert merged.totals.energy_j[component_key(PKG, "node-b")] == approx(50 * RUN_S)
    assert merged.totals.device_hours["cpu"] == approx(2 * RUN_S / 3600)
    assert [h.hostname for h in merged.hosts] == ["node-a", "node-b"]
    train = merged.phase("fit/train")
    assert train.it_energy_j == approx(
        a.phase("fit/train").it_energy_j + b.phase("fit/train").it_energy_j
    )
    assert train.items.samples == 12000 and train.duration_s == 60.0
    assert not [w for w in merged.warnings if w.code == "merge.duplicate_component"]


def test_gpu_deduplicated_by_uuid_across_host_names() -> None:
    a = build(make_snapshot(ids=[GPU_ID], host="container-1", rank=0))
    b = build(make_snapshot(ids=[GPU_ID], host="container-2", rank=1))
    merged = merge_reports([a, b])
    assert len(merged.gpus) == 1 and len(merged.components) == 1
    assert merged.totals.it_energy_j == approx(a.totals.it_energy_j)
    assert merged.totals.gpu_hours == approx(RUN_S / 3600)


def test_durations_are_the_span_union() -> None:
    a = build(make_snapshot(ids=[GPU_ID], rank=0))
    b = build(make_snapshot(ids=[GPU_B_ID], rank=1, shift_s=20.0))
    merged = merge_reports([a, b])
    assert merged.duration_s == approx(RUN_S + 20) and merged.start_utc == a.start_utc
    # train ran [10,40]+[50,80] on rank 0 and [30,60]+[70,100] on rank 1: union 90 s
    assert merged.phase("fit/train").duration_s == approx(90.0)
    assert merged.phase("fit/train").intervals_s == [(10.0, 100.0)]
    # validate ran [40,50]+[80,90] and [60,70]+[100,110]: disjoint, so 40 s
    assert merged.phase("fit/validate").duration_s == approx(40.0)
    assert merged.power_timeline[1].t_s[0] == approx(21.0)
    # inference ran [95,99] on rank 0 and [115,119] on rank 1: entries at different
    # times are different entries, so they add (side by side they would count once)
    assert merged.phase("inference").count == 200


def test_merge_is_associative_and_idempotent_for_one() -> None:
    r = one_shot()
    assert_same_totals(merge_reports([r]), r)
    p0, p1 = ranks(rank1_counts_host=True)[::-1]
    extra = build(make_snapshot(ids=CPU, host="node-z", rank=2, world_size=3))
    nested = merge_reports([merge_reports([p0, p1]), extra])
    flat = merge_reports([p0, p1, extra])
    assert nested.totals.it_energy_j == approx(flat.totals.it_energy_j)
    assert nested.totals.co2e.operational_g == approx(flat.totals.co2e.operational_g)
    assert [x.rank for x in nested.ranks] == [0, 1, 2]


def test_merged_report_saves_and_loads(tmp_path) -> None:
    merged = merge_reports(ranks(rank1_counts_host=True))
    assert Report.load(merged.save(tmp_path / "m.json")) == merged


def test_status_and_mismatches() -> None:
    a = build(make_snapshot(ids=[GPU_ID], rank=0))
    b = build_report(
        make_snapshot(ids=[GPU_B_ID], rank=1), carbon=StubAccountant(2.0),
        host_info=HOST_INFO, include_git=False, status="failed",
    )  # fmt: skip
    merged = merge_reports([a, b])
    assert merged.status == "failed"
    assert merged.totals.pue == 1.5
    assert {"merge.pue_mismatch", "merge.carbon_mismatch"} <= {w.code for w in merged.warnings}
    assert merged.run_id != a.run_id and len(merged.run_id) == 32
    with pytest.raises(ReportError, match="no reports"):
        merge_reports([])
