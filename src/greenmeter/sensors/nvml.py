"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, module ``pynvml``).

Per board, the best reading the board offers is chosen at start-up, by trying it:

1. **Energy counter** (``nvmlDeviceGetTotalEnergyConsumption``, mJ since driver load,
   Volta and newer), method ``counter``. Under a meter, a reader thread per board follows
   the counter's updates (:mod:`~greenmeter.sensors.nvml_tracker`) and a boundary only
   records its instant: the phase's energy is placed between two updates by instant
   power (:mod:`~greenmeter.sensors.placement`), so no boundary waits on the driver.
   :meth:`NvmlSensor.read` on its own still reads the counter directly.
2. **Instant power field** (``NVML_FI_DEV_POWER_INSTANT``, checking the field's own
   return code): sampled every ``sample_interval_s`` by the meter's thread and at every
   boundary, integrated with the trapezoid rule, method ``sampled``.
3. **nvmlDeviceGetPowerUsage**: the same sampling, but on Ampere and newer (except GA100)
   this value is a trailing 1-second average, so energy lags the real draw by about
   half a second; the component says so (``power_source`` = ``power_usage_1s_average``).

Sampled boards take a fresh sample at each ``read(now)``, so a boundary is a sample
instant and the energies of consecutive phases add up exactly to the total; nothing is
interpolated or extrapolated.

Which boards: by default those this process can see, honouring ``CUDA_VISIBLE_DEVICES``
the way CUDA does (indices, ``GPU-`` UUIDs or unique prefixes of them, ``MIG-`` ids;
parsing stops at the first invalid entry). NVML itself ignores that variable and
enumerates every board, so boards are matched by UUID. A MIG slice has no power reading
of its own: its parent board is measured and marked ``shared``.

Nothing here imports ``pynvml`` at module import; :func:`probe` does.

Size: about 720 lines, the sensor's one class and the probing that chooses each board's
reading (counter, instant field, 1 s average), kept together because the choice and the
reading share the board state. Board discovery is in ``nvml_devices``, NVML's codes in
``nvml_errors``, the counter readers in ``nvml_tracker`` and placement in ``placement``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenmeter.sensors import nvml_errors
from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentKind,
    ComponentStatus,
    Method,
    Scope,
    Sensor,
    Unavailable,
)
from greenmeter.sensors.nvml_devices import Board as _Board
from greenmeter.sensors.nvml_devices import Resolver as _Resolver
from greenmeter.sensors.nvml_devices import parse_visible_devices, select_boards, text
from greenmeter.sensors.nvml_errors import error_info
from greenmeter.sensors.nvml_power import InstantPower
from greenmeter.sensors.nvml_tracker import CONTINUOUS_BELOW_S, BoardSpec, GpuTracker
from greenmeter.sensors.readings import measure_update_steps, slow_calls
from greenmeter.sensors.readings import timed as _timed

__all__ = [
    "NVML_FI_DEV_POWER_INSTANT",
    "NvmlSensor",
    "parse_visible_devices",
    "probe",
]

#: NVML field id of the instantaneous board power (mW); the same as
#: ``pynvml.NVML_FI_DEV_POWER_INSTANT``, which the calls use.
NVML_FI_DEV_POWER_INSTANT = 186

SOURCE_COUNTER = "energy_counter"
SOURCE_INSTANT = "instant_field"
SOURCE_POWER_USAGE = "power_usage_1s_average"

_ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada",
    9: "Hopper",
    10: "Blackwell",
}

# Start-up probe of the energy counter's update step: time budget and wanted changes.
_STEP_PROBE_BUDGET_S = 0.12
_STEP_PROBE_CHANGES = 4
#: A step seen from one gap less precisely than this share is not used: the counter
#: trackers schedule their reads by it, so they take 100 ms (H100/H200) and refine it
#: from the updates they see. Eight boards read in turn, 2.5 ms a call, see a 100 ms
#: counter change once or twice, each change known within ~20 ms.
_STEP_PROBE_MAX_ERROR = 0.05
_MIN_RESOLUTION_S = 0.01
_DEFAULT_COUNTER_RESOLUTION_S = 0.1
_SLOW_CALL_S = 0.010  # an H200 takes ~2-6 ms per energy read: normal, not worth a warning


