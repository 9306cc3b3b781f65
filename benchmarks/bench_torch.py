"""Benchmarks for the plain-PyTorch integration.

1. Overhead of ``meter.track`` per step against a bare loop, for a near-empty step and
   for 1 ms and 10 ms steps (busy-waits, so the step length is exact).
2. Efficiency of a small Transformer classifier and a narrower student distilled from
   it, measured with ``measure_inference`` on the same inputs: parameters, latency
   p50/p95, throughput and joules per sample, the table distillation papers
   (DistilBERT, TinyBERT, MobileBERT) report, with energy added.

Run: ``python benchmarks/bench_torch.py [--quick] [--device cuda] [--json out.json]``.
Energy comes from whatever this host offers (RAPL, NVML, else the labelled estimate);
the table says which method each figure rests on.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from greenmeter import EnergyMeter
from greenmeter.integrations.torch import measure_inference, model_size

# -- 1. loop overhead -------------------------------------------------------------------


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _loop(items: list[Any], step_s: float, meter: EnergyMeter | None) -> float:
    it = meter.track(items, "bench", kind="custom") if meter is not None else items
    t0 = time.perf_counter()
    if step_s > 0:
        for _ in it:
            _busy(step_s)
    else:
        for _ in it:
            pass
    return time.perf_counter() - t0


def _boundary_s(meter: EnergyMeter, rounds: int) -> float:
    """Median cost of one loop's enter + exit (two counter reads and sync hooks)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in meter.track((), "bench-boundary", kind="custom"):
            pass
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_overhead(quick: bool) -> list[dict[str, Any]]:
    """Per-loop and per-step cost of ``meter.track`` against a bare loop.

    The tracked loop pays once for its phase boundaries (reading every counter: an
    NVML call can take milliseconds) and a little per step (batch size, local counts).
    The boundary cost is timed on its own; the per-step cost is the rest divided by
    the number of steps.
    """
    batch = (torch.zeros(32, 8), torch.zeros(32))  # what a DataLoader yields
    cases = [
        ("near-empty", 0.0, 20_000 if quick else 100_000),
        ("1 ms", 1e-3, 300 if quick else 1000),
        ("10 ms", 1e-2, 40 if quick else 150),
    ]
    rounds = 3 if quick else 5
    rows = []
    with EnergyMeter() as meter:
        boundary_s = _boundary_s(meter, 10 if quick else 30)
        for label, step_s, n in cases:
            items = [batch] * n
            bare, tracked = [], []
            for _ in range(rounds):  # alternate so drift hits both alike
                bare.append(_loop(items, step_s, None))
                tracked.append(_loop(items, step_s, meter))
            b, t = statistics.median(bare), statistics.median(tracked)
            rows.append(
                {
                    "step": label,
                    "steps": n,
                    "bare_s": b,
                    "tracked_s": t,
                    "boundary_ms": boundary_s * 1e3,
                    "overhead_per_step_us": (t - b - boundary_s) / n * 1e6,
                    "overhead_pct": (t - b) / b * 100 if b > 0 else math.nan,
                }
            )
    return rows


# -- 2. teacher vs distilled student ----------------------------------------------------

VOCAB, SEQ, CLASSES = 1000, 32, 4


