"""The per-phase figures every table shows, taken from a :class:`Report` in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from greenmeter.report.models import J_PER_KWH, Phase, Report

__all__ = [
    "PhaseRow",
    "is_fixed_window",
    "phase_rows",
    "report_label",
    "run_labels",
    "run_row",
    "run_title",
    "shaded_phases",
]


@dataclass(frozen=True)
class PhaseRow:
    """One line of a phase table (units in the names; None where not known)."""

    path: str
    depth: int
    kind: str
    count: int
    duration_s: float
    energy_j: float
    energy_kwh: float
    facility_energy_kwh: float
    mean_power_w: float | None
    peak_power_w: float | None
    samples: int | None
    energy_per_sample_j: float | None
    samples_per_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    co2e_g: float | None
    confidence: str
    is_total: bool = False


def _row(phase: Phase) -> PhaseRow:
    eff = phase.efficiency
    mean_w = eff.mean_power_w
    if mean_w is None and phase.duration_s > 0:
        mean_w = phase.it_energy_j / phase.duration_s
    return PhaseRow(
        path=phase.path_str,
        depth=len(phase.path) - 1,
        kind=phase.kind,
        count=phase.count,
        duration_s=phase.duration_s,
        energy_j=phase.it_energy_j,
        energy_kwh=phase.it_energy_kwh,
        facility_energy_kwh=phase.facility_energy_kwh,
        mean_power_w=mean_w,
        peak_power_w=eff.peak_power_w,
        samples=phase.items.samples,
        energy_per_sample_j=eff.energy_per_sample_j,
        samples_per_s=eff.samples_per_s,
        latency_p50_s=eff.latency_p50_s,
        latency_p95_s=eff.latency_p95_s,
        co2e_g=phase.co2e.operational_g if phase.co2e is not None else None,
        confidence=phase.confidence.level,
    )


def run_row(report: Report) -> PhaseRow:
    """The whole run (its full span, including time outside phases) as a table row."""
    t = report.totals
    return PhaseRow(
        path="Run total",
        depth=0,
        kind="total",
        count=1,
        duration_s=t.duration_s,
        energy_j=t.it_energy_j,
        energy_kwh=t.it_energy_j / J_PER_KWH,
        facility_energy_kwh=t.facility_energy_kwh,
        mean_power_w=(t.it_energy_j / t.duration_s) if t.duration_s > 0 else None,
        peak_power_w=None,
        samples=None,
        energy_per_sample_j=None,
        samples_per_s=None,
        latency_p50_s=None,
        latency_p95_s=None,
        co2e_g=t.co2e.operational_g if t.co2e is not None else None,
        confidence="",
        is_total=True,
    )


def phase_rows(report: Report, *, max_depth: int | None = None) -> list[PhaseRow]:
    """Every phase, parents before children, then the run total.

    Args:
        report: The report.
        max_depth: Leave out phases nested deeper than this (0 = top level only).
    """
    rows = [
        _row(p) for p in report.iter_phases() if max_depth is None or len(p.path) - 1 <= max_depth
    ]
    rows.append(run_row(report))
    return rows


def run_title(report: Report) -> str | None:
    """The run's own name for a title: run name, else model name; None without either."""
    for name in (report.run_name, *(m.name for m in report.models)):
        if name and name.strip():
            return name
    return None


def report_label(report: Report, index: int | None = None) -> str:
    """A short human name for a report: run name, else model name, else run id prefix."""
    title = run_title(report)
    if title is not None:
        return title
    prefix = f"#{index + 1} " if index is not None else ""
    return f"{prefix}run {report.run_id[:8]}"


def run_labels(reports: Sequence[Report]) -> list[str]:
    """A distinct label per report (run name or model name, numbered if repeated)."""
    labels = [report_label(r, n) for n, r in enumerate(reports)]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [f"{label} (#{n + 1})" if seen[label] > 1 else label for n, label in enumerate(labels)]


#: The attribute ``measure_inference`` sets on each window it measures (calls made).
WINDOW_ATTR = "repeats"


def is_fixed_window(phase: Phase) -> bool:
    """Whether ``phase`` is an inference window that ran for a set time, not a set amount.

    ``greenmeter.integrations.torch.measure_inference`` calls the model until a minimum
    time has passed and records the calls made as the ``repeats`` attribute of each
    ``inference`` phase it measures (``inference/bs-<n>``). Such a window's total energy
    is set by its length, not by the model; only per-item figures (J/sample, latency,
    throughput) compare. A phase whose children are all such windows is one too.
    """
    if phase.children:
        return all(is_fixed_window(child) for child in phase.children)
    return phase.kind == "inference" and WINDOW_ATTR in phase.attrs


def shaded_phases(report: Report, max_depth: int = 1) -> list[Phase]:
    """Phases to shade on a time plot: the deepest ones down to ``max_depth``.

    A phase is shaded when it is at most ``max_depth`` deep and none of its children
    is (so ``fit/train`` and ``fit/validate`` are shaded rather than ``fit``).
    """
    out: list[Phase] = []

    def visit(phase: Phase, depth: int) -> None:
        kids: Sequence[Phase] = phase.children if depth < max_depth else ()
        if kids:
            for kid in kids:
                visit(kid, depth + 1)
        else:
            out.append(phase)

    for phase in report.phases:
        visit(phase, 0)
    return out
