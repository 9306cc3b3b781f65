"""Short facts about a run shared by the Markdown and HTML summaries (plain text)."""

from __future__ import annotations

from greenmeter.render.numbers import sig
from greenmeter.report.models import Report

__all__ = ["facts", "timespan"]


def timespan(report: Report) -> str:
    """``"2024-05-01 12:00:00 - 12:01:40 UTC (100 s)"``."""
    start = report.start_utc.strftime("%Y-%m-%d %H:%M:%S")
    fmt = "%H:%M:%S" if report.end_utc.date() == report.start_utc.date() else "%Y-%m-%d %H:%M:%S"
    return f"{start} - {report.end_utc.strftime(fmt)} UTC ({sig(report.duration_s)} s)"


def facts(report: Report) -> list[tuple[str, str]]:
    """(label, value) pairs summarising the run, in display order."""
    t = report.totals
    energy = f"{sig(t.it_energy_j)} J ({sig(t.it_energy_kwh)} kWh) IT energy"
    if t.pue != 1.0:
        energy += f"; {sig(t.facility_energy_kwh)} kWh at the facility (PUE {sig(t.pue, 3)})"
    out = [
        ("Run", f"{report.run_id} ({report.status})"),
        ("Time", timespan(report)),
        ("Energy", energy),
    ]
    if t.co2e is not None:
        co2 = f"{sig(t.co2e.operational_g)} g CO2e (location-based)"
        if t.co2e.operational_low_g != t.co2e.operational_high_g:
            co2 += f", range {sig(t.co2e.operational_low_g)}-{sig(t.co2e.operational_high_g)} g"
        out.append(("CO2e", co2))
    if report.carbon is not None:
        i = report.carbon.intensity
        where = i.location_name or i.location or i.cloud_region or "unspecified location"
        grid = f"{sig(i.value_g_per_kwh)} {i.unit}, {where}"
        if i.year:
            grid += f", {i.year}"
        if i.is_fallback:
            grid += " (FALLBACK: no location given)"
        out.append(("Grid intensity", grid))
    if t.estimated_energy_j > 0 and t.it_energy_j > 0:
        pct = t.estimated_energy_j / t.it_energy_j * 100
        out.append(
            (
                "Estimated share",
                f"{sig(pct, 3)}% of the energy is a model estimate (greenmeter doctor, run on "
                "the machine, shows how to measure it)",
            )
        )
    for model in report.models:
        bits = []
        if model.parameters_total is not None:
            bits.append(f"{model.parameters_total:,} parameters")
        if model.size_bytes is not None:
            bits.append(f"{sig(model.size_bytes / 1e6)} MB")
        out.append(
            ("Model", f"{model.name or 'unnamed'}" + (f" ({', '.join(bits)})" if bits else ""))
        )
    return out
