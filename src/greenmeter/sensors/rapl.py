"""Linux powercap (RAPL) energy counters, wrap-safe.

The kernel's ``intel_rapl_common`` driver (Intel, and AMD Zen through the same
``intel-rapl`` control type) exposes one directory per *zone* under
``/sys/class/powercap``. Each zone has a ``name`` (``package-N``, ``package-N-die-M``,
``core``, ``uncore``, ``dram``, ``psys``), a cumulative ``energy_uj`` counter in
microjoules that updates about every millisecond, and ``max_energy_range_uj``, the value
at which the counter wraps to zero.

This sensor:

* maps zones by their ``name`` file, not their directory number;
* sums the top-level ``package-N`` zones (and ``package-N-die-M`` dies) of each socket into
  one component ``rapl:package-N``; reports each socket's ``dram`` subzone as
  ``rapl:dram-N``; never adds nested zones (``core``, ``uncore``) since the package
  already contains them;
* reports ``psys`` (the whole platform, which contains the packages) only when asked, as
  its own component ``rapl:psys`` that is never added to the packages;
* ignores ``intel-rapl-mmio`` zones that duplicate an ``intel-rapl`` zone of the same name;
* keeps each ``energy_uj`` open and reads it with ``os.pread`` (one system call);
* takes differences modulo ``max_energy_range_uj`` and asks to be polled often enough that
  two reads are never a whole wrap apart: ``poll_interval_s <= range / (4 x plausible
  maximum power)``, kept between 0.05 s and 10 s;
* tells a wrap from a counter reset (driver reload, firmware reset): a backwards step is a
  wrap only if the forward distance modulo the range could have been drawn in the time
  since the previous read at the zone's plausible maximum power; otherwise it is a reset,
  flagged as warning ``rapl.counter_reset`` and never counted as a wrap;
* degrades only the component whose zone disappears or stops being readable.

The root is the ``root`` argument, else the environment variable
``GREENMETER_POWERCAP_ROOT``, else ``/sys/class/powercap``.

Size: about 750 lines, kept in one module because zone discovery, the wrap tracker,
the guard period and the degraded-zone handling share the zone state under one lock;
splitting them would pass that state across modules.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentKind,
    Method,
    Scope,
    Sensor,
    Unavailable,
)

__all__ = [
    "DEFAULT_ROOT",
    "ENV_ROOT",
    "CounterTracker",
    "RaplSensor",
    "RaplZone",
    "find_zones",
    "permission_fix",
    "plan_components",
    "poll_interval_for",
    "probe",
    "resolve_root",
]

ENV_ROOT = "GREENMETER_POWERCAP_ROOT"
DEFAULT_ROOT = "/sys/class/powercap"
MIN_POLL_INTERVAL_S = 0.05
MAX_POLL_INTERVAL_S = 10.0
#: Plausible maximum power per zone kind when the zone publishes no constraint (W).
#: Generous on purpose: the largest server packages are rated about 500 W.
DEFAULT_MAX_POWER_W = {"package": 800.0, "dram": 200.0, "psys": 1500.0}
#: Slack added to the time between two reads when judging a wrap (s): the counter
#: updates about every millisecond, so a read may see up to one update more.
WRAP_SLACK_S = 0.01
#: Published power constraints are multiplied by this to get the plausible maximum power
#: (short bursts run above the long-term limit).
CONSTRAINT_HEADROOM = 2.0
RESOLUTION_S = 0.001

_ZONE_RE = re.compile(r"^(intel-rapl(?:-mmio)?)((?::\d+)+)$")
_PACKAGE_RE = re.compile(r"^package-(\d+)(?:-die-(\d+))?$")
_CONTROLS = ("intel-rapl", "intel-rapl-mmio")

# update() outcomes
NORMAL, WRAP, RESET = 0, 1, 2


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The powercap root: ``root``, else ``$GREENMETER_POWERCAP_ROOT``, else the sysfs path."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_ROOT)
    return Path(env) if env else Path(DEFAULT_ROOT)


def permission_fix(root: str | os.PathLike[str]) -> str:
    """The commands that make ``energy_uj`` readable by an ordinary user."""
    r = str(root).rstrip("/")
    return (
        f"sudo chmod a+r {r}/intel-rapl:*/energy_uj {r}/intel-rapl:*:*/energy_uj "
        "(lasts until reboot). To keep it, add a udev rule: "
        'echo \'SUBSYSTEM=="powercap", KERNEL=="intel-rapl*", ACTION=="add", '
        'RUN+="/bin/chmod a+r /sys%p/energy_uj"\' | sudo tee '
        "/etc/udev/rules.d/99-greenmeter-powercap.rules && sudo udevadm control --reload "
        "&& sudo udevadm trigger --subsystem-match=powercap --action=add. "
        "Note: this re-opens the power side channel the kernel closed (CVE-2020-8694); on a "
        "shared machine grant a group instead (chgrp <group> + chmod g+r in the same rule)."
    )


def poll_interval_for(max_energy_range_uj: int, max_power_w: float) -> float:
    """The polling period (s) that keeps two reads under a quarter of a wrap apart.

    ``range / (4 x max_power)``, clamped to [0.05 s, 10 s].
    """
    safe = (max_energy_range_uj * 1e-6) / (4.0 * max(max_power_w, 1e-3))
    return min(MAX_POLL_INTERVAL_S, max(MIN_POLL_INTERVAL_S, safe))


class CounterTracker:
    """Turns successive raw readings of a wrapping counter into a cumulative total.

    Args:
        range_uj: The counter's wrap point (``max_energy_range_uj``), microjoules.
        max_power_w: The most power the zone can plausibly draw (W); used to tell a
            wrap from a reset.
        raw: The first raw reading (the origin of the total).
        t: The ``time.monotonic()`` instant of that reading.
    """

    __slots__ = ("last_raw", "last_t", "max_power_uw", "range_uj", "resets", "total_uj", "wraps")

    def __init__(self, range_uj: int, max_power_w: float, raw: int, t: float) -> None:
        self.range_uj = int(range_uj)
        self.max_power_uw = float(max_power_w) * 1e6
        self.last_raw = int(raw)
        self.last_t = t
        self.total_uj = 0
        self.wraps = 0
        self.resets = 0

    def update(self, raw: int, t: float) -> int:
        """Account a new raw reading taken at ``t``; returns NORMAL, WRAP or RESET."""
        d = raw - self.last_raw
        if d >= 0:
            self.total_uj += d
            self.last_raw = raw
            self.last_t = t
            return NORMAL
        allowed = self.max_power_uw * (t - self.last_t + WRAP_SLACK_S)
        forward = d + self.range_uj
        self.last_raw = raw
        self.last_t = t
        if 0 <= forward <= allowed:
            self.total_uj += forward
            self.wraps += 1
            return WRAP
        # A reset: the counter restarted from (about) zero at an unknown instant since
        # the previous read. Count what it shows if that is plausible energy since then.
        if raw <= allowed:
            self.total_uj += raw
        self.resets += 1
        return RESET

    def could_miss_wrap(self, t: float) -> bool:
        """True if so much time passed since the last read that a whole wrap fits in it."""
        return (t - self.last_t) * self.max_power_uw >= self.range_uj


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone as found on disk.

    Attributes:
        dirname: ``intel-rapl:0``, ``intel-rapl:0:2``, ``intel-rapl-mmio:0``.
        control: ``intel-rapl`` or ``intel-rapl-mmio``.
        name: Content of the ``name`` file.
        path: The zone's directory (symlinks resolved).
        parent: ``dirname`` of the enclosing zone, None for a top-level zone.
        max_energy_range_uj: Wrap point, microjoules (0 if unreadable).
        constraint_max_w: Largest published power constraint (W), or None.
    """

    dirname: str
    control: str
    name: str
    path: Path
    parent: str | None
    max_energy_range_uj: int
    constraint_max_w: float | None = None

    @property
    def kind(self) -> str:
        """``package``, ``dram``, ``psys``, ``core``, ``uncore`` or the raw name."""
        if _PACKAGE_RE.match(self.name):
            return "package"
        return self.name

    @property
    def energy_path(self) -> Path:
        return self.path / "energy_uj"


