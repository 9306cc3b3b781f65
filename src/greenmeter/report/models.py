"""The report schema (version 2): pydantic models, the single source of truth.

Every output (Markdown, LaTeX, HTML, CSV, plots, model-card metadata) is rendered from a
:class:`Report`; nothing downstream reads the meter or the sensors.

Conventions, enforced by validation:

* units are in the field names: ``energy_j`` (joules), ``energy_kwh``, ``duration_s``,
  ``power_w``, ``co2e_g`` and so on; every such quantity is finite and non-negative;
* datetimes are timezone-aware and stored in UTC (naive datetimes are rejected; other
  offsets are converted to UTC);
* unknown fields are rejected (``extra="forbid"``), NaN and infinities are rejected;
* components are keyed by ``"<component id>@<host>"`` (:func:`component_key`), which is
  unique across the hosts of a merged report;
* the figures that depend on each other are checked on load: kWh against joules,
  facility energy against IT energy x PUE, IT energy against the sum of its components,
  phase paths against the tree, component keys against the component list.

The models live in small modules by subject (:mod:`~greenmeter.report.base`,
:mod:`~greenmeter.report.run_facts`, :mod:`~greenmeter.report.components`,
:mod:`~greenmeter.report.efficiency`, :mod:`~greenmeter.report.confidence`,
:mod:`~greenmeter.report.run_parts`); this module holds the phases, the totals and the
report with their cross-checks, and names every model, so
``from greenmeter.report.models import X`` finds any of them. It is a little over 500
lines because about 120 of them are those imports and names.

Size: about 550 lines of declarations (the top-level models and their validators);
the leaf models live in ``base``, ``components``, ``measured``, ``run_facts`` and
``spans``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from greenmeter.carbon.models import CarbonInfo, Co2eBreakdown
from greenmeter.files import write_file
from greenmeter.report.base import (
    CONFIDENCE_LEVELS,
    J_PER_KWH,
    ComponentKindName,
    ConfidenceLevel,
    ExtraValue,
    MethodName,
    Name,
    NonNegFloat,
    NonNegInt,
    PhaseKindName,
    ScopeName,
    Status,
    TagKey,
    TagValue,
    UtcDatetime,
    _Model,
    component_key,
)
from greenmeter.report.base import at_most as _at_most
from greenmeter.report.base import close as _close
from greenmeter.report.components import (
    Component,
    CounterComponent,
    EstimatedComponent,
    SampledComponent,
    UnavailableSource,
)
from greenmeter.report.confidence import Confidence
from greenmeter.report.efficiency import Efficiency, Items, efficiency
from greenmeter.report.limits import (
    INDENT_MAX_BYTES,
    MAX_LATENCY_SAMPLES,
    MAX_PHASE_DEPTH,
    MAX_PHASE_INTERVALS,
    MAX_PHASES,
    MAX_TIMELINE_POINTS,
)
from greenmeter.report.reader import load_document
from greenmeter.report.run_facts import (
    GitInfo,
    GpuInfo,
    HostInfo,
    ModelInfo,
    RankInfo,
    SoftwareInfo,
)
from greenmeter.report.run_parts import PowerSeries, ReportWarning, Segment
from greenmeter.report.tags import MAX_TAGS

__all__ = [
    "CONFIDENCE_LEVELS",
    "J_PER_KWH",
    "MAX_LATENCY_SAMPLES",
    "MAX_PHASES",
    "MAX_PHASE_DEPTH",
    "MAX_PHASE_INTERVALS",
    "MAX_TIMELINE_POINTS",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "UPGRADES",
    "Component",
    "ComponentKindName",
    "Confidence",
    "ConfidenceLevel",
    "CounterComponent",
    "Efficiency",
    "EstimatedComponent",
    "GitInfo",
    "GpuInfo",
    "HostInfo",
    "Items",
    "MethodName",
    "ModelInfo",
    "Phase",
    "PhaseKindName",
    "PowerSeries",
    "RankInfo",
    "Report",
    "ReportWarning",
    "SampledComponent",
    "ScopeName",
    "Segment",
    "SoftwareInfo",
    "Totals",
    "UnavailableSource",
    "component_key",
]

SCHEMA_VERSION = "2"


def _check_energy(obj: Any, pue: float, where: str) -> None:
    """Check the kWh conversions and facility = IT x PUE of a phase or the totals."""
    if not _close(obj.it_energy_kwh, obj.it_energy_j / J_PER_KWH):
        raise ValueError(f"{where}: it_energy_kwh does not equal it_energy_j / 3.6e6")
    if not _close(obj.facility_energy_kwh, obj.facility_energy_j / J_PER_KWH):
        raise ValueError(f"{where}: facility_energy_kwh does not equal facility_energy_j / 3.6e6")
    if not _close(obj.facility_energy_j, obj.it_energy_j * pue):
        raise ValueError(f"{where}: facility_energy_j does not equal it_energy_j x pue")


# --------------------------------------------------------------------------------------
# Phases

#: How a GPU figure between counter updates was obtained (see greenmeter.sensors.placement).
EnergyMethodName = Literal["counter", "counter+instant_power", "counter_interpolated", "sampled"]


class Phase(_Model):
    """One phase path, accumulated over its repetitions, with its children nested.

    Energies are inclusive (a parent's energy contains its children's).
    ``exclusive_energy_j`` is the parent's own share: inclusive minus the children's
    inclusive energy, given only when the children ran one after another (their total
    active time fits in the parent's); null when they overlapped or when there are none.
    """

    name: Name
    path: list[Name] = Field(
        min_length=1,
        max_length=MAX_PHASE_DEPTH,
        description="Names from the outermost phase (at most 32: phases nest at most 32 deep).",
    )
    kind: PhaseKindName
    count: NonNegInt = Field(description="How many times the phase was entered.")
    open: bool = Field(False, description="Still active (checkpoints only).")
    start_utc: UtcDatetime | None = None
    end_utc: UtcDatetime | None = None
    duration_s: NonNegFloat = Field(description="Time active: union of its intervals.")
    intervals_s: list[tuple[NonNegFloat, NonNegFloat]] = Field(
        default_factory=list,
        max_length=MAX_PHASE_INTERVALS,
        description="Active spans, seconds since the report's start_utc (bounded).",
    )
    energy_j: dict[str, NonNegFloat] = Field(
        default_factory=dict, description="Inclusive energy per component key (joules)."
    )
    it_energy_j: NonNegFloat
    it_energy_kwh: NonNegFloat
    facility_energy_j: NonNegFloat
    facility_energy_kwh: NonNegFloat
    exclusive_energy_j: NonNegFloat | None = None
    co2e: Co2eBreakdown | None = None
    items: Items = Field(default_factory=Items)
    efficiency: Efficiency = Field(default_factory=Efficiency)
    latency_samples_s: list[NonNegFloat] = Field(
        default_factory=list,
        max_length=MAX_LATENCY_SAMPLES,
        description="Recorded per-call latencies (bounded reservoir), kept for merging.",
    )
    confidence: Confidence
    energy_methods: dict[str, EnergyMethodName] = Field(
        default_factory=dict,
        description="Per GPU component resolved between counter updates: how its figure "
        "was obtained, the least precise over the phase's boundaries.",
    )
    energy_bound_j: dict[str, NonNegFloat] = Field(
        default_factory=dict,
        description="Per GPU component: error bound of its energy_j figure (joules).",
    )
    provisional: list[str] = Field(
        default_factory=list,
        description="Components whose figure is not final (no counter update seen after "
        "one of the phase's boundaries).",
    )
    unmeasured_s: dict[str, NonNegFloat] = Field(
        default_factory=dict,
        description="Per component: seconds of the phase during which it was not read "
        "(its energy over that time is left out, not estimated).",
    )
    device_hours: dict[ComponentKindName, NonNegFloat] = Field(
        default_factory=dict, description="Device-hours per component kind (gpu, cpu)."
    )
    gpu_hours: NonNegFloat = 0.0
    attrs: dict[str, str] = Field(default_factory=dict)
    children: list[Phase] = Field(default_factory=list, fail_fast=True)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Phase:
        legacy = _legacy(info)
        if self.name != self.path[-1]:
            raise ValueError("name must equal the last element of path")
        for child in self.children:
            if len(child.path) <= len(self.path) or child.path[: len(self.path)] != self.path:
                raise ValueError(
                    f"child path {'/'.join(child.path)!r} is not below {'/'.join(self.path)!r}"
                )
        if not _close(self.it_energy_j, sum(self.energy_j.values())):
            raise ValueError("it_energy_j does not equal the sum of energy_j")
        for start, end in self.intervals_s:
            if end < start:
                raise ValueError("an interval ends before it starts")
        if self.start_utc and self.end_utc and self.end_utc < self.start_utc:
            raise ValueError("end_utc is before start_utc")
        if not _close(self.gpu_hours, self.device_hours.get("gpu", 0.0)):
            raise ValueError("gpu_hours does not equal device_hours['gpu']")
        self._check_efficiency(legacy)
        if not legacy:
            for child in self.children:
                _check_within(child, self)
        return self

    def _check_efficiency(self, legacy: bool = False) -> None:
        """The efficiency figures must be what their inputs give (one definition).

        ``legacy``: a version 1 file, written before the peak power was kept at least the
        mean; its peak is taken as it is.
        """
        peak, mean = self.efficiency.peak_power_w, self.efficiency.mean_power_w
        if not legacy and peak is not None and mean is not None and not _at_most(mean, peak):
            raise ValueError(
                f"efficiency.peak_power_w ({peak:.6g} W) is below mean_power_w ({mean:.6g} W); "
                "a phase's peak power cannot be below its mean"
            )
        expected = efficiency(
            it_energy_j=self.it_energy_j,
            duration_s=self.duration_s,
            samples=self.items.samples,
            tokens=self.items.tokens,
            steps=self.items.steps,
            latencies_s=self.latency_samples_s,
            peak_power_w=self.efficiency.peak_power_w,
        )
        for name in type(expected).model_fields:
            have, want = getattr(self.efficiency, name), getattr(expected, name)
            if legacy and name == "peak_power_w":
                continue
            if (have is None) != (want is None) or (
                want is not None and not math.isclose(have, want, rel_tol=1e-6, abs_tol=1e-12)
            ):
                raise ValueError(
                    f"efficiency.{name} is {have!r}, but its inputs give {want!r} "
                    "(the figures are derived; do not edit them by hand)"
                )

    @property
    def path_str(self) -> str:
        """The path joined with '/', e.g. ``"fit/train"``."""
        return "/".join(self.path)

    def walk(self) -> Iterator[Phase]:
        """This phase and all below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


# --------------------------------------------------------------------------------------
# Run level


class Totals(_Model):
    """Whole-run totals (the run's full span, including time outside phases)."""

    duration_s: NonNegFloat
    it_energy_j: NonNegFloat = Field(description="Sum of the components' energy (joules).")
    it_energy_kwh: NonNegFloat = Field(description="it_energy_j / 3.6e6.")
    facility_energy_j: NonNegFloat = Field(description="it_energy_j x PUE (joules).")
    facility_energy_kwh: NonNegFloat = Field(description="facility_energy_j / 3.6e6.")
    energy_j: dict[str, NonNegFloat] = Field(
        default_factory=dict, description="Energy per component key (joules)."
    )
    energy_by_kind_j: dict[ComponentKindName, NonNegFloat] = Field(default_factory=dict)
    estimated_energy_j: NonNegFloat = Field(
        0.0, description="Part of it_energy_j that comes from estimated components."
    )
    pue: Annotated[float, Field(ge=1.0)] = 1.0
    co2e: Co2eBreakdown | None = None
    device_hours: dict[ComponentKindName, NonNegFloat] = Field(default_factory=dict)
    gpu_hours: NonNegFloat = 0.0

    @classmethod
    def from_energy(
        cls,
        *,
        energy_j: Mapping[str, float],
        kind_of: Mapping[str, str],
        estimated: Collection[str],
        duration_s: float,
        pue: float,
        co2e: Co2eBreakdown | None,
        device_hours: Mapping[str, float],
    ) -> Totals:
        """Totals from per-component energy (joules): every derived figure in one place.

        Args:
            energy_j: Energy per component key.
            kind_of: Component key -> kind ("cpu", "gpu"...).
            estimated: Keys of components whose method is ``estimated``.
            duration_s: The run's span.
            pue: Power usage effectiveness applied for facility energy.
            co2e: The run's CO2e, if carbon was accounted.
            device_hours: Hours per component kind.
        """
        it_j = sum(energy_j.values())
        by_kind: dict[str, float] = {}
        for key, value in energy_j.items():
            by_kind[kind_of[key]] = by_kind.get(kind_of[key], 0.0) + value
        return cls(
            duration_s=duration_s,
            it_energy_j=it_j,
            it_energy_kwh=it_j / J_PER_KWH,
            facility_energy_j=it_j * pue,
            facility_energy_kwh=it_j * pue / J_PER_KWH,
            energy_j=dict(energy_j),
            energy_by_kind_j=by_kind,  # type: ignore[arg-type]
            estimated_energy_j=sum(v for k, v in energy_j.items() if k in estimated),
            pue=pue,
            co2e=co2e,
            device_hours=dict(device_hours),  # type: ignore[arg-type]
            gpu_hours=device_hours.get("gpu", 0.0),
        )


class Report(_Model):
    """A complete energy and carbon report (schema version 2).

    Version 2 added ``tags``; version 1 files load as version 2 with no tags.
    """

    schema_version: Literal["2"] = SCHEMA_VERSION
    run_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    run_name: str | None = None
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        max_length=MAX_TAGS,
        description="User labels of the run (project, experiment, model, seed, final...), "
        "used to group runs in a footprint.",
    )
    status: Status
    start_utc: UtcDatetime
    end_utc: UtcDatetime
    duration_s: NonNegFloat
    hosts: list[HostInfo] = Field(min_length=1)
    ranks: list[RankInfo] = Field(default_factory=list)
    gpus: list[GpuInfo] = Field(default_factory=list)
    software: SoftwareInfo
    command: list[str] | None = None
    git: GitInfo | None = None
    components: list[Component] = Field(default_factory=list)
    unavailable: list[UnavailableSource] = Field(default_factory=list)
    carbon: CarbonInfo | None = None
    models: list[ModelInfo] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list, fail_fast=True)
    totals: Totals
    power_timeline: list[PowerSeries] = Field(default_factory=list)
    segments: list[Segment] = Field(
        default_factory=list,
        description="Earlier segments of a run resumed from a checkpoint, oldest first "
        "(empty for a run measured in one go).",
    )
    warnings: list[ReportWarning] = Field(default_factory=list)
    extra: dict[str, ExtraValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Report:
        if self.end_utc < self.start_utc:
            raise ValueError("end_utc is before start_utc")
        if self.segments and sum(s.it_energy_j for s in self.segments) > (
            self.totals.it_energy_j * (1 + 1e-9) + 1e-9
        ):
            raise ValueError("earlier segments hold more energy than the report's totals")
        keys = [c.key for c in self.components]
        if len(set(keys)) != len(keys):
            raise ValueError("component keys are not unique")
        known = set(keys)
        pue = self.totals.pue
        _check_energy(self.totals, pue, "totals")
        _check_co2e(self.totals.co2e, "totals")
        if not _close(self.totals.it_energy_j, sum(self.totals.energy_j.values())):
            raise ValueError("totals.it_energy_j does not equal the sum of totals.energy_j")
        if not _close(self.totals.gpu_hours, self.totals.device_hours.get("gpu", 0.0)):
            raise ValueError("totals.gpu_hours does not equal totals.device_hours['gpu']")
        _unknown(self.totals.energy_j, known, "totals.energy_j")
        seen: set[tuple[str, ...]] = set()
        for phase in self.iter_phases():
            where = f"phase {phase.path_str!r}"
            path = tuple(phase.path)
            if path in seen:
                raise ValueError(f"{where} appears twice")
            seen.add(path)
            if len(seen) > MAX_PHASES:
                raise ValueError(f"more than {MAX_PHASES} phases (a report holds at most that)")
            _unknown(phase.energy_j, known, f"{where} energy_j")
            _unknown(phase.energy_bound_j, known, f"{where} energy_bound_j")
            _unknown(dict.fromkeys(phase.energy_methods, 0.0), known, f"{where} energy_methods")
            _unknown(dict.fromkeys(phase.provisional, 0.0), known, f"{where} provisional")
            _unknown(phase.unmeasured_s, known, f"{where} unmeasured_s")
            _check_energy(phase, pue, where)
            _check_co2e(phase.co2e, where)
        for series in self.power_timeline:
            _unknown(series.power_w, known, "power_timeline power_w")
        for gpu in self.gpus:
            _unknown({gpu.component: 0.0}, known, "gpus component")
        return self

    # -- lookups -------------------------------------------------------------------

    def iter_phases(self) -> Iterator[Phase]:
        """Every phase, depth first, parents before their children."""
        for phase in self.phases:
            yield from phase.walk()

    def phase(self, path: str | Sequence[str]) -> Phase:
        """The phase at ``path``: ``"fit/train"`` or ``("fit", "train")``.

        Raises:
            KeyError: no such phase (the message lists the known paths).
        """
        wanted = tuple(path.split("/")) if isinstance(path, str) else tuple(path)
        for phase in self.iter_phases():
            if tuple(phase.path) == wanted:
                return phase
        known = ", ".join(repr(p.path_str) for p in self.iter_phases()) or "none"
        raise KeyError(f"no phase {'/'.join(wanted)!r} in the report (phases: {known})")

    def component(self, key: str) -> Component:
        """The component with this key (``"id@host"``), or with this id when unique."""
        matches = [c for c in self.components if c.key == key]
        if not matches:
            matches = [c for c in self.components if c.id == key]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(c.key for c in self.components) or "none"
        what = "several components have" if matches else "no component has"
        raise KeyError(f"{what} the key or id {key!r} (components: {known})")

    # -- files ---------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | Path, *, max_bytes: int | None = None, timeout_s: float | None = None
    ) -> Report:
        """Read and validate a report file; see :func:`greenmeter.report.io.load_report`."""
        return load_document(  # type: ignore[return-value]
            path, SCHEMA_VERSIONS, UPGRADES, max_bytes=max_bytes, timeout_s=timeout_s
        )

    def save(self, path: str | Path) -> Path:
        """Write the report atomically; see :func:`greenmeter.report.io.save_report`."""
        return write_file(path, self.to_json() + "\n")

    def to_json(self, *, indent: int | Literal["auto"] | None = "auto") -> str:
        """The report as JSON text (what :meth:`save` writes).

        Args:
            indent: Spaces per nesting level, None for compact text, or ``"auto"``:
                2 while the compact text is at most
                :data:`~greenmeter.report.limits.INDENT_MAX_BYTES` (1 MiB), compact
                beyond (indentation repeats on every line and grows with the nesting,
                so a large, deeply nested report would be several times its size).
        """
        if indent != "auto":
            return self.model_dump_json(indent=indent)
        compact = self.model_dump_json()
        if len(compact) > INDENT_MAX_BYTES:
            return compact
        return self.model_dump_json(indent=2)


