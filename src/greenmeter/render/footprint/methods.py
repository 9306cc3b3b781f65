"""The footprint's methods paragraph: what the totals include and exclude, how energy
and CO2e were obtained, and the sources of the intensities the runs used.

Plain text with citation markers (:class:`~greenmeter.render.methods.Cite`), like the
single-report paragraph; each format renders and escapes it its own way.
"""

from __future__ import annotations

from greenmeter.footprint.models import FootprintSummary, IntensitySource
from greenmeter.footprint.summarize import citations
from greenmeter.render.footprint.rows import co2e_unit
from greenmeter.render.methods import Cite, Part, Sentence, intensity_words
from greenmeter.render.numbers import sig
from greenmeter.render.sources import Source, greenmeter_source

__all__ = ["cited_sources", "footprint_methods", "source_text"]


def _run_year(summary: FootprintSummary) -> int:
    last = summary.total.last_end_utc
    return last.year if last is not None else summary.generated_utc.year


def cited_sources(summary: FootprintSummary) -> list[Source]:
    """greenmeter, then the works behind every intensity and PUE used; each once."""
    versions = summary.greenmeter_versions or [summary.greenmeter]
    out = {"greenmeter": greenmeter_source(", ".join(versions), _run_year(summary))}
    for src in summary.sources:
        for cite in citations(src, _run_year(summary)):
            out.setdefault(cite.key, cite)
    return list(out.values())


def source_text(src: IntensitySource, *, with_pue: bool = True) -> str:
    """One carbon setting in words: intensity value, place, year, basis, source, PUE."""
    where = src.location or src.cloud_region or "an unspecified location"
    if src.cloud_region and src.location:
        where += f", cloud region {src.cloud_region}"
    text = intensity_words(
        src.intensity_g_per_kwh, src.unit, where, src.data_year, src.basis, src.licence
    )
    text += f" (source: {src.source.rstrip('.')})"
    if src.is_fallback:
        text += ", a world-average fallback: no location was given"
    if src.time_series_origin:
        text += (
            f"; a time-varying intensity ({src.time_series_origin}: {src.time_series_source}) "
            "was applied per time bucket"
        )
    if not with_pue:
        return text
    return text + f"; PUE {sig(src.pue, 3)} ({src.pue_source.rstrip('.')})"


def _status(summary: FootprintSummary) -> str:
    r = summary.total.runs
    return (
        f"{r.total} run(s) ({r.complete} completed, {r.failed} failed, {r.interrupted} "
        f"interrupted, {r.running} still running or killed)"
    )


def _span(summary: FootprintSummary) -> str:
    t = summary.total
    if t.first_start_utc is None or t.last_end_utc is None:
        return ""
    first, last = t.first_start_utc.strftime("%Y-%m-%d"), t.last_end_utc.strftime("%Y-%m-%d")
    return f" on {first} (UTC)" if first == last else f" between {first} and {last} (UTC)"


def _filters(summary: FootprintSummary) -> str:
    f = summary.filters
    bits = []
    if f.since_utc is not None:
        bits.append(f"started at or after {f.since_utc.isoformat()}")
    if f.until_utc is not None:
        bits.append(f"started before {f.until_utc.isoformat()}")
    for key, values in f.where.items():
        bits.append(f"tag {key} = {' or '.join(values)}")
    return f", selected as runs that {' and '.join(bits)}" if bits else ""


def _scope(summary: FootprintSummary) -> list[Sentence]:
    files = summary.files
    versions = ", ".join(summary.greenmeter_versions) or summary.greenmeter
    span = _span(summary)
    out: list[Sentence] = [
        (
            f"The totals cover {_status(summary)}{' that started' + span if span else ''}, "
            f"measured with greenmeter {versions}",
            Cite("greenmeter"),
            f", from {files.reports} report file(s){_filters(summary)}.",
        ),
        (
            "They include every run that left a report: preliminary runs, sweeps, failed and "
            "interrupted runs as well as the final ones. A run's repeated checkpoints are "
            "counted once (the latest) and the reports of its ranks and nodes are merged, "
            f"each device counted once ({files.checkpoints_dropped} older copies left out, "
            f"{files.parts_merged} per-rank or per-node reports merged).",
        ),
    ]
    exclude = (
        "They exclude runs that ended before writing their first report (a crash before the "
        "first checkpoint leaves no file), the energy after the last checkpoint of runs "
        "still marked running, and what the measured components do not cover (networking, "
        "storage, other machines, cooling beyond the PUE)"
    )
    if files.skipped:
        exclude += f"; {files.skipped} file(s) that are not valid greenmeter reports were skipped"
    out.append((exclude + ".",))
    return out


