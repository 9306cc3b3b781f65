"""Boundaries placed between energy-counter updates with instant power.

A GPU energy counter (NVML's total energy) moves in steps: its value changes every
``step_s`` (100 ms on H100/H200) and each new value is the energy drawn up to the instant
it changed. A boundary that falls between two updates is placed by instant power:

* every change of the counter is an *update* ``k`` with value ``C_k`` (joules) and an
  instant ``u_k`` known to lie between the last read that saw the old value and the
  first read that saw the new one (the *bracket*). On a regular counter the updates lie
  on a grid ``u_k = phi + k * step``; the brackets of recent updates, shifted by whole
  steps, are intersected to locate the grid far more tightly than one bracket does;
* between ``u_k`` and ``u_k+1`` the energy up to a boundary ``b`` is
  ``C_k + (C_k+1 - C_k) * F(u_k, b) / F(u_k, u_k+1)``, where ``F`` integrates the
  instant-power samples (piecewise linear, never across a boundary: power is held from
  the last sample before a boundary and from the first one after it). So every interval
  between updates still adds up to the counter exactly, and consecutive phases add up to
  the run's counter total: no joule is created or lost;
* without instant power the placement is linear in time within the step, flagged.

A figure is *exact* once an update after its instant has been seen; before that it is
provisional (the last update plus instant power, not rescaled).

Each figure carries how it was obtained (:data:`COUNTER`, :data:`PLACED`,
:data:`INTERPOLATED`) and an error bound (joules): the energy that the uncertainty of
the update instants and of the power between samples can move, never more than the
step's own energy.

Thread-safe: one reader thread adds reads and samples while the meter resolves.

Size: about 630 lines: locating the counter's update grid, indexing updates on it and
placing boundaries between updates all work on one per-board track of reads and
samples, and the error bound is computed from the same track.
"""

from __future__ import annotations

import itertools
import math
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

__all__ = ["COUNTER", "INTERPOLATED", "PLACED", "Figure", "Track"]

#: The instant is an update (or the counter is read continuously): no placement needed.
COUNTER = "counter"
#: Placed between two updates by instant power, rescaled to the counter.
PLACED = "counter+instant_power"
#: Placed linearly in time between two updates: no instant power was available.
INTERPOLATED = "counter_interpolated"

_RANK = {COUNTER: 0, PLACED: 1, INTERPOLATED: 2}

#: Most recent brackets intersected to locate the update grid.
_GRID_WINDOW = 48
#: Uncertainty of one timestamp taken around a driver call (s): thread wake-up and
#: clock reading on either side of it.
_STAMP_S = 0.0005
#: At most this many grid instants + 1 are weighed for one held-up read.
_MAX_CANDIDATES = 50
#: Two samples closer than this share of the power spread seen pin the power between them.
_FLAT_SHARE = 0.05
#: A bracket narrower than this share of the step pins the grid (a read just before and
#: one just after an update); the latest :data:`_TIGHT_KEPT` of them always take part in
#: locating it, so that wide brackets alone (reads after each update, or a second
#: apart) never leave it loosely located once it was pinned.
_TIGHT_SHARE = 0.2
_TIGHT_KEPT = 8
#: A bracket longer than this many steps (reads a second apart) is indexed on the grid
#: at the latest instant the grid allows (:meth:`Track._grid_k`).
_LONG_STEPS = 1.5
#: Updates a Track keeps at most (about 7 minutes at 100 ms); older ones are trimmed.
_MAX_UPDATES = 4096


def worse(a: str, b: str) -> str:
    """The less precise of two methods."""
    return a if _RANK.get(a, 3) >= _RANK.get(b, 3) else b


@dataclass(frozen=True)
class Figure:
    """A cumulative energy at one instant and how it was obtained.

    Attributes:
        energy_j: Joules since the track's origin.
        method: :data:`COUNTER`, :data:`PLACED` or :data:`INTERPOLATED`.
        bound_j: Error bound of ``energy_j`` (joules).
        exact: An update after the instant was seen (else provisional).
    """

    energy_j: float
    method: str
    bound_j: float
    exact: bool


