"""Checks of greenmeter's NVML assumptions on a real NVIDIA board (one script, < 4 minutes).

Run on a machine with an NVIDIA GPU (written for an H200): ``python benchmarks/gpu_check.py``.
With ``OUT`` set, the figures are also written to ``$OUT/gpu_check.json``.

Sections (each independent: an error is printed and the next section runs):

1. environment: driver, NVML version, boards, torch/lightning availability;
2. cost of each NVML call greenmeter uses (median, p95);
3. the energy counter's update step;
4. energy counter vs integrated instant power (``NVML_FI_DEV_POWER_INSTANT`` polled as
   fast as reasonable) over 0.5, 1, 2 and 5 s windows, under a torch matmul load (steady
   and bursty) when torch with CUDA is available, else idle (noted); plus the
   ``nvmlDeviceGetPowerUsage`` (1 s average) integral beside them;
5. cost of ``torch.cuda.synchronize()`` at a boundary;
6. greenmeter's ``NvmlSensor`` against the raw counter;
7. a tiny Lightning fit with ``GreenMeterCallback`` (if both import);
8. boundary placement: the load switches between matmul and sleep every 300 ms, a meter
   marks a phase boundary at each switch, and each phase's placed GPU energy (with its
   method and bound) is compared with the real counter, read as fast as it answers on a
   thread of its own: over each run of phases that starts and ends on counter updates the
   sums must agree, and each phase must lie within its bound plus the counter's own
   uncertainty there;
9. what following the counter costs in CPU on this host (after section 8, the load
   stopped): thread CPU of one energy-counter call and one instant-power call (is the
   ~2.5 ms call asleep or busy?), of a bare thread wake-up, and of greenmeter's threads
   over 5 s with no boundary and 5 s with a boundary every 100 ms.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T_START = time.monotonic()
BUDGET_S = 225.0  # stop starting optional work past this (the whole run must stay < 4 min)
FIELD_POWER_INSTANT = 186
RESULTS: dict[str, Any] = {"sections": {}, "errors": {}}


def elapsed() -> float:
    return time.monotonic() - T_START


def stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {
        "n": len(s),
        "median": statistics.median(s),
        "p95": s[min(len(s) - 1, int(0.95 * len(s)))],
        "min": s[0],
        "max": s[-1],
    }


def section(name: str):
    def wrap(fn):
        def run(*a, **k):
            print(f"\n=== {name} (t={elapsed():.1f} s) ===", flush=True)
            if elapsed() > BUDGET_S:
                print("  skipped: time budget used")
                RESULTS["errors"][name] = "skipped: time budget"
                return None
            try:
                out = fn(*a, **k)
                RESULTS["sections"][name] = out
                return out
            except Exception as exc:
                print(f"  ERROR: {exc!r}")
                traceback.print_exc(limit=3)
                RESULTS["errors"][name] = repr(exc)
                return None

        return run

    return wrap


# -- load generator -------------------------------------------------------------------------


class Load:
    """Keeps GPU 0 busy with bf16 matmuls from a thread; ``pattern`` = steady or bursty."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.mode = "idle"
        self._stop = threading.Event()
        n = 8192
        dev = torch.device("cuda:0")
        self.a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        self.b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        torch = self.torch
        while not self._stop.is_set():
            mode = self.mode
            if mode == "idle":
                time.sleep(0.01)
                continue
            if mode == "bursty" and (time.monotonic() % 0.6) >= 0.3:
                torch.cuda.synchronize()
                time.sleep(0.005)
                continue
            for _ in range(4):
                self.a @ self.b  # the work is the point
            torch.cuda.synchronize()

    def close(self) -> None:
        self._stop.set()
        self._th.join(timeout=5)


# -- sections -------------------------------------------------------------------------------


