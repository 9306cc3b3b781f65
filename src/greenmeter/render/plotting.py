"""Power-over-time plots to a file: ``.svg`` from the built-in plotter, every other format
matplotlib can write (``.png``, ``.pdf``, ``.jpg``, ...) via matplotlib (the optional
``plot`` extra).

Labels from the report are drawn as they are: never parsed as math (``$...$``) or sent
to TeX, whatever the user's matplotlib settings. matplotlib is used through its
object API (no ``pyplot``), so plotting neither changes the user's backend nor leaves
figures open.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

from greenmeter.files import write_file
from greenmeter.render.escape import plot_text
from greenmeter.render.svg import panels, phase_colors, power_axis, report_svg
from greenmeter.report.models import Report

__all__ = ["PlotError", "check_plot_path", "figure", "plot", "plot_formats"]

_EXTRA = 'pip install "greenmeter[plot]"'


class PlotError(ValueError):
    """The plot cannot be written (unknown suffix, matplotlib missing, a write error)."""


def plot_formats() -> dict[str, str]:
    """File suffixes (without the dot) a plot can be written to, with their names.

    ``svg`` always (built in); the others are what matplotlib's Agg canvas says it can
    write, when matplotlib is installed.
    """
    formats = {"svg": "Scalable Vector Graphics (built in)"}
    try:
        import matplotlib  # noqa: F401  (the package itself first: it may be absent)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        return formats
    for suffix, name in FigureCanvasAgg.get_supported_filetypes().items():
        formats.setdefault(suffix, name)
    return formats


def check_plot_path(path: str | os.PathLike[str]) -> str:
    """The format a plot to ``path`` is written in, from its suffix.

    Raises:
        PlotError: no suffix, one that no installed plotter writes, or matplotlib
            missing for a format other than ``.svg``.
    """
    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix == "svg":
        return suffix
    formats = plot_formats()
    if len(formats) == 1:
        raise PlotError(
            f"writing {target} needs matplotlib, which is not installed. Install it "
            f"with: {_EXTRA}; or write an .svg instead, which needs nothing extra."
        )
    if suffix not in formats:
        known = ", ".join(f".{s}" for s in sorted(formats))
        what = f"the suffix .{suffix}" if suffix else "no suffix"
        raise PlotError(f"cannot plot to {target}: {what}; use one of {known}")
    return suffix


#: matplotlib settings for every plot, whatever the user's: text is never sent to TeX.
_RC = {"text.usetex": False}


def _text_as_is(text: Any) -> None:
    """Draw a matplotlib text as it is: no math, no TeX."""
    text.set_parse_math(False)
    text.set_usetex(False)


def figure(report: Report) -> Any:
    """The matplotlib figure of the plot (one panel per component, phases shaded)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        return _figure(report)


def _figure(report: Report) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    chosen = panels(report)
    shading = phase_colors(report)
    n = max(1, len(chosen))
    fig = Figure(figsize=(9, 2.3 * n + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)
    t_max = max([report.duration_s, *[p.t_s[-1] for p in chosen if p.t_s]])
    for ax, panel in zip(axes[:, 0], chosen, strict=False):
        xs, ys, prev = [], [], 0.0
        for t, w in zip(panel.t_s, panel.power_w, strict=False):
            xs += [prev, t]
            ys += [w, w]
            prev = t
        for phase, color in shading:
            for a, b in phase.intervals_s:
                ax.axvspan(a, b, color=color, alpha=0.18, lw=0)
        ax.plot(xs, ys, color="#1b1f3b", lw=1.4)
        _text_as_is(ax.set_title(plot_text(panel.title), fontsize=9, loc="left"))
        ax.set_ylabel("power (W)")
        bottom, top, ticks = power_axis(max([0.0, *panel.power_w]))
        ax.set_yticks(ticks)
        ax.set_ylim(bottom, top)
        ax.set_xlim(0, t_max or 1.0)
    if not chosen:
        axes[0, 0].text(0.5, 0.5, "no power timeline in this report", ha="center")
    axes[-1, 0].set_xlabel("time since start (s)")
    if shading:
        labels = [plot_text(p.path_str) for p, _ in shading]
        handles = [Patch(color=c, alpha=0.35) for _, c in shading]
        legend = fig.legend(
            handles, labels, loc="upper center", ncol=min(4, len(handles)), fontsize=8
        )
        for text in legend.get_texts():
            _text_as_is(text)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tight layout not applied")
        fig.tight_layout(rect=(0, 0, 1, 0.93 if shading else 1))
    return fig


def _matplotlib(report: Report, target: Path, suffix: str) -> bytes:
    import matplotlib

    fig = figure(report)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), matplotlib.rc_context(_RC):
            # a character the font lacks is drawn as a box; no warning per character
            warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
            fig.savefig(buffer, dpi=120, format=suffix)
    except Exception as exc:  # matplotlib's own errors vary by format and version
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PlotError(f"cannot write {target}: matplotlib failed: {reason}") from None
    return buffer.getvalue()


def plot(report: Report, path: str | os.PathLike[str]) -> Path:
    """Plot power over time per component, phases shaded; the format follows the suffix.

    Args:
        report: The report.
        path: ``*.svg`` (built in, no extra dependency) or any other format matplotlib
            writes (:func:`plot_formats`: ``.png``, ``.pdf``, ``.jpg``, ...).

    Returns:
        The path written.

    Raises:
        PlotError: an unknown suffix, matplotlib missing for a format other than SVG, or
            matplotlib failing; the message names ``path`` and the fix.
        OSError: the file cannot be written (an ``OutputError`` naming ``path``).
    """
    target = Path(path)
    suffix = check_plot_path(target)
    if suffix == "svg":
        data = report_svg(report).encode("utf-8")
    else:
        data = _matplotlib(report, target, suffix)
    write_file(target, data)
    return target
