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
(CodeCarbon's ``emissions.csv`` columns); ``markdown`` is another name for ``md``.
Renderers read only the report and escape every string in it
(:mod:`greenmeter.render.escape`).
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
    "FORMAT_ALIASES",
    "PlotError",
    "RenderError",
    "check_plot_path",
    "compare",
    "plot",
    "render",
]

#: Formats :func:`render` accepts.
FORMATS: tuple[str, ...] = ("md", "latex", "html", "csv", "json", "hf-card", "codecarbon-csv")
#: Formats :func:`compare` accepts.
COMPARE_FORMATS: tuple[str, ...] = ("md", "latex", "html", "csv", "json")
#: Other names of formats: alias -> format.
FORMAT_ALIASES: dict[str, str] = {"markdown": "md"}


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
    fmt = FORMAT_ALIASES.get(fmt, fmt)
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
    items = _as_list(reports)
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in COMPARE_FORMATS:
        raise RenderError(
            f"unknown comparison format {fmt!r}; use one of {', '.join(COMPARE_FORMATS)}"
        )
    if fmt == "html":
        from greenmeter.render.html import html_page

        return html_page(items, comparison_only=True)
    from greenmeter.render.comparison import compare as _compare

    return _compare(items, fmt)


def plot(report: Report, path: str | os.PathLike[str]) -> Path:
    """Plot power over time per component with phases shaded; the suffix sets the format.

    ``.svg`` is built in; every other format matplotlib writes (``.png``, ``.pdf``,
    ``.jpg``, ...) needs it (``pip install "greenmeter[plot]"``).

    Raises:
        PlotError: an unknown suffix, or matplotlib missing or failing (the message
            names the path and the fix); a ``ValueError``.
        OSError: the file cannot be written.
    """
    from greenmeter.render.plotting import plot as _plot

    return _plot(report, path)


def check_plot_path(path: str | os.PathLike[str]) -> str:
    """The format :func:`plot` writes to ``path`` in (its suffix), checked before plotting.

    Raises:
        PlotError: an unknown suffix, or matplotlib missing for a format other than SVG.
    """
    from greenmeter.render.plotting import check_plot_path as _check

    return _check(path)


def __getattr__(name: str) -> object:
    if name == "PlotError":
        from greenmeter.render.plotting import PlotError

        return PlotError
    raise AttributeError(f"module 'greenmeter.render' has no attribute {name!r}")