class _Update:
    __slots__ = ("hi", "k", "lo", "value_j")

    def __init__(self, k: int, lo: float, hi: float, value_j: float) -> None:
        self.k = k
        self.lo = lo
        self.hi = hi
        self.value_j = value_j


class _StepModel:
    """Cumulative integrals of the power model over one stretch between two updates,
    at every sample and boundary inside it: a figure inside costs a bisection."""

    __slots__ = ("f", "p_hi_w", "spread_w", "u", "unseen_j", "whole_j", "xs")

    def __init__(self, track: Track, t0: float, t1: float) -> None:
        pt, pw, m = track._pt, track._pw, track._marks
        i0 = max(0, bisect_left(pt, t0) - 1)
        i1 = min(len(pt), bisect_right(pt, t1) + 1)
        seen = pw[i0:i1] or [pw[-1]]
        self.p_hi_w = max(seen)
        self.spread_w = self.p_hi_w - min(seen)
        inner = sorted(
            {
                *pt[bisect_right(pt, t0) : bisect_left(pt, t1)],
                *m[bisect_right(m, t0) : bisect_left(m, t1)],
            }
        )
        xs = [t0, *inner, t1]
        f = [0.0]
        u = [0.0]
        for a, b in itertools.pairwise(xs):
            f.append(f[-1] + track._integral(a, b))
            u.append(u[-1] + track._unseen(a, b, self.spread_w))
        self.xs, self.f, self.u = xs, f, u
        self.whole_j = f[-1]
        self.unseen_j = u[-1]

    def part(self, track: Track, t: float) -> float:
        """Integral (J) of the modelled power from the stretch's start to ``t``."""
        j = max(0, bisect_right(self.xs, t) - 1)
        return self.f[j] + track._integral(self.xs[j], t)

    def unseen_before(self, track: Track, t: float) -> float:
        """Energy (J) the model may be off by from the stretch's start to ``t``."""
        j = max(0, bisect_right(self.xs, t) - 1)
        return self.u[j] + track._unseen(self.xs[j], t, self.spread_w)


