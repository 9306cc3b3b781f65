"""The footprint as a LaTeX appendix: booktabs tables, a methods paragraph that states
what the totals include and exclude, and BibTeX entries for the sources cited.

:func:`footprint_latex` is a complete document that compiles with a basic TeX
installation (``pdflatex``; ``booktabs``, ``graphicx`` and ``url`` only), its BibTeX
entries in a ``filecontents*`` block. To paste into a paper, take :func:`latex_appendix`
(the section; needs ``\\usepackage{booktabs}`` and ``\\usepackage{graphicx}``, which
shrinks a table to the text width when it is wider) and the BibTeX entries. Every string from the
reports is escaped (:func:`~greenmeter.render.latex.escape_latex`).
"""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.footprint.models import FootprintSummary
from greenmeter.render.footprint.methods import cited_sources, footprint_methods, source_text
from greenmeter.render.footprint.rows import (
    Column,
    cell,
    compute_columns,
    energy_columns,
    gpu_model_rows,
    rows,
)
from greenmeter.render.footprint.text import headline
from greenmeter.render.latex import escape_latex, latex_number, latex_sentence
from greenmeter.render.numbers import sig
from greenmeter.render.sources import bibtex_entries

__all__ = ["FOOTPRINT_BIB_NAME", "footprint_latex", "latex_appendix"]

#: Name of the bibliography file the document writes and reads.
FOOTPRINT_BIB_NAME = "greenmeter-footprint-references"


def _head(title: str, width: int = 12) -> str:
    """A column title on short lines (a nested tabular), so wide tables fit the page."""
    lines: list[str] = []
    for word in title.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    if len(lines) == 1:
        return escape_latex(title)
    return (
        r"\begin{tabular}[b]{@{}r@{}}" + r" \\ ".join(map(escape_latex, lines)) + r"\end{tabular}"
    )


def _table(
    summary: FootprintSummary, columns: Sequence[Column], caption: str, label: str
) -> list[str]:
    body = []
    for row in rows(summary):
        name = escape_latex(row.label)
        if row.is_total:
            body.append(r"\midrule")
            name = r"\textbf{" + name + "}"
        cells = [latex_number(cell(c, row.totals)) for c in columns]
        body.append(" & ".join([name, *cells]) + r" \\")
    head = " & ".join(["Group", *(_head(c.title) for c in columns)]) + r" \\"
    return [
        r"\begin{table}[ht]",
        r"\centering",
        r"\footnotesize",
        r"\setlength{\tabcolsep}{4pt}",
        r"\caption{" + caption + "}",
        r"\label{" + label + "}",
        # shrink to the text width only when wider (\width is the table's natural width)
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        r"\begin{tabular}{p{0.24\linewidth}" + "r" * len(columns) + "}",
        r"\toprule",
        head,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
    ]


def _gpu_models(summary: FootprintSummary) -> list[str]:
    models = gpu_model_rows(summary)
    if not models:
        return []
    body = [
        f"{escape_latex(n)} & {latex_number(sig(h))} & {latex_number(sig(p, 3))} \\\\"
        for n, h, p in models
    ]
    return [
        r"\begin{table}[ht]",
        r"\centering",
        r"\footnotesize",
        r"\caption{GPU-hours by GPU model, all runs.}",
        r"\label{tab:footprint-gpus}",
        r"\begin{tabular}{lrr}",
        r"\toprule",
        r"GPU model & GPU-hours & Share (\%) \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]


def _sources(summary: FootprintSummary) -> list[str]:
    if not summary.sources:
        return []
    items = [
        r"\item \textbf{" + escape_latex(src.id) + "} (" + str(src.runs) + " run(s), "
        + latex_number(sig(src.facility_energy_kwh)) + " kWh at the facility): "
        + escape_latex(source_text(src))
        for src in summary.sources
    ]  # fmt: skip
    return [r"\paragraph{Carbon intensity sources.}", r"\begin{itemize}", *items, r"\end{itemize}"]


def latex_appendix(summary: FootprintSummary, *, label: str = "app:footprint") -> str:
    """The appendix section: tables, methods paragraph, sources (needs booktabs, graphicx)."""
    by = ", ".join(summary.group_by)
    grouped = f" per group of runs (by {escape_latex(by)}) and in total" if by else " in total"
    note = (
        r"Energy is IT energy (the measured components) and facility energy (IT energy "
        r"$\times$ PUE). CO\textsubscript{2}e location-based is facility energy $\times$ grid "
        r"intensity; market-based and embodied CO\textsubscript{2}e are separate figures, "
        r"never added to it. A dash: no run of the group has the figure."
    )
    parts = [
        r"\section{Compute and carbon footprint}",
        r"\label{" + label + "}",
        "",
        f"This appendix gives the compute, energy and emissions of the experiments{grouped}: "
        + escape_latex(headline(summary))
        + ".",
        "",
        *_table(
            summary,
            compute_columns(),
            "Runs and compute" + (f" by {escape_latex(by)}" if by else "") + ".",
            "tab:footprint-compute",
        ),
        "",
        *_table(
            summary,
            energy_columns(summary),
            r"Energy and CO\textsubscript{2}e"
            + (f" by {escape_latex(by)}" if by else "")
            + ". "
            + note,
            "tab:footprint-energy",
        ),
        "",
        *_gpu_models(summary),
        "",
        r"\paragraph{Methods.} " + " ".join(latex_sentence(s) for s in footprint_methods(summary)),
        "",
        *_sources(summary),
    ]
    return "\n".join(parts).rstrip() + "\n"


def footprint_latex(summary: FootprintSummary) -> str:
    """A complete LaTeX document holding the appendix and its bibliography."""
    version = escape_latex(summary.greenmeter)
    return "\n".join(
        [
            f"% Compute and carbon footprint written by greenmeter {version}.",
            "% Compile: pdflatex, bibtex, pdflatex, pdflatex. For a paper, copy the section",
            "% (needs \\usepackage{booktabs} and \\usepackage{graphicx}) and the BibTeX entries.",
            f"\\begin{{filecontents*}}[overwrite]{{{FOOTPRINT_BIB_NAME}.bib}}",
            bibtex_entries(cited_sources(summary)).rstrip(),
            "\\end{filecontents*}",
            "\\documentclass{article}",
            "\\usepackage[utf8]{inputenc}",
            "\\usepackage{booktabs}",
            "\\usepackage{graphicx}",
            "\\usepackage{url}",
            "\\begin{document}",
            "\\appendix",
            "",
            latex_appendix(summary),
            "\\bibliographystyle{plain}",
            f"\\bibliography{{{FOOTPRINT_BIB_NAME}}}",
            "\\end{document}",
            "",
        ]
    )
