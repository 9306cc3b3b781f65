"""Build a :class:`Report` from a :class:`~greenmeter.records.MeterSnapshot`.

The builder adds what the meter does not know (host facts, software versions, command
line, git state, carbon accounting, model facts) and derives every figure once: kWh,
facility energy, exclusive energy, efficiency, confidence, device-hours, CO2e and the
power timeline. Bad values from a sensor (NaN, negative energy) are replaced by 0 and
reported as warnings; building never raises for a measurement problem.

Its parts: :mod:`~greenmeter.report.inputs` (cleaning the meter's values),
:mod:`~greenmeter.report.curve` (the energy curve: time split, peaks, power timeline),
:mod:`~greenmeter.report.tree` (nesting, exclusive energy).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from greenmeter.records import PHASE_KINDS, MeterSnapshot, PhaseRecord
from greenmeter.report.confidence import ComponentFacts, phase_confidence
from greenmeter.report.curve import Curve, energy_segments, peak_from_curve, power_timeline
from greenmeter.report.efficiency import efficiency
from greenmeter.report.errors import ReportError, format_validation_error
from greenmeter.report.inputs import (
    Warnings,
    aware,
    clean,
    extra_facts,
    normalize_models,
    opt_float,
    opt_int,
    tags_of,
    value_of,
)
from greenmeter.report.models import (
    J_PER_KWH,
    MAX_LATENCY_SAMPLES,
    MAX_PHASE_INTERVALS,
    Component,
    CounterComponent,
    EstimatedComponent,
    GitInfo,
    GpuInfo,
    HostInfo,
    Items,
    Phase,
    RankInfo,
    Report,
    SampledComponent,
    Segment,
    SoftwareInfo,
    Totals,
    UnavailableSource,
    component_key,
)
from greenmeter.report.tree import exclusive_energy, nest

__all__ = ["DEVICE_HOUR_KINDS", "build_report", "exclusive_energy", "normalize_models"]

#: Component kinds that count towards device-hours (what embodied emissions amortise).
DEVICE_HOUR_KINDS: tuple[str, ...] = ("gpu", "cpu")
_STATUSES = ("complete", "interrupted", "failed", "running")


# --------------------------------------------------------------------------------------
# bounded lists


def _coalesce(intervals: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """Merge the closest neighbours until at most ``limit`` intervals remain."""
    ivs = sorted(intervals)
    while len(ivs) > limit:
        gaps = sorted(range(len(ivs) - 1), key=lambda k: ivs[k + 1][0] - ivs[k][1])
        drop = set(gaps[: len(ivs) - limit])
        merged: list[tuple[float, float]] = []
        for k, iv in enumerate(ivs):
            if merged and (k - 1) in drop:
                merged[-1] = (merged[-1][0], max(merged[-1][1], iv[1]))
            else:
                merged.append(iv)
        ivs = merged
    return ivs


def _downsample_reservoir(values: Sequence[float], limit: int) -> list[float]:
    if len(values) <= limit:
        return list(values)
    step = len(values) / limit
    return [values[int(k * step)] for k in range(limit)]


# --------------------------------------------------------------------------------------
# components


def _component(info: Any, host: str, status: Any, warn: Warnings) -> Component:
    key = component_key(info.id, info.host or host)
    detail = {str(k): str(v) for k, v in dict(info.detail or {}).items()}
    method = value_of(info.method)
    common: dict[str, Any] = {
        "key": key,
        "id": info.id,
        "kind": value_of(info.kind),
        "scope": value_of(info.scope),
        "sensor": info.sensor,
        "label": info.label,
        "host": info.host or host,
        "resolution_s": clean(info.resolution_s, f"resolution of {key}", warn, key),
        "shared": bool(info.shared),
        "degraded": bool(status.degraded) if status else False,
        "degraded_reason": status.reason if status else None,
        "detail": detail,
    }
    period = opt_float(info.sampling_period_s)
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


def _gpu(component: Component) -> GpuInfo:
    d = component.detail
    uuid_ = d.get("uuid") or component.id.partition(":")[2] or component.id
    return GpuInfo(
        uuid=uuid_,
        component=component.key,
        host=component.host,
        name=d.get("name"),
        index=opt_int(d.get("index")),
        driver_version=d.get("driver_version"),
        architecture=d.get("architecture"),
        pci_bus_id=d.get("pci_bus_id"),
        power_limit_w=opt_float(d.get("power_limit_w")),
        mig=d.get("mig", "false").lower() == "true",
        parent_uuid=d.get("parent_uuid"),
        shared=component.shared,
    )


# --------------------------------------------------------------------------------------
# carbon


def _accountant(carbon: Any, warn: Warnings) -> Any:
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


def _carbon_warnings(acct: Any, warn: Warnings) -> None:
    """Copy the accountant's warnings (after every ``co2e`` call: some arise there)."""
    if acct is None:
        return
    for item in list(getattr(acct, "warnings", []) or []):
        code, message = (item[0], item[1]) if isinstance(item, tuple) else ("carbon", str(item))
        warn.add(str(code), str(message))


