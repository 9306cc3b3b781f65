"""Boundary cost of greenmeter's AMD sensor on fake AMD GPUs, beside the NVML sensor's.

Every figure comes from a child process that loads the fake libraries of
``greenmeter.testing`` (``FakeAmdSmi`` through ``ROCM_HOME``, ``FakeNvml`` through
``LD_LIBRARY_PATH``) with the real ``amdsmi`` and ``pynvml`` packages, so the sensors run
their real code; the fake libraries answer in microseconds, so the figures are
greenmeter's own cost plus the bindings' (a real driver adds its own call time: about
2.5 ms per NVML energy read on an H200, see ``results/``).

Figures printed:

1. cost of one boundary read (``sensor.read``) with 1 and 8 fake GPUs of each vendor
   (energy-counter boards), and of the bare binding call it wraps;
2. one phase boundary pair (``with meter.phase(...)``: enter + exit) of an
   ``EnergyMeter(cpu=False)`` on a host with 1 + 1 and 8 + 8 GPUs (NVIDIA + AMD), and
   with AMD GPUs alone, as a user pays it (the meter reads every sensor at each boundary);
3. CPU used by the 10 Hz sampler for AMD boards without an energy accumulator.

Run: ``python benchmarks/bench_amd.py [--reads 3000] [--json figures.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench_nvml import run_child, us  # the same child runner and units as the NVML figures

from greenmeter.testing import PowerTrace
from greenmeter.testing.fake_amdsmi import FakeAmdGpu, FakeAmdSmi
from greenmeter.testing.fake_nvml import FakeNvml

SRC = str(Path(__file__).resolve().parents[1] / "src")
STEPS = [(0.5, 420.0), (0.5, 610.0), (0.5, 480.0), (0.5, 700.0)]
#: Accumulator count at the start: past 2^32, as after minutes of use since driver load, so
#: the sensor knows it is a 64-bit count that needs no wrap-guard polling.
START_COUNT = 10**12


def amd_fake(n_gpus: int, trace: PowerTrace, **kwargs: object) -> FakeAmdSmi:
    """``n_gpus`` MI300X-like boards drawing ``trace``."""
    return FakeAmdSmi(
        [FakeAmdGpu(trace, counter_start=START_COUNT, **kwargs) for _ in range(n_gpus)]  # type: ignore[arg-type]
    )


# -- child programs (each prints one JSON line) ---------------------------------------------

READ_COST = """
import json, statistics, sys, time
vendor, n_reads = sys.argv[1], int(sys.argv[2])
if vendor == "amd":
    from greenmeter.sensors import amd as mod
else:
    from greenmeter.sensors import nvml as mod
s, un = mod.probe()
assert s is not None, un
costs = []
for _ in range(n_reads):
    t = time.perf_counter(); s.read(time.monotonic()); costs.append(time.perf_counter() - t)
raw = []
if vendor == "amd":
    import amdsmi
    h = amdsmi.amdsmi_get_processor_handles()[0]
    call = lambda: amdsmi.amdsmi_get_energy_count(h)
else:
    import pynvml
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    call = lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
for _ in range(n_reads):
    t = time.perf_counter(); call(); raw.append(time.perf_counter() - t)
s.close()
costs.sort()
print(json.dumps({"read_median_s": statistics.median(costs),
                  "read_p95_s": costs[int(0.95 * len(costs))],
                  "raw_call_median_s": statistics.median(raw),
                  "components": len(s.components())}))
"""

BOUNDARY = """
import json, statistics, sys, time
from greenmeter import EnergyMeter
n = int(sys.argv[1])
meter = EnergyMeter(cpu=False)
costs = []
with meter:
    for _ in range(50):  # warm-up
        with meter.phase("warm"):
            pass
    for _ in range(n):
        t = time.perf_counter()
        with meter.phase("step"):
            pass
        costs.append(time.perf_counter() - t)
    sensors = sorted({c.sensor for c in meter.components})
    count = len(meter.components)
costs.sort()
print(json.dumps({"pair_median_s": statistics.median(costs),
                  "pair_p95_s": costs[int(0.95 * len(costs))],
                  "sensors": sensors, "components": count}))
