"""Piecewise-constant power traces: the ground truth of the emulated hardware.

A :class:`PowerTrace` is a list of ``(duration_s, power_w)`` steps anchored at a
``time.monotonic()`` instant ``t0``. Before ``t0`` the power is zero; after the last
step the trace either repeats (``repeat=True``) or holds the last power. The emulated
powercap tree and the fake NVML library both evaluate traces on this one time base,
so the energy any reader should see between two instants is known exactly.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["PowerTrace"]


@dataclass
class PowerTrace:
    """Power in watts as a step function of monotonic time.

    Args:
        steps: ``(duration_s, power_w)`` pairs; durations > 0, powers >= 0.
        t0: The ``time.monotonic()`` instant the first step begins (default: now).
        repeat: Repeat the steps forever after the last one (else hold the last power).
    """

    steps: Sequence[tuple[float, float]]
    t0: float = field(default_factory=time.monotonic)
    repeat: bool = True

    def __post_init__(self) -> None:
        steps = [(float(d), float(p)) for d, p in self.steps]
        if not steps:
            raise ValueError("PowerTrace needs at least one (duration_s, power_w) step")
        for d, p in steps:
            if not (math.isfinite(d) and d > 0):
                raise ValueError(f"step duration must be a positive number of seconds, got {d!r}")
            if not (math.isfinite(p) and p >= 0):
                raise ValueError(f"step power must be a non-negative number of watts, got {p!r}")
        self.steps = steps
        self._starts: list[float] = []
        self._cum: list[float] = []  # energy (J) at the start of each step
        t = e = 0.0
        for d, p in steps:
            self._starts.append(t)
            self._cum.append(e)
            t += d
            e += d * p
        self.period_s = t
        self.period_energy_j = e

    @classmethod
    def constant(cls, power_w: float, t0: float | None = None) -> PowerTrace:
        """A trace that draws ``power_w`` forever."""
        return cls([(3600.0, power_w)], t0=time.monotonic() if t0 is None else t0)

    def power_w(self, t: float) -> float:
        """Power (W) at monotonic instant ``t``."""
        x = t - self.t0
        if x < 0:
            return 0.0
        if x >= self.period_s:
            if not self.repeat:
                return self.steps[-1][1]
            x = math.fmod(x, self.period_s)
        i = bisect_right(self._starts, x) - 1
        return self.steps[i][1]

    def cumulative_j(self, t: float) -> float:
        """Exact energy (J) drawn from ``t0`` up to monotonic instant ``t``."""
        x = t - self.t0
        if x <= 0:
            return 0.0
        base = 0.0
        if x >= self.period_s:
            if not self.repeat:
                return self.period_energy_j + (x - self.period_s) * self.steps[-1][1]
            n = math.floor(x / self.period_s)
            base = n * self.period_energy_j
            x -= n * self.period_s
        i = bisect_right(self._starts, x) - 1
        return base + self._cum[i] + (x - self._starts[i]) * self.steps[i][1]

    def energy_j(self, t_a: float, t_b: float) -> float:
        """Exact energy (J) between monotonic instants ``t_a`` and ``t_b``."""
        return self.cumulative_j(t_b) - self.cumulative_j(t_a)

    def to_rows(self) -> list[tuple[float, float]]:
        """The steps as plain ``(duration_s, power_w)`` tuples (for files and C code)."""
        return [(d, p) for d, p in self.steps]

    @staticmethod
    def from_rows(rows: Iterable[Sequence[float]], t0: float, repeat: bool = True) -> PowerTrace:
        """Rebuild a trace from :meth:`to_rows` output."""
        steps = []
        for i, row in enumerate(rows):
            if len(row) != 2:
                raise ValueError(f"row {i} must be (duration_s, power_w), got {list(row)!r}")
            steps.append((float(row[0]), float(row[1])))
        return PowerTrace(steps, t0=t0, repeat=repeat)
