"""Running peer tools (CodeCarbon, Zeus) on an emulated powercap tree.

Both peers hard-code ``/sys/class/powercap`` (and CodeCarbon also scans
``/sys/devices/virtual/powercap``). To measure them on the same emulated tree as
greenmeter, a worker process runs in a private mount namespace where those two paths
show the emulator's directories:

* ``/sys/class`` and ``/sys/devices/virtual`` are each covered by a small tmpfs in which
  every original entry is bind-mounted back (so ``/sys/class/net/lo`` and the like keep
  working: the relative symlinks of sysfs still resolve), plus a ``powercap`` directory
  bound to the emulator's ``class/powercap`` and ``devices/virtual/powercap``;
* the emulator's updater keeps running outside the namespace: it writes the very files
  that are bound inside, so the counters are live there too;
* nothing outside the worker's namespace changes.

This needs root (or ``CAP_SYS_ADMIN``) and ``unshare`` from util-linux.

The second half of the module holds the peer adapters, imported by the worker that runs
under the peers' interpreter (``/root/peers/bin/python`` by default, or
``$GREENMETER_PEERS_PYTHON``). Each adapter opens its tool, opens and closes measurement
windows, and returns the package and DRAM energy (joules) it attributes to a window.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "NAMESPACE_SETUP",
    "PEERS",
    "CodeCarbonAdapter",
    "ZeusAdapter",
    "namespace_command",
    "namespace_problem",
    "peer_problem",
    "peers_python",
]

#: Peer name -> module whose import proves the peer is installed.
PEERS: dict[str, str] = {"codecarbon": "codecarbon", "zeus": "zeus.monitor"}

#: Shell script run as ``sh -c NAMESPACE_SETUP sh SYSFS_ROOT CMD...`` inside ``unshare -m``.
#: It shows ``SYSFS_ROOT/class/powercap`` at ``/sys/class/powercap`` and
#: ``SYSFS_ROOT/devices/virtual/powercap`` at ``/sys/devices/virtual/powercap``, then
#: execs the command.
NAMESPACE_SETUP = r"""
set -eu
sysfs="$1"; shift
mount --make-rprivate /
stash=$(mktemp -d /tmp/greenmeter-ns.XXXXXX)
for sub in class devices/virtual; do
  mkdir -p "$stash/$sub"
  mount --bind "/sys/$sub" "$stash/$sub"
  mount -t tmpfs -o mode=755 greenmeter-bench "/sys/$sub"
  for entry in "$stash/$sub"/*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=${entry##*/}
    if [ -L "$entry" ]; then
      cp -P "$entry" "/sys/$sub/$name"
    elif [ -d "$entry" ]; then
      mkdir "/sys/$sub/$name"; mount --bind "$entry" "/sys/$sub/$name"
    else
      touch "/sys/$sub/$name"; mount --bind "$entry" "/sys/$sub/$name"
    fi
  done
  mkdir -p "/sys/$sub/powercap"
done
mount --bind "$sysfs/class/powercap" /sys/class/powercap
mount --bind "$sysfs/devices/virtual/powercap" /sys/devices/virtual/powercap
for sub in class devices/virtual; do umount -l "$stash/$sub"; done
rm -rf "$stash"
exec "$@"
"""


def peers_python() -> str:
    """The interpreter of the peers' virtual environment."""
    return os.environ.get("GREENMETER_PEERS_PYTHON", "/root/peers/bin/python")


def namespace_problem() -> str | None:
    """Why peers cannot be run in a private mount namespace here, or None if they can."""
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"a private mount namespace needs root (the benchmark runs as uid {os.geteuid()})"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"`unshare -m` failed: {probe.stderr.strip() or probe.returncode}"
    return None


