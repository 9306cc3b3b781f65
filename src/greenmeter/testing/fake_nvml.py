"""A fake ``libnvidia-ml.so.1`` that the real ``pynvml`` loads, for tests without a GPU.

:class:`FakeNvml` compiles a small C library (``fake_nvml.c`` and the trace code it shares
with the other emulators, ``fake_trace.c``, both shipped with this package)
with the system C compiler, caches it under ``~/.cache/greenmeter/`` keyed by a hash of
the source, and writes a config describing the boards: name, UUID, PCI bus id,
architecture, a :class:`~greenmeter.testing.PowerTrace` per board, MIG slices, running
processes, which power readings are supported, and faults from given instants on.

The library serves, from each trace (same ``time.monotonic()`` time base):

* ``nvmlDeviceGetTotalEnergyConsumption``: the exact energy since the trace's ``t0`` in
  mJ (plus an optional offset, optionally quantised to an update step, optionally slow:
  ``call_latency_s``);
* field ``NVML_FI_DEV_POWER_INSTANT`` (186) of ``nvmlDeviceGetFieldValues``: the power now;
* ``nvmlDeviceGetPowerUsage``: the trailing 1 s average, refreshed every 100 ms, as
  Ampere and newer boards report it;

and the identity, limit, utilisation, memory, process and MIG queries around them.

Two ways to make a process use it:

* **In this process** (:meth:`FakeNvml.install`): the library is pre-loaded with
  ``ctypes.CDLL(path, RTLD_GLOBAL)``. ``pynvml`` later asks the dynamic loader for
  ``libnvidia-ml.so.1``; a library with that soname is already loaded, so it is reused.
  This must happen before anything in the process loaded a real NVIDIA library, and
  ``pynvml`` keeps the library for the life of the process.
* **In a child process** (:meth:`FakeNvml.env`): the dynamic loader reads
  ``LD_LIBRARY_PATH`` when a process starts, so pass these variables to ``subprocess``.

Example::

    import subprocess, sys
    from greenmeter.testing import FakeNvml, PowerTrace
    from greenmeter.testing.fake_nvml import FakeGpu

    trace = PowerTrace([(0.5, 250.0), (0.5, 310.0)])        # watts, repeats
    with FakeNvml([FakeGpu(trace), FakeGpu(trace)]) as fake:  # installs in this process
        import pynvml
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)   # mJ
        ...
        pynvml.nvmlShutdown()
    # or for another process, without installing here:
    fake = FakeNvml(2, trace=trace)
    subprocess.run([sys.executable, "train.py"], env={**os.environ, **fake.env()})

The config is read by the library's ``nvmlInit`` when no other initialisation is active,
so a process can use several :class:`FakeNvml` one after another, but only one at a time.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import uuid as uuid_mod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from greenmeter.testing.cbuild import build_shared_library, cache_root, emulator_source
from greenmeter.testing.fakelib import FakeLibrary, child_env, status_code
from greenmeter.testing.trace import PowerTrace

__all__ = [
    "ARCHITECTURES",
    "CONFIG_ENV",
    "ERRORS",
    "FakeFault",
    "FakeGpu",
    "FakeNvml",
    "FakeNvmlBuildError",
    "build_library",
    "child_env",
    "default_uuid",
]

#: Environment variable holding the config path the fake library reads at ``nvmlInit``.
CONFIG_ENV = "GREENMETER_FAKE_NVML_CONFIG"
LIBRARY_NAME = "libnvidia-ml.so.1"

#: NVML architecture codes (``nvmlDeviceArchitecture_t``) by name.
ARCHITECTURES: dict[str, int] = {
    "kepler": 2,
    "maxwell": 3,
    "pascal": 4,
    "volta": 5,
    "turing": 6,
    "ampere": 7,
    "ada": 8,
    "hopper": 9,
    "blackwell": 10,
}

#: NVML return codes by short name, for :class:`FakeFault` and ``init_error``.
ERRORS: dict[str, int] = {
    "uninitialized": 1,
    "invalid_argument": 2,
    "not_supported": 3,
    "no_permission": 4,
    "not_found": 6,
    "driver_not_loaded": 9,
    "timeout": 10,
    "library_not_found": 12,
    "function_not_found": 13,
    "gpu_lost": 15,
    "reset_required": 16,
    "in_use": 19,
    "unknown": 999,
}

_SCOPES = ("all", "energy", "instant", "power_usage")


class FakeNvmlBuildError(RuntimeError):
    """The fake library could not be compiled (no C compiler, or it failed)."""


def _error_code(error: str | int) -> int:
    return status_code(error, ERRORS, "NVML error")


@dataclass(frozen=True)
class FakeFault:
    """An NVML error returned from monotonic instant ``at`` on (until ``until``).

    Args:
        at: ``time.monotonic()`` instant the fault starts.
        error: A name from :data:`ERRORS` (``"gpu_lost"``, ``"not_supported"``...) or an
            NVML return code.
        scope: ``"all"`` (every call on the device fails), ``"energy"`` (only the energy
            counter), ``"instant"`` (only the instant power field, through the field's own
            return code) or ``"power_usage"`` (only ``nvmlDeviceGetPowerUsage``).
        until: ``time.monotonic()`` instant it ends (None: never): calls answer again
            from then on (a transient outage).
    """

    at: float
    error: str | int = "gpu_lost"
    scope: str = "all"
    until: float | None = None

    def __post_init__(self) -> None:
        _error_code(self.error)
        if self.scope not in _SCOPES:
            raise ValueError(f"fault scope must be one of {_SCOPES}, got {self.scope!r}")


@dataclass
class FakeGpu:
    """One emulated board.

    Args:
        trace: Its power draw (W); the ground truth of every reading.
        name: Product name as NVML reports it.
        uuid: ``GPU-...`` UUID; default: derived from the index, stable.
        pci_bus_id: ``domain:bus:device.function``; default: derived from the index.
        architecture: Name from :data:`ARCHITECTURES` or an NVML code; pre-Volta boards
            should also set ``energy_counter=False``.
        power_limit_w: Enforced power limit (W).
        memory_total_bytes: Board memory.
        memory_used_bytes: Memory in use.
        utilization_gpu_pct: Reported GPU utilisation (percent).
        utilization_memory_pct: Reported memory utilisation (percent).
        energy_counter: ``nvmlDeviceGetTotalEnergyConsumption`` is supported.
        instant_field: Field ``NVML_FI_DEV_POWER_INSTANT`` is supported.
        power_usage: ``nvmlDeviceGetPowerUsage`` is supported.
        energy_offset_j: Counter value at the trace's ``t0`` ("since driver load").
        counter_step_s: Quantise the energy counter to this update step (0 = exact).
        call_latency_s: How long one ``nvmlDeviceGetTotalEnergyConsumption`` call takes
            (s; an H200 takes ~0.0025); the value is taken half-way through the call.
            Other calls, the instant power field included, stay fast.
        processes: ``(pid, used_bytes)`` of compute processes on the board.
        mig_uuids: UUIDs of MIG slices; non-empty turns MIG mode on.
        faults: Errors injected at given instants.
    """

    trace: PowerTrace
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str | None = None
    pci_bus_id: str | None = None
    architecture: str | int = "hopper"
    power_limit_w: float = 700.0
    memory_total_bytes: int = 80 * 1024**3
    memory_used_bytes: int = 1024**3
    utilization_gpu_pct: int = 0
    utilization_memory_pct: int = 0
    energy_counter: bool = True
    instant_field: bool = True
    power_usage: bool = True
    energy_offset_j: float = 0.0
    counter_step_s: float = 0.0
    call_latency_s: float = 0.0
    processes: Sequence[tuple[int, int]] = ()
    mig_uuids: Sequence[str] = ()
    faults: Sequence[FakeFault] = field(default_factory=tuple)

    def architecture_code(self) -> int:
        """The NVML architecture code."""
        if isinstance(self.architecture, int):
            return self.architecture
        try:
            return ARCHITECTURES[self.architecture.lower()]
        except KeyError:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; use one of {sorted(ARCHITECTURES)}"
            ) from None


def default_uuid(index: int) -> str:
    """The stable UUID a :class:`FakeGpu` gets at ``index`` when none is given."""
    u = uuid_mod.uuid5(uuid_mod.NAMESPACE_URL, f"greenmeter-fake-gpu-{index}")
    return f"GPU-{u}"


def _source_text() -> bytes:
    return emulator_source("fake_nvml.c").encode()


def build_library(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Compile the fake library once and return the path of ``libnvidia-ml.so.1``.

    The result is cached under ``cache_dir`` (default ``$GREENMETER_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/greenmeter``, else ``~/.cache/greenmeter``) in a folder named by a
    hash of the C source, so a changed source is rebuilt and an unchanged one is not.
    The compiler is ``$CC``, else ``cc``, else ``gcc``.

    Raises:
        FakeNvmlBuildError: No C compiler, or the build failed (the message has its output).
    """
    source = _source_text()
    digest = hashlib.sha256(source).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return build_shared_library(
        source,
        root / f"fake-nvml-{digest}" / LIBRARY_NAME,
        error=FakeNvmlBuildError,
        what="the fake NVML library",
    )


