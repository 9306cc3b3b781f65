#!/usr/bin/env python3
"""Core benchmarks of greenmeter, with the same figures for CodeCarbon and Zeus.

Every tool is measured on the same emulated Linux powercap (RAPL) tree
(:class:`greenmeter.testing.EmulatedPowercap`: two packages with a DRAM subzone each,
counters advanced at about 1 kHz from known power traces). greenmeter reads the tree
through ``powercap_root=``; the peers, which hard-code ``/sys/class/powercap``, run in a
private mount namespace where the tree is bound there (see ``_peers.py``).

Figures (each measured in fresh worker processes, one tool at a time):

* import time: ``import greenmeter`` and the import of each tool's meter class, in a
  fresh interpreter (median of several runs), and which heavy modules got imported;
* ready time: constructor until the tool can measure a phase;
* boundary cost: median wall time of one phase enter + exit (greenmeter),
  ``begin_window`` + ``end_window`` (Zeus), ``start_task`` + ``stop_task`` (CodeCarbon);
* background CPU: process CPU time (all threads, plus helper processes) over an idle
  stretch at default settings, as % of one core, minus the same process idling before
  the tool was opened;
* memory: resident-set growth after many phase boundaries, and (greenmeter) traced
  Python memory after a 24-hour timeline driven by a simulated clock;
* accuracy: energy attributed to phases of 1-3 s against the traces' exact integral,
  on a tree with the default counter range and on one with a small range that forces
  counter wraps.

Usage::

    python benchmarks/bench_core.py                 # full run (a few minutes)
    python benchmarks/bench_core.py --quick         # short run (smoke test)
    python benchmarks/bench_core.py --json out.json --tools greenmeter,zeus
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _peers  # noqa: E402  (sibling module; the path is set just above)

TOOLS = ("greenmeter", "codecarbon", "zeus")
PEER_TOOLS = ("codecarbon", "zeus")
HEAVY_MODULES = ("torch", "lightning", "pytorch_lightning", "numpy", "pandas")

#: greenmeter's targets (figure key -> (comparison, value)).
TARGETS: dict[str, tuple[str, float]] = {
    "import_ms": ("<=", 50.0),
    "ready_ms": ("<=", 20.0),
    "boundary_us": ("<=", 30.0),
    "background_cpu_pct": ("<=", 1.0),
    "memory_boundaries_mb": ("<=", 20.0),
    "memory_timeline_mb": ("<=", 20.0),
}

#: What a user imports to get each tool's meter.
METER_IMPORT = {
    "greenmeter": "from greenmeter import EnergyMeter",
    "codecarbon": "from codecarbon import OfflineEmissionsTracker",
    "zeus": "from zeus.monitor import ZeusMonitor",
}


@dataclass(frozen=True)
class Settings:
    """How long and how often each figure is measured."""

    import_runs: int = 7
    ready_runs: int = 5
    idle_s: float = 10.0
    settle_s: float = 2.0
    cost_iterations: dict[str, int] = field(
        default_factory=lambda: {"greenmeter": 5000, "codecarbon": 300, "zeus": 3000}
    )
    boundaries: dict[str, int] = field(
        default_factory=lambda: {"greenmeter": 1_000_000, "codecarbon": 20_000, "zeus": 100_000}
    )
    timeline_hours: float = 24.0
    phases_s: tuple[float, ...] = (1.0, 2.0, 3.0, 1.5)
    gap_s: float = 0.25


FULL = Settings()
QUICK = Settings(
    import_runs=1,
    ready_runs=0,
    idle_s=1.0,
    settle_s=0.5,
    cost_iterations={"greenmeter": 300, "codecarbon": 10, "zeus": 50},
    boundaries={"greenmeter": 20_000, "codecarbon": 400, "zeus": 2_000},
    timeline_hours=1.0,
    phases_s=(0.4, 0.6),
    gap_s=0.1,
)

# -- the emulated hardware ---------------------------------------------------------------

#: Per-socket package and DRAM traces: three power levels each, different per socket.
PACKAGE_STEPS = ([(0.7, 45.0), (0.9, 130.0), (0.6, 80.0)], [(0.5, 60.0), (1.1, 110.0), (0.8, 35.0)])
DRAM_STEPS = ([(0.4, 6.0), (0.7, 14.0), (0.5, 9.0)], [(0.9, 8.0), (0.6, 12.0), (0.3, 5.0)])
#: Counter range of the wrap scenario (microjoules): a 130 W package wraps every 0.3 s.
WRAP_RANGE_UJ = 40_000_000
TDP_W = 150.0


def make_tree(wraps: bool) -> Any:
    """A live emulated powercap tree: default counter range, or a small one (wraps)."""
    from greenmeter.testing import EmulatedPowercap, PowerTrace

    t0 = time.monotonic()
    kwargs: dict[str, Any] = {"max_energy_range_uj": WRAP_RANGE_UJ} if wraps else {}
    return EmulatedPowercap(
        [PowerTrace(s, t0=t0) for s in PACKAGE_STEPS],
        dram_traces=[PowerTrace(s, t0=t0) for s in DRAM_STEPS],
        tdp_w=TDP_W,
        **kwargs,
    )


def pin_emulators(trees: list[Any]) -> str | None:
    """Keep the emulators' 1 kHz updaters off the CPUs the measured code runs on.

    The updaters run at real-time priority; sharing a core with the measured process
    preempts it every millisecond and makes per-boundary costs bimodal. Every tool is
    measured the same way, so this is fair to all of them. Returns a note, or None when
    the machine has a single CPU (nothing to separate).
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if len(cpus) < 2:
        return None
    last = cpus[-1]
    os.sched_setaffinity(0, set(cpus[:-1]))  # this process and every tool it starts
    for tree in trees:
        if tree.updater_pid is not None:
            os.sched_setaffinity(tree.updater_pid, {last})
    return f"emulator updaters pinned to CPU {last}; measured code on CPUs {cpus[:-1]}"


