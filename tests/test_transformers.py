"""GreenMeterTrainerCallback on a tiny BERT built in the test (no downloads)."""

from __future__ import annotations

import os
import time

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from greenmeter import EnergyMeter  # noqa: E402
from greenmeter.integrations.transformers import GreenMeterTrainerCallback  # noqa: E402
from greenmeter.report import Report  # noqa: E402
from greenmeter.testing import PowerTrace  # noqa: E402
from greenmeter.testing.sensors import TraceSensor  # noqa: E402


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 50, (n, 6), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(6, dtype=torch.long),
            "labels": self.labels[i],
        }


def _model():
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def _args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        num_train_epochs=2,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    base.update(kw)
    return transformers.TrainingArguments(**base)


def _truth(trace, rec):
    return sum(trace.energy_j(a, b) for a, b in rec.intervals_mono)


def _overlap(a, b) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def test_train_evaluate_predict_phases_counts_and_energy(tmp_path):
    trace = PowerTrace([(0.011, 90.0), (0.005, 300.0)])
    model = _model()
    report_path = tmp_path / "energy.json"
    with EnergyMeter([TraceSensor({"trace:cpu": trace})]) as meter:
        callback = GreenMeterTrainerCallback(meter, report_path=report_path)
        trainer = transformers.Trainer(
            model=model,
            args=_args(tmp_path),
            train_dataset=Rows(10, 1),  # 3 batches per epoch, the last of 2
            eval_dataset=Rows(6, 2),  # 2 batches, the last of 2
            callbacks=[callback],
        )
        assert callback.trainer is None  # never looked for up the stack
        assert callback.attach(trainer) is callback and callback.trainer is trainer
        trainer.train()
        assert report_path.exists()  # written at train end, meter still running
        trainer.predict(Rows(5, 3))
        trainer.evaluate()
        phases = {p.path: p for p in meter.snapshot().phases}

    fit, train = phases[("fit",)], phases[("fit", "train")]
    evaluate = phases[("fit", "evaluate")]
    epochs = [phases[("fit", "train", f"epoch-{i}")] for i in range(2)]
    assert (fit.kind, train.kind, evaluate.kind) == ("fit", "train", "validate")
    assert [e.kind for e in epochs] == ["epoch", "epoch"]
    assert train.samples == 20 and train.steps == 6 and train.tokens == 20 * 6
    assert [(e.samples, e.steps) for e in epochs] == [(10, 3), (10, 3)]
    assert evaluate.count == 2 and evaluate.samples == 12 and evaluate.steps == 4
    assert phases[("predict",)].kind == "predict"
    assert (phases[("predict",)].samples, phases[("predict",)].steps) == (5, 2)
    assert phases[("evaluate",)].samples == 6 and phases[("evaluate",)].count == 1

    # training is paused while evaluating: no overlap, and the parts fill the fit
    assert _overlap(train.intervals_mono, evaluate.intervals_mono) == pytest.approx(0, abs=1e-9)
    assert train.duration_s + evaluate.duration_s <= fit.duration_s + 1e-9
    for rec in (fit, train, evaluate, *epochs, phases[("predict",)]):
        assert rec.energy_j["trace:cpu"] == pytest.approx(_truth(trace, rec), rel=1e-9)
    parts = train.energy_j["trace:cpu"] + evaluate.energy_j["trace:cpu"]
    assert parts <= fit.energy_j["trace:cpu"] + 1e-9
    assert parts >= 0.9 * fit.energy_j["trace:cpu"]

    report = Report.load(report_path)
    assert report.models[0].parameters_total == sum(p.numel() for p in model.parameters())
    assert report.phase("fit/train").items.samples == 20


def test_owned_meter_and_event_fallback(tmp_path):
    """Without attaching, evaluation is bracketed from its first batch by events."""
    report_path = tmp_path / "owned.json"
    callback = GreenMeterTrainerCallback(
        report_path=report_path,
        meter_kwargs={"sensors": [TraceSensor({"trace:cpu": PowerTrace.constant(40.0)})]},
        report_kwargs={"include_git": False},
    )
    trainer = transformers.Trainer(
        model=_model(),
        args=_args(tmp_path, num_train_epochs=1),
        train_dataset=Rows(8, 1),
        eval_dataset=Rows(6, 2),
        callbacks=[callback],
    )
    trainer.train()
    assert callback.trainer is None
    assert callback.meter.running  # kept for a later evaluate/predict
    callback.finish()
    assert not callback.meter.running
    report = Report.load(report_path)
    assert report.status == "complete"
    ev = report.phase("fit/evaluate")
    assert ev.items.steps == 2 and ev.items.samples == 8  # estimated: 2 x batch size 4
    assert (
        report.phase("fit/train").items.samples == 8 and report.phase("fit/train").items.steps == 2
    )
    assert report.phase("fit/train/epoch-0").items.steps == 2


def _owned(tmp_path, **kw):
    return GreenMeterTrainerCallback(
        report_path=tmp_path / "energy.json",
        meter_kwargs={"sensors": [TraceSensor({"trace:cpu": PowerTrace.constant(40.0)})]},
        report_kwargs={"include_git": False},
        **kw,
    )


