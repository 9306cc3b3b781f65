"""Shared inputs for the report tests: a hand-made meter snapshot and a carbon stub.

The snapshot's energies come from :class:`PowerTrace` integrals, so every figure the
report derives can be checked against exact truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

from greenmeter.carbon.models import CarbonInfo, Co2eBreakdown, IntensityInfo, PueInfo
from greenmeter.records import MeterSnapshot, PhaseRecord, TimelinePoint
from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentKind,
    ComponentStatus,
    Method,
    Scope,
    SensorWarning,
    Unavailable,
)
from greenmeter.testing.trace import PowerTrace

T0 = 1000.0  # monotonic start of the run
START_UTC = datetime(2026, 1, 1, 0, 0, 0, tzinfo=timezone.utc)
RUN_S = 100.0
HOST = "node-a"
GPU_UUID = "GPU-aaaaaaaa-0000-1111-2222-333333333333"
GPU_ID = f"nvml:{GPU_UUID}"
GPU_B_UUID = "GPU-bbbbbbbb-0000-1111-2222-333333333333"
GPU_B_ID = f"nvml:{GPU_B_UUID}"

#: The power of each component: GPU 300 W then 100 W after 50 s; CPU package 50 W,
#: DRAM 10 W, estimated RAM 5 W.
TRACES = {
    "rapl:package-0": PowerTrace([(RUN_S, 50.0)], t0=T0, repeat=False),
    "rapl:dram-0": PowerTrace([(RUN_S, 10.0)], t0=T0, repeat=False),
    GPU_ID: PowerTrace([(50.0, 300.0), (50.0, 100.0)], t0=T0, repeat=False),
    "estimate:ram": PowerTrace([(RUN_S, 5.0)], t0=T0, repeat=False),
}
#: A second GPU (200 W), used only where a test asks for it.
GPU_B_TRACE = PowerTrace([(RUN_S, 200.0)], t0=T0, repeat=False)

#: Phase layout, seconds since the start: (path, kind, count, intervals, extra fields).
PHASES: list[tuple[tuple[str, ...], str, int, list[tuple[float, float]], dict]] = [
    (("fit",), "fit", 1, [(5.0, 95.0)], {}),
    (
        ("fit", "train"),
        "train",
        2,
        [(10.0, 40.0), (50.0, 80.0)],
        {"samples": 6000, "tokens": 600_000, "steps": 200, "peak_power_w": 420.0},
    ),
    (("fit", "validate"), "validate", 4, [(40.0, 50.0), (80.0, 90.0)], {"samples": 1000}),
    (
        ("inference",),
        "inference",
        100,
        [(95.0, 99.0)],
        {"samples": 100, "latencies_s": [(k + 1) / 1000.0 for k in range(100)]},
    ),
]


def exact(ids: Sequence[str], intervals: Sequence[tuple[float, float]]) -> dict[str, float]:
    """Exact energy per component over intervals given in seconds since the start."""
    traces = {**TRACES, GPU_B_ID: GPU_B_TRACE}
    return {i: sum(traces[i].energy_j(T0 + a, T0 + b) for a, b in intervals) for i in ids}


def components(host: str = HOST, ids: Sequence[str] | None = None) -> list[ComponentInfo]:
    every = [
        ComponentInfo(
            "rapl:package-0", ComponentKind.CPU, Scope.CPU_PACKAGE, Method.COUNTER, "rapl",
            "CPU package 0", host, 0.001, 0.5, detail={"socket": "0", "cpu_model": "Xeon"},
        ),
        ComponentInfo(
            "rapl:dram-0", ComponentKind.DRAM, Scope.DRAM, Method.COUNTER, "rapl", "DRAM 0",
            host, 0.001,
        ),
        ComponentInfo(
            GPU_ID, ComponentKind.GPU, Scope.GPU_BOARD, Method.COUNTER, "nvml",
            "NVIDIA H100", host, 0.1,
            detail={
                "uuid": GPU_UUID, "name": "NVIDIA H100 80GB HBM3", "index": "0",
                "pci_bus_id": "00000000:01:00.0", "driver_version": "550.54.15",
                "architecture": "Hopper", "power_limit_w": "700", "mig": "false",
                "power_source": "energy_counter",
            },
        ),
        ComponentInfo(
            "estimate:ram", ComponentKind.RAM, Scope.MACHINE, Method.ESTIMATED, "estimate",
            "RAM (estimate)", host, 1.0, 0.5,
            detail={"model": "W per GB x installed GB", "constants": "0.375 W/GB x 13.3 GB",
                    "source": "example"},
        ),
        ComponentInfo(
            GPU_B_ID, ComponentKind.GPU, Scope.GPU_BOARD, Method.COUNTER, "nvml",
            "NVIDIA H100", host, 0.1,
            detail={"uuid": GPU_B_UUID, "name": "NVIDIA H100 80GB HBM3", "index": "1"},
        ),
    ]  # fmt: skip
    wanted = list(TRACES) if ids is None else list(ids)
    return [c for c in every if c.id in wanted]


def _scaled(value: int | None, scale: float) -> int | None:
    return None if value is None else round(value * scale)


def make_snapshot(
    *,
    ids: Sequence[str] | None = None,
    host: str = HOST,
    rank: int = 0,
    local_rank: int = 0,
    world_size: int = 1,
    running: bool = False,
    phases: Sequence = PHASES,
    timeline_step_s: float = 1.0,
    items_scale: float = 1.0,
    shift_s: float = 0.0,
) -> MeterSnapshot:
    """A finished (or running) snapshot whose every energy is an exact trace integral.

    ``items_scale`` multiplies the work items (a rank's share); ``shift_s`` moves the
    whole snapshot later on both clocks (a rank that started later).
    """
    comps = components(host, ids)
    use = [c.id for c in comps]
    records = []
    for path, kind, count, ivs, more in phases:
        rec = PhaseRecord(
            path=path,
            kind=kind,
            count=count,
            first_start_mono=T0 + ivs[0][0],
            last_end_mono=T0 + ivs[-1][1],
            duration_s=sum(b - a for a, b in ivs),
            energy_j=exact(use, ivs),
            intervals_mono=[(T0 + a, T0 + b) for a, b in ivs],
            samples=_scaled(more.get("samples"), items_scale),
            tokens=_scaled(more.get("tokens"), items_scale),
            steps=_scaled(more.get("steps"), items_scale),
            peak_power_w=more.get("peak_power_w"),
            latencies_s=list(more.get("latencies_s", [])),
            attrs={"note": "x"} if path == ("fit",) else {},
        )
        records.append(rec)
    n = int(RUN_S / timeline_step_s)
    timeline = [
        TimelinePoint(T0 + k * timeline_step_s, exact(use, [(0.0, k * timeline_step_s)]))
        for k in range(1, n)
    ]
    snap = MeterSnapshot(
        host=host,
        started_mono=T0,
        started_utc=START_UTC,
        components=comps,
        energy_j=exact(use, [(0.0, RUN_S)]),
        phases=records,
        timeline=timeline,
        warnings=[SensorWarning("rapl.wrap", "counter wrapped once", "rapl:package-0", T0 + 12)]
        if "rapl:package-0" in use
        else [],
        status={"rapl:dram-0": ComponentStatus(False)},
        unavailable=[
            Unavailable("pyrapl", ComponentKind.CPU, "pyRAPL is not installed", "pip install")
        ],
        ended_mono=T0 + RUN_S,
        ended_utc=START_UTC + timedelta(seconds=RUN_S),
        duration_s=RUN_S,
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        running=running,
    )
    if shift_s:
        _shift(snap, shift_s)
    return snap


def _shift(snap: MeterSnapshot, dt: float) -> None:
    """Move a snapshot later by dt seconds; its energies stay those of the traces' run."""
    snap.started_mono += dt
    snap.started_utc += timedelta(seconds=dt)
    snap.ended_mono = (snap.ended_mono or 0.0) + dt
    snap.ended_utc = (snap.ended_utc or snap.started_utc) + timedelta(seconds=dt)
    snap.timeline = [TimelinePoint(p.t_mono + dt, p.energy_j) for p in snap.timeline]
    for rec in snap.phases:
        rec.first_start_mono = (rec.first_start_mono or 0.0) + dt
        rec.last_end_mono = (rec.last_end_mono or 0.0) + dt
        rec.intervals_mono = [(a + dt, b + dt) for a, b in rec.intervals_mono]
    snap.warnings = [SensorWarning(w.code, w.message, w.component_id, (w.at or 0.0) + dt)
                     for w in snap.warnings]  # fmt: skip


# --------------------------------------------------------------------------------------
# a carbon accountant with a known, time-varying intensity


def intensity_at(t: datetime) -> float:
    """100 g/kWh for the run's first 50 s, 400 g/kWh after."""
    return 100.0 if t < START_UTC + timedelta(seconds=50) else 400.0


class StubAccountant:
    """Follows ``CarbonAccountant``'s contract with an exact, checkable rule.

    CO2e of a segment = energy x PUE x intensity at the segment's midpoint; embodied =
    10 g per GPU-hour + 2 g per CPU-hour. Every call is recorded.
    """

    EMBODIED_G_PER_H: Mapping[str, float] = {"gpu": 10.0, "cpu": 2.0}

    def __init__(self, pue: float = 1.5) -> None:
        self.pue = pue
        self.calls: list[tuple[list, dict]] = []
        self.warnings = [("carbon.fallback", "no location given; world average used")]
        self.info = CarbonInfo(
            intensity=IntensityInfo(
                value_g_per_kwh=100.0, source="test", resolved_from="explicit", year=2024
            ),
            pue=PueInfo(value=pue, source="test", resolved_from="explicit"),
            dataset_version="test",
            dataset_date="2026-01-01",
        )

    def co2e(self, segments, device_hours) -> Co2eBreakdown:
        self.calls.append((list(segments), dict(device_hours)))
        it_j = sum(e for _, _, e in segments)
        grams = 0.0
        for a, b, e in segments:
            grams += e * self.pue / 3.6e6 * intensity_at(a + (b - a) / 2)
        embodied = {k: h * self.EMBODIED_G_PER_H.get(k, 0.0) for k, h in device_hours.items()}
        fac_kwh = it_j * self.pue / 3.6e6
        return Co2eBreakdown(
            it_energy_j=it_j,
            facility_energy_j=it_j * self.pue,
            pue=self.pue,
            intensity_g_per_kwh=grams / fac_kwh if fac_kwh else 100.0,
            operational_g=grams,
            operational_low_g=grams * 0.9,
            operational_high_g=grams * 1.1,
            market_g=None,
            embodied_g=sum(embodied.values()),
            embodied_by_kind_g=embodied,
            time_varying=True,
        )


HOST_INFO = {
    "os": "Linux",
    "os_release": "Test OS 1",
    "kernel": "6.1.0",
    "cpu_model": "Xeon",
    "sockets": 1,
    "physical_cores": 8,
    "logical_cores": 16,
    "ram_bytes": 64 * 2**30,
}


def expected_co2e_g(intervals: Sequence[tuple[float, float]], pue: float = 1.5) -> float:
    """Exact operational grams over intervals (seconds since start), per-second buckets."""
    grams = 0.0
    for a, b in intervals:
        t = a
        while t < b - 1e-12:
            u = min(b, float(int(t) + 1))
            e = sum(exact(list(TRACES), [(t, u)]).values())
            grams += e * pue / 3.6e6 * intensity_at(START_UTC + timedelta(seconds=(t + u) / 2))
            t = u
    return grams


def test_support_snapshot_is_consistent() -> None:
    """The hand-made snapshot's totals are the traces' exact integrals."""
    snap = make_snapshot()
    assert snap.energy_j[GPU_ID] == 50 * 300.0 + 50 * 100.0
    assert snap.energy_j["rapl:package-0"] == 100 * 50.0
    train = snap.phases[1]
    assert train.energy_j[GPU_ID] == 30 * 300.0 + 30 * 100.0
