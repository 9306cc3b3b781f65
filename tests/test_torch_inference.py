"""measure_inference and model_size with real torch on CPU, against a trace's exact energy."""

from __future__ import annotations

import statistics
import time

import pytest

torch = pytest.importorskip("torch")

from greenmeter import EnergyMeter  # noqa: E402
from greenmeter.integrations.torch import (  # noqa: E402
    RESOLUTION_FACTOR,
    measure_inference,
    model_size,
)
from greenmeter.report import ModelInfo  # noqa: E402
from greenmeter.testing import PowerTrace  # noqa: E402
from greenmeter.testing.sensors import TraceSensor  # noqa: E402


def _truth(trace: PowerTrace, intervals) -> float:
    return sum(trace.energy_j(a, b) for a, b in intervals)


class SelfTimed(torch.nn.Module):
    """A small MLP that sleeps a varying time per call and times itself independently."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU())
        self.own_s: list[float] = []
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        self.calls += 1
        time.sleep(0.002 + 0.001 * (self.calls % 4))  # 2..5 ms, a known spread
        out = self.net(x)
        self.own_s.append(time.perf_counter() - t0)
        return out


@pytest.fixture
def traced():
    trace = PowerTrace([(0.009, 150.0), (0.004, 20.0), (0.006, 400.0)])
    return trace


def test_latency_energy_and_report_agree_with_independent_truth(traced):
    model = SelfTimed()
    sensor = TraceSensor({"trace:cpu": traced})
    with EnergyMeter([sensor]) as meter:
        result = measure_inference(
            model,
            lambda bs: torch.randn(bs, 16),
            batch_sizes=(1, 8),
            warmup=2,
            repeats=20,
            min_seconds=0.15,
            meter=meter,
        )
        report = meter.report(model=model_size(model), include_git=False)
    snap = meter.snapshot()
    recs = {p.path: p for p in snap.phases}
    assert [s.batch_size for s in result.stats] == [1, 8]
    own = iter(model.own_s)
    for stats in result.stats:
        # the model's own timings of exactly the measured calls (warm-up calls skipped)
        for _ in range(2):
            next(own)
        mine = [next(own) for _ in range(stats.repeats)]
        assert stats.repeats >= 20 and stats.duration_s >= 0.15
        assert stats.latency_p50_s == pytest.approx(statistics.median(mine), abs=4e-4)
        assert stats.latency_mean_s == pytest.approx(statistics.fmean(mine), abs=4e-4)
        assert stats.latency_p50_s <= stats.latency_p95_s <= stats.latency_p99_s

        rec = recs[("inference", f"bs-{stats.batch_size}")]
        assert rec.kind == "inference"
        assert rec.samples == stats.samples == stats.batch_size * stats.repeats
        assert rec.steps == stats.repeats and len(rec.latencies_s) == stats.repeats
        assert rec.attrs["repeats"] == str(stats.repeats)
        assert rec.attrs["batch_size"] == str(stats.batch_size)
        # J/sample is exactly the phase's energy over its samples...
        assert stats.energy_j == rec.total_energy_j
        assert stats.energy_per_sample_j == rec.total_energy_j / rec.samples
        assert stats.energy_per_batch_j == pytest.approx(stats.energy_j / stats.repeats)
        # ...and that energy is the trace's exact integral over the phase
        assert stats.energy_j == pytest.approx(_truth(traced, rec.intervals_mono), rel=1e-9)
        assert stats.samples_per_s == pytest.approx(stats.samples / rec.duration_s)
        assert stats.mean_power_w == pytest.approx(stats.energy_j / rec.duration_s)
        # the report computes its percentiles the same way from the same latencies
        eff = report.phase(("inference", f"bs-{stats.batch_size}")).efficiency
        assert eff.latency_p50_s == pytest.approx(stats.latency_p50_s, rel=1e-12)
        assert eff.latency_p95_s == pytest.approx(stats.latency_p95_s, rel=1e-12)
        assert eff.energy_per_sample_j == pytest.approx(stats.energy_per_sample_j, rel=1e-12)
    assert report.models[0].parameters_total == 16 * 32 + 32
    assert model.training  # eval() during measurement, training mode restored


def test_repeats_are_extended_for_a_coarse_sensor():
    trace = PowerTrace.constant(50.0)
    sensor = TraceSensor({"trace:gpu": trace}, resolution_s=0.12)
    calls = []

    def fast(x):
        calls.append(1)
        time.sleep(0.003)
        return x

    with EnergyMeter([sensor]) as meter:
        result = measure_inference(
            fast, torch.zeros(4, 2), repeats=3, min_seconds=0.0, warmup=1, meter=meter
        )
    stats = result[4]
    assert stats.target_duration_s == pytest.approx(RESOLUTION_FACTOR * 0.12)
    assert stats.duration_s >= 1.2
    assert stats.repeats > 100  # far more than the 3 asked for, to cover the resolution
    assert len(calls) == stats.repeats + 1
    # constant power: the energy is power x time exactly
    assert stats.energy_j == pytest.approx(50.0 * stats.duration_s, rel=1e-9)
    assert stats.mean_power_w == pytest.approx(50.0, rel=1e-9)

    with EnergyMeter([TraceSensor({"t": trace}, resolution_s=0.12)]) as meter:
        quick = measure_inference(
            fast,
            torch.zeros(4, 2),
            repeats=3,
            min_seconds=0.0,
            warmup=0,
            meter=meter,
            min_energy_resolution=False,
        )
    assert quick[4].repeats == 3


def test_generation_tokens_and_dict_batches():
    trace = PowerTrace.constant(80.0)
    sensor = TraceSensor({"trace:cpu": trace})

    def generate(input_ids, max_new_tokens):
        time.sleep(0.002)
        return input_ids.shape[0] * max_new_tokens  # tokens produced

    with EnergyMeter([sensor]) as meter:
        result = measure_inference(
            generate,
            lambda bs: {"input_ids": torch.ones(bs, 5, dtype=torch.long), "max_new_tokens": 7},
            batch_sizes=(2,),
            repeats=5,
            min_seconds=0.05,
            meter=meter,
        )
    stats = result[2]
    assert stats.tokens == 14 * stats.repeats
    assert stats.tokens_per_s == pytest.approx(stats.tokens / stats.duration_s)
    assert stats.energy_per_token_j == pytest.approx(stats.energy_j / stats.tokens)
    rec = next(p for p in meter.snapshot().phases if p.path == ("inference", "bs-2"))
    assert rec.tokens == stats.tokens

    # tokens_fn reads tokens from a model's output
    with EnergyMeter([TraceSensor({"t": trace})]) as meter:
        res = measure_inference(
            lambda x: x[:, :3],
            torch.ones(2, 8),
            tokens_fn=lambda out: out.numel(),
            repeats=4,
            min_seconds=0.0,
            meter=meter,
        )
    assert res[2].tokens == 6 * res[2].repeats


def test_inputs_validation_is_clear():
    with EnergyMeter([TraceSensor({"t": PowerTrace.constant(1.0)})]) as meter:
        with pytest.raises(ValueError, match="factory"):
            measure_inference(lambda x: x, torch.zeros(4, 2), batch_sizes=(1, 4), meter=meter)
        with pytest.raises(ValueError, match="batch size"):
            measure_inference(lambda x: x, object(), meter=meter)


def test_model_size_counts_parameters_buffers_and_dtypes():
    net = torch.nn.Sequential(
        torch.nn.Linear(10, 20),  # 220 params
        torch.nn.BatchNorm1d(20),  # 40 params, buffers: 20 + 20 float32 + 1 int64
        torch.nn.Linear(20, 4).to(torch.float16),  # 84 params
    )
    net[0].weight.requires_grad_(False)  # 200 frozen
    info = model_size(net, name="tiny")
    assert set(info) == set(ModelInfo.model_fields)
    assert info["name"] == "tiny"
    assert info["parameters_total"] == 220 + 40 + 84
    assert info["parameters_trainable"] == 344 - 200
    assert info["dtypes"] == {"float32": 260, "float16": 84}
    assert info["size_bytes"] == 260 * 4 + 84 * 2 + 40 * 4 + 8
    ModelInfo.model_validate(info)

    tied = torch.nn.Module()
    tied.a = torch.nn.Linear(3, 3, bias=False)
    tied.b = tied.a  # a shared module counts once
    assert model_size(tied)["parameters_total"] == 9
