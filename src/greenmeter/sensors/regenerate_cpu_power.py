"""Regenerate the bundled CPU rated-power table from the codecarbon package's data.

Usage::

    python -m greenmeter.sensors.regenerate_cpu_power [--source PATH] [--output PATH]

Source: ``codecarbon/data/hardware/cpu_power.csv`` as shipped in the ``codecarbon``
package (https://github.com/mlco2/codecarbon), columns ``Name,TDP``: the thermal design
power in watts that the vendors (Intel ARK, AMD product pages) publish for each model.
codecarbon is released under the MIT License, Copyright (c) 2019 Mila, BCG Gamma,
CometML, Haverford College and Copyright (c) 2023 Code Carbon NGO; the generated file
keeps that notice.

Without ``--source`` the script looks for an importable ``codecarbon`` package, then for
``codecarbon/data/hardware/cpu_power.csv`` under the ``site-packages`` of the Python
environments listed in ``GREENMETER_CODECARBON_SITE`` (paths separated by ``:``).
Rows with a non-positive or unparsable TDP are dropped; names are de-duplicated (first
row wins); rows are sorted by name so regenerating gives the same file.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
from datetime import date
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "data" / "cpu_power.json"
REL = Path("codecarbon") / "data" / "hardware" / "cpu_power.csv"
LICENCE = "MIT"
COPYRIGHT = (
    "Copyright (c) 2019 Mila, BCG Gamma, CometML, Haverford College; "
    "Copyright (c) 2023 Code Carbon NGO"
)


def find_source() -> tuple[Path, str]:
    """Locate codecarbon's cpu_power.csv; returns (path, codecarbon version or '')."""
    spec = importlib.util.find_spec("codecarbon")
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p).parent / REL for p in spec.submodule_search_locations]
    for site in filter(None, os.environ.get("GREENMETER_CODECARBON_SITE", "").split(":")):
        candidates.append(Path(site) / REL)
    for c in candidates:
        if c.is_file():
            return c, _version_near(c)
    raise FileNotFoundError(
        "codecarbon's cpu_power.csv was not found: pip install codecarbon, or pass "
        "--source PATH/TO/cpu_power.csv, or set GREENMETER_CODECARBON_SITE to the "
        "site-packages directory that holds codecarbon"
    )


def _dist_info(csv_path: Path) -> Path | None:
    if len(csv_path.parents) < 4:
        return None
    for dist in sorted(csv_path.parents[3].glob("codecarbon-*.dist-info")):
        return dist
    return None


def _version_near(csv_path: Path) -> str:
    dist = _dist_info(csv_path)
    return dist.name[len("codecarbon-") : -len(".dist-info")] if dist else ""


def _licence_text(csv_path: Path) -> str | None:
    dist = _dist_info(csv_path)
    if dist is None:
        return None
    for cand in (dist / "licenses" / "LICENSE", dist / "LICENSE"):
        if cand.is_file():
            return cand.read_text(encoding="utf-8")
    return None


def convert(source: Path, version: str) -> dict[str, object]:
    """Read codecarbon's table and return the bundled JSON document."""
    rows: dict[str, float] = {}
    with open(source, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            name = " ".join((rec.get("Name") or "").split())
            try:
                tdp = float(rec.get("TDP") or "")
            except ValueError:
                continue
            if name and tdp > 0 and name not in rows:
                rows[name] = tdp
    return {
        "description": "CPU model name -> rated power (thermal design power), watts",
        "unit": "W",
        "source": "codecarbon package, codecarbon/data/hardware/cpu_power.csv "
        "(https://github.com/mlco2/codecarbon), vendor-published TDP values",
        "source_version": f"codecarbon {version}".strip(),
        "licence": LICENCE,
        "copyright": COPYRIGHT,
        "licence_text": _licence_text(source),
        "generated": date.today().isoformat(),
        "generated_by": "python -m greenmeter.sensors.regenerate_cpu_power",
        "rows": [[n, rows[n]] for n in sorted(rows)],
    }


def _dump(doc: dict[str, object]) -> str:
    """JSON with one table row per line (readable diffs)."""
    head = {k: v for k, v in doc.items() if k != "rows"}
    lines = [json.dumps(head, indent=1, ensure_ascii=False)[:-2] + ',\n "rows": [']
    rows = doc["rows"]
    assert isinstance(rows, list)
    lines += [
        json.dumps(r, ensure_ascii=False) + ("," if i < len(rows) - 1 else "")
        for i, r in enumerate(rows)
    ]
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="path to codecarbon's cpu_power.csv")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.source is not None:
        source, version = args.source, _version_near(args.source)
    else:
        try:
            source, version = find_source()
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    doc = convert(source, version)
    from greenmeter.files import write_file

    write_file(args.output, _dump(doc))
    print(f"wrote {len(doc['rows'])} CPU models from {source} to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
