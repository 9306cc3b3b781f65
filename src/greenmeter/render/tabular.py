"""Generic CSV (one row per phase and per report) and the report as JSON.

Written by :func:`~greenmeter.render.escape.csv_table`: a name that starts like a
formula (``=HYPERLINK(...)``) is text in a spreadsheet, any text reads back as one cell.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from greenmeter.render.escape import csv_table
from greenmeter.report.models import Report

__all__ = ["CSV_COLUMNS", "phases_csv", "reports_json"]

#: Columns of the generic CSV, units in the names.
CSV_COLUMNS: tuple[str, ...] = (
    "run_id",
    "run_name",
    "phase",
    "kind",
    "depth",
    "count",
    "start_utc",
    "end_utc",
    "duration_s",
    "it_energy_j",
    "it_energy_kwh",
    "facility_energy_j",
    "facility_energy_kwh",
    "exclusive_energy_j",
    "mean_power_w",
    "peak_power_w",
    "samples",
    "tokens",
    "steps",
    "energy_per_sample_j",
    "energy_per_token_j",
    "samples_per_s",
    "tokens_per_s",
    "latency_p50_s",
    "latency_p95_s",
    "latency_p99_s",
    "co2e_g",
    "co2e_low_g",
    "co2e_high_g",
    "intensity_g_per_kwh",
    "pue",
    "gpu_hours",
    "confidence",
)


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _rows(report: Report) -> list[dict[str, str]]:
    rows = []
    for p in report.iter_phases():
        eff, co2 = p.efficiency, p.co2e
        rows.append(
            {
                "phase": p.path_str,
                "kind": p.kind,
                "depth": str(len(p.path) - 1),
                "count": str(p.count),
                "start_utc": p.start_utc.isoformat() if p.start_utc else "",
                "end_utc": p.end_utc.isoformat() if p.end_utc else "",
                "duration_s": _num(p.duration_s),
                "it_energy_j": _num(p.it_energy_j),
                "it_energy_kwh": _num(p.it_energy_kwh),
                "facility_energy_j": _num(p.facility_energy_j),
                "facility_energy_kwh": _num(p.facility_energy_kwh),
                "exclusive_energy_j": _num(p.exclusive_energy_j),
                "mean_power_w": _num(eff.mean_power_w),
                "peak_power_w": _num(eff.peak_power_w),
                "samples": _num(p.items.samples),
                "tokens": _num(p.items.tokens),
                "steps": _num(p.items.steps),
                "energy_per_sample_j": _num(eff.energy_per_sample_j),
                "energy_per_token_j": _num(eff.energy_per_token_j),
                "samples_per_s": _num(eff.samples_per_s),
                "tokens_per_s": _num(eff.tokens_per_s),
                "latency_p50_s": _num(eff.latency_p50_s),
                "latency_p95_s": _num(eff.latency_p95_s),
                "latency_p99_s": _num(eff.latency_p99_s),
                "co2e_g": _num(co2.operational_g if co2 else None),
                "co2e_low_g": _num(co2.operational_low_g if co2 else None),
                "co2e_high_g": _num(co2.operational_high_g if co2 else None),
                "intensity_g_per_kwh": _num(co2.intensity_g_per_kwh if co2 else None),
                "gpu_hours": _num(p.gpu_hours),
                "confidence": p.confidence.level,
            }
        )
    t = report.totals
    co2 = t.co2e
    rows.append(
        {
            "phase": "",
            "kind": "total",
            "depth": "",
            "count": "",
            "start_utc": report.start_utc.isoformat(),
            "end_utc": report.end_utc.isoformat(),
            "duration_s": _num(t.duration_s),
            "it_energy_j": _num(t.it_energy_j),
            "it_energy_kwh": _num(t.it_energy_kwh),
            "facility_energy_j": _num(t.facility_energy_j),
            "facility_energy_kwh": _num(t.facility_energy_kwh),
            "mean_power_w": _num(t.it_energy_j / t.duration_s if t.duration_s > 0 else None),
            "co2e_g": _num(co2.operational_g if co2 else None),
            "co2e_low_g": _num(co2.operational_low_g if co2 else None),
            "co2e_high_g": _num(co2.operational_high_g if co2 else None),
            "intensity_g_per_kwh": _num(co2.intensity_g_per_kwh if co2 else None),
            "gpu_hours": _num(t.gpu_hours),
        }
    )
    for row in rows:
        row["run_id"] = report.run_id
        row["run_name"] = report.run_name or ""
        row["pue"] = _num(t.pue)
    return rows


def phases_csv(reports: Sequence[Report]) -> str:
    """One row per phase of each report, then one ``kind=total`` row for the run."""
    rows = [row for report in reports for row in _rows(report)]
    return csv_table(CSV_COLUMNS, ([row.get(c, "") for c in CSV_COLUMNS] for row in rows))


def reports_json(reports: Sequence[Report]) -> str:
    """The report itself (what ``report.save`` writes); a JSON array for several."""
    if len(reports) == 1:
        return reports[0].to_json() + "\n"
    return json.dumps([json.loads(r.to_json()) for r in reports], indent=2) + "\n"
