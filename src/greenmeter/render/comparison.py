"""Side-by-side comparison of runs, per phase, with the change against the first run.

The use case: show what a distilled or pruned model saves against its teacher. Phases
are matched by path (``fit/train``, ``inference/bs-64``...); the whole run is compared
too. Every figure's change is relative to the first report's figure for the same phase.

Inference windows that ran for a set time (:func:`~greenmeter.render.table.is_fixed_window`)
are compared per item only: their total energy and CO2e measure the window's length, not
the model, so they are left out, and a group made only of such windows has no row.

This module writes the Markdown, LaTeX, CSV and JSON tables; the HTML table is in
:mod:`greenmeter.render.html`, with the page around it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from greenmeter.render.escape import csv_table, escape_latex, escape_md, latex_number
from greenmeter.render.numbers import change_pct, fmt_pct, sig
from greenmeter.render.table import is_fixed_window, run_labels
from greenmeter.report.models import Phase, Report

__all__ = [
    "METRICS",
    "TOTALS",
    "CompareRow",
    "Metric",
    "cell_text",
    "compare",
    "compare_rows",
    "groups",
    "run_labels",
    "window_note",
]


@dataclass(frozen=True)
class Metric:
    """A compared figure: field name, column title, display scale, which way is better."""

    name: str
    title: str
    scale: float = 1.0
    higher_is_better: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("energy_j", "Energy (J)"),
    Metric("energy_per_sample_j", "J/sample"),
    Metric("latency_p50_s", "Latency p50 (ms)", 1000.0),
    Metric("latency_p95_s", "Latency p95 (ms)", 1000.0),
    Metric("samples_per_s", "Throughput (samples/s)", higher_is_better=True),
    Metric("parameters", "Parameters"),
    Metric("co2e_g", "CO2e (g)"),
)
#: The figures that are totals over a phase, left out for fixed-time windows.
TOTALS: frozenset[str] = frozenset({"energy_j", "co2e_g"})


@dataclass(frozen=True)
class CompareRow:
    """One run's figures for one phase, and their change against the first run (%)."""

    phase: str
    run: str
    run_id: str
    values: dict[str, float | None]
    changes_pct: dict[str, float | None]


def _parameters(report: Report) -> float | None:
    counts = [m.parameters_total for m in report.models if m.parameters_total is not None]
    return float(sum(counts)) if counts else None


def _phase_values(phase: Phase, report: Report) -> dict[str, float | None]:
    eff = phase.efficiency
    values: dict[str, float | None] = {
        "energy_j": phase.it_energy_j,
        "energy_per_sample_j": eff.energy_per_sample_j,
        "latency_p50_s": eff.latency_p50_s,
        "latency_p95_s": eff.latency_p95_s,
        "samples_per_s": eff.samples_per_s,
        "parameters": _parameters(report),
        "co2e_g": phase.co2e.operational_g if phase.co2e is not None else None,
    }
    if is_fixed_window(phase):
        values.update(dict.fromkeys(TOTALS))
    return values


def _run_values(report: Report) -> dict[str, float | None]:
    t = report.totals
    return {
        "energy_j": t.it_energy_j,
        "energy_per_sample_j": None,
        "latency_p50_s": None,
        "latency_p95_s": None,
        "samples_per_s": None,
        "parameters": _parameters(report),
        "co2e_g": t.co2e.operational_g if t.co2e is not None else None,
    }


RUN_TOTAL = "Run total"


def compare_rows(reports: Sequence[Report]) -> list[CompareRow]:
    """Rows grouped by phase (first report's order, then new paths), then run totals.

    Each phase has one row per report (``None`` figures where a report lacks the phase).
    A group made only of fixed-time windows has no rows (its children have), nor has a
    phase with no figure but the model size in any report.
    """
    if not reports:
        raise ValueError("compare needs at least one report")
    labels = run_labels(reports)
    paths: list[tuple[str, ...]] = []
    names: dict[tuple[str, ...], str] = {}
    groups_of_windows: set[tuple[str, ...]] = set()
    for report in reports:
        for phase in report.iter_phases():
            path = tuple(phase.path)
            if path not in names:
                paths.append(path)
                names[path] = phase.path_str
            if phase.children and is_fixed_window(phase):
                groups_of_windows.add(path)
    paths = [p for p in paths if p not in groups_of_windows]
    rows: list[CompareRow] = []
    empty = dict.fromkeys((m.name for m in METRICS), None)
    for path in [*paths, None]:
        group: list[CompareRow] = []
        base: dict[str, float | None] | None = None
        for n, report in enumerate(reports):
            values = _run_values(report) if path is None else _lookup(report, path)
            if n == 0:
                base = values
            values = empty if values is None else values
            changes = {
                m.name: (
                    change_pct(values[m.name], base.get(m.name))
                    if n > 0 and base is not None
                    else None
                )
                for m in METRICS
            }
            phase = RUN_TOTAL if path is None else names[path]
            group.append(CompareRow(phase, labels[n], report.run_id, values, changes))
        if path is None or any(
            v is not None for row in group for k, v in row.values.items() if k != "parameters"
        ):
            rows.extend(group)
    return rows


def _lookup(report: Report, path: tuple[str, ...]) -> dict[str, float | None] | None:
    try:
        return _phase_values(report.phase(path), report)
    except KeyError:
        return None


