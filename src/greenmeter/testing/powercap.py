"""An emulated Linux powercap (RAPL) sysfs tree with live energy counters.

:class:`EmulatedPowercap` builds, in a temporary directory, the layout the kernel's
``intel_rapl_common`` driver creates under ``/sys``::

    <sysfs>/class/powercap/
        intel-rapl         -> ../../devices/virtual/powercap/intel-rapl
        intel-rapl:0       -> ../../devices/virtual/powercap/intel-rapl/intel-rapl:0
        intel-rapl:0:0     -> ../../devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0
        ...
    <sysfs>/devices/virtual/powercap/intel-rapl/
        enabled  uevent  power/  subsystem -> ../../../../class/powercap
        intel-rapl:0/      name=package-0, energy_uj, max_energy_range_uj, enabled,
                           constraint_{0,1}_{name,power_limit_uw,time_window_us,max_power_uw},
                           uevent, power/, device -> ../../intel-rapl, subsystem -> ...
            intel-rapl:0:0/   name=core
            intel-rapl:0:1/   name=uncore
            intel-rapl:0:2/   name=dram
        intel-rapl:1/      name=package-1 ...
        intel-rapl:2/      name=psys            (optional)
    <sysfs>/devices/virtual/powercap/intel-rapl-mmio/intel-rapl-mmio:0/  (optional twins)

Point code under test at :attr:`EmulatedPowercap.root` (``<sysfs>/class/powercap``),
for greenmeter through ``GREENMETER_POWERCAP_ROOT`` or ``powercap_root=``.

Every ``energy_uj`` file is advanced in place about 1000 times a second by a separate
process (so it does not compete for the GIL with the code being measured) from a
:class:`~greenmeter.testing.trace.PowerTrace`. Values wrap modulo
``max_energy_range_uj``; a small range forces wraps. Each update writes ``value\\n`` at
offset 0 and then truncates the file, so a reader that re-opens the file and a reader
that keeps it open and uses ``pread(fd, n, 0)`` both see a live counter, and the first
line is always a whole value. :meth:`EmulatedPowercap.published_mono` is the instant of
the latest update, so a test can tell the updater's own lag on a busy machine from an
error of the code under test.

The exact energy drawn between two ``time.monotonic()`` instants is
:meth:`EmulatedPowercap.true_energy_j` (the trace integral), so tests can assert
accuracy against known truth.

Example::

    import time
    from greenmeter.testing import EmulatedPowercap, PowerTrace

    trace = PowerTrace([(0.3, 40.0), (0.3, 120.0), (0.4, 75.0)])
    with EmulatedPowercap(package_traces=[trace, trace],
                          dram_traces=[PowerTrace.constant(8.0)] * 2,
                          max_energy_range_uj=50_000_000) as pc:
        t_a = time.monotonic()
        time.sleep(1.0)
        t_b = time.monotonic()
        print(pc.true_package_energy_j(t_a, t_b))   # exact joules, both sockets
        print(pc.root)                              # .../class/powercap

Zone keys used by the methods below: ``"package-N"``, ``"core-N"``, ``"uncore-N"``,
``"dram-N"`` (socket ``N``), ``"psys"``, and with ``dies_per_package > 1``
``"package-N-die-M"``, ``"core-N-die-M"``... (one zone per die, each drawing the
package trace divided by the number of dies).

Faults for reliability tests:

* :meth:`EmulatedPowercap.make_unreadable` with ``how="permission"`` sets the file mode
  to ``000`` (like the root-only ``energy_uj`` of Linux >= 5.10, CVE-2020-8694). Root
  reads any file regardless of its mode, so this only fails for a non-root reader or a
  root process without ``CAP_DAC_OVERRIDE``/``CAP_DAC_READ_SEARCH`` (for example
  ``setpriv --bounding-set=-dac_override,-dac_read_search python ...``).
  With ``how="fail"`` the file is replaced by a directory: every reader, root included,
  gets ``IsADirectoryError`` (``EISDIR``). :meth:`make_readable` undoes either.
* :meth:`remove_zone` deletes a zone (and its subzones) mid-run, as a driver unload does.
* :meth:`reset_counter` sets a counter to a value (default 0), as a driver reload or
  firmware reset does; the physical energy (the truth) is unaffected.
* :meth:`freeze` / :meth:`unfreeze` stop and resume publishing values; while frozen a
  counter is stale, after :meth:`unfreeze` it shows the trace's value again.

The updater process exits on :meth:`close`, on leaving the ``with`` block, and by itself
when the parent process dies (it watches its stdin pipe and the parent pid); if the
tree lives in a directory the emulator created, the orphaned updater removes it.

Size: about 800 lines, kept in one module because the tree builder, the updater
process (started with this very file as its program) and the fault controls share the
zone layout and the control protocol.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenmeter.testing.trace import PowerTrace

__all__ = ["DEFAULT_MAX_ENERGY_RANGE_UJ", "EmulatedPowercap", "EmulatorError"]

#: The range most Intel packages report (2^32 counts of 61.035 uJ), microjoules.
DEFAULT_MAX_ENERGY_RANGE_UJ = 262_143_328_850

_CONTROL = "intel-rapl"
#: Beside ``class/`` and ``devices/``: the instant of the updater's latest tick, a
#: native double (``time.monotonic()`` seconds), written after that tick's values.
_PUBLISHED = ".published_mono"
_CONTROL_MMIO = "intel-rapl-mmio"


class EmulatorError(RuntimeError):
    """The emulated powercap tree could not be built, driven or changed."""


@dataclass
class _Zone:
    key: str  # "package-0", "core-0-die-1", "dram-1", "psys", "mmio:package-0"
    name: str  # content of the `name` file
    dirname: str  # "intel-rapl:0:1"
    rel_path: str  # path of the zone dir relative to the devices/virtual/powercap dir
    trace: PowerTrace
    start_uj: int
    max_power_w: float | None
    parent: str | None  # key of the parent zone
    control: str  # "intel-rapl" or "intel-rapl-mmio"


def _scaled(trace: PowerTrace, factor: float) -> PowerTrace:
    if factor == 1.0:
        return trace
    return PowerTrace(
        [(d, p * factor) for d, p in trace.to_rows()], t0=trace.t0, repeat=trace.repeat
    )


def _check_inside(inner: Sequence[PowerTrace], outer: PowerTrace, what: str) -> None:
    """Check that the sum of ``inner`` never exceeds ``outer`` at any step start.

    Evaluated at every step boundary of all traces over the longest period times the
    number of traces plus one period (enough to cover the first misalignments).
    """
    traces = [*inner, outer]
    horizon = max(t.period_s for t in traces) * (len(traces) + 1)
    t0 = min(t.t0 for t in traces)
    instants: set[float] = set()
    for tr in traces:
        start = tr.t0
        while start < t0 + horizon:
            x = 0.0
            for d, _p in tr.to_rows():
                instants.add(start + x)
                x += d
            start += tr.period_s
            if not tr.repeat:
                break
    for t in sorted(instants):
        for probe_t in (t + 1e-9,):
            total = sum(tr.power_w(probe_t) for tr in inner)
            if total > outer.power_w(probe_t) + 1e-9:
                raise ValueError(
                    f"{what}: nested zones draw {total:.3f} W at t={probe_t:.6f} but the "
                    f"package only {outer.power_w(probe_t):.3f} W; nested traces must stay "
                    "inside the package trace"
                )


class EmulatedPowercap:
    """A live, emulated ``/sys/class/powercap`` tree driven by power traces.

    Example::

        trace = PowerTrace([(0.5, 30.0), (0.5, 90.0)])
        with EmulatedPowercap([trace], dram_traces=[PowerTrace.constant(5.0)],
                              max_energy_range_uj=20_000_000) as pc:   # wraps every few s
            sensor, why = greenmeter.sensors.rapl.probe(pc.root)
            ...
            exact_j = pc.true_package_energy_j(t_a, t_b)

    See the module documentation for the layout, the zone keys and the fault switches.

    Args:
        package_traces: One trace per socket (package ``N`` is ``package_traces[N]``).
        dram_traces: One trace per socket for a ``dram`` subzone, or None for none.
        core_traces: Per-socket traces for the ``core`` subzone; default a copy of the
            package trace scaled by ``core_fraction``. Must stay inside the package.
        uncore_traces: Same for ``uncore``; default scaled by ``uncore_fraction``.
        core_fraction: Share of package power drawn by ``core`` when not given (0..1).
        uncore_fraction: Share drawn by ``uncore`` when not given; core + uncore <= 1.
            Set both to 0 and traces to None to omit them: pass ``subzones=False``.
        subzones: Create ``core``/``uncore`` subzones at all.
        psys_trace: Trace for a top-level ``psys`` (platform) zone, or None.
        mmio: Also create ``intel-rapl-mmio:N`` twins of the package zones, showing the
            same counter (as client platforms with the MMIO interface do).
        dies_per_package: More than 1 creates ``package-N-die-M`` zones (one top-level
            zone per die, each with the package trace divided by the die count).
        max_energy_range_uj: Wrap point of every counter, microjoules.
        start_uj: Initial counter value per zone key, microjoules. Zones not listed start
            at a distinct fraction of the range (so counters differ and wrap early).
        tdp_w: Written to ``constraint_0_max_power_uw`` of each package (watts); dram and
            psys get ``dram_max_power_w`` and ``psys_max_power_w``.
        update_hz: How often counters are advanced (about 1000, like RAPL).
        realtime: Ask for real-time scheduling (``SCHED_FIFO``, priority 1) for the
            updater, falling back to a raised priority or none when not permitted, so
            counters stay within about a millisecond of the trace on a busy machine.
        directory: Where to build the tree; default a new temporary directory that
            :meth:`close` removes.
    """

    def __init__(
        self,
        package_traces: Sequence[PowerTrace],
        *,
        dram_traces: Sequence[PowerTrace] | None = None,
        core_traces: Sequence[PowerTrace] | None = None,
        uncore_traces: Sequence[PowerTrace] | None = None,
        core_fraction: float = 0.6,
        uncore_fraction: float = 0.1,
        subzones: bool = True,
        psys_trace: PowerTrace | None = None,
        mmio: bool = False,
        dies_per_package: int = 1,
        max_energy_range_uj: int = DEFAULT_MAX_ENERGY_RANGE_UJ,
        start_uj: Mapping[str, int] | None = None,
        tdp_w: float = 125.0,
        dram_max_power_w: float = 40.0,
        psys_max_power_w: float = 250.0,
        update_hz: float = 1000.0,
        realtime: bool = True,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        if not package_traces:
            raise ValueError("EmulatedPowercap needs at least one package trace")
        n = len(package_traces)
        for label, seq in (("dram", dram_traces), ("core", core_traces), ("uncore", uncore_traces)):
            if seq is not None and len(seq) != n:
                raise ValueError(
                    f"{label}_traces needs one trace per package ({n}), got {len(seq)}"
                )
        if int(max_energy_range_uj) < 1000:
            raise ValueError("max_energy_range_uj must be at least 1000 microjoules")
        if dies_per_package < 1:
            raise ValueError("dies_per_package must be >= 1")
        if not (
            0 <= core_fraction and 0 <= uncore_fraction and core_fraction + uncore_fraction <= 1
        ):
            raise ValueError("core_fraction + uncore_fraction must lie in [0, 1]")
        if not update_hz > 0:
            raise ValueError("update_hz must be positive")
        self.max_energy_range_uj = int(max_energy_range_uj)
        self.update_hz = float(update_hz)
        self.realtime = bool(realtime)
        self._owns_dir = directory is None
        base = Path(
            tempfile.mkdtemp(prefix="greenmeter-powercap-") if directory is None else directory
        )
        base.mkdir(parents=True, exist_ok=True)
        #: The emulated sysfs mount point (contains ``class/`` and ``devices/``).
        self.sysfs_root: Path = base.resolve()
        #: The emulated ``/sys/class/powercap`` directory: point readers here.
        self.root: Path = self.sysfs_root / "class" / "powercap"
        self._devices = self.sysfs_root / "devices" / "virtual" / "powercap"
        self._published_fd: int | None = None
        self._zones: dict[str, _Zone] = {}
        self._removed: set[str] = set()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._closed = False

        start = dict(start_uj or {})
        dies = dies_per_package
        index = 0
        for sock, ptrace in enumerate(package_traces):
            if subzones:
                ctr = list(core_traces) if core_traces is not None else None
                utr = list(uncore_traces) if uncore_traces is not None else None
                core = ctr[sock] if ctr else _scaled(ptrace, core_fraction)
                uncore = utr[sock] if utr else _scaled(ptrace, uncore_fraction)
                _check_inside([core, uncore], ptrace, f"package-{sock}")
            for die in range(dies):
                suffix = f"-{sock}" if dies == 1 else f"-{sock}-die-{die}"
                name = f"package-{sock}" if dies == 1 else f"package-{sock}-die-{die}"
                pdir = f"{_CONTROL}:{index}"
                pkey = "package" + suffix
                self._add(pkey, name, pdir, pdir, _scaled(ptrace, 1 / dies), tdp_w / dies, None)
                sub = 0
                if subzones:
                    for label, tr in (("core", core), ("uncore", uncore)):
                        d = f"{pdir}:{sub}"
                        self._add(
                            label + suffix,
                            label,
                            d,
                            f"{pdir}/{d}",
                            _scaled(tr, 1 / dies),
                            None,
                            pkey,
                        )
                        sub += 1
                if dram_traces is not None:
                    d = f"{pdir}:{sub}"
                    self._add(
                        "dram" + suffix,
                        "dram",
                        d,
                        f"{pdir}/{d}",
                        _scaled(dram_traces[sock], 1 / dies),
                        dram_max_power_w / dies,
                        pkey,
                    )
                index += 1
        if psys_trace is not None:
            d = f"{_CONTROL}:{index}"
            self._add("psys", "psys", d, d, psys_trace, psys_max_power_w, None)
        if mmio:
            for sock, ptrace in enumerate(package_traces):
                d = f"{_CONTROL_MMIO}:{sock}"
                self._add(
                    f"mmio:package-{sock}",
                    f"package-{sock}",
                    d,
                    d,
                    ptrace,
                    tdp_w,
                    None,
                    control=_CONTROL_MMIO,
                )
        keys = list(self._zones)
        for i, key in enumerate(keys):
            z = self._zones[key]
            if key in start:
                z.start_uj = int(start.pop(key)) % self.max_energy_range_uj
            else:
                z.start_uj = int(self.max_energy_range_uj * ((0.55 + 0.13 * i) % 1.0))
        if start:
            raise ValueError(f"start_uj names unknown zones: {sorted(start)}; known: {keys}")
        try:
            self._build()
            self._start_updater()
        except BaseException:
            self.close()
            raise

    # -- construction ----------------------------------------------------------------

    def _add(
        self,
        key: str,
        name: str,
        dirname: str,
        rel: str,
        trace: PowerTrace,
        max_power_w: float | None,
        parent: str | None,
        control: str = _CONTROL,
    ) -> None:
        self._zones[key] = _Zone(
            key, name, dirname, f"{control}/{rel}", trace, 0, max_power_w, parent, control
        )

    @staticmethod
    def _write(path: Path, text: str, mode: int = 0o444) -> None:
        path.write_text(text)
        os.chmod(path, mode)

    def _build(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        controls = sorted({z.control for z in self._zones.values()})
        for control in controls:
            cdir = self._devices / control
            (cdir / "power").mkdir(parents=True, exist_ok=True)
            self._write(cdir / "enabled", "1\n", 0o644)
            self._write(cdir / "uevent", "", 0o644)
            os.symlink("../../../../class/powercap", cdir / "subsystem")
            os.symlink(f"../../devices/virtual/powercap/{control}", self.root / control)
        for z in self._zones.values():
            zdir = self._devices / z.rel_path
            (zdir / "power").mkdir(parents=True, exist_ok=True)
            depth = z.rel_path.count("/")  # 1 for a top-level zone, 2 for a subzone
            self._write(zdir / "name", z.name + "\n")
            self._write(zdir / "enabled", "1\n", 0o644)
            self._write(zdir / "max_energy_range_uj", f"{self.max_energy_range_uj}\n")
            self._write(zdir / "energy_uj", f"{self._value_uj(z, time.monotonic(), 0)}\n")
            self._write(zdir / "uevent", "", 0o644)
            if z.max_power_w is not None:
                uw = int(z.max_power_w * 1e6)
                for c, (cname, window_us) in enumerate(
                    (("long_term", 999_424), ("short_term", 2_440))
                ):
                    factor = 1.0 if c == 0 else 1.25
                    self._write(zdir / f"constraint_{c}_name", cname + "\n")
                    self._write(
                        zdir / f"constraint_{c}_power_limit_uw", f"{int(uw * factor)}\n", 0o644
                    )
                    self._write(zdir / f"constraint_{c}_time_window_us", f"{window_us}\n", 0o644)
                    self._write(zdir / f"constraint_{c}_max_power_uw", f"{int(uw * factor)}\n")
            # `device` names the parent device: the control type, or the enclosing zone
            parent_dir = z.rel_path.split("/")[-2]
            os.symlink("../../" + parent_dir, zdir / "device")
            os.symlink("../" * (depth + 4) + "class/powercap", zdir / "subsystem")
            os.symlink(f"../../devices/virtual/powercap/{z.rel_path}", self.root / z.dirname)

    def _value_uj(self, z: _Zone, t: float, base: int) -> int:
        return (z.start_uj + base + int(z.trace.cumulative_j(t) * 1e6)) % self.max_energy_range_uj

    def _start_updater(self) -> None:
        config = {
            "parent_pid": os.getpid(),
            "range_uj": self.max_energy_range_uj,
            "period_s": 1.0 / self.update_hz,
            "devices": str(self._devices),
            "owned_dir": str(self.sysfs_root) if self._owns_dir else None,
            "published": str(self.sysfs_root / _PUBLISHED),
            "realtime": self.realtime,
            "zones": [
                {
                    "key": z.key,
                    "path": z.rel_path,
                    "parent": z.parent,
                    "rows": z.trace.to_rows(),
                    "t0": z.trace.t0,
                    "repeat": z.trace.repeat,
                    "start_uj": z.start_uj,
                }
                for z in self._zones.values()
            ],
        }
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _CHILD_BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(self.sysfs_root),
            close_fds=True,
        )
        self._send(config)

    # -- control channel -------------------------------------------------------------

    def _send(self, message: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None or proc.stdin is None or proc.stdout is None:
                raise EmulatorError("the powercap updater process is not running")
            try:
                proc.stdin.write(json.dumps(message) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            except (BrokenPipeError, OSError) as exc:
                raise EmulatorError(f"lost contact with the powercap updater: {exc}") from exc
        if not line:
            raise EmulatorError("the powercap updater process exited unexpectedly")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise EmulatorError(str(reply.get("error")))
        return reply

    def _known(self, key: str) -> _Zone:
        z = self._zones.get(key)
        if z is None:
            raise KeyError(f"unknown zone {key!r}; known zones: {sorted(self._zones)}")
        return z

    # -- public API --------------------------------------------------------------------

    @property
    def zones(self) -> list[str]:
        """Keys of all zones built (including removed ones)."""
        return list(self._zones)

    def env(self) -> dict[str, str]:
        """Environment settings that point greenmeter at this tree."""
        return {"GREENMETER_POWERCAP_ROOT": str(self.root)}

    def zone_path(self, key: str) -> Path:
        """The zone's directory in the emulated devices tree."""
        return self._devices / self._known(key).rel_path

    def energy_path(self, key: str) -> Path:
        """The zone's ``energy_uj`` file."""
        return self.zone_path(key) / "energy_uj"

    def trace(self, key: str) -> PowerTrace:
        """The trace driving a zone."""
        return self._known(key).trace

    def true_energy_j(self, zone: str, t_a: float, t_b: float) -> float:
        """Exact energy (J) the zone drew between monotonic instants ``t_a`` and ``t_b``.

        Resets, freezes, removal and unreadable files change what readers see, never
        the physical energy.
        """
        return self._known(zone).trace.energy_j(t_a, t_b)

    def _sum(self, kind: str, t_a: float, t_b: float, socket: int | None) -> float:
        total = 0.0
        for z in self._zones.values():
            if z.control != _CONTROL or z.name.split("-")[0] != kind:
                continue
            sock = int(z.key.split("-")[1])
            if socket is None or socket == sock:
                total += z.trace.energy_j(t_a, t_b)
        return total

    def true_package_energy_j(self, t_a: float, t_b: float, socket: int | None = None) -> float:
        """Exact package energy (J) between two instants: one socket, or all (None)."""
        return self._sum("package", t_a, t_b, socket)

    def true_dram_energy_j(self, t_a: float, t_b: float, socket: int | None = None) -> float:
        """Exact DRAM energy (J) between two instants: one socket, or all (None)."""
        return self._sum("dram", t_a, t_b, socket)

    def reset_counter(self, zone: str, value_uj: int = 0) -> float:
        """Set a zone's counter to ``value_uj`` now, as a driver reload does.

        Returns:
            The ``time.monotonic()`` instant the reset took effect.
        """
        self._known(zone)
        return float(self._send({"op": "reset", "zone": zone, "value_uj": int(value_uj)})["t"])

    def freeze(self, zones: Sequence[str] | None = None) -> float:
        """Stop publishing new values (all zones, or the given ones). Returns the instant."""
        for z in zones or ():
            self._known(z)
        return float(self._send({"op": "freeze", "zones": list(zones) if zones else None})["t"])

    def unfreeze(self, zones: Sequence[str] | None = None) -> float:
        """Resume publishing; counters jump to the trace's current value. Returns the instant."""
        return float(self._send({"op": "unfreeze", "zones": list(zones) if zones else None})["t"])

    def remove_zone(self, zone: str) -> float:
        """Delete a zone, its subzones and their ``/class/powercap`` links. Returns the instant."""
        self._known(zone)
        t = float(self._send({"op": "remove", "zone": zone})["t"])
        self._removed.add(zone)
        return t

    def make_unreadable(self, zone: str, how: str = "fail") -> float:
        """Make a zone's ``energy_uj`` unreadable.

        Args:
            zone: Zone key.
            how: ``"fail"`` replaces the file by a directory, so every read fails
                (``EISDIR``), for root too. ``"permission"`` sets mode ``000``: reads fail
                with ``EACCES`` only for readers without ``CAP_DAC_OVERRIDE`` (non-root, or
                root with that capability dropped), as the root-only files of Linux >= 5.10
                do for ordinary users.

        Returns:
            The ``time.monotonic()`` instant the change took effect.
        """
        if how not in ("fail", "permission"):
            raise ValueError("how must be 'fail' or 'permission'")
        self._known(zone)
        return float(self._send({"op": "unreadable", "zone": zone, "how": how})["t"])

    def make_readable(self, zone: str) -> float:
        """Undo :meth:`make_unreadable`. Returns the instant."""
        self._known(zone)
        return float(self._send({"op": "readable", "zone": zone})["t"])

    def published_mono(self) -> float:
        """The instant (``time.monotonic()``, seconds) at which the updater last advanced
        every counter not frozen; 0.0 before its first tick.

        A counter read after this call shows a value of that instant or later. Tests use
        it to tell a read that found the counters stale (the updater process was held up,
        as on a busy machine) from a sensor error: ``t - published_mono()`` is how old
        the values can be at ``t``.
        """
        fd = self._published_fd
        if fd is None:
            fd = self._published_fd = os.open(self.sysfs_root / _PUBLISHED, os.O_RDONLY)
        data = os.pread(fd, 8, 0)
        return struct.unpack("=d", data)[0] if len(data) == 8 else 0.0

    @property
    def updater_pid(self) -> int | None:
        """Process id of the updater (None once closed)."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Stop the updater and remove the tree if the emulator created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is not None:
            try:
                if proc.poll() is None and proc.stdin is not None:
                    proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                    proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3.0)
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        if self._published_fd is not None:
            os.close(self._published_fd)
            self._published_fd = None
        if self._owns_dir:
            _make_all_removable(self.sysfs_root)
            shutil.rmtree(self.sysfs_root, ignore_errors=True)
        else:
            (self.sysfs_root / _PUBLISHED).unlink(missing_ok=True)

    def __enter__(self) -> EmulatedPowercap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:
            pass


def _make_all_removable(path: Path) -> None:
    for dirpath, dirnames, _files in os.walk(path):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                try:
                    os.chmod(p, 0o755)
                except OSError:
                    pass


# -- the updater process ---------------------------------------------------------------

_CHILD_BOOT = "from greenmeter.testing.powercap import _updater_main; _updater_main()"


def _updater_main() -> None:
    """Entry point of the updater process: reads a config line, then commands, on stdin."""
    import queue

    config = json.loads(sys.stdin.readline())
    range_uj = int(config["range_uj"])
    period = float(config["period_s"])
    devices = Path(config["devices"])
    parent_pid = int(config["parent_pid"])
    owned_dir = config["owned_dir"]
    published = os.open(config["published"], os.O_RDWR | os.O_CREAT, 0o644)
    class_dir = devices.parent.parent.parent / "class" / "powercap"

    zones: dict[str, dict[str, Any]] = {}
    for zc in config["zones"]:
        tr = PowerTrace.from_rows(zc["rows"], t0=zc["t0"], repeat=zc["repeat"])
        path = devices / zc["path"] / "energy_uj"
        zones[zc["key"]] = {
            "trace": tr,
            "path": path,
            "fd": os.open(path, os.O_RDWR),
            "offset": int(zc["start_uj"]),
            "frozen": False,
            "parent": zc["parent"],
            "rel": zc["path"],
        }

    def value(z: dict[str, Any], t: float) -> int:
        return (z["offset"] + int(z["trace"].cumulative_j(t) * 1e6)) % range_uj

    def publish(z: dict[str, Any], t: float) -> None:
        fd = z["fd"]
        if fd is None or z["frozen"]:
            return
        data = b"%d\n" % value(z, t)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def reader() -> None:
        for line in sys.stdin:
            line = line.strip()
            if line:
                commands.put(json.loads(line))
        commands.put(None)  # EOF: the parent is gone or closed the pipe

    threading.Thread(target=reader, daemon=True).start()

    def reply(**kw: Any) -> None:
        sys.stdout.write(json.dumps({"ok": True, **kw}) + "\n")
        sys.stdout.flush()

    def selected(names: list[str] | None) -> list[dict[str, Any]]:
        return list(zones.values()) if not names else [zones[n] for n in names if n in zones]

    def handle(cmd: dict[str, Any]) -> bool:
        op = cmd.get("op")
        now = time.monotonic()
        if op == "quit":
            return False
        if op == "config_ack":
            reply(t=now)
        elif op == "reset":
            z = zones[cmd["zone"]]
            # choose the offset so that the published value is value_uj right now
            z["offset"] = int(cmd["value_uj"]) - int(z["trace"].cumulative_j(now) * 1e6)
            frozen, z["frozen"] = z["frozen"], False
            publish(z, now)
            z["frozen"] = frozen
            reply(t=now)
        elif op == "freeze":
            for z in selected(cmd.get("zones")):
                z["frozen"] = True
            reply(t=now)
        elif op == "unfreeze":
            for z in selected(cmd.get("zones")):
                z["frozen"] = False
                publish(z, now)
            reply(t=now)
        elif op == "remove":
            key = cmd["zone"]
            doomed = [key] + [k for k, z in zones.items() if z["parent"] == key]
            rel = zones[key]["rel"]
            for k in doomed:
                z = zones.pop(k)
                if z["fd"] is not None:
                    os.close(z["fd"])
                link = class_dir / Path(z["rel"]).name
                if link.is_symlink():
                    link.unlink()
            _make_all_removable(devices / rel)
            shutil.rmtree(devices / rel, ignore_errors=True)
            reply(t=now)
        elif op == "unreadable":
            z = zones[cmd["zone"]]
            path: Path = z["path"]
            if cmd["how"] == "permission":
                os.chmod(path, 0o000)
            else:
                if z["fd"] is not None:
                    os.close(z["fd"])
                    z["fd"] = None
                path.unlink()
                path.mkdir()
            reply(t=now)
        elif op == "readable":
            z = zones[cmd["zone"]]
            path = z["path"]
            if path.is_dir():
                path.rmdir()
                path.write_text(f"{value(z, now)}\n")
                z["fd"] = os.open(path, os.O_RDWR)
            os.chmod(path, 0o444)
            reply(t=now)
        else:
            sys.stdout.write(json.dumps({"ok": False, "error": f"unknown op {op!r}"}) + "\n")
            sys.stdout.flush()
        return True

    if config.get("realtime"):
        # Wake on time even on a busy machine; the loop sleeps between ticks, and the
        # kernel's real-time throttling bounds it anyway. Without the privilege, carry on.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except (AttributeError, OSError):
            try:
                os.nice(-10)
            except OSError:
                pass
    running = True
    orphaned = False
    now = time.monotonic()
    for z in zones.values():
        publish(z, now)
    os.pwrite(published, struct.pack("=d", now), 0)
    reply(t=now)  # answer to the config line: the tree is live
    next_t = time.monotonic()
    ticks = 0
    while running:
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd is None:  # stdin closed without "quit": the parent is gone
                running = False
                orphaned = True
                break
            try:
                running = handle(cmd) and running
            except Exception as exc:  # report, keep running
                sys.stdout.write(json.dumps({"ok": False, "error": repr(exc)}) + "\n")
                sys.stdout.flush()
            if not running:
                break
        if not running:
            break
        now = time.monotonic()
        for z in zones.values():
            publish(z, now)
        os.pwrite(published, struct.pack("=d", now), 0)
        ticks += 1
        if ticks % 200 == 0 and os.getppid() != parent_pid:
            orphaned = True
            break  # the parent died; stop
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.05:
            next_t = time.monotonic()  # fell behind (machine busy): do not catch up in a burst
    for z in zones.values():
        if z["fd"] is not None:
            os.close(z["fd"])
    os.close(published)
    if owned_dir and orphaned:
        _make_all_removable(Path(owned_dir))
        shutil.rmtree(owned_dir, ignore_errors=True)