_error_info = error_info


_text = text


# -- per-board state ---------------------------------------------------------------------


@dataclass
class _Device:
    board: _Board
    component_id: str
    source: str
    # counter path (mJ)
    base_mj: int = 0
    last_mj: int = 0
    offset_j: float = 0.0
    # sampled path
    last_t: float | None = None
    last_p_w: float = 0.0
    energy_j: float = 0.0
    dead: bool = False
    instant: InstantPower | None = None

    def cumulative_j(self) -> float:
        if self.source == SOURCE_COUNTER:
            return self.offset_j + (self.last_mj - self.base_mj) / 1000.0
        return self.energy_j


class NvmlSensor(Sensor):
    """Cumulative energy of NVIDIA boards; build it with :func:`probe`.

    Args:
        nvml: The initialised ``pynvml`` module (this sensor shuts it down on close).
        devices: Per-board state prepared by :func:`probe`.
        components: The matching component descriptions.
        sample_interval_s: Polling period for sampled boards (s).
        call_costs_s: Start-up timings of the NVML calls used (s), by function name.
    """

    name = "nvml"

    def __init__(
        self,
        nvml: Any,
        devices: list[_Device],
        components: list[ComponentInfo],
        *,
        sample_interval_s: float,
        call_costs_s: dict[str, float],
        tracker: GpuTracker | None = None,
    ) -> None:
        super().__init__()
        self._nvml = nvml
        #: Reads the counter boards off the caller's thread (None: read at each call).
        self.tracker = tracker
        #: :meth:`read` reads every counter itself, so each figure is exact at once
        #: (a meter turns this off: it resolves boundaries from the tracker).
        self.wait_exact = True
        self._devices = devices
        self._components = components
        self._lock = threading.Lock()
        self._closed = False
        self.call_costs_s: dict[str, float] = dict(call_costs_s)
        sampled = [d for d in devices if d.source != SOURCE_COUNTER]
        self._sampled = sampled
        self.poll_interval_s = sample_interval_s if sampled else None
        now = time.monotonic()
        for d in sampled:  # the first sample anchors the integral
            self._sample(d, now)

    def components(self) -> list[ComponentInfo]:
        return list(self._components)

    # -- readings ----------------------------------------------------------------------

    def _fail(self, d: _Device, exc: BaseException, what: str, now: float) -> None:
        d.dead = True
        code, text = _error_info(exc)
        self.degrade(
            d.component_id,
            f"GPU {d.board.uuid}: {what} failed: {text}; its energy is kept at "
            f"{d.cumulative_j():.3f} J from this point on",
            code,
            now,
        )

    def _read_counter(self, d: _Device, now: float) -> None:
        nv = self._nvml
        try:
            mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(d.board.handle))
        except Exception as exc:  # NVMLError or anything odd from the binding
            self._fail(d, exc, "reading the energy counter", now)
            return
        if mj < d.last_mj:  # driver reload or counter reset: keep what was counted
            d.offset_j = d.cumulative_j()
            d.base_mj = mj
            self.warn(
                "nvml.counter_reset",
                f"GPU {d.board.uuid}: the energy counter went back from {d.last_mj} to "
                f"{mj} mJ (driver reload?); energy between the last two reads is lost",
                d.component_id,
                now,
            )
        d.last_mj = mj

    def _power_w(self, d: _Device) -> float:
        nv = self._nvml
        if d.source == SOURCE_INSTANT:
            if d.instant is None:
                d.instant = InstantPower(nv, d.board.handle)
            return d.instant.read_w()
        return nv.nvmlDeviceGetPowerUsage(d.board.handle) / 1000.0

    def _sample(self, d: _Device, now: float) -> None:
        t_a = time.monotonic()
        try:
            p_w = self._power_w(d)
        except Exception as exc:
            self._fail(d, exc, f"reading power ({d.source})", now)
            return
        t = 0.5 * (t_a + time.monotonic())
        if d.last_t is not None and t > d.last_t:
            d.energy_j += 0.5 * (p_w + d.last_p_w) * (t - d.last_t)
        if d.last_t is None or t > d.last_t:
            d.last_t, d.last_p_w = t, p_w

    def _tracker_failed(
        self, component_id: str, exc: BaseException, what: str, at_s: float, transient: bool
    ) -> None:
        for d in self._devices:
            if d.component_id != component_id:
                continue
            code, text = _error_info(exc)
            then = (
                f"probed again every {nvml_errors.REPROBE_PERIOD_S:g} s; its energy until it "
                "answers is not measured"
                if transient
                else "its energy is held at its last counter update from this point on"
            )
            reason = f"GPU {d.board.uuid}: {what} failed: {text}; {then}"
            now = time.monotonic()
            old = self._status.get(component_id)
            if old is not None and old.degraded:  # down again: one gap from the first
                self._status[component_id] = ComponentStatus(True, old.reason, old.degraded_at)
                self.warn(code, reason, component_id, now)
            else:
                # a meter's figures come from the tracker, held from its latest update
                # (``at_s``); a standalone read's from the caller's own reads, held from now
                since = now if self.wait_exact else min(at_s, now)
                self.degrade(component_id, reason, code, now, since)

    def _tracker_resumed(self, component_id: str, at_s: float, gap_j: float) -> None:
        old = self._status.get(component_id)
        if old is None or not old.degraded:
            return
        self._status[component_id] = ComponentStatus(
            True, old.reason, old.degraded_at, recovered_at=at_s
        )
        gap_s = at_s - (old.degraded_at if old.degraded_at is not None else at_s)
        self.warn(
            "nvml.recovered",
            f"{component_id} answers again after {gap_s:.3g} s; its counter resumes. "
            f"The {gap_j:.6g} J its counter moved meanwhile is left out (not measured)",
            component_id,
            at_s,
        )

    @property
    def may_block(self) -> bool:  # type: ignore[override]
        """NVML takes a driver lock and a lost GPU can stall a call; False once every
        board answers from its tracker's record (a meter's reads: no NVML call)."""
        return self.tracker is None or self.wait_exact or bool(self._sampled) or self._closed

    def read(self, now: float) -> dict[str, float]:
        """Cumulative joules per board since start-up.

        With :attr:`wait_exact` (the default) each live board takes one NVML call, on the
        caller's thread. A meter turns it off: tracked boards then answer from their
        record without a call (provisional until the counter's next update).
        """
        out: dict[str, float] = {}
        tracker = self.tracker
        if self.wait_exact:
            tracker = None
        with self._lock:
            for d in self._devices:
                if tracker is not None and d.source == SOURCE_COUNTER:
                    out[d.component_id] = tracker.figure(d.component_id, now).energy_j
                    continue
                if not d.dead and not self._closed:
                    if d.source == SOURCE_COUNTER:
                        self._read_counter(d, now)
                    else:
                        self._sample(d, now)
                out[d.component_id] = d.cumulative_j()
        return out

    def poll(self, now: float) -> None:
        """Take one power sample of every sampled board (counter boards need nothing)."""
        if not self._sampled:
            return
        with self._lock:
            if self._closed:
                return
            for d in self._sampled:
                if not d.dead:
                    self._sample(d, now)

    def close(self) -> None:
        """Shut NVML down (once). Readings after this keep their last values."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.tracker is not None:
            self.tracker.close()
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # a lost driver at exit is not the user's problem
            pass


def _instant_ok(nv: Any, handle: Any) -> bool:
    """The instant power field answers on this board."""
    try:
        InstantPower(nv, handle).read_w()
    except Exception:
        return False
    return True


# -- probe -------------------------------------------------------------------------------


def _init_unavailable(exc: BaseException, nv: Any = None) -> Unavailable:
    value = getattr(exc, "value", None)

    def code(name: str) -> int | None:
        return getattr(nv, name, None) if nv is not None else None

    if value is not None and value == code("NVML_ERROR_LIBRARY_NOT_FOUND"):
        return Unavailable(
            "nvml",
            ComponentKind.GPU,
            "no NVIDIA management library (libnvidia-ml.so.1) found: no NVIDIA driver on "
            "this machine or in this container",
            "install the NVIDIA driver; in a container run with the NVIDIA Container "
            "Toolkit (docker run --gpus all)",
        )
    if value is not None and value == code("NVML_ERROR_DRIVER_NOT_LOADED"):
        return Unavailable(
            "nvml",
            ComponentKind.GPU,
            "the NVIDIA management library is installed but the kernel driver is not loaded "
            "(no NVIDIA GPU, or the driver failed to start)",
            "check `nvidia-smi`; load the driver (`sudo modprobe nvidia`) or reinstall it",
        )
    if value is not None and value == code("NVML_ERROR_NO_PERMISSION"):
        return Unavailable(
            "nvml",
            ComponentKind.GPU,
            "no permission to open the NVIDIA devices (/dev/nvidia*)",
            "add this user to the group owning /dev/nvidia* (often `video`)",
        )
    if value is not None and value == code("NVML_ERROR_LIB_RM_VERSION_MISMATCH"):
        return Unavailable(
            "nvml",
            ComponentKind.GPU,
            f"the NVIDIA library and kernel driver versions differ ({exc})",
            "reboot (or reload the nvidia kernel modules) after a driver update",
        )
    return Unavailable("nvml", ComponentKind.GPU, f"NVML failed to initialise: {exc!r}")


def _measure_counter_steps(nv: Any, devices: list[_Device]) -> dict[str, float | None]:
    """Observed update step (s) of each board's energy counter, None if not seen.

    Reads every counter about once a millisecond for at most ``_STEP_PROBE_BUDGET_S``,
    stopping early once every board showed a few changes.
    """
    readers = {
        d.component_id: (lambda h=d.board.handle: int(nv.nvmlDeviceGetTotalEnergyConsumption(h)))
        for d in devices
    }
    return measure_update_steps(
        readers,
        {d.component_id: d.last_mj for d in devices},
        budget_s=_STEP_PROBE_BUDGET_S,
        changes=_STEP_PROBE_CHANGES,
        max_relative_error=_STEP_PROBE_MAX_ERROR,
    )


def _setup_board(
    nv: Any, b: _Board, costs: dict[str, float]
) -> tuple[_Device | None, dict[str, str], list[str]]:
    """Pick the board's power source and gather its facts; (device or None, detail, errors)."""
    h = b.handle
    detail: dict[str, str] = {"uuid": b.uuid, "index": str(b.index)}
    errors: list[str] = []
    cid = f"nvml:{b.uuid}"
    try:
        detail["name"] = _text(_timed(costs, "nvmlDeviceGetName", nv.nvmlDeviceGetName, h))
    except nv.NVMLError as exc:
        detail["name"] = "NVIDIA GPU"
        errors.append(f"name: {exc}")
    try:
        pci = _timed(costs, "nvmlDeviceGetPciInfo", nv.nvmlDeviceGetPciInfo, h)
        detail["pci_bus_id"] = _text(pci.busId)
    except nv.NVMLError:
        pass
    arch_code: int | None = None
    try:
        arch_code = int(_timed(costs, "nvmlDeviceGetArchitecture", nv.nvmlDeviceGetArchitecture, h))
        detail["architecture"] = _ARCHITECTURES.get(arch_code, f"unknown ({arch_code})")
    except nv.NVMLError:
        pass
    try:
        limit_mw = _timed(
            costs, "nvmlDeviceGetEnforcedPowerLimit", nv.nvmlDeviceGetEnforcedPowerLimit, h
        )
        detail["power_limit_w"] = f"{limit_mw / 1000.0:g}"
    except nv.NVMLError:
        pass
    mig_on = False
    try:
        mig_on = _timed(costs, "nvmlDeviceGetMigMode", nv.nvmlDeviceGetMigMode, h)[0] == 1
    except nv.NVMLError:
        pass
    detail["mig"] = "true" if (mig_on or b.mig_uuids) else "false"
    if b.mig_uuids:
        detail["parent_uuid"] = b.uuid
        detail["mig_uuids"] = ",".join(b.mig_uuids)
    try:
        procs = _timed(
            costs,
            "nvmlDeviceGetComputeRunningProcesses",
            nv.nvmlDeviceGetComputeRunningProcesses,
            h,
        )
        me = os.getpid()
        detail["other_processes"] = str(sum(1 for p in procs if int(p.pid) != me))
    except nv.NVMLError:
        detail["other_processes"] = "unknown"

    # The power source: try each, best first; a NOT_SUPPORTED (or any error) moves on.
    device: _Device | None = None
    try:
        mj = int(
            _timed(
                costs,
                "nvmlDeviceGetTotalEnergyConsumption",
                nv.nvmlDeviceGetTotalEnergyConsumption,
                h,
            )
        )
        device = _Device(b, cid, SOURCE_COUNTER, base_mj=mj, last_mj=mj)
    except nv.NVMLError as exc:
        errors.append(f"energy counter: {exc}")
    if device is None:
        instant = InstantPower(nv, h)
        try:
            _timed(costs, "nvmlDeviceGetFieldValues", instant.read_w)
            device = _Device(b, cid, SOURCE_INSTANT, instant=instant)
        except nv.NVMLError as exc:
            errors.append(f"instant power field: {exc}")
    if device is None:
        try:
            _timed(costs, "nvmlDeviceGetPowerUsage", nv.nvmlDeviceGetPowerUsage, h)
            device = _Device(b, cid, SOURCE_POWER_USAGE)
            name = detail.get("name", "")
            averaged = (
                arch_code is not None
                and arch_code >= 7
                and not (
                    "A100" in name or "A30" in name  # GA100 reports a near-instant value
                )
            )
            detail["power_window_s"] = "1.0" if averaged else "unknown"
        except nv.NVMLError as exc:
            errors.append(f"power usage: {exc}")
    if device is not None:
        detail["power_source"] = device.source
        read_call = {
            SOURCE_COUNTER: "nvmlDeviceGetTotalEnergyConsumption",
            SOURCE_INSTANT: "nvmlDeviceGetFieldValues",
            SOURCE_POWER_USAGE: "nvmlDeviceGetPowerUsage",
        }[device.source]
        if read_call in costs:
            detail["read_cost_ms"] = f"{costs[read_call] * 1e3:.3g}"
    return device, detail, errors


