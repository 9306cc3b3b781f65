"""The footprint of a project: every run's report found, de-duplicated, grouped, summed.

    >>> from greenmeter.footprint import footprint
    >>> summary = footprint(["runs/"], group_by=["experiment", "model"])  # doctest: +SKIP
    >>> summary.total.facility_energy_kwh, summary.total.co2e_location_g  # doctest: +SKIP

Modules, in the order the data flows: ``scan`` (files under paths, directories, globs),
``index`` (the SQLite index of what each file contributed), ``collect`` (records from
the index or from the files), ``record`` (the figures kept per report), ``runs`` (one
record per run: checkpoints de-duplicated, ranks and nodes merged), ``summarize``
(filters, groups, sums), ``make`` (all of it, with the index's recovery), ``models``
(the :class:`FootprintSummary` every output is rendered from) and ``schema`` (its JSON
Schema). Renderers are in :mod:`greenmeter.render.footprint`.
"""

from __future__ import annotations

from greenmeter.footprint.make import DEFAULT_INDEX, FootprintError, footprint
from greenmeter.footprint.models import (
    FOOTPRINT_SCHEMA_VERSION,
    NO_TAG,
    FootprintGroup,
    FootprintSummary,
    FootprintTotals,
)

__all__ = [
    "DEFAULT_INDEX",
    "FOOTPRINT_SCHEMA_VERSION",
    "NO_TAG",
    "FootprintError",
    "FootprintGroup",
    "FootprintSummary",
    "FootprintTotals",
    "footprint",
]