@section("environment")
def environment(nv: Any) -> dict:
    out: dict[str, Any] = {
        "driver_version": nv.nvmlSystemGetDriverVersion(),
        "nvml_version": nv.nvmlSystemGetNVMLVersion(),
        "gpus": [],
        "python": sys.version.split()[0],
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        g = {"index": i, "name": nv.nvmlDeviceGetName(h), "uuid": nv.nvmlDeviceGetUUID(h)}
        for key, fn in (
            ("architecture", lambda h=h: nv.nvmlDeviceGetArchitecture(h)),
            ("power_limit_w", lambda h=h: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000),
            ("mig_mode", lambda h=h: nv.nvmlDeviceGetMigMode(h)[0]),
            ("processes", lambda h=h: len(nv.nvmlDeviceGetComputeRunningProcesses(h))),
        ):
            try:
                g[key] = fn()
            except Exception as exc:
                g[key] = f"error: {exc}"
        out["gpus"].append(g)
    for mod in ("torch", "lightning"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception as exc:
            out[mod] = f"unavailable: {exc!r}"
    try:
        import torch

        out["torch_cuda"] = bool(torch.cuda.is_available())
    except Exception:
        out["torch_cuda"] = False
    print(json.dumps(out, indent=1, default=str))
    return out


@section("nvml call costs")
def call_costs(nv: Any, h: Any) -> dict:
    calls = {
        "nvmlDeviceGetTotalEnergyConsumption": lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h),
        "nvmlDeviceGetFieldValues(POWER_INSTANT)": lambda: nv.nvmlDeviceGetFieldValues(
            h, [FIELD_POWER_INSTANT]
        ),
        "nvmlDeviceGetPowerUsage": lambda: nv.nvmlDeviceGetPowerUsage(h),
        "nvmlDeviceGetHandleByIndex": lambda: nv.nvmlDeviceGetHandleByIndex(0),
        "nvmlDeviceGetUUID": lambda: nv.nvmlDeviceGetUUID(h),
        "nvmlDeviceGetComputeRunningProcesses": lambda: nv.nvmlDeviceGetComputeRunningProcesses(h),
        "nvmlDeviceGetUtilizationRates": lambda: nv.nvmlDeviceGetUtilizationRates(h),
    }
    out = {}
    for name, fn in calls.items():
        xs = []
        deadline = time.monotonic() + 2.0
        while len(xs) < 2000 and time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                fn()
            except Exception as exc:
                out[name] = f"error: {exc}"
                break
            xs.append(time.perf_counter() - t)
        if xs:
            out[name] = stats(xs)
            print(
                f"  {name:42s} median {out[name]['median'] * 1e6:9.1f} us  "
                f"p95 {out[name]['p95'] * 1e6:9.1f} us  (n={len(xs)})"
            )
    t = time.perf_counter()
    nv.nvmlInit()
    nv.nvmlShutdown()
    out["nvmlInit+Shutdown (already initialised)"] = time.perf_counter() - t
    return out


@section("energy counter update step")
def counter_step(nv: Any, h: Any, load: Load | None) -> dict:
    out = {}
    for mode in ("idle", "steady") if load else ("idle",):
        if load:
            load.mode = mode
            time.sleep(0.5)
        changes: list[tuple[float, int]] = []
        last = nv.nvmlDeviceGetTotalEnergyConsumption(h)
        end = time.monotonic() + 2.0
        reads = 0
        while time.monotonic() < end:
            v = nv.nvmlDeviceGetTotalEnergyConsumption(h)
            reads += 1
            if v != last:
                changes.append((time.monotonic(), v - last))
                last = v
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(changes)]
        res = {
            "reads": reads,
            "changes": len(changes),
            "step_s": stats(gaps) if gaps else None,
            "increment_mj": stats([float(c[1]) for c in changes]) if changes else None,
        }
        out[mode] = res
        if gaps:
            print(
                f"  {mode}: {len(changes)} changes in 2 s over {reads} reads; step median "
                f"{res['step_s']['median'] * 1e3:.2f} ms (p95 {res['step_s']['p95'] * 1e3:.2f} ms,"
                f" min {res['step_s']['min'] * 1e3:.2f} ms)"
            )
        else:
            print(f"  {mode}: counter did not change in 2 s ({reads} reads)")
    if load:
        load.mode = "idle"
    return out