def probe(
    gpus: Sequence[int | str] | None = None,
    sample_interval_s: float = 0.1,
    host: str | None = None,
    track: bool = True,
) -> tuple[NvmlSensor | None, list[Unavailable]]:
    """Open NVML and build a sensor for the selected boards.

    Args:
        gpus: None for the GPUs this process can see (``CUDA_VISIBLE_DEVICES`` honoured);
            else a list of CUDA device ordinals as this process numbers them (the ``N``
            of ``cuda:N``), GPU UUIDs (``GPU-...``, unique prefixes allowed) or MIG ids.
        sample_interval_s: Power sampling period (s) for boards without an energy counter.
        host: Hostname recorded on the components (default: this machine's).
        track: Read energy counters on reader threads and resolve boundaries between
            counter updates with instant power (:mod:`greenmeter.sensors.nvml_tracker`);
            False reads every counter at each boundary on the caller's thread.

    Returns:
        ``(sensor, unavailable)``: the sensor (None when no board can be measured) and
        the sources or boards that were left out, with the reason and, where one exists,
        the fix. Never raises for a missing library, driver or board.
    """
    host = host or socket.gethostname()
    try:
        import pynvml as nv
    except ImportError:
        return None, [
            Unavailable(
                "nvml",
                ComponentKind.GPU,
                "the nvidia-ml-py package (module pynvml) is not installed",
                "pip install nvidia-ml-py",
            )
        ]
    costs: dict[str, float] = {}
    try:
        _timed(costs, "nvmlInit", nv.nvmlInit)
    except nv.NVMLError as exc:
        return None, [_init_unavailable(exc, nv)]
    except Exception as exc:  # e.g. an OSError from a broken library file
        return None, [Unavailable("nvml", ComponentKind.GPU, f"NVML failed to load: {exc!r}")]
    try:
        return _build(nv, gpus, sample_interval_s, host, costs, track)
    except Exception as exc:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass
        return None, [
            Unavailable("nvml", ComponentKind.GPU, f"NVML query failed at start-up: {exc!r}")
        ]


