"""AMD GPU energy through AMD SMI (the ``amdsmi`` package, ROCm's binding of libamd_smi.so).

Per physical board, the best reading the board offers is chosen at start-up, by trying it:

1. **Energy accumulator** (``amdsmi_get_energy_count``: a count of
   ``counter_resolution`` microjoules, 15.3 uJ on current boards, with a timestamp):
   read at every boundary, the energy is the difference. Method ``counter``. The count
   is documented as 64 bits; older ``gpu_metrics`` layouts of the amdgpu driver carried
   a 32-bit accumulator, so a step back is taken modulo 2^32 while the count is below
   2^32 (else modulo 2^64), and such a counter is read at least every few seconds so no
   two reads are a whole 32-bit range apart. A step back that is no wrap is ignored when
   small (a glitch), treated as a restart when large; see
   :class:`~greenmeter.sensors.readings.WrappingCounter`. A counter that does not move
   at start-up while the board draws power (reported on MI100 until a reboot) is not
   used.
2. **current_socket_power** of ``amdsmi_get_power_info`` (W, the power now; MI300
   series): sampled every ``sample_interval_s`` by the meter's thread and at every
   boundary, integrated with the trapezoid rule. Method ``sampled``.
3. **average_socket_power** (W; MI200 series and older): the same sampling, but the
   firmware averages it over a window AMD does not document, so energy lags the real
   draw; the component says so (``power_source`` = ``average_socket_power``).

What the families offer, as AMD SMI and its issue tracker report them: MI300X/MI300A/
MI325X and MI350 series: accumulator and current power, compute partitions
(SPX/DPX/QPX/CPX) and memory partitions (NPS1/NPS4); MI200 series (MI210, MI250,
MI250X): accumulator and average power; an MI250/MI250X module shows as two GPUs (one
per die) and reports the module's power on one of them; MI100: accumulator (reported
stuck on some systems) and average power; virtual-machine guests: no accumulator.
AMD SMI's library before ROCm 6.1 returned stale power and energy values.

Which boards: by default those this process sees, by ``ROCR_VISIBLE_DEVICES`` and
``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES``) as ROCm applies them (see
:mod:`greenmeter.sensors.amd_visible`); AMD SMI itself lists every GPU. A compute
partition has no power reading of its own: the whole board is measured once, however
many of its partitions the process sees, and marked ``shared``, like an NVIDIA MIG
slice. Component ids are ``amdsmi:<AMD SMI UUID of the board>``.

Nothing here imports ``amdsmi`` at module import; :func:`probe` does.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from greenmeter.sensors.amd_board import (
    Reader,
    board_facts,
    check_counters,
    make_reader,
    raw_and_time,
    setup_warnings,
)
from greenmeter.sensors.amd_setup import (
    BoardPlan,
    enumerate_gpus,
    import_amdsmi,
    init_unavailable,
    plan_board,
    power_value,
)
from greenmeter.sensors.amd_visible import LogicalGpu, visible_gpus
from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentKind,
    Sensor,
    Unavailable,
)
from greenmeter.sensors.readings import (
    CounterEvent,
    timed,
)

__all__ = ["AmdSmiSensor", "probe"]

# amdsmi_status_t -> (warning code, plain explanation).
_STATUS: dict[int, tuple[str, str]] = {
    1: ("amdsmi.invalid_argument", "AMD SMI rejected the request"),
    2: ("amdsmi.not_supported", "the board does not support this reading"),
    8: ("amdsmi.timeout", "the driver timed out"),
    9: ("amdsmi.retry", "the driver asked to try again"),
    10: ("amdsmi.no_permission", "this user may not read it"),
    12: ("amdsmi.io", "an I/O error reading the driver's files"),
    14: ("amdsmi.file_error", "a driver file could not be opened"),
    30: ("amdsmi.busy", "the device is busy"),
    31: ("amdsmi.not_found", "the device is gone (fell off the bus or was reset)"),
    32: ("amdsmi.not_initialized", "AMD SMI was shut down while in use"),
    34: ("amdsmi.driver_not_loaded", "the amdgpu kernel driver is not loaded"),
    40: ("amdsmi.no_data", "the driver had no data"),
    43: ("amdsmi.unexpected_data", "the driver returned unexpected data"),
    54: ("amdsmi.amdgpu_restart", "the amdgpu driver failed to restart"),
}
#: Statuses worth another try: the reading is skipped, and only a long run of them
#: degrades the board.
_TRANSIENT = frozenset({8, 9, 30})
_MAX_TRANSIENT = 10


def _status_of(exc: BaseException) -> int | None:
    get = getattr(exc, "get_error_code", None)
    if callable(get):
        try:
            return int(get())
        except Exception:
            return None
    return None


def _explain(exc: BaseException) -> tuple[str, str]:
    """(warning code, explanation) for an exception raised by an AMD SMI call."""
    code = _status_of(exc)
    if code is not None and code in _STATUS:
        name, text = _STATUS[code]
        return name, f"{text} (AMD SMI status {code})"
    if code is not None:
        return "amdsmi.error", f"AMD SMI status {code}: {exc}"
    return "amdsmi.error", f"unexpected answer from AMD SMI: {exc!r}"


class _NotAvailable(Exception):
    """A power field read back as 'N/A'."""

    def get_error_code(self) -> int:
        return 2  # AMDSMI_STATUS_NOT_SUPPORTED


# -- per-board state ---------------------------------------------------------------------------


class AmdSmiSensor(Sensor):
    """Cumulative energy of AMD boards; build it with :func:`probe`.

    Args:
        amd: The initialised ``amdsmi`` module (this sensor shuts it down on close).
        readers: Per-board state prepared by :func:`probe`.
        components: The matching component descriptions.
        sample_interval_s: Polling period for sampled boards (s).
        call_costs_s: Start-up timings of the AMD SMI calls used (s), by function name.
    """

    name = "amdsmi"
    may_block = True  # a hung amdgpu driver can stall a read

    def __init__(
        self,
        amd: Any,
        readers: list[Reader],
        components: list[ComponentInfo],
        *,
        sample_interval_s: float,
        call_costs_s: Mapping[str, float],
    ) -> None:
        super().__init__()
        self._amd = amd
        self._readers = readers
        self._components = components
        self._lock = threading.Lock()
        self._closed = False
        self.call_costs_s: dict[str, float] = dict(call_costs_s)
        self._sampled = [r for r in readers if r.counter is None]
        self._guarded = [r for r in readers if r.guard_s is not None]
        periods = [sample_interval_s] if self._sampled else []
        periods += [r.guard_s for r in self._guarded if r.guard_s is not None]
        self.poll_interval_s = min(periods) if periods else None
        now = time.monotonic()
        for r in readers:
            r.last_read_t = now
        for r in self._sampled:  # the first sample anchors the integral
            self._sample(r, now)

    def components(self) -> list[ComponentInfo]:
        return list(self._components)

    # -- readings ----------------------------------------------------------------------------

    def read(self, now: float) -> dict[str, float]:
        """Cumulative joules per board since start-up; one AMD SMI call per live board."""
        out: dict[str, float] = {}
        with self._lock:
            for r in self._readers:
                if not r.dead and not self._closed:
                    self._read_one(r, now)
                out[r.component_id] = r.cumulative_j()
        return out

    def poll(self, now: float) -> None:
        """Sample sampled boards; read the counters whose wrap guard is due."""
        with self._lock:
            if self._closed:
                return
            t = time.monotonic()
            for r in self._readers:
                if r.dead:
                    continue
                if r.counter is None:
                    self._sample(r, now)
                elif r.guard_s is not None and t - r.last_read_t >= 0.5 * r.guard_s:
                    self._read_counter(r, now)

    def close(self) -> None:
        """Shut AMD SMI down (once). Readings after this keep their last values."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._amd.amdsmi_shut_down()
        except Exception:  # a lost driver at exit is not the user's problem
            pass

    def _read_one(self, r: Reader, now: float) -> None:
        if r.counter is not None:
            self._read_counter(r, now)
        else:
            self._sample(r, now)

    def _read_counter(self, r: Reader, now: float) -> None:
        assert r.counter is not None
        try:
            e = self._amd.amdsmi_get_energy_count(r.plan.handle)
            raw = int(raw_and_time(e)[0])
            joules_per_count = float(e["counter_resolution"]) * 1e-6
        except Exception as exc:  # AmdSmiLibraryException, or an answer of another shape
            self._trouble(r, exc, "reading the energy accumulator", now)
            return
        t = time.monotonic()
        r.last_read_t = t
        r.transient = 0
        event = r.counter.update(raw, t, joules_per_count)
        if event is not None:
            self._counter_event(r, event, now)

    def _sample(self, r: Reader, now: float) -> None:
        amd, handle, source = self._amd, r.plan.handle, r.plan.source

        def read_w() -> float:
            value = power_value(amd.amdsmi_get_power_info(handle), source)
            if value is None:
                raise _NotAvailable(f"{source} read back as not available")
            return value

        try:
            r.integrator.sample(read_w)
        except Exception as exc:
            self._trouble(r, exc, f"reading power ({source})", now)
            return
        r.last_read_t = time.monotonic()
        r.transient = 0

    # -- faults ------------------------------------------------------------------------------

    def _uuid(self, r: Reader) -> str:
        return r.plan.gpu.uuid

    def _trouble(self, r: Reader, exc: BaseException, what: str, now: float) -> None:
        status = _status_of(exc)
        code, text = _explain(exc)
        if status in _TRANSIENT and r.transient + 1 < _MAX_TRANSIENT:
            r.transient += 1
            if r.transient == 1:
                self.warn(
                    code,
                    f"AMD GPU {self._uuid(r)}: {what} failed: {text}; this reading is skipped "
                    f"(the energy is attributed at the next one); {_MAX_TRANSIENT} failures "
                    "in a row mark the GPU degraded",
                    r.component_id,
                    now,
                )
            return
        r.dead = True
        self.degrade(
            r.component_id,
            f"AMD GPU {self._uuid(r)}: {what} failed: {text}; its energy is kept at "
            f"{r.cumulative_j():.3f} J from this point on",
            code,
            now,
        )

    def _counter_event(self, r: Reader, event: CounterEvent, now: float) -> None:
        if event.kind == "wrap":
            return  # counted across the wrap: nothing lost, nothing to report
        n = r.events[event.kind] = r.events.get(event.kind, 0) + 1
        if n & (n - 1):
            return  # the 1st, 2nd, 4th, 8th... time only: a bounded number of warnings
        where = f"AMD GPU {self._uuid(r)}: the energy accumulator"
        times = f" ({n} times so far)" if n > 1 else ""
        if event.kind == "backward":
            self.warn(
                "amdsmi.counter_backward",
                f"{where} went back from {event.raw_before} to {event.raw_after} counts{times}; "
                "that reading was ignored (the counter carries on from its last value)",
                r.component_id,
                now,
            )
        elif event.kind == "reset":
            self.warn(
                "amdsmi.counter_reset",
                f"{where} restarted ({event.raw_before} -> {event.raw_after} counts{times}; "
                "driver reload or GPU reset?); energy between the last two reads is lost",
                r.component_id,
                now,
            )
        else:
            self.warn(
                "amdsmi.counter_jump",
                f"{where} jumped from {event.raw_before} to {event.raw_after} counts{times}, "
                "more than the board can draw in that time; the step was not counted",
                r.component_id,
                now,
            )


