"""The line that closes a run: energy, CO2e, where the report went, and the caveats.

Every entry point (``greenmeter run``, the callbacks on rank 0, an :class:`EnergyMeter`
given a report path) ends with this one line on standard error unless told to be quiet
(``-q`` / ``verbose=False``). The caveats travel with the figures: an energy figure that
is partly or wholly an estimate says so, with the estimate's scope, and a CO2e figure
computed at the world-average intensity because no location was set says how to set one.
"""

from __future__ import annotations

import sys
from os import PathLike
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from greenmeter.report.models import Report

__all__ = ["caveats", "emit_summary", "summary_line"]


def caveats(report: Report) -> list[str]:
    """The caveats a reader of the run's figures must see, shortest first.

    Returns:
        Phrases such as ``"estimate (process scope)"``, ``"42 % estimated"`` and
        ``"world-average intensity: set GREENMETER_LOCATION"``; empty when the figures
        come from counters or sampled sensors at a stated location.
    """
    out: list[str] = []
    totals = report.totals
    estimated_j = totals.estimated_energy_j
    if estimated_j > 0.0:
        scopes = sorted({c.scope for c in report.components if c.method == "estimated"})
        scope = f" ({', '.join(scopes)} scope)" if scopes else ""
        total_j = totals.it_energy_j
        if total_j > 0.0 and estimated_j < total_j * 0.995:
            share = 100.0 * estimated_j / total_j
            out.append(f"{share:.0f} % estimated{scope}")
        else:
            out.append(f"estimate{scope}")
    carbon = report.carbon
    if carbon is not None and carbon.intensity.is_fallback:
        out.append("world-average intensity: set GREENMETER_LOCATION")
    return out


def summary_line(
    report: Report,
    path: str | PathLike[str] | None = None,
    *,
    lead: str = "greenmeter:",
    with_status: bool = True,
) -> str:
    """The run's closing line, e.g. ``greenmeter: energy 126 J, 0.0169 g CO2e; report:
    run.json (estimate (process scope); world-average intensity: set GREENMETER_LOCATION)``.

    Args:
        report: The final (or partial) report.
        path: Where the report was written; omitted from the line when ``None``.
        lead: The words before the figures (the CLI puts how the command ended there).
        with_status: Add ``run interrupted``/``run failed`` to the caveats when the run
            did not complete (the CLI says so in its lead instead).
    """
    from greenmeter.render.numbers import format_energy, format_mass

    totals = report.totals
    text = f"{lead} energy {format_energy(totals.it_energy_j)}"
    if totals.pue != 1.0:
        text += f" (facility {format_energy(totals.facility_energy_j)}, PUE {totals.pue:g})"
    co2e = totals.co2e
    if co2e is not None:
        text += f", {format_mass(co2e.operational_g)} CO2e"
        low, high = co2e.operational_low_g, co2e.operational_high_g
        if format_mass(low) != format_mass(high):
            text += f" ({format_mass(low)}-{format_mass(high)})"
    if path is not None:
        text += f"; report: {path}"
    notes = caveats(report)
    if with_status and report.status != "complete":
        notes.append(f"run {report.status}")
    if notes:
        text += f" ({'; '.join(notes)})"
    return text


def emit_summary(
    report: Report,
    path: str | PathLike[str] | None = None,
    *,
    lead: str = "greenmeter:",
    with_status: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Write :func:`summary_line` and a newline to ``stream`` (standard error by default).

    A stream that cannot be written (closed, full disk) is ignored: the summary never
    fails a run whose report is already on disk.
    """
    out = stream if stream is not None else sys.stderr
    try:
        out.write(summary_line(report, path, lead=lead, with_status=with_status) + "\n")
        out.flush()
    except (OSError, ValueError, AttributeError):
        pass
