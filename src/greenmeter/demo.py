"""``greenmeter demo``: train a small teacher and a distilled student, measure both, and
write their reports, a comparison and an HTML report.

Everything is synthetic and local (no downloads): a 10-class problem in 32 dimensions
labelled by a fixed random network. The teacher is a wide MLP; the student a small MLP
trained to match the teacher's softened outputs (knowledge distillation). Each model is
trained with Lightning under :class:`greenmeter.integrations.lightning.GreenMeterCallback`
and its inference measured with :func:`greenmeter.integrations.torch.measure_inference`,
both on one :class:`greenmeter.EnergyMeter` per model. About half a minute on two CPU
cores; ``--quick`` is a few seconds.

Run: ``greenmeter demo [--out DIR] [--quick]`` (or ``python -m greenmeter.demo``, the same).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_OUT", "DemoConfig", "DemoResult", "footprint_text", "main", "run_demo"]

#: Where the demo writes when no directory is given.
DEFAULT_OUT = "greenmeter-demo"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (the defaults take about half a minute on two cores)."""

    train_samples: int = 16384
    val_samples: int = 4096
    batch_size: int = 128
    epochs: int = 3
    teacher_width: int = 512
    student_width: int = 32
    inference_batch_sizes: tuple[int, ...] = (1, 256)
    inference_min_s: float = 1.0
    inference_full_resolution: bool = True
    temperature: float = 2.0
    seed: int = 0

    @classmethod
    def quick(cls) -> DemoConfig:
        """A few seconds: for tests and smoke checks."""
        return cls(
            train_samples=2048,
            val_samples=512,
            epochs=1,
            teacher_width=128,
            inference_min_s=0.25,
            inference_full_resolution=False,
        )