# -- probe -------------------------------------------------------------------------------------


def _code(exc: BaseException) -> int | None:
    return _status_of(exc)


def _match(token: str, gpus: Sequence[LogicalGpu]) -> LogicalGpu | None:
    """The GPU a UUID (AMD SMI's or ``GPU-<hex>``), its prefix, or a PCI address names."""
    t = token.lower()

    def names(g: LogicalGpu) -> list[str]:
        return [x.lower() for x in (g.uuid, g.rocr_uuid, g.bdf) if x]

    exact = [g for g in gpus if t in names(g) or t == g.board.lower()]
    hits = exact or [g for g in gpus if any(n.startswith(t) for n in names(g))]
    if hits and len({g.board for g in hits}) == 1:
        return min(hits, key=lambda g: g.partition)  # a board's partitions share its UUID
    return None


def _select(
    gpus: Sequence[LogicalGpu], wanted: Sequence[int | str] | None, env: Mapping[str, str]
) -> tuple[list[LogicalGpu], list[Unavailable]]:
    """The logical GPUs to measure, and the requested ones that could not be matched."""
    visible, why = visible_gpus(gpus, env)
    unavailable: list[Unavailable] = []
    if why:
        unavailable.append(
            Unavailable(
                "amdsmi",
                ComponentKind.GPU,
                f"{why} (AMD SMI sees {len(gpus)})",
                "unset the variable or list the GPUs to use",
            )
        )
    if wanted is None:
        return visible, unavailable
    chosen: list[LogicalGpu] = []
    for item in wanted:
        hit: LogicalGpu | None
        text = str(item).strip()
        if isinstance(item, int) or text.isdecimal():
            k = int(text)
            hit = visible[k] if 0 <= k < len(visible) else None
        else:
            hit = _match(text, gpus)
        if hit is None:
            shown = ", ".join(g.rocr_uuid or g.uuid for g in visible) or "none"
            unavailable.append(
                Unavailable(
                    "amdsmi",
                    ComponentKind.GPU,
                    f"AMD GPU {item!r} not found: this process sees {len(visible)} AMD GPU(s) "
                    f"({shown})",
                    "pass a device index visible to this process, a UUID (GPU-... or AMD "
                    "SMI's) or a PCI address",
                )
            )
        elif hit not in chosen:
            chosen.append(hit)
    return chosen, unavailable


