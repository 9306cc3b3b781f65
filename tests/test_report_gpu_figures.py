"""Per-GPU method, bound and unmeasured time in a phase, and how they move confidence."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from greenmeter.report.confidence import ComponentFacts, phase_confidence
from greenmeter.report.gpu_figures import merged_gpu_fields, phase_gpu_fields
from greenmeter.report.inputs import Warnings

KEY = "nvml:GPU-1@h"


def _conf(method: str | None, duration_s: float = 20.0, **facts: object):  # type: ignore[no-untyped-def]
    f = {KEY: ComponentFacts(KEY, "counter", 0.1, **facts)}  # type: ignore[arg-type]
    return phase_confidence(
        duration_s=duration_s,
        count=1,
        energy_j={KEY: 100.0},
        components=f,
        start_s=10.0,
        end_s=10.0 + duration_s,
        methods={KEY: method} if method else None,
    )


def test_interpolated_gpu_lowers_one_level_and_names_the_board() -> None:
    assert _conf(None).level == "high"
    assert _conf("counter+instant_power").level == "high"
    got = _conf("counter_interpolated")
    assert got.level == "medium"
    assert KEY in got.reason and "counter_interpolated" in got.reason
    assert got.component == KEY
    assert _conf("counter_interpolated", duration_s=2.0).level == "low"
    assert _conf("counter_interpolated", duration_s=0.5).level == "low"


def test_degraded_gap_touches_only_the_phases_inside_it() -> None:
    gap = {"degraded": True, "degraded_at_s": 12.0, "recovered_at_s": 14.0}
    assert _conf(None, **gap).level == "low"  # 10-30 s overlaps 12-14 s
    assert "not read from 12 s to 14 s" in _conf(None, **gap).reason
    after = {"degraded": True, "degraded_at_s": 2.0, "recovered_at_s": 4.0}
    assert _conf(None, **after).level == "high"
    gone = {"degraded": True, "degraded_at_s": 2.0}
    assert _conf(None, **gone).level == "low"


def test_phase_fields_keyed_by_report_key_with_unmeasured_time() -> None:
    rec = SimpleNamespace(
        path=("train",),
        energy_j={"nvml:GPU-1": 100.0, "rapl:package-0": 50.0},
        energy_methods={"nvml:GPU-1": "counter+instant_power"},
        energy_bound_j={"nvml:GPU-1": 0.25},
        provisional=["nvml:GPU-1"],
    )
    key_of = {"nvml:GPU-1": KEY, "rapl:package-0": "rapl:package-0@h"}
    facts = {KEY: ComponentFacts(KEY, "counter", 0.1, True, 12.0, "timeout", 14.0)}
    out = phase_gpu_fields(rec, key_of, facts, [(10.0, 13.0), (13.5, 20.0)], 30.0, Warnings())
    assert out["energy_methods"] == {KEY: "counter+instant_power"}
    assert out["energy_bound_j"] == {KEY: 0.25}
    assert out["provisional"] == [KEY]
    assert out["unmeasured_s"] == {KEY: pytest.approx(1.5)}
    a = SimpleNamespace(**{**out, "unmeasured_s": {}})
    b = SimpleNamespace(
        energy_methods={KEY: "counter_interpolated"},
        energy_bound_j={KEY: 0.5},
        provisional=[],
        unmeasured_s={KEY: 1.0},
    )
    merged = merged_gpu_fields([a, b], [KEY])
    assert merged["energy_methods"] == {KEY: "counter_interpolated"}
    assert merged["energy_bound_j"] == {KEY: 0.5}
    assert merged["unmeasured_s"] == {KEY: 1.0}
    assert merged["provisional"] == [KEY]
