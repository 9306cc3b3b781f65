"""Hugging Face model card metadata: the ``co2_eq_emissions`` YAML block.

Follows the Hub's model card specification (``huggingface.co/docs/hub/model-cards-co2``):
``emissions`` in grams of CO2e, ``source``, ``training_type`` ("pre-training" or
"fine-tuning"), ``geographical_location`` and ``hardware_used``.

``emissions`` counts the training phases (top-level phases of kind ``fit`` or ``train``)
when the report has any, else the whole run; several reports are added up (one model
trained over several runs). ``training_type`` comes from the report's
``extra["training_type"]`` when set, and is left out (with a comment) otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from greenmeter.render.escape import yaml_string
from greenmeter.render.numbers import sig
from greenmeter.report.models import Report

__all__ = ["TRAINING_KINDS", "hf_card", "training_co2e_g", "yaml_string"]

#: Top-level phase kinds counted as training.
TRAINING_KINDS = ("fit", "train")


def training_co2e_g(report: Report) -> tuple[float, str]:
    """(grams CO2e, what was counted) for one report."""
    phases = [p for p in report.phases if p.kind in TRAINING_KINDS and p.co2e is not None]
    if phases:
        names = ", ".join(p.path_str for p in phases)
        return sum(p.co2e.operational_g for p in phases if p.co2e), f"training phases ({names})"
    if report.totals.co2e is None:
        return 0.0, "no CO2e computed"
    return report.totals.co2e.operational_g, "whole run"


def _location(report: Report) -> str:
    if report.carbon is None:
        return "unknown"
    i = report.carbon.intensity
    if i.is_fallback:
        return "unknown (world-average grid intensity used)"
    parts = [p for p in (i.location_name, i.cloud_region) if p]
    if not parts and i.location:
        parts = [i.location]
    return ", ".join(parts) or "unknown"


def _hardware(reports: Sequence[Report]) -> str:
    gpus: Counter[str] = Counter()
    cpus: Counter[str] = Counter()
    for report in reports:
        seen_gpu = set()
        for gpu in report.gpus:
            if gpu.uuid not in seen_gpu:
                seen_gpu.add(gpu.uuid)
                gpus[gpu.name or "GPU"] += 1
        for host in report.hosts:
            if host.cpu_model:
                cpus[host.cpu_model] += max(1, host.sockets or 1)
    if len(reports) > 1:  # the same machine measured in several runs: count it once
        gpus = Counter({k: max(1, v // len(reports)) for k, v in gpus.items()})
        cpus = Counter({k: max(1, v // len(reports)) for k, v in cpus.items()})
    items = [f"{n} x {name}" for name, n in gpus.items()]
    items += [f"{n} x {name} (CPU)" for name, n in cpus.items()]
    return ", ".join(items) or "unknown"


def _source(reports: Sequence[Report], counted: list[str]) -> str:
    r = reports[0]
    methods = sorted({c.method for rep in reports for c in rep.components})
    text = f"greenmeter {r.software.greenmeter} ({'/'.join(methods) or 'no'} energy"
    if r.carbon is not None:
        i = r.carbon.intensity
        year = f" {i.year}" if i.year else ""
        text += f"; grid intensity {sig(i.value_g_per_kwh)} {i.unit}{year}"
        text += f"; PUE {sig(r.totals.pue, 3)}"
    text += f"; counted: {'; '.join(counted)})"
    return text


def hf_card(reports: Sequence[Report]) -> str:
    """The model card metadata block, with ``---`` fences, ready for a README.md."""
    total = 0.0
    counted = []
    for report in reports:
        grams, what = training_co2e_g(report)
        total += grams
        counted.append(what)
    training_type = next(
        (str(r.extra["training_type"]) for r in reports if r.extra.get("training_type")), None
    )
    lines = [
        "---",
        "co2_eq_emissions:",
        f"  emissions: {_yaml_number(total)}",
        f"  source: {yaml_string(_source(reports, counted))}",
    ]
    if training_type:
        lines.append(f"  training_type: {yaml_string(training_type)}")
    else:
        lines.append(
            '  # training_type: "pre-training" or "fine-tuning" (record it with '
            "extra={'training_type': ...})"
        )
    lines += [
        f"  geographical_location: {yaml_string(_location(reports[0]))}",
        f"  hardware_used: {yaml_string(_hardware(reports))}",
        "---",
        "",
    ]
    return "\n".join(lines)


def _yaml_number(value: float) -> str:
    """Grams with 6 decimals in plain notation (YAML 1.1 reads ``8e-05`` as a string)."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return text if "." in text else text + ".0"