def probe(
    gpus: Sequence[int | str] | None = None,
    sample_interval_s: float = 0.1,
    host: str | None = None,
) -> tuple[AmdSmiSensor | None, list[Unavailable]]:
    """Open AMD SMI and build a sensor for the selected boards.

    Args:
        gpus: None for the GPUs this process can see (``ROCR_VISIBLE_DEVICES`` and
            ``HIP_VISIBLE_DEVICES`` honoured); else device indices as this process
            numbers them (the ``N`` of ``cuda:N`` in PyTorch on ROCm), UUIDs (the
            runtime's ``GPU-<hex>`` or AMD SMI's, unique prefixes allowed) or PCI
            addresses. Partitions of one board are measured once, as the board.
        sample_interval_s: Power sampling period (s) for boards without a usable
            energy accumulator.
        host: Hostname recorded on the components (default: this machine's).

    Returns:
        ``(sensor, unavailable)``: the sensor (None when no board can be measured) and
        the sources or boards left out, with the reason and, where one exists, the fix.
        Never raises for a missing package, library, driver, permission or board.
    """
    host = host or socket.gethostname()
    amd, why = import_amdsmi()
    if amd is None:
        return None, [why] if why else []
    costs: dict[str, float] = {}
    try:
        flags = amd.AmdSmiInitFlags.INIT_AMD_GPUS
        timed(costs, "amdsmi_init", amd.amdsmi_init, flags)
    except Exception as exc:
        return None, [init_unavailable(_code(exc), exc)]
    try:
        sensor, unavailable = _build(amd, gpus, sample_interval_s, host, costs)
    except Exception as exc:
        sensor, unavailable = (
            None,
            [
                Unavailable(
                    "amdsmi", ComponentKind.GPU, f"AMD SMI query failed at start-up: {exc!r}"
                )
            ],
        )
    if sensor is None:
        try:
            amd.amdsmi_shut_down()
        except Exception:
            pass
    return sensor, unavailable


