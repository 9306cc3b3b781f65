"""The validated JSON report: the single source of truth for every output.

    >>> from greenmeter.report import Report, build_report, merge_reports
    >>> report = build_report(snap, model={"parameters_total": 124_000_000})  # doctest: +SKIP
    >>> report.save("run.json")  # doctest: +SKIP
    >>> Report.load("run.json").phase("fit/train").it_energy_kwh  # doctest: +SKIP

Modules: ``models`` (the schema, with ``base``, ``run_facts``, ``components`` and
``run_parts``), ``build`` (snapshot to report, with ``inputs``, ``measured``, ``curve``,
``tree`` and ``bounds``), ``efficiency`` and ``confidence`` (the derived figures, each
computed in one place), ``merge`` (per-rank, per-node or per-run reports into one, with
``merge_parts`` and ``spans``), ``io`` (the public face of reading and writing),
``reader`` and ``shape`` (bounded reads and the structural check before validation),
``limits`` (how large a report may be), ``schema`` (the generated JSON Schema),
``errors`` (readable validation errors).
"""

from __future__ import annotations

from greenmeter.report.build import build_report, exclusive_energy
from greenmeter.report.confidence import phase_confidence
from greenmeter.report.efficiency import efficiency
from greenmeter.report.errors import ReportError
from greenmeter.report.io import (
    MAX_REPORT_BYTES,
    SCHEMA_VERSIONS,
    load_report,
    parse_report,
    register_schema,
    save_report,
    validate_files,
)
from greenmeter.report.merge import merge_reports
from greenmeter.report.models import (
    SCHEMA_VERSION,
    Component,
    Confidence,
    CounterComponent,
    Efficiency,
    EstimatedComponent,
    GitInfo,
    GpuInfo,
    HostInfo,
    Items,
    ModelInfo,
    Phase,
    PowerSeries,
    RankInfo,
    Report,
    ReportWarning,
    SampledComponent,
    Segment,
    SoftwareInfo,
    Totals,
    UnavailableSource,
    component_key,
)
from greenmeter.report.schema import json_schema, write_schema

__all__ = [
    "MAX_REPORT_BYTES",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "Component",
    "Confidence",
    "CounterComponent",
    "Efficiency",
    "EstimatedComponent",
    "GitInfo",
    "GpuInfo",
    "HostInfo",
    "Items",
    "ModelInfo",
    "Phase",
    "PowerSeries",
    "RankInfo",
    "Report",
    "ReportError",
    "ReportWarning",
    "SampledComponent",
    "Segment",
    "SoftwareInfo",
    "Totals",
    "UnavailableSource",
    "build_report",
    "component_key",
    "efficiency",
    "exclusive_energy",
    "json_schema",
    "load_report",
    "merge_reports",
    "parse_report",
    "phase_confidence",
    "register_schema",
    "save_report",
    "validate_files",
    "write_schema",
]
