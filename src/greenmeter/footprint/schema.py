"""The footprint summary's JSON Schema, generated from its models and committed beside
the report's (``docs/schema/footprint.schema.json``).

Regenerate after changing :mod:`greenmeter.footprint.models`::

    python -m greenmeter.footprint.schema
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from greenmeter.footprint.models import FOOTPRINT_SCHEMA_VERSION, FootprintSummary
from greenmeter.report.schema import SCHEMA_PATH as REPORT_SCHEMA_PATH
from greenmeter.report.schema import dump_schema, model_schema

__all__ = ["FOOTPRINT_SCHEMA_PATH", "json_schema", "schema_text", "write_schema"]

#: Where the committed schema lives in a source checkout.
FOOTPRINT_SCHEMA_PATH = REPORT_SCHEMA_PATH.with_name("footprint.schema.json")
_ID = f"https://greenmeter.readthedocs.io/schema/footprint-v{FOOTPRINT_SCHEMA_VERSION}.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a footprint summary validates against."""
    return model_schema(FootprintSummary, _ID)


def schema_text() -> str:
    """The schema as the committed file holds it (sorted keys, 2-space indent)."""
    return dump_schema(json_schema())


def write_schema(path: str | Path | None = None) -> Path:
    """Write the schema to ``path`` (default: ``docs/schema/footprint.schema.json``)."""
    from greenmeter.files import write_file

    return write_file(Path(path) if path is not None else FOOTPRINT_SCHEMA_PATH, schema_text())


if __name__ == "__main__":
    print(write_schema())
