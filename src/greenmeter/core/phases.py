"""Phase accounting: one record per phase path, counted over the union of its time.

A phase path is opened and closed by boundaries that carry the run's cumulative energy
at that instant (from :class:`greenmeter.core.counters.Totals`). While at least one
instance of a path is open the path is *active*; its energy and duration accumulate
from the first instance opening to the last one closing, so instances that overlap
(several threads, a recursive function) never count a joule twice.

Bounds (:mod:`greenmeter.core.limits`), each enforced here with one warning:

* a phase nested deeper than ``MAX_PHASE_DEPTH`` is recorded at the deepest allowed
  level, as a child of its ancestor at depth ``MAX_PHASE_DEPTH - 1``;
* once ``MAX_PHASES`` distinct paths exist, a new path is folded into the phase
  ``(more phases)`` under its parent (or at the top level when even that has no room).

Deferred components (GPU counters read off the training thread) are not in a boundary's
reading: each closed stretch of a phase is kept *pending* and resolved later
(:meth:`PhaseBook.resolve`) from the trackers, once a counter update after its end was
seen; a figure that is read before that (a checkpoint) is provisional and says so.

Nothing here takes a lock: the meter calls it under its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import replace

from greenmeter.core.intervals import coalesce
from greenmeter.core.limits import (
    LATENCY_RESERVOIR,
    MAX_INTERVALS,
    MAX_PHASE_DEPTH,
    MAX_PHASES,
    OVERFLOW_PHASE,
)
from greenmeter.core.records import PhaseRecord
from greenmeter.sensors.placement import Figure, worse

__all__ = ["PhaseBook", "PhaseState"]

#: Paths kept free for the overflow phases once the table is nearly full.
_OVERFLOW_ROOM = 64

#: Energy per component id (joules since the meter started) and whether every value was
#: read afresh at the boundary.
Boundary = tuple[dict[str, float], bool]


class PhaseState:
    """Accounting for one phase path (changed only under the meter's lock)."""

    __slots__ = (
        "active",
        "open_energy",
        "open_fresh",
        "open_since",
        "pending",
        "record",
        "seen_latencies",
    )

    def __init__(self, record: PhaseRecord) -> None:
        self.record = record
        self.pending: list[tuple[float, float]] = []  # stretches awaiting deferred energy
        self.active = 0
        self.open_since = 0.0
        self.open_energy: dict[str, float] = {}
        self.open_fresh = False
        self.seen_latencies = 0


class PhaseBook:
    """The phase table of one meter.

    Args:
        note: Records a warning once per code: ``note(code, message)``.
        min_power_window_s: Shortest active stretch whose mean power counts towards the
            phase's peak power (shorter ones are dominated by counter steps).
    """

    def __init__(self, note: Callable[[str, str], None], min_power_window_s: float) -> None:
        self.states: dict[tuple[str, ...], PhaseState] = {}
        self.active: dict[tuple[str, ...], PhaseState] = {}
        self.min_power_window_s = float(min_power_window_s)
        #: Energy of deferred components at an instant: ``figures(t) -> {id: Figure}``.
        self.figures: Callable[[float], Mapping[str, Figure]] | None = None
        #: Whether figures at an instant are final: ``ready(t) -> bool``.
        self.ready: Callable[[float], bool] | None = None
        self._note = note
        self._rng = random.Random(0x6E)

    # -- paths ----------------------------------------------------------------------------

    def path_for(self, parent: tuple[str, ...], name: str) -> tuple[str, ...]:
        """The path a phase ``name`` under ``parent`` is recorded at, bounds applied."""
        path = (*parent, name)
        if path in self.states:
            return path
        if len(parent) >= MAX_PHASE_DEPTH:
            self._note(
                "meter.phase_too_deep",
                f"phases are nested deeper than {MAX_PHASE_DEPTH} levels (e.g. a recursive "
                f"function under @meter.measure); deeper ones, such as {name[:80]!r}, are "
                f"recorded at level {MAX_PHASE_DEPTH}",
            )
            parent = parent[: MAX_PHASE_DEPTH - 1]
        path = (*parent, name)
        if path in self.states or len(self.states) < MAX_PHASES - _OVERFLOW_ROOM:
            return path
        self._note(
            "meter.too_many_phases",
            f"more than {MAX_PHASES - _OVERFLOW_ROOM} distinct phase paths; new ones (such as "
            f"{'/'.join(path)[:120]!r}) are counted in a phase {OVERFLOW_PHASE!r} under their "
            "parent. Name phases by role, not by a value that changes every time",
        )
        overflow = (*parent[: MAX_PHASE_DEPTH - 1], OVERFLOW_PHASE)
        if overflow in self.states or len(self.states) < MAX_PHASES - 1:
            return overflow
        return (OVERFLOW_PHASE,)

    # -- boundaries -----------------------------------------------------------------------

    def open(
        self, path: tuple[str, ...], kind: str, now: float, boundary: Callable[[float], Boundary]
    ) -> PhaseState:
        """One more instance of ``path`` opens at ``now``; reads (``boundary(now)``) only when
        it becomes active."""
        state = self.states.get(path)
        if state is None:
            if path[-1] == OVERFLOW_PHASE:
                kind = "custom"
            state = self.states[path] = PhaseState(PhaseRecord(path=path, kind=kind))
        record = state.record
        record.count += 1
        if record.first_start_mono is None:
            record.first_start_mono = now
        if state.active == 0:
            state.open_since = now
            state.open_energy, state.open_fresh = boundary(now)
            record.open = True
            self.active[path] = state
        state.active += 1
        return state

    def close(self, state: PhaseState, now: float, boundary: Callable[[float], Boundary]) -> bool:
        """One instance closes; True when the path became inactive (it was read)."""
        if state.active == 0:
            return False
        state.active -= 1
        if state.active == 0:
            energy, fresh = boundary(now)
            self._settle(state, now, energy, fresh)
        return True

    def close_all(self, now: float, energy: dict[str, float], fresh: bool) -> list[PhaseState]:
        """Close every active path at ``now`` (the meter is stopping); returns them."""
        closed = list(self.active.values())
        for state in closed:
            state.active = 0
            self._settle(state, now, energy, fresh)
        return closed

    def _settle(self, state: PhaseState, now: float, energy: dict[str, float], fresh: bool) -> None:
        record = state.record
        opened = state.open_energy
        spent = 0.0
        for cid, value in energy.items():
            delta = max(0.0, value - opened.get(cid, 0.0))
            record.energy_j[cid] = record.energy_j.get(cid, 0.0) + delta
            spent += delta
        span = now - state.open_since
        record.duration_s += span
        record.last_end_mono = now
        record.open = False
        self.active.pop(record.path, None)
        if fresh and state.open_fresh and span >= self.min_power_window_s > 0:
            # the stretch's own mean power: a reading and its instant at both ends, so
            # the record's mean power never exceeds its peak
            self._peak(record, spent / span)
        if self.figures is not None:
            state.pending.append((state.open_since, now))
        intervals = record.intervals_mono
        intervals.append((state.open_since, now))
        if len(intervals) > MAX_INTERVALS:
            record.intervals_mono = coalesce(intervals, MAX_INTERVALS // 2, disjoint=True)

    @staticmethod
    def _peak(record: PhaseRecord, power_w: float) -> None:
        if record.peak_power_w is None or power_w > record.peak_power_w:
            record.peak_power_w = power_w

    def saw_power(self, power_w: float, window_end: float) -> None:
        """The sampler measured ``power_w`` over a window ending at ``window_end``: a
        candidate peak of every phase active at that instant."""
        for state in self.active.values():
            if state.open_since < window_end:
                self._peak(state.record, power_w)

    # -- deferred components ----------------------------------------------------------------

    def resolve(self, force: bool = False) -> float | None:
        """Fold the pending stretches whose end is final (all of them with ``force``)
        into their records; returns the earliest instant still needed, if any."""
        if self.figures is None or self.ready is None:
            return None
        need: float | None = None
        cache: dict[float, Mapping[str, Figure]] = {}
        for state in self.states.values():
            if state.pending:
                keep: list[tuple[float, float]] = []
                for a, b in state.pending:
                    if force or self.ready(b):
                        self._add(state.record, a, b, cache, state.record)
                    else:
                        keep.append((a, b))
                        need = a if need is None else min(need, a)
                state.pending = keep
            if state.active > 0:
                a = state.open_since
                need = a if need is None else min(need, a)
        return need

    def _add(
        self,
        record: PhaseRecord,
        a: float,
        b: float,
        cache: dict[float, Mapping[str, Figure]],
        target: PhaseRecord,
    ) -> None:
        """Add the deferred energy from ``a`` to ``b`` to ``target``."""
        assert self.figures is not None
        fa = cache.get(a)
        if fa is None:
            fa = cache[a] = self.figures(a)
        fb = cache.get(b)
        if fb is None:
            fb = cache[b] = self.figures(b)
        for cid, end in fb.items():
            start = fa.get(cid)
            if start is None:
                continue
            target.energy_j[cid] = target.energy_j.get(cid, 0.0) + max(
                0.0, end.energy_j - start.energy_j
            )
            method = target.energy_methods.get(cid)
            target.energy_methods[cid] = worse(
                worse(start.method, end.method), method or start.method
            )
            target.energy_bound_j[cid] = (
                target.energy_bound_j.get(cid, 0.0) + start.bound_j + end.bound_j
            )
            if not (start.exact and end.exact) and cid not in target.provisional:
                target.provisional.append(cid)

    # -- items ----------------------------------------------------------------------------

    @staticmethod
    def add_items(
        state: PhaseState, samples: int | None, tokens: int | None, steps: int | None
    ) -> None:
        record = state.record
        if samples is not None:
            record.samples = (record.samples or 0) + int(samples)
        if tokens is not None:
            record.tokens = (record.tokens or 0) + int(tokens)
        if steps is not None:
            record.steps = (record.steps or 0) + int(steps)

    def add_latency(self, state: PhaseState, latency_s: float) -> None:
        state.seen_latencies += 1
        lat = state.record.latencies_s
        if len(lat) < LATENCY_RESERVOIR:
            lat.append(latency_s)
        else:
            j = self._rng.randrange(state.seen_latencies)
            if j < LATENCY_RESERVOIR:
                lat[j] = latency_s

    # -- results --------------------------------------------------------------------------

    def records(self, now: float, reading: Mapping[str, float] | None) -> list[PhaseRecord]:
        """Copies of every record; with ``reading``, active paths run up to ``now``."""
        out: list[PhaseRecord] = []
        cache: dict[float, Mapping[str, Figure]] = {}
        for state in self.states.values():
            rec = state.record
            copy = replace(
                rec,
                energy_j=dict(rec.energy_j),
                latencies_s=list(rec.latencies_s),
                intervals_mono=list(rec.intervals_mono),
                attrs=dict(rec.attrs),
                energy_methods=dict(rec.energy_methods),
                energy_bound_j=dict(rec.energy_bound_j),
                provisional=list(rec.provisional),
            )
            if self.figures is not None:
                for a, b in state.pending:
                    self._add(rec, a, b, cache, copy)
            if reading is not None and state.active > 0:
                for cid, value in reading.items():
                    copy.energy_j[cid] = copy.energy_j.get(cid, 0.0) + max(
                        0.0, value - state.open_energy.get(cid, 0.0)
                    )
                if self.figures is not None:
                    self._add(rec, state.open_since, now, cache, copy)
                copy.duration_s += now - state.open_since
                copy.intervals_mono.append((state.open_since, now))
                copy.open = True
            out.append(copy)
        return out
