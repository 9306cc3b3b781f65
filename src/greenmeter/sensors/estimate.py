"""A labelled estimate for hosts without energy counters: CPU rated power x utilisation.

Nothing here is measured. The estimate is cumulative, so phase boundaries need no
sampling thread:

* **CPU**: ``energy_j = rated_power_w x busy_cpu_s / logical_cpus``, where
  ``busy_cpu_s`` is the CPU time spent since the sensor opened: machine-wide
  (``scope="machine"``: user + nice + system + irq + softirq from ``/proc/stat`` via
  ``psutil.cpu_times()``), or by the measured process tree (``scope="process"``: user +
  system of the process, its reaped children and its live descendants). In words: the
  CPU draws its rated power when all logical CPUs are busy, proportionally less when
  fewer are, and nothing when idle. ``rated_power_w`` is the thermal design power of the
  CPU model (looked up in the bundled table, see :func:`rated_power_w`) times the number
  of sockets.
* **RAM**: ``RAM_W_PER_GB`` watts per GB (``3 W per 8 GB``) of installed memory for the
  whole run (``scope="machine"``), or of the process tree's resident memory, sampled at
  every read and poll (``scope="process"``).

Unknown CPU models fall back to ``DEFAULT_W_PER_LOGICAL_CPU`` watts per logical CPU. The
model, constants and sources go into each component's ``detail`` (keys ``model``,
``constants``, ``source``, ``cpu_model``) and the report.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope, Sensor

__all__ = [
    "DEFAULT_W_PER_LOGICAL_CPU",
    "RAM_W_PER_GB",
    "CpuPower",
    "EstimateSensor",
    "cpu_model_name",
    "cpu_power_table",
    "normalise_cpu_name",
    "rated_power_w",
]

#: Watts per GB of RAM: 3 W per 8 GB of DDR3/DDR4, from Crucial, "How much power does
#: memory use?" (https://www.crucial.com/support/articles-faq-memory/how-much-power-does-memory-use),
#: the rule codecarbon used before version 3.
RAM_W_PER_GB = 3.0 / 8.0
RAM_SOURCE = (
    "3 W per 8 GB of DDR3/DDR4: Crucial, 'How much power does memory use?', "
    "https://www.crucial.com/support/articles-faq-memory/how-much-power-does-memory-use"
)
#: Watts per logical CPU when the CPU model is not in the table: codecarbon 3.x
#: (``codecarbon/core/cpu.py``, ``DEFAULT_POWER_PER_CORE = 4``, applied per thread).
DEFAULT_W_PER_LOGICAL_CPU = 4.0
DEFAULT_SOURCE = (
    "fallback 4 W per logical CPU, as codecarbon 3.x uses for CPU models it does not know "
    "(codecarbon/core/cpu.py, DEFAULT_POWER_PER_CORE)"
)
RESOLUTION_S = 0.1
PROCESS_RAM_POLL_S = 1.0
_GB = 1e9


# -- CPU model and rated power -----------------------------------------------------------


def cpu_model_name() -> str:
    """This machine's CPU model as the kernel reports it (``/proc/cpuinfo``), or ``""``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or ""


_NOISE = [
    (re.compile(r"\((?:r|tm|c)\)|[\u00ae\u2122]", re.I), " "),
    (re.compile(r"@\s*[\d.]+\s*[gm]hz", re.I), " "),
    (re.compile(r"\b\d+-core\b", re.I), " "),
    (re.compile(r"\bw(?:ith|/)\s+radeon\b.*$", re.I), " "),
    (re.compile(r"\b(?:cpu|processor|apu)\b", re.I), " "),
]


def normalise_cpu_name(name: str) -> str:
    """Lower-case a CPU model name without trademarks, clock speed and filler words."""
    s = name
    for pattern, repl in _NOISE:
        s = pattern.sub(repl, s)
    return " ".join(s.lower().replace(",", " ").split())


@lru_cache(maxsize=1)
def cpu_power_table() -> dict[str, Any]:
    """The bundled table (``greenmeter/sensors/data/cpu_power.json``) with its metadata."""
    with (
        resources.files("greenmeter.sensors")
        .joinpath("data/cpu_power.json")
        .open("r", encoding="utf-8") as f
    ):
        return json.load(f)


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, tuple[str, float]], list[tuple[frozenset[str], str, float]]]:
    exact: dict[str, tuple[str, float]] = {}
    tokens: list[tuple[frozenset[str], str, float]] = []
    for name, tdp in cpu_power_table()["rows"]:
        norm = normalise_cpu_name(name)
        exact.setdefault(norm, (name, float(tdp)))
        toks = frozenset(norm.split())
        if any(ch.isdigit() for ch in norm):
            tokens.append((toks, name, float(tdp)))
    return exact, tokens


