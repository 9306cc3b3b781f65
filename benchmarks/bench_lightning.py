"""Overhead of GreenMeterCallback per training step, against the same fit without it.

Each training step does a fixed amount of CPU work calibrated to about 10 ms (and 1 ms).
Fits with and without the callback alternate, and the per-step time is the training
loop's time (``on_train_epoch_start`` to ``on_train_epoch_end``) over the number of
steps, so the callback's per-epoch boundaries are included and its once-per-stage costs
(starting the meter, writing the report) are shown separately. The time spent inside the
callback's per-batch hooks is also measured directly, which is far less noisy than a
difference of two wall times on a shared machine.

Run: ``python benchmarks/bench_lightning.py [--repeats 5] [--quick]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from greenmeter.integrations.lightning import GreenMeterCallback

warnings.filterwarnings("ignore")
for _name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
torch.set_num_threads(1)
_X = torch.randn(64, 64)


def work(n: int) -> torch.Tensor:
    """A fixed amount of CPU work: ``n`` small matrix products."""
    y = _X
    for _ in range(n):
        y = torch.tanh(y @ _X)
    return y


def calibrate(target_s: float) -> int:
    """Iterations of :func:`work` that take about ``target_s`` seconds."""
    n = 10
    while True:
        t = time.perf_counter()
        work(n)
        elapsed = time.perf_counter() - t
        if elapsed > 0.05:
            break
        n *= 2
    per = min(_timed(n) for _ in range(5)) / n
    return max(1, round(target_s / per))


def _timed(n: int) -> float:
    t = time.perf_counter()
    work(n)
    return time.perf_counter() - t


class Stepper(pl.LightningModule):
    def __init__(self, iterations: int) -> None:
        super().__init__()
        self.iterations = iterations
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        work(self.iterations)
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Clock(pl.Callback):
    """Training-loop time, and whole-call time from setup to teardown."""

    def __init__(self) -> None:
        self.loop_s = 0.0
        self.t0 = 0.0

    def on_train_epoch_start(self, *args: Any) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, *args: Any) -> None:
        self.loop_s += time.perf_counter() - self.t0


class HookTimer:
    """Wraps a callback's per-batch hooks and sums the time spent in them."""

    def __init__(self, cb: GreenMeterCallback) -> None:
        self.total_s = 0.0
        for name in ("on_train_batch_start", "on_train_batch_end"):
            original = getattr(cb, name)

            def timed(*args: Any, _f: Any = original, **kwargs: Any) -> None:
                t = time.perf_counter()
                _f(*args, **kwargs)
                self.total_s += time.perf_counter() - t

            setattr(cb, name, timed)


def run(steps: int, iterations: int, with_meter: bool, out: Path) -> dict[str, float]:
    data = DataLoader(TensorDataset(torch.randn(steps * 4, 8), torch.randn(steps * 4, 1)), 4)
    clock = Clock()
    callbacks: list[Any] = [clock]
    hooks = None
    if with_meter:
        cb = GreenMeterCallback(report_path=out / "report.json")
        hooks = HookTimer(cb)
        callbacks.insert(0, cb)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=callbacks,
    )  # fmt: skip
    t = time.perf_counter()
    trainer.fit(Stepper(iterations), data)
    call_s = time.perf_counter() - t
    result = {"step_s": clock.loop_s / steps, "call_s": call_s}
    if hooks is not None:
        result["hooks_per_step_s"] = hooks.total_s / steps
        meter = callbacks[0].meter
        result["sensors"] = ",".join(c.id for c in meter.components) or "none"  # type: ignore[assignment]
        callbacks[0].close()
    return result


def bench(label: str, target_s: float, steps: int, repeats: int) -> dict[str, float]:
    iterations = calibrate(target_s)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run(min(steps, 20), iterations, True, out)  # warm-up (imports, first report)
        run(min(steps, 20), iterations, False, out)
        off: list[dict[str, float]] = []
        on: list[dict[str, float]] = []
        for _ in range(repeats):
            off.append(run(steps, iterations, False, out))
            on.append(run(steps, iterations, True, out))
    # the least disturbed run of each kind: a shared machine only ever adds time
    step_off = min(r["step_s"] for r in off)
    step_on = min(r["step_s"] for r in on)
    med_off = statistics.median(r["step_s"] for r in off)
    med_on = statistics.median(r["step_s"] for r in on)
    hooks = statistics.median(r["hooks_per_step_s"] for r in on)
    fixed = statistics.median(r["call_s"] for r in on) - statistics.median(r["call_s"] for r in off)
    fixed -= (step_on - step_off) * steps
    print(
        f"{label}: step {step_off * 1e3:.3f} ms without, {step_on * 1e3:.3f} ms with "
        f"-> {100 * (step_on - step_off) / step_off:+.2f}% (best of {repeats} runs of {steps} "
        f"steps; medians {100 * (med_on - med_off) / med_off:+.2f}%); "
        f"per-batch hooks {hooks * 1e6:.1f} us/step = {100 * hooks / step_off:.3f}%; "
        f"once per fit (meter start, report) {fixed * 1e3:.0f} ms; sensors {on[0]['sensors']}"
    )
    return {"step_off_s": step_off, "step_on_s": step_on, "hooks_s": hooks, "fixed_s": fixed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    bench("10 ms step", 0.010, int(300 * scale), args.repeats)
    bench(" 1 ms step", 0.001, int(1000 * scale), args.repeats)


if __name__ == "__main__":
    main()