def _legacy(info: ValidationInfo | None) -> bool:
    """Validating a file of an older schema version (``context={"upgraded_from": ...}``).

    Checks added since (a phase's peak power at least its mean, a child within its
    parent) are not applied to those files: they were written before the rules held.
    """
    context = info.context if info is not None else None
    return isinstance(context, dict) and context.get("upgraded_from") is not None


def _check_within(child: Phase, parent: Phase) -> None:
    """A nested phase ran inside its parent: it cannot last longer or draw more."""
    where = f"phase {child.path_str!r}"
    if not _at_most(child.duration_s, parent.duration_s):
        raise ValueError(
            f"{where} lasted {child.duration_s:.6g} s, longer than its parent's "
            f"{parent.duration_s:.6g} s; a nested phase runs inside its parent"
        )
    if not _at_most(child.it_energy_j, parent.it_energy_j):
        raise ValueError(
            f"{where} drew {child.it_energy_j:.6g} J, more than its parent's "
            f"{parent.it_energy_j:.6g} J; a nested phase runs inside its parent"
        )


def _check_co2e(co2e: Any, where: str) -> None:
    """Non-negative figures in a CO2e breakdown's mappings (the fields are checked by it)."""
    if co2e is None:
        return
    for kind, grams in (getattr(co2e, "embodied_by_kind_g", None) or {}).items():
        if not grams >= 0:
            raise ValueError(f"{where}: co2e.embodied_by_kind_g[{kind!r}] is negative")


def _unknown(mapping: dict[str, Any], known: set[str], where: str) -> None:
    missing = [k for k in mapping if k not in known]
    if missing:
        raise ValueError(f"{where} names unknown component(s): {', '.join(sorted(missing))}")


#: Known schema versions and the model that validates each (see
#: :func:`greenmeter.report.io.register_schema`).
SCHEMA_VERSIONS: dict[str, type[BaseModel]] = {SCHEMA_VERSION: Report}
#: Older versions whose files load as the current one after a change of their JSON.
#: Version 2 only added fields with defaults (``tags``), so a version 1 file needs only
#: its version renamed.
UPGRADES: dict[str, str] = {"1": SCHEMA_VERSION}
