"""Cost and accuracy of greenmeter's NVML sensor, beside Zeus and CodeCarbon, on fake GPUs.

Every tool loads the same fake ``libnvidia-ml.so.1`` (greenmeter.testing.FakeNvml) in a
child process through ``LD_LIBRARY_PATH``, so each reads the same boards drawing the same
known power trace; the error is measured against the trace's exact integral.

Figures printed:

1. cost of one boundary read (``NvmlSensor.read``) with 1, 4 and 8 fake GPUs, beside the
   bare pynvml call;
2. CPU used by the 10 Hz sampler (boards without an energy counter);
3. one scenario (2 GPUs, power steps every 0.5 s, five 1 s windows) measured by
   greenmeter, Zeus (``ZeusMonitor`` windows) and CodeCarbon (``EmissionsTracker`` tasks),
   with each tool's energy error and cost, and greenmeter/peer ratios.

Run: ``python benchmarks/bench_nvml.py [--peers-python /root/peers/bin/python]``.
The peer parts are skipped (with a note) when their interpreter or packages are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from greenmeter.testing import PowerTrace
from greenmeter.testing.fake_nvml import FakeGpu, FakeNvml

SRC = str(Path(__file__).resolve().parents[1] / "src")
STEPS = [(0.5, 220.0), (0.5, 280.0), (0.5, 240.0), (0.5, 300.0)]
N_WINDOWS = 5
WINDOW_S = 1.0

# -- child programs (each prints one JSON line) ---------------------------------------------

READ_COST = """
import json, statistics, sys, time
import pynvml
from greenmeter.sensors import nvml
n_reads = int(sys.argv[1])
s, un = nvml.probe()
assert s is not None, un
costs = []
for _ in range(n_reads):
    t = time.perf_counter(); s.read(time.monotonic()); costs.append(time.perf_counter() - t)
h = pynvml.nvmlDeviceGetHandleByIndex(0)
raw = []
for _ in range(n_reads):
    t = time.perf_counter(); pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
    raw.append(time.perf_counter() - t)
s.close()
print(json.dumps({"read_median_s": statistics.median(costs),
                  "read_p95_s": sorted(costs)[int(0.95 * len(costs))],
                  "raw_call_median_s": statistics.median(raw),
                  "startup_s": s.call_costs_s}))
"""

SAMPLER_CPU = """
import json, sys, threading, time
from greenmeter.sensors import nvml
duration = float(sys.argv[1])
s, un = nvml.probe(sample_interval_s=0.1)
assert s is not None and s.poll_interval_s, un
out = {}
def run():
    c0, w0 = time.thread_time(), time.monotonic()
    nxt = w0
    while time.monotonic() - w0 < duration:
        s.poll(time.monotonic()); nxt += s.poll_interval_s
        time.sleep(max(0.0, nxt - time.monotonic()))
    out["cpu_s"] = time.thread_time() - c0; out["wall_s"] = time.monotonic() - w0
th = threading.Thread(target=run); th.start(); th.join(); s.close()
print(json.dumps(out))
"""

SCENARIO_GREENMETER = """
import json, sys, threading, time
t_imp = time.perf_counter()
from greenmeter.sensors import nvml
n, w = int(sys.argv[1]), float(sys.argv[2])
s, un = nvml.probe(); startup = time.perf_counter() - t_imp  # import + probe
ids = [c.id for c in s.components()]
stop = threading.Event()
def sampler():  # what EnergyMeter's thread does for sampled boards
    while not stop.wait(s.poll_interval_s):
        s.poll(time.monotonic())
if s.poll_interval_s:
    threading.Thread(target=sampler, daemon=True).start()
start = time.monotonic() + 0.2
windows, costs = [], []
def boundary():
    t = time.perf_counter(); now = time.monotonic(); r = s.read(now)
    costs.append(time.perf_counter() - t); return now, r
while time.monotonic() < start: time.sleep(0.005)
ta, ra = boundary()
for k in range(n):
    while time.monotonic() < start + (k + 1) * w: time.sleep(0.005)
    tb, rb = boundary()
    windows.append([ta, tb, [rb[i] - ra[i] for i in ids]]); ta, ra = tb, rb