# -- adapters: one way to drive every tool -----------------------------------------------


class GreenmeterAdapter:
    """greenmeter's :class:`EnergyMeter` at defaults on the emulated tree (no GPU)."""

    name = "greenmeter"
    boundary_api = "enter + exit (with meter.phase)"

    def __init__(self, powercap_root: str) -> None:
        self.root = powercap_root
        self.meter: Any = None
        self.version = ""

    def prepare(self) -> None:
        import greenmeter
        from greenmeter import EnergyMeter  # noqa: F401  (the import is not timed)

        self.version = greenmeter.__version__

    def open(self) -> None:
        from greenmeter import EnergyMeter

        self.meter = EnergyMeter(powercap_root=self.root, gpu=False).start()

    def check(self) -> None:
        ids = {c.id for c in self.meter.components}
        want = {"rapl:package-0", "rapl:package-1", "rapl:dram-0", "rapl:dram-1"}
        if not want <= ids:
            reasons = "; ".join(f"{u.sensor}: {u.reason}" for u in self.meter.unavailable)
            raise RuntimeError(f"greenmeter measures {sorted(ids)}, not {sorted(want)} ({reasons})")

    def cycle(self, name: str) -> None:
        with self.meter.phase(name):
            pass

    def begin(self, name: str) -> Any:
        return self.meter.enter(name)

    def end(self, token: Any) -> dict[str, float | None]:
        self.meter.exit(token)
        snap = self.meter.snapshot()
        rec = next(p for p in snap.phases if p.path == token.path)
        return {
            "package_j": sum(v for k, v in rec.energy_j.items() if k.startswith("rapl:package-")),
            "dram_j": sum(v for k, v in rec.energy_j.items() if k.startswith("rapl:dram-")),
        }

    def background_pids(self) -> list[int]:
        return []

    def sampler_cpu_s(self) -> float | None:
        """CPU time of the meter's background thread (seconds), where the OS tells."""
        import threading

        for t in threading.enumerate():
            if t.name == "greenmeter-sampler" and t.ident is not None:
                try:
                    return time.clock_gettime(time.pthread_getcpuclockid(t.ident))
                except (AttributeError, OSError):
                    return None
        return None

    def close(self) -> None:
        if self.meter is not None:
            self.meter.stop()


