"""Plain PyTorch: CUDA sync at phase boundaries, model size, inference efficiency, torchrun.

* :func:`install` makes a meter wait for the measured CUDA devices at every phase
  boundary, so asynchronous kernels count in the phase that launched them.
* :func:`model_size` gives the facts the report's ``models`` list holds.
* :func:`measure_inference` measures latency, throughput and energy per sample of a
  model (or any callable) per batch size, with enough repeats for the counters'
  resolution.
* :func:`gather_reports` / :func:`distributed_report` merge the per-rank reports of a
  ``torchrun`` job into one on rank 0.

Example:
    >>> from greenmeter.integrations.torch import measure_inference, model_size
    >>> result = measure_inference(net, lambda bs: torch.randn(bs, 64), batch_sizes=(1, 32))
    ...                                                      # doctest: +SKIP
    >>> print(result.table())                                # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from greenmeter.core.batch import batch_size as _batch_size
from greenmeter.report.efficiency import percentile

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter
    from greenmeter.records import MeterSnapshot
    from greenmeter.report import Report

__all__ = [
    "RESOLUTION_FACTOR",
    "InferenceResult",
    "InferenceStats",
    "distributed_report",
    "gather_reports",
    "install",
    "measure_inference",
    "model_size",
]

#: A measured window lasts at least this many times the coarsest component resolution.
RESOLUTION_FACTOR = 10.0

# -- CUDA synchronisation at phase boundaries -------------------------------------------

_INSTALLED: weakref.WeakKeyDictionary[Any, _CudaSync] = weakref.WeakKeyDictionary()


def _cuda_index_by_uuid() -> dict[str, int]:
    """Visible CUDA device index per ``"GPU-<uuid>"`` (CUDA must be initialised)."""
    out: dict[str, int] = {}
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        if uuid is not None:
            out["GPU-" + str(uuid)] = i
    return out


class _CudaSync:
    """The sync hook: waits for the measured CUDA devices, never initialises CUDA."""

    def __init__(self, meter: Any, devices: Sequence[int | str | torch.device] | None) -> None:
        self._meter_ref = weakref.ref(meter)
        self._requested = list(devices) if devices is not None else None
        self._indices: list[int] | None = None

    def _resolve(self) -> list[int]:
        count = torch.cuda.device_count()
        by_uuid = _cuda_index_by_uuid()
        if self._requested is not None:
            out: list[int] = []
            for dev in self._requested:
                if isinstance(dev, torch.device):
                    idx = dev.index if dev.index is not None else torch.cuda.current_device()
                elif isinstance(dev, int):
                    idx = dev
                elif str(dev).startswith("cuda"):
                    idx = torch.device(str(dev)).index or 0
                else:
                    text = str(dev)
                    idx = by_uuid.get(text if text.startswith("GPU-") else "GPU-" + text, -1)
                if 0 <= idx < count and idx not in out:
                    out.append(idx)
            return out
        meter = self._meter_ref()
        wanted: list[int] = []
        if meter is not None:
            for comp in meter.components:
                if str(getattr(comp.kind, "value", comp.kind)) != "gpu":
                    continue
                uuid = dict(comp.detail).get("uuid") or dict(comp.detail).get("parent_uuid")
                idx = by_uuid.get(str(uuid)) if uuid else None
                if idx is not None and idx not in wanted:
                    wanted.append(idx)
        return wanted or list(range(count))

    def __call__(self) -> None:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return  # nothing launched on a GPU yet; never initialise CUDA from here
        if self._indices is None:
            self._indices = self._resolve()
        for idx in self._indices:
            torch.cuda.synchronize(idx)


def install(meter: EnergyMeter, devices: Sequence[int | str | torch.device] | None = None) -> None:
    """Make ``meter`` synchronise CUDA devices at every phase boundary.

    The hook runs only at phase boundaries (never per batch) and only once CUDA is
    initialised in this process: it never initialises CUDA itself. Installing twice on
    the same meter is a no-op.

    Args:
        meter: The meter to hook.
        devices: CUDA devices to wait for (indices, ``torch.device``, ``"cuda:1"`` or
            ``"GPU-<uuid>"``). Default: the visible devices whose UUIDs match the meter's
            GPU components; all visible devices when none match.
    """
    if meter in _INSTALLED:
        return
    hook = _CudaSync(meter, devices)
    _INSTALLED[meter] = hook
    meter.add_sync_hook(hook)


# -- model facts ------------------------------------------------------------------------


def model_size(module: torch.nn.Module, name: str | None = None) -> dict[str, Any]:
    """Facts about ``module`` for the report: ``meter.report(model=model_size(net))``.

    Returns a dict with the fields of :class:`greenmeter.report.ModelInfo`:
    ``name`` (``name`` or the class name), ``parameters_total`` and
    ``parameters_trainable`` (counts; shared parameters counted once),
    ``size_bytes`` (parameters and buffers, in bytes) and ``dtypes`` (parameter count
    per dtype name, e.g. ``{"float32": 1024}``).
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"model_size() needs a torch.nn.Module, got {type(module).__name__}")
    total = trainable = size_bytes = 0
    dtypes: dict[str, int] = {}
    for p in module.parameters():  # parameters() yields each shared tensor once
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
        size_bytes += n * p.element_size()
        key = str(p.dtype).removeprefix("torch.")
        dtypes[key] = dtypes.get(key, 0) + n
    for b in module.buffers():
        size_bytes += b.numel() * b.element_size()
    return {
        "name": name if name is not None else type(module).__name__,
        "parameters_total": total,
        "parameters_trainable": trainable,
        "size_bytes": size_bytes,
        "dtypes": dtypes,
    }