stop.set(); s.close()
print(json.dumps({"windows": windows, "startup_s": startup, "boundary_costs_s": costs}))
"""

SCENARIO_ZEUS = """
import json, sys, time
n, w = int(sys.argv[1]), float(sys.argv[2])
t = time.perf_counter()
from zeus.monitor import ZeusMonitor
m = ZeusMonitor(gpu_indices=[0, 1], cpu_indices=[])
startup = time.perf_counter() - t
start = time.monotonic() + 0.2
windows, costs = [], []
while time.monotonic() < start: time.sleep(0.005)
t = time.perf_counter(); ta = time.monotonic(); m.begin_window("w0", sync_execution=False)
costs.append(time.perf_counter() - t)
for k in range(n):
    while time.monotonic() < start + (k + 1) * w: time.sleep(0.005)
    # A boundary is one end_window and the next begin_window, as a user would write it.
    t = time.perf_counter(); tb = time.monotonic()
    meas = m.end_window(f"w{k}", sync_execution=False)
    m.begin_window(f"w{k+1}", sync_execution=False)
    costs.append(time.perf_counter() - t)
    windows.append([ta, tb, [meas.gpu_energy[0], meas.gpu_energy[1]]]); ta = tb
print(json.dumps({"windows": windows, "startup_s": startup, "boundary_costs_s": costs}))
"""

SCENARIO_CODECARBON = """
import json, logging, sys, time
n, w = int(sys.argv[1]), float(sys.argv[2])
t = time.perf_counter()
from codecarbon import OfflineEmissionsTracker
tr = OfflineEmissionsTracker(country_iso_code="FRA", measure_power_secs=1, save_to_file=False,
                             log_level="error", gpu_ids=[0, 1], tracking_mode="machine")
tr.start()
startup = time.perf_counter() - t
start = time.monotonic() + 0.2
windows, costs = [], []
while time.monotonic() < start: time.sleep(0.005)
t = time.perf_counter(); ta = time.monotonic(); tr.start_task("w0")
costs.append(time.perf_counter() - t)
for k in range(n):
    while time.monotonic() < start + (k + 1) * w: time.sleep(0.005)
    t = time.perf_counter(); tb = time.monotonic()
    data = tr.stop_task(f"w{k}")
    tr.start_task(f"w{k+1}")
    costs.append(time.perf_counter() - t)
    # CodeCarbon reports all GPUs together, in kWh.
    windows.append([ta, tb, [data.gpu_energy * 3.6e6]]); ta = tb