def _trainer(tmp_path, callback, epochs=1):
    return transformers.Trainer(
        model=_model(),
        args=_args(tmp_path, num_train_epochs=epochs),
        train_dataset=Rows(8, 1),
        eval_dataset=Rows(6, 2),
        callbacks=[callback],
    )


def test_one_report_accumulates_train_evaluate_and_predict(tmp_path):
    callback = _owned(tmp_path, verbose=False)
    trainer = _trainer(tmp_path, callback)
    trainer.train()
    trainer.evaluate()
    trainer.predict(Rows(5, 3))
    path = tmp_path / "energy.json"
    running = Report.load(path)
    assert running.status == "running"  # rewritten after each, meter still measuring
    paths = {p.path_str for p in running.iter_phases()}
    assert {"fit", "fit/train", "fit/evaluate", "evaluate"} <= paths
    meter = callback.meter
    callback.finish()
    final = Report.load(path)
    assert final.status == "complete" and not meter.running
    assert {p.path_str for p in final.iter_phases()} >= paths
    assert final.phase("evaluate").count == 2  # standalone evaluate and predict, by events
    assert final.phase("fit/train").items.steps == 2
    assert final.models and final.models[0].parameters_total == sum(
        p.numel() for p in trainer.model.parameters()
    )
    callback.finish()  # again: nothing changes
    assert Report.load(path).run_id == final.run_id


def test_the_callbacks_meter_is_measuring_before_fit_opens(tmp_path):
    callback = _owned(tmp_path, verbose=False)
    trainer = _trainer(tmp_path, callback)
    meter = callback.meter
    assert meter is not None and meter.running  # started while the Trainer was built
    t0 = time.monotonic()
    trainer.train()
    t1 = time.monotonic()
    fit = next(p for p in meter.snapshot().phases if p.path == ("fit",))
    (a, b), *_ = fit.intervals_mono
    assert meter.started_mono < t0 <= a and b <= t1  # no meter start inside train()
    assert callback.meter is meter and meter.running
    callback.finish()


def test_a_given_meter_is_left_running_and_finished_by_its_owner(tmp_path, capfd):
    meter = EnergyMeter([TraceSensor({"trace:cpu": PowerTrace.constant(40.0)})]).start()
    path = tmp_path / "energy.json"
    callback = GreenMeterTrainerCallback(
        meter, report_path=path, report_kwargs={"include_git": False}
    )
    _trainer(tmp_path, callback).train()
    callback.finish()
    assert meter.running  # not the callback's to stop
    assert Report.load(path).status == "running"
    assert "report: " not in capfd.readouterr().err
    meter.stop()  # the owner stops it, then the callback writes the final report
    callback.finish()
    assert Report.load(path).status == "complete"
    err = capfd.readouterr().err
    assert err.count(f"report: {path}") == 1


def test_scope_tags_and_verbose_reach_the_callbacks_meter(tmp_path, capfd):
    callback = GreenMeterTrainerCallback(
        report_path=tmp_path / "energy.json",
        meter_kwargs={"gpu": False, "powercap_root": str(tmp_path / "no-powercap")},
        report_kwargs={"include_git": False},
        estimate_scope="machine",
        tags={"seed": 3, "team": "nlp"},
    )
    _trainer(tmp_path, callback).train()
    assert callback.meter.estimate_scope == "machine"
    callback.finish()
    report = Report.load(tmp_path / "energy.json")
    assert report.tags == {"seed": "3", "team": "nlp"}
    assert {c.scope for c in report.components if c.method == "estimated"} == {"machine"}
    lines = [ln for ln in capfd.readouterr().err.splitlines() if "report: " in ln]
    assert len(lines) == 1 and "estimate (machine scope)" in lines[0]

    quiet = _owned(tmp_path / "q", verbose=False)
    _trainer(tmp_path, quiet).train()
    quiet.finish()
    assert "report: " not in capfd.readouterr().err


def test_each_rank_measures_its_own_gpu_by_default(tmp_path):
    from types import SimpleNamespace

    from greenmeter.integrations.transformers import _rank_gpus

    assert _rank_gpus(SimpleNamespace(device=torch.device("cuda", 1))) == [1]
    assert _rank_gpus(SimpleNamespace(device=torch.device("cpu"))) == []
    assert _rank_gpus(SimpleNamespace()) is None  # unknown: all visible boards

    rank1 = GreenMeterTrainerCallback(
        meter_kwargs={"powercap_root": str(tmp_path / "no-powercap")}, verbose=False
    )
    rank1.on_init_end(SimpleNamespace(device=torch.device("cuda", 1)), None, None)
    try:
        assert rank1.meter._discover_args["gpus"] == [1]
    finally:
        rank1.finish()
    given = GreenMeterTrainerCallback(
        meter_kwargs={"powercap_root": str(tmp_path / "no-powercap"), "gpus": [0, 1]},
        verbose=False,
    )
    given.on_init_end(SimpleNamespace(device=torch.device("cuda", 1)), None, None)
    try:
        assert given.meter._discover_args["gpus"] == [0, 1]  # the user's choice stands
    finally:
        given.finish()
