"""Efficiency figures: the models (work items, figures) and the one function that computes them.

The builder, the merge and the model's own check all call :func:`efficiency`, so a figure
has one definition. This module imports no other report model (no import loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from greenmeter.report.base import NonNegFloat, NonNegInt, _Model

__all__ = ["Efficiency", "Items", "efficiency", "percentile"]


class Items(_Model):
    """Work attributed to a phase (None where never given)."""

    samples: NonNegInt | None = None
    tokens: NonNegInt | None = None
    steps: NonNegInt | None = None


class Efficiency(_Model):
    """Efficiency figures, all from IT energy; computed by ``greenmeter.report.efficiency``."""

    energy_per_sample_j: NonNegFloat | None = None
    energy_per_token_j: NonNegFloat | None = None
    energy_per_step_j: NonNegFloat | None = None
    samples_per_s: NonNegFloat | None = None
    tokens_per_s: NonNegFloat | None = None
    steps_per_s: NonNegFloat | None = None
    latency_count: NonNegInt = 0
    latency_mean_s: NonNegFloat | None = None
    latency_p50_s: NonNegFloat | None = None
    latency_p95_s: NonNegFloat | None = None
    latency_p99_s: NonNegFloat | None = None
    mean_power_w: NonNegFloat | None = None
    peak_power_w: NonNegFloat | None = None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linear interpolation.

    The same definition as numpy's default ("linear"): position ``(n - 1) * q / 100``
    between the two nearest ranks.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def efficiency(
    *,
    it_energy_j: float,
    duration_s: float,
    samples: int | None = None,
    tokens: int | None = None,
    steps: int | None = None,
    latencies_s: Sequence[float] = (),
    peak_power_w: float | None = None,
) -> Efficiency:
    """Efficiency figures of one phase (or run) from its IT energy, time and work.

    Args:
        it_energy_j: IT energy of the phase (joules; facility overhead excluded).
        duration_s: Time the phase was active (seconds).
        samples / tokens / steps: Work items attributed to it (None or 0: no figure).
        latencies_s: Recorded per-call latencies (seconds), any order.
        peak_power_w: Highest power seen while it was active, if the sampler saw one.

    Returns:
        J per sample/token/step (energy / items), items per second (items / duration),
        latency mean and p50/p95/p99 (linear interpolation), mean power
        (energy / duration) and the peak power: as given, but never below the mean power
        (a peak seen by a sampler can miss the highest moments; the mean cannot lie
        above the highest power). A figure whose denominator is missing or zero is None.
    """
    lat = sorted(latencies_s)
    mean_power_w = _ratio(it_energy_j, duration_s)
    if peak_power_w is not None and mean_power_w is not None:
        peak_power_w = max(peak_power_w, mean_power_w)
    return Efficiency(
        energy_per_sample_j=_ratio(it_energy_j, samples),
        energy_per_token_j=_ratio(it_energy_j, tokens),
        energy_per_step_j=_ratio(it_energy_j, steps),
        samples_per_s=_ratio(samples, duration_s),
        tokens_per_s=_ratio(tokens, duration_s),
        steps_per_s=_ratio(steps, duration_s),
        latency_count=len(lat),
        latency_mean_s=(sum(lat) / len(lat)) if lat else None,
        latency_p50_s=percentile(lat, 50) if lat else None,
        latency_p95_s=percentile(lat, 95) if lat else None,
        latency_p99_s=percentile(lat, 99) if lat else None,
        mean_power_w=mean_power_w,
        peak_power_w=peak_power_w,
    )
