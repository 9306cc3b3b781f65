"""MkDocs hook: generate the command-line and report-schema reference pages.

Two pages carry a marker that this hook replaces while the site is built:

* ``<!-- generated: cli -->`` in ``reference/cli.md``: every subcommand and option, read
  from the real argument parser (:func:`greenmeter.cli.build_parser`);
* ``<!-- generated: schema -->`` in ``reference/schema.md``: every object and field of
  the committed JSON Schema (``docs/schema/report.schema.json``).

So the pages cannot drift from the code. To see the generated Markdown without building
the site::

    python docs/_hooks/reference.py cli
    python docs/_hooks/reference.py schema
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CLI_MARKER = "<!-- generated: cli -->"
SCHEMA_MARKER = "<!-- generated: schema -->"
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema" / "report.schema.json"
_WIDTH = 100


# -- command line ----------------------------------------------------------------------


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    """Make help and usage independent of the terminal that builds the docs."""
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=_WIDTH)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Subcommand name -> its parser, in the order ``--help`` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices.items())
    return {}


def _groups(parser: argparse.ArgumentParser) -> Iterator[tuple[str, list[argparse.Action]]]:
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        actions = [a for a in actions if not isinstance(a, argparse._SubParsersAction)]
        if actions:
            yield group.title or "options", actions


def _option_row(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
    else:
        names = f"`{action.metavar or action.dest}`"
    takes_value = action.nargs != 0
    value = ""
    if takes_value:
        if action.choices:
            value = " \\| ".join(f"`{c}`" for c in action.choices)
        elif action.option_strings:
            value = f"`{action.metavar or action.dest.upper()}`"
        if action.nargs in ("+", "*"):
            value += " ..."
    default = ""
    if takes_value and action.default not in (None, argparse.SUPPRESS, [], False):
        default = f"`{action.default}`"
    help_text = action.help or ""
    if "%(" in help_text:
        help_text = help_text % {"default": action.default, "prog": "greenmeter"}
    return f"| {names} | {value} | {default} | {_cell(help_text)} |"


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for title, actions in _groups(parser):
        lines += ["", f"**{title.capitalize()}**", ""]
        lines += ["| option | value | default | description |", "|---|---|---|---|"]
        lines += [_option_row(a) for a in actions]
    return lines


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The command-line reference as Markdown, generated from the argument parser."""
    if parser is None:
        from greenmeter.cli import build_parser

        parser = build_parser()
    _fixed_width(parser)
    subs = subcommands(parser)
    lines = [
        "## Summary",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    helps = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
    for name in subs:
        link = f"[`greenmeter {name}`](#greenmeter-{name})"
        lines.append(f"| {link} | {_cell(helps.get(name, ''))} |")
    lines += ["", "Options of `greenmeter` itself:"]
    lines += _options_table(parser)
    for name, sub in subs.items():
        _fixed_width(sub)
        lines += ["", f"## `greenmeter {name}` {{ #greenmeter-{name} }}", ""]
        if sub.description:
            lines += [sub.description, ""]
        lines += ["```text", sub.format_usage().strip(), "```"]
        lines += _options_table(sub)
        if sub.epilog:
            lines += ["", sub.epilog]
    return "\n".join(lines) + "\n"


# -- report schema -----------------------------------------------------------------------


def _anchor(name: str) -> str:
    return "schema-" + name.lower()


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_text(spec: dict[str, Any]) -> str:
    """A short, readable rendering of a JSON Schema type, with links to objects."""
    if "$ref" in spec:
        name = _ref_name(spec["$ref"])
        return f"[{name}](#{_anchor(name)})"
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    for key in ("anyOf", "oneOf"):
        if key in spec:
            parts = [type_text(s) for s in spec[key]]
            return " or ".join(dict.fromkeys(parts))
    kind = spec.get("type")
    if kind == "array":
        if "prefixItems" in spec:
            return "[" + ", ".join(type_text(s) for s in spec["prefixItems"]) + "]"
        items = spec.get("items")
        return f"list of {type_text(items)}" if items else "list"
    if kind == "object":
        extra = spec.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map of string to {type_text(extra)}"
        return "object"
    if kind == "string" and spec.get("format") == "date-time":
        return "date-time (UTC)"
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind) if kind else "any"


def _constraints(spec: dict[str, Any]) -> list[str]:
    out = []
    for key, label in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
    ):
        if key in spec:
            value = spec[key]
            out.append(f"{label} `{value}`")
    for sub in spec.get("anyOf", []):
        out += [c for c in _constraints(sub) if c not in out]
    return out


def _field_rows(obj: dict[str, Any]) -> list[str]:
    required = set(obj.get("required", []))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, spec in obj.get("properties", {}).items():
        desc = spec.get("description", "")
        notes = _constraints(spec)
        if "default" in spec and name not in required:
            notes.append(f"default `{json.dumps(spec['default'])}`")
        text = desc + (" (" + "; ".join(notes) + ")" if notes else "")
        req = "yes" if name in required else ""
        rows.append(f"| `{name}` | {type_text(spec)} | {req} | {_cell(text)} |")
    return rows


def schema_markdown(schema: dict[str, Any] | None = None) -> str:
    """The report schema as Markdown: one table per object, the report first."""
    if schema is None:
        schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    defs: dict[str, Any] = schema.get("$defs", {})
    lines = [
        f"Schema `$id`: `{schema.get('$id', '')}` (JSON Schema draft 2020-12). Objects "
        "reject unknown fields; numbers are finite.",
        "",
        f"## `Report` {{ #{_anchor('Report')} }}",
        "",
        schema.get("description", ""),
        "",
        *_field_rows(schema),
    ]
    for name in sorted(defs):
        obj = defs[name]
        lines += ["", f"## `{name}` {{ #{_anchor(name)} }}", ""]
        if obj.get("description"):
            lines += [obj["description"], ""]
        lines += _field_rows(obj)
    return "\n".join(lines) + "\n"


# -- MkDocs hook -------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any = None, config: Any = None, files: Any = None) -> str:
    """Replace the generation markers with the generated Markdown."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    if SCHEMA_MARKER in markdown:
        markdown = markdown.replace(SCHEMA_MARKER, schema_markdown())
    return markdown


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "cli":
        sys.stdout.write(cli_markdown())
    elif what == "schema":
        sys.stdout.write(schema_markdown())
    else:
        sys.stderr.write("usage: python docs/_hooks/reference.py cli|schema\n")
        sys.exit(2)