def cell_text(row: CompareRow, metric: Metric, first: bool, number: Callable[[str], str]) -> str:
    """One figure with its change (not for the first run), numbers written by ``number``."""
    value = row.values[metric.name]
    if value is None:
        return ""
    text = number(sig(value * metric.scale))
    if metric.name == "parameters":
        text = number(f"{int(value):,}")
    change = row.changes_pct[metric.name]
    if not first and change is not None:
        text += f" ({fmt_pct(change)})"
    return text


def groups(rows: list[CompareRow], n_runs: int) -> list[tuple[CompareRow, bool]]:
    """Each row with whether it is the first of its phase (the baseline run's row)."""
    return [(row, k % n_runs == 0) for k, row in enumerate(rows)]


def window_note(reports: Sequence[Report]) -> str:
    """A sentence for the table's note when fixed-time windows are compared; else ``""``."""
    if not any(is_fixed_window(p) for r in reports for p in r.iter_phases()):
        return ""
    return (
        " Inference windows that ran for a set time are compared per sample; their total "
        "energy and CO2e, set by the window's length, are not shown."
    )


def _markdown(reports: Sequence[Report], rows: list[CompareRow]) -> str:
    head = ["Phase", "Run", *[m.title for m in METRICS]]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * len(METRICS),
    ]
    for row, first in groups(rows, len(reports)):
        cells = [escape_md(row.phase) if first else "", escape_md(row.run)]
        cells += [cell_text(row, m, first, lambda s: s) or "-" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    base = escape_md(run_labels(reports)[0])
    note = (
        f"\nChanges in parentheses are against {base}. Energy is IT energy; CO2e is "
        "location-based (facility energy × grid intensity, each run's own settings)."
        + window_note(reports)
        + "\n"
    )
    return "\n".join(lines) + "\n" + note


def _latex(reports: Sequence[Report], rows: list[CompareRow]) -> str:
    head = ["Phase", "Run", *[escape_latex(m.title) for m in METRICS]]
    body = []
    prev = None
    for row, first in groups(rows, len(reports)):
        if first and prev is not None:
            body.append(r"\midrule")
        prev = row.phase
        cells = [escape_latex(row.phase) if first else "", escape_latex(row.run)]
        cells += [
            (cell_text(row, m, first, latex_number) or "--").replace("%", r"\%") for m in METRICS
        ]
        body.append(" & ".join(cells) + r" \\")
    base = escape_latex(run_labels(reports)[0])
    return "\n".join(
        [
            "% Comparison table written by greenmeter; needs \\usepackage{booktabs}. A table*",
            "% spans both columns of a two-column paper (in one column it is a plain table).",
            r"\begin{table*}[ht]",
            r"\centering",
            r"\footnotesize",
            r"\setlength{\tabcolsep}{3pt}",
            r"\caption{Energy and efficiency per phase. Changes in parentheses are against "
            + base
            + r". Energy is IT energy; CO\textsubscript{2}e is location-based."
            + escape_latex(window_note(reports))
            + "}",
            r"\begin{tabular}{ll" + "r" * len(METRICS) + "}",
            r"\toprule",
            " & ".join(head) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table*}",
            "",
        ]
    )


def _csv(rows: list[CompareRow]) -> str:
    header = ["phase", "run", "run_id"]
    for m in METRICS:
        header += [m.name, f"{m.name}_change_pct"]
    lines = []
    for row in rows:
        line: list[object] = [row.phase, row.run, row.run_id]
        for m in METRICS:
            v, c = row.values[m.name], row.changes_pct[m.name]
            line += ["" if v is None else repr(float(v)), "" if c is None else repr(float(c))]
        lines.append(line)
    return csv_table(header, lines)


def _json(reports: Sequence[Report], rows: list[CompareRow]) -> str:
    labels = run_labels(reports)
    phases: list[dict[str, object]] = []
    for row, first in groups(rows, len(reports)):
        if first:
            phases.append({"phase": row.phase, "runs": []})
        phases[-1]["runs"].append(  # type: ignore[attr-defined]
            {"run": row.run, "run_id": row.run_id, **row.values,
             "change_pct": {k: v for k, v in row.changes_pct.items() if v is not None}}
        )  # fmt: skip
    doc = {
        "baseline": labels[0],
        "runs": [{"run": lab, "run_id": r.run_id} for lab, r in zip(labels, reports, strict=True)],
        "units": {"energy_j": "J", "energy_per_sample_j": "J", "latency_p50_s": "s",
                  "latency_p95_s": "s", "samples_per_s": "1/s", "parameters": "count",
                  "co2e_g": "g CO2e"},
        "phases": phases,
    }  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"


def compare(reports: Sequence[Report], fmt: str = "md") -> str:
    """Compare reports side by side in ``fmt`` (md, latex, csv, json).

    The HTML comparison is a page: :func:`greenmeter.render.compare` with ``"html"``.

    Raises:
        ValueError: no reports, or an unknown format.
    """
    reports = list(reports)
    if not reports:
        raise ValueError("compare needs at least one report (two or more to compare)")
    rows = compare_rows(reports)
    if fmt == "md":
        return _markdown(reports, rows)
    if fmt == "latex":
        return _latex(reports, rows)
    if fmt == "csv":
        return _csv(rows)
    if fmt == "json":
        return _json(reports, rows)
    raise ValueError(f"unknown comparison format {fmt!r}; use one of md, latex, csv, json")
