"""The Lightning callback, shared by ``lightning.pytorch`` and ``pytorch_lightning``.

Nothing here imports either package: the hooks only use the attributes both trainers
have (``trainer.global_rank``, ``trainer.sanity_checking``, ``trainer.loggers``...). The
two public classes, :mod:`greenmeter.integrations.lightning` and
:mod:`greenmeter.integrations.pytorch_lightning`, are this class plus the framework's
``Callback`` base. The meter and open phases are in
:mod:`greenmeter.integrations._lightning_phases`, reports and checkpoint state in
:mod:`greenmeter.integrations._lightning_reports`, logged metrics in
:mod:`greenmeter.integrations._lightning_logging`.

How Lightning's lifecycle maps to phases (paths are ``/``-joined names):

* ``fit``: from ``on_fit_start`` to ``on_fit_end``.
* ``sanity_check``: the validation sanity check before training. By default it is a
  top-level phase and ``fit`` is paused while it runs, so the fit's energy (the
  training total) leaves it out; ``include_sanity_check_in_totals=True`` makes it
  ``fit/sanity_check`` instead. The run totals always include it.
* ``fit/train``: training epochs, paused while validation runs or a checkpoint is saved.
* ``fit/train/epoch-N``: each epoch's training time (paused with ``train``); the epochs
  add up to ``train``.
* ``fit/train/epoch-N/window-K``: optional windows of ``window_steps`` batches.
* ``fit/validate``: validation runs during fitting (all of them, ``count`` = runs).
* ``fit/checkpoint``: checkpoint saves during fitting (``trainer.save_checkpoint``, as
  ``ModelCheckpoint`` calls it; ``count`` = saves).
* ``validate``, ``test``, ``predict``: ``trainer.validate/test/predict`` calls.

Counts are logical: an epoch paused and resumed is one entry. Samples and tokens are
counted per batch on every rank (the merged report sums them); ``steps`` are optimizer
steps (``trainer.global_step`` increments), counted on global rank 0 only, so training
phases carry them and evaluation phases have none.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenmeter.core.batch import batch_size
from greenmeter.integrations._lightning_logging import LoggingMixin
from greenmeter.integrations._lightning_parts import (
    STATE_VERSION,
    CallbackBase,
    GreenMeterWarning,
    guarded,
)
from greenmeter.integrations._lightning_phases import PhasesMixin, stage_hooks
from greenmeter.integrations._lightning_reports import ReportsMixin
from greenmeter.report.segments import SEGMENT_INTERVALS, fold_segments, segment_summary

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter
    from greenmeter.report import Report

__all__ = [
    "SEGMENT_INTERVALS",
    "STATE_VERSION",
    "GreenMeterCallbackCore",
    "GreenMeterWarning",
    "batch_size",
    "fold_segments",
    "segment_summary",
]


class GreenMeterCallbackCore(PhasesMixin, ReportsMixin, LoggingMixin, CallbackBase):
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
        estimate_scope: ``"process"`` or ``"machine"``: what a CPU/RAM estimate covers on
            hosts without energy counters (see :class:`~greenmeter.EnergyMeter`); None:
            ``GREENMETER_ESTIMATE_SCOPE``, the config file, else ``"process"``.
        tags: Run labels (``{"experiment": "ablation", "seed": 3}``) for the report.
        verbose: Print one line (energy, CO2e, report path and caveats such as an
            estimate) on standard error on global rank 0 when a stage's report is
            written.
        **meter_kwargs: Further :class:`~greenmeter.EnergyMeter` arguments.

    One report per run: every ``fit``, ``validate``, ``test`` and ``predict`` call given
    this callback adds to the same report (merged, whatever the strategy, ``ddp_spawn``
    included). Each stage is measured by its own meter, stopped at the stage's
    ``teardown``: no sampler thread outlives a stage.

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
        estimate_scope: str | None = None,
        tags: Any = None,
        verbose: bool = True,
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
        if estimate_scope is not None:
            from greenmeter.options import resolve_estimate_scope

            resolve_estimate_scope(estimate_scope)  # a bad value raises here
            meter_kwargs["estimate_scope"] = estimate_scope
        from greenmeter.report.tags import check_tags

        #: The run's tags, added to every report.
        self.tags: dict[str, str] = check_tags(tags) if tags is not None else {}
        self.verbose = bool(verbose)
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
        self._callback_id = uuid.uuid4().hex
        #: Segments from a checkpoint not yet folded into a report / folded already.
        self._previous: list[dict[str, Any]] = []
        self._folded: list[dict[str, Any]] = []
        #: Segments of this process's finished stages; ids of every meter used.
        self._done: list[dict[str, Any]] = []
        self._meter_ids: list[str] = []
        #: The run's report after the finished stages (rank 0).
        self._base: Report | None = None
        self._meter_id = ""
        self._counts: dict[tuple[str, ...], int] = {}
        if meter is not None:
            self._new_meter_id()

    # -- properties -------------------------------------------------------------------

    @property
    def meter(self) -> EnergyMeter | None:
        """The meter of the current or last stage (None before the first ``setup``)."""
        return self._meter

    @property
    def segments(self) -> list[dict[str, Any]]:
        """Earlier segments restored from a checkpoint (plain data), oldest first."""
        return [dict(s) for s in (*self._folded, *self._previous)]

    # -- lifecycle: setup and fit -------------------------------------------------------

    @guarded
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Create and start this stage's meter (a meter given by the user is reused)."""
        self._rank = int(getattr(trainer, "global_rank", 0) or 0)
        self._world_size = int(getattr(trainer, "world_size", 1) or 1)
        if self._world_size > 1 and (self._meter is None or not self._meter.running):
            # a collective: before anything that could fail on one rank only
            self._run_id = self._broadcast(trainer, self._run_id)
        self._ensure_meter(trainer)
        self._bracket_saves(trainer)

    @guarded
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._record_model(pl_module)
        self._open("fit", "fit", "fit")

    @guarded
    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        if self.include_sanity_check_in_totals:
            self._open("sanity", "sanity_check", "sanity_check", parent="fit")
            return
        if self._slots["fit"] is not None:
            self._close("fit")
            self._fit_paused = True
        self._open("sanity", "sanity_check", "sanity_check")

    @guarded
    def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
        self._close("sanity")
        if self._fit_paused:
            self._fit_paused = False
            self._open("fit", "fit", "fit", resume=True)

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._train_entered = False
        self._last_global_step = int(getattr(trainer, "global_step", 0) or 0)

    @guarded
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._paused = {}
        self._open("train", "train", "train", parent="fit", resume=self._train_entered)
        self._train_entered = True
        train = self._slots["train"]
        self._train_handle = train.handle if train is not None else None
        self._open("epoch", f"epoch-{int(trainer.current_epoch)}", "epoch", parent="train")

    @guarded
    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._paused:
            self._resume_training()
        n = self.window_steps
        if n is not None and self._slots["window"] is None and self._slots["epoch"] is not None:
            k = int(batch_idx) // n
            self._open("window", f"window-{k}", "window", parent="epoch")
            window = self._slots["window"]
            if window is not None:
                window.handle.set_attr("batches", f"{k * n}-{(k + 1) * n - 1}")

    @guarded
    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        steps = self._optimizer_steps(trainer)
        self._count(batch, ("fit", "train", "epoch", "window"), steps)
        n = self.window_steps
        if n is not None and (int(batch_idx) + 1) % n == 0:
            self._close("window")

    @guarded
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._paused = {}
        if self._train_handle is not None:  # open, or paused by the epoch's last validation
            self._train_handle.set_attr("optimizer_steps", int(getattr(trainer, "global_step", 0)))
        for slot in ("window", "epoch", "train"):
            self._close(slot)
        if self.log_metrics:
            path = ("fit", "train", f"epoch-{int(trainer.current_epoch)}")
            self._log_phase(pl_module, path, "train_epoch")

    @guarded
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        for slot in ("window", "epoch", "train"):
            self._close(slot)
        self._paused = {}

    @guarded
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_all()

    # -- validation (sanity check, inside fit, or trainer.validate) ----------------------

    @guarded
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        if self._slots["fit"] is not None:
            self._pause_training()  # resumed at the next training batch, if any
            self._open("validate", "validate", "validate", parent="fit")
        else:
            self._record_model(pl_module)
            self._open("validate", "validate", "validate")

    @guarded
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

    @guarded
    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # only inside fit: in trainer.validate() it would join the returned metrics
        fn = getattr(getattr(trainer, "state", None), "fn", None)
        if not self.log_metrics or trainer.sanity_checking or fn != "fit":
            return
        current = self._slots["validate"]
        self._log_phase(pl_module, current.handle.path if current is not None else None, "validate")

    @guarded
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not getattr(trainer, "sanity_checking", False):
            self._close("validate")

    # -- test and predict: the same three hooks each ---------------------------------------

    on_test_start, on_test_batch_end, on_test_end = stage_hooks("test")
    on_predict_start, on_predict_batch_end, on_predict_end = stage_hooks("predict")

    # -- end of a stage, failures -----------------------------------------------------------

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Close what is still open, stop this stage's meter, gather the ranks' reports
        and write the run's report merged with this stage.

        Every rank reaches the gather whatever failed before it, so no rank waits forever.
        """
        stage = str(getattr(stage, "value", stage))
        try:
            self._close_all()
            self._stage_status.setdefault(stage, "complete")
            self._unbracket_saves(trainer)
        except Exception as exc:
            self._warn("hook.teardown", f"greenmeter: closing the phases failed: {exc!r}")
        report, _ = self._publish(gather=True)
        if report is not None and self.log_metrics:
            self._log_stage(trainer, report, stage)

    @guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Write the partial report (``failed``, or ``interrupted`` for Ctrl-C)."""
        interrupted = isinstance(exception, KeyboardInterrupt)
        status = "interrupted" if interrupted else "failed"
        self._close_all()
        self._unbracket_saves(trainer)
        fn = getattr(getattr(trainer, "state", None), "fn", None)
        stage = str(getattr(fn, "value", fn) or "run")
        self._stage_status[stage] = status
        self._notes["failure"] = f"{stage}: {type(exception).__name__}: {exception}"[:500]
        self._publish(gather=False, status=status)
