"""Shared by the fake-GPU phase tests: waiting for a due instant, and what a boundary
that lands late can move.

The tests drive phases whose boundaries are due at the instants the trace changes power.
On a loaded machine a boundary can land a few milliseconds late (or early): the power then
changed inside the neighbouring phase, where no instant-power sample may see it before the
boundary. :func:`late_boundary_allowance_j` is the energy that alone can move, so accuracy
limits are checked on the error beyond it; the reported bound must still hold the whole
error.
"""

from __future__ import annotations

import time

from greenmeter.testing import PowerTrace


def wait_until(t: float) -> None:
    """Return at monotonic instant ``t``: sleep to 2 ms before it, then spin."""
    while time.monotonic() < t - 0.002:
        time.sleep(0.001)
    while time.monotonic() < t:
        pass


def late_boundary_allowance_j(
    trace: PowerTrace, a: float, b: float, window_s: float = 0.015
) -> float:
    """Joules a phase from ``a`` to ``b`` can be off because its boundaries are not at
    the trace's power changes: for each change within ``window_s`` of either boundary,
    the power step times the distance between the two."""
    changes = []
    t = trace.t0
    before = 0.0
    for d, p in trace.steps:  # a trace that does not repeat: its changes, in order
        changes.append((t, abs(p - before)))
        before = p
        t += d
    total = 0.0
    for edge in (a, b):
        for c, jump in changes:
            if abs(edge - c) <= window_s:
                total += jump * abs(edge - c)
    return total
