"""The data sources a report relies on, as citations (BibTeX and short labels).

Which sources apply is read from the report's carbon block: the bundled source of the
grid intensity used (its ``source_id``: Ember, EPA eGRID, DCCEEW, Electricity Maps, MEE,
Google), a live time series (Electricity Maps), the PUE preset's source (Uptime
Institute), the embodied defaults' study, and greenmeter itself, always. A figure used
gets exactly one entry; a figure not used (the static value under a series) gets none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greenmeter.report.models import Report


__all__ = [
    "Source",
    "bibtex",
    "bibtex_entries",
    "cited_sources",
    "embodied_keys",
    "greenmeter_source",
    "intensity_keys",
    "intensity_sources",
    "pue_keys",
    "pue_sources",
]


@dataclass(frozen=True)
class Source:
    """One citable source.

    Attributes:
        key: BibTeX key.
        label: Short text for formats without a bibliography.
        url: Where the source can be found.
        entry: The BibTeX entry.
    """

    key: str
    label: str
    url: str
    entry: str


def _bib_text(text: str) -> str:
    """Text safe inside a BibTeX field: braces balanced away, LaTeX specials escaped."""
    out = []
    for ch in text:
        if ch in "{}":
            continue
        if ch in "&%$#_":
            out.append("\\" + ch)
        elif ch in "\\~^":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _year(text: str | None, default: int | None = None) -> int | None:
    found = re.findall(r"\b(19[5-9]\d|20\d\d)\b", text or "")
    return int(found[0]) if found else default


def greenmeter_source(version: str, year: int) -> Source:
    """The citation of greenmeter itself, ``version`` as recorded, dated ``year``."""
    url = "https://greenmeter.readthedocs.io"
    entry = (
        "@misc{greenmeter,\n"
        "  author = {{greenmeter authors}},\n"
        "  title = {{greenmeter}: energy and carbon accounting for machine learning},\n"
        f"  note = {{Software, version {_bib_text(version)}}},\n"
        f"  year = {{{year}}},\n"
        f"  howpublished = {{\\url{{{url}}}}}\n"
        "}"
    )
    return Source("greenmeter", f"greenmeter {version}", url, entry)


def _greenmeter(report: Report) -> Source:
    return greenmeter_source(report.software.greenmeter, report.start_utc.year)


#: BibTeX keys of the bundled carbon sources (one entry each).
_KEYS = {
    "ember-yearly": "ember_yearly",
    "ember-world": "ember_yearly",
    "epa-egrid2023-state": "epa_egrid2023",
    "epa-egrid2022-subregion": "epa_egrid2022",
    "dcceew-nga-2024": "dcceew_nga2024",
    "electricitymaps-yearly-2024": "electricitymaps_yearly2024",
    "mee-china-2023": "mee_china2023",
    "google-region-carbon-2024": "google_region_carbon2024",
}


def _dataset_source(source_id: str, year: int | None) -> Source | None:
    """The citation of a bundled carbon source, from its metadata."""
    from greenmeter.carbon.source_meta import SOURCES

    meta = SOURCES.get(source_id)
    key = _KEYS.get(source_id)
    if meta is None or key is None:
        return None
    y = meta.get("year", year)
    url = meta["url"]
    title = meta["title"]
    entry = (
        f"@misc{{{key},\n"
        f"  author = {{{{{_bib_text(meta['publisher'])}}}}},\n"
        f"  title = {{{{{_bib_text(title)}}}}},\n"
        + (f"  year = {{{y}}},\n" if y else "")
        + f"  note = {{{_bib_text(meta['licence'])}}},\n"
        f"  howpublished = {{\\url{{{url}}}}}\n"
        "}"
    )
    label = f"{meta['publisher']}, {title}" + (f" ({y})" if y else "")
    return Source(key, label, url, entry)


def _electricitymaps(year: int) -> Source:
    url = "https://www.electricitymaps.com"
    return Source(
        "electricitymaps",
        "Electricity Maps, carbon intensity data",
        url,
        "@misc{electricitymaps,\n"
        "  author = {{Electricity Maps}},\n"
        "  title = {{Electricity Maps}: carbon intensity of electricity consumption},\n"
        f"  year = {{{year}}},\n"
        f"  howpublished = {{\\url{{{url}}}}}\n"
        "}",
    )


def _uptime(source: str) -> Source:
    y = _year(source, 2024)
    url = "https://uptimeinstitute.com/resources/research-and-reports"
    return Source(
        f"uptime_{y}",
        f"Uptime Institute Global Data Center Survey {y}",
        url,
        f"@misc{{uptime_{y},\n"
        "  author = {{Uptime Institute}},\n"
        f"  title = {{{{Uptime Institute Global Data Center Survey {y}}}}},\n"
        f"  year = {{{y}}},\n"
        f"  howpublished = {{\\url{{{url}}}}}\n"
        "}",
    )


def intensity_sources(
    source_id: str | None,
    data_year: int | None,
    *,
    series_origin: str | None = None,
    series_source: str | None = None,
    run_year: int,
) -> list[Source]:
    """Sources behind a grid intensity, from plain values (empty for a user figure).

    Args:
        source_id: The bundled source's id (``carbon.intensity.source_id``), if any.
        data_year: The intensity's data year, if known.
        series_origin: A time series' origin (``file``, ``electricitymaps``), if one was
            used; the static figure is then not cited.
        series_source: That time series' ``source`` text.
        run_year: Year of the run (dates a live provider's data).
    """
    out: list[Source] = []
    if series_origin is None and source_id:
        found = _dataset_source(source_id, data_year)
        if found is not None:
            out.append(found)
    if series_origin == "electricitymaps" or "electricitymaps" in (series_source or "").lower():
        out.append(_electricitymaps(run_year))
    return out


def intensity_keys(report: Report) -> list[Source]:
    """Sources behind the grid intensity actually used (empty for a user figure)."""
    carbon = report.carbon
    if carbon is None:
        return []
    series = carbon.time_series
    return intensity_sources(
        carbon.intensity.source_id,
        carbon.intensity.year,
        series_origin=series.origin if series is not None else None,
        series_source=series.source if series is not None else None,
        run_year=report.start_utc.year,
    )


def _bloom() -> Source:
    url = "https://jmlr.org/papers/v24/23-0069.html"
    return Source(
        "luccioni2023bloom",
        "Luccioni, Viguier and Ligozat (2023), Estimating the Carbon Footprint of BLOOM",
        url,
        "@article{luccioni2023bloom,\n"
        "  author = {Alexandra Sasha Luccioni and Sylvain Viguier and Anne-Laure Ligozat},\n"
        "  title = {Estimating the Carbon Footprint of {BLOOM}, a 176{B} Parameter Language "
        "Model},\n"
        "  journal = {Journal of Machine Learning Research},\n"
        "  year = {2023},\n"
        "  volume = {24},\n"
        "  number = {253},\n"
        "  pages = {1--15},\n"
        f"  url = {{{url}}}\n"
        "}",
    )


def embodied_keys(report: Report) -> list[Source]:
    """Sources behind the embodied defaults, when they were used."""
    carbon = report.carbon
    if carbon is None or carbon.embodied is None:
        return []
    used = any("BLOOM" in d.source for d in carbon.embodied.devices)
    return [_bloom()] if used else []


def pue_sources(source: str) -> list[Source]:
    """Sources behind a PUE, from its ``source`` text (empty when none is recognised)."""
    return [_uptime(source)] if "uptime" in source.lower() else []


def pue_keys(report: Report) -> list[Source]:
    """Sources behind the report's PUE (empty when none is recognised)."""
    return [] if report.carbon is None else pue_sources(report.carbon.pue.source)


def cited_sources(report: Report) -> list[Source]:
    """Every source the report's figures rely on, greenmeter first, no duplicates."""
    out: list[Source] = []
    for src in [
        _greenmeter(report),
        *intensity_keys(report),
        *pue_keys(report),
        *embodied_keys(report),
    ]:
        if all(s.key != src.key for s in out):
            out.append(src)
    return out


def bibtex_entries(sources: list[Source]) -> str:
    """The BibTeX entries of ``sources``, each key once, in order."""
    seen: dict[str, Source] = {}
    for src in sources:
        seen.setdefault(src.key, src)
    return "\n\n".join(s.entry for s in seen.values()) + "\n"


def bibtex(reports: Report | list[Report]) -> str:
    """BibTeX entries for the sources of one or several reports."""
    items = reports if isinstance(reports, list) else [reports]
    return bibtex_entries([src for report in items for src in cited_sources(report)])
