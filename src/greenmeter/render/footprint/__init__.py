"""Renderers of a :class:`~greenmeter.footprint.FootprintSummary`.

    >>> from greenmeter.render.footprint import render_footprint
    >>> print(render_footprint(summary, "latex"))  # doctest: +SKIP

Formats (:data:`FOOTPRINT_FORMATS`): ``table`` (plain text for a terminal), ``md``
(Markdown), ``latex`` (a compilable appendix: booktabs tables, methods paragraph,
BibTeX), ``html`` (a self-contained page with a chart per group), ``csv`` and ``json``
(the summary itself). Every renderer reads only the summary; the tables' figures come
from :mod:`greenmeter.render.footprint.rows`, the methods paragraph from
:mod:`greenmeter.render.footprint.methods`.
"""

from __future__ import annotations

from greenmeter.footprint.models import FootprintSummary

__all__ = ["FOOTPRINT_FORMATS", "render_footprint"]

#: Formats :func:`render_footprint` accepts.
FOOTPRINT_FORMATS: tuple[str, ...] = ("table", "md", "latex", "html", "csv", "json")


def render_footprint(summary: FootprintSummary, fmt: str = "table") -> str:
    """The footprint as text in format ``fmt``.

    Raises:
        ValueError: unknown format (the message lists the known ones).
    """
    if fmt == "table":
        from greenmeter.render.footprint.text import footprint_text

        return footprint_text(summary)
    if fmt == "md":
        from greenmeter.render.footprint.markdown import footprint_markdown

        return footprint_markdown(summary)
    if fmt == "latex":
        from greenmeter.render.footprint.latex import footprint_latex

        return footprint_latex(summary)
    if fmt == "html":
        from greenmeter.render.footprint.html import footprint_html

        return footprint_html(summary)
    if fmt == "csv":
        from greenmeter.render.footprint.tabular import footprint_csv

        return footprint_csv(summary)
    if fmt == "json":
        from greenmeter.render.footprint.tabular import footprint_json

        return footprint_json(summary)
    raise ValueError(f"unknown footprint format {fmt!r}; use one of {', '.join(FOOTPRINT_FORMATS)}")
