"""Power-over-time plots to a file: ``.svg`` from the built-in plotter, ``.png`` and
``.pdf`` via matplotlib (the optional ``plot`` extra)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from greenmeter.files import write_file
from greenmeter.render.svg import panels, phase_colors, report_svg
from greenmeter.report.models import Report

__all__ = ["PlotError", "plot"]


class PlotError(ValueError):
    """The plot cannot be written (unknown suffix, matplotlib missing)."""


def _write(path: Path, data: bytes) -> None:
    write_file(path, data)


def _png(report: Report, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotError(
            f"writing {path.name} needs matplotlib, which is not installed ({exc}). "
            'Install it with: pip install "greenmeter[plot]"; or write an .svg instead, '
            "which needs nothing extra."
        ) from None
    chosen = panels(report)
    shading = phase_colors(report)
    n = max(1, len(chosen))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.3 * n + 0.6), sharex=True, squeeze=False)
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
        ax.set_title(panel.title, fontsize=9, loc="left")
        ax.set_ylabel("power (W)")
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, t_max or 1.0)
    if not chosen:
        axes[0, 0].text(0.5, 0.5, "no power timeline in this report", ha="center")
    axes[-1, 0].set_xlabel("time since start (s)")
    if shading:
        from matplotlib.patches import Patch

        handles = [Patch(color=c, alpha=0.35, label=p.path_str) for p, c in shading]
        fig.legend(handles=handles, loc="upper center", ncol=min(4, len(handles)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if shading else 1))
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=120, format=path.suffix.lower().lstrip("."))
    finally:
        plt.close(fig)
    _write(path, buffer.getvalue())


def plot(report: Report, path: str | os.PathLike[str]) -> Path:
    """Plot power over time per component, phases shaded; the format follows the suffix.

    Args:
        report: The report.
        path: ``*.svg`` (built-in, no extra dependency), ``*.png`` or ``*.pdf``
            (matplotlib).

    Returns:
        The path written.

    Raises:
        PlotError: another suffix, or matplotlib missing for a PNG or PDF.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".svg":
        _write(target, report_svg(report).encode("utf-8"))
    elif suffix in (".png", ".pdf"):
        _png(report, target)
    else:
        raise PlotError(
            f"cannot plot to {target.name!r}: the suffix must be .svg (built in), .png or "
            '.pdf (these need matplotlib: pip install "greenmeter[plot]")'
        )
    return target
