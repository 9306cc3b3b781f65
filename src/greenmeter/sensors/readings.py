"""Building blocks shared by the GPU sensors: timed calls, counter steps, wraps, sampling.

* :func:`timed`: run a driver call and keep the longest time it took, by name;
  :func:`slow_calls` lists the slow ones.
* :func:`measure_update_steps`: how often each of several counters really changes.
* :class:`WrappingCounter`: cumulative joules from a raw hardware accumulator that can
  wrap at 2^32 or 2^64 counts, jump back, or restart at zero.
* :class:`PowerIntegrator`: energy from power samples, trapezoid rule, each sample
  stamped at the middle of the call that took it.

Times are ``time.monotonic()`` seconds, energies joules, powers watts.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CounterEvent",
    "PowerIntegrator",
    "WrappingCounter",
    "measure_update_steps",
    "slow_calls",
    "timed",
]


def timed(costs: dict[str, float], name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, keeping in ``costs[name]`` the longest time (s) a call took."""
    t = time.perf_counter()
    try:
        return fn(*args)
    finally:
        costs[name] = max(costs.get(name, 0.0), time.perf_counter() - t)


def slow_calls(costs: Mapping[str, float], threshold_s: float, skip: str = "") -> str | None:
    """``"f 12.3 ms, g 15.0 ms"``: the calls in ``costs`` slower than ``threshold_s``.

    None when there is none; ``skip`` names a call left out (a library's one-off init).
    """
    slow = {k: v for k, v in costs.items() if k != skip and v > threshold_s}
    if not slow:
        return None
    return ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in sorted(slow.items()))


def measure_update_steps(
    readers: Mapping[str, Callable[[], Hashable]],
    initial: Mapping[str, Hashable],
    *,
    budget_s: float,
    changes: int,
    sleep_s: float = 0.001,
    max_relative_error: float | None = None,
) -> dict[str, float | None]:
    """Observed update step (s) of each counter, None where no two changes were seen.

    Calls every reader about every ``sleep_s`` for at most ``budget_s`` seconds, and
    stops reading one once it changed ``changes`` times. A reader that raises is dropped.
    Each change lies between the last read that saw the old value and the first that
    saw the new one; the step is the median time between the middles of those brackets.

    With ``max_relative_error``, the step is the time from the first to the last change
    over the steps between when it is known that well (the brackets of those two changes,
    spread over the steps, narrower than that share of the step); else the median of
    the gaps when there are two or more, and None from a single gap seen that coarsely
    (slow reads of many counters in turn see a 100 ms counter change once or twice in
    a short budget, each change known within tens of milliseconds).
    A counter that changed at every read is given as measured: it moves at least that
    fast (a counter that is read continuously).
    """
    seen: dict[str, list[tuple[float, float]]] = {key: [] for key in readers}
    last = dict(initial)
    before: dict[str, float] = {}
    reads: dict[str, int] = {}
    live = list(readers)
    deadline = time.monotonic() + budget_s
    while live and time.monotonic() < deadline:
        for key in list(live):
            t_a = time.monotonic()
            try:
                value = readers[key]()
            except Exception:
                live.remove(key)
                continue
            t = time.monotonic()
            reads[key] = reads.get(key, 0) + 1
            if value != last.get(key):
                last[key] = value
                # a change seen by the first read came at an unknown instant before it
                seen[key].append((before.get(key, -math.inf), t))
                if len(seen[key]) >= changes:
                    live.remove(key)
            before[key] = t_a
        time.sleep(sleep_s)
    out: dict[str, float | None] = {}
    for key, changed in seen.items():
        mids = [0.5 * (lo + hi) if math.isfinite(lo) else hi for lo, hi in changed]
        gaps = [b - a for a, b in itertools.pairwise(mids)]
        step = statistics.median(gaps) if gaps else None
        brackets = [(lo, hi) for lo, hi in changed if math.isfinite(lo)]
        every_read = len(brackets) >= reads.get(key, 0) - 1  # it moves faster than that
        if step is not None and max_relative_error is not None and not every_read:
            if len(brackets) < 2:
                out[key] = None
                continue
            # first to last change: the two brackets' widths spread over the steps between
            n = len(brackets) - 1
            (lo0, hi0), (lo1, hi1) = brackets[0], brackets[-1]
            whole = 0.5 * ((lo1 + hi1) - (lo0 + hi0)) / n
            spread = 0.5 * ((hi0 - lo0) + (hi1 - lo1)) / n
            if whole > 0 and spread <= max_relative_error * whole:
                step = whole
            elif n < 2:  # one coarse gap: nothing to go by
                step = None
        out[key] = step
    return out