def _build(
    nv: Any,
    gpus: Sequence[int | str] | None,
    sample_interval_s: float,
    host: str,
    costs: dict[str, float],
    track: bool = True,
) -> tuple[NvmlSensor | None, list[Unavailable]]:
    count = int(_timed(costs, "nvmlDeviceGetCount", nv.nvmlDeviceGetCount))
    handles = [
        _timed(costs, "nvmlDeviceGetHandleByIndex", nv.nvmlDeviceGetHandleByIndex, i)
        for i in range(count)
    ]
    uuids = [_text(_timed(costs, "nvmlDeviceGetUUID", nv.nvmlDeviceGetUUID, h)) for h in handles]
    if count == 0:
        nv.nvmlShutdown()
        return None, [Unavailable("nvml", ComponentKind.GPU, "the NVIDIA driver reports no GPU")]
    boards, unavailable = select_boards(_Resolver(nv, handles, uuids), gpus, dict(os.environ))
    shared_facts: dict[str, str] = {}
    try:
        shared_facts["driver_version"] = _text(nv.nvmlSystemGetDriverVersion())
        shared_facts["nvml_version"] = _text(nv.nvmlSystemGetNVMLVersion())
    except nv.NVMLError:
        pass

    prepared: list[tuple[_Device, dict[str, str]]] = []
    for b in boards:
        device, detail, errors = _setup_board(nv, b, costs)
        if device is None:
            unavailable.append(
                Unavailable(
                    "nvml",
                    ComponentKind.GPU,
                    f"GPU {b.uuid} offers no power or energy reading: {'; '.join(errors)}",
                )
            )
            continue
        prepared.append((device, {**detail, **shared_facts}))
    if not prepared:
        nv.nvmlShutdown()
        return None, unavailable

    counters = [d for d, _ in prepared if d.source == SOURCE_COUNTER]
    steps = _measure_counter_steps(nv, counters) if counters else {}
    components: list[ComponentInfo] = []
    for d, detail in prepared:
        if d.source == SOURCE_COUNTER:
            step = steps.get(d.component_id)
            if step is not None:
                detail["counter_step_s"] = f"{step:.4g}"
            resolution = (
                max(step, _MIN_RESOLUTION_S) if step is not None else _DEFAULT_COUNTER_RESOLUTION_S
            )
            method, period = Method.COUNTER, None
        else:
            window = 1.0 if d.source == SOURCE_POWER_USAGE else 0.0
            resolution = max(3 * sample_interval_s, window)
            method, period = Method.SAMPLED, sample_interval_s
        other = detail.get("other_processes", "0")
        shared = detail["mig"] == "true" or (other.isdigit() and int(other) > 0)
        components.append(
            ComponentInfo(
                id=d.component_id,
                kind=ComponentKind.GPU,
                scope=Scope.GPU_BOARD,
                method=method,
                sensor="nvml",
                label=f"{detail.get('name', 'NVIDIA GPU')} ({d.board.uuid})",
                host=host,
                resolution_s=resolution,
                sampling_period_s=period,
                shared=shared,
                detail=detail,
            )
        )
    tracker = None
    if track and counters:
        specs = [
            BoardSpec(
                d.component_id,
                d.board.handle,
                d.base_mj,
                steps.get(d.component_id),
                _instant_ok(nv, d.board.handle),
            )
            for d in counters
        ]
        tracker = GpuTracker(nv, specs, on_fail=lambda *_: None)
        for c in components:
            spec = next((b for b in specs if b.component_id == c.id), None)
            if spec is not None:
                continuous = spec.step_s is not None and spec.step_s < CONTINUOUS_BELOW_S
                c.detail["placement"] = (  # type: ignore[index]
                    "continuous_counter"
                    if continuous
                    else "instant_power"
                    if spec.has_instant
                    else "linear"
                )
    sensor = NvmlSensor(
        nv,
        [d for d, _ in prepared],
        components,
        sample_interval_s=sample_interval_s,
        call_costs_s=costs,
        tracker=tracker,
    )
    if tracker is not None:
        for r in tracker._readers.values():
            r.on_fail = sensor._tracker_failed
            r.on_resume = sensor._tracker_resumed
        tracker.start()
        for c in components:
            if c.detail.get("placement") == "linear":
                sensor.warn(
                    "nvml.no_instant_power",
                    f"{c.label}: no instant power field; GPU energy at phase boundaries is "
                    "interpolated linearly within each counter step (exact at counter updates)",
                    c.id,
                    time.monotonic(),
                )
    _warn_setup(sensor, components, env=dict(os.environ))
    return sensor, unavailable


