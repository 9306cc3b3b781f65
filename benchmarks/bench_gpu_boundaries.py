"""GPU boundaries on 8 fake H200-like boards: greenmeter beside Zeus on the same fake.

Every board: energy counter updating every 100 ms, one counter read taking 2.5 ms (the
value taken half-way), instant power fast. The power trace changes at the phase
boundaries (1 s and 50 ms phases at different powers). Printed: median cost of one
phase enter+exit on the training thread (pairs 5 ms apart, as Zeus's are timed, the
thread asleep or computing in between; back to back; 50 ms apart; and, for scale, a meter
with no sensor 5 and 50 ms apart: what the machine charges for running the bookkeeping's
code after a pause), per-board GPU energy error against the trace's exact integral, run
totals against the truth, background CPU of the readers and samplers with no boundary
(steady power, then power moving every 30 ms, 8 s each) and the CPU of greenmeter's
threads while the phases run, each with the counter reads and instant-power rounds made
per second and the CPU of bare threads making those same calls at those rates (what the
wake-ups and driver calls cost on this machine, whatever records them), and the
greenmeter/Zeus ratios. The cost-measuring pairs run after the accuracy phases, so the
CPU figure of those phases holds no resolution of thousands of short phases.

Run: ``.venv/bin/python benchmarks/bench_gpu_boundaries.py`` (Zeus runs under
``/root/peers/bin/python`` when it is installed there; otherwise a note says so).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

N_GPUS = 8
IDLE_W = 60.0
STEP_S = 0.1
LATENCY_S = 0.0025
PHASES = [(1.0, 300.0), (0.05, 150.0), (1.0, 220.0), (0.05, 450.0), (1.0, 120.0)] * 3
COST_PAIRS = 200
SLOW_PAIRS = 60  # pairs 50 ms apart
#: Each no-boundary CPU window (s): two of the readers' quiet read periods.
IDLE_WINDOW_S = 8.0
PEERS_PYTHON = os.environ.get("GREENMETER_PEERS_PYTHON", "/root/peers/bin/python")


def _wait_until(t: float) -> None:
    while time.monotonic() < t - 0.002:
        time.sleep(0.001)
    while time.monotonic() < t:
        pass


def run_phases(begin, end, t0):  # type: ignore[no-untyped-def]
    """Open and close one phase per trace step, at the step instants."""
    spans, costs = [], []
    t = t0
    _wait_until(t0)
    for i, (d, _p) in enumerate(PHASES):
        a = time.perf_counter()
        start_mono = time.monotonic()
        h = begin(f"p{i}")
        b = time.perf_counter()
        t += d
        _wait_until(t)
        end_mono = time.monotonic()
        c = time.perf_counter()
        result = end(h)
        costs.append((b - a) + (time.perf_counter() - c))
        spans.append((f"p{i}", start_mono, end_mono, result))
    return spans, costs


def _quiet_window(tracker, seconds: float) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """CPU of this process (% of a core) over the next ``seconds``, asleep meanwhile,
    with the counter reads and instant-power rounds per second made in that time."""
    calls0, rounds0 = tracker.calls(), tracker.power_rounds
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    return (
        100 * (time.process_time() - cpu0) / wall,
        (tracker.calls() - calls0) / wall,
        (tracker.power_rounds - rounds0) / wall,
    )


def _thread_cpu_s(tid: str) -> float:
    """CPU seconds used so far by one thread of this process (Linux ``/proc``)."""
    try:  # nanoseconds on the CPU, where the kernel keeps them
        return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _other_threads_cpu_s() -> float | None:
    """CPU seconds used so far by this process's threads other than the calling one
    (Linux ``/proc``; None elsewhere)."""
    me = threading.get_native_id()
    total = 0.0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        if int(tid) == me:
            continue
        try:
            total += _thread_cpu_s(tid)
        except OSError:
            continue  # the thread ended
    return total


def bare_calls_cpu_pct(reads_per_s: float, rounds_per_s: float, seconds: float) -> float | None:
    """CPU (% of a core) of threads that make the same driver calls as greenmeter's, at
    the same rates, with nothing else done: one thread per board waking ``reads_per_s``
    times a second (all boards together) for a counter read, one thread waking
    ``rounds_per_s`` times a second for every board's instant power. What those
    wake-ups and calls cost on this machine, whatever records them. None off Linux."""
    import pynvml as nv

    from greenmeter.sensors.nvml_power import InstantPower

    nv.nvmlInit()
    handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(N_GPUS)]
    powers = [InstantPower(nv, h) for h in handles]
    stop = threading.Event()

    def reader(h) -> None:  # type: ignore[no-untyped-def]
        period = N_GPUS / reads_per_s if reads_per_s > 0 else 3600.0
        while not stop.wait(period):
            time.monotonic()
            nv.nvmlDeviceGetTotalEnergyConsumption(h)
            time.monotonic()

    def sampler() -> None:
        period = 1.0 / rounds_per_s if rounds_per_s > 0 else 3600.0
        while not stop.wait(period):
            for p in powers:
                time.monotonic()
                p.read_w()
                time.monotonic()

    threads = [threading.Thread(target=reader, args=(h,)) for h in handles]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    time.sleep(0.5)
    try:
        ids = [str(t.native_id) for t in threads]
        cpu0, wall0 = sum(map(_thread_cpu_s, ids)), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = sum(map(_thread_cpu_s, ids)), time.monotonic()
    except OSError:
        return None
    finally:
        stop.set()
        for t in threads:
            t.join()
        nv.nvmlShutdown()
    return 100 * (cpu1 - cpu0) / (wall1 - wall0)


def greenmeter_side(fake, t0: float, t_moving: float) -> dict:  # type: ignore[no-untyped-def]
    from greenmeter.core.meter import Meter
    from greenmeter.sensors import nvml

    sensor, unavailable = nvml.probe(sample_interval_s=0.1)
    assert sensor is not None, unavailable
    ids = [c.id for c in sensor.components()]
    meter = Meter([sensor], sample_interval_s=0.1).start()
    time.sleep(1.5)  # start-up: first reads, the start boundary's active second
    # no boundary: background CPU of the readers and the samplers, steady power and then
    # power moving every 30 ms
    tracker = sensor.tracker
    idle = _quiet_window(tracker, IDLE_WINDOW_S)
    _wait_until(t_moving + 0.3)
    moving = _quiet_window(tracker, IDLE_WINDOW_S)
    opened: dict[int, float] = {}

    def begin(name: str):  # type: ignore[no-untyped-def]
        h = meter.enter(name)
        opened[id(h)] = h._state.open_since  # the phase's own start instant
        return h

    def end(h):  # type: ignore[no-untyped-def]
        meter.exit(h)
        return (opened[id(h)], h._state.record.last_end_mono)

    calls0, rounds0 = tracker.calls(), tracker.power_rounds
    cpu0, wall0 = _other_threads_cpu_s(), time.monotonic()
    spans, costs = run_phases(begin, end, t0)
    cpu1, wall1 = _other_threads_cpu_s(), time.monotonic()
    active_cpu = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / (wall1 - wall0)
    reads_per_s = (tracker.calls() - calls0) / (wall1 - wall0)
    rounds_per_s = (tracker.power_rounds - rounds0) / (wall1 - wall0)
    # boundary cost over many short phases, 5 ms apart (as Zeus's below, the thread
    # asleep or busy in between) and back to back; after the phases above, so that the
    # CPU figure there holds no resolution of these thousands of boundaries
    pair = pair_costs(meter, COST_PAIRS, 0.005)
    pair_busy = pair_costs(meter, COST_PAIRS, 0.005, busy=True)
    pair_hot = pair_costs(meter, 10 * COST_PAIRS, 0.0)
    pair_slow = pair_costs(meter, SLOW_PAIRS, 0.05)  # 50 ms apart: colder still
    snap = meter.stop()
    sensor.close()
    bare_cpu = bare_calls_cpu_pct(reads_per_s, rounds_per_s, IDLE_WINDOW_S)
    idle_bare = bare_calls_cpu_pct(idle[1], idle[2], IDLE_WINDOW_S)
    moving_bare = bare_calls_cpu_pct(moving[1], moving[2], IDLE_WINDOW_S)
    phases = {p.path[0]: p for p in snap.phases}
    errs = []
    for name, _a, _b, (a, b) in spans:
        p = phases[name]
        for k, cid in enumerate(ids):
            truth = fake.energy_j(k, a, b)
            errs.append((b - a, (p.energy_j[cid] - truth) / truth))
    totals = [
        (snap.energy_j[cid] - fake.energy_j(k, meter.started_mono, meter.ended_mono))
        / fake.energy_j(k, meter.started_mono, meter.ended_mono)
        for k, cid in enumerate(ids)
    ]
    return {
        "pair_median_ms": statistics.median(pair) * 1e3,
        "pair_busy_median_ms": statistics.median(pair_busy) * 1e3,
        "pair_hot_median_ms": statistics.median(pair_hot) * 1e3,
        "pair_slow_median_ms": statistics.median(pair_slow) * 1e3,
        "phase_median_ms": statistics.median(costs) * 1e3,
        "errs": errs,
        "totals": totals,
        "idle": (*idle, idle_bare),
        "moving": (*moving, moving_bare),
        "active_cpu_pct": None if active_cpu is None else active_cpu * 100,
        "reads_per_s": reads_per_s,
        "rounds_per_s": rounds_per_s,
        "bare_cpu_pct": bare_cpu,
    }


ZEUS_CHILD = r"""
import json, statistics, sys, time
from zeus.monitor import ZeusMonitor
t0 = float(sys.argv[1]); phases = json.loads(sys.argv[2]); pairs = int(sys.argv[3])
mon = ZeusMonitor(gpu_indices=list(range(%d)), approx_instant_energy=False)
pair = []
for i in range(pairs):
    a = time.perf_counter(); mon.begin_window(f"c{i}", sync_execution=False)
    mon.end_window(f"c{i}", sync_execution=False); pair.append(time.perf_counter() - a)
    time.sleep(0.005)
