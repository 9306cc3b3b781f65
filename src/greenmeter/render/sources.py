"""The data sources a report relies on, as citations (BibTeX and short labels).

Which sources apply is read from the report's carbon block: the grid intensity's source
text (Ember / Our World in Data, EPA eGRID), a live or file time series (Electricity
Maps), the PUE's source (Uptime Institute), and greenmeter itself, always.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from greenmeter.report.models import Report

__all__ = ["Source", "bibtex", "cited_sources", "intensity_keys", "pue_keys"]


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
    version = _bib_text(report.software.greenmeter)
    url = "https://greenmeter.readthedocs.io"
    entry = (
        "@misc{greenmeter,\n"
        "  author = {{greenmeter authors}},\n"
        "  title = {{greenmeter}: energy and carbon accounting for machine learning},\n"
        f"  note = {{Software, version {version}}},\n"
        f"  year = {{{report.start_utc.year}}},\n"
        f"  howpublished = {{\\url{{{url}}}}}\n"
        "}"
    )
    return Source("greenmeter", f"greenmeter {report.software.greenmeter}", url, entry)


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


def _electricitymaps(report: Report) -> Source:
    url = "https://www.electricitymaps.com"
    return Source(
        "electricitymaps",
        "Electricity Maps, carbon intensity data",
        url,
        "@misc{electricitymaps,\n"
        "  author = {{Electricity Maps}},\n"
        "  title = {{Electricity Maps}: carbon intensity of electricity consumption},\n"
        f"  year = {{{report.start_utc.year}}},\n"
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
    out: list[Source] = []
    text = carbon.intensity.source
    low = text.lower()
    if "ember" in low or "our world in data" in low or "owid" in low:
        out.extend(_owid(carbon.intensity.year))
    if "egrid" in low:
        out.append(_egrid(text, carbon.intensity.year))
    series = carbon.time_series
    if (
        "electricity maps" in low
        or "electricitymaps" in low
        or (
            series is not None
            and (series.origin == "electricitymaps" or "electricitymaps" in series.source.lower())
        )
    ):
        out.append(_electricitymaps(report))
    return out


def pue_keys(report: Report) -> list[Source]:
    """Sources behind the PUE (empty when none is recognised)."""
    if report.carbon is None:
        return []
    source = report.carbon.pue.source
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
    seen: dict[str, Source] = {}
    for report in items:
        for src in cited_sources(report):
            seen.setdefault(src.key, src)
    return "\n\n".join(s.entry for s in seen.values()) + "\n"