def _instant_w(nv: Any, h: Any) -> float | None:
    v = nv.nvmlDeviceGetFieldValues(h, [FIELD_POWER_INSTANT])[0]
    if v.nvmlReturn != 0:
        return None
    return v.value.uiVal / 1000.0


@section("counter vs integrated instant power")
def counter_vs_instant(nv: Any, h: Any, load: Load | None) -> dict:
    windows = [0.5, 1.0, 2.0, 5.0]
    modes = ["steady", "bursty"] if load else ["idle (no torch/CUDA: no load)"]
    if not load:
        print("  note: torch with CUDA unavailable; measuring the idle board only")
    out: dict[str, Any] = {}
    for mode in modes:
        if load:
            load.mode = mode
            time.sleep(0.7)
        rows = []
        for w in windows:
            for _rep in range(2 if w < 5 else 1):
                e0 = nv.nvmlDeviceGetTotalEnergyConsumption(h)
                t0 = time.monotonic()
                p_prev = _instant_w(nv, h)
                if p_prev is None:
                    raise RuntimeError("instant power field not supported on this board")
                u_prev = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
                t_prev = t0
                e_inst = e_use = 0.0
                n = 0
                while True:
                    time.sleep(0.002)
                    t = time.monotonic()
                    p = _instant_w(nv, h) or p_prev
                    u = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
                    e_inst += 0.5 * (p + p_prev) * (t - t_prev)
                    e_use += 0.5 * (u + u_prev) * (t - t_prev)
                    p_prev, u_prev, t_prev = p, u, t
                    n += 1
                    if t - t0 >= w:
                        break
                e1 = nv.nvmlDeviceGetTotalEnergyConsumption(h)
                dt = time.monotonic() - t0
                e_ctr = (e1 - e0) / 1000.0
                row = {
                    "window_s": w,
                    "duration_s": dt,
                    "counter_j": e_ctr,
                    "instant_integral_j": e_inst,
                    "power_usage_integral_j": e_use,
                    "samples": n,
                    "mean_power_w": e_ctr / dt if dt > 0 else None,
                    "instant_vs_counter": (e_inst - e_ctr) / e_ctr if e_ctr > 0 else None,
                    "power_usage_vs_counter": (e_use - e_ctr) / e_ctr if e_ctr > 0 else None,
                }
                rows.append(row)
                iv = row["instant_vs_counter"]
                uv = row["power_usage_vs_counter"]
                print(
                    f"  {mode:8s} {w:3.1f} s: counter {e_ctr:8.2f} J ({row['mean_power_w']:.0f} W),"
                    f" instant {e_inst:8.2f} J ({iv:+.2%}), 1s-avg {e_use:8.2f} J ({uv:+.2%}),"
                    f" {n} samples"
                    if iv is not None and uv is not None
                    else f"  {mode} {w} s: counter {e_ctr} J (no change)"
                )
        out[mode] = rows
    if load:
        load.mode = "idle"
    return out


@section("torch.cuda.synchronize cost")
def sync_cost(torch: Any, load: Load | None) -> dict:
    out = {}
    xs = []
    for _ in range(300):
        t = time.perf_counter()
        torch.cuda.synchronize()
        xs.append(time.perf_counter() - t)
    out["idle"] = stats(xs)
    # After a small queued kernel: the boundary waits for the queue to drain.
    a = torch.randn(1024, 1024, device="cuda:0")
    ys = []
    for _ in range(100):
        a @ a
        t = time.perf_counter()
        torch.cuda.synchronize()
        ys.append(time.perf_counter() - t)
    out["after_1k_matmul"] = stats(ys)
    print(
        f"  idle: median {out['idle']['median'] * 1e6:.1f} us, "
        f"p95 {out['idle']['p95'] * 1e6:.1f} us;"
        f" after a queued 1024^2 matmul: median {out['after_1k_matmul']['median'] * 1e6:.1f} us"
    )
    return out