def _read_text(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _constraint_max_w(zdir: Path) -> float | None:
    best = 0
    try:
        names = os.listdir(zdir)
    except OSError:
        return None
    for n in names:
        if n.startswith("constraint_") and n.endswith(("_max_power_uw", "_power_limit_uw")):
            v = _read_int(zdir / n)
            if v is not None and v > best:
                best = v
    return best * 1e-6 if best > 0 else None


def find_zones(root: str | os.PathLike[str]) -> list[RaplZone]:
    """All RAPL zones under a powercap root, each once (top-level links and nested dirs)."""
    root = Path(root)
    found: dict[str, RaplZone] = {}  # by resolved path

    def visit(zdir: Path, dirname: str) -> None:
        m = _ZONE_RE.match(dirname)
        if m is None or not zdir.is_dir():
            return
        real = zdir.resolve()
        key = str(real)
        if key not in found:
            control, nums = m.group(1), m.group(2)
            parts = nums[1:].split(":")
            parent = f"{control}:{':'.join(parts[:-1])}" if len(parts) > 1 else None
            name = _read_text(zdir / "name")
            if name is None:
                return
            found[key] = RaplZone(
                dirname=dirname,
                control=control,
                name=name,
                path=real,
                parent=parent,
                max_energy_range_uj=_read_int(zdir / "max_energy_range_uj") or 0,
                constraint_max_w=_constraint_max_w(zdir),
            )
        try:
            children = sorted(os.listdir(zdir))
        except OSError:
            return
        for child in children:
            if _ZONE_RE.match(child) and child.startswith(dirname + ":"):
                visit(zdir / child, child)

    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return []
    for entry in entries:
        if entry in _CONTROLS:
            try:
                subs = sorted(os.listdir(root / entry))
            except OSError:
                continue
            for child in subs:
                visit(root / entry / child, child)
        elif _ZONE_RE.match(entry):
            visit(root / entry, entry)
    return sorted(found.values(), key=lambda z: (z.control != "intel-rapl", _sort_key(z.dirname)))


def _sort_key(dirname: str) -> tuple[int, ...]:
    return tuple(int(p) for p in dirname.split(":")[1:])


def _plausible_max_w(zone: RaplZone, override: float | None) -> float:
    if override is not None:
        return float(override)
    if zone.constraint_max_w:
        return zone.constraint_max_w * CONSTRAINT_HEADROOM
    return DEFAULT_MAX_POWER_W.get(zone.kind, DEFAULT_MAX_POWER_W["package"])


class _Live:
    """A zone being read: open descriptor plus its counter tracker."""

    __slots__ = ("checked_t", "component", "fd", "tracker", "zone")

    def __init__(self, zone: RaplZone, fd: int, tracker: CounterTracker, component: str) -> None:
        self.zone = zone
        self.fd = fd
        self.tracker = tracker
        self.component = component
        self.checked_t = 0.0  # last time a still counter was checked for removal


@dataclass
class _Plan:
    """Which zones make up which component (built by :func:`plan_components`)."""

    components: dict[str, list[RaplZone]] = field(default_factory=dict)
    info: dict[str, tuple[ComponentKind, Scope, str, str]] = field(default_factory=dict)
    skipped: list[RaplZone] = field(default_factory=list)


def plan_components(zones: Iterable[RaplZone], include_psys: bool = False) -> _Plan:
    """Map zones to components: packages per socket, dram per socket, psys if asked.

    Nested ``core``/``uncore`` zones and ``intel-rapl-mmio`` twins of zones already seen
    under ``intel-rapl`` are skipped.
    """
    zones = list(zones)
    by_dir = {(z.control, z.dirname): z for z in zones}
    plan = _Plan()
    from_msr: set[str] = set()  # components provided by the intel-rapl control type
    for z in zones:  # intel-rapl first, then mmio (find_zones order)
        top = z.parent is None
        socket_no: int | None = None
        if top:
            m = _PACKAGE_RE.match(z.name)
            if m is not None:
                socket_no = int(m.group(1))
        else:
            parent = by_dir.get((z.control, z.parent or ""))
            pm = _PACKAGE_RE.match(parent.name) if parent is not None else None
            if pm is not None:
                socket_no = int(pm.group(1))
        if top and socket_no is not None:
            cid = f"rapl:package-{socket_no}"
            info = (
                ComponentKind.CPU,
                Scope.CPU_PACKAGE,
                f"CPU package {socket_no}",
                str(socket_no),
            )
        elif not top and z.name == "dram" and socket_no is not None:
            cid = f"rapl:dram-{socket_no}"
            info = (ComponentKind.DRAM, Scope.DRAM, f"DRAM of package {socket_no}", str(socket_no))
        elif top and z.name == "psys" and include_psys:
            cid = "rapl:psys"
            info = (ComponentKind.PSYS, Scope.PLATFORM, "Platform (psys)", "")
        else:
            plan.skipped.append(z)
            continue
        if z.control == "intel-rapl":
            from_msr.add(cid)
        elif cid in from_msr:
            plan.skipped.append(z)  # an MMIO twin of a zone already read through intel-rapl
            continue
        plan.info[cid] = info
        plan.components.setdefault(cid, []).append(z)
    return plan


class RaplSensor(Sensor):
    """Cumulative energy of CPU packages, DRAM and optionally psys from powercap counters.

    Build it with :func:`probe`, which checks readability first and explains failures.

    Args:
        components: Component id -> the zones that make it up (from :func:`plan_components`).
        info: Component id -> (kind, scope, label, socket).
        host: Hostname recorded in each :class:`ComponentInfo`.
        max_power_w: Override of every zone's plausible maximum power (W).
        cpu_model: CPU model name recorded in ``detail``.
        root: The powercap root (for messages).

    Raises:
        OSError: If an ``energy_uj`` cannot be opened or read (``probe`` handles this).
    """

    name = "rapl"

    def __init__(
        self,
        components: dict[str, list[RaplZone]],
        info: dict[str, tuple[ComponentKind, Scope, str, str]],
        *,
        host: str | None = None,
        max_power_w: float | None = None,
        cpu_model: str = "",
        root: str | os.PathLike[str] = DEFAULT_ROOT,
    ) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._root = str(root)
        self._host = host or socket.gethostname()
        self._live: list[_Live] = []
        self._lost: list[_Live] = []
        self._by_component: list[tuple[str, tuple[_Live, ...]]] = []
        self._infos: list[ComponentInfo] = []
        self._late_warned = False
        periods = []
        try:
            for cid, zones in components.items():
                members = []
                for z in zones:
                    fd = os.open(z.energy_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    try:
                        raw = _parse(os.pread(fd, 32, 0))
                    except (OSError, ValueError):
                        os.close(fd)
                        raise
                    if z.max_energy_range_uj <= 0:
                        os.close(fd)
                        raise OSError(errno.EINVAL, "unreadable max_energy_range_uj", str(z.path))
                    pmax = _plausible_max_w(z, max_power_w)
                    periods.append(poll_interval_for(z.max_energy_range_uj, pmax))
                    live = _Live(
                        z,
                        fd,
                        CounterTracker(z.max_energy_range_uj, pmax, raw, time.monotonic()),
                        cid,
                    )
                    self._live.append(live)
                    members.append(live)
                self._by_component.append((cid, tuple(members)))
                kind, scope, label, sock = info[cid]
                pmaxes = sorted({_plausible_max_w(z, max_power_w) for z in zones})
                detail = {
                    "socket": sock,
                    "zone_path": ",".join(str(z.path) for z in zones),
                    "zone_names": ",".join(z.name for z in zones),
                    "cpu_model": cpu_model,
                    "max_energy_range_uj": ",".join(str(z.max_energy_range_uj) for z in zones),
                    "plausible_max_power_w": ",".join(f"{p:g}" for p in pmaxes),
                }
                self._infos.append(
                    ComponentInfo(
                        id=cid,
                        kind=kind,
                        scope=scope,
                        method=Method.COUNTER,
                        sensor="rapl",
                        label=label,
                        host=self._host,
                        resolution_s=RESOLUTION_S,
                        detail=detail,
                    )
                )
        except BaseException:
            self.close()
            raise
        self.poll_interval_s = min(periods) if periods else None
        self._unsafe_range = any(
            z.max_energy_range_uj * 1e-6 / (4.0 * _plausible_max_w(z, max_power_w))
            < MIN_POLL_INTERVAL_S
            for zones in components.values()
            for z in zones
        )
        if self._unsafe_range:
            self.warn(
                "rapl.range_small",
                "a RAPL counter wraps so fast that polling every "
                f"{MIN_POLL_INTERVAL_S} s may miss a whole wrap at full power",
                None,
                time.monotonic(),
            )

    # -- Sensor interface --------------------------------------------------------------

    def components(self) -> list[ComponentInfo]:
        return list(self._infos)

    def read(self, now: float) -> dict[str, float]:
        """Cumulative joules per component since the sensor was opened."""
        with self._lock:
            self._sample()
            return {
                cid: sum([m.tracker.total_uj for m in members]) * 1e-6
                for cid, members in self._by_component
            }

    def poll(self, now: float) -> None:
        """Read every zone (the wrap guard) and check that none has disappeared."""
        with self._lock:
            self._sample()
            for live in list(self._live):
                if _unlinked(live.fd):
                    self._drop(live, "its energy_uj file was removed", time.monotonic())

    def close(self) -> None:
        with self._lock:
            for live in self._live:
                try:
                    os.close(live.fd)
                except OSError:
                    pass
            self._lost.extend(self._live)
            self._live = []

    # -- extras ------------------------------------------------------------------------

    def wrap_counts(self) -> dict[str, int]:
        """Number of counter wraps seen per component (all zones summed)."""
        with self._lock:
            return {cid: sum(m.tracker.wraps for m in ms) for cid, ms in self._by_component}

    def reset_counts(self) -> dict[str, int]:
        """Number of counter resets seen per component."""
        with self._lock:
            return {cid: sum(m.tracker.resets for m in ms) for cid, ms in self._by_component}

    # -- internals ---------------------------------------------------------------------

    def _sample(self) -> None:
        """Read all live zones once (lock held)."""
        for live in list(self._live):  # _drop() removes from self._live
            try:
                data = os.pread(live.fd, 32, 0)
            except OSError as exc:
                self._drop(live, f"reading {live.zone.energy_path} failed: {exc}", time.monotonic())
                continue
            t = time.monotonic()
            try:
                raw = int(data)  # "123456\n": int() ignores the surrounding whitespace
            except ValueError:
                try:  # a value caught mid-rewrite ("5\n3456\n"): its first line is whole
                    raw = int(data[: data.find(b"\n")])
                except ValueError:
                    continue  # empty or garbled content: keep the previous value
            tr = live.tracker
            if raw == tr.last_raw and t - live.checked_t > STILL_CHECK_S:
                # A counter that stopped moving may be a zone that was removed while open
                # (the open file keeps its last content); notice it now, not only at the
                # next wrap-guard poll, which can be seconds away. Counters move about
                # every millisecond, so checking a still one at most every STILL_CHECK_S
                # keeps the common boundary read free of the extra system call.
                live.checked_t = t
                if _unlinked(live.fd):
                    self._drop(live, "its energy_uj file was removed", t)
                    continue
            if tr.could_miss_wrap(t) and not self._late_warned:
                self._late_warned = True
                self.warn(
                    "rapl.poll_late",
                    f"{live.zone.name} was not read for {t - tr.last_t:.1f} s, long enough for "
                    "a whole counter wrap at full power; energy may be under-counted. Poll "
                    f"at least every {self.poll_interval_s} s.",
                    live.component,
                    t,
                )
            ev = tr.update(raw, t)
            if ev == RESET:
                self.warn(
                    "rapl.counter_reset",
                    f"RAPL counter {live.zone.energy_path} went backwards by more than a wrap "
                    "can explain (driver reload or firmware reset); energy drawn between the "
                    "previous read and the reset is missing from this component.",
                    live.component,
                    t,
                )

    def _drop(self, live: _Live, why: str, t: float) -> None:
        if live in self._live:
            self._live.remove(live)
            self._lost.append(live)
            try:
                os.close(live.fd)
            except OSError:
                pass
        self.degrade(
            live.component,
            f"RAPL zone {live.zone.name} ({live.zone.dirname}) is gone: {why}. Its energy "
            "stops at the last value read; other components keep measuring.",
            "rapl.zone_lost",
            t,
        )


#: How often, at most, a counter that has not moved is checked for a removed zone (s).
STILL_CHECK_S = 0.02


def _unlinked(fd: int) -> bool:
    """True when the open file was removed from the tree (or cannot be queried)."""
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


def _parse(data: bytes) -> int:
    nl = data.find(b"\n")
    return int(data[:nl] if nl >= 0 else data)


def _open_error(zone: RaplZone) -> OSError | None:
    """Try to open and read a zone's counter; return the error, if any."""
    try:
        fd = os.open(zone.energy_path, os.O_RDONLY)
    except OSError as exc:
        return exc
    try:
        _parse(os.pread(fd, 32, 0))
    except OSError as exc:
        return exc
    except ValueError:
        return OSError(errno.EIO, "energy_uj holds no number", str(zone.energy_path))
    finally:
        os.close(fd)
    return None


_KIND_OF_COMPONENT = {
    "package": ComponentKind.CPU,
    "dram": ComponentKind.DRAM,
    "psys": ComponentKind.PSYS,
}


def probe(
    root: str | os.PathLike[str] | None = None,
    include_psys: bool = False,
    host: str | None = None,
    *,
    max_power_w: float | None = None,
) -> tuple[RaplSensor | None, list[Unavailable]]:
    """Find readable RAPL counters and build a :class:`RaplSensor`.

    Args:
        root: The powercap root; default ``$GREENMETER_POWERCAP_ROOT`` or
            ``/sys/class/powercap``.
        include_psys: Also measure the ``psys`` (platform) zone, as its own component.
        host: Hostname for the components (default this machine's).
        max_power_w: Plausible maximum power of every zone (W), overriding what the
            zones' power constraints suggest; sets the wrap-guard polling period.

    Returns:
        The sensor (None when no package counter can be read) and, for every RAPL
        component that is not measured, an :class:`Unavailable` with reason and fix.
        Never raises for a measurement problem.
    """
    path = resolve_root(root)
    unavailable: list[Unavailable] = []
    if not path.is_dir():
        return None, [
            Unavailable(
                "rapl",
                ComponentKind.CPU,
                f"no powercap tree at {path}: the RAPL driver is not loaded, or this is not "
                "Linux, or a container or VM that hides it (most cloud VMs expose no RAPL)",
                "on bare-metal Linux: sudo modprobe intel_rapl_msr; in a container, make the "
                "host's /sys/class/powercap visible (read-only bind mount); or point "
                f"{ENV_ROOT} at a powercap tree",
            )
        ]
    zones = find_zones(path)
    plan = plan_components(zones, include_psys=include_psys)
    if not any(cid.startswith("rapl:package-") for cid in plan.components):
        return None, [
            Unavailable(
                "rapl",
                ComponentKind.CPU,
                f"{path} has no RAPL package zone (found: "
                f"{', '.join(sorted({z.name for z in zones})) or 'nothing'})",
                "on bare-metal Linux with an Intel or AMD Zen CPU: sudo modprobe intel_rapl_msr",
            )
        ]
    # readability, per component
    components: dict[str, list[RaplZone]] = {}
    for cid, czones in plan.components.items():
        errors = [(z, e) for z in czones if (e := _open_error(z)) is not None]
        if not errors:
            components[cid] = czones
            continue
        z, exc = errors[0]
        kind = plan.info[cid][0]
        if exc.errno in (errno.EACCES, errno.EPERM):
            unavailable.append(
                Unavailable(
                    "rapl",
                    kind,
                    f"{z.energy_path} is readable only by root: since Linux 5.10 the kernel "
                    "makes RAPL energy_uj root-only to close the PLATYPUS power side channel "
                    f"(CVE-2020-8694), so {cid} cannot be measured as this user",
                    permission_fix(path),
                )
            )
        else:
            unavailable.append(
                Unavailable(
                    "rapl",
                    kind,
                    f"cannot read {z.energy_path}: {exc.strerror or exc} (errno {exc.errno}); "
                    f"{cid} is not measured",
                    "check that the file is a readable powercap counter; if it is root-only: "
                    + permission_fix(path),
                )
            )
    if not any(cid.startswith("rapl:package-") for cid in components):
        return None, unavailable
    sockets = {info[3] for cid, info in plan.info.items() if cid.startswith("rapl:package-")}
    for sock in sorted(sockets):
        if f"rapl:dram-{sock}" not in plan.components:
            unavailable.append(
                Unavailable(
                    "rapl",
                    ComponentKind.DRAM,
                    f"package {sock} has no RAPL dram zone (client CPUs and AMD Zen publish none)",
                    None,
                )
            )
    if not include_psys and any(z.name == "psys" and z.parent is None for z in zones):
        unavailable.append(
            Unavailable(
                "rapl",
                ComponentKind.PSYS,
                "the psys (platform) zone is not measured by default: it contains the "
                "packages and is a separate scope that must not be added to them",
                "pass include_psys=True to measure it as its own component rapl:psys",
            )
        )
    try:
        from greenmeter.sensors.estimate import cpu_model_name

        model = cpu_model_name()
    except Exception:  # pragma: no cover - model name is decoration
        model = ""
    try:
        sensor = RaplSensor(
            components,
            {cid: plan.info[cid] for cid in components},
            host=host,
            max_power_w=max_power_w,
            cpu_model=model,
            root=path,
        )
    except OSError as exc:
        return None, [
            *unavailable,
            Unavailable(
                "rapl",
                ComponentKind.CPU,
                f"RAPL counters under {path} could not be opened: {exc}",
                permission_fix(path),
            ),
        ]
    return sensor, unavailable
