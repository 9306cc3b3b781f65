"""The data sources a report relies on, as citations (BibTeX and short labels).

Which sources apply is read from the report's carbon block: the grid intensity's source
text (Ember / Our World in Data, EPA eGRID), a live or file time series (Electricity
Maps), the PUE's source (Uptime Institute), and greenmeter itself, always.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greenmeter.report.models import Report

__all__ = [
    "Source",
    "bibtex",
    "bibtex_entries",
    "cited_sources",
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


def _greenmeter(report: Report) -> Source:
    return greenmeter_source(report.software.greenmeter, report.start_utc.year)


def greenmeter_source(version_text: str, year: int) -> Source:
    """The citation of greenmeter itself, at ``version_text``, dated ``year``."""
    version = _bib_text(version_text)
    url = "https://greenmeter.readthedocs.io"
    entry = (
        "@misc{greenmeter,\n"
        "  author = {{greenmeter authors}},\n"
        "  title = {{greenmeter}: energy and carbon accounting for machine learning},\n"
        f"  note = {{Software, version {version}}},\n"
        f"  year = {{{year}}},\n"
        f"  howpublished = {{\\url{{{url}}}}}\n"
        "}"
    )
    return Source("greenmeter", f"greenmeter {version_text}", url, entry)


def _owid(year: int | None) -> list[Source]:
    y = year or 2023
    owid_url = "https://github.com/owid/energy-data"
    ember_url = "https://ember-energy.org/data/yearly-electricity-data/"
    return [
        Source(
            "owid_energy",
            f"Our World in Data, energy dataset (data year {y})",
            owid_url,
            "@misc{owid_energy,\n"
            "  author = {Hannah Ritchie and Pablo Rosado and Max Roser},\n"
            "  title = {Energy Production and Consumption},\n"
            f"  year = {{{y}}},\n"
            f"  note = {{Carbon intensity of electricity generation, data year {y}, "
            "CC BY 4.0},\n"
            f"  howpublished = {{Our World in Data, \\url{{{owid_url}}}}}\n"
            "}",
        ),
        Source(
            "ember_yearly",
            f"Ember, Yearly Electricity Data (data year {y})",
            ember_url,
            "@misc{ember_yearly,\n"
            "  author = {{Ember}},\n"
            "  title = {Yearly Electricity Data},\n"
            f"  year = {{{y}}},\n"
            "  note = {CC BY 4.0},\n"
            f"  howpublished = {{\\url{{{ember_url}}}}}\n"
            "}",
        ),
    ]


def _egrid(source: str, year: int | None) -> Source:
    found = re.search(r"eGRID\s*(\d{4})", source)
    edition = found.group(1) if found else (str(year) if year else "")
    y = year or (int(edition) if edition else None)
    url = "https://www.epa.gov/egrid"
    return Source(
        "epa_egrid",
        f"U.S. EPA, eGRID{edition} (data year {y})" if y else "U.S. EPA, eGRID",
        url,
        "@misc{epa_egrid,\n"
        "  author = {{U.S. Environmental Protection Agency}},\n"
        "  title = {Emissions \\& Generation Resource Integrated Database "
        f"({{eGRID{edition}}})}},\n"
        + (f"  year = {{{y}}},\n" if y else "")
        + "  note = {Public domain},\n"
        f"  howpublished = {{\\url{{{url}}}}}\n"
        "}",
    )


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


def intensity_keys(report: Report) -> list[Source]:
    """Sources behind the grid intensity (empty when none is recognised)."""
    carbon = report.carbon
    if carbon is None:
        return []
    series = carbon.time_series
    return intensity_sources(
        carbon.intensity.source,
        carbon.intensity.year,
        series_origin=series.origin if series is not None else None,
        series_source=series.source if series is not None else None,
        run_year=report.start_utc.year,
    )


def intensity_sources(
    source: str,
    data_year: int | None,
    *,
    series_origin: str | None = None,
    series_source: str | None = None,
    run_year: int,
) -> list[Source]:
    """Sources behind a grid intensity, from its source text and data year.

    Args:
        source: The intensity's ``source`` text (``carbon.intensity.source``).
        data_year: The intensity's data year, if known.
        series_origin: A time series' origin (``file``, ``electricitymaps``), if one was used.
        series_source: That time series' ``source`` text.
        run_year: Year of the run (dates a live provider's data).
    """
    out: list[Source] = []
    low = source.lower()
    if "ember" in low or "our world in data" in low or "owid" in low:
        out.extend(_owid(data_year))
    if "egrid" in low:
        out.append(_egrid(source, data_year))
    if (
        "electricity maps" in low
        or "electricitymaps" in low
        or series_origin == "electricitymaps"
        or "electricitymaps" in (series_source or "").lower()
    ):
        out.append(_electricitymaps(run_year))
    return out


def pue_keys(report: Report) -> list[Source]:
    """Sources behind the PUE (empty when none is recognised)."""
    if report.carbon is None:
        return []
    return pue_sources(report.carbon.pue.source)


def pue_sources(source: str) -> list[Source]:
    """Sources behind a PUE, from its ``source`` text (empty when none is recognised)."""
    return [_uptime(source)] if "uptime" in source.lower() else []


def cited_sources(report: Report) -> list[Source]:
    """Every source the report's figures rely on, greenmeter first, no duplicates."""
    out: list[Source] = []
    for src in [_greenmeter(report), *intensity_keys(report), *pue_keys(report)]:
        if all(s.key != src.key for s in out):
            out.append(src)
    return out


def bibtex(reports: Report | list[Report]) -> str:
    """BibTeX entries for the sources of one or several reports."""
    items = reports if isinstance(reports, list) else [reports]
    return bibtex_entries(src for report in items for src in cited_sources(report))


def bibtex_entries(sources: Iterable[Source]) -> str:
    """The BibTeX entries of ``sources``, each key once (the first one given)."""
    seen: dict[str, Source] = {}
    for src in sources:
        seen.setdefault(src.key, src)
    return "\n\n".join(s.entry for s in seen.values()) + "\n"