out = []
t = t0
while time.monotonic() < t0: pass
for i, (d, p) in enumerate(phases):
    s = time.monotonic(); mon.begin_window(f"p{i}", sync_execution=False)
    t += d
    while time.monotonic() < t: time.sleep(0.0005)
    e0 = time.monotonic(); m = mon.end_window(f"p{i}", sync_execution=False)
    out.append([s, e0, [m.gpu_energy[k] for k in range(%d)]])
print(json.dumps({"pair": statistics.median(pair) * 1e3, "out": out}))
"""


def zeus_side(fake, t0: float) -> dict | None:  # type: ignore[no-untyped-def]
    if not os.path.exists(PEERS_PYTHON):
        return None
    code = ZEUS_CHILD % (N_GPUS, N_GPUS)
    env = {**os.environ, **fake.env()}
    proc = subprocess.run(
        [PEERS_PYTHON, "-c", code, repr(t0), json.dumps(PHASES), str(COST_PAIRS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        print("Zeus failed:", proc.stderr[-800:])
        return None
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    errs = []
    for s, e, values in data["out"]:
        for k, v in enumerate(values):
            truth = fake.energy_j(k, s, e)
            errs.append((e - s, (v - truth) / truth))
    return {"pair_median_ms": data["pair"], "errs": errs}


_WORK = [float(i) for i in range(20000)]


def _busy(seconds: float) -> None:
    """Keep this thread computing (holding the interpreter) for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(_WORK[::7])