class Classifier(nn.Module):
    """Token embedding + Transformer encoder + mean pooling + linear head."""

    def __init__(self, d_model: int, layers: int, heads: int, ff: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Parameter(torch.zeros(SEQ, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, CLASSES)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(ids) + self.pos)
        return self.head(h.mean(dim=1))


def _task(n: int, g: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic sequences: half the tokens come from the label's slice of the vocabulary."""
    y = torch.randint(0, CLASSES, (n,), generator=g)
    width = VOCAB // CLASSES
    own = y[:, None] * width + torch.randint(0, width, (n, SEQ), generator=g)
    noise = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    ids = torch.where(torch.rand(n, SEQ, generator=g) < 0.5, own, noise)
    return ids.to(device), y.to(device)


def _train(model: nn.Module, seconds: float, device: torch.device, teacher: nn.Module | None):
    g = torch.Generator().manual_seed(1 if teacher is None else 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    end, steps = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        ids, y = _task(64, g, device)
        logits = model(ids)
        if teacher is None:
            loss = F.cross_entropy(logits, y)
        else:  # distillation: soft targets at temperature 2, plus the hard labels
            with torch.no_grad():
                soft = F.softmax(teacher(ids) / 2.0, dim=-1)
            kd = F.kl_div(F.log_softmax(logits / 2.0, dim=-1), soft, reduction="batchmean")
            loss = 0.7 * 4.0 * kd + 0.3 * F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    return steps


@torch.no_grad()
def _predict(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids).argmax(dim=1)


def bench_distillation(quick: bool, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    teacher = Classifier(128, 4, 4, 512).to(device)
    student = Classifier(64, 2, 2, 128).to(device)
    train_s = 4.0 if quick else 10.0
    t_steps = _train(teacher, train_s, device, None)
    s_steps = _train(student, train_s, device, teacher)
    ids, y = _task(2048, torch.Generator().manual_seed(7), device)
    t_pred, s_pred = _predict(teacher, ids), _predict(student, ids)
    quality = {
        "teacher_accuracy": float((t_pred == y).float().mean()),
        "student_accuracy": float((s_pred == y).float().mean()),
        "agreement": float((t_pred == s_pred).float().mean()),
        "teacher_train_steps": t_steps,
        "student_distill_steps": s_steps,
    }
    g = torch.Generator().manual_seed(11)
    pool = _task(256, g, device)[0]

    def inputs(bs: int) -> torch.Tensor:
        return pool[:bs]

    sizes = (1, 32) if quick else (1, 32, 128)
    rows = []
    with EnergyMeter(sample_interval_s=0.05) as meter:
        methods = sorted({c.method.value for c in meter.components})
        gpu_ids = {c.id for c in meter.components if c.kind.value == "gpu"}
        for name, net in (("teacher", teacher), ("student", student)):
            res = measure_inference(
                net,
                inputs,
                batch_sizes=sizes,
                warmup=5,
                min_seconds=0.6 if quick else 1.5,
                meter=meter,
                phase=f"inference-{name}",
            )
            info = model_size(net, name=name)
            for s in res.stats:
                rows.append(
                    {
                        "model": name,
                        "params": info["parameters_total"],
                        "size_mb": info["size_bytes"] / 1e6,
                        "batch": s.batch_size,
                        "repeats": s.repeats,
                        "p50_ms": s.latency_p50_s * 1e3,
                        "p95_ms": s.latency_p95_s * 1e3,
                        "samples_per_s": s.samples_per_s,
                        "j_per_sample": s.energy_per_sample_j,
                        "gpu_j_per_sample": (
                            sum(v for k, v in s.energy_by_component_j.items() if k in gpu_ids)
                            / s.samples
                            if gpu_ids
                            else None
                        ),
                        "mean_power_w": s.mean_power_w,
                    }
                )
    return {"quality": quality, "rows": rows, "energy_methods": methods}


# -- 3. GPU checks (need a CUDA device with NVML) -------------------------------------


def gpu_checks() -> dict[str, Any]:
    """Check the CUDA sync hook and GPU timing against CUDA events on a real board."""
    from greenmeter.integrations._torch_sync import _INSTALLED, install

    dev = torch.device("cuda")
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0)}
    x = torch.randn(8192, 8192, device=dev)
    buf = torch.empty_like(x)
    torch.cuda.synchronize()

    def launch(n: int) -> tuple[float, Any, Any]:
        """Enqueue n large matmuls; (seconds until Python regains control, events)."""
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        for _ in range(n):
            torch.mm(x, x, out=buf)
        end.record()
        return time.perf_counter() - t0, start, end

    def gpu_s(start: Any, end: Any) -> float:
        end.synchronize()  # after the phase closed: the phase itself must not wait
        return start.elapsed_time(end) / 1e3

    launch(3)
    torch.cuda.synchronize()
    for label, hooked in (("synced", True), ("unsynced", False)):
        with EnergyMeter(cpu=False, sample_interval_s=0.05) as meter:
            if hooked:
                install(meter)
            t_enter = time.monotonic()
            with meter.phase(f"async-{label}"):
                launch_s, start, end = launch(150)
            busy_s = gpu_s(start, end)
            t_done = time.monotonic()
            rec = next(p for p in meter.snapshot().phases if p.path == (f"async-{label}",))
            out[label] = {
                "launch_s": launch_s,
                "gpu_s": busy_s,
                "phase_s": rec.duration_s,
                "until_gpu_done_s": t_done - t_enter,
                "energy_j": rec.total_energy_j,
                "mean_power_w": rec.total_energy_j / rec.duration_s,
            }
            if hooked:
                out["synced_indices"] = _INSTALLED[meter]._indices
                out["components"] = [
                    (c.id, c.method.value, c.resolution_s, dict(c.detail).get("power_source"))
                    for c in meter.components
                ]
        torch.cuda.synchronize()

    # measure_inference's latencies against independent CUDA-event timings
    torch.manual_seed(0)
    net = Classifier(256, 4, 4, 1024).to(dev).eval()
    pool = _task(512, torch.Generator().manual_seed(3), dev)[0]
    with EnergyMeter(cpu=False) as meter:
        res = measure_inference(
            net, lambda bs: pool[:bs], batch_sizes=(1, 512), meter=meter, min_seconds=1.0
        )
    events = {}
    with torch.inference_mode():
        for bs in (1, 512):
            times = []
            for _ in range(100):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                net(pool[:bs])
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
            events[bs] = statistics.median(times)
    out["inference"] = [
        {
            "batch": s.batch_size,
            "repeats": s.repeats,
            "duration_s": s.duration_s,
            "target_s": s.target_duration_s,
            "p50_s": s.latency_p50_s,
            "event_p50_s": events[s.batch_size],
            "j_per_sample": s.energy_per_sample_j,
            "mean_power_w": s.mean_power_w,
        }
        for s in res.stats
    ]
    return out


# -- output -----------------------------------------------------------------------------


def _print_overhead(rows: list[dict[str, Any]]) -> None:
    print("meter.track overhead per step (median of alternated rounds)")
    print("| step | steps | bare s | tracked s | boundaries ms | per step us | total % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['step']} | {r['steps']} | {r['bare_s']:.4f} | {r['tracked_s']:.4f} | "
            f"{r['boundary_ms']:.3f} | {r['overhead_per_step_us']:.2f} | "
            f"{r['overhead_pct']:.2f} |"
        )


def _print_distillation(result: dict[str, Any], device: torch.device) -> None:
    q = result["quality"]
    print(
        f"\nteacher vs distilled student on {device} (energy method: "
        f"{', '.join(result['energy_methods'])})"
    )
    print(
        f"accuracy teacher {q['teacher_accuracy']:.3f}, student {q['student_accuracy']:.3f}, "
        f"agreement {q['agreement']:.3f} ({q['teacher_train_steps']} teacher steps, "
        f"{q['student_distill_steps']} distillation steps)"
    )
    print(
        "| model | params | MB | batch | repeats | p50 ms | p95 ms | samples/s | mJ/sample "
        "| GPU mJ/sample |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        gpu = f"{r['gpu_j_per_sample'] * 1e3:.3f}" if r["gpu_j_per_sample"] is not None else "-"
        print(
            f"| {r['model']} | {r['params']:,} | {r['size_mb']:.2f} | {r['batch']} | "
            f"{r['repeats']} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | "
            f"{r['samples_per_s']:.1f} | {r['j_per_sample'] * 1e3:.3f} | {gpu} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--threads", type=int, help="torch intra-op threads on CPU")
    parser.add_argument("--gpu-checks", action="store_true", help="also check CUDA sync/timing")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out: dict[str, Any] = {"torch": torch.__version__, "device": str(device)}
    if args.gpu_checks:
        out["gpu_checks"] = gpu_checks()
        print(json.dumps(out["gpu_checks"], indent=2))
    if not args.skip_overhead:
        out["overhead"] = bench_overhead(args.quick)
        _print_overhead(out["overhead"])
    out["distillation"] = bench_distillation(args.quick, device)
    _print_distillation(out["distillation"], device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
