"""Re-derive the carbon figures of an existing report with other carbon settings.

    >>> from greenmeter.carbon.rederive import rederive               # doctest: +SKIP
    >>> new = rederive(report, CarbonConfig(location="FR"))           # doctest: +SKIP

The measured energy is untouched; facility energy (PUE) and every CO2e figure are
recomputed, and the report's ``carbon.resolution`` says what changed and from what.
Settings not given keep the report's own: its PUE, market-based and embodied settings.
Each phase's energy is spread evenly over its active intervals (the report keeps no
finer split), which matters only with a time-varying intensity.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.models import CarbonInfo
from greenmeter.carbon.resolve import resolve
from greenmeter.report.models import J_PER_KWH, Phase, Report, ReportWarning, Totals

__all__ = ["rederive"]


def _kept(old: CarbonInfo | None, given: CarbonConfig) -> CarbonConfig:
    """``given`` plus the report's own PUE, market and embodied settings where not given."""
    if old is None:
        return given
    values: dict[str, Any] = {k: v for k, v in given.given().items()}
    if given.pue is None:
        values.update(pue=old.pue.value, pue_source=old.pue.source)
        if old.pue.low is not None or old.pue.high is not None:
            values.update(pue_low=old.pue.low, pue_high=old.pue.high)
    market = old.market
    if market is not None and "market_factor_g_per_kwh" not in values:
        if market.method == "factor":
            values["market_factor_g_per_kwh"] = market.factor_g_per_kwh
        elif "renewable_share" not in values:
            values["renewable_share"] = market.renewable_share
            if market.uncovered_basis == "residual_mix":
                values["residual_mix_g_per_kwh"] = market.uncovered_factor_g_per_kwh
    if old.embodied is not None and "embodied" not in values:
        values["embodied"] = tuple(
            (d.kind, d.manufacturing_kgco2e, d.lifetime_h, d.source) for d in old.embodied.devices
        )
    return CarbonConfig(**values)


def _segments(phase: Phase, start: datetime) -> list[tuple[datetime, datetime, float]]:
    spans = [(a, b) for a, b in phase.intervals_s if b >= a]
    total = sum(b - a for a, b in spans)
    if not spans or total <= 0:
        t = phase.start_utc or start
        return [(t, phase.end_utc or t, phase.it_energy_j)]
    return [
        (
            start + timedelta(seconds=a),
            start + timedelta(seconds=b),
            phase.it_energy_j * (b - a) / total,
        )
        for a, b in spans
    ]


def _hours(device_hours: dict[str, float], seconds: float, hosts: int) -> dict[str, float]:
    return {**device_hours, "host": hosts * seconds / 3600.0}


def rederive(report: Report, config: CarbonConfig, *, note: str = "") -> Report:
    """A copy of ``report`` with its carbon figures recomputed under ``config``.

    Args:
        report: The report to re-derive (not modified).
        config: The new settings (location, cloud, pue, intensity...); environment
            variables and config files are not read.
        note: How the change was asked for, recorded in the resolution notes
            (e.g. ``"greenmeter report --location FR"``).

    Raises:
        CarbonError: an invalid setting.
    """
    acct = resolve(_kept(report.carbon, config), env={}, config_search=False)
    pue = acct.pue
    hosts = max(1, len(report.hosts))
    acct.prepare_span(report.start_utc, report.end_utc)

    def redo(phase: Phase) -> Phase:
        co2e = acct.co2e(
            _segments(phase, report.start_utc),
            _hours(dict(phase.device_hours), phase.duration_s, hosts),
        )
        return phase.model_copy(
            update={
                "facility_energy_j": phase.it_energy_j * pue,
                "facility_energy_kwh": phase.it_energy_j * pue / J_PER_KWH,
                "co2e": co2e,
                "children": [redo(c) for c in phase.children],
            }
        )

    phases = [redo(p) for p in report.phases]
    t = report.totals
    run_co2e = acct.co2e(
        [(report.start_utc, report.end_utc, t.it_energy_j)],
        _hours(dict(t.device_hours), t.duration_s, hosts),
    )
    kind_of = {c.key: c.kind for c in report.components}
    totals = Totals.from_energy(
        energy_j=t.energy_j,
        kind_of={k: kind_of.get(k, "cpu") for k in t.energy_j},
        estimated={c.key for c in report.components if c.method == "estimated"},
        duration_s=t.duration_s,
        pue=pue,
        co2e=run_co2e,
        device_hours=t.device_hours,
    )
    old = report.carbon
    was = (
        f"{old.intensity.value_g_per_kwh:g} {old.intensity.unit} "
        f"({old.intensity.location or old.intensity.cloud_region or old.intensity.source}), "
        f"PUE {old.pue.value:g}"
        if old is not None
        else "no carbon accounting"
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    steps = [
        f"re-derived {now}{' by ' + note if note else ''}; measured energy unchanged; "
        f"before: {was}",
        *acct.info.resolution,
    ]
    if old is not None:
        steps = [*old.resolution, *steps]
    info = acct.info.model_copy(update={"resolution": steps})
    drop = {"carbon.default_intensity", "carbon.basis_differs", "carbon.pue_default_datacentre"}
    warnings = [w for w in report.warnings if w.code not in drop]

    warnings += [ReportWarning(code=c, message=m) for c, m in acct.warnings]
    updated = report.model_copy(
        update={"carbon": info, "phases": phases, "totals": totals, "warnings": warnings}
    )
    return Report.model_validate(updated.model_dump())
