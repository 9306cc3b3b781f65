#!/usr/bin/env python3
"""``greenmeter footprint`` over 10^5 report files: cold (no index), warm, and memory.

A project's worth of runs is generated once under a folder (default
``$TMPDIR/greenmeter-bench-footprint``, kept for the next time; ``--regenerate`` writes it
again): 100 folders of 1000 report files, each a real report (made by
:func:`greenmeter.report.build_report` from a hand-made meter snapshot: GPU, CPU package
and DRAM, four phases, a 64-point power timeline, carbon for one of four grids), with
tags (project, experiment, model, seed), every status, 1% of runs written by two ranks
(two files merged into one run), 0.5% of runs with an earlier checkpoint copy, and 0.1%
corrupt files. The files are input data for the benchmark, written directly (no fsync).

Then ``greenmeter footprint DIR --by experiment,model -f json`` runs as a user runs it, in
a fresh process each time (interpreter start and imports included):

* **cold**: no index: every file is read once, validated, and its figures stored;
* **warm**: the same again: the index answers, no report is opened (target: < 2 s; the
  best of ``--repeat`` runs, since other work on the machine slows single runs);
* **warm, 1% changed**: 1000 files touched: only those are read again;
* **no index**: ``--no-index``, every file read, nothing stored (for comparison).

For each: wall time, CPU time (user + system), files read (from the summary), and the
process's peak resident set (``ru_maxrss`` of the child). The totals are checked against
the truth computed from the templates (merged runs by :func:`merge_reports`). The page
cache is warm in every run (the files were just written or read); a cold cache adds the
disk's read time once.

Usage::

    python benchmarks/bench_footprint.py                 # 10^5 files (first time: generate)
    python benchmarks/bench_footprint.py --files 5000    # smaller
    python benchmarks/bench_footprint.py --json out.json # also write the figures
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from greenmeter.carbon import CarbonConfig
from greenmeter.records import MeterSnapshot, PhaseRecord, TimelinePoint
from greenmeter.report import Report, build_report, merge_reports
from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope

WARM_TARGET_S = 2.0
FILES_PER_DIR = 1000
TEMPLATES = 240
START = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)
GPU = "nvml:GPU-0b9d3a52-1111-2222-3333-444444444444"
GPU_B = "nvml:GPU-0b9d3a52-1111-2222-3333-555555555555"
PKG, DRAM = "rapl:package-0", "rapl:dram-0"
GRIDS = [
    CarbonConfig(location="FR", pue=1.2),
    CarbonConfig(location="DE", pue="uptime-2024"),
    CarbonConfig(location="US-CA", pue=1.1),
    CarbonConfig(location="SE", pue=1.15),
]
EXPERIMENTS = ["baseline", "ablation", "sweep", "distillation", "final"]
MODELS = ["small", "base", "large", "teacher", "student"]
STATUSES = ["complete"] * 16 + ["failed", "interrupted", "running"]


def _components(host: str, gpus: list[str]) -> list[ComponentInfo]:
    out = [
        ComponentInfo(PKG, ComponentKind.CPU, Scope.CPU_PACKAGE, Method.COUNTER, "rapl",
                      "CPU package 0", host, 0.001, 0.5, detail={"socket": "0"}),
        ComponentInfo(DRAM, ComponentKind.DRAM, Scope.DRAM, Method.COUNTER, "rapl", "DRAM 0",
                      host, 0.001),
    ]  # fmt: skip
    for n, gpu in enumerate(gpus):
        out.append(
            ComponentInfo(gpu, ComponentKind.GPU, Scope.GPU_BOARD, Method.COUNTER, "nvml",
                          f"NVIDIA H100 (GPU {n})", host, 0.1,
                          detail={"uuid": gpu.split(":", 1)[1], "name": "NVIDIA H100 80GB HBM3",
                                  "index": str(n)})
        )  # fmt: skip
    return out


def _snapshot(k: int, rng: random.Random, *, rank: int = 0, world: int = 1) -> MeterSnapshot:
    """Template ``k``: a run of 10 min to 3 h, constant power per component."""
    host = "node-a" if rank == 0 else "node-b"
    gpus = [GPU] if rank == 0 else [GPU_B]
    comps = _components(host, gpus)
    watts = {PKG: rng.uniform(60, 200), DRAM: rng.uniform(5, 30)}
    watts.update({g: rng.uniform(150, 650) for g in gpus})
    duration = rng.uniform(600, 10800)
    t0 = 1000.0
    spans = {("fit",): ("fit", 0.02, 0.9), ("fit", "train"): ("train", 0.02, 0.75),
             ("fit", "validate"): ("validate", 0.75, 0.9),
             ("inference",): ("inference", 0.92, 0.99)}  # fmt: skip
    phases = [
        PhaseRecord(
            path=path, kind=kind, count=1, first_start_mono=t0 + a * duration,
            last_end_mono=t0 + b * duration,
            duration_s=(b - a) * duration,
            energy_j={c: w * (b - a) * duration for c, w in watts.items()},
            intervals_mono=[(t0 + a * duration, t0 + b * duration)],
            samples=int(rng.uniform(1e4, 1e6)),
        )
        for path, (kind, a, b) in spans.items()
    ]  # fmt: skip
    timeline = [TimelinePoint(t0 + duration * i / 64, {c: w * duration * i / 64
                                                         for c, w in watts.items()})
                for i in range(1, 64)]  # fmt: skip
    start = START + timedelta(days=k * 1.5, hours=rng.uniform(0, 10))
    return MeterSnapshot(
        host=host, started_mono=t0, started_utc=start, components=comps,
        energy_j={c: w * duration for c, w in watts.items()}, phases=phases,
        timeline=timeline, warnings=[], ended_mono=t0 + duration,
        ended_utc=start + timedelta(seconds=duration), duration_s=duration, rank=rank,
        local_rank=0, world_size=world,
    )  # fmt: skip


def _template(k: int, rng: random.Random, **kw: Any) -> Report:
    status = STATUSES[k % len(STATUSES)] if not kw else "complete"
    tags = {"project": "bench", "experiment": EXPERIMENTS[k % 5], "model": MODELS[(k // 5) % 5],
            "seed": str(k % 3)}  # fmt: skip
    return build_report(
        _snapshot(k, rng, **kw), carbon=GRIDS[k % len(GRIDS)], status=status,
        include_command=False, include_git=False, run_id=uuid.UUID(int=k + 1).hex,
        run_name=f"template {k}", tags=tags,
        host_info={"hostname": "node-a" if kw.get("rank", 0) == 0 else "node-b"},
    )  # fmt: skip


def generate(root: Path, files: int, seed: int = 0) -> dict[str, Any]:
    """Write ``files`` report files under ``root``; returns the truth (also written to
    ``truth.txt`` beside ``root``)."""
    rng = random.Random(seed)
    singles = [_template(k, rng) for k in range(TEMPLATES)]
    pairs = [(_template(k, rng, rank=0, world=2), _template(k, rng, rank=1, world=2))
             for k in range(TEMPLATES, TEMPLATES + 20)]  # fmt: skip
    texts = [r.to_json(indent=None).encode() for r in singles]
    pair_texts = [(a.to_json(indent=None).encode(), b.to_json(indent=None).encode())
                  for a, b in pairs]  # fmt: skip
    merged = [merge_reports([a, b]) for a, b in pairs]
    if root.exists():
        shutil.rmtree(root)
    truth = {"runs": 0, "it_energy_j": 0.0, "facility_energy_j": 0.0, "co2e_location_g": 0.0,
             "corrupt": 0, "files": 0}  # fmt: skip
    i = 0
    n = 0

    def path() -> Path:
        nonlocal i
        p = root / f"exp-{i // FILES_PER_DIR:03d}" / f"run-{i:06d}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        i += 1
        return p

    def count(r: Report) -> None:
        truth["runs"] += 1
        truth["it_energy_j"] += r.totals.it_energy_j
        truth["facility_energy_j"] += r.totals.facility_energy_j
        truth["co2e_location_g"] += r.totals.co2e.operational_g if r.totals.co2e else 0.0

    while i < files:
        n += 1
        new_id = uuid.uuid4().hex.encode()
        roll = rng.random()
        if roll < 0.001:
            path().write_bytes(b'{"schema_version": "2", "run_id": ')  # torn by hand
            truth["corrupt"] += 1
            continue
        if roll < 0.011 and i + 2 <= files:
            k = rng.randrange(len(pairs))
            for text, old in zip(pair_texts[k], pairs[k], strict=True):
                path().write_bytes(text.replace(old.run_id.encode(), new_id, 1))
            count(merged[k])
            continue
        k = rng.randrange(len(singles))
        text = texts[k].replace(singles[k].run_id.encode(), new_id, 1)
        if roll < 0.016 and i + 2 <= files:  # an earlier checkpoint copy of the same run
            early = singles[k].model_copy(update={
                "status": "running", "end_utc": singles[k].start_utc + timedelta(seconds=60),
                "duration_s": 60.0})  # fmt: skip
            path().write_bytes(early.to_json(indent=None).encode().replace(
                singles[k].run_id.encode(), new_id, 1))  # fmt: skip
        path().write_bytes(text)
        count(singles[k])
    truth["files"] = i
    (root.parent / f"truth-{root.name}.txt").write_text(json.dumps(truth))
    return truth


def footprint_process(root: Path, index: Path | None) -> dict[str, Any]:
    """Run the command in a fresh process; wall time, peak RSS and the summary."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [sys.executable, "-m", "greenmeter", "footprint", str(root), "--by",
           "experiment,model", "-f", "json", "-o", str(out)]  # fmt: skip
    cmd += ["--no-index"] if index is None else ["--index", str(index)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"footprint failed: {err}")
    summary = json.loads(out.read_text())
    out.unlink()
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "greenmeter-bench-footprint")  # fmt: skip
    ap.add_argument("--regenerate", action="store_true", help="write the files again")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs (the best is shown)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    root = args.dir / f"{args.files}"
    truth_file = args.dir / f"truth-{root.name}.txt"
    if args.regenerate or not truth_file.is_file():
        t = time.perf_counter()
        print(f"generating {args.files} report files under {root} ...", file=sys.stderr)
        truth = generate(root, args.files)
        print(f"  done in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    else:
        truth = json.loads(truth_file.read_text())
    size = sum(p.stat().st_size for p in root.rglob("*.json"))
    index = args.dir / f"index-{args.files}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    rows = []
    for name, idx, prepare, repeat in (
        ("cold (no index yet)", index, None, 1),
        ("warm (index up to date)", index, None, args.repeat),
        ("warm, 1% of files changed", index, "touch", 1),
        ("no index (--no-index)", None, None, 1),
    ):
        if prepare == "touch":
            for p in sorted(root.rglob("run-*.json"))[::100]:
                st = p.stat()
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        print(f"running: {name} ...", file=sys.stderr)
        tries = [footprint_process(root, idx) for _ in range(repeat)]
        best = min(tries, key=lambda t: t["wall_s"])
        s = best["summary"]
        rows.append({"run": name, "wall_s": best["wall_s"], "cpu_s": best["cpu_s"],
                     "wall_all_s": [t["wall_s"] for t in tries],
                     "peak_rss_mb": max(t["peak_rss_mb"] for t in tries),
                     "files_read": s["files"]["read"], "files_from_index": s["files"]["from_index"],
                     "summary": s})  # fmt: skip
    check = rows[0]["summary"]
    total = check["total"]
    ok = (
        total["runs"]["total"] == truth["runs"]
        and abs(total["it_energy_j"] - truth["it_energy_j"]) <= 1e-6 * truth["it_energy_j"]
        and abs(total["co2e_location_g"] - truth["co2e_location_g"])
        <= 1e-6 * truth["co2e_location_g"]
        and check["files"]["skipped"] == truth["corrupt"]
        and all(r["summary"]["total"] == total for r in rows)
    )
    print(f"\ngreenmeter footprint over {truth['files']} files ({size / 1e6:.0f} MB), "
          f"{truth['runs']} runs, {truth['corrupt']} corrupt; index {index}")  # fmt: skip
    print(f"{'run':<28} {'wall (s)':>9} {'CPU (s)':>8} {'files read':>11} {'from index':>11} "
          f"{'peak RSS (MB)':>14}")  # fmt: skip
    for r in rows:
        print(f"{r['run']:<28} {r['wall_s']:>9.2f} {r['cpu_s']:>8.2f} {r['files_read']:>11} "
              f"{r['files_from_index']:>11} {r['peak_rss_mb']:>14.0f}")  # fmt: skip
    if args.repeat > 1:
        walls = ", ".join(f"{w:.2f}" for w in rows[1]["wall_all_s"])
        print(f"(warm: the best of {args.repeat} runs: {walls} s)")
    warm = rows[1]["wall_s"]
    print(f"\nwarm under {WARM_TARGET_S:g} s: {'yes' if warm < WARM_TARGET_S else 'NO'} "
          f"({warm:.2f} s); cold reads each file once: "
          f"{'yes' if rows[0]['files_read'] == truth['files'] else 'NO'}; "
          f"index size {Path(index).stat().st_size / 1e6:.0f} MB; "
          f"totals equal the truth: {'yes' if ok else 'NO'}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "files": truth["files"], "bytes": size, "truth": truth,
            "rows": [{k: v for k, v in r.items() if k != "summary"} for r in rows],
            "cpus": os.cpu_count(), "python": sys.version.split()[0],
        }, indent=2))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
