"""Everything that turns a :class:`~greenmeter.report.Report` into something to read.

    >>> from greenmeter.report import Report
    >>> from greenmeter.render import render, compare, plot
    >>> report = Report.load("run.json")                       # doctest: +SKIP
    >>> print(render(report, "latex"))                         # doctest: +SKIP
    >>> print(compare([teacher, student], "md"))               # doctest: +SKIP
    >>> plot(report, "power.svg")                              # doctest: +SKIP

Formats (:data:`FORMATS`): ``md`` (Markdown), ``latex`` (a compilable document with a
booktabs table, a methods paragraph and BibTeX entries), ``html`` (a self-contained
page with inline SVG plots), ``csv`` (one row per phase), ``json`` (the report itself),
``hf-card`` (Hugging Face ``co2_eq_emissions`` metadata) and ``codecarbon-csv``
(CodeCarbon's ``emissions.csv`` columns). Renderers read only the report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greenmeter.report.models import Report

__all__ = [
    "COMPARE_FORMATS",
    "FORMATS",
    "PlotError",
    "RenderError",
    "compare",
    "plot",
    "render",
]

#: Formats :func:`render` accepts.
FORMATS: tuple[str, ...] = ("md", "latex", "html", "csv", "json", "hf-card", "codecarbon-csv")
#: Formats :func:`compare` accepts.
COMPARE_FORMATS: tuple[str, ...] = ("md", "latex", "html", "csv", "json")


class RenderError(ValueError):
    """A render request that cannot be met (unknown format, no report)."""


def _as_list(report_or_reports: Report | Sequence[Report]) -> list[Report]:
    from greenmeter.report.models import Report

    if isinstance(report_or_reports, Report):
        return [report_or_reports]
    reports = list(report_or_reports)
    if not reports:
        raise RenderError("nothing to render: no report was given")
    for item in reports:
        if not isinstance(item, Report):
            raise RenderError(
                f"expected greenmeter.report.Report objects, got {type(item).__name__}; "
                "load files with Report.load(path)"
            )
    return reports


def render(report_or_reports: Report | Sequence[Report], fmt: str) -> str:
    """Render one report, or several (one section/row each), in format ``fmt``.

    Args:
        report_or_reports: A report or a sequence of reports.
        fmt: One of :data:`FORMATS`.

    Returns:
        The text of the document (a JSON array for several reports in ``json``).

    Raises:
        RenderError: unknown format, or no report.
    """
    reports = _as_list(report_or_reports)
    if fmt == "md":
        from greenmeter.render.markdown import markdown

        return markdown(reports)
    if fmt == "latex":
        from greenmeter.render.latex import latex

        return latex(reports)
    if fmt == "html":
        from greenmeter.render.html import html_page

        return html_page(reports)
    if fmt == "csv":
        from greenmeter.render.tabular import phases_csv

        return phases_csv(reports)
    if fmt == "json":
        from greenmeter.render.tabular import reports_json

        return reports_json(reports)
    if fmt == "hf-card":
        from greenmeter.render.modelcard import hf_card

        return hf_card(reports)
    if fmt == "codecarbon-csv":
        from greenmeter.render.codecarbon import codecarbon_csv

        return codecarbon_csv(reports)
    raise RenderError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def compare(reports: Sequence[Report], fmt: str = "md") -> str:
    """Compare reports side by side per phase, with the change against the first one.

    Args:
        reports: Two or more reports (the first is the baseline); one is allowed.
        fmt: One of :data:`COMPARE_FORMATS`.

    Raises:
        RenderError: unknown format, or no report.
    """
    from greenmeter.render.comparison import compare as _compare

    items = _as_list(reports)
    if fmt not in COMPARE_FORMATS:
        raise RenderError(
            f"unknown comparison format {fmt!r}; use one of {', '.join(COMPARE_FORMATS)}"
        )
    return _compare(items, fmt)


def plot(report: Report, path: str | os.PathLike[str]) -> Path:
    """Plot power over time per component with phases shaded, to ``.svg`` or ``.png``.

    Raises:
        PlotError: unknown suffix, or matplotlib missing for PNG/PDF (the message
            names ``pip install "greenmeter[plot]"``); a ``ValueError``.
    """
    from greenmeter.render.plotting import plot as _plot

    return _plot(report, path)


def __getattr__(name: str) -> object:
    if name == "PlotError":
        from greenmeter.render.plotting import PlotError

        return PlotError
    raise AttributeError(f"module 'greenmeter.render' has no attribute {name!r}")
