"""Build a :class:`Report` from a :class:`~greenmeter.records.MeterSnapshot`.

The builder adds what the meter does not know (host facts, software versions, command
line, git state, carbon accounting, model facts) and derives every figure once: kWh,
facility energy, exclusive energy, efficiency, confidence, device-hours, CO2e and the
power timeline. Bad values from a sensor (NaN, negative energy) are replaced by 0 and
reported as warnings; building never raises for a measurement problem.

Its parts: :mod:`~greenmeter.report.inputs` (cleaning the meter's values),
:mod:`~greenmeter.report.measured` (components and GPUs),
:mod:`~greenmeter.report.curve` (the energy curve: time split, peaks, power timeline),
:mod:`~greenmeter.report.tree` (nesting, children within parents, exclusive energy),
:mod:`~greenmeter.report.bounds` (names, nesting and size within the reader's limits).
This module is about 580 lines: ``_build`` is one long sequence of steps that
reads best in one place.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from greenmeter.core.intervals import coalesce as _coalesce
from greenmeter.core.records import PHASE_KINDS, MeterSnapshot, PhaseRecord
from greenmeter.report.bounds import check_readable, phase_paths, timeline_points
from greenmeter.report.confidence import ComponentFacts, phase_confidence
from greenmeter.report.curve import Curve, energy_segments, peak_from_curve, power_timeline
from greenmeter.report.efficiency import efficiency
from greenmeter.report.errors import ReportError, format_validation_error, short_repr
from greenmeter.report.gpu_figures import phase_gpu_fields
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
from greenmeter.report.limits import (
    MAX_LATENCY_SAMPLES,
    MAX_PHASE_DEPTH,
    MAX_PHASE_INTERVALS,
    REPORT_INTERVALS,
    REPORT_LATENCY_SAMPLES,
    share_budget,
)
from greenmeter.report.measured import gpu_info, report_component
from greenmeter.report.models import (
    J_PER_KWH,
    Component,
    GitInfo,
    HostInfo,
    Items,
    Phase,
    RankInfo,
    Report,
    Segment,
    SoftwareInfo,
    Totals,
    UnavailableSource,
)
from greenmeter.report.tree import exclusive_energy, fit_children, nest

__all__ = ["DEVICE_HOUR_KINDS", "build_report", "exclusive_energy", "normalize_models"]

#: Component kinds that count towards device-hours (what embodied emissions amortise).
DEVICE_HOUR_KINDS: tuple[str, ...] = ("gpu", "cpu")
_STATUSES = ("complete", "interrupted", "failed", "running")


# --------------------------------------------------------------------------------------
# bounded lists


def _downsample_reservoir(values: Sequence[float], limit: int) -> list[float]:
    if len(values) <= limit:
        return list(values)
    step = len(values) / limit
    return [values[int(k * step)] for k in range(limit)]


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
        ReportError: ``status`` or ``model`` is invalid, the snapshot is beyond what a
            report holds (phases nested deeper than
            :data:`~greenmeter.report.limits.MAX_PHASE_DEPTH`, more than
            :data:`~greenmeter.report.limits.MAX_PHASES` of them), or its values do not
            make a valid report; the message says which. Nothing else is raised (no
            pydantic ``ValidationError``, no ``RecursionError``). Measurement problems
            never raise; they become warnings.
    """
    try:
        report = _build(
            snapshot, carbon=carbon, model=model, status=status, command=command,
            include_command=include_command, include_git=include_git, run_name=run_name,
            extra=extra, run_id=run_id, cwd=cwd, host_info=host_info, segments=segments,
            tags=tags,
        )  # fmt: skip
    except ReportError:
        raise
    except ValidationError as exc:
        raise ReportError(
            "the meter's data did not make a valid report", format_validation_error(exc)
        ) from None
    except RecursionError:
        raise ReportError(
            f"the phases are nested too deeply to make a report (at most {MAX_PHASE_DEPTH} levels)"
        ) from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise ReportError(
            f"the meter's data did not make a valid report: {type(exc).__name__}: "
            f"{short_repr(str(exc), 200)}"
        ) from None
    check_readable(report, "the report")
    return report


