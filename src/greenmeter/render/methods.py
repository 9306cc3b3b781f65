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
        if (gpu.partitions or 1) > 1:
            mode = f" {gpu.compute_partition}" if gpu.compute_partition else ""
            desc += f", split into {gpu.partitions}{mode} partitions (whole board measured)"
        gpus[desc] += 1
    if gpus:
        parts.append("GPU: " + "; ".join(f"{n} {d}" for d, n in gpus.items()))
    else:
        parts.append("no GPU measured")
    return "Hardware: " + "; ".join(parts) + "."


_SCOPE_LABEL = {
    "cpu_package": "CPU package",
    "dram": "DRAM",
    "platform": "platform (psys)",
    "gpu_board": "GPU board",
    "machine": "whole-machine",
    "process": "per-process",
}


def _subject(c: Component) -> str:
    """What a component's figure covers, e.g. 'CPU package energy', 'whole-machine CPU power'."""
    kind = {"cpu": "CPU", "gpu": "GPU", "dram": "DRAM", "ram": "RAM", "psys": "platform"}
    if c.method == "estimated":
        scope = _SCOPE_LABEL.get(c.scope, c.scope.replace("_", " "))
        what = kind.get(c.kind, c.kind)
        return (
            f"{scope} {what} power" if scope not in (what, f"{what} package") else f"{what} power"
        )
    return f"{_KIND_LABEL.get(c.kind, c.kind)} energy"


def _how(c: Component) -> str:
    if c.method == "counter":
        text = (
            f"was measured with the hardware energy counter ({c.sensor}), read at every "
            "phase boundary"
        )
        if c.sampling_period_s:
            text += f" and polled every {sig(c.sampling_period_s, 3)} s to catch counter wraps"
        return text
    if c.method == "sampled":
        source = f", {c.power_source}" if c.power_source else ""
        return (
            f"was measured by sampling power every {sig(c.sampling_period_s, 3)} s "
            f"({c.sensor}{source}) and integrating it over time"
        )
    text = (
        f"was estimated, not measured, with the model {c.estimate_model} ({c.estimate_constants})"
    )
    if c.estimate_source:
        text += f", constants from {c.estimate_source.rstrip('.')}"
    return text


def component_methods(report: Report) -> list[str]:
    """One sentence per group of components measured the same way."""
    groups: dict[tuple[str, str], list[Component]] = {}
    for c in report.components:
        groups.setdefault((_subject(c), _how(c)), []).append(c)
    lines = []
    for (subject, how), comps in groups.items():
        labels = sorted({c.label for c in comps})
        shown = ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")
        count = f"{len(comps)}: " if len(comps) > 1 else ""
        flags = []
        if any(c.shared for c in comps):
            flags.append("shared with other work")
        if any(c.degraded for c in comps):
            flags.append("degraded during the run")
        extra = f"; {'; '.join(flags)}" if flags else ""
        lines.append(f"{subject[0].upper()}{subject[1:]} ({count}{shown}{extra}) {how}.")
    return lines


