"""A fake ``libamd_smi.so`` that the real ``amdsmi`` package loads, for tests without a GPU.

:class:`FakeAmdSmi` compiles a small C library (``fake_amdsmi.c``, shipped with this
package) with the system C compiler and caches it like the fake NVML library (see
:func:`greenmeter.testing.cbuild.cache_root`). It describes AMD boards in a config
file: name, identities (amdsmi UUID, the ROCm runtime's ``GPU-<unique id>``, PCI
address), a :class:`~greenmeter.testing.PowerTrace` per board (same ``time.monotonic()``
time base as the other emulators), the energy accumulator's resolution, width, starting
count and update step, which power fields exist, compute partitions, processes, and
faults over given intervals.

The library serves, from each trace:

* ``amdsmi_get_energy_count``: the exact energy since the trace's ``t0`` as a count of
  ``counter_resolution_uj`` microjoules (what amdsmi documents), plus
  ``counter_start``, kept to ``counter_bits`` bits so that it wraps, with the
  ``CLOCK_MONOTONIC`` instant of the update as timestamp (ns);
* ``amdsmi_get_power_info``: ``current_socket_power`` (the power now, W) and
  ``average_socket_power`` (a trailing average, W), each only where the board has it;

and the enumeration, identity, partition, driver, power-cap and process queries around
them. Boards with ``partitions > 1`` appear as several logical devices on one amdsmi
socket, as an MI300X in DPX/QPX/CPX mode does; one partition answers the power and
energy queries for the whole board.

How the real ``amdsmi`` package is pointed at it: the package finds ``libamd_smi.so``
through ``$ROCM_HOME/lib`` or ``$ROCM_PATH/lib`` (releases 6.4 and newer try
``ROCM_HOME`` first, 6.1 and 6.2 read ``ROCM_PATH``), then the dynamic loader. The
library is built into a folder laid out like a ROCm install (``<root>/lib/libamd_smi.so``)
and both variables are set to ``<root>``; nothing in the package is patched. It resolves
every C function it wraps when it is imported, so the build adds a stub returning
``AMDSMI_STATUS_NOT_SUPPORTED`` for each function the installed package names that the C
source does not implement; and since structure layouts change between amdsmi releases,
the config carries the installed package's own layouts (sizes and field offsets, read
from its ctypes definitions once, in a child process) and the library fills fields by
name.

Two ways to make a process use it:

* **In this process** (:meth:`FakeAmdSmi.install`): sets ``ROCM_HOME``, ``ROCM_PATH`` and
  the config variable. The package loads its library when it is first imported and
  keeps it for the life of the process, so install before anything imports ``amdsmi``.
* **In a child process** (:meth:`FakeAmdSmi.env`): pass these variables to
  ``subprocess``.

Example::

    from greenmeter.testing import FakeAmdSmi, PowerTrace
    from greenmeter.testing.fake_amdsmi import FakeAmdGpu

    trace = PowerTrace([(0.5, 450.0), (0.5, 600.0)])
    with FakeAmdSmi([FakeAmdGpu(trace), FakeAmdGpu(trace, partitions=4)]) as fake:
        import amdsmi
        amdsmi.amdsmi_init()
        h = amdsmi.amdsmi_get_processor_handles()[0]
        e = amdsmi.amdsmi_get_energy_count(h)   # counts of e["counter_resolution"] uJ
        amdsmi.amdsmi_shut_down()

Size: about 500 lines, one job: the Python side of one fake library (its config
file format, the build, and the trace data it serves). The C side is fake_amdsmi.c.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid as uuid_mod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenmeter.testing.cbuild import build_shared_library, cache_root, emulator_source
from greenmeter.testing.fakelib import FakeLibrary, child_env, status_code
from greenmeter.testing.trace import PowerTrace

__all__ = [
    "CONFIG_ENV",
    "ERRORS",
    "FakeAmdFault",
    "FakeAmdGpu",
    "FakeAmdSmi",
    "FakeAmdSmiBuildError",
    "binding_wrapper_path",
    "build_library",
    "child_env",
]

#: Environment variable holding the config path the fake library reads at ``amdsmi_init``.
CONFIG_ENV = "GREENMETER_FAKE_AMDSMI_CONFIG"
LIBRARY_NAME = "libamd_smi.so"

#: amdsmi status codes (``amdsmi_status_t``) by short name, for faults and ``init_error``.
ERRORS: dict[str, int] = {
    "inval": 1,
    "not_supported": 2,
    "timeout": 8,
    "retry": 9,
    "no_perm": 10,
    "io": 12,
    "file_error": 14,
    "init_error": 18,
    "busy": 30,
    "not_found": 31,
    "not_init": 32,
    "driver_not_loaded": 34,
    "no_data": 40,
    "unexpected_data": 43,
    "amdgpu_restart_err": 54,
    "unknown": 0xFFFFFFFF,
}

_SCOPES = ("all", "energy", "power")

#: The structures the library fills, by the name used in its config -> ctypes class name.
_STRUCTS = {
    "asic_info": "struct_amdsmi_asic_info_t",
    "kfd_info": "struct_amdsmi_kfd_info_t",
    "enumeration_info": "struct_amdsmi_enumeration_info_t",
    "driver_info": "struct_amdsmi_driver_info_t",
    "power_cap_info": "struct_amdsmi_power_cap_info_t",
    "power_info": "struct_amdsmi_power_info_t",
    "proc_info": "struct_amdsmi_proc_info_t",
}

_LAYOUT_CHILD = """
import ctypes, json, sys
import amdsmi.amdsmi_wrapper as w
out = {}
for key, name in json.loads(sys.argv[1]).items():
    cls = getattr(w, name, None)
    if cls is None:
        continue
    fields = {}
    for f in cls._fields_:
        d = getattr(cls, f[0])
        fields[f[0]] = [d.offset, d.size]
    out[key] = {"size": ctypes.sizeof(cls), "fields": fields}