class _PeerAdapter:
    """Gives a peer adapter from ``_peers`` the ``prepare``/``cycle`` methods."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.boundary_api = inner.boundary_api

    def prepare(self) -> None:
        module = _peers.PEERS[self.name]
        __import__(module)
        exec(METER_IMPORT[self.name], {})

    def open(self) -> None:
        self.inner.open()

    @property
    def version(self) -> str:
        return self.inner.version

    def check(self) -> None:
        self.inner.check()

    def cycle(self, name: str) -> None:
        self.inner.end(self.inner.begin(name))

    def begin(self, name: str) -> Any:
        return self.inner.begin(name)

    def end(self, token: Any) -> dict[str, float | None]:
        return self.inner.end(token)

    def background_pids(self) -> list[int]:
        return self.inner.background_pids()

    def sampler_cpu_s(self) -> float | None:
        return None

    def close(self) -> None:
        self.inner.close()


def make_adapter(tool: str, powercap_root: str | None) -> Any:
    if tool == "greenmeter":
        if not powercap_root:
            raise ValueError("greenmeter needs the emulated tree's root")
        return GreenmeterAdapter(powercap_root)
    if tool == "codecarbon":
        return _PeerAdapter(_peers.CodeCarbonAdapter())
    if tool == "zeus":
        return _PeerAdapter(_peers.ZeusAdapter())
    raise ValueError(f"unknown tool {tool!r}; expected one of {TOOLS}")


# -- measurements (run inside worker processes) ------------------------------------------


def _cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds of this process (all threads) plus the given live helper processes."""
    total = time.process_time()
    if pids:
        import psutil

        for pid in pids:
            try:
                ct = psutil.Process(pid).cpu_times()
                total += ct.user + ct.system
            except Exception:
                pass
    return total


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_idle_cpu(adapter: Any, idle_s: float) -> dict[str, Any]:
    """Process (+ helpers) CPU use over ``idle_s`` of idle wall time, % of one core."""
    pids = adapter.background_pids()
    thread0 = adapter.sampler_cpu_s()
    c0, w0 = _cpu_s(pids), time.monotonic()
    time.sleep(idle_s)
    c1, w1 = _cpu_s(pids), time.monotonic()
    thread1 = adapter.sampler_cpu_s()
    out: dict[str, Any] = {
        "cpu_pct": 100.0 * (c1 - c0) / (w1 - w0),
        "wall_s": w1 - w0,
        "helper_processes": len(pids),
    }
    if thread0 is not None and thread1 is not None:
        out["sampler_thread_cpu_pct"] = 100.0 * (thread1 - thread0) / (w1 - w0)
    return out