class CpuPower:
    """A rated-power lookup result.

    Attributes:
        power_w: Rated power of one package (W).
        matched: The table row's name, or None when the fallback was used.
        source: Where the figure comes from.
    """

    __slots__ = ("matched", "power_w", "source")

    def __init__(self, power_w: float, matched: str | None, source: str) -> None:
        self.power_w = power_w
        self.matched = matched
        self.source = source

    def __repr__(self) -> str:
        return f"CpuPower(power_w={self.power_w!r}, matched={self.matched!r})"


def rated_power_w(model: str, logical_cpus: int | None = None) -> CpuPower:
    """Rated power (TDP, W) of one package of CPU ``model``.

    Exact match of the normalised name first; else the table row with the most words
    whose words (including a model number) all occur in ``model``, if that row is not
    tied with a row of different power. Unknown models get
    ``DEFAULT_W_PER_LOGICAL_CPU x logical_cpus``.
    """
    exact, tokens = _index()
    meta = cpu_power_table()
    table_source = f"{meta['source']}; {meta['source_version']}; licence {meta['licence']}"
    norm = normalise_cpu_name(model)
    hit = exact.get(norm) if norm else None
    if hit is not None:
        return CpuPower(hit[1], hit[0], table_source)
    words = set(norm.split())
    best: list[tuple[int, str, float]] = []
    for toks, name, tdp in tokens:
        if toks <= words:
            best.append((len(toks), name, tdp))
    if best:
        top = max(b[0] for b in best)
        tied = [b for b in best if b[0] == top]
        if len({b[2] for b in tied}) == 1:
            return CpuPower(tied[0][2], tied[0][1], table_source)
    n = logical_cpus or os.cpu_count() or 1
    return CpuPower(DEFAULT_W_PER_LOGICAL_CPU * n, None, DEFAULT_SOURCE)


_lookup_rated_power = rated_power_w  # the sensor's argument of the same name shadows it


def _socket_count() -> int:
    ids = set()
    base = "/sys/devices/system/cpu"
    try:
        for entry in os.listdir(base):
            if entry.startswith("cpu") and entry[3:].isdigit():
                try:
                    with open(f"{base}/{entry}/topology/physical_package_id") as f:
                        ids.add(f.read().strip())
                except OSError:
                    continue
    except OSError:
        pass
    return max(1, len(ids))


# -- CPU time and memory sources ---------------------------------------------------------


def machine_busy_cpu_s() -> float:
    """CPU-seconds all logical CPUs spent busy since boot (user+nice+system+irq+softirq)."""
    import psutil

    t = psutil.cpu_times()
    return (
        t.user
        + getattr(t, "nice", 0.0)
        + t.system
        + getattr(t, "irq", 0.0)
        + getattr(t, "softirq", 0.0)
    )


