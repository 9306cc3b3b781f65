"""LaTeX: a booktabs table, a methods paragraph with citations, and BibTeX entries.

The output is a complete document that compiles with a basic TeX installation
(``pdflatex``; packages ``booktabs`` and ``url`` only, no ``siunitx``). The BibTeX
entries travel inside it in a ``filecontents*`` block, written next to the document on
the first run. To paste into a paper, take the ``table`` environment (needs
``\\usepackage{booktabs}``), the methods paragraph and the BibTeX entries.

Every string that comes from a report is escaped (:func:`escape_latex`); section titles
and captions name the run only by its name (no run id).
"""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.render.escape import escape_latex, latex_number
from greenmeter.render.methods import Cite, Sentence, methods
from greenmeter.render.numbers import sig
from greenmeter.render.sources import bibtex
from greenmeter.render.table import PhaseRow, phase_rows, run_title
from greenmeter.report.models import Report

__all__ = [
    "BIB_NAME",
    "escape_latex",
    "latex",
    "latex_methods",
    "latex_number",
    "latex_sentence",
    "latex_table",
]

#: Name of the bibliography file the document writes and reads.
BIB_NAME = "greenmeter-references"

_HEADER = (
    "Phase",
    "Duration (s)",
    "Energy (J)",
    "Energy (kWh)",
    "Mean power (W)",
    "J/sample",
    r"CO\textsubscript{2}e (g)",
)


def _cells(row: PhaseRow) -> list[str]:
    name = escape_latex(row.path)
    if row.is_total:
        name = r"\textbf{" + name + "}"
    return [
        name,
        *(
            latex_number(sig(v))
            for v in (
                row.duration_s,
                row.energy_j,
                row.energy_kwh,
                row.mean_power_w,
                row.energy_per_sample_j,
                row.co2e_g,
            )
        ),
    ]


def latex_table(report: Report, *, label: str | None = None) -> str:
    """The per-phase table as a ``table`` environment (booktabs rules)."""
    rows = phase_rows(report)
    body = []
    for row in rows:
        if row.is_total:
            body.append(r"\midrule")
        body.append(" & ".join(_cells(row)) + r" \\")
    title = run_title(report)
    of = f" of {escape_latex(title)}" if title else ""
    pue = report.totals.pue
    co2 = (
        f"CO\\textsubscript{{2}}e is location-based, from facility energy "
        f"(IT energy $\\times$ PUE {sig(pue, 3)})."
        if report.totals.co2e is not None
        else "No CO\\textsubscript{2}e was computed."
    )
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        r"\caption{Energy per phase" + of + ". Energy is IT energy (the measured "
        "components); " + co2 + "}",
        *([r"\label{" + label + "}"] if label else []),
        r"\begin{tabular}{l" + "r" * (len(_HEADER) - 1) + "}",
        r"\toprule",
        " & ".join(_HEADER) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines)


def latex_sentence(sentence: Sentence) -> str:
    """A methods sentence as LaTeX, citations as ``\\cite`` commands."""
    out = []
    pending: list[str] = []
    for part in [*sentence, ""]:
        if isinstance(part, Cite):
            pending.append(part.key)
            continue
        if pending:
            out.append("~\\cite{" + ",".join(pending) + "}")
            pending = []
        out.append(escape_latex(part))
    return "".join(out)


def latex_methods(report: Report) -> str:
    """The methods paragraph, with ``\\cite`` commands for the BibTeX entries."""
    return r"\paragraph{Energy and carbon accounting.} " + " ".join(
        latex_sentence(s) for s in methods(report)
    )


def _warnings(report: Report) -> str:
    if not report.warnings:
        return ""
    items = "\n".join(
        r"\item \texttt{" + escape_latex(w.code) + "}: " + escape_latex(w.message)
        for w in report.warnings
    )
    return "\\paragraph{Warnings.}\n\\begin{itemize}\n" + items + "\n\\end{itemize}"


def latex(reports: Sequence[Report]) -> str:
    """A complete LaTeX document for one or several reports (one section each)."""
    version = escape_latex(reports[0].software.greenmeter)
    parts = [
        f"% Energy and carbon report written by greenmeter {version}.",
        "% Compile: pdflatex, bibtex, pdflatex, pdflatex. For a paper, copy the table",
        "% (needs \\usepackage{booktabs}), the methods paragraph and the BibTeX entries.",
        f"\\begin{{filecontents*}}[overwrite]{{{BIB_NAME}.bib}}",
        bibtex(list(reports)).rstrip(),
        "\\end{filecontents*}",
        "\\documentclass{article}",
        "\\usepackage[utf8]{inputenc}",
        "\\usepackage{booktabs}",
        "\\usepackage{url}",
        "\\begin{document}",
    ]
    for report in reports:
        title = run_title(report)
        named = f": {escape_latex(title)}" if title else ""
        parts += [
            "",
            "\\section*{Energy and carbon" + named + "}",
            "",
            latex_table(report, label=f"tab:greenmeter-{report.run_id[:8]}"),
            "",
            latex_methods(report),
        ]
        warn = _warnings(report)
        if warn:
            parts += ["", warn]
    parts += [
        "",
        "\\bibliographystyle{plain}",
        f"\\bibliography{{{BIB_NAME}}}",
        "\\end{document}",
        "",
    ]
    return "\n".join(parts)
