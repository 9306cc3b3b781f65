"""The Lightning callback's reports: one per run, merged over stages, ranks and segments.

* **Stages.** Each stage (``fit``, ``validate``, ``test``, ``predict``) is measured by a
  meter of its own; at its ``teardown`` the meter stops, the ranks' reports are merged on
  global rank 0, and that stage report is merged with the run's report so far
  (:func:`greenmeter.report.merge_reports`: parts one after the other add up, a phase
  entered again adds its count). The run's report lives in the callback (``_base``) and
  in ``report_path``; a process that lost the callback's state (each ``ddp_spawn`` stage
  runs in new processes) continues the report on disk when it carries this callback's
  id and run id.
* **Resume.** A checkpoint keeps every segment measured so far (:meth:`state_dict`); a
  callback restored from it folds them into its first stage's report
  (:func:`greenmeter.report.segments.fold_segments`), whose duration then covers the same
  segments as its energy (:func:`~greenmeter.report.segments.cover_segments`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenmeter.integrations._lightning_parts import (
    STATE_VERSION,
    STATUS_RANK,
    add_opt,
    distributed_ready,
)
from greenmeter.report.segments import cover_segments, fold_segments, segment_summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from greenmeter.integrations._lightning_parts import Slot
    from greenmeter.meter import EnergyMeter
    from greenmeter.records import MeterSnapshot
    from greenmeter.report import Report

__all__ = ["ReportsMixin"]


class ReportsMixin:
    """Report building, merging, writing and checkpoint state of the callback."""

    _meter: EnergyMeter | None
    _owns_meter: bool
    _meter_id: str
    _meter_ids: list[str]
    _callback_id: str
    _run_id: str
    _previous: list[dict[str, Any]]
    _folded: list[dict[str, Any]]
    _done: list[dict[str, Any]]
    _base: Report | None
    _slots: dict[str, Slot | None]
    _stage_status: dict[str, str]
    _models: dict[str, dict[str, Any]]
    _notes: dict[str, str]
    _checkpoints_for: int | None
    _rank: int
    _world_size: int
    report_path: Path | None
    carbon: Any
    run_name: str | None
    tags: dict[str, str]
    verbose: bool
    include_sanity_check_in_totals: bool
    checkpoint_interval_s: float | None
    last_report: Report | None

    _warn: Callable[[str, str], None]
    _flush_all: Callable[[], None]
    _close_all: Callable[[], None]
    _counted: Callable[[MeterSnapshot], MeterSnapshot]

    # -- this rank's report -------------------------------------------------------------

    def _status_now(self) -> str:
        worst = "complete"
        for status in self._stage_status.values():
            if STATUS_RANK.get(status, 0) > STATUS_RANK[worst]:
                worst = status
        return worst

    def _lightning_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"lightning.stages": ",".join(self._stage_status)}
        for stage, stage_status in self._stage_status.items():
            extra[f"lightning.{stage}.status"] = stage_status
        extra["lightning.sanity_check_in_fit"] = self.include_sanity_check_in_totals
        extra["lightning.callback_id"] = self._callback_id
        for code, message in self._notes.items():
            extra[f"lightning.note.{code}"] = message
        return extra

    def build_report(self, status: str | None = None, *, flush: bool = True) -> Report:
        """This rank's report of the current stage's meter (earlier checkpoint segments
        folded in on rank 0); :attr:`last_report` is the whole run's.

        ``flush=False`` (another thread than the training loop's) leaves the counted
        batches in place and adds them to the report's copy of their phases instead.
        """
        meter = self._meter
        if meter is None:
            raise RuntimeError("GreenMeterCallback has no meter yet: it is created on setup")
        if flush:
            self._flush_all()
        snapshot = self._counted(meter.snapshot())
        if not flush:
            snapshot = self._with_unflushed(snapshot)
        extra = self._lightning_extra()
        earlier: list[dict[str, Any]] = []
        if self._previous and self._rank == 0:
            snapshot, more, earlier = fold_segments(snapshot, self._previous)
            extra.update(more)
            if self._world_size > 1:
                extra["resume.scope"] = "earlier segments carry global rank 0's measurements"
        kwargs: dict[str, Any] = dict(meter.report_kwargs)
        if self.carbon is not None and self.carbon is not meter.carbon:
            kwargs.setdefault("carbon", self.carbon)  # else the run's, resolved once
        kwargs.setdefault("run_name", self.run_name or meter.run_name)
        kwargs["status"] = status or self._status_now()
        kwargs["run_id"] = self._run_id
        kwargs["model"] = list(self._models.values()) or None
        kwargs["extra"] = {**dict(kwargs.get("extra") or {}), **extra}
        if self.tags:
            kwargs["tags"] = {**dict(kwargs.get("tags") or {}), **self.tags}
        if earlier:
            kwargs["segments"] = earlier
        if self._rank != 0:
            kwargs.setdefault("include_git", False)
            kwargs.setdefault("include_command", False)
        return cover_segments(meter.run.build(snapshot, **kwargs))

    def _with_unflushed(self, snapshot: MeterSnapshot) -> MeterSnapshot:
        """``snapshot`` with the batches counted since the open phases' last flush."""
        from dataclasses import replace

        pending = {
            slot.handle.path: (slot.samples, slot.tokens, slot.steps)
            for slot in list(self._slots.values())
            if slot is not None
        }
        if not pending:
            return snapshot
        phases = []
        for rec in snapshot.phases:
            more = pending.get(rec.path)
            if more is not None and (more[0] is not None or more[1] is not None or more[2]):
                rec = replace(
                    rec,
                    samples=add_opt(rec.samples, more[0]),
                    tokens=add_opt(rec.tokens, more[1]),
                    steps=add_opt(rec.steps, more[2] or None),
                )
            phases.append(rec)
        return replace(snapshot, phases=phases)

    # -- the run's report ---------------------------------------------------------------

    def _load_base(self) -> None:
        """Continue the run's report on disk when this process lost it (``ddp_spawn``)."""
        if self._base is not None or self._rank != 0 or self.report_path is None:
            return
        if not self.report_path.is_file():
            return
        from greenmeter.report import Report

        try:
            found = Report.load(self.report_path)
        except Exception:
            return  # another run's file, or unreadable: this run starts a new one
        if (
            found.run_id == self._run_id
            and found.extra.get("lightning.callback_id") == self._callback_id
        ):
            self._base = found

    def _combine(self, report: Report) -> Report:
        """The run's report: the finished stages' merged with ``report`` (rank 0)."""
        base = self._base
        if base is None:
            return report
        from greenmeter.report import merge_reports

        merged = merge_reports([base, report])
        stages = str(base.extra.get("lightning.stages", "")).split(",")
        stages += [s for s in self._stage_status if s not in stages]
        extra = {**dict(merged.extra), **self._lightning_extra()}
        extra["lightning.stages"] = ",".join(s for s in stages if s)
        return merged.model_copy(update={"extra": extra})

    def _stop_meter(self) -> None:
        """Stop a meter this callback created; keep its segment for checkpoints."""
        meter = self._meter
        if meter is None or not self._owns_meter or not meter.running:
            return
        self._close_all()
        meter.stop()
        try:
            self._done.append(segment_summary(self._counted(meter.snapshot()), self._meter_id))
        except Exception as exc:
            self._warn("checkpoint.state", f"greenmeter: could not keep its segment: {exc!r}")

    def _publish(
        self, *, gather: bool, status: str | None = None
    ) -> tuple[Report | None, Report | None]:
        """Stop an owned meter, build this rank's report, merge over ranks (when
        gathering) and with the finished stages on rank 0, and write it.

        Returns ``(stage report, run report)``, both None on ranks other than 0.
        """
        self._stop_meter()
        stopped = self._meter is not None and not self._meter.running
        report: Report | None = None
        try:
            report = self.build_report(status)
        except Exception as exc:
            self._warn("report.build", f"greenmeter: could not build the report: {exc!r}")
        if gather and self._world_size > 1 and distributed_ready():
            from greenmeter.integrations.torch import gather_reports

            try:
                report = gather_reports(report)  # type: ignore[arg-type]
            except Exception as exc:
                message = f"greenmeter: merging the ranks' reports failed: {exc!r}"
                self._warn("report.merge", message)
                report = None
            if self._rank != 0:
                return None, None
        elif self._rank != 0:
            # no collective on failure (the other ranks may be elsewhere): keep our own file
            if report is not None and self.report_path is not None:
                self._save(report, self._rank_path())
            return None, None
        if report is None:
            return None, None
        try:
            run_report = self._combine(report)
        except Exception as exc:
            self._warn("report.stages", f"greenmeter: merging the stages failed: {exc!r}")
            run_report = report
        if stopped:  # a finished stage: the run's report so far
            self._base = run_report
            self._folded += self._previous
            self._previous = []
        self.last_report = run_report
        written = self._save(run_report, self.report_path) if self.report_path else None
        if self.verbose:
            from greenmeter.render.closing import emit_summary

            emit_summary(run_report, written)
        return report, run_report

    def _rank_path(self) -> Path:
        assert self.report_path is not None
        if self._rank == 0:
            return self.report_path
        p = self.report_path
        return p.with_name(f"{p.stem}.rank-{self._rank}{p.suffix}")

    def _save(self, report: Report, path: Path) -> Path | None:
        try:
            assert self._meter is not None
            return self._meter.run.write(report, path)  # in order with the checkpoints
        except Exception as exc:
            self._warn("report.write", f"greenmeter: could not write the report to {path}: {exc!r}")
            return None

    def _schedule_checkpoints(self, meter: EnergyMeter) -> None:
        """This rank's in-progress report (status ``running``), every checkpoint interval,
        built and written by the run's writer thread while a stage runs."""
        assert self.checkpoint_interval_s is not None
        self._checkpoints_for = id(meter)
        if self.report_path is None:
            return
        meter.run.checkpoint_every(
            self.checkpoint_interval_s, self._checkpoint_report, self._rank_path()
        )

    def _checkpoint_report(self) -> Report | None:
        if not any(slot is not None for slot in self._slots.values()):
            return None  # between stages: the stage's own report stands
        report = self.build_report("running", flush=False)
        return self._combine(report) if self._rank == 0 else report

    def close(self) -> Report | None:
        """Stop a meter this callback created and write the final report (rank 0).

        Optional: the report is already written, and the meter stopped, after every
        stage. Returns the run's report on rank 0 (None when nothing was measured since
        the last stage ended, or on other ranks).
        """
        meter = self._meter
        if meter is None or not meter.running:
            return None
        self._close_all()
        if self._owns_meter:
            return self._publish(gather=False)[1]
        report = self.build_report()
        if self._rank != 0:
            return None
        self.last_report = self._combine(report)
        if self.report_path is not None:
            self._save(self.last_report, self.report_path)
        return self.last_report

    # -- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Every segment measured so far (earlier processes', this process's finished
        stages', the running stage's), as plain data."""
        segments = [*self._folded, *self._previous, *self._done]
        meter = self._meter
        if meter is not None and meter.running:
            try:
                self._flush_all()
                segments.append(segment_summary(self._counted(meter.snapshot()), self._meter_id))
            except Exception as exc:
                self._warn("checkpoint.state", f"greenmeter: could not save its state: {exc!r}")
        return {"version": STATE_VERSION, "run_id": self._run_id, "segments": segments}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the totals of the run a checkpoint came from."""
        try:
            if int(state_dict.get("version", 0)) != STATE_VERSION:
                self._warn(
                    "checkpoint.version",
                    f"greenmeter: checkpoint state version {state_dict.get('version')!r} is "
                    f"not {STATE_VERSION}; earlier energy is not carried over",
                )
                return
            run_id = state_dict.get("run_id")
            if isinstance(run_id, str) and len(run_id) == 32:
                self._run_id = run_id
            # segments this callback measured are in its reports already: never twice
            mine = set(self._meter_ids)
            segments = state_dict.get("segments", [])
            self._previous = [dict(s) for s in segments if s.get("meter_id") not in mine]
        except Exception as exc:
            self._warn("checkpoint.load", f"greenmeter: could not restore its state: {exc!r}")