def pair_costs(meter, n: int, apart_s: float, busy: bool = False) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds of ``n`` phase enter+exit pairs on this thread, ``apart_s`` apart (asleep
    in between, or computing with ``busy``, as a training step keeps its thread)."""
    out = []
    for _ in range(n):
        a = time.perf_counter()
        h = meter.enter("cost")
        meter.exit(h)
        out.append(time.perf_counter() - a)
        if apart_s:
            (_busy if busy else time.sleep)(apart_s)
    return out


def bare_meter_pair_ms() -> tuple[float, float]:
    """Median enter+exit (ms), 5 ms and 50 ms apart, of a meter with no sensor at all:
    what the phase bookkeeping alone costs on this machine when its code has gone cold."""
    from greenmeter.core.meter import Meter

    meter = Meter([], sample_interval_s=0.1).start()
    try:
        near = statistics.median(pair_costs(meter, COST_PAIRS, 0.005)) * 1e3
        far = statistics.median(pair_costs(meter, SLOW_PAIRS, 0.05)) * 1e3
        return near, far
    finally:
        meter.stop()


def wakeup_floor_pct(per_s: float = 10.0, seconds: float = 2.0) -> float:
    """CPU (% of a core) of a thread that only wakes ``per_s`` times a second: the
    machine's cost of a wake-up, for scale."""
    import threading

    out: list[float] = []

    def run() -> None:
        c0, n = time.thread_time(), int(per_s * seconds)
        for _ in range(n):
            time.sleep(1.0 / per_s)
        out.append(100 * (time.thread_time() - c0) / seconds)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


def _summary(errs):  # type: ignore[no-untyped-def]
    long_e = [abs(x) for d, x in errs if d >= 0.5]
    short_e = [abs(x) for d, x in errs if d < 0.5]
    return (
        100 * statistics.median(long_e),
        100 * max(long_e),
        100 * statistics.median(short_e),
        100 * max(short_e),
    )


