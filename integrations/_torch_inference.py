"""Inference efficiency of a model: latency, throughput and energy per sample per batch size
(:func:`measure_inference`, re-exported by :mod:`greenmeter.integrations.torch`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from greenmeter.core.batch import batch_size as _batch_size
from greenmeter.report.efficiency import percentile

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter
    from greenmeter.records import MeterSnapshot


from greenmeter.integrations._torch_model import model_size
from greenmeter.integrations._torch_sync import install

__all__ = ["RESOLUTION_FACTOR", "InferenceResult", "InferenceStats", "measure_inference"]

#: A measured window lasts at least this many times the coarsest component resolution.
RESOLUTION_FACTOR = 10.0


@dataclass(frozen=True)
class InferenceStats:
    """Efficiency of one batch size (energies are IT energy over all measured components).

    Latency percentiles use linear interpolation between ranks (numpy's default), the
    definition the report uses (:func:`greenmeter.report.efficiency.percentile`).
    """

    batch_size: int
    repeats: int
    samples: int
    duration_s: float
    energy_j: float
    energy_by_component_j: dict[str, float]
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    samples_per_s: float
    energy_per_sample_j: float
    energy_per_batch_j: float
    mean_power_w: float
    tokens: int | None = None
    tokens_per_s: float | None = None
    energy_per_token_j: float | None = None
    target_duration_s: float = 0.0
    phase_path: tuple[str, ...] = ()


@dataclass
class InferenceResult:
    """What :func:`measure_inference` measured, one :class:`InferenceStats` per batch size.

    Attributes:
        stats: Per batch size, in the order measured.
        meter: The meter used (stopped when :func:`measure_inference` created it); its
            ``report()`` carries the same phases.
        model: :func:`model_size` of the model when it is a ``torch.nn.Module``.
        snapshot: The meter's final snapshot when :func:`measure_inference` created
            and stopped it, else None.
    """

    stats: list[InferenceStats]
    meter: Any = None
    model: dict[str, Any] | None = None
    snapshot: MeterSnapshot | None = None

    def __getitem__(self, batch_size: int) -> InferenceStats:
        for row in self.stats:
            if row.batch_size == batch_size:
                return row
        raise KeyError(
            f"batch size {batch_size} was not measured "
            f"(measured: {[r.batch_size for r in self.stats]})"
        )

    def table(self) -> str:
        """A Markdown table: batch size, latency p50/p95 (ms), samples/s, J/sample, W."""
        head = "| batch | repeats | p50 ms | p95 ms | samples/s | J/sample | mean W |"
        rows = [head, "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in self.stats:
            rows.append(
                f"| {r.batch_size} | {r.repeats} | {r.latency_p50_s * 1e3:.3f} | "
                f"{r.latency_p95_s * 1e3:.3f} | {r.samples_per_s:.1f} | "
                f"{r.energy_per_sample_j:.4g} | {r.mean_power_w:.1f} |"
            )
        return "\n".join(rows)


def _call(fn: Callable[..., Any], batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return fn(**batch)
    if isinstance(batch, tuple):
        return fn(*batch)
    return fn(batch)


def _first_tensor_device(obj: Any, depth: int = 0) -> torch.device | None:
    if isinstance(obj, torch.Tensor):
        return obj.device
    if depth > 8:
        return None
    values: Any = obj.values() if isinstance(obj, Mapping) else obj
    if isinstance(obj, (Mapping, tuple, list)):
        for v in values:
            dev = _first_tensor_device(v, depth + 1)
            if dev is not None:
                return dev
    return None


def _infer_device(model: Any, batch: Any) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return _first_tensor_device(batch) or torch.device("cpu")


def _phase_record(snap: MeterSnapshot, path: tuple[str, ...]) -> Any:
    return next((p for p in snap.phases if p.path == path), None)


def measure_inference(
    model: Callable[..., Any],
    inputs: Any,
    *,
    batch_sizes: Sequence[int] | None = None,
    warmup: int = 3,
    repeats: int | None = None,
    min_seconds: float = 1.0,
    min_energy_resolution: bool = True,
    meter: EnergyMeter | None = None,
    tokens_fn: Callable[[Any], int] | None = None,
    phase: str = "inference",
    device: torch.device | str | None = None,
) -> InferenceResult:
    """Measure latency, throughput and energy per sample of ``model`` per batch size.

    For each batch size a child phase ``(phase, "bs-<n>")`` (kind ``inference``) is
    measured: ``model`` is called on the same batch again and again under
    ``torch.inference_mode()`` (an ``nn.Module`` is put in ``eval()`` mode and restored
    afterwards) until all of these hold: at least ``repeats`` calls (when given), at
    least ``min_seconds`` elapsed, and, with ``min_energy_resolution``, at least
    :data:`RESOLUTION_FACTOR` times the coarsest ``resolution_s`` of the meter's
    components, so the energy is not within a counter step of zero. Each call is timed
    with ``time.perf_counter``; on a CUDA device the device is synchronised before and
    after the call so asynchronous kernels are counted. ``warmup`` calls before each
    batch size are not measured.

    Args:
        model: An ``nn.Module`` or any callable. A dict batch is passed as keyword
            arguments, a tuple as positional arguments, anything else as one argument.
        inputs: An example batch, or a factory ``batch_size -> batch``.
        batch_sizes: Batch sizes to measure; default ``(1,)`` for a factory, the example
            batch's own size for a batch (which must then be the only size).
        warmup: Unmeasured calls before each batch size.
        repeats: Least number of measured calls per batch size.
        min_seconds: Least measured time per batch size (seconds).
        min_energy_resolution: Also measure for at least RESOLUTION_FACTOR x the
            coarsest component resolution.
        meter: A started meter to record into; None creates one (discovering this
            host's sensors), measures, and stops it.
        tokens_fn: ``output -> int`` tokens produced per call (generation); without
            it, a model returning a plain ``int`` is taken to return its token count.
        phase: Name of the parent phase (kind ``inference``).
        device: Device to synchronise for timing; default the model's parameters' or
            the batch's device.

    Returns:
        An :class:`InferenceResult`; figures per batch size also appear in the meter's
        report (samples, tokens, latencies, ``repeats`` attribute), and the report's
        efficiency figures for these phases equal the result's (same energy, same
        latencies, same percentile definition).

    The meter gets the CUDA sync hook of :func:`install` (a no-op until CUDA is used).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be a non-negative number of calls, got {warmup!r}")
    if repeats is not None and repeats < 1:
        raise ValueError(f"repeats must be a positive number of calls or None, got {repeats!r}")
    if not (min_seconds >= 0 and math.isfinite(min_seconds)):
        raise ValueError(f"min_seconds must be a non-negative number, got {min_seconds!r}")
    factory = inputs if callable(inputs) and not isinstance(inputs, torch.Tensor) else None
    if factory is None:
        own = _batch_size(inputs)
        if own is None:
            raise ValueError(
                "the batch size of `inputs` cannot be found (no tensor with a first "
                "dimension, no len()); pass a factory `lambda batch_size: batch` instead"
            )
        if batch_sizes is not None and list(batch_sizes) != [own]:
            raise ValueError(
                f"`inputs` is one batch of size {own}, but batch_sizes={list(batch_sizes)}; "
                "pass a factory `lambda batch_size: batch` to measure other sizes"
            )
        sizes = [own]
    else:
        sizes = list(batch_sizes) if batch_sizes is not None else [1]
    for bs in sizes:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f"batch sizes must be positive integers, got {bs!r}")

    owned = meter is None
    if meter is None:
        from greenmeter.meter import EnergyMeter

        meter = EnergyMeter().start()
    install(meter)
    resolution_s = max((c.resolution_s for c in meter.components), default=0.0)
    target_s = max(min_seconds, RESOLUTION_FACTOR * resolution_s if min_energy_resolution else 0)

    module = model if isinstance(model, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    stats: list[InferenceStats] = []
    snapshot = None
    try:
        if module is not None:
            module.eval()
        with torch.inference_mode():
            for bs in sizes:
                batch = factory(bs) if factory is not None else inputs
                dev = torch.device(device) if device is not None else _infer_device(model, batch)
                stats.append(
                    _measure_one(
                        meter, model, batch, bs, dev, phase, warmup, repeats, target_s, tokens_fn
                    )
                )
    finally:
        if module is not None and was_training:
            module.train()
        if owned:
            snapshot = meter.stop()
    return InferenceResult(
        stats=stats,
        meter=meter,
        model=model_size(module) if module is not None else None,
        snapshot=snapshot,
    )


def _measure_one(
    meter: EnergyMeter,
    model: Callable[..., Any],
    batch: Any,
    bs: int,
    dev: torch.device,
    phase: str,
    warmup: int,
    repeats: int | None,
    target_s: float,
    tokens_fn: Callable[[Any], int] | None,
) -> InferenceStats:
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        _call(model, batch)
    sync()

    path = (phase, f"bs-{bs}")
    before = _phase_record(meter.snapshot(), path)
    e0 = dict(before.energy_j) if before is not None else {}
    d0 = before.duration_s if before is not None else 0.0

    latencies: list[float] = []
    tokens_total: int | None = None
    outer = meter.enter(phase, "inference")
    try:
        handle = meter.enter(path[1], "inference", parent=outer)
        try:
            handle.set_attr("batch_size", bs)
            start = time.perf_counter()
            while True:
                sync()
                t0 = time.perf_counter()
                out = _call(model, batch)
                sync()
                t1 = time.perf_counter()
                latencies.append(t1 - t0)
                n_tok = _tokens(out, tokens_fn)
                if n_tok is not None:
                    tokens_total = (tokens_total or 0) + n_tok
                done = len(latencies)
                if (repeats is None or done >= repeats) and t1 - start >= target_s:
                    break
        finally:
            meter.exit(handle)
    finally:
        meter.exit(outer)
    # bookkeeping after the measured window (it takes the meter's lock)
    handle.set_attr("repeats", len(latencies))
    for latency_s in latencies:
        handle.record_latency(latency_s)
    if latencies:
        handle.add(samples=bs * len(latencies), tokens=tokens_total, steps=len(latencies))

    meter.settle()  # GPU figures are final once the counter's next update is seen
    after = _phase_record(meter.snapshot(), path)
    energy = {k: v - e0.get(k, 0.0) for k, v in after.energy_j.items()}
    duration = after.duration_s - d0
    n = len(latencies)
    samples = bs * n
    energy_j = sum(energy.values())
    lat = sorted(latencies)
    return InferenceStats(
        batch_size=bs,
        repeats=n,
        samples=samples,
        duration_s=duration,
        energy_j=energy_j,
        energy_by_component_j=energy,
        latency_mean_s=sum(lat) / n,
        latency_p50_s=percentile(lat, 50),
        latency_p95_s=percentile(lat, 95),
        latency_p99_s=percentile(lat, 99),
        samples_per_s=samples / duration if duration > 0 else 0.0,
        energy_per_sample_j=energy_j / samples,
        energy_per_batch_j=energy_j / n,
        mean_power_w=energy_j / duration if duration > 0 else 0.0,
        tokens=tokens_total,
        tokens_per_s=(tokens_total / duration) if tokens_total and duration > 0 else None,
        energy_per_token_j=(energy_j / tokens_total) if tokens_total else None,
        target_duration_s=target_s,
        phase_path=path,
    )


def _tokens(out: Any, tokens_fn: Callable[[Any], int] | None) -> int | None:
    if tokens_fn is not None:
        value = tokens_fn(out)
    elif isinstance(out, int) and not isinstance(out, bool):
        value = out
    else:
        return None
    if isinstance(value, torch.Tensor):
        value = int(value.item())
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"token counts must be non-negative integers, got {value!r}")
    return int(value)
