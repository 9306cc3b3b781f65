"""Hugging Face Transformers: a ``TrainerCallback`` that splits a run into phases.

    >>> from greenmeter.integrations.transformers import GreenMeterTrainerCallback
    >>> trainer = Trainer(model, args, train_dataset=train, eval_dataset=val,
    ...                   callbacks=[GreenMeterTrainerCallback(report_path="energy.json")])
    ...                                                        # doctest: +SKIP
    >>> trainer.train()                                        # doctest: +SKIP

Phases (the same layout as the Lightning adapter):

* ``trainer.train()`` is ``("fit",)`` (kind ``fit``); training proper is
  ``("fit", "train")`` (kind ``train``) with one child per epoch,
  ``("fit", "train", "epoch-<i>")`` (kind ``epoch``).
* Evaluation during training is ``("fit", "evaluate")`` (kind ``validate``); the train
  and epoch phases are paused while it runs, so train and evaluate never overlap and
  their energies add up to the fit's.
* ``trainer.evaluate()`` and ``trainer.predict()`` outside training are ``("evaluate",)``
  (kind ``validate``) and ``("predict",)`` (kind ``predict``).

Counting: ``steps`` of ``train`` are optimizer steps (``state.global_step``); of
``evaluate``/``predict``, prediction batches. ``samples`` are the first dimension of
each batch (the last partial batch included) and ``tokens`` the size of ``input_ids``
(padding included; shapes only, so no device sync per batch).

One report per Trainer. The callback's own meter (``meter=None``) starts when the
Trainer is built (``on_init_end``), before ``fit`` opens, and keeps running across
``train()``, ``evaluate()`` and ``predict()``: its report accumulates all of them (and
the model's size) and is rewritten, status ``running``, after each. It becomes final
(status ``complete``, and the closing line on standard error with ``verbose``) when that
meter stops: :meth:`GreenMeterTrainerCallback.finish`, or at interpreter exit.

How it brackets. With the events alone (``callbacks=[callback]``): evaluation during
training opens at the ``on_step_end``/``on_epoch_end`` that asks for it
(``control.should_evaluate``) and closes at ``on_evaluate``, exactly; a standalone
``trainer.evaluate()``/``predict()`` has no "begins" event, so it opens at its first
``on_prediction_step`` (the first batch is missed), is named ``evaluate`` and carries
the attribute ``bracket="events"``, and samples are estimated from the batch size
arguments. For exact brackets, names and counts everywhere, call
:meth:`GreenMeterTrainerCallback.attach` with the Trainer: it wraps that instance's
``evaluate``, ``predict``, ``training_step`` and ``prediction_step``.
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from greenmeter.core.batch import batch_size as _batch_size

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter, PhaseHandle

__all__ = ["GreenMeterTrainerCallback"]

_WRAPPED = ("evaluate", "predict", "training_step", "prediction_step")


def _rank_gpus(args: Any) -> list[int] | None:
    """The GPU this process trains on, from the Trainer's arguments: ``[index]`` on CUDA,
    ``[]`` on another device, None when the arguments do not say (all visible GPUs).

    Under ``torchrun`` every rank measures its own board only, as the Lightning callback
    does; measuring every visible board on every rank would count each one once per rank.
    """
    try:
        device = args.device
    except Exception:  # arguments without a device (a stand-in, an old version)
        return None
    kind = getattr(device, "type", None)
    if kind == "cuda":
        index = getattr(device, "index", None)
        return [int(index) if index is not None else 0]
    return [] if isinstance(kind, str) else None


def _tokens(inputs: Any) -> int | None:
    if isinstance(inputs, Mapping):
        ids = inputs.get("input_ids")
        shape = getattr(ids, "shape", None)
        if shape is not None and len(shape) >= 1:
            n = 1
            for d in shape:
                n *= int(d)
            return n
    return None


class GreenMeterTrainerCallback(TrainerCallback):
    """Attribute a ``transformers.Trainer`` run's energy to fit/train/evaluate/predict.

    Args:
        meter: A meter to record into; the callback never stops it. Its report is
            written (status ``running``) after each ``train``/``evaluate``/``predict``;
            to finish it: ``meter.stop()``, then :meth:`finish` to write the final
            report. None: the callback creates its own when the Trainer is built (or at
            the first event), keeps it across train/evaluate/predict, and stops it in
            :meth:`finish` or at interpreter exit.
        report_path: Where to write the report (on global rank 0, merged over ranks
            when ``torch.distributed`` is initialised).
        epochs: Open one ``epoch-<i>`` phase per epoch under ``train``.
        count_tokens: Count ``input_ids`` positions as tokens.
        model_info: Put :func:`greenmeter.integrations.torch.model_size` of the model
            into the report's ``models``.
        report_kwargs: More arguments for ``meter.report()``.
        meter_kwargs: Arguments for the :class:`~greenmeter.meter.EnergyMeter` the
            callback creates when ``meter`` is None.
        export: Live metrics of a created meter (``"prometheus:9464"``,
            ``"pushgateway:URL"``, ``"otel"`` or an exporter); see
            :mod:`greenmeter.export`. None: ``$GREENMETER_EXPORT`` or the config file.
        estimate_scope: ``"process"`` or ``"machine"`` for the CPU/RAM estimate of the
            callback's own meter on hosts without counters (see
            :class:`~greenmeter.meter.EnergyMeter`).
        tags: Run labels for the callback's own meter (``{"seed": 3}``).
        verbose: Print the closing line (energy, CO2e, report path, caveats) on the main
            process when the final report is written.
    """

    def __init__(
        self,
        meter: EnergyMeter | None = None,
        report_path: str | os.PathLike[str] | None = None,
        *,
        epochs: bool = True,
        count_tokens: bool = True,
        model_info: bool = True,
        report_kwargs: Mapping[str, Any] | None = None,
        meter_kwargs: Mapping[str, Any] | None = None,
        export: Any = None,
        estimate_scope: str | None = None,
        tags: Mapping[str, Any] | None = None,
        verbose: bool = True,
    ) -> None:
        self.meter: EnergyMeter | None = meter
        self.report_path = Path(report_path) if report_path is not None else None
        self.epochs = epochs
        self.count_tokens = count_tokens
        self.model_info = model_info
        self.report_kwargs = dict(report_kwargs or {})
        self.meter_kwargs = dict(meter_kwargs or {})
        if export is not None:
            self.meter_kwargs["export"] = export
        if estimate_scope is not None:
            self.meter_kwargs["estimate_scope"] = estimate_scope
        if tags is not None:
            self.meter_kwargs["tags"] = dict(tags)
        self.meter_kwargs.setdefault("verbose", False)  # the callback prints its own line
        self.verbose = bool(verbose)
        self._owned = meter is None
        self._finished = False
        self.trainer: Any = None
        self._fit: PhaseHandle | None = None
        self._train: PhaseHandle | None = None
        self._epoch: PhaseHandle | None = None
        self._epoch_name: str | None = None
        self._eval: PhaseHandle | None = None  # opened by a wrapper
        self._event_eval: PhaseHandle | None = None  # opened by the event fallback
        self._eval_depth = 0
        self._suspended = False

    # -- meter and trainer --------------------------------------------------------------

    def _meter(self, args: Any = None) -> EnergyMeter:
        if self.meter is None or (self._owned and self._finished):
            from greenmeter.meter import EnergyMeter

            kwargs = dict(self.meter_kwargs)
            if "gpus" not in kwargs and "sensors" not in kwargs and args is not None:
                gpus = _rank_gpus(args)
                if gpus is not None:
                    kwargs["gpus"] = gpus
                    kwargs.setdefault("gpu", bool(gpus))
            self.meter = EnergyMeter(**kwargs).start()
            self._owned = True
            self._finished = False
            atexit.register(self._finish_at_exit)
            try:
                from greenmeter.integrations.torch import install

                install(self.meter)
            except Exception as exc:  # pragma: no cover - torch is a transformers dependency
                warnings.warn(f"greenmeter: CUDA sync not installed: {exc!r}", stacklevel=2)
        return self.meter

    def attach(self, trainer: Any) -> GreenMeterTrainerCallback:
        """Bracket ``trainer``'s evaluation and prediction exactly and count batches.

        Wraps the instance's ``evaluate``, ``predict``, ``training_step`` and
        ``prediction_step`` (the class is untouched) and adds this callback to the
        trainer if it is not there yet. Returns the callback, so
        ``GreenMeterTrainerCallback(...).attach(trainer)`` is all the set-up needed.
        """
        if self.trainer is trainer:
            return self
        if self.trainer is not None:
            self.detach()
        handler = getattr(trainer, "callback_handler", None)
        if handler is not None and self not in handler.callbacks:
            trainer.add_callback(self)
        for name in _WRAPPED:
            original = getattr(trainer, name)
            if getattr(original, "__greenmeter__", None) is not None:
                continue
            wrapper = getattr(self, f"_wrap_{name}")(original)
            wrapper.__greenmeter__ = self  # type: ignore[attr-defined]
            wrapper.__wrapped__ = original  # type: ignore[attr-defined]
            setattr(trainer, name, wrapper)
        self.trainer = trainer
        return self

    def detach(self) -> None:
        """Undo :meth:`attach` (restore the trainer's methods)."""
        trainer, self.trainer = self.trainer, None
        if trainer is None:
            return
        for name in _WRAPPED:
            current = trainer.__dict__.get(name)
            if getattr(current, "__greenmeter__", None) is self:
                del trainer.__dict__[name]

    # -- phase bookkeeping --------------------------------------------------------------

    def _enter(self, name: str, kind: str, parent: PhaseHandle | None = None) -> PhaseHandle:
        meter = self._meter()
        if parent is not None and parent.closed:
            parent = None
        return meter.enter(name, kind, parent=parent)

    def _exit(self, handle: PhaseHandle | None) -> None:
        if handle is not None and self.meter is not None:
            self.meter.exit(handle)

    def _suspend_training(self) -> None:
        if self._train is None or self._suspended:
            return
        self._exit(self._epoch)
        self._exit(self._train)
        self._suspended = True

    def _resume_training(self) -> None:
        if not self._suspended:
            return
        self._suspended = False
        if self._fit is None or self._fit.closed:
            return
        self._train = self._enter("train", "train", self._fit)
        if self._epoch_name is not None:
            self._epoch = self._enter(self._epoch_name, "epoch", self._train)

    def _training_targets(self) -> list[PhaseHandle]:
        return [h for h in (self._train, self._epoch) if h is not None and not h.closed]

    def _open_eval(self, name: str, kind: str) -> PhaseHandle:
        self._suspend_training()
        parent = self._fit if self._fit is not None and not self._fit.closed else None
        return self._enter(name, kind, parent)

    def _close_eval(self, handle: PhaseHandle | None) -> None:
        self._exit(handle)
        self._resume_training()

    # -- wrappers (attached mode) -------------------------------------------------------

    def _wrap_evaluate(self, original: Any) -> Any:
        return self._bracket(original, "evaluate", "validate")

    def _wrap_predict(self, original: Any) -> Any:
        return self._bracket(original, "predict", "predict")

    def _bracket(self, original: Any, name: str, kind: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._eval_depth > 0:  # evaluate() recursing over a dict of datasets
                return original(*args, **kwargs)
            self._eval_depth += 1
            handle = None
            try:
                handle = self._open_eval(name, kind)
                self._eval = handle
            except Exception as exc:
                self._problem(exc)
            try:
                return original(*args, **kwargs)
            finally:
                self._eval_depth -= 1
                self._eval = None
                try:
                    self._close_eval(handle)
                    self._after_top_level()
                except Exception as exc:
                    self._problem(exc)

        return wrapper

    def _wrap_training_step(self, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
            samples = _batch_size(inputs)
            tokens = _tokens(inputs) if self.count_tokens else None
            for handle in self._training_targets():
                handle.add(samples=samples, tokens=tokens)
            return original(*args, **kwargs)

        return wrapper

    def _wrap_prediction_step(self, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            handle = self._eval
            if handle is not None and not handle.closed:
                inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
                tokens = _tokens(inputs) if self.count_tokens else None
                handle.add(samples=_batch_size(inputs), tokens=tokens, steps=1)
            return original(*args, **kwargs)

        return wrapper

    def _problem(self, exc: BaseException) -> None:
        warnings.warn(f"greenmeter: phase bookkeeping failed: {exc!r}", stacklevel=3)

    # -- events -------------------------------------------------------------------------

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._meter(args)  # measuring before ``fit`` opens: its start is not in the fit

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        meter = self._meter(args)
        model = kwargs.get("model")
        if self.model_info and model is not None and "model" not in meter.report_kwargs:
            try:
                from greenmeter.integrations.torch import model_size

                meter.report_kwargs["model"] = model_size(model)
            except Exception as exc:
                self._problem(exc)
        self._fit = self._enter("fit", "fit")
        self._train = self._enter("train", "train", self._fit)
        self._suspended = False

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.epochs or self._train is None:
            return
        self._epoch_name = f"epoch-{int(state.epoch or 0)}"
        if not self._suspended:
            self._epoch = self._enter(self._epoch_name, "epoch", self._train)
            self._epoch.set_attr("epoch", int(state.epoch or 0))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._suspended:
            self._exit(self._epoch)
        self._epoch = None
        self._epoch_name = None
        self._evaluation_asked(control)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        per_step = None
        if self.trainer is None:  # events only: estimate from the arguments
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        for handle in self._training_targets():
            handle.add(samples=per_step, steps=1)
        self._evaluation_asked(control)

    def _evaluation_asked(self, control: Any) -> None:
        """Events only: the Trainer evaluates right after this event; open it now."""
        if self.trainer is not None or self._event_eval is not None or self._train is None:
            return
        if getattr(control, "should_evaluate", False):
            self._event_eval = self._open_eval("evaluate", "validate")

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._eval is not None:
            return  # attached: the prediction_step wrapper counts
        if self._event_eval is None:
            self._event_eval = self._open_eval("evaluate", "validate")
            self._event_eval.set_attr("bracket", "events")
        self._event_eval.add(samples=args.per_device_eval_batch_size, steps=1)

    def _close_event_eval(self) -> None:
        handle, self._event_eval = self._event_eval, None
        if handle is not None:
            self._close_eval(handle)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_event_eval()
        if self._eval_depth == 0:
            self._after_top_level()

    def on_predict(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_event_eval()
        if self._eval_depth == 0:
            self._after_top_level()

    def _after_top_level(self) -> None:
        """A standalone evaluate/predict ended: rewrite the report (not during fit)."""
        if self._fit is None and self.report_path is not None and self.meter is not None:
            self._write()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_event_eval()
        self._exit(self._epoch)
        if not self._suspended:
            self._exit(self._train)
        self._exit(self._fit)
        self._fit = self._train = self._epoch = None
        self._epoch_name = None
        self._suspended = False
        if self.report_path is not None:
            self._write()  # in progress: evaluate/predict may follow on the same meter

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        """Stop the meter the callback created and write the final report.

        A meter given by the user is never stopped: stop it first (``meter.stop()``),
        then call this to write its final report (a running one is written with status
        ``running``). Calling it again does nothing.
        """
        if self.meter is None or self._finished:
            return
        if self._owned:
            self.meter.stop()
        if self.meter.running:  # a given meter, still yours to stop
            if self.report_path is not None:
                self._write()
            return
        self._finished = True
        if self._owned:
            atexit.unregister(self._finish_at_exit)
        if self.report_path is not None:
            report = self._write()
            if self.verbose and report is not None:  # the main process only
                from greenmeter.render.closing import emit_summary

                emit_summary(report, self.report_path)

    def _finish_at_exit(self) -> None:
        try:
            self.finish()
        except Exception:  # nothing to raise into at exit
            pass

    def _write(self) -> Any:
        """Write the meter's report (merged over ranks); the report on the main process."""
        assert self.meter is not None
        try:
            from greenmeter.integrations.torch import distributed_report

            return distributed_report(self.meter, self.report_path, **self.report_kwargs)
        except Exception as exc:
            warnings.warn(
                f"greenmeter: writing the report to {self.report_path} failed: {exc!r}",
                stacklevel=2,
            )
            return None