print(json.dumps(out))
"""


class FakeAmdSmiBuildError(RuntimeError):
    """The fake library cannot be made: no C compiler, no ``amdsmi`` package, or a failure."""


def _error_code(error: str | int) -> int:
    return status_code(error, ERRORS, "amdsmi status")


@dataclass(frozen=True)
class FakeAmdFault:
    """An amdsmi status returned from monotonic instant ``at`` (until ``until``, if given).

    Args:
        at: ``time.monotonic()`` instant the fault starts.
        error: A name from :data:`ERRORS` (``"not_supported"``, ``"no_perm"``,
            ``"busy"``...) or an ``amdsmi_status_t`` value.
        scope: ``"all"`` (every call on the board fails), ``"energy"`` (only
            ``amdsmi_get_energy_count``) or ``"power"`` (only ``amdsmi_get_power_info``).
        until: ``time.monotonic()`` instant it ends; None for never.
    """

    at: float
    error: str | int = "not_supported"
    scope: str = "all"
    until: float | None = None

    def __post_init__(self) -> None:
        _error_code(self.error)
        if self.scope not in _SCOPES:
            raise ValueError(f"fault scope must be one of {_SCOPES}, got {self.scope!r}")
        if self.until is not None and not self.until > self.at:
            raise ValueError(f"fault until ({self.until!r}) must be after at ({self.at!r})")


@dataclass
class FakeAmdGpu:
    """One emulated physical board (an amdsmi socket).

    Defaults describe an MI300X in SPX mode: energy accumulator and current socket power,
    no average. An MI200-series board is ``current_power=False, average_power=True,
    compute_partition=None``.

    Args:
        trace: Its power draw (W); the ground truth of every reading.
        name: Market name as amdsmi reports it.
        serial: The board's unique id (64 bits); the ROCm runtime names the board
            ``GPU-<16 hex digits of it>``. Default: derived from the index, stable.
        uuid: amdsmi's UUID for the board; default derived from ``serial``.
        bdf: PCI address ``domain:bus:device.function``; default derived from the index.
        device_id: PCI device id.
        gfx_version: ``target_graphics_version`` as a number (``0x942`` is gfx942).
        compute_partition: ``"SPX"``, ``"DPX"``, ``"QPX"``, ``"CPX"``...; None where the
            board has no partitions (the query answers NOT_SUPPORTED).
        memory_partition: ``"NPS1"``, ``"NPS4"``...; None for NOT_SUPPORTED.
        partitions: Logical devices this board appears as (1 to 8).
        metrics_partition: The partition that answers power and energy queries; None for
            every partition (each answering with the whole board's readings).
        energy_counter: ``amdsmi_get_energy_count`` is supported.
        current_power: ``current_socket_power`` is reported.
        average_power: ``average_socket_power`` is reported.
        average_window_s: The averaging window of ``average_socket_power`` (s).
        counter_resolution_uj: Microjoules per count of the accumulator.
        counter_bits: Width of the accumulator (it wraps at 2^bits).
        counter_start: The accumulator's count at the trace's ``t0``.
        counter_step_s: Update step of the accumulator (0 = exact).
        power_cap_w: Power cap (W).
        processes: ``(pid, vram_bytes)`` of the processes on the board.
        faults: Errors injected over given intervals.
    """

    trace: PowerTrace
    name: str = "AMD Instinct MI300X"
    serial: int | None = None
    uuid: str | None = None
    bdf: str | None = None
    device_id: int = 0x74A1
    gfx_version: int = 0x942
    compute_partition: str | None = "SPX"
    memory_partition: str | None = "NPS1"
    partitions: int = 1
    metrics_partition: int | None = 0
    energy_counter: bool = True
    current_power: bool = True
    average_power: bool = False
    average_window_s: float = 1.0
    counter_resolution_uj: float = 15.3
    counter_bits: int = 64
    counter_start: int = 0
    counter_step_s: float = 0.0
    power_cap_w: float = 750.0
    processes: Sequence[tuple[int, int]] = ()
    faults: Sequence[FakeAmdFault] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 8:
            raise ValueError(f"partitions must be 1 to 8, got {self.partitions!r}")
        if not 1 <= self.counter_bits <= 64:
            raise ValueError(f"counter_bits must be 1 to 64, got {self.counter_bits!r}")
        if not self.counter_resolution_uj > 0:
            raise ValueError("counter_resolution_uj must be a positive number of microjoules")
        if not 0 <= self.counter_start < 2**64:
            raise ValueError("counter_start must be a count from 0 to 2^64 - 1")


def default_serial(index: int) -> int:
    """The stable unique id a :class:`FakeAmdGpu` gets at ``index`` when none is given."""
    u = uuid_mod.uuid5(uuid_mod.NAMESPACE_URL, f"greenmeter-fake-amd-gpu-{index}")
    return u.int >> 64


def amdsmi_uuid(serial: int, device_id: int) -> str:
    """A UUID in amdsmi's layout: function 0xff, device id, then the unique id's bytes."""
    return (
        f"ff{(serial >> 56) & 0xFF:02x}{device_id & 0xFFFF:04x}-0000-1000-80"
        f"{(serial >> 48) & 0xFF:02x}-{(serial >> 32) & 0xFFFF:04x}{serial & 0xFFFFFFFF:08x}"
    )


# -- building ------------------------------------------------------------------------------


def binding_wrapper_path() -> Path:
    """The installed ``amdsmi`` package's ``amdsmi_wrapper.py`` (found without importing it).

    Raises:
        FakeAmdSmiBuildError: The ``amdsmi`` package is not installed.
    """
    spec = importlib.util.find_spec("amdsmi")
    if spec is None or not spec.submodule_search_locations:
        raise FakeAmdSmiBuildError(
            "the amdsmi package is not installed; the fake AMD SMI library is loaded by it "
            "(pip install amdsmi, or greenmeter[amd])"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "amdsmi_wrapper.py"
    if not path.is_file():
        raise FakeAmdSmiBuildError(f"the amdsmi package has no amdsmi_wrapper.py ({path})")
    return path


def _stub_source(c_source: str, wrapper_text: str) -> str:
    """C stubs for the functions the binding resolves that the C source does not define."""
    wanted = sorted(set(re.findall(r"_libraries\['libamd_smi\.so'\]\.(\w+)", wrapper_text)))
    defined = set(re.findall(r"^EXPORT\s+\w+\s+(\w+)\(", c_source, flags=re.MULTILINE))
    lines = ["", "/* ---- generated: functions this emulator does not implement ---- */"]
    lines += [f"EXPORT int {name}(void) {{ return 2; }}" for name in wanted if name not in defined]
    return "\n".join(lines) + "\n"


def build_library(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Compile the fake library for the installed ``amdsmi`` package; its path.

    The library is ``<root>/lib/libamd_smi.so`` (``<root>`` is what ``ROCM_HOME`` is set
    to), in a folder of the cache named by a hash of the C source and of the package's
    ``amdsmi_wrapper.py``, so another package version gets its own build.

    Raises:
        FakeAmdSmiBuildError: No ``amdsmi`` package, no C compiler, or the build failed.
    """
    c_source = emulator_source("fake_amdsmi.c")
    wrapper = binding_wrapper_path().read_text(encoding="utf-8", errors="replace")
    source = (c_source + _stub_source(c_source, wrapper)).encode()
    digest = hashlib.sha256(source + wrapper.encode()).hexdigest()[:16]
    base = Path(cache_dir) if cache_dir is not None else cache_root()
    return build_shared_library(
        source,
        base / f"fake-amdsmi-{digest}" / "lib" / LIBRARY_NAME,
        error=FakeAmdSmiBuildError,
        what="the fake AMD SMI library",
    )


def _layouts(root: Path) -> dict[str, Any]:
    """The installed binding's structure layouts, read once in a child process and cached."""
    cached = root / "layouts.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env.update(ROCM_HOME=str(root), ROCM_PATH=str(root))
    proc = subprocess.run(
        [sys.executable, "-c", _LAYOUT_CHILD, json.dumps(_STRUCTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise FakeAmdSmiBuildError(
            "the amdsmi package could not be imported over the fake library to read its "
            f"structure layouts (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    from greenmeter.files import write_file

    write_file(cached, lines[-1])
    return json.loads(lines[-1])


# -- the emulator --------------------------------------------------------------------------


class FakeAmdSmi(FakeLibrary):
    """Emulated AMD boards behind a fake ``libamd_smi.so``.

    Args:
        gpus: The boards, or a count of identical boards drawing ``trace``.
        trace: The power trace for boards given by count (default: 500 W constant).
        driver_version: What ``amdsmi_get_gpu_driver_info`` reports.
        init_error: Make ``amdsmi_init`` fail with this status (name or code), e.g.
            ``"driver_not_loaded"`` or ``"no_perm"``.
        kfd_order: The ROCm runtime's numbering of the logical devices: entry ``k`` is
            the runtime ordinal of amdsmi's ``k``-th device. Default: the same order.
        cache_dir: Where the compiled library is cached (see :func:`build_library`).

    The config file lives in a private temporary folder removed by :meth:`close`.
    """

    config_env = CONFIG_ENV

    def __init__(
        self,
        gpus: Sequence[FakeAmdGpu] | int = 1,
        *,
        trace: PowerTrace | None = None,
        driver_version: str = "6.10.5",
        init_error: str | int | None = None,
        kfd_order: Sequence[int] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(gpus, int):
            shared = trace if trace is not None else PowerTrace.constant(500.0)
            gpus = [FakeAmdGpu(shared) for _ in range(gpus)]
        self.gpus: list[FakeAmdGpu] = list(gpus)
        n_devices = sum(g.partitions for g in self.gpus)
        if kfd_order is not None and sorted(kfd_order) != list(range(n_devices)):
            raise ValueError(
                f"kfd_order must be a permutation of 0..{n_devices - 1} (one entry per "
                f"logical device), got {list(kfd_order)!r}"
            )
        self.kfd_order = list(kfd_order) if kfd_order is not None else None
        self.driver_version = driver_version
        self.init_error = None if init_error is None else _error_code(init_error)
        self.library_path: Path = build_library(cache_dir)
        self.root: Path = self.library_path.parent.parent
        self.layouts: dict[str, Any] = _layouts(self.root)
        self._make_folder("greenmeter-fake-amdsmi-")
        self.write_config()

    # -- identities ----------------------------------------------------------------------

    def serial(self, index: int) -> int:
        """Unique id of board ``index``."""
        return (
            self.gpus[index].serial
            if self.gpus[index].serial is not None
            else default_serial(index)
        )

    def uuid(self, index: int) -> str:
        """amdsmi's UUID of board ``index``."""
        g = self.gpus[index]
        return g.uuid or amdsmi_uuid(self.serial(index), g.device_id)

    def rocr_uuid(self, index: int) -> str:
        """The ROCm runtime's name of board ``index``: ``GPU-<16 hex digits>``."""
        return f"GPU-{self.serial(index):016x}"

    def bdf(self, index: int) -> str:
        """PCI address of board ``index`` (its partition 0)."""
        return self.gpus[index].bdf or f"0000:{(0x0C + 3 * index) & 0xFF:02x}:00.0"

    def energy_j(self, index: int, t_a: float, t_b: float) -> float:
        """Exact energy (J) board ``index`` drew between monotonic instants ``t_a``, ``t_b``."""
        return self.gpus[index].trace.energy_j(t_a, t_b)

    # -- config --------------------------------------------------------------------------

    def config_text(self) -> str:
        """The config the library reads, as text (one ``key value`` per line)."""
        lines = [f"driver_version {self.driver_version}"]
        if self.init_error is not None:
            lines.append(f"init_error {self.init_error}")
        for name, layout in self.layouts.items():
            lines.append(f"layout {name} {int(layout['size'])}")
            lines += [
                f"field {fname} {int(off)} {int(size)}"
                for fname, (off, size) in layout["fields"].items()
            ]
        for i, g in enumerate(self.gpus):
            rows = g.trace.to_rows()
            metrics = -1 if g.metrics_partition is None else int(g.metrics_partition)
            lines += [
                "board",
                f"name {g.name}",
                f"uuid {self.uuid(i)}",
                f"serial {self.serial(i):016x}",
                f"bdf {self.bdf(i)}",
                f"device_id {int(g.device_id)}",
                f"gfx_version {int(g.gfx_version)}",
                f"partitions {int(g.partitions)}",
                f"metrics_partition {metrics}",
                f"energy_supported {int(g.energy_counter)}",
                f"current_supported {int(g.current_power)}",
                f"average_supported {int(g.average_power)}",
                f"average_window_s {float(g.average_window_s)!r}",
                f"resolution_uj {float(g.counter_resolution_uj)!r}",
                f"counter_bits {int(g.counter_bits)}",
                f"counter_start {int(g.counter_start)}",
                f"counter_step_s {float(g.counter_step_s)!r}",
                f"power_cap_w {float(g.power_cap_w)!r}",
                f"t0 {g.trace.t0!r}",
                f"repeat {int(g.trace.repeat)}",
                f"steps {len(rows)}",
            ]
            if g.compute_partition:
                lines.append(f"compute_partition {g.compute_partition}")
            if g.memory_partition:
                lines.append(f"memory_partition {g.memory_partition}")
            lines += [f"step {d!r} {p!r}" for d, p in rows]
            lines += [f"process {int(pid)} {int(mem)}" for pid, mem in g.processes]
            lines += [
                f"fault {f.at!r} {(f.until if f.until is not None else f.at)!r} "
                f"{_error_code(f.error)} {f.scope}"
                for f in g.faults
            ]
        if self.kfd_order is not None:
            lines += [f"node {dev} {ordinal + 1}" for dev, ordinal in enumerate(self.kfd_order)]
        return "\n".join(lines) + "\n"

    def env(self) -> dict[str, str]:
        """Environment variables that make a *child* process load this fake library.

        ``ROCM_HOME`` and ``ROCM_PATH`` (where the package looks for ``lib/libamd_smi.so``)
        and the config path. Merge into the child's environment:
        ``{**os.environ, **fake.env()}``.
        """
        return {
            "ROCM_HOME": str(self.root),
            "ROCM_PATH": str(self.root),
            CONFIG_ENV: str(self.config_path),
        }

    # -- in-process use ----------------------------------------------------------------------

    def install(self) -> FakeAmdSmi:
        """Make the ``amdsmi`` package in *this* process use the fake library.

        Sets the variables of :meth:`env` (restored by :meth:`uninstall`). Call before
        anything in this process imports ``amdsmi``; a package already imported over
        this same library is fine.

        Raises:
            RuntimeError: Another AMD SMI library is already loaded in this process.
        """
        self._refuse_foreign("libamd_smi", "AMD SMI library", "anything imports amdsmi")
        self._set_env(self.env())
        return self