@section("greenmeter NvmlSensor vs raw counter")
def sensor_vs_raw(nv: Any, h: Any, load: Load | None) -> dict:
    from greenmeter.sensors import nvml as gm_nvml

    t = time.perf_counter()
    sensor, unavailable = gm_nvml.probe(gpus=[0])
    probe_s = time.perf_counter() - t
    if sensor is None:
        raise RuntimeError(f"probe returned no sensor: {unavailable}")
    try:
        (c,) = sensor.components()
        print(f"  component {c.id} method={c.method.value} resolution_s={c.resolution_s:.4f}")
        print(f"  detail {dict(c.detail)}")
        print(
            "  start-up call costs (ms): "
            + ", ".join(f"{k}={v * 1e3:.3f}" for k, v in sensor.call_costs_s.items())
        )
        warnings = [(w.code, w.message) for w in sensor.drain_warnings()]
        if load:
            load.mode = "bursty"
            time.sleep(0.5)
        rows, costs = [], []
        raw0 = nv.nvmlDeviceGetTotalEnergyConsumption(h)
        now = time.monotonic()
        r0 = sensor.read(now)[c.id]
        for _ in range(6):
            time.sleep(1.0)
            t = time.perf_counter()
            now = time.monotonic()
            r1 = sensor.read(now)[c.id]
            costs.append(time.perf_counter() - t)
            raw1 = nv.nvmlDeviceGetTotalEnergyConsumption(h)
            rows.append({"sensor_j": r1 - r0, "raw_j": (raw1 - raw0) / 1000.0})
            r0, raw0 = r1, raw1
        if load:
            load.mode = "idle"
        for r in rows:
            r["diff"] = (r["sensor_j"] - r["raw_j"]) / r["raw_j"] if r["raw_j"] else None
        print(
            "  1 s windows, sensor vs raw: "
            + ", ".join(f"{r['sensor_j']:.1f}/{r['raw_j']:.1f} J" for r in rows)
        )
        print(
            f"  boundary read cost: median {statistics.median(costs) * 1e6:.1f} us; "
            f"probe {probe_s * 1e3:.1f} ms"
        )
        return {
            "component": {
                "id": c.id,
                "method": c.method.value,
                "resolution_s": c.resolution_s,
                "shared": c.shared,
                "detail": dict(c.detail),
            },
            "probe_s": probe_s,
            "call_costs_s": sensor.call_costs_s,
            "warnings": warnings,
            "windows": rows,
            "read_cost_s": stats(costs),
            "status": {k: v.reason for k, v in sensor.status().items()},
        }
    finally:
        sensor.close()


def _greenmeter_threads_cpu_s() -> float:
    """CPU seconds used so far by this process's threads named ``greenmeter*`` (Linux)."""
    total = 0.0
    for t in threading.enumerate():
        if not t.name.startswith("greenmeter") or t.native_id is None:
            continue
        try:
            text = Path(f"/proc/self/task/{t.native_id}/schedstat").read_text()
        except OSError:
            continue  # the thread ended
        total += int(text.split()[0]) / 1e9
    return total


