"""Loops as phases: measure a plain ``for batch in loader`` loop.

:func:`track` wraps any iterable. The phase opens when the first item is requested and
closes when the iterable is exhausted, when the loop leaves early (``break``,
``return``, an exception) or when the wrapper is garbage collected. It counts one step
per item and the samples in each item, so the report can give joules per sample.

Phase layout (the same as the Lightning adapter, where per-epoch phases are children of
``train``)::

    for epoch in range(3):
        for batch in meter.track(loader, "train", epoch=epoch):
            ...

produces the phase ``("train",)`` (entered three times, accumulated) with the children
``("train", "epoch-0")``, ``("train", "epoch-1")``, ``("train", "epoch-2")``. Inside an
enclosing ``with meter.phase("fit"):`` the paths become ``("fit", "train", "epoch-0")``.
With ``window_steps=N`` the innermost phase (the epoch when given, else the loop phase)
gets children ``window-0``, ``window-1``... of N steps each, numbered from 0 in each
call.

This module imports no ML framework: batch sizes are found by duck typing
(:func:`greenmeter.core.batch.batch_size`, re-exported here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from greenmeter.core.batch import batch_size, count_items

if TYPE_CHECKING:
    from greenmeter.core.meter import PhaseHandle

__all__ = ["batch_size", "track"]


class Phases(Protocol):
    """What :func:`track` needs of a meter (an :class:`~greenmeter.EnergyMeter`)."""

    def enter(
        self,
        name: str,
        kind: str | None = None,
        *,
        parent: PhaseHandle | tuple[str, ...] | None = None,
    ) -> PhaseHandle: ...

    def exit(self, handle: PhaseHandle) -> None: ...


T = TypeVar("T")

#: Counted items reach the meter at least this often (seconds), and at every boundary.
FLUSH_INTERVAL_S = 0.5


def track(
    meter: Phases,
    iterable: Iterable[T],
    phase: str,
    kind: str | None = None,
    *,
    samples: Callable[[Any], int] | None = None,
    tokens: Callable[[Any], int] | None = None,
    window_steps: int | None = None,
    epoch: int | None = None,
) -> Iterator[T]:
    """Iterate ``iterable`` inside phase ``phase``, counting steps, samples and tokens.

    Args:
        meter: A started :class:`~greenmeter.meter.EnergyMeter`.
        iterable: The loop's source (a DataLoader, a list, a generator...).
        phase: Name of the loop phase, a child of the phase open in this thread.
        kind: Phase kind; default: ``phase`` when it is a known kind (``"train"``,
            ``"validate"``...), else ``"custom"``.
        samples: ``batch -> int`` giving the samples in a batch (the ``batch_size_fn``
            of :func:`batch_size`); default :func:`batch_size`'s rules (batches of unknown
            size add no samples).
        tokens: ``batch -> int`` giving the tokens in a batch; default: none counted.
        window_steps: Open a child phase ``window-<k>`` (kind ``window``) every this
            many steps, for a finer time resolution within the loop.
        epoch: Also open a child phase ``epoch-<epoch>`` (kind ``epoch``) under the loop
            phase; steps, samples and tokens are added to both.

    Yields:
        The items of ``iterable``, unchanged.

    Timing: the loop phase opens when the first item is requested, so the loading of
    every item counts. It closes when the iterable is exhausted, or when the generator
    closes: on ``break`` (CPython closes it as soon as the loop drops it; call
    ``.close()`` to be explicit on other interpreters), on an exception in the loop
    body, or at garbage collection. A window closes once the item after its last one
    has been fetched, so windows follow each other without gaps and with no empty
    window at the end (loading the first item of a window counts in the window before).
    """
    if window_steps is not None and (
        isinstance(window_steps, bool) or not isinstance(window_steps, int) or window_steps < 1
    ):
        raise ValueError(f"window_steps must be a positive integer or None, got {window_steps!r}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise ValueError(f"epoch must be a non-negative integer or None, got {epoch!r}")
    for label, fn in (("samples", samples), ("tokens", tokens)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{label}= must be a callable batch -> int, got {fn!r}")
    if not isinstance(phase, str) or not phase or "/" in phase:
        raise ValueError(f"phase name must be a non-empty string without '/', got {phase!r}")
    return _tracked(meter, iter(iterable), phase, kind, samples, tokens, window_steps, epoch)


class _Pending:
    """Items counted since the last flush (adding to a phase takes the meter's lock)."""

    __slots__ = ("samples", "steps", "tokens")

    def __init__(self) -> None:
        self.samples: int | None = None
        self.tokens: int | None = None
        self.steps = 0

    def count(self, samples: int | None, tokens: int | None) -> None:
        self.steps += 1
        if samples is not None:
            self.samples = (self.samples or 0) + samples
        if tokens is not None:
            self.tokens = (self.tokens or 0) + tokens

    def flush(self, handles: Iterable[PhaseHandle]) -> None:
        if self.steps:
            for handle in handles:
                handle.add(samples=self.samples, tokens=self.tokens, steps=self.steps)
        self.samples = self.tokens = None
        self.steps = 0


def _tracked(
    meter: Phases,
    it: Iterator[T],
    phase: str,
    kind: str | None,
    samples_fn: Callable[[Any], int] | None,
    tokens_fn: Callable[[Any], int] | None,
    window_steps: int | None,
    epoch: int | None,
) -> Iterator[T]:
    loop = meter.enter(phase, kind)
    handles: list[PhaseHandle] = [loop]
    window: PhaseHandle | None = None
    pending = _Pending()
    targets: list[PhaseHandle] = handles
    try:
        inner = loop
        if epoch is not None:
            inner = meter.enter(f"epoch-{epoch}", "epoch", parent=loop)
            handles.append(inner)
            inner.set_attr("epoch", epoch)
        targets = handles[:]
        step = 0
        next_flush = time.monotonic() + FLUSH_INTERVAL_S
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            if window_steps is not None and step % window_steps == 0:
                pending.flush(targets)
                if window is not None:
                    meter.exit(window)
                index = step // window_steps
                window = meter.enter(f"window-{index}", "window", parent=inner)
                window.set_attr("first_step", step)
                targets = [*handles, window]
            n_samples = (
                count_items(samples_fn, item, "samples=")
                if samples_fn is not None
                else batch_size(item)
            )
            n_tokens = count_items(tokens_fn, item, "tokens=") if tokens_fn is not None else None
            pending.count(n_samples, n_tokens)
            step += 1
            now = time.monotonic()
            if now >= next_flush:
                pending.flush(targets)
                next_flush = now + FLUSH_INTERVAL_S
            yield item
    finally:
        pending.flush(targets)
        if window is not None:
            meter.exit(window)
        for handle in reversed(handles):
            meter.exit(handle)