def main() -> None:
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.fake_nvml import FakeGpu, FakeNvml

    t_start = time.monotonic()
    steady_s = 1.5 + IDLE_WINDOW_S + 1.5  # start-up, the window, and a margin
    moving_s = IDLE_WINDOW_S + 0.5
    t_moving = t_start + steady_s
    # the boards idle at 60 W until the phases begin (a board's counter always moves),
    # but for moving_s from t_moving where their power moves every 30 ms
    moving = [(0.03, IDLE_W * (1 + k % 5)) for k in range(round(moving_s / 0.03))]
    moved_s = 0.03 * len(moving)
    trace_t0 = t_moving + moved_s + 1.0
    trace = PowerTrace(
        [(steady_s, IDLE_W), *moving, (trace_t0 - t_moving - moved_s, IDLE_W), *PHASES],
        t0=t_start,
        repeat=False,
    )
    fake = FakeNvml(
        [FakeGpu(trace, counter_step_s=STEP_S, call_latency_s=LATENCY_S) for _ in range(N_GPUS)]
    ).install()
    gm = greenmeter_side(fake, trace_t0, t_moving)
    z_trace_t0 = time.monotonic() + 6.0
    fake.gpus = [
        FakeGpu(
            PowerTrace(PHASES, t0=z_trace_t0, repeat=False),
            counter_step_s=STEP_S,
            call_latency_s=LATENCY_S,
        )
        for _ in range(N_GPUS)
    ]
    fake.write_config()
    zs = zeus_side(fake, z_trace_t0)
    fake.close()
    g = _summary(gm["errs"])
    print(
        f"{N_GPUS} fake GPUs, counter step {STEP_S * 1e3:g} ms, counter read {LATENCY_S * 1e3:g} ms"
    )
    print(
        f"greenmeter: enter+exit median {gm['pair_median_ms']:.3f} ms (pairs 5 ms apart), "
        f"{gm['pair_busy_median_ms']:.3f} ms (5 ms apart, the thread computing in between), "
        f"{gm['pair_hot_median_ms']:.3f} ms (back to back), "
        f"{gm['pair_slow_median_ms']:.3f} ms (50 ms apart), "
        f"{gm['phase_median_ms']:.3f} ms (at power changes)"
    )
    near, far = bare_meter_pair_ms()
    print(
        f"for scale: a meter with no sensor, pairs 5 ms apart: {near:.3f} ms, 50 ms apart: "
        f"{far:.3f} ms (the machine's cost of running the phase bookkeeping after a pause)"
    )
    print(
        f"greenmeter: |error| per board, phases >= 1 s: median {g[0]:.3f} %, max {g[1]:.3f} %; "
        f"50 ms phases: median {g[2]:.2f} %, max {g[3]:.2f} %"
    )
    print(f"greenmeter: run totals vs truth, max |error| {100 * max(map(abs, gm['totals'])):.4f} %")
    for what, (cpu, reads, rounds, bare) in (
        ("no boundary, steady power", gm["idle"]),
        ("no boundary, power moving every 30 ms", gm["moving"]),
    ):
        print(
            f"greenmeter: background CPU with {N_GPUS} GPUs, {what}: {cpu:.2f} % of a core "
            f"({reads:.1f} counter reads/s, {rounds:.1f} instant-power rounds/s)"
            + ("" if bare is None else f"; the same calls by bare threads: {bare:.2f} %")
        )
    if gm["active_cpu_pct"] is not None:
        print(
            f"greenmeter: CPU of its threads while the phases above run (boundaries every "
            f"50 ms to 1 s, every board's counter followed): {gm['active_cpu_pct']:.2f} % "
            f"of a core ({gm['reads_per_s']:.0f} counter reads/s, "
            f"{gm['rounds_per_s']:.0f} instant-power rounds/s of {N_GPUS} boards)"
        )
    if gm["active_cpu_pct"] is not None and gm["bare_cpu_pct"] is not None:
        own = gm["active_cpu_pct"] - gm["bare_cpu_pct"]
        print(
            f"for scale: the same reads and rounds by bare threads that only make the calls: "
            f"{gm['bare_cpu_pct']:.2f} % of a core; greenmeter's own work above them: "
            f"{own:.2f} %"
        )
    print(
        f"for scale: a thread waking 10 times a second to do nothing: "
        f"{wakeup_floor_pct():.3f} % of a core on this machine"
    )
    if zs is None:
        print("Zeus: not installed under", PEERS_PYTHON, "- greenmeter figures alone")
        return
    z = _summary(zs["errs"])
    print(f"Zeus: begin+end_window median {zs['pair_median_ms']:.3f} ms")
    print(
        f"Zeus: |error| per board, phases >= 1 s: median {z[0]:.3f} %, max {z[1]:.3f} %; "
        f"50 ms phases: median {z[2]:.2f} %, max {z[3]:.2f} %"
    )
    print(
        f"ratio greenmeter/Zeus: boundary cost {gm['pair_median_ms'] / zs['pair_median_ms']:.3f}, "
        f"median error 1 s {g[0] / max(z[0], 1e-9):.3f}, 50 ms {g[2] / max(z[2], 1e-9):.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