def _pue(report: Report) -> Sentence:
    pue = report.totals.pue
    carbon = report.carbon
    cites = tuple(Cite(s.key) for s in pue_keys(report))
    if carbon is None:
        return ("No carbon accounting was done.",)
    if pue == 1.0 and carbon.pue.resolved_from == "default":
        return (
            "No data-centre overhead was counted: no PUE was given, so a PUE of 1.0 was assumed.",
        )
    source = carbon.pue.source.rstrip(".")
    return (
        f"Facility energy is the IT energy multiplied by a power usage effectiveness (PUE) of "
        f"{sig(pue, 3)} ({source})",
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
    """A grid intensity in words: ``"44.18 gCO2e/kWh for France (FRA), data year 2024,
    lifecycle basis, licence CC-BY-4.0"`` (parts that are not known are left out)."""
    bits = [f"{sig(value_g_per_kwh, 4)} {unit} for {where}"]
    if year:
        bits.append(f"data year {year}")
    if basis not in ("unknown", "user"):
        bits.append(f"{basis.replace('_', ' ')} basis")
    if licence:
        bits.append(f"licence {licence}")
    return ", ".join(bits)


def _gas_words(gas: str) -> str:
    return "CO2 only" if gas == "CO2" else "CO2e"


def _intensity(report: Report) -> Sentence:
    carbon = report.carbon
    if carbon is None:
        return ("No CO2e is given.",)
    i = carbon.intensity
    ts = carbon.time_series
    cites = tuple(Cite(s.key) for s in intensity_keys(report))
    basis = {"lifecycle": "lifecycle", "direct_combustion": "direct-combustion"}.get(i.basis)
    if ts is not None:
        co2e = report.totals.co2e
        eff = (
            f"; its energy-weighted mean over the run was {sig(co2e.intensity_g_per_kwh, 4)} "
            "g per kWh"
            if co2e is not None
            else ""
        )
        zone = f" for zone {ts.zone}" if ts.zone else ""
        tb = {"lifecycle": "lifecycle", "direct_combustion": "direct-combustion"}.get(ts.basis)
        cover = (
            " The series did not cover the whole run; energy outside it was charged at "
            + (
                "the nearest point's value."
                if ts.out_of_range == "nearest"
                else "the static value."
            )
            if ts.covers_run is False
            else ""
        )
        return (
            f"Operational (location-based) emissions were computed per time bucket from a "
            f"time-varying grid carbon intensity{zone} ({ts.points} points from "
            f"{ts.source.split(' (')[0]}{', ' + tb + ' basis' if tb else ''}), weighted by the "
            f"energy drawn in each bucket{eff}",
            *cites,
            ".",
            cover,
        )
    where = i.location_name or i.location or "an unspecified location"
    if i.cloud_region:
        where = f"cloud region {i.cloud_region} ({where})"
    if i.is_fallback:
        return (
            f"No grid location was given, so a fallback was used: the world average grid "
            f"carbon intensity of {sig(i.value_g_per_kwh, 4)} g {_gas_words(i.gas)} per kWh "
            f"for {i.year}" + (f" ({basis} basis)" if basis else ""),
            *cites,
            "; the real figure for the grid used may differ several-fold.",
        )
    year = f" for {i.year}" if i.year else ""
    whose = "the provider's own figure" if i.provider_figure else "the grid figure"
    bits = [f"{basis} basis" if basis else None, _gas_words(i.gas)]
    if i.basis == "user":
        bits = ["figure supplied by the user", _gas_words(i.gas)]
    text = (
        f"Operational (location-based) emissions are the facility energy multiplied by "
        f"{whose} for {where}: {sig(i.value_g_per_kwh, 4)} g per kWh{year} "
        f"({', '.join(b for b in bits if b)})"
    )
    return (text, *cites, f" (greenmeter carbon dataset {carbon.dataset_version}).")


def _range(low: float, high: float) -> str:
    a, b = sig(low), sig(high)
    return "" if a == b else f" (range {a} to {b} g)"


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
    carbon = report.carbon
    if t.co2e is not None:
        c = t.co2e
        gas = "CO2" if carbon is not None and carbon.intensity.gas == "CO2" else "CO2e"
        text += f", for {sig(c.operational_g)} g {gas}"
        text += _range(c.operational_low_g, c.operational_high_g)
    text += "."
    if t.estimated_energy_j > 0 and t.it_energy_j > 0:
        pct = t.estimated_energy_j / t.it_energy_j * 100.0
        text += f" {sig(pct, 3)}% of this energy is a model estimate, not a measurement."
    market = carbon.market if carbon is not None else None
    if t.co2e is not None and t.co2e.market_g is not None:
        text += f" The market-based figure, reported separately, is {sig(t.co2e.market_g)} g CO2e"
        if market is not None and market.uncovered_basis == "residual_mix":
            text += (
                f"; the share not covered by contracts was charged at the residual mix of "
                f"{sig(market.uncovered_factor_g_per_kwh or 0.0)} g per kWh."
            )
        elif market is not None and market.uncovered_basis == "location_average":
            text += (
                "; no residual-mix factor was available, so the share not covered by "
                "contracts was charged at the location-based average, which understates it "
                "where the residual mix is higher."
            )
        else:
            text += "."
    if t.co2e is not None and t.co2e.embodied_g is not None:
        text += (
            f" Embodied (manufacturing) emissions, amortised over the run's wall time once per "
            f"host for the server and once per GPU board, are reported separately: "
            f"{sig(t.co2e.embodied_g)} g CO2e."
        )
    return text


#: Frameworks named in the methods statement when the measured process imported them.
_FRAMEWORKS = (
    ("torch", "PyTorch", "torch"),
    ("lightning", "Lightning", "lightning"),
    ("pytorch_lightning", "PyTorch Lightning", "pytorch_lightning"),
    ("transformers", "Transformers", "transformers"),
)


def _tools(report: Report) -> list[str]:
    sw = report.software
    tools = [f"Python {sw.python}"]
    used = set(sw.frameworks_imported or ())
    for module, name, field in _FRAMEWORKS:
        version = getattr(sw, field, None)
        if module in used and version:
            tools.append(f"{name} {version}")
            if module == "torch" and sw.cuda and report.gpus:
                tools.append(f"CUDA {sw.cuda}")
    return tools


def methods(report: Report) -> list[Sentence]:
    """The methods statement as sentences of text and citations."""
    out: list[Sentence] = [
        (f"Energy was measured with greenmeter {report.software.greenmeter}", Cite("greenmeter"),
         f" ({', '.join(_tools(report))}).",),
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