def _build(
    amd: Any,
    wanted: Sequence[int | str] | None,
    sample_interval_s: float,
    host: str,
    costs: dict[str, float],
) -> tuple[AmdSmiSensor | None, list[Unavailable]]:
    gpus, boards = enumerate_gpus(amd, costs)
    if not gpus:
        return None, [Unavailable("amdsmi", ComponentKind.GPU, "AMD SMI reports no GPU")]
    env = dict(os.environ)
    chosen, unavailable = _select(gpus, wanted, env)
    visible, _ = visible_gpus(gpus, env)
    position = {g.index: k for k, g in enumerate(visible)}
    plans: list[tuple[BoardPlan, dict[str, str]]] = []
    for key in dict.fromkeys(g.board for g in chosen):
        board = boards[key]
        plan, errors = plan_board(amd, board, costs)
        label = board.facts.get("name", "AMD GPU")
        if plan is None:
            unavailable.append(
                Unavailable(
                    "amdsmi",
                    ComponentKind.GPU,
                    f"{label} {board.gpus[0].uuid} offers no power or energy reading: {errors}",
                )
            )
            continue
        mine = [g for g in chosen if g.board == key]
        plans.append((plan, board_facts(amd, board, plan, mine, position, costs)))
    if not plans:
        return None, unavailable
    steps = check_counters(amd, plans, costs)
    readers, components = [], []
    for plan, facts in plans:
        reader, component = make_reader(plan, facts, steps, costs, sample_interval_s, host)
        readers.append(reader)
        components.append(component)
    sensor = AmdSmiSensor(
        amd, readers, components, sample_interval_s=sample_interval_s, call_costs_s=costs
    )
    setup_warnings(sensor, components, sensor.call_costs_s)
    return sensor, unavailable
