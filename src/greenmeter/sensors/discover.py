"""Which energy sources this host offers, the best one per component, and why not the rest.

Order of preference:

* CPU packages: RAPL counters (:mod:`greenmeter.sensors.rapl`), else pyRAPL when asked
  (``use_pyrapl=True``), else the labelled estimate (:class:`EstimateSensor`).
* DRAM: the RAPL ``dram`` counters, else an estimate of installed RAM.
* GPUs: NVIDIA boards through NVML (:mod:`greenmeter.sensors.nvml`) and AMD boards
  through AMD SMI (:mod:`greenmeter.sensors.amd`), each by energy counter or sampled
  power. Both are probed; a host with GPUs of both vendors gets both sensors.

With ``count_host=False`` (every rank but one per host in a distributed run) CPU and DRAM
are skipped, since another rank on the same host counts them. Every source that is not
used appears in :attr:`Discovery.unavailable` with a reason and, where one exists, a fix.
Discovery never raises for a measurement problem.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from greenmeter.sensors.base import ComponentKind, Sensor, Unavailable

__all__ = ["Discovery", "discover"]

#: GPU sources, probed in this order: (sensor name, module with ``probe()``, library).
_GPU_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("nvml", "greenmeter.sensors.nvml", "NVML"),
    ("amdsmi", "greenmeter.sensors.amd", "AMD SMI"),
)


@dataclass
class Discovery:
    """The sensors chosen for this host and the sources left out.

    Attributes:
        sensors: Sensors to read, each owning distinct components.
        unavailable: Sources considered and not used, with reason and fix.
    """

    sensors: list[Sensor] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)

    def close(self) -> None:
        """Close every sensor (idempotent)."""
        for s in self.sensors:
            try:
                s.close()
            except Exception:
                pass


def _kinds(sensor: Sensor) -> set[ComponentKind]:
    return {c.kind for c in sensor.components()}


def discover(
    *,
    powercap_root: str | os.PathLike[str] | Path | None = None,
    gpus: Sequence[int | str] | None = None,
    cpu: bool = True,
    gpu: bool = True,
    sample_interval_s: float = 0.1,
    count_host: bool = True,
    host: str | None = None,
    use_pyrapl: bool = False,
    include_psys: bool = False,
    estimate_scope: str | Callable[[], str] = "machine",
) -> Discovery:
    """Probe the energy sources of this host and pick the best per component.

    Args:
        powercap_root: Powercap tree to read (default ``$GREENMETER_POWERCAP_ROOT`` or
            ``/sys/class/powercap``).
        gpus: GPUs to measure (indices or UUIDs); None: those visible to this process.
            Each vendor's sensor takes the entries it can match: an index selects that
            device of each vendor, a UUID the one board that has it.
        cpu: Measure CPU and memory.
        gpu: Measure GPUs.
        sample_interval_s: Sampling period for sampled GPU power (s).
        count_host: Count CPU and DRAM on this rank (False on all ranks but one per host).
        host: Hostname recorded on the components.
        use_pyrapl: Try pyRAPL when the direct RAPL reader finds no counters.
        include_psys: Also measure the RAPL ``psys`` zone (separately from the packages).
        estimate_scope: ``"machine"`` or ``"process"`` for the CPU/RAM estimate, or a
            function giving it (called only when an estimate is needed).

    Returns:
        A :class:`Discovery`.
    """
    found = Discovery()
    if cpu and count_host:
        _discover_host(found, powercap_root, host, use_pyrapl, include_psys, estimate_scope)
    elif cpu:
        for sensor_name, kind in (("rapl", ComponentKind.CPU), ("rapl", ComponentKind.DRAM)):
            found.unavailable.append(
                Unavailable(
                    sensor_name,
                    kind,
                    "count_host=False: another rank on this host counts CPU and memory, so this "
                    "rank does not (they would be counted twice)",
                    None,
                )
            )
    else:
        found.unavailable.append(
            Unavailable(
                "rapl",
                ComponentKind.CPU,
                "CPU measurement switched off (cpu=False)",
                "pass cpu=True",
            )
        )
    if gpu:
        for sensor_name, module, library in _GPU_SOURCES:
            _discover_gpus(found, sensor_name, module, library, gpus, sample_interval_s, host)
    else:
        found.unavailable.extend(
            Unavailable(
                sensor_name,
                ComponentKind.GPU,
                "GPU measurement switched off (gpu=False)",
                "pass gpu=True",
            )
            for sensor_name, _, _ in _GPU_SOURCES
        )
    return found


def _discover_host(
    found: Discovery,
    powercap_root: str | os.PathLike[str] | None,
    host: str | None,
    use_pyrapl: bool,
    include_psys: bool,
    estimate_scope: str | Callable[[], str],
) -> None:
    from greenmeter.sensors import rapl

    cpu_sensor: Sensor | None = None
    try:
        cpu_sensor, why = rapl.probe(powercap_root, include_psys=include_psys, host=host)
    except Exception as exc:  # a bug or an odd tree must not stop the run
        why = [Unavailable("rapl", ComponentKind.CPU, f"probing RAPL failed: {exc!r}", None)]
    found.unavailable.extend(why)
    source = "RAPL counters"
    if cpu_sensor is None:
        if use_pyrapl:
            try:
                from greenmeter.sensors import pyrapl

                cpu_sensor, why = pyrapl.probe(host)
            except Exception as exc:
                why = [
                    Unavailable(
                        "pyrapl", ComponentKind.CPU, f"probing pyRAPL failed: {exc!r}", None
                    )
                ]
            found.unavailable.extend(why)
            source = "pyRAPL"
        else:
            found.unavailable.append(
                Unavailable(
                    "pyrapl",
                    ComponentKind.CPU,
                    "pyRAPL backend not requested (it reads the same counters as the RAPL "
                    "sensor, from /sys/class/powercap only)",
                    "discover(use_pyrapl=True) with pyRAPL installed",
                )
            )
    else:
        found.unavailable.append(
            Unavailable(
                "pyrapl", ComponentKind.CPU, "not needed: the RAPL counters are read directly", None
            )
        )
    measured = _kinds(cpu_sensor) if cpu_sensor is not None else set()
    if cpu_sensor is not None:
        found.sensors.append(cpu_sensor)
    want_cpu = ComponentKind.CPU not in measured
    want_ram = ComponentKind.DRAM not in measured
    if want_cpu or want_ram:
        try:
            from greenmeter.sensors.estimate import EstimateSensor

            found.sensors.append(
                EstimateSensor(
                    cpu=want_cpu,
                    ram=want_ram,
                    scope=estimate_scope if isinstance(estimate_scope, str) else estimate_scope(),
                    host=host,
                )
            )
        except Exception as exc:
            found.unavailable.append(
                Unavailable(
                    "estimate",
                    ComponentKind.CPU,
                    f"the CPU/RAM estimate could not be set up: {exc!r}",
                    None,
                )
            )
    if not want_cpu:
        found.unavailable.append(
            Unavailable(
                "estimate", ComponentKind.CPU, f"not needed: CPU measured by {source}", None
            )
        )
    if not want_ram:
        found.unavailable.append(
            Unavailable(
                "estimate", ComponentKind.RAM, f"not needed: DRAM measured by {source}", None
            )
        )


def _discover_gpus(
    found: Discovery,
    sensor_name: str,
    module: str,
    library: str,
    gpus: Sequence[int | str] | None,
    sample_interval_s: float,
    host: str | None,
) -> None:
    try:
        probe = importlib.import_module(module).probe
    except (ImportError, AttributeError) as exc:
        found.unavailable.append(
            Unavailable(
                sensor_name,
                ComponentKind.GPU,
                f"no GPU sensor: {module} could not be loaded ({exc})",
                "reinstall greenmeter with its dependencies (pip install greenmeter)",
            )
        )
        return
    try:
        sensor, why = probe(gpus=gpus, sample_interval_s=sample_interval_s, host=host)
    except Exception as exc:
        found.unavailable.append(
            Unavailable(sensor_name, ComponentKind.GPU, f"probing {library} failed: {exc!r}", None)
        )
        return
    found.unavailable.extend(why)
    if sensor is not None:
        found.sensors.append(sensor)