@section("greenmeter tracker CPU")
def tracker_cpu(nv: Any, h: Any) -> dict:
    """What following the board's counter costs in CPU on this host: the thread CPU of one
    counter call and one instant-power call, of a bare thread wake-up, and of greenmeter's
    threads (every board the process sees) with no boundary and with a boundary every
    100 ms, with the counter reads and instant-power rounds they made per second."""
    from greenmeter.core.meter import Meter
    from greenmeter.sensors import nvml as gm_nvml

    def cpu_per_call(fn: Any, n: int) -> dict[str, float]:
        xs = []
        for _ in range(n):
            c = time.thread_time()
            fn()
            xs.append(time.thread_time() - c)
        return stats(xs)

    out: dict[str, Any] = {
        "energy_call_cpu_s": cpu_per_call(lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h), 200),
        "instant_call_cpu_s": cpu_per_call(
            lambda: nv.nvmlDeviceGetFieldValues(h, [FIELD_POWER_INSTANT]), 500
        ),
    }
    woke: list[float] = []

    def sleeper() -> None:
        c = time.thread_time()
        for _ in range(40):
            time.sleep(0.025)
        woke.append((time.thread_time() - c) / 40)

    th = threading.Thread(target=sleeper)
    th.start()
    th.join()
    out["wakeup_cpu_s"] = woke[0]
    sensor, unavailable = gm_nvml.probe(sample_interval_s=0.1)
    if sensor is None or sensor.tracker is None:
        raise RuntimeError(f"no tracked board: {unavailable}")
    tracker = sensor.tracker
    meter = Meter([sensor], sample_interval_s=0.1).start()
    try:
        out["boards"] = len(tracker.ids)
        time.sleep(1.5)  # the start's active second, the grid located
        for what, boundaries in (("no boundary", False), ("a boundary every 100 ms", True)):
            calls0, rounds0 = tracker.calls(), tracker.power_rounds
            cpu0, wall0 = _greenmeter_threads_cpu_s(), time.monotonic()
            end = wall0 + 5.0
            while time.monotonic() < end:
                if boundaries:
                    handle = meter.enter("step")
                    time.sleep(0.1)
                    meter.exit(handle)
                else:
                    time.sleep(0.1)
            wall = time.monotonic() - wall0
            row = {
                "cpu_pct": 100 * (_greenmeter_threads_cpu_s() - cpu0) / wall,
                "reads_per_s": (tracker.calls() - calls0) / wall,
                "rounds_per_s": (tracker.power_rounds - rounds0) / wall,
            }
            out[what] = row
            print(
                f"  {what}: greenmeter threads {row['cpu_pct']:.3f} % of a core "
                f"({row['reads_per_s']:.1f} counter reads/s, {row['rounds_per_s']:.1f} "
                f"instant-power rounds/s, {out['boards']} board(s))"
            )
    finally:
        meter.stop()
        sensor.close()
    print(
        f"  thread CPU: energy call median {out['energy_call_cpu_s']['median'] * 1e6:.1f} us, "
        f"instant call {out['instant_call_cpu_s']['median'] * 1e6:.1f} us, "
        f"a bare wake-up {out['wakeup_cpu_s'] * 1e6:.1f} us"
    )
    return out


@section("lightning fit with GreenMeterCallback")
def lightning_fit() -> dict:
    import torch

    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    try:
        from greenmeter.integrations.lightning import GreenMeterCallback
    except ModuleNotFoundError:
        # Not installed (pip install -e .): map the top-level integrations/ folder by hand.
        import importlib.util

        root = Path(__file__).resolve().parents[1] / "integrations"
        spec = importlib.util.spec_from_file_location(
            "greenmeter.integrations", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["greenmeter.integrations"] = mod
        spec.loader.exec_module(mod)
        from greenmeter.integrations.lightning import GreenMeterCallback

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1)
            )

        def training_step(self, batch, _i):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch, _i):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    ds = torch.utils.data.TensorDataset(torch.randn(4096, 256), torch.randn(4096, 1))
    dl = torch.utils.data.DataLoader(ds, batch_size=128)
    out_dir = os.environ.get("OUT")
    report = str(Path(out_dir) / "lightning_report.json") if out_dir else None
    cb = GreenMeterCallback(report_path=report)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator=os.environ.get("GM_CHECK_ACCELERATOR", "gpu"),
        devices=1,
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    t = time.perf_counter()
    trainer.fit(Tiny(), dl, dl)
    fit_s = time.perf_counter() - t
    out: dict[str, Any] = {"fit_s": fit_s}
    meter = getattr(cb, "meter", None)
    snap = None
    for obj, attr in ((cb, "snapshot"), (meter, "snapshot")):
        fn = getattr(obj, attr, None) if obj is not None else None
        if callable(fn):
            try:
                snap = fn()
                break
            except Exception as exc:
                out["snapshot_error"] = repr(exc)
    if snap is not None:
        try:
            phases = []
            for p in getattr(snap, "phases", []) or []:
                d = p.model_dump() if hasattr(p, "model_dump") else getattr(p, "__dict__", {})
                phases.append(
                    {
                        k: d.get(k)
                        for k in ("path", "name", "kind", "count", "duration_s", "energy_j")
                        if k in d
                    }
                )
            out["phases"] = phases
            out["total_energy_j"] = getattr(meter, "total_energy_j", None)
        except Exception as exc:
            out["phases_error"] = repr(exc)
    print(f"  fit took {fit_s:.1f} s; " + json.dumps(out, default=str)[:1500])
    return out