def _warn_setup(sensor: NvmlSensor, components: list[ComponentInfo], env: dict[str, str]) -> None:
    now = time.monotonic()
    for c in components:
        src = c.detail.get("power_source")
        if src == SOURCE_POWER_USAGE:
            sensor.warn(
                "nvml.power_average",
                f"{c.label}: no energy counter or instant power; sampling "
                "nvmlDeviceGetPowerUsage, a trailing ~1 s average on recent boards, so "
                "phase energies lag the real draw by about 0.5 s",
                c.id,
                now,
            )
        if c.detail.get("mig") == "true":
            sensor.warn(
                "nvml.mig_shared",
                f"{c.label}: MIG is on; a MIG slice has no power reading of its own, so the "
                "whole board is measured, including other slices' work",
                c.id,
                now,
            )
        other = c.detail.get("other_processes", "0")
        if other.isdigit() and int(other) > 0:
            sensor.warn(
                "nvml.shared_gpu",
                f"{c.label}: {other} other compute process(es) run on this GPU; its energy "
                "includes their work",
                c.id,
                now,
            )
    slow = slow_calls(sensor.call_costs_s, _SLOW_CALL_S, skip="nvmlInit")
    if slow:
        sensor.warn(
            "nvml.slow_call",
            f"NVML calls are slow on this machine ({slow}); boundary reads will cost about as much",
            None,
            now,
        )
    ordered = env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") == "PCI_BUS_ID"
    names = {c.detail.get("name") for c in components}
    if not ordered and len(names) > 1:
        sensor.warn(
            "nvml.device_order",
            "GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may "
            "number them differently from NVML; set CUDA_DEVICE_ORDER=PCI_BUS_ID or select "
            "GPUs by UUID",
            None,
            now,
        )