class Track:
    """The record of one counter's updates and one board's instant power.

    Args:
        step_s: The counter's update step (s), measured at start-up (None: unknown,
            taken as ``default_step_s`` and refined from the updates seen).
        continuous: The counter changes at every read (no step): each read is an update
            at its own instant.
        has_power: Instant power samples will come (else placement is linear).
        default_step_s: The step assumed when ``step_s`` is None.
        marks: A list of boundary instants shared with other tracks (appended to
            without a lock, in increasing order); default a list of its own.
        lock: The lock guarding this track (and the shared ``marks`` when trimmed).
    """

    def __init__(
        self,
        step_s: float | None,
        *,
        continuous: bool = False,
        has_power: bool = True,
        default_step_s: float = 0.1,
        marks: list[float] | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        self.continuous = continuous
        self.has_power = has_power
        self.step_s = float(step_s or default_step_s)
        self._lock = lock if lock is not None else threading.Lock()
        self._updates: list[_Update] = []
        self._times: list[float] = []  # estimated instant of each update (cache)
        self._last_read_s = -math.inf
        self._last_old_s = -math.inf  # latest instant the counter still held its value
        self._last_value: float | None = None
        self._phi: tuple[float, float] | None = None  # grid origin interval (k = 0)
        # (grid origin, step) the recent update instants were last all estimated with
        self._fitted: tuple[tuple[float, float] | None, float] | None = None
        self._first_mid: tuple[int, float] | None = None
        # the latest tight brackets (a read just before and one just after an update):
        # kept to locate the grid after they leave the window or are trimmed
        self._tight: list[_Update] = []
        self._models: dict[tuple[float, float], _StepModel] = {}
        # (latest update, boundaries), sample instant, integral up to it: see
        # :meth:`_provisional_j`
        self._prov: tuple[tuple[float, int, float], float, float] | None = None
        self._pt: list[float] = []  # instant-power sample instants
        self._pw: list[float] = []  # and values (W)
        # boundary instants (power is not interpolated across them)
        self._marks: list[float] = marks if marks is not None else []
        self.reads = 0
        #: Set when the board stopped answering: figures after its last update are held.
        self.stopped = False
        #: Changes of the counter seen so far.
        self.changes = 0

    # -- recording ------------------------------------------------------------------------

    def add_read(
        self, s: float, value_j: float, start_s: float | None = None, end_s: float | None = None
    ) -> bool:
        """A counter read whose value was taken at instant ``s``; True when it changed.

        ``start_s``/``end_s`` (s), when given, are the ends of a call whose value instant
        is not trusted to be ``s`` (the call was slow: the thread was held up): a read
        that saw the old value then only proves the update came after ``start_s``, one
        that saw a new value that it came before ``end_s``.
        """
        with self._lock:
            self.reads += 1
            last = self._last_value
            if s <= self._last_read_s:
                return False
            prev_s, self._last_read_s = self._last_old_s, s
            if last is not None and value_j == last:
                self._last_old_s = s if start_s is None else start_s
                self._held_past(self._last_old_s)
                return False
            self._last_old_s = s if start_s is None else start_s
            hi = s if end_s is None else end_s
            self._last_value = value_j
            if self.continuous:
                k = self._updates[-1].k + 1 if self._updates else 0
                self._append(_Update(k, s, s, value_j))
                return True
            if not self._updates:  # the first value: its update lies at or before s
                self._append(_Update(0, -math.inf, hi, value_j))
                return True
            before = self._updates[-1]
            k = self._grid_k(prev_s, hi)
            if k is None or k <= before.k:
                gap = (hi - before.hi) / self.step_s
                k = before.k + max(1, round(gap))
            k = self._by_energy(before, k, prev_s, s if start_s is None else start_s, hi, value_j)
            self._append(_Update(k, prev_s, hi, value_j))
            self._fit()
            return True

    def _grid_k(self, lo: float, hi: float) -> int | None:
        """The index of the latest grid update in the bracket (``lo``, ``hi``]; None
        while the grid is not located or when the bracket holds no grid instant.

        A bracket of about a step is taken at face value (the latest grid instant at or
        before ``hi`` at the grid's middle). A long bracket (reads a second apart) gets
        the latest grid instant *certainly* at or before ``hi`` (at the latest instant
        the grid's uncertainty allows): where ``hi`` lies within that uncertainty after
        a grid instant it gets the update before it, never the one after. An index one
        too high shifts its bracket a whole step below the others and narrows the grid
        onto a phase that excludes the true one; one too low leaves a long bracket
        still holding the true phase, and a later read that still sees the value past
        the next instant moves it up (:meth:`_held_past`). The timestamps' tolerance
        only serves a bracket that holds no grid instant so taken.
        """
        if self._phi is None or not math.isfinite(lo):
            return None
        mid = 0.5 * (self._phi[0] + self._phi[1])
        tol = self._half_width() + _STAMP_S
        step = self.step_s
        at = self._phi[1] if hi - lo > _LONG_STEPS * step else mid
        k = math.floor((hi - at) / step)
        if mid + k * step >= lo - tol:
            return k
        k += 1
        if mid + k * step <= hi + tol:
            return k
        return None

    def _by_energy(
        self, before: _Update, k: int, lo: float, first_s: float, hi: float, value_j: float
    ) -> int:
        """The index of an update seen by a read whose value may belong to more than one
        grid instant: the read lies within the grid's uncertainty of one (did that update
        come before the value was taken?), or the call was held up across one or more
        (its value was taken at some instant from ``first_s`` to ``hi``, so the updates
        in between may or may not have been seen). Each candidate is a grid instant after
        ``lo`` and ``before``, at or before ``hi``, whose next one is not certainly before
        ``first_s``; the counter's change since ``before`` decides among them, against
        the energy instant power says was drawn up to each (they are a step's energy
        apart). Else ``k`` as it is."""
        if not self.has_power or not self._pt or self._phi is None or not self._times:
            return k
        if not math.isfinite(before.lo):
            return k
        mid = 0.5 * (self._phi[0] + self._phi[1])
        tol = self._half_width() + _STAMP_S
        step = self.step_s
        c_hi = math.floor((hi + tol - mid) / step)
        c_lo = max(
            before.k + 1,
            math.ceil((lo - tol - mid) / step),
            math.ceil((first_s - tol - mid) / step) - 1,
        )
        if c_hi - c_lo < 1 or not c_lo <= k <= c_hi or c_hi - c_lo > _MAX_CANDIDATES:
            return k
        t0 = self._times[-1]
        delta = value_j - before.value_j
        return min(
            range(c_lo, c_hi + 1), key=lambda c: abs(self._integral(t0, mid + c * step) - delta)
        )

    def _held_past(self, s: float) -> None:
        """The latest value was still read at ``s``: a grid instant certainly before
        ``s`` cannot come after the latest update, whose index is raised to it (at most
        to the grid instant its own bracket allows within the tolerance)."""
        ups = self._updates
        if self.continuous or self._phi is None or len(ups) < 2:
            return
        u = ups[-1]
        if not math.isfinite(u.lo):
            return
        mid = 0.5 * (self._phi[0] + self._phi[1])
        tol = self._half_width() + _STAMP_S
        step = self.step_s
        k = min(math.floor((s - tol - mid) / step), math.floor((u.hi + tol - mid) / step))
        if k > u.k:
            u.k = k
            self._fit()

    def add_power(self, t: float, power_w: float, end_s: float | None = None) -> None:
        """An instant-power sample (W) taken at ``t`` (or within a call from ``t`` to
        ``end_s``: dropped when a boundary falls inside it, since it may belong to
        either side)."""
        with self._lock:
            if end_s is not None:
                m = self._marks
                if m and bisect_right(m, end_s) > bisect_right(m, t):
                    return
                t = 0.5 * (t + end_s)
            if self._pt and t <= self._pt[-1]:
                return
            self._pt.append(t)
            self._pw.append(power_w)

    def add_mark(self, t: float) -> None:
        """A phase boundary at ``t``: power is not interpolated across it."""
        marks = self._marks
        if not marks or t > marks[-1]:
            marks.append(t)

    def _append(self, u: _Update) -> None:
        self.changes += 1
        if math.isfinite(u.lo) and u.hi - u.lo < _TIGHT_SHARE * self.step_s:
            self._tight.append(u)
            if len(self._tight) > _TIGHT_KEPT:
                del self._tight[0]
        self._updates.append(u)
        self._times.append(u.hi)
        if len(self._updates) > _MAX_UPDATES:
            self._drop(len(self._updates) - _MAX_UPDATES // 2)

    # -- the update grid ------------------------------------------------------------------

    def _fit(self) -> None:
        """Refine the step and the grid origin from recent brackets; re-estimate times."""
        ups = self._updates
        last = ups[-1]
        if math.isfinite(last.lo) and last.hi - last.lo < 0.02 * self.step_s:
            # the step from two tight brackets far apart (their widths over the span)
            mid = 0.5 * (last.lo + last.hi)
            if self._first_mid is None:
                self._first_mid = (last.k, mid)
            elif last.k - self._first_mid[0] >= 50:
                self.step_s = (mid - self._first_mid[1]) / (last.k - self._first_mid[0])
        step = self.step_s
        window = ups[-_GRID_WINDOW:]
        inside = {id(u) for u in window}
        used = window + [u for u in self._tight if id(u) not in inside]
        shifted = [(u.lo - u.k * step, u.hi - u.k * step) for u in used if math.isfinite(u.lo)]
        if shifted:
            # the grid origin agreed on by most brackets: one bracket whose read was held
            # up (so its instant is off) cannot pull the grid away from the others. The
            # depth can only rise at a bracket's start: at the i-th start (in order) it is
            # the starts up to it less the ends before it; the first deepest start wins
            los = sorted([lo for lo, _ in shifted])
            his = sorted([hi for _, hi in shifted])
            best = 0
            at = los[0]
            for i, x in enumerate(los, 1):
                depth = i - bisect_left(his, x)
                if depth > best:
                    best, at = depth, x
            cover = [(lo, hi) for lo, hi in shifted if lo <= at <= hi]
            self._phi = (max(lo for lo, _ in cover), min(hi for _, hi in cover))
        # re-estimate the recent updates' instants: all of them when the grid moved, else
        # the latest two (the new one, and one whose index a later read raised)
        times = self._times
        start = max(0, len(ups) - len(window))
        if self._fitted != (self._phi, step):
            self._fitted = (self._phi, step)
        else:
            start = max(start, len(ups) - 2)
        for i in range(start, len(ups)):
            times[i] = self._estimate(ups[i])
        for i in range(max(1, start), len(ups)):  # keep them increasing
            if times[i] <= times[i - 1]:
                times[i] = min(ups[i].hi, times[i - 1] + 1e-6)

    def _estimate(self, u: _Update) -> float:
        if self.continuous:
            return u.hi
        lo = u.lo if math.isfinite(u.lo) else u.hi - self.step_s
        if self._phi is not None:
            t = 0.5 * (self._phi[0] + self._phi[1]) + u.k * self.step_s
            tol = self._half_width() + _STAMP_S
            if lo - tol <= t <= u.hi + tol:  # the grid agrees with the bracket
                return t
        if math.isfinite(u.lo):
            return 0.5 * (u.lo + u.hi)
        return u.hi - 0.5 * self.step_s

    def uncertainty_s(self) -> float:
        """Half-width of the interval each update instant is known within (s)."""
        with self._lock:
            return self._half_width()

    def _half_width(self) -> float:
        if self.continuous:
            return 0.0
        if self._phi is not None:
            return 0.5 * (self._phi[1] - self._phi[0])
        return 0.5 * self.step_s

    def next_update(self, after: float) -> tuple[float, float] | None:
        """(predicted instant, half-width) of the first update after ``after``; None
        while the grid is not located."""
        with self._lock:
            if self.continuous or self._phi is None:
                return None
            mid = 0.5 * (self._phi[0] + self._phi[1])
            k = math.floor((after - mid) / self.step_s) + 1
            return mid + k * self.step_s, self._half_width()

    # -- resolution -----------------------------------------------------------------------

    def ready(self, t: float) -> bool:
        """An update certainly after ``t`` was seen: figures at ``t`` are exact."""
        with self._lock:
            ups = self._updates
            if not ups:
                return False
            if self.continuous:
                return ups[-1].hi >= t
            return ups[-1].lo >= t or (len(ups) > 1 and self._times[-2] > t)

    def latest_change_s(self) -> float:
        """Instant of the first read that saw the latest change of the counter (s)."""
        with self._lock:
            return self._updates[-1].hi if self._updates else -math.inf

    def held_from_s(self) -> float:
        """Estimated instant of the latest update (s): once the record is stopped, every
        figure after it is held at that update's value (``-inf`` before any update)."""
        with self._lock:
            return self._times[-1] if self._times else -math.inf

    def latest_read_s(self) -> float:
        """Instant of the latest counter read (s)."""
        with self._lock:
            return self._last_read_s

    def energy_at(self, t: float) -> Figure:
        """Cumulative energy (J, counter units) at instant ``t``."""
        with self._lock:
            ups, times = self._updates, self._times
            if not ups:
                return Figure(0.0, COUNTER, 0.0, False)
            i = bisect_right(times, t) - 1
            if i < 0:  # before the first known update: hold the first value
                return Figure(ups[0].value_j, INTERPOLATED, 0.0, False)
            u = ups[i]
            if times[i] == t or (self.continuous and i + 1 < len(ups) and times[i + 1] == t):
                return Figure(u.value_j, COUNTER, 0.0, True)
            if i + 1 >= len(ups) and self.stopped:  # no more updates will come: held
                return Figure(u.value_j, COUNTER, 0.0, True)
            if i + 1 >= len(ups):  # after the latest update: provisional
                extra = self._provisional_j(times[i], t) if self.has_power and self._pt else 0.0
                return Figure(u.value_j + extra, PLACED, extra, False)
            nxt = ups[i + 1]
            t0, t1 = times[i], times[i + 1]
            delta = nxt.value_j - u.value_j
            hw = 0.0 if self.continuous else self._half_width()
            if self.has_power and self._pt:
                step = self._step_model(t0, t1)
                whole = step.whole_j
                part = step.part(self, t)
                if whole > 0:
                    frac = min(1.0, max(0.0, part / whole))
                    bound = self._bound(step, t, part, hw)
                    return Figure(u.value_j + delta * frac, PLACED, min(bound, delta), True)
            frac = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
            bound = delta * max(frac, 1.0 - frac)
            return Figure(u.value_j + delta * frac, INTERPOLATED, bound, True)

    # -- instant power model ---------------------------------------------------------------

    def _segment(self, t: float) -> tuple[float, float]:
        """The stretch between the boundaries around ``t`` (power is modelled within it)."""
        m = self._marks
        j = bisect_right(m, t)
        return (m[j - 1] if j > 0 else -math.inf, m[j] if j < len(m) else math.inf)

    def _power(self, t: float, seg: tuple[float, float]) -> float:
        """Modelled power (W) at ``t``: linear between samples of its segment, held at its
        ends; the nearest sample when the segment has none."""
        pt, pw = self._pt, self._pw
        i = bisect_right(pt, t)
        a = i - 1 if i > 0 and pt[i - 1] >= seg[0] else None
        b = i if i < len(pt) and pt[i] < seg[1] else None
        if a is not None and b is not None:
            ta, tb = pt[a], pt[b]
            return pw[a] + (pw[b] - pw[a]) * (t - ta) / (tb - ta) if tb > ta else pw[b]
        if a is not None:
            return pw[a]
        if b is not None:
            return pw[b]
        if i <= 0:
            return pw[0]
        if i >= len(pt):
            return pw[-1]
        return pw[i - 1] if t - pt[i - 1] <= pt[i] - t else pw[i]

    def _integral(self, t0: float, t1: float) -> float:
        """Integral (J) of the modelled power from ``t0`` to ``t1``."""
        if t1 <= t0:
            return 0.0
        m = self._marks
        cuts = [t0, *m[bisect_right(m, t0) : bisect_left(m, t1)], t1]
        pt, pw = self._pt, self._pw
        total = 0.0
        for a, b in itertools.pairwise(cuts):
            if b <= a:
                continue
            seg = self._segment(0.5 * (a + b))
            # trapezoids from a through the samples inside to b; the model's power at a
            # sample inside is the sample itself (no boundary lies between a and b)
            x, px = a, self._power(a, seg)
            for k in range(bisect_right(pt, a), bisect_left(pt, b)):
                y, py = pt[k], pw[k]
                if y > x:
                    total += 0.5 * (px + py) * (y - x)
                x, px = y, py
            if b > x:
                total += 0.5 * (px + self._power(b, seg)) * (b - x)
        return total

    def _provisional_j(self, t0: float, t: float) -> float:
        """Integral (J) of the modelled power from the latest update ``t0`` to ``t``.

        Between counter reads seconds apart (a quiet board) the meter asks for this
        every half second over a growing stretch: the part up to the latest sample
        before ``t`` is kept, and the next call integrates on from there (the model up
        to a sample depends on nothing later, unless a boundary came since).
        """
        pt = self._pt
        j = bisect_right(pt, t) - 1
        if j < 0 or pt[j] <= t0:
            return self._integral(t0, t)
        m = self._marks
        key = (t0, len(m), m[-1] if m else -math.inf)
        cached = self._prov
        if cached is not None and cached[0] == key and t0 < cached[1] <= pt[j]:
            done = cached[2] + self._integral(cached[1], pt[j])
        elif cached is not None and cached[0] == key and cached[1] > pt[j]:
            return self._integral(t0, t)  # an earlier instant (the origin): kept as is
        else:
            done = self._integral(t0, pt[j])
        self._prov = (key, pt[j], done)
        return done + self._integral(pt[j], t)

    def _step_model(self, t0: float, t1: float) -> _StepModel:
        """The power model of the stretch from ``t0`` to ``t1``, kept while nothing can
        still change inside it (figures between the same two updates reuse it)."""
        key = (t0, t1)
        model = self._models.get(key)
        if model is not None:
            return model
        model = _StepModel(self, t0, t1)
        if self._pt[-1] > t1 + 0.01:  # later samples and boundaries fall after t1
            if len(self._models) > 64:
                self._models.clear()
            self._models[key] = model
        return model

    def _bound(self, step: _StepModel, t: float, part: float, hw: float) -> float:
        """Error bound (J) of a placement at ``t`` between updates at ``t0`` and ``t1``.

        Two parts, from the step and the power seen in it:

        * timing: each update instant is known within ``hw`` (plus the uncertainty of a
          timestamp), and energy drawn in that stretch may fall on either side: at most
          the highest power seen times the stretch, at both ends;
        * power: where no sample pins the power (before the first sample after a
          boundary, after the last one before it, between two samples that differ), it
          may have been anything between the lowest and the highest power seen; the
          error that moves on either side of ``t`` is weighted by the share of the step
          on the other side (the placement is rescaled to the counter).
        """
        whole = step.whole_j
        timing = step.p_hi_w * 2.0 * (hw + _STAMP_S)
        e1 = step.unseen_before(self, t)
        e2 = step.unseen_j - e1
        return timing + (e1 * max(0.0, whole - part) + e2 * max(0.0, part)) / whole

    def _unseen(self, a: float, b: float, spread_w: float) -> float:
        """Energy (J) the power model may be off by from ``a`` to ``b``: each stretch
        that no pair of equal samples pins counts ``spread_w`` times its length; a
        stretch between two samples that differ by less than :data:`_FLAT_SHARE` of
        the spread counts their difference times its length."""
        if b <= a:
            return 0.0
        m, pt, pw = self._marks, self._pt, self._pw
        cuts = [a, *m[bisect_right(m, a) : bisect_left(m, b)], b]
        total = 0.0
        for x, y in itertools.pairwise(cuts):
            if y <= x:
                continue
            s0, s1 = self._segment(0.5 * (x + y))
            i = bisect_left(pt, max(s0, x))
            j = bisect_right(pt, min(s1, y))
            # the segment's samples around [x, y]: one before x and one after y if in it
            if i > 0 and pt[i - 1] >= s0:
                i -= 1
            if j < len(pt) and pt[j] < s1:
                j += 1
            if i >= j:  # no sample in the segment: nothing pins its power
                total += spread_w * (y - x)
                continue
            if pt[i] > x:  # held from the first sample back to the segment's start
                total += spread_w * (min(pt[i], y) - x)
            if pt[j - 1] < y:  # held from the last sample on to the segment's end
                total += spread_w * (y - max(pt[j - 1], x))
            for k in range(i, j - 1):
                lo, hi = max(pt[k], x), min(pt[k + 1], y)
                if hi <= lo:
                    continue
                diff = abs(pw[k + 1] - pw[k])
                total += (spread_w if diff > _FLAT_SHARE * spread_w else diff) * (hi - lo)
        return total

    # -- memory ---------------------------------------------------------------------------

    def trim(self, before: float) -> None:
        """Forget what no figure at or after ``before`` needs."""
        with self._lock:
            i = bisect_right(self._times, before) - 2
            if i > 0:
                self._drop(i)
            cut = self._times[0] if self._times else before
            j = max(0, bisect_left(self._pt, cut) - 1)
            if j:
                del self._pt[:j], self._pw[:j]
            j = bisect_left(self._marks, cut)
            if j > 256:  # a shared list: trimmed rarely, by whoever comes first
                del self._marks[: j // 2]

    def _drop(self, n: int) -> None:
        del self._updates[:n], self._times[:n]
