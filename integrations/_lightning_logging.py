"""Energy figures the Lightning callback sends to ``pl_module.log`` and the loggers.

Per train epoch and per validation run inside ``fit`` (``pl_module.log``, summed over
ranks), and per stage to the trainer's loggers (rank 0): energy (J), mean power (W) and
CO2e (g).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from greenmeter.meter import EnergyMeter
    from greenmeter.report import Report

__all__ = ["LoggingMixin"]


class LoggingMixin:
    """Metric logging of a :class:`GreenMeterCallbackCore`."""

    _meter: EnergyMeter | None
    _world_size: int
    carbon: Any
    _warn: Callable[[str, str], None]

    def _co2e_g(self, start_utc: datetime, end_utc: datetime, energy_j: float) -> float | None:
        acct = getattr(self, "_accountant", False)
        if acct is False:
            meter = self._meter
            try:
                if meter is not None and (self.carbon is None or self.carbon is meter.carbon):
                    acct = meter.run.accountant() or None  # the run's, resolved once
                else:
                    from greenmeter.carbon import resolve

                    acct = resolve(self.carbon)
            except Exception:
                acct = None
            self._accountant = acct
        if acct is None:
            return None
        try:
            return float(acct.co2e([(start_utc, end_utc, energy_j)], {}).operational_g)
        except Exception as exc:
            self._warn("log.co2e", f"greenmeter: CO2e for the logged metrics failed: {exc!r}")
            return 0.0

    def _log_phase(self, pl_module: Any, path: tuple[str, ...] | None, name: str) -> None:
        """Log one phase's figures so far with ``pl_module.log``, summed over ranks.

        Every rank logs the same keys (zeros when it has nothing), since Lightning
        reduces them with a collective.
        """
        energy_j = duration_s = 0.0
        now = datetime.now(timezone.utc)
        start = end = now
        meter = self._meter
        try:
            if meter is not None and path is not None:
                rec = next((r for r in meter.snapshot().phases if r.path == path), None)
                if rec is not None and rec.first_start_mono is not None:
                    energy_j, duration_s = rec.total_energy_j, rec.duration_s
                    start = meter.utc(rec.first_start_mono)
                    if rec.last_end_mono is not None and not rec.open:
                        end = meter.utc(rec.last_end_mono)
        except Exception as exc:
            self._warn("log.phase", f"greenmeter: reading the {name} energy failed: {exc!r}")
        metrics = {
            f"greenmeter/{name}_energy_j": energy_j,
            f"greenmeter/{name}_power_w": energy_j / duration_s if duration_s > 0 else 0.0,
        }
        co2e = self._co2e_g(start, end, energy_j)
        if co2e is not None:
            metrics[f"greenmeter/{name}_co2e_g"] = co2e
        sync = self._world_size > 1
        for key, value in metrics.items():
            pl_module.log(
                key, float(value), on_step=False, on_epoch=True, sync_dist=sync, reduce_fx="sum"
            )

    def _log_stage(self, trainer: Any, report: Report, stage: str) -> None:
        """Send a stage's merged figures to the trainer's loggers (rank 0)."""
        loggers = list(getattr(trainer, "loggers", None) or [])
        if not loggers:
            return
        try:
            phase = report.phase(stage)
        except KeyError:
            return
        metrics = {f"greenmeter/{stage}_energy_j": phase.it_energy_j}
        if phase.duration_s > 0:
            metrics[f"greenmeter/{stage}_power_w"] = phase.it_energy_j / phase.duration_s
        if phase.co2e is not None:
            metrics[f"greenmeter/{stage}_co2e_g"] = phase.co2e.operational_g
        metrics = {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
        step = int(getattr(trainer, "global_step", 0))
        for logger in loggers:
            try:
                logger.log_metrics(metrics, step=step)
            except Exception as exc:
                self._warn("log.stage", f"greenmeter: logging to {logger!r} failed: {exc!r}")
