"""Figures that must agree with each other, and faults marked where they matter.

* A component that stopped reading at an instant (a RAPL zone lost, a read that timed
  out) lowers the confidence of every phase active at or after that instant, with the
  reason; phases that ended before keep theirs.
* A phase's peak power is never below its mean power.
* A nested phase closed after its parent is kept within its parent, and says so.

Truth is the traces' exact integrals (test_report_support).
"""

from __future__ import annotations

import json

import pytest

from greenmeter.report import Report, ReportError, build_report, component_key, parse_report
from greenmeter.sensors.base import ComponentStatus
from test_report_support import GPU_ID, HOST, HOST_INFO, T0, StubAccountant, exact, make_snapshot

DRAM = "rapl:dram-0"
#: Phases before, across and after the instant (50 s) at which a component degrades.
TIMED = [
    (("early",), "custom", 1, [(5.0, 45.0)], {}),
    (("across",), "custom", 1, [(40.0, 60.0)], {}),
    (("late",), "custom", 1, [(60.0, 95.0)], {}),
]


def build(snap, **kw) -> Report:
    kw.setdefault("carbon", StubAccountant())
    kw.setdefault("host_info", HOST_INFO)
    kw.setdefault("include_git", False)
    return build_report(snap, **kw)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def _lose_after(snap, component: str, t_s: float) -> None:
    """The component's counter stops at ``t_s``: its energy after that is missing."""
    for rec in snap.phases:
        ivs = [(a - T0, b - T0) for a, b in rec.intervals_mono]
        clipped = [(a, min(b, t_s)) for a, b in ivs if a < t_s]
        rec.energy_j[component] = exact([component], clipped)[component] if clipped else 0.0
    snap.energy_j[component] = exact([component], [(0.0, t_s)])[component]
    snap.timeline = [
        type(p)(p.t_mono, {**p.energy_j, component: min(p.energy_j[component],
                                                        snap.energy_j[component])})
        for p in snap.timeline
    ]  # fmt: skip


@pytest.mark.parametrize(
    "component, reason",
    [(DRAM, "RAPL zone dram-0 disappeared"), (GPU_ID, "energy read timed out after 1 s")],
)
def test_a_degraded_component_lowers_every_phase_it_touches(component: str, reason: str) -> None:
    snap = make_snapshot(phases=TIMED)
    _lose_after(snap, component, 50.0)
    snap.status = {component: ComponentStatus(True, reason, T0 + 50.0)}
    report = build(snap)
    key = component_key(component, HOST)
    comp = report.component(key)
    assert comp.degraded and comp.degraded_reason == reason
    assert comp.degraded_at_s == approx(50.0)
    assert report.phase("early").confidence.level == "high"
    for name in ("across", "late"):
        confidence = report.phase(name).confidence
        assert confidence.level == "low", (name, confidence)
        assert confidence.component == key
        assert "stopped reading 50 s into the run" in confidence.reason and reason in (
            confidence.reason
        )
    # the lost energy is small next to the rest: the share rule alone kept "high"
    late = report.phase("late")
    assert late.energy_j[key] < 0.05 * late.it_energy_j


def test_a_degradation_at_an_unknown_instant_touches_every_phase() -> None:
    snap = make_snapshot(phases=TIMED)
    snap.status = {DRAM: ComponentStatus(True, "zone gone", None)}
    report = build(snap)
    assert {p.confidence.level for p in report.phases} == {"low"}
    assert all("degraded" in p.confidence.reason for p in report.phases)


# --------------------------------------------------------------------------------------
# peak and mean power


def test_peak_power_is_never_below_the_mean() -> None:
    phases = [
        (("low-peak",), "custom", 1, [(10.0, 40.0)], {"peak_power_w": 100.0}),
        (("no-sample",), "custom", 1, [(60.0, 61.5)], {}),
    ]
    report = build(make_snapshot(phases=phases))
    for phase in report.iter_phases():
        eff = phase.efficiency
        assert eff.peak_power_w is not None and eff.peak_power_w >= eff.mean_power_w
    low = report.phase("low-peak").efficiency
    truth = sum(exact(list(make_snapshot().energy_j), [(10.0, 40.0)]).values()) / 30.0
    assert low.mean_power_w == approx(truth) and truth > 100.0
    assert low.peak_power_w == approx(truth)


def test_a_report_with_a_peak_below_its_mean_is_refused() -> None:
    doc = json.loads(build(make_snapshot()).to_json())
    eff = doc["phases"][0]["children"][0]["efficiency"]
    eff["peak_power_w"] = eff["mean_power_w"] / 2
    with pytest.raises(ReportError, match=r"peak_power_w .* is below mean_power_w"):
        parse_report(json.dumps(doc))
    doc["schema_version"] = "1"  # written before the rule held: still loads
    assert parse_report(json.dumps(doc)).phase("fit/train").efficiency.peak_power_w == approx(
        eff["mean_power_w"] / 2
    )


# --------------------------------------------------------------------------------------
# nested phases closed out of order

OUT_OF_ORDER = [
    (("outer",), "custom", 1, [(10.0, 20.0)], {}),
    (("outer", "inner"), "custom", 1, [(11.0, 40.0)], {"samples": 290}),
]


def test_a_child_closed_after_its_parent_is_kept_within_it() -> None:
    snap = make_snapshot(phases=OUT_OF_ORDER)
    ids = list(snap.energy_j)
    report = build(snap)
    outer, inner = report.phase("outer"), report.phase("outer/inner")
    assert outer.duration_s == approx(10.0)
    assert inner.duration_s == approx(9.0)
    truth = exact(ids, [(11.0, 20.0)])
    assert inner.energy_j == {component_key(i, HOST): approx(e) for i, e in truth.items()}
    assert inner.it_energy_j <= outer.it_energy_j
    assert inner.items.samples == 90  # 9 s of its 29 s
    assert inner.intervals_s == [(11.0, 20.0)]
    warning = next(w for w in report.warnings if w.code == "report.phase_outlived_parent")
    assert "outer/inner" in warning.message and "9 s of its 29 s" in warning.message
    assert parse_report(report.to_json()) == report


def test_a_report_with_a_child_larger_than_its_parent_is_refused() -> None:
    doc = json.loads(build(make_snapshot()).to_json())
    child = doc["phases"][0]["children"][0]
    child["duration_s"] = doc["phases"][0]["duration_s"] * 2
    child["efficiency"]["samples_per_s"] = child["items"]["samples"] / child["duration_s"]
    child["efficiency"]["tokens_per_s"] = child["items"]["tokens"] / child["duration_s"]
    child["efficiency"]["steps_per_s"] = child["items"]["steps"] / child["duration_s"]
    child["efficiency"]["mean_power_w"] = child["it_energy_j"] / child["duration_s"]
    with pytest.raises(ReportError, match=r"phase 'fit/train' lasted .* longer than its parent"):
        parse_report(json.dumps(doc))
