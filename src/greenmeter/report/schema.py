"""The report's JSON Schema, generated from the models and committed to the repository.

Regenerate after changing the models::

    python -c "from greenmeter.report import write_schema; write_schema()"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from greenmeter.report.models import SCHEMA_VERSION, Report

__all__ = [
    "SCHEMA_PATH",
    "dump_schema",
    "json_schema",
    "model_schema",
    "schema_text",
    "write_schema",
]

#: Where the committed schema lives in a source checkout.
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs" / "schema" / "report.schema.json"
_ID = f"https://greenmeter.readthedocs.io/schema/report-v{SCHEMA_VERSION}.schema.json"


def model_schema(model: type[BaseModel], schema_id: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a pydantic model, with its ``$id``."""
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        **schema,
    }


def dump_schema(schema: dict[str, Any]) -> str:
    """A schema as committed files hold it (sorted keys, 2-space indent)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a report file validates against."""
    return model_schema(Report, _ID)


def schema_text() -> str:
    """The schema as the committed file holds it (sorted keys, 2-space indent)."""
    return dump_schema(json_schema())


def write_schema(path: str | Path | None = None) -> Path:
    """Write the schema to ``path`` (default: ``docs/schema/report.schema.json``)."""
    target = Path(path) if path is not None else SCHEMA_PATH
    from greenmeter.files import write_file

    return write_file(target, schema_text())


if __name__ == "__main__":
    print(write_schema())
