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

from greenmeter.integrations._torch_distributed import distributed_report, gather_reports
from greenmeter.integrations._torch_inference import (
    RESOLUTION_FACTOR,
    InferenceResult,
    InferenceStats,
    measure_inference,
)
from greenmeter.integrations._torch_model import model_size
from greenmeter.integrations._torch_sync import install

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
