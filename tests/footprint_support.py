"""Report files with known figures for the footprint tests.

Every report is built by :func:`greenmeter.report.build_report` from the hand-made
snapshots of ``test_report_support`` (energies are exact trace integrals), saved as a
real file, and returned, so a test can compute the truth from the runs' own totals
independently of the footprint code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from greenmeter.carbon import CarbonConfig
from greenmeter.report import Report, build_report
from test_report_support import (
    GPU_B_ID,
    GPU_ID,
    HOST_INFO,
    START_UTC,
    StubAccountant,
    make_snapshot,
)

CPU = ["rapl:package-0", "rapl:dram-0", "estimate:ram"]
DAY_S = 86400.0


def run_id(n: int) -> str:
    """A stable run id for test run number ``n``."""
    return uuid.UUID(int=n).hex


def make_report(
    n: int,
    *,
    tags: dict[str, str] | None = None,
    status: str = "complete",
    day: float = 0.0,
    ids: Sequence[str] | None = None,
    rank: int = 0,
    world_size: int = 1,
    host: str = "node-a",
    carbon: Any = "stub",
    segments: Sequence[dict[str, Any]] | None = None,
    shift_s: float = 0.0,
) -> Report:
    """Run ``n``: 100 s starting ``day`` days (plus ``shift_s``) after the support start.

    ``carbon``: ``"stub"`` (PUE 1.5, embodied per device-hour), ``"fr"`` (France's grid,
    PUE 1.2), ``"de"`` (Germany, Uptime PUE) or None (no carbon accounting).
    """
    snap = make_snapshot(
        ids=ids if ids is not None else [*CPU, GPU_ID],
        host=host,
        rank=rank,
        local_rank=rank,
        world_size=world_size,
        running=status == "running",
        shift_s=day * DAY_S + shift_s,
    )
    accountant: Any = {
        "stub": StubAccountant(1.5),
        "fr": CarbonConfig(location="FR", pue=1.2),
        "de": CarbonConfig(location="DE", pue="uptime-2024"),
        None: False,
    }[carbon]
    return build_report(
        snap,
        carbon=accountant,
        status=status,
        host_info={**HOST_INFO, "hostname": host},
        include_git=False,
        include_command=False,
        run_id=run_id(n),
        run_name=f"run {n}",
        tags=tags or {},
        segments=segments,
    )


def save(report: Report, path: Path) -> Path:
    """Write ``report`` to ``path`` (parents created) and return the path."""
    return report.save(path)


def checkpoint_of(final: Report, seconds: float) -> Report:
    """An earlier periodic checkpoint of ``final``'s run: status running, ``seconds`` long,
    with the energy of the CPU package only (so it differs from the final report)."""
    part = build_report(
        make_snapshot(ids=["rapl:package-0"], running=True),
        carbon=False,
        status="running",
        host_info=HOST_INFO,
        include_git=False,
        include_command=False,
        run_id=final.run_id,
        tags=final.tags,
    )
    end = part.start_utc + timedelta(seconds=seconds)
    return part.model_copy(update={"end_utc": end, "duration_s": seconds})


def as_version_1(report: Report) -> str:
    """``report`` as a schema version 1 file would hold it (no tags field)."""
    data = json.loads(report.to_json())
    data["schema_version"] = "1"
    data.pop("tags")
    return json.dumps(data, indent=2)


def sums(reports: Sequence[Report]) -> dict[str, float]:
    """The truth: plain sums of the runs' own totals."""
    co2 = [r.totals.co2e for r in reports if r.totals.co2e is not None]
    return {
        "it_energy_j": sum(r.totals.it_energy_j for r in reports),
        "facility_energy_j": sum(r.totals.facility_energy_j for r in reports),
        "estimated_energy_j": sum(r.totals.estimated_energy_j for r in reports),
        "gpu_hours": sum(r.totals.gpu_hours for r in reports),
        "wall_time_s": sum(r.duration_s for r in reports),
        "co2e_location_g": sum(c.operational_g for c in co2),
        "co2e_embodied_g": sum(c.embodied_g or 0.0 for c in co2),
    }


__all__ = [
    "CPU",
    "DAY_S",
    "GPU_B_ID",
    "GPU_ID",
    "START_UTC",
    "as_version_1",
    "checkpoint_of",
    "make_report",
    "run_id",
    "save",
    "sums",
]
