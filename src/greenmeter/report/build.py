"""Build a :class:`Report` from a :class:`~greenmeter.records.MeterSnapshot`.

The builder adds what the meter does not know (host facts, software versions, command
line, git state, carbon accounting, model facts) and derives every figure once: kWh,
facility energy, exclusive energy, efficiency, confidence, device-hours, CO2e and the
power timeline. Bad values from a sensor (NaN, negative energy) are replaced by 0 and
reported as warnings; building never raises for a measurement problem.
"""

from __future__ import annotations

import bisect
import itertools
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError

from greenmeter.core.intervals import coalesce as _coalesce
from greenmeter.core.records import PHASE_KINDS, MeterSnapshot, PhaseRecord
from greenmeter.report.confidence import ComponentFacts, phase_confidence
from greenmeter.report.efficiency import efficiency
from greenmeter.report.errors import ReportError, format_validation_error
from greenmeter.report.models import (
    J_PER_KWH,
    MAX_LATENCY_SAMPLES,
    MAX_PHASE_INTERVALS,
    MAX_TIMELINE_POINTS,
    Component,
    CounterComponent,
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

__all__ = ["DEVICE_HOUR_KINDS", "build_report", "exclusive_energy", "normalize_models"]

#: Component kinds that count towards device-hours (what embodied emissions amortise).
DEVICE_HOUR_KINDS: tuple[str, ...] = ("gpu", "cpu")
_STATUSES = ("complete", "interrupted", "failed", "running")
_TOL = 1e-6


# --------------------------------------------------------------------------------------
# small helpers


def _value(x: Any) -> str:
    """An enum's value, or the string itself."""
    return str(getattr(x, "value", x))


class _Warnings:
    def __init__(self) -> None:
        self.items: list[ReportWarning] = []

    def add(self, code: str, message: str, component: str | None = None, **kw: Any) -> None:
        self.items.append(ReportWarning(code=code, message=message, component=component, **kw))


def _clean(value: Any, what: str, warn: _Warnings, component: str | None = None) -> float:
    """A finite, non-negative float; anything else becomes 0 with a warning."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if math.isfinite(out) and out >= 0:
        return out
    if math.isfinite(out) and out > -_TOL:
        return 0.0
    warn.add(
        "report.invalid_value",
        f"{what} was {value!r}; recorded as 0. This points at a sensor fault.",
        component,
    )
    return 0.0


def _opt_float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out >= 0 else None


def _opt_int(value: Any) -> int | None:
    try:
        out = int(str(value))
    except (TypeError, ValueError):
        return None
    return out if out >= 0 else None


def _aware(value: datetime, warn: _Warnings) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        warn.add("report.naive_time", "the meter gave a naive start time; taken as UTC")
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def exclusive_energy(
    inclusive_j: float, duration_s: float, children: Sequence[tuple[float, float]]
) -> float | None:
    """A phase's own energy: inclusive minus its children's inclusive energy.

    Args:
        inclusive_j: The phase's inclusive energy (joules).
        duration_s: The phase's active time (seconds).
        children: (duration_s, inclusive energy J) of each child.

    Returns:
        None when there are no children, or when the children overlapped in time (their
        total active time exceeds the parent's: concurrent children, whose energies
        cannot be subtracted) or their energy exceeds the parent's by more than
        rounding; otherwise the difference (small rounding negatives become 0).
    """
    if not children:
        return None
    child_time = sum(d for d, _ in children)
    if child_time > duration_s * (1 + _TOL) + _TOL:
        return None
    rest = inclusive_j - sum(e for _, e in children)
    if rest >= 0:
        return rest
    if -rest <= _TOL * max(inclusive_j, 1.0):
        return 0.0
    return None


def _tags(tags: Mapping[str, Any] | None, warn: _Warnings) -> dict[str, str]:
    """Valid tags; a malformed one is left out with a warning, never failing the report."""
    from greenmeter.report.tags import MAX_TAGS, TagError, check_tags

    try:
        return check_tags(tags)
    except TagError as exc:
        warn.add("report.tags_invalid", f"tags were left out of the report: {exc}")
    out: dict[str, str] = {}
    for key, value in dict(tags or {}).items():
        try:
            out.update(check_tags({key: value}))
        except TagError:
            continue
        if len(out) >= MAX_TAGS:
            break
    return out


def normalize_models(model: Any) -> list[ModelInfo]:
    """``model`` (a ModelInfo, a dict, or a list of them, or None) as a list of ModelInfo.

    Raises:
        ReportError: a dict does not describe a valid model (the message says which field).
    """
    if model is None:
        return []
    items = list(model) if isinstance(model, (list, tuple)) else [model]
    out: list[ModelInfo] = []
    for i, item in enumerate(items):
        if isinstance(item, ModelInfo):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ReportError(
                f"model #{i} is a {type(item).__name__}; expected a ModelInfo or a dict with "
                "fields name, parameters_total, parameters_trainable, size_bytes, dtypes"
            )
        try:
            out.append(ModelInfo.model_validate(dict(item)))
        except ValidationError as exc:
            raise ReportError(
                f"model #{i} is not valid model information", format_validation_error(exc)
            ) from None
    return out


def _extra(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (extra or {}).items():
        if value is None or isinstance(value, (str, bool, int)):
            out[str(key)] = value
        elif isinstance(value, float) and math.isfinite(value):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)
    return out


# --------------------------------------------------------------------------------------
# the cumulative energy curve (meter start .. end)


class _Curve:
    """Cumulative energy per component id at the timeline's instants, monotone."""

    def __init__(self, snap: MeterSnapshot, end_mono: float, warn: _Warnings) -> None:
        start = snap.started_mono
        ids = list(snap.energy_j)
        pts: list[tuple[float, dict[str, float]]] = [(start, dict.fromkeys(ids, 0.0))]
        for point in sorted(snap.timeline, key=lambda p: p.t_mono):
            t = float(point.t_mono)
            if not math.isfinite(t) or t <= pts[-1][0] or t >= end_mono:
                continue
            pts.append((t, {i: float(point.energy_j.get(i, 0.0)) for i in ids}))
        final = {i: _clean(snap.energy_j.get(i, 0.0), f"energy of {i}", warn, i) for i in ids}
        if end_mono > pts[-1][0]:
            pts.append((end_mono, final))
        else:
            pts[-1] = (pts[-1][0], final)
        # keep each component's curve finite, non-decreasing and ending at its total
        for i in ids:
            running = 0.0
            for _, energies in pts:
                v = energies.get(i, 0.0)
                running = max(running, v if math.isfinite(v) else running)
                energies[i] = min(running, final[i])
        self.ids = ids
        self.t = [p[0] for p in pts]
        self.e = [p[1] for p in pts]

    def total_at(self, t: float, ids: Iterable[str]) -> float:
        """Interpolated cumulative energy of ``ids`` at monotonic instant ``t``."""
        ids = list(ids)
        if t <= self.t[0]:
            return 0.0
        k = bisect.bisect_right(self.t, t) - 1
        if k >= len(self.t) - 1:
            return sum(self.e[-1].get(i, 0.0) for i in ids)
        t0, t1 = self.t[k], self.t[k + 1]
        a = sum(self.e[k].get(i, 0.0) for i in ids)
        b = sum(self.e[k + 1].get(i, 0.0) for i in ids)
        return a + (b - a) * (t - t0) / (t1 - t0)

    def inner_times(self, a: float, b: float) -> list[float]:
        """Timeline instants strictly inside (a, b)."""
        lo = bisect.bisect_right(self.t, a)
        hi = bisect.bisect_left(self.t, b)
        return self.t[lo:hi]


def _segments(
    curve: _Curve,
    intervals: Sequence[tuple[float, float]],
    ids: Sequence[str],
    energy_j: float,
    to_utc: Any,
) -> list[tuple[datetime, datetime, float]]:
    """Split intervals at timeline instants; energies follow the curve, sum to energy_j."""
    pieces: list[tuple[float, float, float]] = []
    for a, b in intervals:
        if b <= a:
            continue
        cuts = [a, *curve.inner_times(a, b), b]
        for t0, t1 in itertools.pairwise(cuts):
            e = max(0.0, curve.total_at(t1, ids) - curve.total_at(t0, ids))
            pieces.append((t0, t1, e))
    if not pieces:
        return []
    shape = sum(p[2] for p in pieces)
    if shape > 0:
        scale = energy_j / shape
        out = [(to_utc(a), to_utc(b), e * scale) for a, b, e in pieces]
    else:
        span = sum(b - a for a, b, _ in pieces)
        out = [(to_utc(a), to_utc(b), energy_j * (b - a) / span) for a, b, _ in pieces]
    return out


def _downsample_reservoir(values: Sequence[float], limit: int) -> list[float]:
    if len(values) <= limit:
        return list(values)
    step = len(values) / limit
    return [values[int(k * step)] for k in range(limit)]


# --------------------------------------------------------------------------------------
# components


def _component(info: Any, host: str, status: Any, warn: _Warnings) -> Component:
    key = component_key(info.id, info.host or host)
    detail = {str(k): str(v) for k, v in dict(info.detail or {}).items()}
    method = _value(info.method)
    common: dict[str, Any] = {
        "key": key,
        "id": info.id,
        "kind": _value(info.kind),
        "scope": _value(info.scope),
        "sensor": info.sensor,
        "label": info.label,
        "host": info.host or host,
        "resolution_s": _clean(info.resolution_s, f"resolution of {key}", warn, key),
        "shared": bool(info.shared),
        "degraded": bool(status.degraded) if status else False,
        "degraded_reason": status.reason if status else None,
        "detail": detail,
    }
    period = _opt_float(info.sampling_period_s)
    if method == "sampled":
        if not period:
            period = common["resolution_s"] or 1.0
            warn.add(
                "report.missing_sampling_period",
                f"{key} is sampled but states no sampling period; {period} s assumed",
                key,
            )
        return SampledComponent(
            method="sampled",
            sampling_period_s=period,
            power_source=detail.get("power_source"),
            **common,
        )
    if method == "estimated":
        return EstimatedComponent(
            method="estimated",
            sampling_period_s=period,
            estimate_model=detail.get("model", "unspecified"),
            estimate_constants=detail.get("constants", "unspecified"),
            estimate_source=detail.get("source"),
            **common,
        )
    return CounterComponent(method="counter", sampling_period_s=period, **common)


#: The vendor of a GPU component whose details do not name one, by sensor.
_GPU_VENDORS = {"nvml": "nvidia", "amdsmi": "amd"}


def _gpu(component: Component) -> GpuInfo:
    d = component.detail
    uuid_ = d.get("uuid") or component.id.partition(":")[2] or component.id
    vendor = d.get("vendor") or _GPU_VENDORS.get(component.sensor)
    return GpuInfo(
        uuid=uuid_,
        component=component.key,
        host=component.host,
        vendor=vendor if vendor in ("nvidia", "amd") else None,
        name=d.get("name"),
        index=_opt_int(d.get("index")),
        driver_version=d.get("driver_version"),
        architecture=d.get("architecture"),
        pci_bus_id=d.get("pci_bus_id"),
        power_limit_w=_opt_float(d.get("power_limit_w")),
        mig=d.get("mig", "false").lower() == "true",
        parent_uuid=d.get("parent_uuid"),
        compute_partition=d.get("compute_partition"),
        partitions=_opt_int(d.get("partitions")),
        shared=component.shared,
    )


# --------------------------------------------------------------------------------------
# carbon


def _accountant(carbon: Any, warn: _Warnings) -> Any:
    """The carbon accountant for ``carbon`` (config, ready accountant, None or False)."""
    if carbon is False:
        return None
    if hasattr(carbon, "co2e") and hasattr(carbon, "pue"):
        acct = carbon
    else:
        try:
            from greenmeter.carbon import resolve

            acct = resolve(carbon)
        except Exception as exc:
            warn.add(
                "carbon.unavailable",
                f"carbon accounting failed ({type(exc).__name__}: {exc}); the report has "
                "energy but no CO2e. Check the carbon settings.",
            )
            return None
    return acct


def _carbon_warnings(acct: Any, warn: _Warnings) -> None:
    """Copy the accountant's warnings (after every ``co2e`` call: some arise there)."""
    if acct is None:
        return
    for item in list(getattr(acct, "warnings", []) or []):
        code, message = (item[0], item[1]) if isinstance(item, tuple) else ("carbon", str(item))
        warn.add(str(code), str(message))


def _imported() -> list[str]:
    """The ML frameworks this process has imported (what the run used, in process)."""
    import sys

    names = ("torch", "lightning", "pytorch_lightning", "transformers")
    return [n for n in names if n in sys.modules]


def _with_host(hours: Mapping[str, float], seconds: float, owner: bool) -> dict[str, float]:
    """Device-hours plus the host-hours embodied emissions use (0 for a non-owner rank)."""
    return {**hours, "host": seconds / 3600.0 if owner else 0.0}


def _pue_check(acct: Any, components: Sequence[Component], facts: Mapping[str, Any]) -> None:
    """Warn when PUE 1.0 was assumed on data-centre-class hardware."""
    from greenmeter.carbon.pue_check import datacentre_pue_warning

    info = getattr(acct, "info", None)
    if info is None or not hasattr(acct, "warn"):
        return
    gpus = [c.detail.get("name", c.label) for c in components if c.kind == "gpu"]
    found = datacentre_pue_warning(info.pue, gpus, facts.get("sockets"))
    if found is not None:
        acct.warn(*found)


def _co2e(acct: Any, segments: Any, device_hours: Mapping[str, float], warn: _Warnings) -> Any:
    if acct is None:
        return None
    try:
        return acct.co2e(segments, dict(device_hours))
    except Exception as exc:
        warn.add("carbon.failed", f"CO2e could not be computed: {type(exc).__name__}: {exc}")
        return None


# --------------------------------------------------------------------------------------
# the builder


def build_report(
    snapshot: MeterSnapshot,
    *,
    carbon: Any = None,
    model: Any = None,
    status: str | None = None,
    command: Sequence[str] | None = None,
    include_command: bool = True,
    include_git: bool = True,
    run_name: str | None = None,
    extra: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    cwd: str | None = None,
    host_info: Mapping[str, Any] | None = None,
    segments: Sequence[Mapping[str, Any]] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Report:
    """Turn a meter snapshot into a validated :class:`Report`.

    Args:
        snapshot: What the meter measured.
        carbon: A ``greenmeter.carbon.CarbonConfig`` (resolved with
            ``greenmeter.carbon.resolve``), None for the resolver's defaults (flagged in
            the report), a ready ``CarbonAccountant``, or False for no carbon accounting.
        model: Model facts: a :class:`ModelInfo`, a dict of its fields, or a list.
        status: ``complete``, ``interrupted``, ``failed`` or ``running``; default
            ``running`` for a snapshot taken before ``stop()``, else ``complete``.
        command: The command line to record; default ``sys.argv`` (secrets redacted).
        include_command: Record the command line at all.
        include_git: Record the git commit and dirty flag of ``cwd``.
        run_name: A human name for the run.
        extra: Free-form scalar facts (non-scalars are stored as strings).
        run_id: 32 hex digits; default the snapshot's ``run_id`` if it has one, else a
            new uuid4 (pass the same id to keep it across checkpoints).
        cwd: Directory whose git state is recorded (default: the current one).
        host_info: Host facts to use instead of probing this machine (``HostInfo`` fields).
        segments: Earlier segments of a resumed run (:class:`Segment` fields), whose
            energy the snapshot already includes.
        tags: Labels of the run (:mod:`greenmeter.report.tags`); malformed ones are left
            out with a warning.

    Raises:
        ReportError: ``status`` or ``model`` is invalid (measurement problems never
            raise; they become warnings).
    """
    from greenmeter import hostinfo

    warn = _Warnings()
    if status is None:
        status = "running" if snapshot.running else "complete"
    if status not in _STATUSES:
        raise ReportError(f"status {status!r} is not one of {', '.join(_STATUSES)}")
    models = normalize_models(model)
    run_id = run_id or getattr(snapshot, "run_id", None) or uuid.uuid4().hex
    if not (isinstance(run_id, str) and len(run_id) == 32):
        raise ReportError(f"run_id {run_id!r} must be 32 lowercase hex digits (uuid4().hex)")

    host = snapshot.host or "localhost"
    start_mono = float(snapshot.started_mono)
    start_utc = _aware(snapshot.started_utc, warn)
    duration_s = _clean(snapshot.duration_s, "run duration", warn)
    if snapshot.ended_mono is not None and math.isfinite(snapshot.ended_mono):
        duration_s = max(duration_s, float(snapshot.ended_mono) - start_mono)
    end_mono = start_mono + duration_s
    end_utc = start_utc + timedelta(seconds=duration_s)

    def to_utc(t_mono: float) -> datetime:
        return start_utc + timedelta(seconds=t_mono - start_mono)

    def rel_s(t_mono: float) -> float:
        return max(0.0, t_mono - start_mono)

    # components
    status_map = dict(snapshot.status or {})
    components: list[Component] = []
    key_of: dict[str, str] = {}
    for info in snapshot.components:
        if info.id in key_of:
            warn.add("report.duplicate_component", f"component {info.id} listed twice; kept once")
            continue
        comp = _component(info, host, status_map.get(info.id), warn)
        components.append(comp)
        key_of[info.id] = comp.key
    by_key = {c.key: c for c in components}
    for cid in snapshot.energy_j:
        if cid not in key_of:
            warn.add(
                "report.unknown_component",
                f"energy was reported for {cid}, which is not a listed component; left out",
                cid,
            )
    facts = {c.key: ComponentFacts(c.key, c.method, c.resolution_s, c.degraded) for c in components}
    kind_of = {c.key: c.kind for c in components}

    acct = _accountant(carbon, warn)
    pue = 1.0
    if acct is not None:
        pue = _clean(getattr(acct, "pue", 1.0), "PUE", warn) or 1.0
        if pue < 1.0:
            warn.add("carbon.pue_below_one", f"PUE {pue} is below 1; 1.0 used")
            pue = 1.0

    curve = _Curve(snapshot, end_mono, warn)

    def device_hours(keys: Iterable[str], seconds: float) -> dict[str, float]:
        hours: dict[str, float] = {}
        for key in keys:
            kind = kind_of.get(key)
            if kind in DEVICE_HOUR_KINDS:
                hours[kind] = hours.get(kind, 0.0) + seconds / 3600.0
        return hours

    # Embodied emissions charge the server once per host: the host's owner (local rank 0)
    # counts its wall time, whatever the number of CPU sockets.
    host_owner = int(snapshot.local_rank) <= 0
    device_hours.host_owner = host_owner  # type: ignore[attr-defined]
    if acct is not None and hasattr(acct, "prepare_span"):
        try:
            acct.prepare_span(start_utc, end_utc)
        except Exception as exc:
            warn.add("carbon.failed", f"live intensity could not be prepared: {exc}")

    # phases, flat first
    flat: dict[tuple[str, ...], Phase] = {}
    records: list[PhaseRecord] = list(snapshot.phases)
    for rec in records:
        path = tuple(str(p) for p in rec.path) or ("phase",)
        if path in flat:
            warn.add("report.duplicate_phase", f"phase {'/'.join(path)} listed twice; kept once")
            continue
        flat[path] = _phase(
            rec, path, key_of, curve, acct, pue, facts, to_utc, rel_s, end_mono, warn,
            device_hours,
        )  # fmt: skip

    phases = _nest(flat, warn)

    # totals
    energy = {
        key_of[i]: _clean(v, f"energy of {i}", warn, key_of[i])
        for i, v in snapshot.energy_j.items()
        if i in key_of
    }
    for key in by_key:
        energy.setdefault(key, 0.0)
    it_j = sum(energy.values())
    total_hours = device_hours(energy, duration_s)
    run_segments = _segments(curve, [(start_mono, end_mono)], list(key_of), it_j, to_utc) or [
        (start_utc, end_utc, it_j)
    ]
    totals = Totals.from_energy(
        energy_j=energy,
        kind_of=kind_of,
        estimated={k for k, c in by_key.items() if c.method == "estimated"},
        duration_s=duration_s,
        pue=pue,
        co2e=_co2e(acct, run_segments, _with_host(total_hours, duration_s, host_owner), warn),
        device_hours=total_hours,
    )

    # facts about the run's context
    try:
        facts_host = dict(host_info) if host_info is not None else hostinfo.host_facts(host)
    except Exception:
        facts_host = {"hostname": host}
    facts_host["hostname"] = host
    rank = max(0, int(snapshot.rank))
    hosts = [HostInfo(**facts_host, ranks=[rank])]
    software = SoftwareInfo(**hostinfo.software_versions(), frameworks_imported=_imported())
    cmd = None
    if include_command:
        cmd = hostinfo.redact_command(command) if command is not None else hostinfo.command_line()
    git = None
    if include_git:
        found = hostinfo.git_info(cwd)
        git = GitInfo(**found) if found else None

    if acct is not None:
        _pue_check(acct, components, facts_host)
    _carbon_warnings(acct, warn)
    for w in snapshot.warnings:
        at = _opt_float(w.at - start_mono) if w.at is not None else None
        comp = key_of.get(w.component_id, w.component_id) if w.component_id else None
        warn.add(str(w.code), str(w.message), comp, host=host, at_s=at)

    rank_info = RankInfo(
        rank=rank,
        local_rank=max(0, int(snapshot.local_rank)),
        world_size=max(1, int(snapshot.world_size)),
        host=host,
        status=status,  # type: ignore[arg-type]
        start_utc=start_utc,
        end_utc=end_utc,
        duration_s=duration_s,
        components=list(by_key),
        it_energy_j=it_j,
    )
    unavailable = [
        UnavailableSource(
            sensor=u.sensor, kind=_value(u.kind), host=host, reason=u.reason, fix=u.fix
        )
        for u in snapshot.unavailable
    ]
    try:
        return Report(
            run_id=run_id,
            run_name=run_name,
            tags=_tags(tags, warn),
            status=status,  # type: ignore[arg-type]
            start_utc=start_utc,
            end_utc=end_utc,
            duration_s=duration_s,
            hosts=hosts,
            ranks=[rank_info],
            gpus=[_gpu(c) for c in components if c.kind == "gpu"],
            software=software,
            command=cmd,
            git=git,
            components=components,
            unavailable=unavailable,
            carbon=getattr(acct, "info", None) if acct is not None else None,
            models=models,
            phases=phases,
            totals=totals,
            power_timeline=[_timeline(curve, key_of, host, rank, start_mono)],
            segments=[Segment.model_validate(dict(seg)) for seg in segments or ()],
            warnings=warn.items,
            extra=_extra(extra),
        )
    except ValidationError as exc:
        raise ReportError(
            "the meter's data did not make a valid report", format_validation_error(exc)
        ) from None


def _phase(
    rec: PhaseRecord,
    path: tuple[str, ...],
    key_of: Mapping[str, str],
    curve: _Curve,
    acct: Any,
    pue: float,
    facts: Mapping[str, ComponentFacts],
    to_utc: Any,
    rel_s: Any,
    end_mono: float,
    warn: _Warnings,
    device_hours: Any,
) -> Phase:
    """One phase (without children) from its record."""
    where = f"phase {'/'.join(path)}"
    energy = {
        key_of[i]: _clean(v, f"{where} energy of {i}", warn, key_of[i])
        for i, v in rec.energy_j.items()
        if i in key_of
    }
    ids = [i for i in rec.energy_j if i in key_of]
    it_j = sum(energy.values())
    duration = _clean(rec.duration_s, f"{where} duration", warn)
    first = rec.first_start_mono
    last = rec.last_end_mono
    intervals = [
        (float(a), float(min(b, end_mono)))
        for a, b in rec.intervals_mono
        if math.isfinite(a) and math.isfinite(b) and b >= a
    ]
    if not intervals and first is not None:
        intervals = [(first, last if last is not None else end_mono)]
    intervals = _coalesce(intervals, MAX_PHASE_INTERVALS)
    segments = _segments(curve, intervals, ids, it_j, to_utc)
    if not segments and first is not None:
        t = to_utc(first)
        segments = [(t, t, it_j)]
    hours = device_hours(energy, duration)
    peak = _opt_float(rec.peak_power_w)
    if peak is None:
        peak = _peak_from_curve(curve, intervals)
    latencies = _downsample_reservoir(
        [v for v in (_opt_float(x) for x in rec.latencies_s) if v is not None],
        MAX_LATENCY_SAMPLES,
    )
    items = Items(
        samples=_opt_int(rec.samples) if rec.samples is not None else None,
        tokens=_opt_int(rec.tokens) if rec.tokens is not None else None,
        steps=_opt_int(rec.steps) if rec.steps is not None else None,
    )
    kind = rec.kind if rec.kind in PHASE_KINDS else "custom"
    return Phase(
        name=path[-1],
        path=list(path),
        kind=kind,  # type: ignore[arg-type]
        count=max(0, int(rec.count)),
        open=bool(rec.open),
        start_utc=to_utc(first) if first is not None else None,
        end_utc=to_utc(last) if last is not None else None,
        duration_s=duration,
        intervals_s=[(rel_s(a), rel_s(b)) for a, b in intervals],
        energy_j=energy,
        it_energy_j=it_j,
        it_energy_kwh=it_j / J_PER_KWH,
        facility_energy_j=it_j * pue,
        facility_energy_kwh=it_j * pue / J_PER_KWH,
        co2e=(
            _co2e(
                acct,
                segments,
                _with_host(hours, duration, getattr(device_hours, "host_owner", True)),
                warn,
            )
            if segments
            else None
        ),
        items=items,
        efficiency=efficiency(
            it_energy_j=it_j,
            duration_s=duration,
            samples=items.samples,
            tokens=items.tokens,
            steps=items.steps,
            latencies_s=latencies,
            peak_power_w=peak,
        ),
        latency_samples_s=latencies,
        confidence=phase_confidence(
            duration_s=duration, count=rec.count, energy_j=energy, components=facts
        ),
        device_hours=hours,
        gpu_hours=hours.get("gpu", 0.0),
        attrs={str(k): str(v) for k, v in dict(rec.attrs or {}).items()},
    )


def _peak_from_curve(curve: _Curve, intervals: Sequence[tuple[float, float]]) -> float | None:
    """Highest mean power of a timeline step that overlaps the phase, else None."""
    steps: set[int] = set()
    last = len(curve.t) - 1
    for a, b in intervals:
        k = max(0, bisect.bisect_right(curve.t, a) - 1)
        while k < last and curve.t[k] < b:
            if curve.t[k + 1] > a and curve.t[k + 1] > curve.t[k]:
                steps.add(k)
            k += 1
    peak: float | None = None
    for k in steps:
        dt = curve.t[k + 1] - curve.t[k]
        power = (sum(curve.e[k + 1].values()) - sum(curve.e[k].values())) / dt
        peak = power if peak is None else max(peak, power)
    return peak


def _nest(flat: dict[tuple[str, ...], Phase], warn: _Warnings) -> list[Phase]:
    """Nest phases under their nearest recorded ancestor; fill exclusive energy."""
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {p: [] for p in flat}
    roots: list[tuple[str, ...]] = []
    for path in flat:
        parent = next((path[:n] for n in range(len(path) - 1, 0, -1) if path[:n] in flat), None)
        if parent is None:
            roots.append(path)
        else:
            children[parent].append(path)

    def build(path: tuple[str, ...]) -> Phase:
        kids = [build(c) for c in children[path]]
        node = flat[path]
        excl = exclusive_energy(
            node.it_energy_j, node.duration_s, [(k.duration_s, k.it_energy_j) for k in kids]
        )
        if kids and excl is None:
            warn.add(
                "report.exclusive_undefined",
                f"phase {'/'.join(path)}: its children overlapped in time or drew more than "
                "it did, so its exclusive energy is not given",
            )
        return node.model_copy(update={"children": kids, "exclusive_energy_j": excl})

    return [build(r) for r in roots]


def _timeline(
    curve: _Curve, key_of: Mapping[str, str], host: str, rank: int, start_mono: float
) -> PowerSeries:
    """Per-component mean power between timeline instants, at most MAX_TIMELINE_POINTS."""
    steps = [
        (curve.t[k + 1], curve.t[k + 1] - curve.t[k], k)
        for k in range(len(curve.t) - 1)
        if curve.t[k + 1] > curve.t[k]
    ]
    group = max(1, math.ceil(len(steps) / MAX_TIMELINE_POINTS))
    t_s: list[float] = []
    power: dict[str, list[float]] = {key_of[i]: [] for i in curve.ids if i in key_of}
    for g in range(0, len(steps), group):
        chunk = steps[g : g + group]
        k0, k1 = chunk[0][2], chunk[-1][2] + 1
        dt = curve.t[k1] - curve.t[k0]
        t_s.append(max(0.0, curve.t[k1] - start_mono))
        for i in curve.ids:
            if i in key_of:
                de = curve.e[k1].get(i, 0.0) - curve.e[k0].get(i, 0.0)
                power[key_of[i]].append(max(0.0, de / dt))
    return PowerSeries(host=host, rank=rank, t_s=t_s, power_w=power)