# -- main -------------------------------------------------------------------------------------


@section("boundary placement against the real counter")
def placement_check(nv: Any, h: Any, load: Load) -> dict:
    from greenmeter.core.meter import Meter
    from greenmeter.sensors import nvml

    raw: list[tuple[float, int]] = []
    stop = threading.Event()

    def follow() -> None:  # the real counter, read back to back
        while not stop.is_set():
            a = time.monotonic()
            mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(h))
            raw.append((0.5 * (a + time.monotonic()), mj))

    sensor, unavailable = nvml.probe(gpus=[0], sample_interval_s=0.1)
    if sensor is None:
        raise RuntimeError(f"no NVML sensor: {unavailable}")
    cid = sensor.components()[0].id
    th = threading.Thread(target=follow, daemon=True)
    th.start()
    meter = Meter([sensor], sample_interval_s=0.1).start()
    spans = []
    t = time.monotonic() + 0.5
    for i in range(20):  # 6 s: matmul and sleep in turn, a boundary at each switch
        while time.monotonic() < t:
            time.sleep(0.0005)
        load.mode = "steady" if i % 2 == 0 else "idle"
        h_phase = meter.enter(f"p{i}")
        a = h_phase._state.open_since
        t += 0.3
        while time.monotonic() < t:
            time.sleep(0.0005)
        meter.exit(h_phase)
        spans.append((f"p{i}", a, h_phase._state.record.last_end_mono))
    load.mode = "idle"
    snap = meter.stop()
    sensor.close()
    stop.set()
    th.join(timeout=2)
    phases = {p.path[0]: p for p in snap.phases}

    def counter_at(x: float) -> tuple[float, float]:
        """(J at the last raw read before x, J at the first raw read after x)."""
        before = max((r for r in raw if r[0] <= x), default=raw[0])
        after = min((r for r in raw if r[0] >= x), default=raw[-1])
        return before[1] / 1000.0, after[1] / 1000.0

    rows = []
    for name, a, b in spans:
        p = phases[name]
        lo_a, hi_a = counter_at(a)
        lo_b, hi_b = counter_at(b)
        # the counter alone brackets the phase's energy between these
        low, high = max(0.0, lo_b - hi_a), hi_b - lo_a
        got = p.energy_j[cid]
        bound = p.energy_bound_j.get(cid, 0.0)
        rows.append(
            {
                "phase": name,
                "placed_j": got,
                "counter_low_j": low,
                "counter_high_j": high,
                "bound_j": bound,
                "method": p.energy_methods.get(cid),
                "within": low - bound - 1e-3 <= got <= high + bound + 1e-3,
            }
        )
    total_placed = sum(r["placed_j"] for r in rows)
    c0 = counter_at(spans[0][1])
    c1 = counter_at(spans[-1][2])
    out = {
        "phases": rows,
        "placed_total_j": total_placed,
        "counter_total_low_j": c1[0] - c0[1],
        "counter_total_high_j": c1[1] - c0[0],
        "all_within": all(r["within"] for r in rows),
        "raw_reads": len(raw),
    }
    print(
        f"  {sum(r['within'] for r in rows)}/{len(rows)} phases within the counter's bracket "
        f"plus their bound; total placed {total_placed:.2f} J vs counter "
        f"[{out['counter_total_low_j']:.2f}, {out['counter_total_high_j']:.2f}] J"
    )
    return out