def _pue_cites(summary: FootprintSummary) -> list[Part]:
    values: dict[float, list[IntensitySource]] = {}
    for src in summary.sources:
        values.setdefault(src.pue, []).append(src)
    if not values:
        return []
    parts: list[Part] = [" (PUE "]
    for n, (pue, srcs) in enumerate(sorted(values.items())):
        if n:
            parts.append("; ")
        parts.append(f"{sig(pue, 3)}: {srcs[0].pue_source.rstrip('.')}")
        keys = [k for s in srcs for k in s.citation_keys if k.startswith("uptime")]
        parts.extend(Cite(k) for k in dict.fromkeys(keys))
    parts.append(")")
    return parts


def _energy(summary: FootprintSummary) -> list[Sentence]:
    t = summary.total
    text = (
        f"IT energy, the sum of each run's measured components (GPU boards, CPU packages, "
        f"DRAM, ...), is {sig(t.it_energy_kwh)} kWh"
    )
    if t.estimated_share:
        text += (
            f", of which {sig(t.estimated_share * 100.0, 3)}% is a model estimate rather than "
            "a hardware measurement"
        )
    else:
        text += ", all of it measured (hardware counters or sampled power)"
    out: list[Sentence] = [
        (
            text + f". Facility energy, {sig(t.facility_energy_kwh)} kWh, is each run's IT "
            "energy times the power usage effectiveness it used",
            *_pue_cites(summary),
            ".",
        )
    ]
    if t.gpu_hours > 0:
        models = "; ".join(f"{name}: {sig(h)}" for name, h in t.gpu_hours_by_model.items())
        out.append(
            (
                f"The runs took {sig(t.wall_time_s / 3600.0)} hours of wall time and "
                f"{sig(t.gpu_hours)} GPU-hours ({models}).",
            )
        )
    else:
        out.append((f"The runs took {sig(t.wall_time_s / 3600.0)} hours of wall time on CPUs.",))
    return out


def _co2e(summary: FootprintSummary) -> list[Sentence]:
    t = summary.total
    unit, grams = co2e_unit(summary)
    if not t.runs_with_co2e:
        return [("No run carried carbon accounting, so no CO2e is given.",)]
    text = f"Location-based CO2e, {sig(t.co2e_location_g / grams)} {unit}"
    if t.co2e_location_low_g != t.co2e_location_high_g:
        text += (
            f" (range {sig(t.co2e_location_low_g / grams)}-"
            f"{sig(t.co2e_location_high_g / grams)} {unit})"
        )
    parts: list[Part] = [text + ", is each run's facility energy times its grid carbon intensity: "]
    by_intensity: dict[str, list[IntensitySource]] = {}
    for src in summary.sources:
        by_intensity.setdefault(source_text(src, with_pue=False), []).append(src)
    for n, (words, srcs) in enumerate(by_intensity.items()):
        if n:
            parts.append("; ")
        ids = ", ".join(s.id for s in srcs)
        parts.append(f"{words} ({ids}: {sum(s.runs for s in srcs)} run(s))")
        keys = [k for s in srcs for k in s.citation_keys if not k.startswith("uptime")]
        parts.extend(Cite(k) for k in dict.fromkeys(keys))
    parts.append(".")
    missing = t.runs.total - t.runs_with_co2e
    if missing:
        parts.append(
            f" {missing} run(s) had no carbon accounting; their energy is in the totals above "
            "but not in any CO2e figure."
        )
    out: list[Sentence] = [tuple(parts)]
    apart = []
    if t.co2e_market_g is not None:
        apart.append(f"market-based CO2e ({sig(t.co2e_market_g / grams)} {unit} over "
                     f"{t.runs_with_market} run(s))")  # fmt: skip
    if t.co2e_embodied_g is not None:
        apart.append(f"embodied (manufacturing) emissions ({sig(t.co2e_embodied_g / grams)} "
                     f"{unit} over {t.runs_with_embodied} run(s))")  # fmt: skip
    if apart:
        text = " and ".join(apart)
        out.append(
            (
                text[0].upper() + text[1:] + " are reported separately and never added to the "
                "location-based figure.",
            )
        )
    else:
        out.append(
            (
                "No run recorded market-based or embodied (manufacturing) emissions; neither is "
                "included.",
            )
        )
    return out


def footprint_methods(summary: FootprintSummary) -> list[Sentence]:
    """The methods paragraph as sentences of text and citations."""
    return [*_scope(summary), *_energy(summary), *_co2e(summary)]
