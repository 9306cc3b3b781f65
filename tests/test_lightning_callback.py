"""GreenMeterCallback in real (tiny, CPU) Lightning trainings against a trace's exact energy.

Every test drives the meter with a :class:`TraceSensor`, a perfect counter whose energy
between two instants is the trace's integral, so each phase's energy must equal the
integral over the phase's own active intervals; the interval structure (train paused
while validation runs, the sanity check outside fit) is asserted separately.
"""

from __future__ import annotations

import csv
import importlib
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from greenmeter.integrations._lightning_common import batch_size, fold_segments, segment_summary
from greenmeter.records import MeterSnapshot, PhaseRecord
from greenmeter.report import Report
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor

pl = pytest.importorskip("lightning.pytorch")
from greenmeter.integrations.lightning import GreenMeterCallback  # noqa: E402

BATCH = 8
N_SAMPLES = 64  # 8 batches per epoch


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
        warnings.filterwarnings("ignore", category=UserWarning, module="pytorch_lightning")
        yield


def make_module_class(
    base: Any, fail_at_step: int | None = None, interrupt: bool = False, step_s: float = 0.0
):
    class Tiny(base):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.register_buffer("scale", torch.ones(3))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if fail_at_step is not None and self.global_step >= fail_at_step:
                if interrupt:
                    raise KeyboardInterrupt
                raise RuntimeError("boom in training_step")
            if step_s > 0:
                time.sleep(step_s)  # a training step long beside scheduling hiccups
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def test_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self.layer(batch[0])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Tiny


Tiny = make_module_class(pl.LightningModule)


def loader(n: int = N_SAMPLES) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1)), BATCH)


def make_trace() -> PowerTrace:
    # 4 ms at 20 W then 6 ms at 150 W, repeating: every phase sees a different mix
    return PowerTrace([(0.004, 20.0), (0.006, 150.0)])


def make_callback(trace: PowerTrace, tmp_path: Path, **kwargs: Any) -> GreenMeterCallback:
    kwargs.setdefault("report_path", tmp_path / "report.json")
    return GreenMeterCallback(sensors=[TraceSensor({"trace:cpu": trace})], **kwargs)


def make_trainer(module: Any = pl, callbacks: list[Any] | None = None, **kwargs: Any):
    opts: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "max_epochs": 2,
    }
    opts.update(kwargs)
    return module.Trainer(callbacks=callbacks or [], **opts)


def truth_j(trace: PowerTrace, rec: PhaseRecord) -> float:
    return sum(trace.energy_j(a, b) for a, b in rec.intervals_mono)


def records(cb: GreenMeterCallback) -> dict[str, PhaseRecord]:
    assert cb.meter is not None
    return {"/".join(r.path): r for r in cb.meter.snapshot().phases}


def assert_exact(cb: GreenMeterCallback, trace: PowerTrace, report: Report | None = None) -> None:
    """Every phase's energy equals the trace's integral over its intervals, and the
    report carries the same figure."""
    report = report or cb.last_report
    assert report is not None
    for path, rec in records(cb).items():
        assert rec.total_energy_j == pytest.approx(truth_j(trace, rec), rel=1e-9, abs=1e-9), path
        assert rec.total_energy_j > 0, path
        assert report.phase(path).it_energy_j == pytest.approx(rec.total_energy_j, rel=1e-9)


def overlap_s(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(y1, y2) - max(x1, x2)) for x1, y1 in a for x2, y2 in b)


