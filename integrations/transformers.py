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

How it brackets: Transformers has no "evaluation begins" event, so the callback
attaches to its ``Trainer`` (found when the Trainer calls ``on_init_end`` or
``on_train_begin``, or given with :meth:`GreenMeterTrainerCallback.attach`) and wraps
that instance's ``evaluate``, ``predict``, ``training_step`` and ``prediction_step``.
If it cannot attach (a Trainer built in an unusual way), it falls back to the events:
evaluation then opens at the first ``on_prediction_step`` (the first batch is missed),
is always named ``evaluate``, and samples are estimated from the batch size arguments;
the phase carries the attribute ``bracket="events"``.
"""

from __future__ import annotations

import inspect
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
        meter: A meter to record into (its lifecycle stays yours). None: the callback
            creates one when the first phase opens and stops it at the end of
            training (a later ``evaluate``/``predict`` starts a new one; call
            :meth:`finish` to stop it and write its report).
        report_path: Where to write the report at the end of training (on global rank
            0, merged over ranks when ``torch.distributed`` is initialised).
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
        self._owned = meter is None
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

    def _meter(self) -> EnergyMeter:
        if self.meter is None or (self._owned and not self.meter.running):
            from greenmeter.meter import EnergyMeter

            self.meter = EnergyMeter(**self.meter_kwargs).start()
            self._owned = True
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
        trainer if it is not there yet. Done automatically when the trainer calls
        ``on_init_end`` or ``on_train_begin``. Returns the callback.
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

    def _find_trainer(self) -> None:
        """Attach to the Trainer whose callback handler called us (a few frames up)."""
        if self.trainer is not None:
            return
        frame = inspect.currentframe()
        try:
            for _ in range(8):
                frame = frame.f_back if frame is not None else None
                if frame is None:
                    return
                obj = frame.f_locals.get("self")
                handler = getattr(obj, "callback_handler", None)
                if handler is not None and self in getattr(handler, "callbacks", ()):
                    self.attach(obj)
                    return
        except Exception:  # never let bracketing problems reach training
            return
        finally:
            del frame

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
        self._find_trainer()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._find_trainer()
        meter = self._meter()
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
        self._exit(self._epoch)
        self._epoch = None
        self._epoch_name = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        per_step = None
        if self.trainer is None:  # events only: estimate from the arguments
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        for handle in self._training_targets():
            handle.add(samples=per_step, steps=1)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._eval is not None:
            return  # attached: the prediction_step wrapper counts
        if self._event_eval is None:
            self._find_trainer()  # later calls will be bracketed exactly
            self._event_eval = self._open_eval("evaluate", "validate")
            self._event_eval.set_attr("bracket", "events")
        self._event_eval.add(samples=args.per_device_eval_batch_size, steps=1)

    def _close_event_eval(self) -> None:
        handle, self._event_eval = self._event_eval, None
        if handle is not None:
            self._close_eval(handle)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_event_eval()

    def on_predict(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_event_eval()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_event_eval()
        self._exit(self._epoch)
        if not self._suspended:
            self._exit(self._train)
        self._exit(self._fit)
        self._fit = self._train = self._epoch = None
        self._epoch_name = None
        self._suspended = False
        if self._owned:
            self.finish()
        elif self.report_path is not None:
            self._write()

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        """Stop the meter the callback created and write the report when asked.

        A meter given by the user is never stopped; its report is written at the end of
        training when ``report_path`` is set.
        """
        if self.meter is None:
            return
        if self._owned and self.meter.running:
            self.meter.stop()
        if self.report_path is not None:
            self._write()

    def _write(self) -> None:
        assert self.meter is not None
        try:
            from greenmeter.integrations.torch import distributed_report

            distributed_report(self.meter, self.report_path, **self.report_kwargs)
        except Exception as exc:
            warnings.warn(
                f"greenmeter: writing the report to {self.report_path} failed: {exc!r}",
                stacklevel=2,
            )
