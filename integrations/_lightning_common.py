"""The Lightning callback, shared by ``lightning.pytorch`` and ``pytorch_lightning``.

Nothing here imports either package: the hooks only use the attributes both trainers
have (``trainer.global_rank``, ``trainer.sanity_checking``, ``trainer.loggers``...). The
two public classes, :mod:`greenmeter.integrations.lightning` and
:mod:`greenmeter.integrations.pytorch_lightning`, are this class plus the framework's
``Callback`` base.

How Lightning's lifecycle maps to phases (paths are ``/``-joined names):

* ``fit``: from ``on_fit_start`` to ``on_fit_end``.
* ``sanity_check``: the validation sanity check before training. By default it is a
  top-level phase and ``fit`` is paused while it runs, so the fit's energy (the
  training total) leaves it out; ``include_sanity_check_in_totals=True`` makes it
  ``fit/sanity_check`` instead. The run totals always include it (they are the whole
  measured span).
* ``fit/train``: training, paused while validation runs inside an epoch.
* ``fit/train/epoch-N``: each epoch's training time (paused with ``train``).
* ``fit/train/epoch-N/window-K``: optional windows of ``window_steps`` batches.
* ``fit/validate``: validation runs during fitting (all of them, ``count`` = runs).
* ``validate``, ``test``, ``predict``: ``trainer.validate/test/predict`` calls.

Samples, tokens and steps are counted per batch (steps = batches; the optimizer-step
count is attached to ``fit/train`` as the ``optimizer_steps`` attribute) and handed to
the meter at phase boundaries, so a batch costs a few integer additions.
"""

from __future__ import annotations

import math
import os
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenmeter.core.batch import batch_size
from greenmeter.core.intervals import coalesce
from greenmeter.records import MeterSnapshot, PhaseRecord

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter, PhaseHandle
    from greenmeter.report import Report

__all__ = [
    "STATE_VERSION",
    "GreenMeterCallbackCore",
    "GreenMeterWarning",
    "batch_size",
    "fold_segments",
    "segment_summary",
]

#: Version of the plain data the callback keeps in checkpoints.
STATE_VERSION = 1
#: Most active spans kept per phase in a checkpointed segment.
SEGMENT_INTERVALS = 32
_STATUS_RANK = {"complete": 0, "running": 1, "interrupted": 2, "failed": 3}
_TRAIN_SLOTS = ("window", "epoch", "train")  # innermost first


class GreenMeterWarning(RuntimeWarning):
    """A measurement problem the callback noticed; training is never interrupted by it."""


# --------------------------------------------------------------------------------------
# small helpers


def _count(value: Any) -> int | None:
    """``value`` as a non-negative int, else None."""
    try:
        if hasattr(value, "item"):
            value = value.item()
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 and n == value else None


def _utc_iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat()