class FakeNvml(FakeLibrary):
    """Emulated NVIDIA boards behind a fake ``libnvidia-ml.so.1``.

    Args:
        gpus: The boards, or a count of identical boards drawing ``trace``.
        trace: The power trace for boards given by count (default: 300 W constant).
        driver_version: What ``nvmlSystemGetDriverVersion`` returns.
        nvml_version: What ``nvmlSystemGetNVMLVersion`` returns.
        cuda_driver_version: What ``nvmlSystemGetCudaDriverVersion`` returns (e.g. 12040).
        init_error: Make ``nvmlInit`` fail with this error (name or code), e.g.
            ``"driver_not_loaded"`` or ``"no_permission"``.
        cache_dir: Where the compiled library is cached (see :func:`build_library`).

    The config file lives in a private temporary folder removed by :meth:`close`.
    """

    config_env = CONFIG_ENV

    def __init__(
        self,
        gpus: Sequence[FakeGpu] | int = 1,
        *,
        trace: PowerTrace | None = None,
        driver_version: str = "550.90.07",
        nvml_version: str = "12.550.90.07",
        cuda_driver_version: int = 12040,
        init_error: str | int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(gpus, int):
            shared = trace if trace is not None else PowerTrace.constant(300.0)
            gpus = [FakeGpu(shared) for _ in range(gpus)]
        self.gpus: list[FakeGpu] = list(gpus)
        self.driver_version = driver_version
        self.nvml_version = nvml_version
        self.cuda_driver_version = cuda_driver_version
        self.init_error = None if init_error is None else _error_code(init_error)
        self.library_path: Path = build_library(cache_dir)
        self._make_folder("greenmeter-fake-nvml-")
        self.write_config()

    # -- identity helpers ----------------------------------------------------------------

    @property
    def library_dir(self) -> Path:
        """Folder holding ``libnvidia-ml.so.1`` (for ``LD_LIBRARY_PATH``)."""
        return self.library_path.parent

    def uuid(self, index: int) -> str:
        """UUID of board ``index``."""
        return self.gpus[index].uuid or default_uuid(index)

    @property
    def uuids(self) -> list[str]:
        """UUIDs of all boards, in NVML index order."""
        return [self.uuid(i) for i in range(len(self.gpus))]

    def pci_bus_id(self, index: int) -> str:
        """PCI bus id of board ``index``."""
        return self.gpus[index].pci_bus_id or f"00000000:{0x18 + 0x10 * index:02X}:00.0"

    def energy_j(self, index: int, t_a: float, t_b: float) -> float:
        """Exact energy (J) board ``index`` drew between monotonic instants ``t_a``, ``t_b``."""
        return self.gpus[index].trace.energy_j(t_a, t_b)

    # -- config --------------------------------------------------------------------------

    def config_text(self) -> str:
        """The config the library reads, as text (one ``key value`` per line)."""
        lines = [
            f"driver_version {self.driver_version}",
            f"nvml_version {self.nvml_version}",
            f"cuda_version {int(self.cuda_driver_version)}",
        ]
        if self.init_error is not None:
            lines.append(f"init_error {self.init_error}")
        for i, g in enumerate(self.gpus):
            rows = g.trace.to_rows()
            lines += [
                "gpu",
                f"name {g.name}",
                f"uuid {self.uuid(i)}",
                f"pci_bus_id {self.pci_bus_id(i)}",
                "pci_device_id 0x233010DE",
                f"architecture {g.architecture_code()}",
                f"power_limit_mw {round(g.power_limit_w * 1000)}",
                f"memory_total {int(g.memory_total_bytes)}",
                f"memory_used {int(g.memory_used_bytes)}",
                f"util_gpu {int(g.utilization_gpu_pct)}",
                f"util_mem {int(g.utilization_memory_pct)}",
                f"energy_supported {int(g.energy_counter)}",
                f"instant_supported {int(g.instant_field)}",
                f"power_usage_supported {int(g.power_usage)}",
                f"energy_offset_mj {g.energy_offset_j * 1000.0!r}",
                f"counter_step_s {float(g.counter_step_s)!r}",
                f"call_latency_s {float(g.call_latency_s)!r}",
                f"t0 {g.trace.t0!r}",
                f"repeat {int(g.trace.repeat)}",
                f"steps {len(rows)}",
            ]
            lines += [f"step {d!r} {p!r}" for d, p in rows]
            lines += [f"process {int(pid)} {int(mem)}" for pid, mem in g.processes]
            lines += [
                f"fault {f.at!r} {_error_code(f.error)} {f.scope}"
                + (f" {f.until!r}" if f.until is not None else "")
                for f in g.faults
            ]
            lines += [f"mig {u}" for u in g.mig_uuids]
        return "\n".join(lines) + "\n"

    def env(self) -> dict[str, str]:
        """Environment variables that make a *child* process load this fake library.

        ``LD_LIBRARY_PATH`` (the library folder first, then any existing value) and the
        config path. Merge into the child's environment: ``{**os.environ, **fake.env()}``.
        """
        old = os.environ.get("LD_LIBRARY_PATH", "")
        ld = str(self.library_dir) + (os.pathsep + old if old else "")
        return {"LD_LIBRARY_PATH": ld, CONFIG_ENV: str(self.config_path)}

    # -- in-process use --------------------------------------------------------------------

    def install(self) -> FakeNvml:
        """Make ``pynvml`` in *this* process use the fake library.

        Pre-loads the library (``RTLD_GLOBAL``) so that ``pynvml``'s later
        ``CDLL("libnvidia-ml.so.1")`` gets it, and points the config variable at this
        instance's config. Call before the first ``nvmlInit`` of any code under test.

        Raises:
            RuntimeError: A different NVIDIA library is already loaded in this process.
        """
        self._refuse_foreign(
            "libnvidia-ml", "NVIDIA management library", "anything initialises NVML"
        )
        ctypes.CDLL(str(self.library_path), mode=ctypes.RTLD_GLOBAL)
        self._set_env({CONFIG_ENV: str(self.config_path)})
        return self