def main() -> int:
    try:
        import pynvml as nv

        nv.nvmlInit()
    except Exception as exc:
        print(f"NVML unavailable, nothing to check: {exc!r}")
        RESULTS["errors"]["nvml"] = repr(exc)
        write_json()
        return 1
    h = nv.nvmlDeviceGetHandleByIndex(0)
    environment(nv)
    torch = None
    load = None
    try:
        import torch as _torch

        if _torch.cuda.is_available():
            torch = _torch
            load = Load(torch)
            load.mode = "steady"
            time.sleep(0.3)
            load.mode = "idle"
    except Exception as exc:
        print(f"\nno torch load (torch/CUDA unavailable: {exc!r}); measuring idle only")
        RESULTS["errors"]["load"] = repr(exc)
    RESULTS["load"] = "torch bf16 8192^2 matmul" if load else "none (idle board)"
    call_costs(nv, h)
    counter_step(nv, h, load)
    counter_vs_instant(nv, h, load)
    if torch is not None:
        sync_cost(torch, load)
    sensor_vs_raw(nv, h, load)
    if load:
        placement_check(nv, h, load)
        load.close()
    tracker_cpu(nv, h)
    if torch is not None:
        lightning_fit()
    try:
        nv.nvmlShutdown()
    except Exception:
        pass
    summary()
    write_json()
    return 0


def summary() -> None:
    print(f"\n=== summary (total {elapsed():.1f} s) ===")
    s = RESULTS["sections"]
    try:
        cc = s.get("nvml call costs") or {}
        for k, v in cc.items():
            if isinstance(v, dict):
                print(f"  cost {k}: median {v['median'] * 1e6:.1f} us, p95 {v['p95'] * 1e6:.1f} us")
        st = s.get("energy counter update step") or {}
        for mode, r in st.items():
            if r.get("step_s"):
                print(f"  counter step ({mode}): median {r['step_s']['median'] * 1e3:.2f} ms")
        cv = s.get("counter vs integrated instant power") or {}
        for mode, rows in cv.items():
            by_w: dict[float, list[float]] = {}
            for r in rows:
                if r.get("instant_vs_counter") is not None:
                    by_w.setdefault(r["window_s"], []).append(r["instant_vs_counter"])
            print(
                f"  instant-vs-counter ({mode}): "
                + ", ".join(f"{w:g} s: {statistics.fmean(v):+.2%}" for w, v in sorted(by_w.items()))
            )
        sv = s.get("greenmeter NvmlSensor vs raw counter")
        if sv:
            diffs = [abs(r["diff"]) for r in sv["windows"] if r.get("diff") is not None]
            print(
                f"  NvmlSensor vs raw counter: max |diff| {max(diffs):.3%}; read cost median "
                f"{sv['read_cost_s']['median'] * 1e6:.1f} us; method {sv['component']['method']}"
            )
        for k, v in RESULTS["errors"].items():
            print(f"  error in {k}: {v}")
    except Exception as exc:
        print(f"  (summary failed: {exc!r})")


def write_json() -> None:
    out = os.environ.get("OUT")
    if not out:
        return
    try:
        path = Path(out) / "gpu_check.json"
        path.write_text(json.dumps(RESULTS, indent=1, default=str))
        print(f"figures written to {path}")
    except Exception as exc:
        print(f"could not write JSON: {exc!r}")


if __name__ == "__main__":
    sys.exit(main())
