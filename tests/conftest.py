"""Shared pytest fixtures. Each section belongs to one part of the suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

# ======================================================================================
# Emulated powercap (RAPL) tree: used by test_powercap_emulator, test_rapl, test_pyrapl,
# test_discover.
# ======================================================================================
from greenmeter.testing.powercap import EmulatedPowercap
from greenmeter.testing.trace import PowerTrace

#: Three power levels (W) per package, one-second period; socket 1 differs from socket 0.
PACKAGE_STEPS = (
    [(0.25, 35.0), (0.35, 110.0), (0.40, 65.0)],
    [(0.20, 90.0), (0.30, 20.0), (0.50, 55.0)],
)
DRAM_STEPS = (
    [(0.30, 6.0), (0.30, 14.0), (0.40, 9.0)],
    [(0.50, 11.0), (0.25, 4.0), (0.25, 8.0)],
)
#: Small wrap point (50 J): at these powers a package wraps more than once a second.
SMALL_RANGE_UJ = 50_000_000


@pytest.fixture
def make_powercap() -> Iterator[Callable[..., EmulatedPowercap]]:
    """Factory for :class:`EmulatedPowercap` trees that are closed after the test."""
    made: list[EmulatedPowercap] = []

    def factory(*args: object, **kwargs: object) -> EmulatedPowercap:
        pc = EmulatedPowercap(*args, **kwargs)  # type: ignore[arg-type]
        made.append(pc)
        return pc

    yield factory
    for pc in made:
        pc.close()


def stepped_traces(t0: float | None = None) -> dict[str, list[PowerTrace]]:
    """Package and DRAM traces for two sockets, all anchored at one instant."""
    t0 = time.monotonic() if t0 is None else t0
    return {
        "package_traces": [PowerTrace(s, t0=t0) for s in PACKAGE_STEPS],
        "dram_traces": [PowerTrace(s, t0=t0) for s in DRAM_STEPS],
    }


@pytest.fixture
def rapl_tree(make_powercap: Callable[..., EmulatedPowercap]) -> EmulatedPowercap:
    """Two packages with core/uncore/dram subzones, a psys zone, a 50 J wrap point.

    ``tdp_w=60`` publishes 75 W constraints, so the sensor's plausible maximum is 150 W
    (above the 110 W peak) and its wrap-guard period is 50 J / (4 x 150 W) = 83 ms.
    """
    t0 = time.monotonic()
    return make_powercap(
        **stepped_traces(t0),
        psys_trace=PowerTrace([(0.5, 200.0), (0.5, 150.0)], t0=t0),
        max_energy_range_uj=SMALL_RANGE_UJ,
        tdp_w=60.0,
        psys_max_power_w=150.0,
    )


class Poller:
    """Calls ``sensor.poll`` from a thread, as the meter's sampler does."""

    def __init__(self, sensor: object, interval_s: float) -> None:
        self._sensor = sensor
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sensor.poll(time.monotonic())  # type: ignore[attr-defined]

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


def timed_read(
    sensor: object,
    max_cost_s: float = 0.0005,
    tree: EmulatedPowercap | None = None,
    max_lag_s: float = 0.002,
) -> tuple[float, dict[str, float]]:
    """``(instant, sensor.read(instant))``, retried when the read was preempted.

    On a busy machine the test thread can be descheduled between taking the instant and
    reading the counters; such reads are retried so the instant really is the boundary.
    With ``tree``, a read is also retried while the emulator's counters are more than
    ``max_lag_s`` behind the instant (its updater process was held up): what is then
    measured is the emulator's lag, not the sensor. Gives up after about 0.1 s.
    """
    deadline = time.monotonic() + 0.1
    while True:
        published = tree.published_mono() if tree is not None else None
        t = time.monotonic()
        values = sensor.read(t)  # type: ignore[attr-defined]
        cheap = time.monotonic() - t <= max_cost_s
        fresh = published is None or t - published <= max_lag_s
        if (cheap and fresh) or time.monotonic() > deadline:
            return t, values
        if not fresh:
            time.sleep(0.0005)  # let the updater catch up


@pytest.fixture
def poller() -> Callable[[object, float], Poller]:
    """``with poller(sensor, interval_s): ...`` runs the sensor's wrap guard."""
    return Poller


# ======================================================================================
# End of the emulated powercap section.
# ======================================================================================
