#!/usr/bin/env python3
"""A day of energy in half a minute: counter wraps, accuracy and memory over a long run.

Two emulated CPU packages draw about 1 MW each (:class:`greenmeter.testing.EmulatedPowercap`,
counters advanced about 1000 times a second by a separate process) with a counter range
of 300 kJ, so each RAPL counter wraps about every 0.3 s. Thirty seconds of this is 60 MJ
(16.7 kWh): what a 700 W machine draws in 24 hours, compressed in time so that the
meter meets, in half a minute, the number of counter wraps and a multiple of the phase
boundaries that a day-long training run gives it.

While it runs, a loop opens epochs, train/validate phases and steps as fast as it can
(with per-step latencies and item counts), the meter writes a checkpoint every second,
and memory is sampled every second after a warm-up: the size of everything the meter keeps
(phase records with their intervals and latency reservoirs, the power timeline, warnings,
last readings: a deep ``sys.getsizeof`` walk) and the process's resident set. Reported:

* energy per package against the trace's exact integral (target: within 0.1 %);
* counter wraps counted per package against the wraps the counter really made;
* phase boundaries made, and their mean cost;
* the meter's state after warm-up and at the end, its growth per 10^5 boundaries, and the
  resident set (target: no growth with run length beyond the meter's fixed bounds);
* warnings the meter recorded.

Usage::

    python benchmarks/bench_long_run.py                  # 30 s, 2 x 1 MW
    python benchmarks/bench_long_run.py --duration 10    # shorter
    python benchmarks/bench_long_run.py --json out.json  # also write the figures
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenmeter import EnergyMeter
from greenmeter.meter import LATENCY_RESERVOIR, MAX_INTERVALS
from greenmeter.report import Report
from greenmeter.sensors import rapl
from greenmeter.testing.powercap import EmulatedPowercap
from greenmeter.testing.trace import PowerTrace

#: Power pattern per package, as fractions of the nominal power (period 1 s).
PATTERN = [(0.37, 0.8), (0.23, 1.2), (0.40, 1.0)]
ENERGY_TARGET_REL = 1e-3


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


_OPAQUE = (type, type(sys), type(len), type(_rss_bytes))


def state_bytes(meter: EnergyMeter) -> int:
    """Bytes held by what the meter accumulates while it runs (deep ``sys.getsizeof``).

    Walks the phase records (energies, intervals, latency reservoirs, attributes), the
    power timeline, the warnings and the last readings; objects are counted once.
    """
    seen: set[int] = set()

    def size(obj: object) -> int:
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            return 0
        seen.add(id(obj))
        total = sys.getsizeof(obj)
        if isinstance(obj, dict):
            total += sum(size(k) + size(v) for k, v in obj.items())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            total += sum(size(v) for v in obj)
        elif hasattr(obj, "__dict__"):
            total += size(vars(obj))
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                total += size(getattr(obj, name))
        return total

    core = meter.core
    parts = (core._book.states, core._timeline.points, core._notes.items(), core._totals.current())
    return sum(size(p) for p in parts)


def _wraps(trace: PowerTrace, start_uj: int, range_uj: int, t_a: float, t_b: float) -> int:
    """How often the emulated counter really wrapped between two instants."""

    def raw(t: float) -> int:
        return start_uj + int(trace.cumulative_j(t) * 1e6)

    return raw(t_b) // range_uj - raw(t_a) // range_uj


def run_long(
    duration_s: float = 30.0,
    power_w: float = 1e6,
    *,
    range_uj: int = 300_000_000_000,
    max_power_w: float = 1.5e6,
    warmup_s: float | None = None,
    checkpoint_interval_s: float = 1.0,
    directory: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the compressed long run and return its figures (joules, seconds, bytes).

    Args:
        duration_s: Wall-clock length of the measured run.
        power_w: Nominal power per package (the pattern swings 0.8x to 1.2x around it).
        range_uj: Counter wrap point (``max_energy_range_uj``).
        max_power_w: Plausible maximum power given to the RAPL sensor (sets the wrap-guard
            period: ``range / (4 x max_power)``, at least 50 ms).
        warmup_s: Time before the first memory sample (default a quarter of the run), by
            which every bounded structure of the meter is full.
        checkpoint_interval_s: Period of the in-progress report written to disk.
        directory: Where the report goes (default a temporary folder).
        progress: Called with a line of text now and then.
    """
    say = progress or (lambda _line: None)
    warmup_s = duration_s / 4 if warmup_s is None else warmup_s
    folder = Path(directory or tempfile.mkdtemp(prefix="greenmeter-long-"))
    report_path = folder / "long_run.json"
    t0 = time.monotonic()
    traces = [
        PowerTrace([(d, f * power_w) for d, f in PATTERN], t0=t0),
        PowerTrace([(d, f * power_w) for d, f in reversed(PATTERN)], t0=t0),
    ]
    start_uj = {"package-0": 0, "package-1": range_uj // 2}
    with EmulatedPowercap(
        traces, subzones=False, max_energy_range_uj=range_uj, start_uj=start_uj, tdp_w=power_w
    ) as pc:
        t_open = time.monotonic()
        sensor, why = rapl.probe(pc.root, max_power_w=max_power_w)
        if sensor is None:
            raise RuntimeError(f"the emulated RAPL tree could not be read: {why}")
        meter = EnergyMeter(
            [sensor],
            sample_interval_s=0.05,
            timeline_points=64,
            report_path=report_path,
            checkpoint_interval_s=checkpoint_interval_s,
            carbon=False,
            run_name="long-run",
        )
        meter.start()
        end_at = meter.started_mono + duration_s
        sample_at = meter.started_mono + warmup_s
        memory: list[tuple[float, int, int, int | None]] = []  # (t, boundaries, state, rss)
        boundaries = 0
        epoch = 0
        loop_s = 0.0
        while time.monotonic() < end_at:
            a = time.perf_counter()
            with meter.phase("epoch", kind="epoch"):
                with meter.phase("train", kind="train"):
                    for _ in range(400):
                        s = time.perf_counter()
                        with meter.phase("step", kind="custom") as ph:
                            ph.add(samples=32, steps=1)
                            ph.record_latency(time.perf_counter() - s)
                with meter.phase("validate", kind="validate") as ph:
                    ph.add(samples=64)
            loop_s += time.perf_counter() - a
            boundaries += 2 * (2 + 400 + 1)
            epoch += 1
            now = time.monotonic()
            if now >= sample_at:
                with meter.core._lock:
                    state = state_bytes(meter)
                memory.append((now - meter.started_mono, boundaries, state, _rss_bytes()))
                sample_at = now + 1.0
                say(
                    f"t={now - meter.started_mono:5.1f} s  boundaries={boundaries:>8}  "
                    f"meter state={state / 1024:8.1f} KiB"
                )
        snap = meter.stop()
        t_close = time.monotonic()
    start, end = snap.started_mono, snap.ended_mono
    assert end is not None
    wraps = sensor.wrap_counts()
    resets = sensor.reset_counts()
    per_package = []
    for sock, trace in enumerate(traces):
        cid = f"rapl:package-{sock}"
        truth = trace.energy_j(start, end)
        measured = snap.energy_j[cid]
        real_wraps = _wraps(trace, start_uj[f"package-{sock}"], range_uj, t_open, t_close)
        per_package.append(
            {
                "component": cid,
                "energy_j": measured,
                "truth_j": truth,
                "rel_error": (measured - truth) / truth,
                "wraps_counted": wraps[cid],
                "wraps_real": real_wraps,
                "resets": resets[cid],
            }
        )
    total_truth = sum(p["truth_j"] for p in per_package)
    total = sum(p["energy_j"] for p in per_package)
    phases = {p.path: p for p in snap.phases}
    report = Report.load(report_path)
    first, last = memory[0], memory[-1]
    window = max(1, last[1] - first[1])
    return {
        "duration_s": end - start,
        "power_w_per_package": power_w,
        "range_uj": range_uj,
        "energy_j": total,
        "truth_j": total_truth,
        "energy_kwh": total / 3.6e6,
        "equivalent_hours_at_700_w": total_truth / 700.0 / 3600.0,
        "rel_error": (total - total_truth) / total_truth,
        "packages": per_package,
        "boundaries": boundaries,
        "boundary_cost_us": loop_s / boundaries * 1e6,
        "epochs": epoch,
        "phase_counts": {"/".join(k): v.count for k, v in phases.items()},
        "max_intervals_kept": max(len(p.intervals_mono) for p in snap.phases),
        "max_latencies_kept": max(len(p.latencies_s) for p in snap.phases),
        "timeline_points": len(snap.timeline),
        "memory_samples": [
            {"t_s": t, "boundaries": b, "state_bytes": m, "rss_bytes": r} for t, b, m, r in memory
        ],
        "state_after_warmup_bytes": first[2],
        "state_end_bytes": last[2],
        "state_max_bytes": max(m[2] for m in memory),
        "state_growth_bytes": last[2] - first[2],
        "state_growth_per_1e5_boundaries_bytes": (last[2] - first[2]) / window * 1e5,
        "rss_after_warmup_bytes": first[3],
        "rss_end_bytes": last[3],
        "warnings": sorted({w.code for w in snap.warnings}),
        "report_status": report.status,
        "report_bytes": report_path.stat().st_size,
        "bounds": {"intervals": MAX_INTERVALS, "latencies": LATENCY_RESERVOIR, "timeline": 64},
    }


def _print(fig: dict[str, Any]) -> None:
    kib = 1024.0
    print(
        f"long run: {fig['duration_s']:.1f} s, "
        f"2 packages at {fig['power_w_per_package'] / 1e6:g} MW"
    )
    print(
        f"  energy        {fig['energy_j'] / 1e6:.3f} MJ ({fig['energy_kwh']:.2f} kWh = "
        f"{fig['equivalent_hours_at_700_w']:.1f} h at 700 W); truth {fig['truth_j'] / 1e6:.3f} MJ; "
        f"error {fig['rel_error'] * 100:+.4f} % (target within {ENERGY_TARGET_REL * 100:g} %)"
    )
    for p in fig["packages"]:
        print(
            f"  {p['component']:<16} error {p['rel_error'] * 100:+.4f} %  wraps counted "
            f"{p['wraps_counted']} (real {p['wraps_real']})  resets {p['resets']}"
        )
    print(
        f"  boundaries    {fig['boundaries']} ({fig['boundary_cost_us']:.1f} us each incl. the "
        f"loop); epochs {fig['epochs']}"
    )
    print(
        f"  kept          <= {fig['max_intervals_kept']} intervals per phase "
        f"(bound {fig['bounds']['intervals']}), <= {fig['max_latencies_kept']} latencies "
        f"(bound {fig['bounds']['latencies']}), {fig['timeline_points']} timeline points "
        f"(bound {fig['bounds']['timeline']})"
    )
    rss_a, rss_b = fig["rss_after_warmup_bytes"], fig["rss_end_bytes"]
    rss = f"; RSS {rss_a / kib**2:.1f} -> {rss_b / kib**2:.1f} MiB" if rss_a and rss_b else ""
    print(
        f"  memory        meter state {fig['state_after_warmup_bytes'] / kib:.1f} KiB "
        "after warm-up "
        f"-> {fig['state_end_bytes'] / kib:.1f} KiB at the end (max "
        f"{fig['state_max_bytes'] / kib:.1f} KiB; "
        f"{fig['state_growth_per_1e5_boundaries_bytes']:+.0f} B per 1e5 boundaries){rss}"
    )
    print(f"  warnings      {', '.join(fig['warnings']) or 'none'}")
    print(f"  final report  status {fig['report_status']}, {fig['report_bytes']} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--power", type=float, default=1e6, help="W per package (default 1e6)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    fig = run_long(args.duration, args.power, progress=lambda line: print(line, file=sys.stderr))
    _print(fig)
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))
    ok = abs(fig["rel_error"]) <= ENERGY_TARGET_REL and all(
        abs(p["wraps_counted"] - p["wraps_real"]) <= 1 for p in fig["packages"]
    )
    return 0 if ok and math.isfinite(fig["rel_error"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
