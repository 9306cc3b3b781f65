"""The methods statement: hardware, how each component was measured, PUE, grid
intensity with source and year, totals. Plain text with citation markers; each format
renders (and escapes) it its own way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from greenmeter.render.numbers import sig
from greenmeter.render.sources import intensity_keys, pue_keys
from greenmeter.report.models import Component, Report

__all__ = [
    "Cite",
    "Part",
    "Sentence",
    "component_methods",
    "hardware",
    "intensity_words",
    "methods",
    "plain",
]

_GIB = 1024**3
_KIND_LABEL = {
    "gpu": "GPU board",
    "cpu": "CPU package",
    "dram": "DRAM",
    "ram": "RAM",
    "psys": "Platform (psys)",
}


@dataclass(frozen=True)
class Cite:
    """A citation of the source with this BibTeX key."""

    key: str


Part = str | Cite
Sentence = tuple[Part, ...]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def hardware(report: Report) -> str:
    """One sentence on the hosts, CPUs, memory and GPUs of the run."""
    parts = [_plural(len(report.hosts), "host")]
    cpus: Counter[str] = Counter()
    for host in report.hosts:
        bits = []
        if host.sockets:
            bits.append(_plural(host.sockets, "socket"))
        if host.physical_cores:
            bits.append(f"{host.physical_cores} physical cores")
        if host.logical_cores:
            bits.append(f"{host.logical_cores} logical")
        desc = host.cpu_model or "unknown model"
        if bits:
            desc += f" ({', '.join(bits)})"
        if host.ram_bytes:
            desc += f", {sig(host.ram_bytes / _GIB, 3)} GiB RAM"
        cpus[desc] += 1
    for desc, n in cpus.items():
        parts.append(f"CPU: {desc}" + (f" on each of {n} hosts" if n > 1 else ""))
    gpus: Counter[str] = Counter()
    for gpu in report.gpus:
        desc = gpu.name or "unknown GPU"
        if gpu.driver_version:
            desc += f", driver {gpu.driver_version}"
        if gpu.mig:
            desc += ", MIG slice (parent board measured)"
        gpus[desc] += 1
    if gpus:
        parts.append("GPU: " + "; ".join(f"{n} × {d}" for d, n in gpus.items()))
    else:
        parts.append("no GPU measured")
    return "Hardware: " + "; ".join(parts) + "."


def _how(c: Component) -> str:
    if c.method == "counter":
        text = f"hardware energy counter ({c.sensor}), read at every phase boundary"
        if c.sampling_period_s:
            text += f" and polled every {sig(c.sampling_period_s, 3)} s to catch counter wraps"
        return "measured: " + text
    if c.method == "sampled":
        source = f", {c.power_source}" if c.power_source else ""
        return (
            f"sampled: power read every {sig(c.sampling_period_s, 3)} s ({c.sensor}{source}) "
            "and integrated over time (trapezoid rule)"
        )
    text = f"estimated, not measured: {c.estimate_model}; constants: {c.estimate_constants}"
    if c.estimate_source:
        text += f"; source: {c.estimate_source}"
    return text


def component_methods(report: Report) -> list[str]:
    """One line per group of components measured the same way."""
    groups: dict[tuple[str, str], list[Component]] = {}
    for c in report.components:
        groups.setdefault((c.kind, _how(c)), []).append(c)
    lines = []
    for (kind, how), comps in groups.items():
        labels = sorted({c.label for c in comps})
        shown = ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")
        name = _KIND_LABEL.get(kind, kind)
        count = f"{len(comps)} × " if len(comps) > 1 else ""
        flags = []
        if any(c.shared for c in comps):
            flags.append("shared with other work")
        if any(c.degraded for c in comps):
            flags.append("degraded during the run")
        extra = f" ({'; '.join(flags)})" if flags else ""
        lines.append(f"{name} energy ({count}{shown}){extra}: {how}.")
    return lines


def _pue(report: Report) -> Sentence:
    pue = report.totals.pue
    carbon = report.carbon
    source = carbon.pue.source if carbon is not None else "no carbon accounting"
    cites = tuple(Cite(s.key) for s in pue_keys(report))
    if pue == 1.0:
        return (f"No data-centre overhead was added (PUE 1.0; {source.rstrip('.')})", *cites, ".")
    return (
        f"Facility energy is IT energy × PUE {sig(pue, 3)} ({source.rstrip('.')})",
        *cites,
        ".",
    )


def intensity_words(
    value_g_per_kwh: float,
    unit: str,
    where: str,
    year: int | None,
    basis: str,
    licence: str | None,
) -> str:
    """A grid intensity in words: ``"56.04 gCO2e/kWh for France (FRA), data year 2023,
    lifecycle basis, licence CC-BY-4.0"`` (parts that are not known are left out)."""
    bits = [f"{sig(value_g_per_kwh, 4)} {unit} for {where}"]
    if year:
        bits.append(f"data year {year}")
    if basis != "unknown":
        bits.append(f"{basis.replace('_', ' ')} basis")
    if licence:
        bits.append(f"licence {licence}")
    return ", ".join(bits)