def _build(
    snapshot: MeterSnapshot,
    *,
    carbon: Any,
    model: Any,
    status: str | None,
    command: Sequence[str] | None,
    include_command: bool,
    include_git: bool,
    run_name: str | None,
    extra: Mapping[str, Any] | None,
    run_id: str | None,
    cwd: str | None,
    host_info: Mapping[str, Any] | None,
    segments: Sequence[Mapping[str, Any]] | None,
    tags: Mapping[str, Any] | None,
) -> Report:
    """:func:`build_report` without its error handling and final size check."""
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
        comp = report_component(info, host, status_map.get(info.id), start_mono, warn)
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
    facts = {
        c.key: ComponentFacts(
            c.key,
            c.method,
            c.resolution_s,
            c.degraded,
            c.degraded_at_s,
            c.degraded_reason,
            c.recovered_at_s,
        )
        for c in components
    }
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

    # Embodied emissions charge the server once per host: the host's owner (local rank 0)
    # counts its wall time, whatever the number of CPU sockets.
    host_owner = int(snapshot.local_rank) <= 0
    if acct is not None and hasattr(acct, "prepare_span"):
        try:
            acct.prepare_span(start_utc, end_utc)
        except Exception as exc:
            warn.add("carbon.failed", f"live intensity could not be prepared: {exc}")

    # phases, flat first
    records: list[PhaseRecord] = list(snapshot.phases)
    paths = phase_paths(records, warn)
    records = fit_children(records, paths, curve, end_mono, warn)
    ctx = _PhaseContext(
        key_of=key_of, curve=curve, acct=acct, pue=pue, facts=facts, to_utc=to_utc,
        rel_s=rel_s, end_mono=end_mono, warn=warn, device_hours=device_hours,
        host_owner=host_owner,
        interval_cap=share_budget(
            [max(1, len(r.intervals_mono)) for r in records], REPORT_INTERVALS,
            MAX_PHASE_INTERVALS,
        ),
        latency_cap=share_budget(
            [len(r.latencies_s) for r in records], REPORT_LATENCY_SAMPLES, MAX_LATENCY_SAMPLES
        ),
    )  # fmt: skip
    flat: dict[tuple[str, ...], Phase] = {}
    for rec, path in zip(records, paths, strict=True):
        if path in flat:
            warn.add("report.duplicate_phase", f"phase {'/'.join(path)} listed twice; kept once")
            continue
        flat[path] = _phase(rec, path, ctx)

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
            gpus=[gpu_info(c) for c in components if c.kind == "gpu"],
            software=software,
            command=cmd,
            git=git,
            components=components,
            unavailable=unavailable,
            carbon=getattr(acct, "info", None) if acct is not None else None,
            models=models,
            phases=phases,
            totals=totals,
            power_timeline=[
                power_timeline(
                    curve, key_of, host, rank, start_mono,
                    timeline_points(1 + len(key_of)),
                )
            ],
            segments=[Segment.model_validate(dict(seg)) for seg in segments or ()],
            warnings=warn.items,
            extra=extra_facts(extra),
        )  # fmt: skip


@dataclass(frozen=True)
class _PhaseContext:
    """What every phase of one report is built with."""

    key_of: Mapping[str, str]
    curve: Curve
    acct: Any
    pue: float
    facts: Mapping[str, ComponentFacts]
    to_utc: Callable[[float], datetime]
    rel_s: Callable[[float], float]
    end_mono: float
    warn: Warnings
    device_hours: Callable[[Iterable[str], float], dict[str, float]]
    #: This rank counts its host's wall time for embodied emissions (local rank 0).
    host_owner: bool
    #: Most intervals and latency samples each phase keeps (the report's budget shared).
    interval_cap: int
    latency_cap: int


def _phase(rec: PhaseRecord, path: tuple[str, ...], ctx: _PhaseContext) -> Phase:
    """One phase (without children) from its record."""
    key_of, curve, warn, pue, to_utc = ctx.key_of, ctx.curve, ctx.warn, ctx.pue, ctx.to_utc
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
        (float(a), float(min(b, ctx.end_mono)))
        for a, b in rec.intervals_mono
        if math.isfinite(a) and math.isfinite(b) and b >= a
    ]
    if not intervals and first is not None:
        intervals = [(first, last if last is not None else ctx.end_mono)]
    intervals = _coalesce(intervals, ctx.interval_cap)
    segments = energy_segments(curve, intervals, ids, it_j, to_utc)
    if not segments and first is not None:
        t = to_utc(first)
        segments = [(t, t, it_j)]
    hours = ctx.device_hours(energy, duration)
    peak = opt_float(rec.peak_power_w)
    if peak is None:
        peak = peak_from_curve(curve, intervals)
    latencies = [
        v
        for v in map(opt_float, _downsample_reservoir(rec.latencies_s, ctx.latency_cap))
        if v is not None
    ]
    items = Items(
        samples=opt_int(rec.samples) if rec.samples is not None else None,
        tokens=opt_int(rec.tokens) if rec.tokens is not None else None,
        steps=opt_int(rec.steps) if rec.steps is not None else None,
    )
    kind = rec.kind if rec.kind in PHASE_KINDS else "custom"
    rel = [(ctx.rel_s(a), ctx.rel_s(b)) for a, b in intervals]
    gpu = phase_gpu_fields(rec, key_of, ctx.facts, rel, ctx.rel_s(ctx.end_mono), warn)
    return Phase(
        name=path[-1],
        path=list(path),
        kind=kind,  # type: ignore[arg-type]
        count=max(0, int(rec.count)),
        open=bool(rec.open),
        start_utc=to_utc(first) if first is not None else None,
        end_utc=to_utc(last) if last is not None else None,
        duration_s=duration,
        intervals_s=rel,
        energy_j=energy,
        it_energy_j=it_j,
        it_energy_kwh=it_j / J_PER_KWH,
        facility_energy_j=it_j * pue,
        facility_energy_kwh=it_j * pue / J_PER_KWH,
        co2e=(
            _co2e(ctx.acct, segments, _with_host(hours, duration, ctx.host_owner), warn)
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
            duration_s=duration,
            count=rec.count,
            energy_j=energy,
            components=ctx.facts,
            end_s=ctx.rel_s(last) if last is not None and not rec.open else None,
            start_s=ctx.rel_s(first) if first is not None else None,
            methods=gpu["energy_methods"],
        ),
        **gpu,
        device_hours=hours,
        gpu_hours=hours.get("gpu", 0.0),
        attrs={str(k): str(v) for k, v in dict(rec.attrs or {}).items()},
    )