# -- inference efficiency ---------------------------------------------------------------


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


# -- torch.distributed ------------------------------------------------------------------


def _gather_parts(report: Report | None, group: Any, dst: int) -> list[Report] | None:
    """Every rank's report on ``dst`` (validated), None elsewhere."""
    import torch.distributed as dist

    from greenmeter.report import Report

    payload = report.model_dump_json() if report is not None else None
    rank = dist.get_rank()
    world = dist.get_world_size(group)
    received: list[Any] | None = [None] * world if rank == dst else None
    dist.gather_object(payload, received, dst=dst, group=group)
    if rank != dst:
        return None
    assert received is not None
    parts: list[Report] = []
    for i, text in enumerate(received):
        if text is None:
            warnings.warn(
                f"greenmeter: rank #{i} of the group sent no report; the merged report lacks it",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        parts.append(Report.model_validate_json(text))
    return parts


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def gather_reports(report: Report, group: Any = None, dst: int = 0) -> Report | None:
    """Merge every rank's report into one on rank ``dst``; None on the other ranks.

    A collective: every rank of ``group`` must call it. Each report travels as its JSON
    text (plain data) through ``torch.distributed.gather_object`` and is validated on
    arrival, then :func:`greenmeter.report.merge_reports` combines them (a host's CPU
    and memory counted once, each GPU once per UUID). Without an initialised process
    group the report is returned unchanged.

    With the NCCL backend, ``gather_object`` uses ``torch.cuda.current_device()``: call
    ``torch.cuda.set_device(local_rank)`` first, as torchrun scripts usually do.

    Args:
        report: This rank's report (``meter.report()``).
        group: The process group (default: the world).
        dst: Global rank that receives the merged report.

    Raises:
        greenmeter.report.ReportError: on ``dst``, when the parts do not merge.
    """
    from greenmeter.report import merge_reports

    if not _distributed():
        return report
    parts = _gather_parts(report, group, dst)
    if not parts:
        return None
    return merge_reports(parts)


def distributed_report(
    meter: EnergyMeter,
    path: str | Path | None = None,
    *,
    group: Any = None,
    dst: int = 0,
    **report_kwargs: Any,
) -> Report | None:
    """Build this rank's report, gather all ranks' on ``dst``, write the merged one there.

    A collective (call it on every rank). The meter is not stopped: call it after
    ``meter.stop()`` for a final report, or while running for an in-progress one.
    Problems never raise: a rank whose report cannot be built is left out (with a
    warning); when the parts cannot be merged, rank ``dst`` warns and writes each part
    next to ``path`` as ``<stem>.rank<N><suffix>`` instead.

    Args:
        meter: This rank's meter.
        path: Where rank ``dst`` writes the merged report (atomically); None: don't write.
        group / dst: As in :func:`gather_reports`.
        **report_kwargs: Passed to ``meter.report()`` (``model=``, ``status=``...).

    Returns:
        The merged report on rank ``dst`` (this rank's own when not distributed), None
        elsewhere or when merging failed.
    """
    from greenmeter.report import merge_reports

    try:
        report: Report | None = meter.report(**report_kwargs)
    except Exception as exc:  # every rank must still join the collective
        warnings.warn(
            f"greenmeter: building this rank's report failed ({exc!r}); it is left out",
            RuntimeWarning,
            stacklevel=2,
        )
        report = None
    if not _distributed():
        parts = [report] if report is not None else []
    else:
        gathered = _gather_parts(report, group, dst)
        if gathered is None:
            return None
        parts = gathered
    if not parts:
        return None
    try:
        merged = merge_reports(parts) if len(parts) > 1 else parts[0]
    except Exception as exc:
        warnings.warn(
            f"greenmeter: merging the ranks' reports failed ({exc!r}); "
            "writing one report per rank instead",
            RuntimeWarning,
            stacklevel=2,
        )
        if path is not None:
            target = Path(path)
            for part in parts:
                rank = min((r.rank for r in part.ranks), default=0)
                part.save(target.with_name(f"{target.stem}.rank{rank}{target.suffix}"))
        return None
    if path is not None:
        merged.save(Path(path))
    return merged
