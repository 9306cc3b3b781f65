"""Shared by the fake-GPU phase tests: waiting for a due instant, and what a boundary
that lands late can move.

The tests drive phases whose boundaries are due at the instants the trace changes power.
On a loaded machine a boundary can land a few milliseconds late (or early): the power then
changed inside the neighbouring phase, where no instant-power sample may see it before the
boundary (or one did, and the step is spread back to the sample before it).
:func:`late_boundary_allowance_j` is the energy that alone can move, so accuracy limits are
checked on the error beyond it; the reported bound must still hold the whole error.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from greenmeter.testing import PowerTrace


def wait_until(t: float) -> None:
    """Return at monotonic instant ``t``: sleep to 2 ms before it, then spin."""
    while time.monotonic() < t - 0.002:
        time.sleep(0.001)
    while time.monotonic() < t:
        pass


#: Energy is rescaled to the counter over each stretch between two of its updates, one step
#: (100 ms) long, or two when a held-up read missed an update: a boundary this close to a
#: phase's own shares a stretch with it.
SHARED_S = 0.2


def late_boundary_allowance_j(
    trace: PowerTrace,
    a: float,
    b: float,
    window_s: float = 0.015,
    samples: Sequence[float] | None = None,
    edges: Sequence[float] = (),
) -> float:
    """Joules a phase from ``a`` to ``b`` can be off because its boundaries are not at
    the trace's power changes: for each change within ``window_s`` of either boundary,
    the power step times the distance between the two.

    With ``samples`` (one board's instant-power sample instants, in order): where a
    sample lies between a change and a boundary that came after it (before it), it saw
    the new (old) power on the wrong side of the boundary, and power between samples is
    interpolated linearly, so the step is spread back to the sample before it (on to the
    sample after it): the distance counts from that sample instead.

    ``edges``: the run's other boundary instants. What one of them within
    :data:`SHARED_S` of ``a`` or ``b`` moves is rescaled over a stretch this phase shares,
    so it counts too."""
    changes = []
    t = trace.t0
    before = 0.0
    for d, p in trace.steps:  # a trace that does not repeat: its changes, in order
        changes.append((t, abs(p - before)))
        before = p
        t += d
    near = {a, b} | {e for e in edges if min(abs(e - a), abs(e - b)) <= SHARED_S}
    total = 0.0
    for edge in near:
        for c, jump in changes:
            reach = abs(edge - c)
            if reach > window_s:
                continue
            if samples:
                i = bisect_left(samples, min(edge, c))
                j = bisect_right(samples, max(edge, c))
                if j > i and edge > c:  # a sample saw the new power before the boundary
                    reach = edge - (samples[i - 1] if i > 0 else c)
                elif j > i:  # one saw the old power after it
                    reach = (samples[j] if j < len(samples) else c) - edge
            total += jump * reach
    return total
