"""A CodeCarbon-compatible ``emissions.csv`` (header and one row per report).

The columns and units are those of CodeCarbon's ``EmissionsData`` (codecarbon 3.x,
``codecarbon/output_methods/emissions_data.py``), in the same order, so tools that read
CodeCarbon files read these: durations in seconds, ``emissions`` in kg CO2e,
``emissions_rate`` in kg/s, powers in W, energies in kWh, ``ram_total_size`` in GB.
As in CodeCarbon, powers and energies include the PUE (facility figures). Figures
greenmeter does not have (utilisation, coordinates, water) are left empty or 0. Every
cell goes through :func:`~greenmeter.render.escape.csv_cell` (no formula runs on open).
Lines end with CRLF (RFC 4180), which CSV readers, pandas included, take as they come.
"""

from __future__ import annotations

import platform
import uuid
from collections.abc import Sequence

from greenmeter.render.escape import csv_table
from greenmeter.report.models import J_PER_KWH, Report

__all__ = ["CODECARBON_COLUMNS", "codecarbon_csv", "codecarbon_row"]

#: CodeCarbon's column names, in its order.
CODECARBON_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
)

_COUNTRY_OF_PREFIX = {
    "US": ("United States", "USA"),
    "CA": ("Canada", "CAN"),
    "CN": ("China", "CHN"),
    "AU": ("Australia", "AUS"),
    "IN": ("India", "IND"),
    "BR": ("Brazil", "BRA"),
    "SE": ("Sweden", "SWE"),
    "NO": ("Norway", "NOR"),
    "DK": ("Denmark", "DNK"),
    "JP": ("Japan", "JPN"),
}


def _f(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _where(report: Report) -> dict[str, str]:
    out = dict.fromkeys(
        ("country_name", "country_iso_code", "region", "cloud_provider", "cloud_region"), ""
    )
    out["on_cloud"] = "N"
    if report.carbon is None:
        return out
    i = report.carbon.intensity
    loc = i.location or ""
    if i.cloud_region:
        provider, _, region = i.cloud_region.partition(":")
        out.update(cloud_provider=provider, cloud_region=region or provider, on_cloud="Y")
    if len(loc) == 3 and loc.isalpha() and loc.isupper():
        out.update(country_name=i.location_name or "", country_iso_code=loc)
    elif "-" in loc or (loc[:2] in ("SE", "NO", "DK") and loc[2:].isdigit()):
        prefix = loc.split("-", 1)[0][:2]
        name, iso = _COUNTRY_OF_PREFIX.get(prefix, ("", ""))
        out.update(country_name=name, country_iso_code=iso, region=(i.location_name or loc))
    elif not i.is_fallback:
        out.update(region=i.location_name or loc)
    return out


def codecarbon_row(report: Report) -> dict[str, str]:
    """One report as a CodeCarbon ``EmissionsData`` row (strings, CSV-ready)."""
    t = report.totals
    pue = t.pue
    by_kind = t.energy_by_kind_j
    cpu_j = by_kind.get("cpu", 0.0) or by_kind.get("psys", 0.0)
    gpu_j = by_kind.get("gpu", 0.0)
    ram_j = by_kind.get("dram", 0.0) + by_kind.get("ram", 0.0)
    dur = t.duration_s
    kg = t.co2e.operational_g / 1000.0 if t.co2e is not None else 0.0
    gpus = {g.uuid: g.name or "GPU" for g in report.gpus}
    names = sorted(set(gpus.values()))
    gpu_model = ", ".join(f"{sum(1 for v in gpus.values() if v == n)} x {n}" for n in names)
    host = report.hosts[0]
    ram_gb = sum(h.ram_bytes or 0 for h in report.hosts) / 1e9
    logical = sum(h.logical_cores or 0 for h in report.hosts)
    row = {
        "timestamp": report.end_utc.strftime("%Y-%m-%dT%H:%M:%S"),
        "project_name": report.run_name or "greenmeter",
        "run_id": str(uuid.UUID(hex=report.run_id)),
        "experiment_id": "",
        "duration": _f(dur),
        "emissions": _f(kg),
        "emissions_rate": _f(kg / dur if dur > 0 else 0.0),
        "cpu_power": _f(cpu_j * pue / dur if dur > 0 else 0.0),
        "gpu_power": _f(gpu_j * pue / dur if dur > 0 else 0.0),
        "ram_power": _f(ram_j * pue / dur if dur > 0 else 0.0),
        "cpu_energy": _f(cpu_j * pue / J_PER_KWH),
        "gpu_energy": _f(gpu_j * pue / J_PER_KWH),
        "ram_energy": _f(ram_j * pue / J_PER_KWH),
        "energy_consumed": _f(t.facility_energy_kwh),
        "water_consumed": "0.0",
        "os": " ".join(x for x in (host.os, host.kernel) if x) or platform.system(),
        "python_version": report.software.python,
        "codecarbon_version": "",
        "cpu_count": str(logical) if logical else "",
        "cpu_model": host.cpu_model or "",
        "gpu_count": str(len(gpus)),
        "gpu_model": gpu_model,
        "longitude": "",
        "latitude": "",
        "ram_total_size": _f(ram_gb) if ram_gb else "",
        "tracking_mode": "machine",
        "cpu_utilization_percent": "",
        "gpu_utilization_percent": "",
        "ram_utilization_percent": "",
        "ram_used_gb": "",
        "pue": _f(pue),
        "wue": "0.0",
        **_where(report),
    }
    return row


def codecarbon_csv(reports: Sequence[Report]) -> str:
    """Header and one row per report, CodeCarbon's columns and units."""
    rows = [codecarbon_row(report) for report in reports]
    return csv_table(CODECARBON_COLUMNS, ([row[c] for c in CODECARBON_COLUMNS] for row in rows))