tr.stop_task(f"w{n}"); tr.stop()
print(json.dumps({"windows": windows, "startup_s": startup, "boundary_costs_s": costs}))
"""


def run_child(
    python: str, code: str, args: list[str], env: dict[str, str], timeout_s: float = 180.0
) -> dict:
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def child_env(fake: FakeNvml, extra_path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(fake.env())
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if extra_path:
        env["PATH"] = extra_path + os.pathsep + env.get("PATH", "")
    return env


def us(x: float) -> str:
    return f"{x * 1e6:8.1f} us"


def bench_read_cost(n_reads: int) -> dict:
    print("\n== 1. cost of one boundary read (energy-counter boards) ==")
    out = {}
    for n_gpus in (1, 4, 8):
        fake = FakeNvml(n_gpus, trace=PowerTrace.constant(300.0))
        try:
            r = run_child(sys.executable, READ_COST, [str(n_reads)], child_env(fake))
        finally:
            fake.close()
        out[n_gpus] = r
        print(
            f"  {n_gpus} GPU(s): NvmlSensor.read median {us(r['read_median_s'])}, "
            f"p95 {us(r['read_p95_s'])}; bare pynvml energy call {us(r['raw_call_median_s'])}"
        )
    return out


def bench_sampler_cpu(duration_s: float) -> dict:
    print("\n== 2. sampler CPU at 10 Hz (boards without an energy counter) ==")
    out = {}
    for n_gpus in (1, 4, 8):
        trace = PowerTrace(STEPS)
        fake = FakeNvml([FakeGpu(trace, energy_counter=False) for _ in range(n_gpus)])
        try:
            r = run_child(sys.executable, SAMPLER_CPU, [str(duration_s)], child_env(fake))
        finally:
            fake.close()
        share = r["cpu_s"] / r["wall_s"]
        out[n_gpus] = {**r, "cpu_share": share}
        print(
            f"  {n_gpus} GPU(s): {r['cpu_s'] * 1e3:.1f} ms CPU over {r['wall_s']:.1f} s "
            f"= {share:.3%} of one core"
        )
    return out


def scenario(python: str, code: str, fake: FakeNvml, trace: PowerTrace, extra_path=None) -> dict:
    r = run_child(python, code, [str(N_WINDOWS), str(WINDOW_S)], child_env(fake, extra_path))
    errs = []
    for ta, tb, energies in r["windows"]:
        truth = [trace.energy_j(ta, tb)] * 2
        if len(energies) == 1:  # a tool that sums all GPUs
            truth = [sum(truth)]
        errs += [(e - t) / t for e, t in zip(energies, truth, strict=True)]
    costs = r["boundary_costs_s"]
    return {
        "errors": errs,
        "max_abs_error": max(abs(e) for e in errs),
        "mean_abs_error": statistics.fmean(abs(e) for e in errs),
        "boundary_median_s": statistics.median(costs),
        "startup_s": r["startup_s"],
    }


def bench_peers(peers_python: str) -> dict:
    print(
        f"\n== 3. scenario: 2 GPUs, power step every 0.5 s, {N_WINDOWS} windows of "
        f"{WINDOW_S:g} s =="
    )
    trace = PowerTrace(STEPS, t0=time.monotonic() - 5.0)
    results: dict[str, dict] = {}
    # Each tool reads its own fake instance of the same two boards and trace.
    runs = [("greenmeter (counter)", sys.executable, SCENARIO_GREENMETER, True, None)]
    runs.append(("greenmeter (sampled)", sys.executable, SCENARIO_GREENMETER, False, None))
    have_peers = Path(peers_python).exists()
    fake_bin = Path(tempfile.mkdtemp(prefix="gm-fake-smi-"))
    smi = fake_bin / "nvidia-smi"  # CodeCarbon looks for this program before using NVML
    smi.write_text("#!/bin/sh\nexit 0\n")
    smi.chmod(0o755)
    if have_peers:
        runs.append(("zeus", peers_python, SCENARIO_ZEUS, True, None))
        runs.append(("codecarbon", peers_python, SCENARIO_CODECARBON, True, str(fake_bin)))
    else:
        print(f"  (peers skipped: {peers_python} not found)")
    for name, python, code, counter, extra_path in runs:
        fake = FakeNvml([FakeGpu(trace, energy_counter=counter) for _ in range(2)])
        try:
            results[name] = scenario(python, code, fake, trace, extra_path)
        except Exception as exc:  # a peer that fails is reported, not fatal
            print(f"  {name}: FAILED: {str(exc)[-800:]}")
            continue
        finally:
            fake.close()
        r = results[name]
        print(
            f"  {name:22s} error per window: max {r['max_abs_error']:.3%}, "
            f"mean {r['mean_abs_error']:.3%}; boundary cost {us(r['boundary_median_s'])}; "
            f"start-up {r['startup_s'] * 1e3:.0f} ms"
        )
    gm = results.get("greenmeter (counter)")
    if gm:
        for peer in ("zeus", "codecarbon"):
            if peer in results:
                p = results[peer]
                ratio = gm["boundary_median_s"] / p["boundary_median_s"]
                print(
                    f"  greenmeter/{peer}: boundary cost x{ratio:.2f}, "
                    f"start-up x{gm['startup_s'] / p['startup_s']:.2f}, max error "
                    f"{gm['max_abs_error']:.3%} vs {p['max_abs_error']:.3%}"
                )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers-python", default="/root/peers/bin/python")
    ap.add_argument("--reads", type=int, default=3000)
    ap.add_argument("--sampler-s", type=float, default=3.0)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    figures = {
        "read_cost": bench_read_cost(args.reads),
        "sampler_cpu": bench_sampler_cpu(args.sampler_s),
        "scenario": bench_peers(args.peers_python),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
