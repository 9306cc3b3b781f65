"""Side-by-side comparison of runs, per phase, with the change against the first run.

The use case: show what a distilled or pruned model saves against its teacher. Phases
are matched by path (``fit/train``, ``inference/bs-64``...); the whole run is compared
too. Every figure's change is relative to the first report's figure for the same phase.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from greenmeter.render.html import html_number
from greenmeter.render.latex import escape_latex, latex_number
from greenmeter.render.markdown import escape_md
from greenmeter.render.numbers import change_pct, fmt_pct, sig
from greenmeter.render.table import report_label
from greenmeter.report.models import Phase, Report

__all__ = ["METRICS", "CompareRow", "Metric", "compare", "compare_rows", "run_labels"]


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


@dataclass(frozen=True)
class CompareRow:
    """One run's figures for one phase, and their change against the first run (%)."""

    phase: str
    run: str
    run_id: str
    values: dict[str, float | None]
    changes_pct: dict[str, float | None]


def run_labels(reports: Sequence[Report]) -> list[str]:
    """A distinct label per report (run name or model name, numbered if repeated)."""
    labels = [report_label(r, n) for n, r in enumerate(reports)]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [f"{label} (#{n + 1})" if seen[label] > 1 else label for n, label in enumerate(labels)]


def _parameters(report: Report) -> float | None:
    counts = [m.parameters_total for m in report.models if m.parameters_total is not None]
    return float(sum(counts)) if counts else None


def _phase_values(phase: Phase, report: Report) -> dict[str, float | None]:
    eff = phase.efficiency
    return {
        "energy_j": phase.it_energy_j,
        "energy_per_sample_j": eff.energy_per_sample_j,
        "latency_p50_s": eff.latency_p50_s,
        "latency_p95_s": eff.latency_p95_s,
        "samples_per_s": eff.samples_per_s,
        "parameters": _parameters(report),
        "co2e_g": phase.co2e.operational_g if phase.co2e is not None else None,
    }


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
    """Rows grouped by phase (first report's order, then new paths), then run totals."""
    if not reports:
        raise ValueError("compare needs at least one report")
    labels = run_labels(reports)
    paths: list[str] = []
    for report in reports:
        for phase in report.iter_phases():
            if phase.path_str not in paths:
                paths.append(phase.path_str)
    rows: list[CompareRow] = []
    for path in [*paths, RUN_TOTAL]:
        base: dict[str, float | None] | None = None
        for n, report in enumerate(reports):
            if path == RUN_TOTAL:
                values: dict[str, float | None] | None = _run_values(report)
            else:
                try:
                    values = _phase_values(report.phase(path), report)
                except KeyError:
                    values = None
            if n == 0:
                base = values
            if values is None:
                values = dict.fromkeys((m.name for m in METRICS), None)
            changes = {
                m.name: (
                    change_pct(values[m.name], base.get(m.name))
                    if n > 0 and base is not None
                    else None
                )
                for m in METRICS
            }
            rows.append(CompareRow(path, labels[n], report.run_id, values, changes))
    return rows


def _cell(row: CompareRow, metric: Metric, first: bool, number: Callable[[str], str]) -> str:
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


def _grouped(rows: list[CompareRow], n_runs: int) -> list[tuple[CompareRow, bool]]:
    return [(row, k % n_runs == 0) for k, row in enumerate(rows)]


