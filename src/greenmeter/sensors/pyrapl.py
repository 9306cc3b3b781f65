"""Optional backend over pyRAPL, for users who already rely on it.

pyRAPL (https://github.com/powerapi-ng/pyRAPL) reads the same powercap ``energy_uj``
counters as :mod:`greenmeter.sensors.rapl`, but from the hard-coded path
``/sys/class/powercap`` and without any handling of counter wraps: a difference across a
wrap comes out negative. This sensor reads pyRAPL's raw values and adds greenmeter's
wrap guard (:class:`~greenmeter.sensors.rapl.CounterTracker`, with each zone's
``max_energy_range_uj`` and the same polling rule), so its components behave exactly like
``rapl:*`` ones. Components: ``pyrapl:package-N`` and ``pyrapl:dram-N``.

The direct :mod:`~greenmeter.sensors.rapl` sensor is preferred: it honours
``GREENMETER_POWERCAP_ROOT``, reads with one ``pread`` per zone, handles multi-die
packages and never needs pyRAPL. Use this one with ``discover(use_pyrapl=True)``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentKind,
    Method,
    Scope,
    Sensor,
    Unavailable,
)
from greenmeter.sensors.rapl import (
    DEFAULT_MAX_POWER_W,
    DEFAULT_ROOT,
    MIN_POLL_INTERVAL_S,
    RESET,
    RESOLUTION_S,
    CounterTracker,
    _plausible_max_w,
    find_zones,
    permission_fix,
    plan_components,
    poll_interval_for,
)

__all__ = ["PYRAPL_ROOT", "PyRaplSensor", "probe"]

#: The root pyRAPL always reads (it has no setting for another one).
PYRAPL_ROOT = DEFAULT_ROOT
#: Used when a zone's ``max_energy_range_uj`` cannot be read (the common Intel value).
FALLBACK_RANGE_UJ = 262_143_328_850


def _import_pyrapl() -> Any:
    """Import pyRAPL without its import-time warnings about optional outputs."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        import pyRAPL
        import pyRAPL.sensor
    finally:
        logging.disable(previous)
    return pyRAPL


class PyRaplSensor(Sensor):
    """pyRAPL's package and DRAM counters with greenmeter's wrap guard.

    Args:
        pyrapl_sensor: A ``pyRAPL.sensor.Sensor``.
        slots: ``(component id, index into pyRAPL's energy() tuple, range_uj,
            plausible max W, socket, label, kind, scope)`` for each component.
        host: Hostname recorded in the components.
    """

    name = "pyrapl"

    def __init__(
        self,
        pyrapl_sensor: Any,
        slots: list[tuple[str, int, int, float, int, str, ComponentKind, Scope]],
        *,
        host: str | None = None,
    ) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._ps = pyrapl_sensor
        self._host = host or socket.gethostname()
        first = list(pyrapl_sensor.energy())
        t = time.monotonic()
        self._slots: list[tuple[str, int, CounterTracker]] = []
        self._infos: list[ComponentInfo] = []
        periods = []
        try:
            from greenmeter.sensors.estimate import cpu_model_name

            model = cpu_model_name()
        except Exception:  # pragma: no cover - decoration only
            model = ""
        for cid, idx, range_uj, pmax, sock, label, kind, scope in slots:
            self._slots.append((cid, idx, CounterTracker(range_uj, pmax, int(first[idx]), t)))
            periods.append(poll_interval_for(range_uj, pmax))
            self._infos.append(
                ComponentInfo(
                    id=cid,
                    kind=kind,
                    scope=scope,
                    method=Method.COUNTER,
                    sensor="pyrapl",
                    label=label,
                    host=self._host,
                    resolution_s=RESOLUTION_S,
                    detail={
                        "socket": str(sock),
                        "zone_path": PYRAPL_ROOT,
                        "cpu_model": model,
                        "max_energy_range_uj": str(range_uj),
                        "plausible_max_power_w": f"{pmax:g}",
                        "reader": "pyRAPL " + _pyrapl_version(),
                    },
                )
            )
        self._dead = False
        self.poll_interval_s = max(MIN_POLL_INTERVAL_S, min(periods)) if periods else None

    def components(self) -> list[ComponentInfo]:
        return list(self._infos)

    def _sample(self) -> None:
        if self._dead:
            return
        try:
            values = self._ps.energy()
        except Exception as exc:  # pyRAPL raises whatever the file read raises
            self._dead = True
            now = time.monotonic()
            for cid, _idx, _tr in self._slots:
                self.degrade(
                    cid, f"pyRAPL could not read the counters: {exc!r}", "pyrapl.read_failed", now
                )
            return
        t = time.monotonic()
        for cid, idx, tr in self._slots:
            raw = int(values[idx])
            if raw < 0:  # pyRAPL's marker for "no value"
                continue
            if tr.update(raw, t) == RESET:
                self.warn(
                    "rapl.counter_reset",
                    f"the RAPL counter behind {cid} went backwards by more than a wrap can "
                    "explain (driver reload or firmware reset); energy since the previous read "
                    "is missing.",
                    cid,
                    t,
                )

    def read(self, now: float) -> dict[str, float]:
        """Cumulative joules per component since the sensor was opened."""
        with self._lock:
            self._sample()
            return {cid: tr.total_uj * 1e-6 for cid, _idx, tr in self._slots}

    def poll(self, now: float) -> None:
        """The wrap guard: read often enough that no wrap is missed."""
        with self._lock:
            self._sample()

    def wrap_counts(self) -> dict[str, int]:
        """Counter wraps seen per component."""
        with self._lock:
            return {cid: tr.wraps for cid, _idx, tr in self._slots}