"""

SAMPLER_CPU = """
import json, sys, threading, time
from greenmeter.sensors import amd
duration = float(sys.argv[1])
s, un = amd.probe(sample_interval_s=0.1)
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

_VISIBILITY = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


def child_env(*fakes: FakeAmdSmi | FakeNvml) -> dict[str, str]:
    """This environment without GPU selection or fake-library variables, plus the fakes'."""
    drop = {
        "ROCM_HOME",
        "ROCM_PATH",
        "LD_LIBRARY_PATH",
        "GREENMETER_FAKE_NVML_CONFIG",
        "GREENMETER_FAKE_AMDSMI_CONFIG",
        *_VISIBILITY,
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    for fake in fakes:
        env.update(fake.env())
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def bench_read_cost(n_reads: int) -> dict:
    print("\n== 1. cost of one boundary read (energy-counter boards) ==")
    out: dict[str, dict] = {}
    trace = PowerTrace(STEPS)
    for n_gpus in (1, 8):
        for vendor in ("nvidia", "amd"):
            fake: FakeAmdSmi | FakeNvml
            fake = (
                FakeAmdSmi(n_gpus, trace=trace)
                if vendor == "amd"
                else FakeNvml(n_gpus, trace=trace)
            )
            try:
                r = run_child(sys.executable, READ_COST, [vendor, str(n_reads)], child_env(fake))
            finally:
                fake.close()
            out[f"{vendor}-{n_gpus}"] = r
            binding = "amdsmi energy count" if vendor == "amd" else "pynvml energy call"
            print(
                f"  {n_gpus} {vendor:6s} GPU(s): sensor.read median {us(r['read_median_s'])}, "
                f"p95 {us(r['read_p95_s'])}; bare {binding} {us(r['raw_call_median_s'])}"
            )
    for n_gpus in (1, 8):
        ratio = out[f"amd-{n_gpus}"]["read_median_s"] / out[f"nvidia-{n_gpus}"]["read_median_s"]
        print(f"  AMD / NVIDIA read cost with {n_gpus} GPU(s): x{ratio:.2f}")
    return out


def bench_boundary(n_pairs: int) -> dict:
    print("\n== 2. one phase boundary pair (enter + exit) of EnergyMeter(cpu=False) ==")
    out: dict[str, dict] = {}
    trace = PowerTrace(STEPS)
    for n_amd, n_nv in ((0, 1), (1, 0), (0, 8), (8, 0), (1, 1), (8, 8)):
        fakes: list[FakeAmdSmi | FakeNvml] = []
        if n_amd:
            fakes.append(amd_fake(n_amd, trace))
        if n_nv:
            fakes.append(FakeNvml(n_nv, trace=trace))
        try:
            r = run_child(sys.executable, BOUNDARY, [str(n_pairs)], child_env(*fakes))
        finally:
            for fake in fakes:
                fake.close()
        key = f"{n_amd}amd+{n_nv}nvidia"
        out[key] = r
        print(
            f"  {n_amd} AMD + {n_nv} NVIDIA GPU(s) ({r['components']} components, "
            f"{'+'.join(r['sensors'])}): median {us(r['pair_median_s'])}, "
            f"p95 {us(r['pair_p95_s'])}"
        )
    return out


def bench_sampler_cpu(duration_s: float) -> dict:
    print("\n== 3. sampler CPU at 10 Hz (AMD boards without an energy accumulator) ==")
    out = {}
    for n_gpus in (1, 8):
        trace = PowerTrace(STEPS)
        fake = amd_fake(n_gpus, trace, energy_counter=False)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=3000, help="reads per read-cost figure")
    ap.add_argument("--pairs", type=int, default=2000, help="boundary pairs per meter figure")
    ap.add_argument("--sampler-s", type=float, default=3.0)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    figures = {
        "read_cost": bench_read_cost(args.reads),
        "boundary_pair": bench_boundary(args.pairs),
        "sampler_cpu": bench_sampler_cpu(args.sampler_s),
        "cpus": os.cpu_count(),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
