"""The Lightning callback's meter and open phases: one meter per stage, slots, items.

Each ``fit``/``validate``/``test``/``predict`` call measures with a meter of its own
(created on ``setup``, stopped on ``teardown``), so no sampler thread outlives the stage
that needed it; the stages' reports are merged into the run's report
(:mod:`greenmeter.integrations._lightning_reports`). A meter given by the user is used
for every stage and never stopped here.

Phase counts are logical: an epoch paused for a validation run or a checkpoint save and
resumed afterwards is still one epoch (``count`` 1), ``train`` counts once per fit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from greenmeter.core.batch import batch_size
from greenmeter.integrations._lightning_parts import TRAIN_SLOTS, Slot, as_count, guarded

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter
    from greenmeter.records import MeterSnapshot

__all__ = ["PhasesMixin", "stage_hooks"]

_ALL_SLOTS = ("window", "epoch", "train", "checkpoint", "validate", "sanity", "test", "predict")


def stage_hooks(stage: str) -> tuple[Callable[..., None], ...]:
    """The start, batch-end and end hooks of ``trainer.test`` or ``trainer.predict``."""

    def start(self: Any, trainer: Any, pl_module: Any) -> None:
        self._record_model(pl_module)
        self._open(stage, stage, stage)

    def batch_end(
        self: Any,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._count(batch, (stage,))

    def end(self: Any, trainer: Any, pl_module: Any) -> None:
        self._close(stage)

    for fn, name in ((start, "start"), (batch_end, "batch_end"), (end, "end")):
        fn.__name__ = fn.__qualname__ = f"on_{stage}_{name}"
    return guarded(start), guarded(batch_end), guarded(end)


class PhasesMixin:
    """Meter creation and the open phases of a :class:`GreenMeterCallbackCore`."""

    _meter: EnergyMeter | None
    _owns_meter: bool
    _meter_id: str
    _meter_ids: list[str]
    _slots: dict[str, Slot | None]
    _paused: dict[str, str]
    _counts: dict[tuple[str, ...], int]
    _rank: int
    _world_size: int
    _sensors: list[Any] | None
    _powercap_root: Any
    _gpus: list[int | str] | None
    _meter_kwargs: dict[str, Any]
    _models: dict[str, dict[str, Any]]
    _sync_installed: bool
    _checkpoints_for: int | None
    _last_global_step: int
    sample_interval_s: float
    carbon: Any
    run_name: str | None
    sync: bool
    checkpoint_interval_s: float | None
    samples_fn: Callable[[Any], int] | None
    tokens_fn: Callable[[Any], int] | None

    _warn: Callable[[str, str], None]
    _schedule_checkpoints: Callable[[EnergyMeter], None]
    _load_base: Callable[[], None]

    def _init_runtime(self) -> None:
        """The per-process state: open slots, stage statuses, rank (none crosses a spawn)."""
        self._slots: dict[str, Slot | None] = dict.fromkeys(("fit", *_ALL_SLOTS))
        self._paused: dict[str, str] = {}
        self._fit_paused = False
        self._train_entered = False
        self._train_handle: Any = None
        self._last_global_step = 0
        self._checkpoints_for: int | None = None  # id() of the meter checkpointing
        self._stage_status: dict[str, str] = {}
        self._models: dict[str, dict[str, Any]] = {}
        self._notes: dict[str, str] = {}
        self._warned: set[str] = set()
        self._sync_installed = False
        self._rank = 0
        self._world_size = 1

    # -- the meter ------------------------------------------------------------------------

    def _ensure_meter(self, trainer: Any) -> EnergyMeter:
        """The running meter of this stage: a new one unless the user gave one."""
        meter = self._meter
        if meter is None or (self._owns_meter and not meter.running):
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
            self._new_meter_id()
            self._sync_installed = False
            self._load_base()
        if not meter.running:
            meter.start()
        if self.checkpoint_interval_s is not None and self._checkpoints_for != id(meter):
            self._schedule_checkpoints(meter)
        if self.sync and not self._sync_installed:
            self._install_sync(meter, trainer)
        return meter

    def _new_meter_id(self) -> None:
        self._meter_id = uuid.uuid4().hex
        self._meter_ids.append(self._meter_id)
        self._counts = {}

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

    def _counted(self, snapshot: MeterSnapshot) -> MeterSnapshot:
        """``snapshot`` with each phase's logical count (resumed instances not counted)."""
        counts = self._counts
        if not counts:
            return snapshot
        phases = [
            replace(rec, count=counts[rec.path]) if rec.path in counts else rec
            for rec in snapshot.phases
        ]
        return replace(snapshot, phases=phases)

    # -- slots ----------------------------------------------------------------------------

    def _open(
        self, slot: str, name: str, kind: str, parent: str | None = None, *, resume: bool = False
    ) -> None:
        """Open phase ``name`` in ``slot`` under the phase in slot ``parent``.

        ``resume``: the same instance continues after a pause (its count stays).
        """
        meter = self._meter
        if meter is None or self._slots.get(slot) is not None:
            return
        parent_slot = self._slots.get(parent) if parent is not None else None
        if parent is not None and parent_slot is None:
            return  # the parent is not open: no orphan at the top level
        handle = meter.enter(name, kind, parent=parent_slot.handle if parent_slot else ())
        self._slots[slot] = Slot(handle)
        counts = self._counts
        if not resume or handle.path not in counts:
            counts[handle.path] = counts.get(handle.path, 0) + 1

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
        for slot in (*_ALL_SLOTS, "fit"):
            self._close(slot)
        self._paused = {}

    def _pause_training(self) -> None:
        """Close the open training slots, remembering them for :meth:`_resume_training`."""
        for slot in TRAIN_SLOTS:
            current = self._slots[slot]
            if current is not None:
                self._paused[slot] = current.handle.path[-1]
                self._close(slot)

    def _resume_training(self) -> None:
        """Reopen the training slots a validation run or a checkpoint save paused."""
        paused, self._paused = self._paused, {}
        if "train" in paused:
            self._open("train", "train", "train", parent="fit", resume=True)
        if "epoch" in paused:
            self._open("epoch", paused["epoch"], "epoch", parent="train", resume=True)
        if "window" in paused:
            self._open("window", paused["window"], "window", parent="epoch", resume=True)

    def _count(self, batch: Any, slots: Sequence[str], steps: int = 0) -> None:
        """Attribute one batch (and ``steps`` optimizer steps) to the open ``slots``
        (a few additions: runs every batch)."""
        samples: int | None
        if self.samples_fn is not None:
            samples = as_count(self.samples_fn(batch))
        else:
            samples = batch_size(batch)
        if samples is None:
            self._warn(
                "samples.unknown",
                "greenmeter: could not tell the number of samples in a batch; pass "
                "samples_fn=lambda batch: ... to GreenMeterCallback",
            )
        tokens = as_count(self.tokens_fn(batch)) if self.tokens_fn is not None else None
        open_slots = self._slots
        for name in slots:
            current = open_slots[name]
            if current is None:
                continue
            current.steps += steps
            if samples is not None:
                current.samples = samples if current.samples is None else current.samples + samples
            if tokens is not None:
                current.tokens = tokens if current.tokens is None else current.tokens + tokens

    def _optimizer_steps(self, trainer: Any) -> int:
        """Optimizer steps since the last call, counted on global rank 0 only: the ranks
        step together, so the merged report's sum is the run's optimizer steps."""
        now = int(getattr(trainer, "global_step", 0) or 0)
        steps = max(0, now - self._last_global_step)
        self._last_global_step = now
        return steps if self._rank == 0 else 0

    def _record_model(self, pl_module: Any) -> None:
        try:
            from greenmeter.integrations.torch import model_size

            info = model_size(pl_module)
        except Exception as exc:
            self._warn("model.size", f"greenmeter: could not measure the model's size: {exc!r}")
            return
        self._models[str(info.get("name"))] = info

    # -- checkpoint saves -------------------------------------------------------------

    def _bracket_saves(self, trainer: Any) -> None:
        """Measure ``trainer.save_checkpoint`` (``ModelCheckpoint`` and user calls) as the
        phase ``fit/checkpoint``: Lightning has no hook around the file being written."""
        original = getattr(trainer, "save_checkpoint", None)
        if original is None or getattr(original, "_greenmeter", False):
            return

        def save_checkpoint(*args: Any, **kwargs: Any) -> Any:
            self._checkpoint_begin()
            try:
                return original(*args, **kwargs)
            finally:
                self._checkpoint_end()

        save_checkpoint._greenmeter = True  # type: ignore[attr-defined]
        try:
            trainer.save_checkpoint = save_checkpoint
        except (AttributeError, TypeError):
            pass

    @staticmethod
    def _unbracket_saves(trainer: Any) -> None:
        saved = getattr(trainer, "__dict__", {}).get("save_checkpoint")
        if getattr(saved, "_greenmeter", False):
            del trainer.__dict__["save_checkpoint"]

    @guarded
    def _checkpoint_begin(self) -> None:
        if self._slots["fit"] is None or self._slots["checkpoint"] is not None:
            return
        self._pause_training()
        self._open("checkpoint", "checkpoint", "custom", parent="fit")

    @guarded
    def _checkpoint_end(self) -> None:
        self._close("checkpoint")  # training resumes at its next batch