class _ProcessTree:
    """CPU time and resident memory of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)

    def _members(self) -> list[Any]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except self._psutil.Error:
            return [self._root]

    def busy_cpu_s(self) -> float:
        total = 0.0
        for p in self._members():
            try:
                t = p.cpu_times()
            except self._psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def rss_bytes(self) -> float:
        total = 0.0
        for p in self._members():
            try:
                total += p.memory_info().rss
            except self._psutil.Error:
                continue
        return total


def _installed_ram_bytes() -> float:
    import psutil

    return float(psutil.virtual_memory().total)


# -- the sensor --------------------------------------------------------------------------


class EstimateSensor(Sensor):
    """Estimated CPU and RAM energy (``estimate:cpu``, ``estimate:ram``), clearly labelled.

    Args:
        cpu: Estimate the CPU.
        ram: Estimate RAM (use only where no RAPL ``dram`` counter exists).
        scope: ``"machine"`` (whole host) or ``"process"`` (this process tree's share).
        pid: Root of the process tree for ``scope="process"`` (default this process).
        rated_power_w: Total rated CPU power (W) for all sockets; default from the table
            by CPU model times the socket count.
        cpu_model: CPU model name (default from ``/proc/cpuinfo``).
        logical_cpus: Logical CPU count (default ``os.cpu_count()``).
        ram_w_per_gb: Watts per GB of RAM (default :data:`RAM_W_PER_GB`).
        ram_gb: Installed RAM in GB for ``scope="machine"`` (default from psutil).
        host: Hostname recorded in the components.
        busy_cpu_s: Function returning cumulative busy CPU-seconds (replaces the psutil
            source; for tests and custom accounting).
        rss_bytes: Function returning the process tree's resident bytes (``"process"``).
    """

    name = "estimate"

    def __init__(
        self,
        *,
        cpu: bool = True,
        ram: bool = True,
        scope: str = "machine",
        pid: int | None = None,
        rated_power_w: float | None = None,
        cpu_model: str | None = None,
        logical_cpus: int | None = None,
        ram_w_per_gb: float = RAM_W_PER_GB,
        ram_gb: float | None = None,
        host: str | None = None,
        busy_cpu_s: Callable[[], float] | None = None,
        rss_bytes: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        if scope not in ("machine", "process"):
            raise ValueError("scope must be 'machine' or 'process'")
        if not (cpu or ram):
            raise ValueError("EstimateSensor needs cpu=True or ram=True")
        self._lock = threading.Lock()
        self._scope = scope
        self._host = host or socket.gethostname()
        self._cpus = int(logical_cpus or os.cpu_count() or 1)
        tree = _ProcessTree(pid or os.getpid()) if scope == "process" else None
        self._busy_fn = busy_cpu_s or (tree.busy_cpu_s if tree else machine_busy_cpu_s)
        self._rss_fn = rss_bytes or (tree.rss_bytes if tree else None)
        self._cpu = cpu
        self._ram = ram
        self._w_per_gb = float(ram_w_per_gb)
        sc = Scope.PROCESS if scope == "process" else Scope.MACHINE
        self._infos: list[ComponentInfo] = []
        t0 = time.monotonic()
        self._t_last = t0
        if cpu:
            model = cpu_model if cpu_model is not None else cpu_model_name()
            sockets = _socket_count()
            if rated_power_w is None:
                found = _lookup_rated_power(model, self._cpus)
                per = found.power_w
                self._rated_w = per * (sockets if found.matched else 1)
                source = found.source
                matched = found.matched or "none (model not in the table)"
            else:
                self._rated_w = float(rated_power_w)
                source = "given by the user"
                matched = "n/a"
                sockets = 0
            share = "busy CPU time of the process tree" if tree else "machine busy CPU time"
            self._busy0 = self._busy_fn()
            self._busy_last = self._busy0
            self._cpu_j = 0.0
            self._infos.append(
                ComponentInfo(
                    id="estimate:cpu",
                    kind=ComponentKind.CPU,
                    scope=sc,
                    method=Method.ESTIMATED,
                    sensor="estimate",
                    label="CPU (estimated)",
                    host=self._host,
                    resolution_s=RESOLUTION_S,
                    detail={
                        "model": f"energy_j = rated_power_w x ({share}, s) / logical_cpus",
                        "constants": f"rated_power_w={self._rated_w:g}; "
                        f"logical_cpus={self._cpus}; sockets={sockets}; "
                        f"table_match={matched}",
                        "source": source,
                        "cpu_model": model,
                    },
                )
            )
        if ram:
            if scope == "machine":
                self._ram_gb = float(ram_gb) if ram_gb is not None else _installed_ram_bytes() / _GB
                model_txt = "energy_j = ram_w_per_gb x installed_ram_gb x elapsed_s"
                consts = f"ram_w_per_gb={self._w_per_gb:g}; installed_ram_gb={self._ram_gb:.3f}"
            else:
                assert self._rss_fn is not None
                self._ram_gb = self._rss_fn() / _GB
                model_txt = (
                    "energy_j = ram_w_per_gb x resident_gb(process tree) x elapsed_s, "
                    f"resident memory sampled at reads and every {PROCESS_RAM_POLL_S} s"
                )
                consts = f"ram_w_per_gb={self._w_per_gb:g}"
            self._ram_j = 0.0
            self._infos.append(
                ComponentInfo(
                    id="estimate:ram",
                    kind=ComponentKind.RAM,
                    scope=sc,
                    method=Method.ESTIMATED,
                    sensor="estimate",
                    label="RAM (estimated)",
                    host=self._host,
                    resolution_s=RESOLUTION_S,
                    sampling_period_s=PROCESS_RAM_POLL_S if scope == "process" else None,
                    detail={
                        "model": model_txt,
                        "constants": consts,
                        "source": RAM_SOURCE,
                        "cpu_model": cpu_model if cpu_model is not None else "",
                    },
                )
            )
        if ram and scope == "process":
            self.poll_interval_s = PROCESS_RAM_POLL_S

    @property
    def rated_power_w(self) -> float:
        """Total rated CPU power used by the estimate (W); 0 without a CPU component."""
        return getattr(self, "_rated_w", 0.0)

    def components(self) -> list[ComponentInfo]:
        return list(self._infos)

    def _advance(self, now: float) -> None:
        if self._cpu:
            try:
                busy = self._busy_fn()
            except Exception:
                busy = self._busy_last
            if busy > self._busy_last:  # a vanished process lowers the sum: ignore drops
                self._cpu_j += self._rated_w * (busy - self._busy_last) / self._cpus
            self._busy_last = busy
        if self._ram:
            dt = now - self._t_last
            if dt > 0:
                self._ram_j += self._w_per_gb * self._ram_gb * dt
                self._t_last = now
                if self._rss_fn is not None and self._scope == "process":
                    try:
                        self._ram_gb = self._rss_fn() / _GB
                    except Exception:
                        pass

    def read(self, now: float) -> dict[str, float]:
        """Cumulative estimated joules since the sensor opened, as of ``now``."""
        with self._lock:
            self._advance(now)
            out: dict[str, float] = {}
            if self._cpu:
                out["estimate:cpu"] = self._cpu_j
            if self._ram:
                out["estimate:ram"] = self._ram_j
            return out

    def poll(self, now: float) -> None:
        with self._lock:
            self._advance(now)