def _parse_utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _add_opt(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


# --------------------------------------------------------------------------------------
# segments: what a checkpoint keeps of the measurement so far


def segment_summary(snapshot: MeterSnapshot, meter_id: str) -> dict[str, Any]:
    """The measurement so far as plain data (stored in checkpoints by ``state_dict``).

    Energies are joules per component id, durations seconds, instants ISO-8601 UTC.
    """

    def utc(t_mono: float) -> datetime:
        return snapshot.started_utc + timedelta(seconds=t_mono - snapshot.started_mono)

    phases = []
    for rec in snapshot.phases:
        spans = coalesce(rec.intervals_mono, SEGMENT_INTERVALS)
        phases.append(
            {
                "path": list(rec.path),
                "kind": rec.kind,
                "count": int(rec.count),
                "duration_s": float(rec.duration_s),
                "energy_j": {k: float(v) for k, v in rec.energy_j.items()},
                "samples": rec.samples,
                "tokens": rec.tokens,
                "steps": rec.steps,
                "intervals_utc": [[_utc_iso(utc(a)), _utc_iso(utc(b))] for a, b in spans],
                "attrs": dict(rec.attrs),
            }
        )
    return {
        "meter_id": meter_id,
        "host": snapshot.host,
        "rank": int(snapshot.rank),
        "start_utc": _utc_iso(snapshot.started_utc),
        "end_utc": _utc_iso(utc(snapshot.started_mono + snapshot.duration_s)),
        "duration_s": float(snapshot.duration_s),
        "energy_j": {k: float(v) for k, v in snapshot.energy_j.items()},
        "phases": phases,
    }


def fold_segments(
    snapshot: MeterSnapshot, segments: Sequence[Mapping[str, Any]]
) -> tuple[MeterSnapshot, dict[str, Any], list[dict[str, Any]]]:
    """Add earlier segments (from :func:`segment_summary`) into ``snapshot``.

    Per phase path: energies (per component id this meter also measures), durations,
    entry counts and items are added; a path only the earlier segments have is added
    with its time spans, placed before this segment's start. The run totals gain the
    earlier energies. Returns the new snapshot, the facts to record in the report's
    ``extra`` (segment count, earlier energy and duration, anything left out) and the
    earlier segments for the report's ``segments`` list.
    """
    known = {c.id for c in snapshot.components}
    anchor_utc, anchor_mono = snapshot.started_utc, snapshot.started_mono

    def mono(text: str) -> float:
        return anchor_mono + (_parse_utc(text) - anchor_utc).total_seconds()

    records: dict[tuple[str, ...], PhaseRecord] = {}
    for rec in snapshot.phases:
        records[rec.path] = replace(
            rec,
            energy_j=dict(rec.energy_j),
            intervals_mono=list(rec.intervals_mono),
            latencies_s=list(rec.latencies_s),
            attrs=dict(rec.attrs),
        )
    order: list[tuple[str, ...]] = []
    totals = dict(snapshot.energy_j)
    extra: dict[str, Any] = {"resume.segments": len(segments) + 1}
    listed: list[dict[str, Any]] = []
    earlier_j = earlier_s = dropped_j = 0.0
    for seg in segments:
        seg_j = 0.0
        for cid, value in dict(seg.get("energy_j", {})).items():
            if cid in known:
                totals[cid] = totals.get(cid, 0.0) + float(value)
                seg_j += float(value)
            else:
                dropped_j += float(value)
        earlier_j += seg_j
        earlier_s += float(seg.get("duration_s", 0.0))
        listed.append(
            {
                "start_utc": seg.get("start_utc"),
                "end_utc": seg.get("end_utc"),
                "duration_s": float(seg.get("duration_s", 0.0)),
                "host": seg.get("host"),
                "it_energy_j": seg_j,
            }
        )
        for ph in seg.get("phases", []):
            path = tuple(str(p) for p in ph["path"])
            if path not in order:
                order.append(path)
            rec = records.get(path)
            spans = [(mono(a), mono(b)) for a, b in ph.get("intervals_utc", [])]
            if rec is None:
                rec = PhaseRecord(path=path, kind=str(ph.get("kind", "custom")))
                rec.intervals_mono = spans
                rec.last_end_mono = max((b for _, b in spans), default=None)
                records[path] = rec
            else:  # measured in this segment too: its time spans both
                rec.intervals_mono = sorted([*spans, *rec.intervals_mono])
            rec.count += int(ph.get("count", 0))
            rec.duration_s += float(ph.get("duration_s", 0.0))
            for cid, value in dict(ph.get("energy_j", {})).items():
                if cid in known:
                    rec.energy_j[cid] = rec.energy_j.get(cid, 0.0) + float(value)
            rec.samples = _add_opt(rec.samples, ph.get("samples"))
            rec.tokens = _add_opt(rec.tokens, ph.get("tokens"))
            rec.steps = _add_opt(rec.steps, ph.get("steps"))
            if spans:
                first = min(a for a, _ in spans)
                if rec.first_start_mono is None or first < rec.first_start_mono:
                    rec.first_start_mono = first
            for key, value in dict(ph.get("attrs", {})).items():
                rec.attrs.setdefault(str(key), str(value))
    order += [p for p in records if p not in order]
    extra["resume.earlier_it_energy_j"] = earlier_j
    extra["resume.earlier_duration_s"] = earlier_s
    if segments:
        extra["resume.first_start_utc"] = segments[0].get("start_utc")
    if dropped_j > 0:
        extra["resume.left_out_energy_j"] = dropped_j
    extra["resume.note"] = (
        "resumed from a checkpoint: phases and totals include the earlier segments' energy "
        "up to their last checkpoint (listed in the report's segments); start_utc and "
        "duration_s are this segment's"
    )
    folded = replace(snapshot, phases=[records[p] for p in order], energy_j=totals)
    return folded, extra, listed


# --------------------------------------------------------------------------------------
# the callback


class _Slot:
    """One open phase instance plus the items counted since it opened."""

    __slots__ = ("handle", "samples", "steps", "tokens")

    def __init__(self, handle: PhaseHandle) -> None:
        self.handle = handle
        self.samples: int | None = None
        self.tokens: int | None = None
        self.steps = 0

    def flush(self) -> None:
        if self.samples is not None or self.tokens is not None or self.steps:
            self.handle.add(samples=self.samples, tokens=self.tokens, steps=self.steps or None)
        self.samples = self.tokens = None
        self.steps = 0


def _guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """Hooks never raise into training: a failure becomes one warning per hook."""

    def wrapper(self: GreenMeterCallbackCore, *args: Any, **kwargs: Any) -> None:
        try:
            fn(self, *args, **kwargs)
        except Exception as exc:  # a measurement problem must not stop training
            self._warn(f"hook.{fn.__name__}", f"greenmeter: {fn.__name__} failed: {exc!r}")

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper


class GreenMeterCallbackCore:
    """Measures a Lightning run's energy per phase and writes one report.

    Args:
        meter: An :class:`~greenmeter.EnergyMeter` to use (started here if it is not
            yet); None creates one on ``setup``, discovering this rank's sensors.
        report_path: Where global rank 0 writes the JSON report after every stage
            (``fit``, ``validate``, ``test``, ``predict``) and on failure; None writes
            none (see :attr:`last_report`).
        carbon: A ``greenmeter.carbon.CarbonConfig`` for CO2e (None: the resolver's
            flagged defaults).
        sample_interval_s: Background sampler period of a created meter, seconds.
        samples_fn: ``batch -> int`` samples in a batch; default the first dimension
            of the batch's first tensor.
        tokens_fn: ``batch -> int`` tokens in a batch; None counts no tokens.
        window_steps: Also measure windows of this many training batches (children of
            each epoch); None for none.
        include_sanity_check_in_totals: Count the validation sanity check inside
            ``fit`` (as ``fit/sanity_check``) instead of as its own top-level phase.
        log_metrics: Log energy (J), mean power (W) and CO2e (g) per train epoch and
            per validation/test run with ``pl_module.log``, and per stage to the
            trainer's loggers.
        sync: Synchronize this rank's accelerators at phase boundaries (never per
            batch) so asynchronous work is counted in the phase that launched it.
        sensors: Sensors for a created meter (tests, custom hardware); None discovers.
        powercap_root: Powercap sysfs root for a created meter (else
            ``GREENMETER_POWERCAP_ROOT``, else ``/sys/class/powercap``).
        gpus: GPUs a created meter measures; None: the CUDA device this rank trains
            on (none for a CPU run).
        run_name: A name for the run, carried into the report.
        checkpoint_interval_s: Also write an in-progress report (status ``running``)
            about this often, seconds, between batches (rank 0 to ``report_path``,
            other ranks to ``<name>.rank-N.json``); None disables.
        export: Live metrics of a created meter (``"prometheus:9464"``,
            ``"pushgateway:URL"``, ``"otel"`` or an exporter); see
            :mod:`greenmeter.export`. None: ``$GREENMETER_EXPORT`` or the config file.
            Each local rank serves a Prometheus spec on ``PORT + LOCAL_RANK``.
        **meter_kwargs: Further :class:`~greenmeter.EnergyMeter` arguments.

    Distributed runs: every rank measures; the host's CPU package and DRAM are counted
    on local rank 0 only, each GPU once by UUID; at the end of each stage the ranks'
    reports are gathered to global rank 0 and merged into one.
    """

    def __init__(
        self,
        meter: EnergyMeter | None = None,
        *,
        report_path: str | os.PathLike[str] | None = "greenmeter-report.json",
        carbon: Any = None,
        sample_interval_s: float = 0.1,
        samples_fn: Callable[[Any], int] | None = None,
        tokens_fn: Callable[[Any], int] | None = None,
        window_steps: int | None = None,
        include_sanity_check_in_totals: bool = False,
        log_metrics: bool = True,
        sync: bool = True,
        sensors: Sequence[Any] | None = None,
        powercap_root: str | os.PathLike[str] | None = None,
        gpus: Sequence[int | str] | None = None,
        run_name: str | None = None,
        checkpoint_interval_s: float | None = None,
        export: Any = None,
        **meter_kwargs: Any,
    ) -> None:
        super().__init__()
        if window_steps is not None and (
            isinstance(window_steps, bool) or int(window_steps) != window_steps or window_steps < 1
        ):
            raise ValueError(
                f"window_steps must be a positive integer or None, got {window_steps!r}"
            )
        if not (sample_interval_s > 0):
            raise ValueError(
                f"sample_interval_s must be a positive number of seconds, got {sample_interval_s!r}"
            )
        if checkpoint_interval_s is not None and not (checkpoint_interval_s > 0):
            raise ValueError(
                "checkpoint_interval_s must be a positive number of seconds or None, "
                f"got {checkpoint_interval_s!r}"
            )
        for name, fn in (("samples_fn", samples_fn), ("tokens_fn", tokens_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a callable batch -> int, got {fn!r}")
        self.report_path = Path(report_path) if report_path is not None else None
        self.carbon = carbon
        self.sample_interval_s = float(sample_interval_s)
        self.samples_fn = samples_fn
        self.tokens_fn = tokens_fn
        self.window_steps = int(window_steps) if window_steps is not None else None
        self.include_sanity_check_in_totals = bool(include_sanity_check_in_totals)
        self.log_metrics = bool(log_metrics)
        self.sync = bool(sync)
        self.run_name = run_name
        self.checkpoint_interval_s = checkpoint_interval_s
        self._meter_kwargs: dict[str, Any] = dict(meter_kwargs)
        if export is not None:
            self._meter_kwargs["export"] = export
        self._sensors = list(sensors) if sensors is not None else None
        self._powercap_root = powercap_root
        self._gpus = list(gpus) if gpus is not None else None
        #: The report global rank 0 built last (merged over ranks); None before.
        self.last_report: Report | None = None
        self._meter: EnergyMeter | None = meter
        self._owns_meter = False
        self._init_runtime()
        self._run_id = uuid.uuid4().hex
        self._previous: list[dict[str, Any]] = []

    def _init_runtime(self) -> None:
        self._meter_id = uuid.uuid4().hex
        self._slots: dict[str, _Slot | None] = dict.fromkeys(
            ("fit", "sanity", "train", "epoch", "window", "validate", "test", "predict")
        )
        self._paused: dict[str, str] = {}
        self._in_epoch = False
        self._checkpoints_for: int | None = None  # id() of the meter checkpointing
        self._stage_status: dict[str, str] = {}
        self._models: dict[str, dict[str, Any]] = {}
        self._notes: dict[str, str] = {}
        self._warned: set[str] = set()
        self._sync_installed = False
        self._rank = 0
        self._world_size = 1

    # -- properties -------------------------------------------------------------------

    @property
    def meter(self) -> EnergyMeter | None:
        """The meter in use (None before the first ``setup``)."""
        return self._meter

    @property
    def segments(self) -> list[dict[str, Any]]:
        """Earlier segments restored from a checkpoint (plain data), oldest first."""
        return [dict(s) for s in self._previous]

    # -- pickling (ddp_spawn sends callbacks to new processes) ---------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_meter"] = None  # a meter (threads, open files) cannot cross processes
        state["_owns_meter"] = False
        state["last_report"] = None
        state.pop("_accountant", None)
        state["_slots"] = dict.fromkeys(state["_slots"])
        state["_sync_installed"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- warnings ---------------------------------------------------------------------

    def _warn(self, code: str, message: str) -> None:
        if code in self._warned:
            return
        self._warned.add(code)
        self._notes[code] = message
        warnings.warn(message, GreenMeterWarning, stacklevel=3)

    # -- meter and phases ---------------------------------------------------------------

    def _ensure_meter(self, trainer: Any) -> EnergyMeter:
        meter = self._meter
        if meter is None:
            from greenmeter.meter import EnergyMeter

            kwargs = dict(self._meter_kwargs)
            kwargs.setdefault("rank", self._rank)
            kwargs.setdefault("local_rank", int(getattr(trainer, "local_rank", 0) or 0))
            kwargs.setdefault("world_size", self._world_size)
            if self._sensors is None and "gpu" not in kwargs:
                gpus = self._gpus if self._gpus is not None else self._trainer_gpus(trainer)
                kwargs["gpus"] = gpus
                kwargs["gpu"] = bool(gpus)
            meter = EnergyMeter(
                self._sensors,
                powercap_root=self._powercap_root,
                sample_interval_s=self.sample_interval_s,
                carbon=self.carbon,
                run_name=self.run_name,
                **kwargs,
            )
            self._meter = meter
            self._owns_meter = True
            self._meter_id = uuid.uuid4().hex
        if not meter.running:
            meter.start()
        if self.checkpoint_interval_s is not None and self._checkpoints_for != id(meter):
            self._schedule_checkpoints(meter)
        if self.sync and not self._sync_installed:
            self._install_sync(meter, trainer)
        return meter

    @staticmethod
    def _trainer_gpus(trainer: Any) -> list[int]:
        device = getattr(getattr(trainer, "strategy", None), "root_device", None)
        if getattr(device, "type", None) == "cuda":
            index = device.index
            return [int(index) if index is not None else 0]
        return []

    def _install_sync(self, meter: EnergyMeter, trainer: Any) -> None:
        from greenmeter.integrations.torch import install

        self._sync_installed = True
        device = getattr(getattr(trainer, "strategy", None), "root_device", None)
        # this rank's device when it trains on CUDA; else the meter's GPUs (if any)
        install(meter, [device] if getattr(device, "type", None) == "cuda" else None)

    def _open(self, slot: str, name: str, kind: str, parent: str | None = None) -> None:
        meter = self._meter
        if meter is None or self._slots.get(slot) is not None:
            return
        parent_slot = self._slots.get(parent) if parent is not None else None
        parent_handle = parent_slot.handle if parent_slot is not None else None
        handle = meter.enter(name, kind, parent=parent_handle)
        self._slots[slot] = _Slot(handle)

    def _close(self, slot: str) -> None:
        current = self._slots.get(slot)
        if current is None:
            return
        self._slots[slot] = None
        current.flush()
        current.handle.exit()

    def _flush_all(self) -> None:
        for current in self._slots.values():
            if current is not None:
                current.flush()

    def _close_all(self) -> None:
        for slot in ("window", "epoch", "train", "validate", "sanity", "test", "predict", "fit"):
            self._close(slot)
        self._paused = {}
        self._in_epoch = False

    def _count(self, batch: Any, slots: Sequence[str]) -> None:
        """Attribute one batch to the open ``slots`` (a few additions: runs every batch)."""
        samples: int | None
        if self.samples_fn is not None:
            samples = _count(self.samples_fn(batch))
        else:
            samples = batch_size(batch)
        if samples is None:
            self._warn(
                "samples.unknown",
                "greenmeter: could not tell the number of samples in a batch; pass "
                "samples_fn=lambda batch: ... to GreenMeterCallback",
            )
        tokens = _count(self.tokens_fn(batch)) if self.tokens_fn is not None else None
        open_slots = self._slots
        for name in slots:
            current = open_slots[name]
            if current is None:
                continue
            current.steps += 1
            if samples is not None:
                current.samples = samples if current.samples is None else current.samples + samples
            if tokens is not None:
                current.tokens = tokens if current.tokens is None else current.tokens + tokens

    def _record_model(self, pl_module: Any) -> None:
        try:
            from greenmeter.integrations.torch import model_size

            info = model_size(pl_module)
        except Exception as exc:
            self._warn("model.size", f"greenmeter: could not measure the model's size: {exc!r}")
            return
        self._models[str(info.get("name"))] = info

    # -- lifecycle: setup and fit -------------------------------------------------------

    @_guarded
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Create and start the meter (once; later stages reuse it)."""
        self._rank = int(getattr(trainer, "global_rank", 0) or 0)
        self._world_size = int(getattr(trainer, "world_size", 1) or 1)
        if self._world_size > 1 and (self._meter is None or not self._meter.running):
            # a collective: before anything that could fail on one rank only
            self._run_id = self._broadcast(trainer, self._run_id)
        self._ensure_meter(trainer)

    @_guarded
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._record_model(pl_module)
        self._open("fit", "fit", "fit")

    @_guarded
    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        if self.include_sanity_check_in_totals:
            self._open("sanity", "sanity_check", "sanity_check", parent="fit")
            return
        if self._slots["fit"] is not None:
            self._close("fit")
            self._paused = {"fit": "fit"}
        self._open("sanity", "sanity_check", "sanity_check")

    @_guarded
    def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
        self._close("sanity")
        if "fit" in self._paused:
            self._paused = {}
            self._open("fit", "fit", "fit")

    @_guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._open("train", "train", "train", parent="fit")

    @_guarded
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._open("train", "train", "train", parent="fit")
        self._open("epoch", f"epoch-{int(trainer.current_epoch)}", "epoch", parent="train")
        self._in_epoch = True

    @_guarded
    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self.window_steps
        if n is not None and self._slots["window"] is None and self._slots["epoch"] is not None:
            k = int(batch_idx) // n
            self._open("window", f"window-{k}", "window", parent="epoch")
            window = self._slots["window"]
            if window is not None:
                window.handle.set_attr("batches", f"{k * n}-{(k + 1) * n - 1}")

    @_guarded
    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._count(batch, ("fit", "train", "epoch", "window"))
        n = self.window_steps
        if n is not None and (int(batch_idx) + 1) % n == 0:
            self._close("window")

    @_guarded
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._close("window")
        epoch = self._slots["epoch"]
        path = epoch.handle.path if epoch is not None else None
        self._close("epoch")
        self._in_epoch = False
        if self.log_metrics:
            self._log_phase(pl_module, path, "train_epoch")

    @_guarded
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        train = self._slots["train"]
        if train is not None:
            train.handle.set_attr("optimizer_steps", int(getattr(trainer, "global_step", 0)))
        for slot in _TRAIN_SLOTS:
            self._close(slot)
        self._paused = {}
        self._in_epoch = False

    @_guarded
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_all()

    # -- validation (sanity check, inside fit, or trainer.validate) ----------------------

    @_guarded
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        if self._slots["fit"] is not None:
            self._paused = {
                s: o.handle.path[-1] for s in _TRAIN_SLOTS if (o := self._slots[s]) is not None
            }
            for slot in _TRAIN_SLOTS:
                self._close(slot)
            self._open("validate", "validate", "validate", parent="fit")
        else:
            self._record_model(pl_module)
            self._open("validate", "validate", "validate")

    @_guarded
    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._count(batch, ("sanity",) if trainer.sanity_checking else ("validate",))

    @_guarded
    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # only inside fit: in trainer.validate() it would join the returned metrics
        fn = getattr(getattr(trainer, "state", None), "fn", None)
        if not self.log_metrics or trainer.sanity_checking or fn != "fit":
            return
        current = self._slots["validate"]
        self._log_phase(pl_module, current.handle.path if current is not None else None, "validate")

    @_guarded
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        self._close("validate")
        if self._in_epoch and self._slots["fit"] is not None:
            paused = self._paused or {"epoch": f"epoch-{int(trainer.current_epoch)}"}
            self._paused = {}
            self._open("train", "train", "train", parent="fit")
            if "epoch" in paused:
                self._open("epoch", paused["epoch"], "epoch", parent="train")
            if "window" in paused:
                self._open("window", paused["window"], "window", parent="epoch")

    # -- test and predict -----------------------------------------------------------------

    @_guarded
    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._record_model(pl_module)
        self._open("test", "test", "test")

    @_guarded
    def on_test_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._count(batch, ("test",))

    @_guarded
    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._close("test")

    @_guarded
    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._record_model(pl_module)
        self._open("predict", "predict", "predict")

    @_guarded
    def on_predict_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._count(batch, ("predict",))

    @_guarded
    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._close("predict")

    # -- end of a stage, failures -----------------------------------------------------------

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Close what is still open, gather the ranks' reports and write the merged one.

        Every rank reaches the gather whatever failed before it, so no rank waits forever.
        """
        stage = str(getattr(stage, "value", stage))
        try:
            self._close_all()
            self._stage_status.setdefault(stage, "complete")
        except Exception as exc:
            self._warn("hook.teardown", f"greenmeter: closing the phases failed: {exc!r}")
        report = self._publish(trainer, gather=True)
        if report is not None and self.log_metrics:
            self._log_stage(trainer, report, stage)

    @_guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Write the partial report (``failed``, or ``interrupted`` for Ctrl-C)."""
        interrupted = isinstance(exception, KeyboardInterrupt)
        status = "interrupted" if interrupted else "failed"
        self._close_all()
        fn = getattr(getattr(trainer, "state", None), "fn", None)
        stage = str(getattr(fn, "value", fn) or "run")
        self._stage_status[stage] = status
        self._notes["failure"] = f"{stage}: {type(exception).__name__}: {exception}"[:500]
        self._publish(trainer, gather=False, status=status)

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Earlier segments plus the measurement so far, as plain data."""
        segments = list(self._previous)
        meter = self._meter
        if meter is not None and meter.running:
            try:
                self._flush_all()
                segments.append(segment_summary(meter.snapshot(), self._meter_id))
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
            # segments measured by the live meter are in it already: never count them twice
            segments = state_dict.get("segments", [])
            self._previous = [dict(s) for s in segments if s.get("meter_id") != self._meter_id]
        except Exception as exc:
            self._warn("checkpoint.load", f"greenmeter: could not restore its state: {exc!r}")

    # -- reports ----------------------------------------------------------------------------

    def _rank_path(self) -> Path:
        assert self.report_path is not None
        if self._rank == 0:
            return self.report_path
        p = self.report_path
        return p.with_name(f"{p.stem}.rank-{self._rank}{p.suffix}")

    def _status_now(self) -> str:
        worst = "complete"
        for status in self._stage_status.values():
            if _STATUS_RANK.get(status, 0) > _STATUS_RANK[worst]:
                worst = status
        return worst

    def build_report(self, status: str | None = None, *, flush: bool = True) -> Report:
        """This rank's report now (earlier checkpoint segments folded in on rank 0).

        ``flush=False`` (another thread than the training loop's) leaves the counted
        batches in place and adds them to the report's copy of their phases instead.
        """
        meter = self._meter
        if meter is None:
            raise RuntimeError("GreenMeterCallback has no meter yet: it is created on setup")
        if flush:
            self._flush_all()
        snapshot = meter.snapshot()
        if not flush:
            snapshot = self._with_unflushed(snapshot)
        extra: dict[str, Any] = {"lightning.stages": ",".join(self._stage_status)}
        for stage, stage_status in self._stage_status.items():
            extra[f"lightning.{stage}.status"] = stage_status
        extra["lightning.sanity_check_in_fit"] = self.include_sanity_check_in_totals
        earlier: list[dict[str, Any]] = []
        if self._previous and self._rank == 0:
            snapshot, more, earlier = fold_segments(snapshot, self._previous)
            extra.update(more)
            if self._world_size > 1:
                extra["resume.scope"] = "earlier segments carry global rank 0's measurements"
        for code, message in self._notes.items():
            extra[f"lightning.note.{code}"] = message
        kwargs: dict[str, Any] = dict(meter.report_kwargs)
        if self.carbon is not None and self.carbon is not meter.carbon:
            kwargs.setdefault("carbon", self.carbon)  # else the run's, resolved once
        kwargs.setdefault("run_name", self.run_name or meter.run_name)
        kwargs["status"] = status or self._status_now()
        kwargs["run_id"] = self._run_id
        kwargs["model"] = list(self._models.values()) or None
        kwargs["extra"] = {**dict(kwargs.get("extra") or {}), **extra}
        if earlier:
            kwargs["segments"] = earlier
        if self._rank != 0:
            kwargs.setdefault("include_git", False)
            kwargs.setdefault("include_command", False)
        return meter.run.build(snapshot, **kwargs)

    def _with_unflushed(self, snapshot: MeterSnapshot) -> MeterSnapshot:
        """``snapshot`` with the batches counted since the open phases' last flush."""
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
                    samples=_add_opt(rec.samples, more[0]),
                    tokens=_add_opt(rec.tokens, more[1]),
                    steps=_add_opt(rec.steps, more[2] or None),
                )
            phases.append(rec)
        return replace(snapshot, phases=phases)

    def _publish(self, trainer: Any, *, gather: bool, status: str | None = None) -> Report | None:
        """Build this rank's report; merge on rank 0 (when gathering) and write it."""
        report: Report | None = None
        try:
            report = self.build_report(status)
        except Exception as exc:
            self._warn("report.build", f"greenmeter: could not build the report: {exc!r}")
        if gather and self._world_size > 1 and _distributed_ready():
            from greenmeter.integrations.torch import gather_reports

            try:
                report = gather_reports(report)  # type: ignore[arg-type]
            except Exception as exc:
                message = f"greenmeter: merging the ranks' reports failed: {exc!r}"
                self._warn("report.merge", message)
                report = None
            if self._rank != 0:
                return None
        elif self._rank != 0:
            # no collective on failure (the other ranks may be elsewhere): keep our own file
            if report is not None and self.report_path is not None:
                self._save(report, self._rank_path())
            return None
        if report is not None:
            self.last_report = report
            if self.report_path is not None:
                self._save(report, self.report_path)
        return report

    def _save(self, report: Report, path: Path) -> None:
        try:
            assert self._meter is not None
            self._meter.run.write(report, path)  # in order with the checkpoints
        except Exception as exc:
            self._warn("report.write", f"greenmeter: could not write the report to {path}: {exc!r}")

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
        return self.build_report("running", flush=False)

    def close(self) -> Report | None:
        """Stop a meter this callback created and write the final report (rank 0).

        Optional: the report is already written after every stage. Afterwards the
        callback can not measure again.
        """
        report = None
        if self._meter is not None and self._meter.running:
            self._close_all()
            if self._owns_meter:
                self._meter.stop()
            report = self.build_report()
            if self._rank == 0:
                self.last_report = report
                if self.report_path is not None:
                    self._save(report, self.report_path)
        return report

    # -- logging ----------------------------------------------------------------------------

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

    # -- collectives ------------------------------------------------------------------------

    def _broadcast(self, trainer: Any, value: str) -> str:
        try:
            return str(trainer.strategy.broadcast(value, src=0))
        except Exception as exc:
            self._warn("ddp.broadcast", f"greenmeter: could not share the run id: {exc!r}")
            return value


def _distributed_ready() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return bool(dist.is_available() and dist.is_initialized())