def minus(
    spans: list[tuple[float, float]], cut: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The parts of ``spans`` outside every interval of ``cut``."""
    out = []
    for a, b in spans:
        pieces = [(a, b)]
        for c, d in cut:
            pieces = [
                part
                for x, y in pieces
                for part in ((x, min(y, c)), (max(x, d), y))
                if part[1] > part[0]
            ]
        out.extend(pieces)
    return out


def covered_by(inner: list[tuple[float, float]], outer: list[tuple[float, float]]) -> bool:
    eps = 1e-9
    return all(any(a >= c - eps and b <= d + eps for c, d in outer) for a, b in inner)


# --------------------------------------------------------------------------------------
# phases of a fit


def test_fit_phases_match_trace_with_mid_epoch_validation(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path, window_steps=2)
    trainer = make_trainer(
        callbacks=[cb],
        val_check_interval=0.5,
        limit_train_batches=6,
        limit_val_batches=2,
        num_sanity_val_steps=1,
    )
    trainer.fit(Tiny(), loader(), loader())
    assert_exact(cb, trace)
    recs = records(cb)
    paths = set(recs)
    assert {"fit", "sanity_check", "fit/train", "fit/validate"} <= paths
    assert {"fit/train/epoch-0", "fit/train/epoch-1"} <= paths
    assert {f"fit/train/epoch-{e}/window-{k}" for e in (0, 1) for k in (0, 1, 2)} <= paths

    fit, train, val, sanity = (
        recs[p] for p in ("fit", "fit/train", "fit/validate", "sanity_check")
    )
    # validation after 3 and 6 batches, two epochs: 4 runs, train paused during each
    assert val.count == 4
    report = cb.last_report
    assert report is not None
    # counts are logical: train paused by each validation is still one train per fit, and
    # each epoch one entry (no zero-length reopen after the epoch's last validation)
    assert report.phase("fit/train").count == 1
    assert [report.phase(f"fit/train/epoch-{e}").count for e in (0, 1)] == [1, 1]
    assert report.phase("fit/validate").count == 4
    assert overlap_s(train.intervals_mono, val.intervals_mono) == pytest.approx(0.0, abs=1e-9)
    assert covered_by(train.intervals_mono + val.intervals_mono, fit.intervals_mono)
    # the sanity check is its own top-level phase, outside fit's time and energy
    assert recs["sanity_check"].kind == "sanity_check"
    assert overlap_s(sanity.intervals_mono, fit.intervals_mono) == pytest.approx(0.0, abs=1e-9)
    # children ran one after another inside fit
    assert train.total_energy_j + val.total_energy_j <= fit.total_energy_j + 1e-9
    for e in (0, 1):
        epoch = recs[f"fit/train/epoch-{e}"]
        assert epoch.kind == "epoch"
        assert covered_by(epoch.intervals_mono, train.intervals_mono)
        windows = [recs[f"fit/train/epoch-{e}/window-{k}"] for k in range(3)]
        assert all(w.kind == "window" and w.steps == 2 for w in windows)
        assert sum(w.total_energy_j for w in windows) <= epoch.total_energy_j + 1e-9

    # the epochs are train's time (train is open only with an epoch): their energies add
    # up to train's but for the instants between two phase boundaries (Lightning's own
    # code between two hooks: a few milliseconds on a busy machine), drawn exactly there
    epochs_j = sum(recs[f"fit/train/epoch-{e}"].total_energy_j for e in (0, 1))
    epoch_spans = [iv for e in (0, 1) for iv in recs[f"fit/train/epoch-{e}"].intervals_mono]
    between = minus(train.intervals_mono, epoch_spans)
    assert sum(b - a for a, b in between) <= 0.25 * sum(b - a for a, b in train.intervals_mono)
    between_j = sum(trace.energy_j(a, b) for a, b in between)
    assert epochs_j + between_j == pytest.approx(train.total_energy_j, rel=1e-6, abs=1e-9)

    # items: batches of 8, 6 train batches x 2 epochs, 2 val batches x 4 runs; steps are
    # optimizer steps (one per training batch here), none in evaluation
    assert (train.samples, train.steps) == (6 * 2 * BATCH, 12)
    assert (recs["fit/train/epoch-1"].samples, recs["fit/train/epoch-1"].steps) == (48, 6)
    assert (val.samples, val.steps) == (4 * 2 * BATCH, None)
    assert (sanity.samples, sanity.steps) == (BATCH, None)

    report = Report.load(tmp_path / "report.json")
    assert report.status == "complete"
    assert report.phase("fit").items.samples == 96
    assert report.phase("fit/train").attrs["optimizer_steps"] == "12"
    assert report.phase("fit/train/epoch-0/window-1").attrs["batches"] == "2-3"
    (model,) = report.models
    assert (model.name, model.parameters_total, model.parameters_trainable) == ("Tiny", 5, 5)
    assert model.size_bytes == 5 * 4 + 3 * 4  # parameters and the buffer, float32
    assert report.extra["lightning.sanity_check_in_fit"] is False


def test_sanity_check_inside_fit_when_asked(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path, include_sanity_check_in_totals=True)
    trainer = make_trainer(callbacks=[cb], max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(Tiny(), loader(), loader())
    assert_exact(cb, trace)
    recs = records(cb)
    assert "sanity_check" not in recs
    sanity = recs["fit/sanity_check"]
    assert recs["fit"].count == 1
    assert covered_by(sanity.intervals_mono, recs["fit"].intervals_mono)


def test_pytorch_lightning_namespace(tmp_path: Path) -> None:
    ptl = pytest.importorskip("pytorch_lightning")
    from greenmeter.integrations.pytorch_lightning import GreenMeterCallback as PtlCallback

    trace = make_trace()
    cb = PtlCallback(sensors=[TraceSensor({"trace:cpu": trace})], report_path=tmp_path / "r.json")
    assert isinstance(cb, ptl.Callback) and not isinstance(cb, pl.Callback)
    trainer = make_trainer(ptl, [cb], limit_train_batches=3, limit_val_batches=2)
    trainer.fit(make_module_class(ptl.LightningModule)(), loader(), loader())
    assert_exact(cb, trace)
    report = Report.load(tmp_path / "r.json")
    assert report.phase("fit/train").items.steps == 6
    assert report.phase("fit/validate").count == 2
    assert report.phase("fit/train/epoch-0").count == 1


def assert_exact_over(meters: list[Any], trace: PowerTrace, report: Report) -> None:
    """Each stage's meter is exact against the trace, and the run's report holds, per
    phase, the sum of the stages' figures."""
    expected: dict[str, float] = {}
    for meter in meters:
        for rec in meter.snapshot().phases:
            assert rec.total_energy_j == pytest.approx(truth_j(trace, rec), rel=1e-9, abs=1e-9)
            path = "/".join(rec.path)
            expected[path] = expected.get(path, 0.0) + rec.total_energy_j
    for path, energy_j in expected.items():
        assert report.phase(path).it_energy_j == pytest.approx(energy_j, rel=1e-9), path


def sampler_threads() -> int:
    return sum(t.name == "greenmeter-sampler" and t.is_alive() for t in threading.enumerate())


def test_one_callback_across_fit_test_validate_predict(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path)
    trainer = make_trainer(callbacks=[cb], max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    model = Tiny()
    before = sampler_threads()
    trainer.fit(model, loader(), loader())
    meters = [cb.meter]
    assert sampler_threads() == before  # the stage's meter stopped at its teardown
    first = Report.load(tmp_path / "report.json")
    assert "test" not in {p.path_str for p in first.iter_phases()}

    for n in (32, 16):
        trainer.test(model, loader(n))
        meters.append(cb.meter)
    after_test = Report.load(tmp_path / "report.json")
    assert after_test.run_id == first.run_id
    assert after_test.phase("test").count == 2
    assert after_test.phase("test").items.samples == 48
    assert after_test.phase("fit").it_energy_j == pytest.approx(first.phase("fit").it_energy_j)

    # a second trainer, same callback: still one report
    other = make_trainer(callbacks=[cb], max_epochs=1, limit_val_batches=2)
    other.validate(model, loader())
    meters.append(cb.meter)
    preds = other.predict(model, loader(24))
    meters.append(cb.meter)
    assert len(preds) == 3
    assert len({id(m) for m in meters}) == 5 and sampler_threads() == before
    report = Report.load(tmp_path / "report.json")
    assert_exact_over(meters, trace, report)
    assert report.run_id == first.run_id
    top = [p.path_str for p in report.phases]
    assert {"fit", "sanity_check", "test", "validate", "predict"} <= set(top)
    assert report.phase("validate").items.samples == 16
    assert report.phase("predict").items.samples == 24
    assert report.phase("predict").kind == "predict"
    assert report.extra["lightning.stages"] == "fit,test,validate,predict"
    # phases never overlap in time: their energies add up to at most the run's
    assert sum(report.phase(p).it_energy_j for p in top) <= report.totals.it_energy_j + 1e-9
    # the run's time is the stages' measured time, and its energy theirs
    stages = [m.snapshot() for m in meters]
    assert report.totals.it_energy_j == pytest.approx(
        sum(s.energy_j["trace:cpu"] for s in stages), rel=1e-9
    )
    assert report.duration_s == pytest.approx(sum(s.duration_s for s in stages), rel=1e-6)


def test_no_sampler_thread_outlives_its_trainer(tmp_path: Path) -> None:
    import gc

    trace = make_trace()
    before = sampler_threads()
    for i in range(6):
        cb = make_callback(trace, tmp_path, report_path=tmp_path / f"r{i}.json")
        trainer = make_trainer(
            callbacks=[cb], max_epochs=1, limit_train_batches=1, limit_val_batches=0
        )
        trainer.fit(Tiny(), loader())
        del trainer, cb
    gc.collect()
    assert sampler_threads() == before


@pytest.mark.parametrize("val_batches", [0, 1])
def test_checkpoint_saves_are_their_own_phase(tmp_path: Path, val_batches: int) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    trace = make_trace()
    cb = make_callback(trace, tmp_path)
    # without validation ModelCheckpoint saves in on_train_epoch_end, else on_validation_end
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    trainer = make_trainer(
        callbacks=[cb, ckpt], limit_train_batches=3, limit_val_batches=val_batches,
        enable_checkpointing=True, num_sanity_val_steps=0,
    )  # fmt: skip
    # steps of 50 ms: a few ms between two boundaries on a loaded machine stay small
    # beside an epoch, so the 5 % below tests where saves go, not the scheduler
    trainer.fit(make_module_class(pl.LightningModule, step_s=0.05)(), loader(), loader())
    assert len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 2
    assert_exact(cb, trace)
    recs = records(cb)
    saves, train = recs["fit/checkpoint"], recs["fit/train"]
    assert cb.last_report is not None
    assert cb.last_report.phase("fit/checkpoint").count == 2
    assert overlap_s(saves.intervals_mono, train.intervals_mono) == pytest.approx(0.0, abs=1e-9)
    assert covered_by(saves.intervals_mono, recs["fit"].intervals_mono)
    # the saves are outside train, so the epochs add up to train
    epochs_j = sum(recs[f"fit/train/epoch-{e}"].total_energy_j for e in (0, 1))
    assert train.total_energy_j * 0.95 <= epochs_j <= train.total_energy_j + 1e-9
    assert [cb.last_report.phase(f"fit/train/epoch-{e}").count for e in (0, 1)] == [1, 1]
    assert "save_checkpoint" not in vars(trainer)  # the bracket is gone after the stage


def closing_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("greenmeter: energy")]


def test_estimate_scope_tags_and_one_closing_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GREENMETER_ESTIMATE_SCOPE", "GREENMETER_TAGS", "GREENMETER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "r.json"
    # no powercap tree, no GPU: the CPU and memory are estimated
    cb = GreenMeterCallback(
        report_path=path, powercap_root=tmp_path / "no-powercap", estimate_scope="machine",
        tags={"experiment": "ablation", "seed": 3},
    )  # fmt: skip
    trainer = make_trainer(callbacks=[cb], max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    capfd.readouterr()
    trainer.fit(Tiny(), loader())
    (line,) = closing_lines(capfd.readouterr().err)
    assert f"report: {path}" in line
    assert "estimate (machine scope)" in line
    report = Report.load(path)
    assert report.tags == {"experiment": "ablation", "seed": "3"}
    assert report.extra["estimate_scope"] == "machine"
    assert {c.method for c in report.components} == {"estimated"}

    quiet = GreenMeterCallback(report_path=tmp_path / "q.json", verbose=False, sensors=[])
    trainer = make_trainer(callbacks=[quiet], max_epochs=1, limit_train_batches=1)
    trainer.fit(Tiny(), loader())
    assert closing_lines(capfd.readouterr().err) == []
    with pytest.raises(ValueError, match="estimate_scope"):
        GreenMeterCallback(estimate_scope="galaxy")


def test_early_stopping_and_limit_batches(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    trace = make_trace()
    cb = make_callback(trace, tmp_path)
    # a metric that never improves after the first epoch stops after patience + 1 epochs
    stopper = EarlyStopping(monitor="constant", patience=1, mode="min")

    class Constant(Tiny):
        def on_train_epoch_end(self) -> None:
            self.log("constant", 1.0)

    trainer = make_trainer(
        callbacks=[cb, stopper], max_epochs=20, limit_train_batches=3, limit_val_batches=0
    )
    trainer.fit(Constant(), loader(), loader())
    assert trainer.current_epoch == 2 and trainer.should_stop
    recs = records(cb)
    epochs = sorted(p for p in recs if p.startswith("fit/train/epoch-"))
    assert epochs == ["fit/train/epoch-0", "fit/train/epoch-1"]
    assert "fit/validate" not in recs
    assert recs["fit/train"].steps == 6
    assert_exact(cb, trace)


def test_gradient_accumulation_steps_are_optimizer_steps(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path, window_steps=4)
    trainer = make_trainer(
        callbacks=[cb], max_epochs=1, accumulate_grad_batches=4, limit_val_batches=0
    )
    trainer.fit(Tiny(), loader())
    assert trainer.global_step == 2
    report = cb.last_report
    assert report is not None
    train = report.phase("fit/train")
    # steps are optimizer steps: 8 batches, 4 per step
    assert train.items.steps == 2 and train.items.samples == 64
    assert train.attrs["optimizer_steps"] == "2"
    assert report.phase("fit/train/epoch-0/window-1").items.steps == 1
    assert report.phase("fit/train/epoch-0/window-1").items.samples == 4 * BATCH
    assert_exact(cb, trace)


def test_samples_fn_and_tokens_fn(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(
        trace, tmp_path, samples_fn=lambda b: 2 * len(b[0]), tokens_fn=lambda b: 10 * len(b[0])
    )
    trainer = make_trainer(callbacks=[cb], max_epochs=1, limit_train_batches=3, limit_val_batches=0)
    trainer.fit(Tiny(), loader())
    train = records(cb)["fit/train"]
    assert (train.samples, train.tokens, train.steps) == (48, 240, 3)


# --------------------------------------------------------------------------------------
# metrics to loggers


def test_metrics_logged_per_epoch_and_stage(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    trace = make_trace()
    cb = make_callback(trace, tmp_path)
    logger = CSVLogger(tmp_path, name="logs", version=0)
    trainer = make_trainer(
        callbacks=[cb], logger=logger, limit_train_batches=3, limit_val_batches=2,
        log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(Tiny(), loader(), loader())
    trainer.test(trainer.lightning_module, loader(16))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "version_0" / "metrics.csv")))
    report = cb.last_report
    assert report is not None

    def logged(key: str) -> list[float]:
        return [float(r[key]) for r in rows if r.get(key)]

    # pl_module.log keeps float32: compare to 1e-6
    epochs = logged("greenmeter/train_epoch_energy_j")
    expected = [report.phase(f"fit/train/epoch-{e}").it_energy_j for e in (0, 1)]
    assert epochs == pytest.approx(expected, rel=1e-6)
    powers = logged("greenmeter/train_epoch_power_w")
    durations = [report.phase(f"fit/train/epoch-{e}").duration_s for e in (0, 1)]
    means = [e / d for e, d in zip(expected, durations, strict=True)]
    assert powers == pytest.approx(means, rel=1e-6)
    assert all(20.0 <= p <= 150.0 for p in powers)  # a mean of the trace's two levels
    assert len(logged("greenmeter/validate_energy_j")) == 2
    assert logged("greenmeter/fit_energy_j") == pytest.approx([report.phase("fit").it_energy_j])
    assert logged("greenmeter/test_energy_j") == pytest.approx([report.phase("test").it_energy_j])
    # the stage figures do not leak into what trainer.test() returns
    assert trainer.callback_metrics.get("greenmeter/test_energy_j") is None


# --------------------------------------------------------------------------------------
# failures


def test_exception_in_training_step_leaves_failed_partial_report(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path)
    trainer = make_trainer(callbacks=[cb], limit_train_batches=4, limit_val_batches=1)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(make_module_class(pl.LightningModule, fail_at_step=6)(), loader(), loader())
    report = Report.load(tmp_path / "report.json")
    assert report.status == "failed"
    assert report.extra["lightning.fit.status"] == "failed"
    assert "boom in training_step" in str(report.extra["lightning.note.failure"])
    assert not any(p.open for p in report.iter_phases())
    assert report.phase("fit/train").items.steps == 6  # 4 + 2 finished batches
    assert_exact(cb, trace, report)


def test_keyboard_interrupt_marks_report_interrupted(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path)
    trainer = make_trainer(callbacks=[cb], limit_train_batches=4, limit_val_batches=0)
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning exits after a graceful shutdown
            trainer.fit(make_module_class(pl.LightningModule, 2, interrupt=True)(), loader())
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT after Ctrl-C
    report = Report.load(tmp_path / "report.json")
    assert report.status == "interrupted"
    assert report.phase("fit/train").items.steps == 2


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_hook_errors_never_reach_training(tmp_path: Path) -> None:
    trace = make_trace()

    def bad_samples(batch: Any) -> int:
        raise ValueError("cannot count")

    cb = make_callback(trace, tmp_path, samples_fn=bad_samples)
    trainer = make_trainer(callbacks=[cb], max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    with pytest.warns(RuntimeWarning, match="cannot count"):
        trainer.fit(Tiny(), loader())
    assert trainer.global_step == 2
    assert (tmp_path / "report.json").exists()


def test_in_progress_report_while_training(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path, checkpoint_interval_s=0.02)
    seen: list[tuple[str, int | None]] = []

    class Slow(Tiny):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            time.sleep(0.01)
            return super().training_step(batch, batch_idx)

        def on_train_epoch_end(self) -> None:  # before the stage's final report
            report = Report.load(tmp_path / "report.json")
            seen.append((report.status, report.phase("fit/train").items.steps))

    trainer = make_trainer(callbacks=[cb], max_epochs=1, limit_val_batches=0)
    trainer.fit(Slow(), loader())
    ((status, steps),) = seen
    assert status == "running" and steps is not None and 1 <= steps <= 8
    assert Report.load(tmp_path / "report.json").status == "complete"


# --------------------------------------------------------------------------------------
# resume from a checkpoint


def test_resume_from_checkpoint_continues_totals(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    trace = make_trace()
    cb1 = make_callback(trace, tmp_path)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = make_trainer(
        callbacks=[cb1, ckpt], max_epochs=2, limit_train_batches=3, limit_val_batches=1,
        enable_checkpointing=True,
    )  # fmt: skip
    first.fit(Tiny(), loader(), loader())
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in saved["callbacks"].items() if "GreenMeterCallback" in k]
    (segment,) = state["segments"]
    earlier = {
        p["path"][-1] if len(p["path"]) == 1 else "/".join(p["path"]): p for p in segment["phases"]
    }
    # the segment saved at the end of epoch 1 has both epochs, closed and exact
    recs1 = records(cb1)
    for path in ("fit/train/epoch-0", "fit/train/epoch-1"):
        assert earlier[path]["energy_j"]["trace:cpu"] == pytest.approx(
            recs1[path].total_energy_j, rel=1e-9
        )

    # a new process would build a new callback and meter: resume for two more epochs
    trace2 = make_trace()
    cb2 = make_callback(trace2, tmp_path, report_path=tmp_path / "resumed.json")
    second = make_trainer(callbacks=[cb2], max_epochs=4, limit_train_batches=3, limit_val_batches=1)
    second.fit(Tiny(), loader(), loader(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    report = Report.load(tmp_path / "resumed.json")
    recs2 = records(cb2)
    assert "fit/train/epoch-0" not in recs2  # measured by the first segment only
    for path in ("fit", "fit/train", "fit/validate"):
        expected = earlier[path]["energy_j"]["trace:cpu"] + recs2[path].total_energy_j
        assert report.phase(path).it_energy_j == pytest.approx(expected, rel=1e-9), path
        assert recs2[path].total_energy_j == pytest.approx(truth_j(trace2, recs2[path]), rel=1e-9)
    for e in range(4):
        assert report.phase(f"fit/train/epoch-{e}").it_energy_j > 0
    assert report.phase("fit/train/epoch-0").it_energy_j == pytest.approx(
        recs1["fit/train/epoch-0"].total_energy_j, rel=1e-9
    )
    assert report.phase("fit/train").items.steps == 12
    assert report.extra["resume.segments"] == 2
    assert report.extra["resume.earlier_it_energy_j"] == pytest.approx(
        segment["energy_j"]["trace:cpu"]
    )
    # the earlier segment is listed first-class, before this segment's start
    (earlier_seg,) = report.segments
    assert earlier_seg.it_energy_j == pytest.approx(segment["energy_j"]["trace:cpu"])
    assert earlier_seg.duration_s == pytest.approx(segment["duration_s"])
    assert earlier_seg.start_utc == report.start_utc and earlier_seg.end_utc <= report.end_utc
    # duration covers the same segments as the energy: the mean power is the trace's
    this_s = cb2.meter.snapshot().duration_s
    assert report.extra["resume.this_duration_s"] == pytest.approx(this_s)
    assert report.duration_s == pytest.approx(segment["duration_s"] + this_s, rel=1e-9)
    assert report.totals.duration_s == report.duration_s
    assert 20.0 <= report.totals.it_energy_j / report.duration_s <= 150.0
    # totals: the earlier segment plus this one's span (at least its fit, at most until now)
    this_segment_j = report.totals.it_energy_j - segment["energy_j"]["trace:cpu"]
    assert recs2["fit"].total_energy_j - 1e-9 <= this_segment_j
    assert this_segment_j <= cb2.meter.snapshot().energy_j["trace:cpu"] + 1e-9
    assert report.run_id == cb1.last_report.run_id  # one run across segments


def test_resume_on_the_same_callback_does_not_count_twice(tmp_path: Path) -> None:
    trace = make_trace()
    cb = make_callback(trace, tmp_path)
    trainer = make_trainer(callbacks=[cb], max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(Tiny(), loader())
    state = cb.state_dict()
    cb.load_state_dict(state)  # the live meter measured this already
    assert cb.segments == []


# --------------------------------------------------------------------------------------
# helpers and packaging


def test_batch_size_rules() -> None:
    x = torch.zeros(5, 3)
    assert batch_size(x) == 5
    assert batch_size((x, torch.zeros(5))) == 5
    assert batch_size({"input_ids": torch.zeros(7, 12), "labels": torch.zeros(7)}) == 7
    assert batch_size([{"a": torch.zeros(2, 1)}]) == 2
    assert batch_size(["a b", "c d", "e"]) == 3
    assert batch_size(torch.tensor(3.0)) is None
    assert batch_size(object()) is None


def test_fold_segments_adds_earlier_phases_and_totals() -> None:
    from datetime import datetime, timezone

    from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope

    comp = ComponentInfo(
        id="c", kind=ComponentKind.CPU, scope=Scope.CPU_PACKAGE, method=Method.COUNTER,
        sensor="t", label="c", host="h", resolution_s=0.001,
    )  # fmt: skip
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    earlier = MeterSnapshot(
        host="h", started_mono=100.0, started_utc=t0, components=[comp],
        energy_j={"c": 50.0, "gone": 7.0}, timeline=[], warnings=[], duration_s=10.0,
        phases=[
            PhaseRecord(("fit",), "fit", 1, 100.0, 109.0, 9.0, {"c": 45.0}, samples=10, steps=2,
                        intervals_mono=[(100.0, 109.0)]),
            PhaseRecord(("fit", "train"), "train", 1, 101.0, 108.0, 7.0, {"c": 30.0, "gone": 1.0},
                        samples=10, steps=2, intervals_mono=[(101.0, 108.0)]),
        ],
    )  # fmt: skip
    seg = segment_summary(earlier, "m1")
    now = MeterSnapshot(
        host="h", started_mono=5.0, started_utc=datetime(2025, 1, 2, tzinfo=timezone.utc),
        components=[comp], energy_j={"c": 20.0}, timeline=[], warnings=[], duration_s=4.0,
        phases=[PhaseRecord(("fit",), "fit", 1, 5.0, 9.0, 4.0, {"c": 20.0}, samples=3, steps=1,
                            intervals_mono=[(5.0, 9.0)])],
    )  # fmt: skip
    folded, extra, listed = fold_segments(now, [seg])
    by = {r.path: r for r in folded.phases}
    assert by[("fit",)].energy_j == {"c": 65.0}
    assert (by[("fit",)].samples, by[("fit",)].steps, by[("fit",)].count) == (13, 3, 2)
    assert by[("fit",)].duration_s == pytest.approx(13.0)
    train = by[("fit", "train")]
    assert train.energy_j == {"c": 30.0}  # the component this meter lacks is left out
    # the earlier span sits one day minus (start offset) before this segment's start
    (span,) = train.intervals_mono
    assert span[0] == pytest.approx(5.0 - 86400.0 + 1.0)
    assert folded.energy_j == {"c": 70.0}
    assert extra["resume.segments"] == 2 and extra["resume.left_out_energy_j"] == 7.0
    assert extra["resume.earlier_it_energy_j"] == 50.0
    (only,) = listed
    assert only["it_energy_j"] == 50.0 and only["duration_s"] == seg["duration_s"]
    assert only["start_utc"] == seg["start_utc"] and only["host"] == "h"


def test_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightning.pytorch.callbacks", None)
    monkeypatch.delitem(sys.modules, "greenmeter.integrations.lightning", raising=False)
    with pytest.raises(ImportError, match=r'pip install "greenmeter\[lightning\]"'):
        importlib.import_module("greenmeter.integrations.lightning")
    monkeypatch.setitem(sys.modules, "pytorch_lightning.callbacks", None)
    monkeypatch.delitem(sys.modules, "greenmeter.integrations.pytorch_lightning", raising=False)
    with pytest.raises(ImportError, match=r"greenmeter\[pytorch-lightning\]"):
        importlib.import_module("greenmeter.integrations.pytorch_lightning")


def test_invalid_arguments_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="window_steps"):
        GreenMeterCallback(window_steps=0)
    with pytest.raises(TypeError, match="samples_fn"):
        GreenMeterCallback(samples_fn=3)  # type: ignore[arg-type]