def _markdown(reports: Sequence[Report], rows: list[CompareRow]) -> str:
    head = ["Phase", "Run", *[m.title for m in METRICS]]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * len(METRICS),
    ]
    for row, first in _grouped(rows, len(reports)):
        cells = [escape_md(row.phase) if first else "", escape_md(row.run)]
        cells += [_cell(row, m, first, lambda s: s) or "-" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    base = escape_md(run_labels(reports)[0])
    note = (
        f"\nChanges in parentheses are against {base}. Energy is IT energy; CO2e is "
        "location-based (facility energy × grid intensity, each run's own settings).\n"
    )
    return "\n".join(lines) + "\n" + note


def _latex(reports: Sequence[Report], rows: list[CompareRow]) -> str:
    head = ["Phase", "Run", *[escape_latex(m.title) for m in METRICS]]
    body = []
    prev = None
    for row, first in _grouped(rows, len(reports)):
        if first and prev is not None:
            body.append(r"\midrule")
        prev = row.phase
        cells = [escape_latex(row.phase) if first else "", escape_latex(row.run)]
        cells += [(_cell(row, m, first, latex_number) or "--").replace("%", r"\%") for m in METRICS]
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
            + r". Energy is IT energy; CO\textsubscript{2}e is location-based.}",
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


def compare_html_table(reports: Sequence[Report]) -> str:
    """The comparison as an HTML table (no surrounding page)."""
    rows = compare_rows(reports)
    head = ["Phase", "Run", *[m.title for m in METRICS]]
    out = ['<table class="gm-compare">', "<thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row, first in _grouped(rows, len(reports)):
        cls = ' class="gm-group"' if first else ""
        out.append(f"<tr{cls}><td>{escape(row.phase) if first else ''}</td>")
        out.append(f"<td>{escape(row.run)}</td>")
        for m in METRICS:
            text = _cell(row, m, first, html_number) if row.values[m.name] is not None else ""
            change = row.changes_pct[m.name]
            klass = ""
            if change is not None and not first and abs(change) >= 0.05:
                better = (change > 0) == m.higher_is_better
                klass = ' class="gm-better"' if better else ' class="gm-worse"'
            out.append(f'<td{klass} style="text-align:right">{text or "&ndash;"}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _csv(rows: list[CompareRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["phase", "run", "run_id"]
    for m in METRICS:
        header += [m.name, f"{m.name}_change_pct"]
    writer.writerow(header)
    for row in rows:
        line: list[object] = [row.phase, row.run, row.run_id]
        for m in METRICS:
            v, c = row.values[m.name], row.changes_pct[m.name]
            line += ["" if v is None else repr(float(v)), "" if c is None else repr(float(c))]
        writer.writerow(line)
    return buf.getvalue()


def _json(reports: Sequence[Report], rows: list[CompareRow]) -> str:
    labels = run_labels(reports)
    phases: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        phases.setdefault(row.phase, []).append(
            {"run": row.run, "run_id": row.run_id, **row.values,
             "change_pct": {k: v for k, v in row.changes_pct.items() if v is not None}}
        )  # fmt: skip
    doc = {
        "baseline": labels[0],
        "runs": [{"run": lab, "run_id": r.run_id} for lab, r in zip(labels, reports, strict=True)],
        "units": {"energy_j": "J", "energy_per_sample_j": "J", "latency_p50_s": "s",
                  "latency_p95_s": "s", "samples_per_s": "1/s", "parameters": "count",
                  "co2e_g": "g CO2e"},
        "phases": [{"phase": k, "runs": v} for k, v in phases.items()],
    }  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"


def compare(reports: Sequence[Report], fmt: str = "md") -> str:
    """Compare reports side by side in ``fmt`` (md, latex, html, csv, json).

    Raises:
        ValueError: no reports, or an unknown format.
    """
    reports = list(reports)
    if not reports:
        raise ValueError("compare needs at least one report (two or more to compare)")
    rows = compare_rows(reports)
    if fmt in ("md", "markdown"):
        return _markdown(reports, rows)
    if fmt in ("latex", "tex"):
        return _latex(reports, rows)
    if fmt == "csv":
        return _csv(rows)
    if fmt == "json":
        return _json(reports, rows)
    if fmt == "html":
        from greenmeter.render.html import html_page

        return html_page(reports, comparison_only=True)
    raise ValueError(f"unknown comparison format {fmt!r}; use one of md, latex, html, csv, json")