@dataclass
class DemoResult:
    """What the demo wrote, and the reports."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0


FEATURES = 32
CLASSES = 10


def _data(cfg: DemoConfig) -> tuple[Any, Any, Any, Any]:
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    n = cfg.train_samples + cfg.val_samples
    x = torch.randn(n, FEATURES, generator=gen)
    w1 = torch.randn(FEATURES, 64, generator=gen) / FEATURES**0.5
    w2 = torch.randn(64, CLASSES, generator=gen) / 8.0
    y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)
    k = cfg.train_samples
    return x[:k], y[:k], x[k:], y[k:]


def _modules(cfg: DemoConfig) -> tuple[type, type]:
    """The LightningModule classes (defined here so Lightning loads only when run)."""
    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Teacher(pl.LightningModule):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(FEATURES, width),
                nn.ReLU(),
                nn.Linear(width, width),
                nn.ReLU(),
                nn.Linear(width, CLASSES),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y = batch[0], batch[1]
            return F.cross_entropy(self(x), y)

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            acc = (self(x).argmax(1) == y).float().mean()
            self.log("val_acc", acc, prog_bar=False)

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=2e-3)

    class Student(Teacher):
        def __init__(self, width: int, temperature: float) -> None:
            pl.LightningModule.__init__(self)
            self.net = nn.Sequential(
                nn.Linear(FEATURES, width), nn.ReLU(), nn.Linear(width, CLASSES)
            )
            self.temperature = temperature

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y, teacher_logits = batch
            t = self.temperature
            logits = self(x)
            soft = F.kl_div(
                F.log_softmax(logits / t, dim=1),
                F.softmax(teacher_logits / t, dim=1),
                reduction="batchmean",
            )
            return 0.7 * soft * t * t + 0.3 * F.cross_entropy(logits, y)

    return Teacher, Student


def _train_and_measure(
    name: str,
    module: Any,
    train_set: Any,
    val_set: Any,
    cfg: DemoConfig,
) -> Any:
    """Train ``module`` and measure its inference on one meter; returns its report."""
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader

    from greenmeter import EnergyMeter
    from greenmeter.integrations.lightning import GreenMeterCallback
    from greenmeter.integrations.torch import measure_inference, model_size

    meter = EnergyMeter(run_name=name).start()
    try:
        callback = GreenMeterCallback(meter=meter, report_path=None, log_metrics=False)
        trainer = pl.Trainer(
            max_epochs=cfg.epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=2,
            callbacks=[callback],
        )
        gen = torch.Generator().manual_seed(cfg.seed)
        train = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=gen)
        val = DataLoader(val_set, batch_size=512)
        trainer.fit(module, train, val)
        x_val = val_set.tensors[0]

        def batch(bs: int) -> torch.Tensor:
            return x_val[:bs]

        measure_inference(
            module,
            batch,
            batch_sizes=list(cfg.inference_batch_sizes),
            meter=meter,
            warmup=3,
            min_seconds=cfg.inference_min_s,
            min_energy_resolution=cfg.inference_full_resolution,
        )
        with torch.inference_mode():
            module.eval()
            acc = float((module(x_val).argmax(1) == val_set.tensors[1]).float().mean())
    finally:
        meter.stop()
    return meter.report(
        model=model_size(module, name=name),
        extra={"demo": True, "val_accuracy": round(acc, 4)},
        include_command=False,
        tags={"project": "greenmeter-demo", "experiment": "distillation", "model": name},
    )


def _quiet() -> None:
    for logger in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    warnings.filterwarnings("ignore", module=r"pytorch_lightning(\.|$)")
    warnings.filterwarnings("ignore", message=r".*num_workers.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def _write(path: Path, text: str) -> Path:
    from greenmeter.files import write_file

    return write_file(path, text)


def run_demo(out_dir: str | os.PathLike[str] | None = None, *, quick: bool = False) -> DemoResult:
    """Train, measure and write everything; returns the paths and the reports.

    Raises:
        ImportError: torch or Lightning is missing (the message names the extra).
    """
    started = time.perf_counter()
    try:
        import lightning.pytorch  # noqa: F401
        import torch
        from torch.utils.data import TensorDataset
    except ImportError as exc:
        raise ImportError(
            f"the demo needs PyTorch and Lightning ({exc}). Install them with: "
            'pip install "greenmeter[lightning]"'
        ) from None
    from greenmeter.render import compare, render

    cfg = DemoConfig.quick() if quick else DemoConfig()
    out = Path(out_dir if out_dir is not None else DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out)
    torch.manual_seed(cfg.seed)
    _quiet()

    x_train, y_train, x_val, y_val = _data(cfg)
    val_set = TensorDataset(x_val, y_val)
    Teacher, Student = _modules(cfg)

    teacher = Teacher(cfg.teacher_width)
    t_report = _train_and_measure("teacher", teacher, TensorDataset(x_train, y_train),
                                  val_set, cfg)  # fmt: skip
    with torch.inference_mode():
        teacher.eval()
        soft_targets = teacher(x_train).detach().clone()
    student = Student(cfg.student_width, cfg.temperature)
    s_report = _train_and_measure(
        "student", student, TensorDataset(x_train, y_train, soft_targets), val_set, cfg
    )
    result.reports = {"teacher": t_report, "student": s_report}

    files = result.files
    files["teacher"] = t_report.save(out / "teacher.json")
    files["student"] = s_report.save(out / "student.json")
    pair = [t_report, s_report]
    files["comparison_md"] = _write(out / "comparison.md", compare(pair, "md"))
    files["comparison_tex"] = _write(out / "comparison.tex", compare(pair, "latex"))
    files["html"] = _write(out / "report.html", render(pair, "html"))
    files["latex"] = _write(out / "student.tex", render(s_report, "latex"))
    files["model_card"] = _write(out / "student-model-card.md", render(s_report, "hf-card"))
    files["emissions_csv"] = _write(out / "emissions.csv", render(pair, "codecarbon-csv"))
    result.elapsed_s = time.perf_counter() - started
    return result


def _pct(new: float, old: float) -> str:
    return f"{(new - old) / old * 100:+.1f}%" if old else "n/a"


def summary(result: DemoResult) -> str:
    """What the demo found and wrote, and how far its figures can be trusted."""
    from greenmeter.cli.doctor import worth_listing
    from greenmeter.render.closing import summary_line
    from greenmeter.render.numbers import sig

    t, s = result.reports["teacher"], result.reports["student"]
    lines = [f"greenmeter demo: teacher and distilled student ({result.elapsed_s:.0f} s)", ""]
    for path, what in (("fit", "training (fit)"),):
        try:
            te, se = t.phase(path).it_energy_j, s.phase(path).it_energy_j
        except KeyError:
            continue
        lines.append(f"  {what:<28} teacher {sig(te)} J, student {sig(se)} J ({_pct(se, te)})")
    for phase in t.iter_phases():
        if phase.path[0] != "inference" or len(phase.path) != 2:
            continue
        try:
            other = s.phase(phase.path)
        except KeyError:
            continue
        a, b = phase.efficiency.energy_per_sample_j, other.efficiency.energy_per_sample_j
        if a and b:
            label = f"inference {phase.name}, J/sample"
            lines.append(f"  {label:<28} teacher {sig(a)}, student {sig(b)} ({_pct(b, a)})")
    params = [m.parameters_total for m in (t.models + s.models)]
    if all(p is not None for p in params) and len(params) == 2:
        lines.append(f"  {'parameters':<28} teacher {params[0]:,}, student {params[1]:,}")
    acc = (t.extra.get("val_accuracy"), s.extra.get("val_accuracy"))
    if None not in acc:
        lines.append(f"  {'validation accuracy':<28} teacher {acc[0]}, student {acc[1]}")
    lines.append("")

    estimated = [c for c in s.components if c.method == "estimated"]
    if not s.components:
        lines.append("No energy source was available: every energy figure is zero.")
    elif estimated and len(estimated) == len(s.components):
        lines.append(
            "NOTE: this machine exposes no energy counter, so these figures are ESTIMATES "
            "(a model, not a measurement):"
        )
        for c in estimated:
            lines.append(f"  - {c.label}: {c.estimate_model}")
    elif estimated:
        share = (
            s.totals.estimated_energy_j / s.totals.it_energy_j * 100 if s.totals.it_energy_j else 0
        )
        lines.append(f"NOTE: {share:.0f}% of the energy is estimated, not measured.")
    else:
        methods = sorted({c.method for c in s.components})
        lines.append(f"Energy measured by hardware ({', '.join(methods)}).")
    unavailable = [u for u in s.unavailable if worth_listing(u.reason)]
    if unavailable:
        lines.append("Sources not available here, and how to enable them:")
        for u in unavailable:
            lines.append(f"  - {u.sensor} ({u.kind}): {u.reason}")
            if u.fix:
                lines.append(f"      fix: {u.fix}")
    if s.carbon is not None and s.carbon.intensity.is_fallback:
        lines.append(
            "CO2e uses the WORLD-AVERAGE grid intensity (no location given): set "
            "GREENMETER_LOCATION=FR (a country, US state or cloud region) for a real figure."
        )
    lines += ["", f"Files in {result.out_dir}:"]
    for key, path in result.files.items():
        lines.append(f"  {path}  ({key.replace('_', ' ')})")
    lines.append(f"Open {result.files['html']} in a browser for plots and the methods text.")
    lines.append("")
    for name in ("teacher", "student"):  # each run's closing line, caveats beside figures
        lines.append(summary_line(result.reports[name], result.files.get(name), lead=f"{name}:"))
    return "\n".join(lines)


def main(out_dir: str | os.PathLike[str] | None = None, *, quick: bool = False) -> int:
    """Run the demo, print where everything is; returns the exit code (0 = success)."""
    try:
        result = run_demo(out_dir, quick=quick)
    except ImportError as exc:
        print(f"greenmeter demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"greenmeter demo: cannot write the output: {exc}", file=sys.stderr)
        return 1
    print(summary(result))
    print("\n" + footprint_text(result))
    return 0


def footprint_text(result: DemoResult) -> str:
    """The footprint of the demo's two runs, by model (``greenmeter footprint`` on them)."""
    from greenmeter.footprint import footprint
    from greenmeter.render.footprint import render_footprint

    runs = [str(result.files["teacher"]), str(result.files["student"])]
    return render_footprint(footprint(runs, group_by=["model"], index=None), "table")


def _cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m greenmeter.demo", description=__doc__)
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="output directory")
    parser.add_argument("--quick", action="store_true", help="a few seconds, smaller models")
    args = parser.parse_args(argv)
    return main(args.out, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(_cli())