def _co2e(acct: Any, segments: Any, device_hours: Mapping[str, float], warn: Warnings) -> Any:
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

    warn = Warnings()
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
    start_utc = aware(snapshot.started_utc, warn)
    duration_s = clean(snapshot.duration_s, "run duration", warn)
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
        pue = clean(getattr(acct, "pue", 1.0), "PUE", warn) or 1.0
        if pue < 1.0:
            warn.add("carbon.pue_below_one", f"PUE {pue} is below 1; 1.0 used")
            pue = 1.0

    curve = Curve(snapshot, end_mono, warn)

    def device_hours(keys: Iterable[str], seconds: float) -> dict[str, float]:
        hours: dict[str, float] = {}
        for key in keys:
            kind = kind_of.get(key)
            if kind in DEVICE_HOUR_KINDS:
                hours[kind] = hours.get(kind, 0.0) + seconds / 3600.0
        return hours

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

    phases = nest(flat, warn)

    # totals
    energy = {
        key_of[i]: clean(v, f"energy of {i}", warn, key_of[i])
        for i, v in snapshot.energy_j.items()
        if i in key_of
    }
    for key in by_key:
        energy.setdefault(key, 0.0)
    it_j = sum(energy.values())
    total_hours = device_hours(energy, duration_s)
    run_segments = energy_segments(curve, [(start_mono, end_mono)], list(key_of), it_j, to_utc) or [
        (start_utc, end_utc, it_j)
    ]
    totals = Totals.from_energy(
        energy_j=energy,
        kind_of=kind_of,
        estimated={k for k, c in by_key.items() if c.method == "estimated"},
        duration_s=duration_s,
        pue=pue,
        co2e=_co2e(acct, run_segments, total_hours, warn),
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
    software = SoftwareInfo(**hostinfo.software_versions())
    cmd = None
    if include_command:
        cmd = hostinfo.redact_command(command) if command is not None else hostinfo.command_line()
    git = None
    if include_git:
        found = hostinfo.git_info(cwd)
        git = GitInfo(**found) if found else None

    _carbon_warnings(acct, warn)
    for w in snapshot.warnings:
        at = opt_float(w.at - start_mono) if w.at is not None else None
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
            sensor=u.sensor, kind=value_of(u.kind), host=host, reason=u.reason, fix=u.fix
        )
        for u in snapshot.unavailable
    ]
    try:
        return Report(
            run_id=run_id,
            run_name=run_name,
            tags=tags_of(tags, warn),
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
            power_timeline=[power_timeline(curve, key_of, host, rank, start_mono)],
            segments=[Segment.model_validate(dict(seg)) for seg in segments or ()],
            warnings=warn.items,
            extra=extra_facts(extra),
        )
    except ValidationError as exc:
        raise ReportError(
            "the meter's data did not make a valid report", format_validation_error(exc)
        ) from None


def _phase(
    rec: PhaseRecord,
    path: tuple[str, ...],
    key_of: Mapping[str, str],
    curve: Curve,
    acct: Any,
    pue: float,
    facts: Mapping[str, ComponentFacts],
    to_utc: Any,
    rel_s: Any,
    end_mono: float,
    warn: Warnings,
    device_hours: Any,
) -> Phase:
    """One phase (without children) from its record."""
    where = f"phase {'/'.join(path)}"
    energy = {
        key_of[i]: clean(v, f"{where} energy of {i}", warn, key_of[i])
        for i, v in rec.energy_j.items()
        if i in key_of
    }
    ids = [i for i in rec.energy_j if i in key_of]
    it_j = sum(energy.values())
    duration = clean(rec.duration_s, f"{where} duration", warn)
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
    segments = energy_segments(curve, intervals, ids, it_j, to_utc)
    if not segments and first is not None:
        t = to_utc(first)
        segments = [(t, t, it_j)]
    hours = device_hours(energy, duration)
    peak = opt_float(rec.peak_power_w)
    if peak is None:
        peak = peak_from_curve(curve, intervals)
    latencies = _downsample_reservoir(
        [v for v in (opt_float(x) for x in rec.latencies_s) if v is not None],
        MAX_LATENCY_SAMPLES,
    )
    items = Items(
        samples=opt_int(rec.samples) if rec.samples is not None else None,
        tokens=opt_int(rec.tokens) if rec.tokens is not None else None,
        steps=opt_int(rec.steps) if rec.steps is not None else None,
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
        co2e=_co2e(acct, segments, hours, warn) if segments else None,
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