def _pyrapl_version() -> str:
    try:
        from importlib.metadata import version

        return version("pyRAPL")
    except Exception:
        return "unknown"


def probe(
    host: str | None = None,
    *,
    include_dram: bool = True,
    max_power_w: float | None = None,
) -> tuple[PyRaplSensor | None, list[Unavailable]]:
    """Build a :class:`PyRaplSensor` if pyRAPL is installed and can read the counters.

    Args:
        host: Hostname for the components (default this machine's).
        include_dram: Also measure DRAM where pyRAPL finds it.
        max_power_w: Plausible maximum power per zone (W), overriding the constraints.

    Returns:
        The sensor or None, and an :class:`Unavailable` for what is not measured.
        Never raises for a measurement problem.
    """
    try:
        pyrapl = _import_pyrapl()
    except ImportError as exc:
        return None, [
            Unavailable(
                "pyrapl",
                ComponentKind.CPU,
                f"pyRAPL is not installed ({exc})",
                "pip install 'greenmeter[pyrapl]'",
            )
        ]
    if not os.path.isdir(PYRAPL_ROOT):
        return None, [
            Unavailable(
                "pyrapl",
                ComponentKind.CPU,
                f"pyRAPL reads only {PYRAPL_ROOT}, which does not exist here (no RAPL driver, "
                "or a container or VM that hides it)",
                "on bare-metal Linux: sudo modprobe intel_rapl_msr",
            )
        ]
    devices = [pyrapl.Device.PKG] + ([pyrapl.Device.DRAM] if include_dram else [])
    try:
        ps = pyrapl.sensor.Sensor(devices=None if include_dram else devices)
        values = list(ps.energy())
    except PermissionError as exc:
        return None, [
            Unavailable(
                "pyrapl",
                ComponentKind.CPU,
                f"pyRAPL cannot read {exc.filename or 'energy_uj'}: root-only since Linux 5.10 "
                "(CVE-2020-8694)",
                permission_fix(PYRAPL_ROOT),
            )
        ]
    except Exception as exc:  # pyRAPL's own exceptions, or OSError from its file reads
        return None, [
            Unavailable(
                "pyrapl",
                ComponentKind.CPU,
                f"pyRAPL could not open the RAPL counters: {type(exc).__name__}: {exc}",
                "check the RAPL zones under /sys/class/powercap (greenmeter doctor), or use "
                "the built-in RAPL sensor",
            )
        ]
    plan = plan_components(find_zones(PYRAPL_ROOT))
    zones_by_cid = plan.components
    slots = []
    unavailable: list[Unavailable] = []
    n_sockets = len(values) // 2
    for sock in range(n_sockets):
        for offset, label_kind in ((0, "package"), (1, "dram")):
            idx = sock * 2 + offset
            if values[idx] < 0:
                if label_kind == "dram" and include_dram:
                    unavailable.append(
                        Unavailable(
                            "pyrapl",
                            ComponentKind.DRAM,
                            f"pyRAPL found no dram zone for package {sock}",
                            None,
                        )
                    )
                continue
            zones = zones_by_cid.get(f"rapl:{label_kind}-{sock}", [])
            if zones:
                range_uj = zones[0].max_energy_range_uj or FALLBACK_RANGE_UJ
                pmax = _plausible_max_w(zones[0], max_power_w)
            else:
                range_uj = FALLBACK_RANGE_UJ
                pmax = max_power_w or DEFAULT_MAX_POWER_W[label_kind]
            if label_kind == "package":
                slots.append(
                    (
                        f"pyrapl:package-{sock}",
                        idx,
                        range_uj,
                        pmax,
                        sock,
                        f"CPU package {sock} (pyRAPL)",
                        ComponentKind.CPU,
                        Scope.CPU_PACKAGE,
                    )
                )
            else:
                slots.append(
                    (
                        f"pyrapl:dram-{sock}",
                        idx,
                        range_uj,
                        pmax,
                        sock,
                        f"DRAM of package {sock} (pyRAPL)",
                        ComponentKind.DRAM,
                        Scope.DRAM,
                    )
                )
    if not slots:
        return None, [
            Unavailable("pyrapl", ComponentKind.CPU, "pyRAPL found no package counter", None)
        ]
    try:
        return PyRaplSensor(ps, slots, host=host), unavailable
    except Exception as exc:
        return None, [
            *unavailable,
            Unavailable("pyrapl", ComponentKind.CPU, f"pyRAPL failed on first read: {exc!r}", None),
        ]
