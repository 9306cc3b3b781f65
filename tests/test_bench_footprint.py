"""Smoke test of benchmarks/bench_footprint.py: it generates a small project, runs the
command cold and warm in fresh processes, and its totals agree with its own truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_footprint_runs_and_checks_its_totals(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_footprint.py"), "--files", "400",
         "--dir", str(tmp_path / "data"), "--repeat", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "totals equal the truth: yes" in proc.stdout
    figures = json.loads(out.read_text())
    cold, warm, changed, no_index = figures["rows"]
    assert cold["files_read"] == figures["files"] == 400  # every file read once
    assert warm["files_read"] == 0 and warm["files_from_index"] == 400
    assert changed["files_read"] == 4  # 1% touched
    assert no_index["files_read"] == 400