def _intensity(report: Report) -> Sentence:
    carbon = report.carbon
    if carbon is None:
        return ("No carbon accounting was done, so no CO2e is given.",)
    i = carbon.intensity
    where = i.location_name or i.location or i.cloud_region or "an unspecified location"
    if i.location and i.location_name and i.location != i.location_name:
        where = f"{i.location_name} ({i.location})"
    if i.cloud_region:
        where += f", cloud region {i.cloud_region}"
    text = (
        "Operational CO2e (location-based) is facility energy × grid carbon intensity: "
        + intensity_words(i.value_g_per_kwh, i.unit, where, i.year, i.basis, i.licence)
        + f" (source: {i.source.rstrip('.')}; greenmeter dataset {carbon.dataset_version}, "
        f"{carbon.dataset_date})"
    )
    cites = tuple(Cite(s.key) for s in intensity_keys(report))
    out: list[Part] = [text, *cites, "."]
    if i.is_fallback:
        out.append(
            " No grid location was given, so this is a world-average fallback: "
            "the real figure may differ several-fold."
        )
    ts = carbon.time_series
    if ts is not None:
        co2e = report.totals.co2e
        eff = f", effective {sig(co2e.intensity_g_per_kwh, 4)} gCO2e/kWh" if co2e else ""
        out.append(
            f" A time-varying intensity ({ts.origin}, {ts.points} points; {ts.source}) was "
            f"applied per time bucket, weighted by energy{eff}."
        )
    return tuple(out)


def _totals(report: Report) -> str:
    t = report.totals
    text = (
        f"The run lasted {sig(t.duration_s)} s and drew {sig(t.it_energy_j)} J "
        f"({sig(t.it_energy_kwh)} kWh) of IT energy"
    )
    if t.pue != 1.0:
        text += f", {sig(t.facility_energy_kwh)} kWh at the facility"
    if t.gpu_hours:
        text += f", over {sig(t.gpu_hours)} GPU-hours"
    if t.co2e is not None:
        c = t.co2e
        text += f", for {sig(c.operational_g)} g CO2e"
        if c.operational_low_g != c.operational_high_g:
            text += f" (range {sig(c.operational_low_g)}-{sig(c.operational_high_g)} g)"
    text += "."
    if t.estimated_energy_j > 0 and t.it_energy_j > 0:
        pct = t.estimated_energy_j / t.it_energy_j * 100.0
        text += f" {sig(pct, 3)}% of this energy is a model estimate, not a measurement."
    if t.co2e is not None and t.co2e.market_g is not None:
        text += f" Market-based figure, reported separately: {sig(t.co2e.market_g)} g CO2e."
    if t.co2e is not None and t.co2e.embodied_g is not None:
        text += (
            f" Embodied (manufacturing) emissions amortised over the device-hours, reported "
            f"separately: {sig(t.co2e.embodied_g)} g CO2e."
        )
    return text


def methods(report: Report) -> list[Sentence]:
    """The methods statement as sentences of text and citations."""
    sw = report.software
    tools = [f"Python {sw.python}"]
    for name, version in (
        ("PyTorch", sw.torch),
        ("CUDA", sw.cuda),
        ("Lightning", sw.lightning or sw.pytorch_lightning),
        ("Transformers", sw.transformers),
    ):
        if version:
            tools.append(f"{name} {version}")
    out: list[Sentence] = [
        (f"Energy was measured with greenmeter {sw.greenmeter}", Cite("greenmeter"),
         f" ({', '.join(tools)}).",),
        (hardware(report),),
    ]  # fmt: skip
    out.extend((line,) for line in component_methods(report))
    if not report.components:
        out.append(("No energy source was available; every energy figure is zero.",))
    out.append(_pue(report))
    out.append(_intensity(report))
    out.append((_totals(report),))
    return out


def plain(sentence: Sentence) -> str:
    """A sentence as plain text, citations as ``[key]``."""
    return "".join(p if isinstance(p, str) else f" [{p.key}]" for p in sentence)