def peer_problem(peer: str, python: str | None = None) -> str | None:
    """Why ``peer`` cannot be imported by the peers' interpreter, or None if it can."""
    python = python or peers_python()
    if not Path(python).exists():
        return f"peers interpreter {python} not found (set GREENMETER_PEERS_PYTHON)"
    module = PEERS[peer]
    probe = subprocess.run(
        [python, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`import {module}` failed under {python}: {last}"
    return None


def namespace_command(sysfs_root: str | os.PathLike[str], argv: Sequence[str]) -> list[str]:
    """The command running ``argv`` where ``/sys`` shows the emulated powercap tree.

    Args:
        sysfs_root: The emulator's sysfs directory (it contains ``class/`` and
            ``devices/``), i.e. ``EmulatedPowercap.sysfs_root``.
        argv: The command to run inside the namespace.
    """
    return [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        NAMESPACE_SETUP,
        "sh",
        str(sysfs_root),
        *argv,
    ]


# -- adapters (run inside the namespace, under the peers' interpreter) -----------------

_KWH_J = 3.6e6


class CodeCarbonAdapter:
    """CodeCarbon's ``OfflineEmissionsTracker`` with tasks as measurement windows.

    Offline (no geolocation), no output files or API, log level ``error``, machine
    tracking mode, RAPL with DRAM included where CodeCarbon accepts it. Windows are
    ``start_task``/``stop_task``; a task's ``cpu_energy`` (kWh) is its package energy.
    """

    name = "codecarbon"
    boundary_api = "start_task + stop_task"

    def __init__(self) -> None:
        self.tracker: Any = None
        self.version = ""

    def open(self) -> None:
        import logging

        import codecarbon
        from codecarbon import OfflineEmissionsTracker

        self.version = codecarbon.__version__
        self.tracker = OfflineEmissionsTracker(
            country_iso_code="DEU",
            log_level="error",
            save_to_file=False,
            save_to_api=False,
            save_to_logger=False,
            allow_multiple_runs=True,
            tracking_mode="machine",
            rapl_include_dram=True,
            gpu_ids=[],
        )
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.tracker.start()

    def check(self) -> None:
        """Raise with the reason when the tracker is not reading the emulated RAPL."""
        hw = getattr(self.tracker, "_hardware", None)
        if not hw:
            raise RuntimeError("CodeCarbon set up no hardware to track")
        modes = [getattr(h, "_mode", type(h).__name__) for h in hw]
        if "intel_rapl" not in modes:
            raise RuntimeError(
                f"CodeCarbon did not pick its RAPL path on the emulated tree (modes {modes})"
            )

    def begin(self, name: str) -> str:
        self.tracker.start_task(name)
        return name

    def end(self, token: str) -> dict[str, float | None]:
        data = self.tracker.stop_task(token)
        if data is None:
            raise RuntimeError(f"CodeCarbon returned no data for task {token!r}")
        # DRAM below a package is skipped by CodeCarbon (to avoid double counting), so
        # cpu_energy is the packages only; its ram_energy is a model, not a counter.
        return {"package_j": float(data.cpu_energy) * _KWH_J, "dram_j": None}

    def background_pids(self) -> list[int]:
        return []

    def close(self) -> None:
        if self.tracker is not None:
            try:
                self.tracker.stop()
            except Exception:
                pass


class ZeusAdapter:
    """Zeus's ``ZeusMonitor`` on CPUs only (``gpu_indices=[]``).

    Zeus finds RAPL under ``/sys/class/powercap/intel-rapl`` (one "CPU" per top-level
    ``intel-rapl:N`` zone, its ``dram`` subzone as that CPU's DRAM) and starts, on the
    first read of each zone, one process per ``energy_uj`` file to count wraparounds.
    """

    name = "zeus"
    boundary_api = "begin_window + end_window"

    def __init__(self) -> None:
        self.monitor: Any = None
        self.version = ""
        self._seq = 0

    def open(self) -> None:
        import logging

        import zeus
        from zeus.monitor import ZeusMonitor

        logging.getLogger("zeus").setLevel(logging.ERROR)
        self.version = getattr(zeus, "__version__", "")
        self.monitor = ZeusMonitor(gpu_indices=[])

    def check(self) -> None:
        if not self.monitor.cpu_indices:
            raise RuntimeError("Zeus found no RAPL CPU in /sys/class/powercap/intel-rapl")

    def begin(self, name: str) -> str:
        self.monitor.begin_window(name, sync_execution=False)
        return name

    def end(self, token: str) -> dict[str, float | None]:
        m = self.monitor.end_window(token, sync_execution=False)
        cpu = m.cpu_energy or {}
        dram = m.dram_energy or {}
        return {
            "package_j": float(sum(cpu.values())),
            "dram_j": float(sum(dram.values())) if dram else None,
        }

    def background_pids(self) -> list[int]:
        try:
            import psutil

            return [p.pid for p in psutil.Process().children(recursive=True)]
        except Exception:
            return []

    def close(self) -> None:
        # The wrap-tracker processes are stopped by Zeus's atexit handlers.
        pass


def wait_children_idle(
    step_s: float = 0.25, idle_cpu_s: float = 0.002, timeout_s: float = 60.0
) -> tuple[int, float]:
    """Wait until this process's helper processes have started up and gone quiet.

    Zeus starts its wrap trackers as fresh interpreters that import Zeus; until that
    is done they count no wraps. Returns (number of helpers, seconds waited).
    """
    try:
        import psutil
    except ImportError:
        return 0, 0.0

    def cpu(procs: list[Any]) -> float:
        total = 0.0
        for p in procs:
            try:
                ct = p.cpu_times()
                total += ct.user + ct.system
            except psutil.Error:
                pass
        return total

    t0 = time.monotonic()
    me = psutil.Process()
    quiet = 0
    kids = me.children(recursive=True)
    last = cpu(kids)
    while kids and time.monotonic() - t0 < timeout_s and quiet < 4:
        time.sleep(step_s)
        kids = me.children(recursive=True)
        now = cpu(kids)
        quiet = quiet + 1 if now - last < idle_cpu_s * len(kids) else 0
        last = now
    return len(kids), time.monotonic() - t0
