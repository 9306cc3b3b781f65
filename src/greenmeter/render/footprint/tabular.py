"""The footprint as CSV (one row per group, the total, and every run when listed) and
as JSON (the summary itself, which ``docs/schema/footprint.schema.json`` describes).

CSV cells that hold text are neutralised for spreadsheets: text starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so it is never
taken for a formula. Numbers are written as numbers (``repr`` of the float).
"""

from __future__ import annotations

from collections.abc import Iterable

from greenmeter.footprint.models import FootprintRun, FootprintSummary, FootprintTotals
from greenmeter.render.escape import csv_table
from greenmeter.units import J_PER_KWH

__all__ = ["FOOTPRINT_CSV_COLUMNS", "footprint_csv", "footprint_json"]

#: Columns of the footprint CSV (before the ``gpu_hours:<model>`` columns), units in names.
FOOTPRINT_CSV_COLUMNS: tuple[str, ...] = (
    "level", "group", "run_id", "run_name", "status", "path",
    "runs", "runs_complete", "runs_failed", "runs_interrupted", "runs_running",
    "first_start_utc", "last_end_utc", "wall_time_s", "gpu_hours",
    "it_energy_j", "it_energy_kwh", "facility_energy_j", "facility_energy_kwh",
    "measured_energy_j", "estimated_energy_j", "estimated_share",
    "co2e_location_g", "co2e_location_low_g", "co2e_location_high_g", "runs_with_co2e",
    "co2e_market_g", "runs_with_market", "co2e_embodied_g", "runs_with_embodied", "sources",
)  # fmt: skip


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _totals(t: FootprintTotals) -> dict[str, str]:
    out = {
        "runs": _num(t.runs.total),
        "runs_complete": _num(t.runs.complete),
        "runs_failed": _num(t.runs.failed),
        "runs_interrupted": _num(t.runs.interrupted),
        "runs_running": _num(t.runs.running),
        "first_start_utc": t.first_start_utc.isoformat() if t.first_start_utc else "",
        "last_end_utc": t.last_end_utc.isoformat() if t.last_end_utc else "",
        "sources": " ".join(t.sources),
        "runs_with_co2e": _num(t.runs_with_co2e),
        "runs_with_market": _num(t.runs_with_market),
        "runs_with_embodied": _num(t.runs_with_embodied),
    }
    for name in (
        "wall_time_s", "gpu_hours", "it_energy_j", "it_energy_kwh", "facility_energy_j",
        "facility_energy_kwh", "measured_energy_j", "estimated_energy_j", "estimated_share",
        "co2e_location_g", "co2e_location_low_g", "co2e_location_high_g", "co2e_market_g",
        "co2e_embodied_g",
    ):  # fmt: skip
        out[name] = _num(getattr(t, name))
    if not t.runs_with_co2e:
        for name in ("co2e_location_g", "co2e_location_low_g", "co2e_location_high_g"):
            out[name] = ""
    for model, hours in t.gpu_hours_by_model.items():
        out[f"gpu_hours:{model}"] = _num(hours)
    return out


def _run(r: FootprintRun) -> dict[str, str]:
    return {
        "level": "run",
        "group": r.group,
        "run_id": r.run_id,
        "run_name": r.run_name or "",
        "status": r.status,
        "path": r.path,
        "runs": "1",
        "first_start_utc": r.start_utc.isoformat(),
        "last_end_utc": r.end_utc.isoformat(),
        "wall_time_s": _num(r.duration_s),
        "gpu_hours": _num(r.gpu_hours),
        "it_energy_j": _num(r.it_energy_j),
        "it_energy_kwh": _num(r.it_energy_j / J_PER_KWH),
        "facility_energy_j": _num(r.facility_energy_j),
        "facility_energy_kwh": _num(r.facility_energy_j / J_PER_KWH),
        "measured_energy_j": _num(r.it_energy_j - r.estimated_energy_j),
        "estimated_energy_j": _num(r.estimated_energy_j),
        "co2e_location_g": _num(r.co2e_location_g),
        "co2e_market_g": _num(r.co2e_market_g),
        "co2e_embodied_g": _num(r.co2e_embodied_g),
        "sources": r.source or "",
    }


def _model_columns(summary: FootprintSummary) -> list[str]:
    names: dict[str, None] = {}
    for t in [summary.total, *summary.groups]:
        for model in t.gpu_hours_by_model:
            names.setdefault(f"gpu_hours:{model}")
    return sorted(names)


def footprint_csv(summary: FootprintSummary) -> str:
    """One row per group (``level=group``), the total (``level=total``) and, when the
    summary lists them, every run (``level=run``)."""
    tag_columns = [f"tag:{t}" for t in summary.group_by]
    model_columns = _model_columns(summary)
    header = [*FOOTPRINT_CSV_COLUMNS, *tag_columns, *model_columns]
    rows: list[dict[str, str]] = []
    for g in summary.groups:
        row = {"level": "group", "group": g.label, **_totals(g)}
        row.update({f"tag:{k}": v for k, v in g.key.items()})
        rows.append(row)
    rows.append({"level": "total", "group": "Total", **_totals(summary.total)})
    runs: Iterable[FootprintRun] = summary.runs or ()
    for r in runs:
        row = _run(r)
        row.update({f"tag:{t}": r.tags.get(t, "") for t in summary.group_by})
        rows.append(row)
    # Every cell, the tag names in the header too, goes through the formula guard.
    return csv_table(header, ([row.get(h, "") for h in header] for row in rows))


def footprint_json(summary: FootprintSummary) -> str:
    """The summary as JSON (it validates against the footprint schema)."""
    return summary.model_dump_json(indent=2) + "\n"