@dataclass(frozen=True)
class CounterEvent:
    """Something a :class:`WrappingCounter` noticed on an update.

    Attributes:
        kind: ``"wrap"`` (counted across the wrap), ``"backward"`` (a small step back:
            that reading was ignored), ``"reset"`` (restarted near zero: counting goes on
            from the new value) or ``"jump"`` (a forward step larger than the board
            could draw: not counted).
        raw_before: The counter before, in counts.
        raw_after: The counter read, in counts.
        bits: The width the wrap was taken at (``"wrap"`` only), else None.
    """

    kind: str
    raw_before: int
    raw_after: int
    bits: int | None = None


class WrappingCounter:
    """Cumulative joules from a raw energy accumulator read now and then.

    A step from ``raw_before`` to ``raw_after`` is taken modulo 2^32 when the counter is
    still below 2^32 (older firmware keeps a 32-bit count), else modulo 2^64, and it is
    accepted when at most ``max_power_w`` x the time since the counter last changed
    (+ ``slack_s``) could have produced it; measuring from the last change, not the last
    read, lets a counter that stalled and then caught up be counted whole. Otherwise the
    reading is a glitch or a restart: a small step back is ignored (the next reading
    usually carries on), a step back larger than that is a restart (counting resumes from
    the new value; the energy between the two reads is lost), and an implausibly large
    forward step is not counted.

    Args:
        raw: The first reading, in counts.
        t: Its ``time.monotonic()`` instant.
        joules_per_count: The counter's resolution (J per count).
        max_power_w: The most the device can plausibly draw (W).
        slack_s: Extra time allowed on top of the gap between reads (s): the counter's
            update step, or a little more.
    """

    def __init__(
        self,
        raw: int,
        t: float,
        joules_per_count: float,
        max_power_w: float,
        slack_s: float = 0.05,
    ) -> None:
        self.raw = int(raw)
        self.t = t
        self.joules_per_count = float(joules_per_count)
        self.max_power_w = float(max_power_w)
        self.slack_s = float(slack_s)
        self.energy_j = 0.0
        self.wraps = 0

    def guard_period_s(self, bits: int = 32) -> float:
        """Longest gap between reads (s) at which a ``bits``-bit wrap is still unambiguous.

        A quarter of the time the counter takes to run through its whole range at
        ``max_power_w``, as for RAPL.
        """
        return (2**bits) * self.joules_per_count / (4.0 * self.max_power_w)

    def update(
        self, raw: int, t: float, joules_per_count: float | None = None
    ) -> CounterEvent | None:
        """Take a reading; returns what was noticed, or None for an ordinary step."""
        raw = int(raw)
        if joules_per_count is not None:
            self.joules_per_count = float(joules_per_count)
        before = self.raw
        budget_j = self.max_power_w * (max(t - self.t, 0.0) + self.slack_s)
        step = raw - before
        if step >= 0 and step * self.joules_per_count <= budget_j:
            self._accept(raw, t, step)
            return None
        if step < 0:
            for bits in (32, 64):
                if before >= 2**bits:
                    continue
                wrapped = (raw - before) % (2**bits)
                if wrapped * self.joules_per_count <= budget_j:
                    self._accept(raw, t, wrapped)
                    self.wraps += 1
                    return CounterEvent("wrap", before, raw, bits)
            if (before - raw) * self.joules_per_count <= budget_j:
                return CounterEvent("backward", before, raw)  # keep the last reading
            self.raw, self.t = raw, t
            return CounterEvent("reset", before, raw)
        self.raw, self.t = raw, t
        return CounterEvent("jump", before, raw)

    def _accept(self, raw: int, t: float, counts: int) -> None:
        self.energy_j += counts * self.joules_per_count
        if raw != self.raw:
            self.raw, self.t = raw, t


@dataclass
class PowerIntegrator:
    """Energy (J) from power samples (W), trapezoid rule between consecutive samples.

    Attributes:
        energy_j: Joules integrated so far.
        last_t: ``time.monotonic()`` instant of the last sample, None before the first.
        last_w: The last sample (W).
    """

    energy_j: float = 0.0
    last_t: float | None = None
    last_w: float = 0.0

    def add(self, t: float, power_w: float) -> None:
        """Add a sample taken at ``t``; a sample not later than the last one is dropped."""
        if self.last_t is not None:
            if t <= self.last_t:
                return
            self.energy_j += 0.5 * (power_w + self.last_w) * (t - self.last_t)
        self.last_t, self.last_w = t, power_w

    def sample(self, read_w: Callable[[], float]) -> None:
        """Call ``read_w`` and add its value, stamped at the middle of the call.

        Exceptions from ``read_w`` propagate (nothing is added).
        """
        before = time.monotonic()
        power_w = read_w()
        self.add(0.5 * (before + time.monotonic()), power_w)
