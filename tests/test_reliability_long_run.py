"""A time-compressed long run: megawatts on emulated RAPL, counter wraps, flat memory.

The shorter version of ``benchmarks/bench_long_run.py`` (run that for the full-size
figures: 30 s at 2 x 1 MW, about 60 MJ, the energy of a 700 W machine over 24 hours,
with a counter that wraps every 0.3 s).

Here the counter range is 1.5 MJ, so each counter wraps every 1.25-1.9 s: the wrap guard
(every 0.25 s) then keeps every wrap even when the whole process stalls for a second, as a
full garbage collection of a large test process can on a machine whose cores are busy. A
real RAPL package counter wraps every few minutes or more at package power. A guard that
does run late is warned about; ``tests/test_rapl.py`` checks that warning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_long_run


@pytest.mark.slow
def test_compressed_long_run_is_exact_and_memory_flat(tmp_path: Path) -> None:
    fig = bench_long_run.run_long(
        duration_s=6.0,
        power_w=1e6,
        range_uj=1_500_000_000_000,
        warmup_s=1.5,
        checkpoint_interval_s=0.5,
        directory=tmp_path,
    )
    bench_long_run._print(fig)
    # energy: 2 packages x ~1 MW x 6 s = ~12 MJ, against the traces' exact integral
    assert fig["truth_j"] > 10e6
    assert abs(fig["rel_error"]) <= bench_long_run.ENERGY_TARGET_REL, fig["warnings"]
    for p in fig["packages"]:
        assert abs(p["rel_error"]) <= bench_long_run.ENERGY_TARGET_REL, (p, fig["warnings"])
        # every wrap the counter made was counted once; none mistaken for a reset
        assert p["wraps_real"] >= 3
        assert abs(p["wraps_counted"] - p["wraps_real"]) <= 1, p
        assert p["resets"] == 0
    assert fig["warnings"] == []  # no late wrap guard, no reset, no read error
    # many boundaries, and the meter's state stays within its fixed bounds
    assert fig["boundaries"] >= 100_000
    assert fig["max_intervals_kept"] <= fig["bounds"]["intervals"]
    assert fig["max_latencies_kept"] == fig["bounds"]["latencies"]  # the reservoir is full
    assert fig["timeline_points"] <= fig["bounds"]["timeline"]
    states = [m["state_bytes"] for m in fig["memory_samples"]]
    window = fig["memory_samples"][-1]["boundaries"] - fig["memory_samples"][0]["boundaries"]
    assert len(states) >= 3 and window >= 50_000
    # the state only breathes (interval lists and the timeline halve when full)
    assert max(states) - min(states) <= 192 * 1024, states
    assert max(states) <= 1024 * 1024
    assert fig["report_status"] == "complete"
    assert fig["phase_counts"]["epoch/train/step"] == 400 * fig["epochs"]