def measure_cost(adapter: Any, iterations: int) -> dict[str, Any]:
    """Wall time of one boundary pair, per iteration (after a warm-up)."""
    for i in range(max(3, iterations // 20)):
        adapter.cycle(f"warm{i % 4}")
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        t0 = clock()
        adapter.cycle("step")
        samples.append(clock() - t0)
    samples.sort()
    n = len(samples)
    return {
        "median_us": statistics.median(samples) / 1000.0,
        "p90_us": samples[min(n - 1, int(0.9 * n))] / 1000.0,
        "p99_us": samples[min(n - 1, int(0.99 * n))] / 1000.0,
        "iterations": n,
    }


def measure_boundary_memory(adapter: Any, boundaries: int) -> dict[str, Any]:
    """Resident-set growth after ``boundaries`` phase boundaries (4 phase names cycled)."""
    names = ("train", "validate", "test", "predict")
    for name in names:
        adapter.cycle(name)
    gc.collect()
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    for i in range(boundaries // 2):
        adapter.cycle(names[i & 3])
    elapsed = time.perf_counter() - t0
    gc.collect()
    growth = _rss_bytes() - rss0
    done = 2 * (boundaries // 2)
    return {
        "boundaries": done,
        "growth_mb": growth / 1e6,
        "per_1e6_mb": growth / 1e6 * (1e6 / done) if done else None,
        "wall_s": elapsed,
    }


def measure_accuracy(
    adapter: Any, phases_s: Sequence[float], gap_s: float, label: str
) -> list[dict[str, Any]]:
    """Open and close one window per duration; record instants and attributed energy.

    A boundary's instant is the midpoint of the call that reads the counters; the call
    durations are kept so the truth's uncertainty can be judged.
    """
    rows = []
    for i, dur in enumerate(phases_s):
        name = f"{label}-{i}"
        a0 = time.monotonic()
        token = adapter.begin(name)
        a1 = time.monotonic()
        time.sleep(dur)
        b0 = time.monotonic()
        energy = adapter.end(token)
        b1 = time.monotonic()
        rows.append(
            {
                "name": name,
                "t_a": (a0 + a1) / 2,
                "t_b": (b0 + b1) / 2,
                "begin_call_s": a1 - a0,
                "end_call_s": b1 - b0,
                **energy,
            }
        )
        time.sleep(gap_s)
    return rows


def measure_timeline_memory(hours: float) -> dict[str, Any]:
    """greenmeter: resident-set growth over a timeline of ``hours`` at the default 10 Hz.

    The meter's clock is simulated (``time`` inside ``greenmeter.core.meter`` and
    ``greenmeter.core.sampler`` is replaced) and its sampler tick is driven directly, so a
    day of samples takes seconds. The sensor is an in-memory trace counter, so the figure
    is the meter's own memory. Runs in a process of its own, so the growth is not hidden
    by memory freed earlier.
    """
    import types

    import greenmeter.core.meter as meter_mod
    import greenmeter.core.sampler as sampler_mod
    from greenmeter import EnergyMeter
    from greenmeter.testing.sensors import TraceSensor
    from greenmeter.testing.trace import PowerTrace

    interval_s = 0.1
    ticks = int(hours * 3600 / interval_s)
    clock = [time.monotonic()]
    names = [k for k in dir(time) if not k.startswith("_")]
    fake = types.SimpleNamespace(**{k: getattr(time, k) for k in names})
    fake.monotonic = lambda: clock[0]
    traces = {
        f"trace:{k}-{s}": PowerTrace(steps[s], t0=clock[0])
        for k, steps in (("package", PACKAGE_STEPS), ("dram", DRAM_STEPS))
        for s in (0, 1)
    }
    meter_mod.time = fake  # type: ignore[attr-defined]
    sampler_mod.time = fake  # type: ignore[attr-defined]
    try:
        meter = EnergyMeter(sensors=[TraceSensor(traces)], sample_interval_s=interval_s).start()
        core = meter.core
        sampler = core._sampler
        if sampler is None or not hasattr(sampler, "tick"):
            raise RuntimeError(
                "the meter has no sampler tick(): the timeline driver needs updating"
            )
        with core._lock:  # the real sampler thread waits on this lock meanwhile
            for _ in range(100):  # first points and phase records exist before the baseline
                clock[0] += interval_s
                sampler.tick(clock[0])
            gc.collect()
            rss0 = _rss_bytes()
            t0 = time.perf_counter()
            handle = None
            for i in range(ticks):
                clock[0] += interval_s
                if i % 6000 == 0:  # a phase boundary every 10 simulated minutes
                    if handle is not None:
                        meter.exit(handle)
                    handle = meter.enter("epoch", kind="train")
                sampler.tick(clock[0])
            if handle is not None:
                meter.exit(handle)
            elapsed = time.perf_counter() - t0
            gc.collect()
            rss1 = _rss_bytes()
            points = len(core._timeline.points)
        clock[0] += interval_s
        meter.stop()
    finally:
        meter_mod.time = time  # type: ignore[attr-defined]
        sampler_mod.time = time  # type: ignore[attr-defined]
    return {
        "simulated_hours": hours,
        "ticks": ticks,
        "growth_mb": (rss1 - rss0) / 1e6,
        "timeline_points": points,
        "wall_s": elapsed,
    }


def worker(task: str, tool: str, params: dict[str, Any]) -> dict[str, Any]:
    """One worker process's job; returns JSON-able results."""
    out: dict[str, Any] = {"tool": tool, "task": task}
    if task == "timeline":
        out["timeline"] = measure_timeline_memory(float(params["timeline_hours"]))
        return out
    adapter = make_adapter(tool, params.get("powercap_root"))
    adapter.prepare()
    if task == "ready":
        t0 = time.perf_counter()
        adapter.open()
        out["ready_s"] = time.perf_counter() - t0
        adapter.check()
        adapter.close()
        return out
    settle_s = float(params["settle_s"])
    if task == "main":
        out["baseline_cpu"] = measure_idle_cpu(adapter, float(params["idle_s"]) / 2)
    t0 = time.perf_counter()
    adapter.open()
    out["ready_s"] = time.perf_counter() - t0
    adapter.check()
    out["version"] = adapter.version
    out["boundary_api"] = adapter.boundary_api
    t0 = time.perf_counter()
    adapter.cycle("first")  # lazy set-up of the first measurement (Zeus: wrap trackers)
    out["first_boundary_s"] = time.perf_counter() - t0
    # helper processes (Zeus's wrap trackers) must be up before wraps are counted
    out["helper_processes"], out["helper_startup_s"] = _peers.wait_children_idle()
    time.sleep(settle_s)
    phases = [float(x) for x in params["phases_s"]]
    if task == "main":
        out["idle_cpu"] = measure_idle_cpu(adapter, float(params["idle_s"]))
        out["accuracy"] = measure_accuracy(adapter, phases, float(params["gap_s"]), "nowrap")
        out["cost"] = measure_cost(adapter, int(params["cost_iterations"]))
        out["memory"] = measure_boundary_memory(adapter, int(params["boundaries"]))
    elif task == "accuracy":
        out["accuracy"] = measure_accuracy(adapter, phases, float(params["gap_s"]), "wrap")
    else:
        raise ValueError(f"unknown worker task {task!r}")
    adapter.close()
    return out


def _worker_entry(argv: Sequence[str]) -> int:
    task, tool, params_json, out_path = argv
    try:
        result = worker(task, tool, json.loads(params_json))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    Path(out_path).write_text(json.dumps(result))
    sys.stdout.flush()
    _stop_children()
    os._exit(0)  # peers leave helper threads behind; do not wait for them


def _stop_children() -> None:
    """End the helper processes this worker started (Zeus's wrap trackers)."""
    try:
        import psutil
    except ImportError:
        return
    kids = psutil.Process().children(recursive=True)
    for p in kids:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(kids, timeout=3.0)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


# -- orchestration (the parent process) ---------------------------------------------------


class WorkerFailed(RuntimeError):
    """A worker process could not produce its figures; the message says why."""


def _env(tool: str) -> dict[str, str]:
    env = dict(os.environ)
    path = [str(SRC), str(HERE)]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env.pop("GREENMETER_POWERCAP_ROOT", None)
    # Measure imports as users run them, with bytecode caches (some sandboxes turn them
    # off, which makes every import compile its source); the warm-up runs fill them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if tool != "greenmeter":
        env["CODECARBON_LOG_LEVEL"] = "error"
    return env


def _python(tool: str) -> str:
    return sys.executable if tool == "greenmeter" else _peers.peers_python()


def run_worker(
    task: str, tool: str, params: dict[str, Any], tree: Any, timeout_s: float = 900.0
) -> dict[str, Any]:
    """Run one worker; peers run in a mount namespace showing ``tree`` at /sys."""
    with tempfile.TemporaryDirectory(prefix="greenmeter-bench-") as tmp:
        out_path = Path(tmp) / "result.json"
        argv = [_python(tool), str(Path(__file__).resolve()), "--worker", task, tool]
        argv += [json.dumps(params), str(out_path)]
        if tool != "greenmeter":
            if tree is None:
                raise WorkerFailed("no emulated tree to bind for the peer")
            argv = _peers.namespace_command(tree.sysfs_root, argv)
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, env=_env(tool)
            )
        except subprocess.TimeoutExpired as exc:
            raise WorkerFailed(f"{tool} {task} worker ran past {timeout_s:.0f} s") from exc
        if not out_path.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            raise WorkerFailed(
                f"{tool} {task} worker exited with {proc.returncode}: " + " | ".join(tail)
            )
        result = json.loads(out_path.read_text())
    if "error" in result:
        raise WorkerFailed(f"{tool} {task}: {result['error']}")
    return result


def measure_import(tool: str, runs: int) -> dict[str, Any]:
    """Median import times (ms) in fresh interpreters, and heavy modules pulled in."""
    if tool == "greenmeter":
        stmts = {"package": "import greenmeter", "meter_class": METER_IMPORT[tool]}
    else:
        stmts = {"package": f"import {tool}", "meter_class": METER_IMPORT[tool]}
    code = (
        "import sys, time, json\n"
        "t0 = time.perf_counter()\nexec({stmt!r})\nt1 = time.perf_counter()\n"
        "print(json.dumps([t1 - t0, [m for m in {heavy!r} if m in sys.modules]]))\n"
    )
    out: dict[str, Any] = {}
    for key, stmt in stmts.items():
        times, heavy = [], []
        for _ in range(max(1, runs)):
            proc = subprocess.run(
                [_python(tool), "-c", code.format(stmt=stmt, heavy=HEAVY_MODULES)],
                capture_output=True,
                text=True,
                env=_env(tool),
                timeout=300,
            )
            if proc.returncode != 0:
                raise WorkerFailed(f"`{stmt}` failed: {proc.stderr.strip().splitlines()[-1:]}")
            dt, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
            times.append(dt * 1000.0)
        out[key] = {"median_ms": statistics.median(times), "runs": times, "heavy": heavy}
    out["statement"] = stmts
    return out


def _truth(tree: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the exact energies and relative errors (%) to accuracy rows."""
    done = []
    for r in rows:
        pkg = tree.true_package_energy_j(r["t_a"], r["t_b"])
        dram = tree.true_dram_energy_j(r["t_a"], r["t_b"])
        row = dict(r, true_package_j=pkg, true_dram_j=dram, duration_s=r["t_b"] - r["t_a"])
        row["package_err_pct"] = 100.0 * (r["package_j"] - pkg) / pkg
        row["dram_err_pct"] = (
            100.0 * (r["dram_j"] - dram) / dram if r.get("dram_j") is not None else None
        )
        done.append(row)
    return done


def _max_abs(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [abs(r[key]) for r in rows if r.get(key) is not None]
    return max(vals) if vals else None


def bench_tool(
    tool: str,
    settings: Settings,
    trees: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """All figures of one tool; figures that failed carry the reason instead."""
    res: dict[str, Any] = {"tool": tool, "figures": {}, "problems": {}, "detail": {}}
    fig, problems, detail = res["figures"], res["problems"], res["detail"]
    root = str(trees["nowrap"].root)
    common = {
        "settle_s": settings.settle_s,
        "idle_s": settings.idle_s,
        "gap_s": settings.gap_s,
        "phases_s": list(settings.phases_s),
        "cost_iterations": settings.cost_iterations[tool],
        "boundaries": settings.boundaries[tool],
        "timeline_hours": settings.timeline_hours,
    }

    log(f"[{tool}] import time")
    try:
        imp = measure_import(tool, settings.import_runs)
        detail["import"] = imp
        fig["import_ms"] = imp["package"]["median_ms"]
        fig["meter_import_ms"] = imp["meter_class"]["median_ms"]
        heavy = set(imp["package"]["heavy"]) | set(imp["meter_class"]["heavy"])
        fig["heavy_modules"] = sorted(heavy)
    except WorkerFailed as exc:
        problems["import_ms"] = problems["meter_import_ms"] = str(exc)

    ready_runs: list[float] = []
    for i in range(settings.ready_runs):
        log(f"[{tool}] ready time, fresh process {i + 1}/{settings.ready_runs}")
        try:
            r = run_worker("ready", tool, {"powercap_root": root}, trees["nowrap"])
            ready_runs.append(r["ready_s"] * 1000.0)
        except WorkerFailed as exc:
            problems["ready_ms"] = str(exc)
            break

    log(f"[{tool}] idle CPU, accuracy without wraps, boundary cost, memory")
    try:
        main = run_worker("main", tool, {**common, "powercap_root": root}, trees["nowrap"])
        detail["main"] = main
        ready_runs.append(main["ready_s"] * 1000.0)
        res["version"] = main.get("version", "")
        res["boundary_api"] = main.get("boundary_api", "")
        base = main["baseline_cpu"]["cpu_pct"]
        fig["background_cpu_pct"] = max(0.0, main["idle_cpu"]["cpu_pct"] - base)
        if "sampler_thread_cpu_pct" in main["idle_cpu"]:
            fig["sampler_thread_cpu_pct"] = main["idle_cpu"]["sampler_thread_cpu_pct"]
        fig["boundary_us"] = main["cost"]["median_us"]
        fig["first_boundary_ms"] = main["first_boundary_s"] * 1000.0
        fig["memory_boundaries_mb"] = main["memory"]["per_1e6_mb"]
        rows = _truth(trees["nowrap"], main["accuracy"])
        detail["accuracy_nowrap"] = rows
        fig["err_nowrap_package_pct"] = _max_abs(rows, "package_err_pct")
        fig["err_nowrap_dram_pct"] = _max_abs(rows, "dram_err_pct")
    except WorkerFailed as exc:
        for key in (
            "background_cpu_pct",
            "boundary_us",
            "memory_boundaries_mb",
            "first_boundary_ms",
        ):
            problems[key] = str(exc)
        problems["err_nowrap_package_pct"] = problems["err_nowrap_dram_pct"] = str(exc)
    if ready_runs:
        fig["ready_ms"] = statistics.median(ready_runs)
        detail["ready_runs_ms"] = ready_runs

    log(f"[{tool}] accuracy with counter wraps")
    try:
        acc = run_worker(
            "accuracy", tool, {**common, "powercap_root": str(trees["wrap"].root)}, trees["wrap"]
        )
        rows = _truth(trees["wrap"], acc["accuracy"])
        detail["accuracy_wrap"] = rows
        fig["err_wrap_package_pct"] = _max_abs(rows, "package_err_pct")
        fig["err_wrap_dram_pct"] = _max_abs(rows, "dram_err_pct")
    except WorkerFailed as exc:
        problems["err_wrap_package_pct"] = problems["err_wrap_dram_pct"] = str(exc)

    if tool == "greenmeter":
        log(f"[{tool}] memory of a {settings.timeline_hours:g}-hour timeline")
        try:
            tl = run_worker("timeline", tool, common, None)["timeline"]
            detail["timeline"] = tl
            fig["memory_timeline_mb"] = tl["growth_mb"]
        except WorkerFailed as exc:
            problems["memory_timeline_mb"] = str(exc)
    else:
        problems["memory_timeline_mb"] = "not applicable: keeps no power timeline"
    if tool == "codecarbon" and "err_nowrap_dram_pct" not in problems:
        for key in ("err_nowrap_dram_pct", "err_wrap_dram_pct"):
            if fig.get(key) is None:
                fig.pop(key, None)
                problems[key] = "not measured: CodeCarbon skips DRAM zones below a package"
    return res


# -- the table -----------------------------------------------------------------------------

ROWS: list[tuple[str, str, str]] = [
    # key, label, format
    ("import_ms", "import time: `import <package>` (ms)", "{:.1f}"),
    ("meter_import_ms", "import time: meter class (ms)", "{:.1f}"),
    ("ready_ms", "constructor to ready (ms)", "{:.1f}"),
    ("first_boundary_ms", "first phase boundary pair (ms)", "{:.2f}"),
    ("boundary_us", "phase boundary pair, median (us)", "{:.1f}"),
    ("background_cpu_pct", "background CPU, idle, defaults (% core)", "{:.3f}"),
    ("memory_boundaries_mb", "memory growth per 1e6 boundaries (MB)", "{:.2f}"),
    ("memory_timeline_mb", "memory of a 24 h timeline (MB)", "{:.2f}"),
    ("err_nowrap_package_pct", "package energy error, no wraps (max %)", "{:.3f}"),
    ("err_nowrap_dram_pct", "DRAM energy error, no wraps (max %)", "{:.3f}"),
    ("err_wrap_package_pct", "package energy error, wraps (max %)", "{:.3f}"),
    ("err_wrap_dram_pct", "DRAM energy error, wraps (max %)", "{:.3f}"),
]


def _cell(res: dict[str, Any] | None, key: str, fmt: str) -> str:
    if res is None:
        return "-"
    val = res["figures"].get(key)
    if val is None:
        return "n/a" if key in res["problems"] else "-"
    return fmt.format(val)


def _ratio(gm: dict[str, Any] | None, peer: dict[str, Any] | None, key: str) -> str:
    if gm is None or peer is None:
        return "-"
    a, b = gm["figures"].get(key), peer["figures"].get(key)
    if a is None or b is None:
        return "-"
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.3g}"


def _verdict(gm: dict[str, Any] | None, key: str) -> str:
    if gm is None or key not in TARGETS:
        return ""
    val = gm["figures"].get(key)
    _op, limit = TARGETS[key]
    if val is None:
        return "?"
    return "ok" if val <= limit else "MISS"


def render_table(results: dict[str, dict[str, Any]], settings: Settings) -> str:
    gm = results.get("greenmeter")
    peers = [t for t in PEER_TOOLS if t in results]
    header = ["figure", "target", "greenmeter", "", *peers, *[f"gm/{p}" for p in peers]]
    lines = []
    for key, label, fmt in ROWS:
        if key == "memory_timeline_mb":
            label = f"memory of a {settings.timeline_hours:g} h timeline (MB)"
        target = f"{TARGETS[key][0]} {TARGETS[key][1]:g}" if key in TARGETS else ""
        row = [label, target, _cell(gm, key, fmt), _verdict(gm, key)]
        row += [_cell(results[p], key, fmt) for p in peers]
        row += [_ratio(gm, results[p], key) for p in peers]
        lines.append(row)
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]

    def fmt_row(r: Sequence[str]) -> str:
        cells = [
            str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)
        ]
        return "  ".join(cells).rstrip()

    out = [fmt_row(header), "  ".join("-" * w for w in widths)]
    out += [fmt_row(r) for r in lines]
    notes = []
    if gm is not None:
        heavy = gm["figures"].get("heavy_modules")
        if heavy is not None:
            notes.append(
                "greenmeter import pulls in heavy modules: "
                + (", ".join(heavy) if heavy else "none (no torch/lightning/numpy/pandas)")
            )
        if "sampler_thread_cpu_pct" in gm["figures"]:
            notes.append(
                f"greenmeter sampler thread alone: {gm['figures']['sampler_thread_cpu_pct']:.3f} "
                "% of a core"
            )
    for tool, res in results.items():
        api = res.get("boundary_api")
        if api:
            notes.append(f"{tool} {res.get('version', '')}: boundary pair = {api}")
        main = res.get("detail", {}).get("main", {})
        if main.get("helper_processes"):
            notes.append(
                f"{tool}: {main['helper_processes']} helper processes took "
                f"{main['helper_startup_s']:.1f} s to start after the first boundary "
                "(wraps in that time are not counted); their CPU is in its background figure"
            )
        mem = main.get("memory")
        if mem and mem["boundaries"] != 1_000_000:
            notes.append(
                f"{tool}: memory measured over {mem['boundaries']:,} boundaries "
                f"({mem['growth_mb']:.2f} MB), scaled to 1e6"
            )
        for key, why in res["problems"].items():
            label = next((lbl for k, lbl, _ in ROWS if k == key), key)
            if key == "memory_timeline_mb":
                label = "memory of a timeline (MB)"
            notes.append(f"{tool}: {label}: {why}")
    if notes:
        out.append("")
        out += [f"* {n}" for n in notes]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tools {unknown}; expected some of {list(TOOLS)}")
    settings = QUICK if args.quick else FULL

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    load_before = os.getloadavg()
    ns_problem = None
    if any(t in PEER_TOOLS for t in tools):
        ns_problem = _peers.namespace_problem()
    trees = {"nowrap": make_tree(wraps=False), "wrap": make_tree(wraps=True)}
    pinned = pin_emulators(list(trees.values()))
    if pinned:
        log(pinned)
    try:
        for tool in tools:
            if tool in PEER_TOOLS:
                why = ns_problem or _peers.peer_problem(tool)
                if why:
                    res = {"tool": tool, "figures": {}, "problems": {}, "detail": {}}
                    res["problems"] = {key: f"cannot run: {why}" for key, _, _ in ROWS}
                    results[tool] = res
                    log(f"[{tool}] cannot run: {why}")
                    continue
            results[tool] = bench_tool(tool, settings, trees, log)
    finally:
        for tree in trees.values():
            tree.close()

    load_after = os.getloadavg()
    table = render_table(results, settings)
    table += (
        f"\n* machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before and "
        f"{load_after[0]:.2f} after; {time.monotonic() - started:.0f} s in all"
    )
    print(table)
    if args.json:
        doc = {
            "benchmark": "bench_core",
            "mode": "quick" if args.quick else "full",
            "settings": asdict(settings),
            "targets": {k: {"op": op, "value": v} for k, (op, v) in TARGETS.items()},
            "host": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "peers_python": _peers.peers_python(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
            },
            "emulated_tree": {
                "packages": len(PACKAGE_STEPS),
                "package_steps": PACKAGE_STEPS,
                "dram_steps": DRAM_STEPS,
                "wrap_range_uj": WRAP_RANGE_UJ,
                "tdp_w": TDP_W,
            },
            "results": results,
            "table": table,
            "wall_s": time.monotonic() - started,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker_entry(sys.argv[2:])
    else:
        sys.exit(main())
