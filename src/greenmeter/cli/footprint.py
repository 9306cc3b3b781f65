"""``greenmeter footprint``: its arguments and what it does with them.

The argument set-up is in one function (:func:`add_footprint_parser`); the work is
:func:`greenmeter.footprint.footprint` and :func:`greenmeter.render.footprint.render_footprint`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta, timezone

from greenmeter.cli.common import CliError, emit

__all__ = ["FORMATS", "add_footprint_parser", "cmd_footprint", "parse_when"]

#: Output formats (see :mod:`greenmeter.render.footprint`).
FORMATS: tuple[str, ...] = ("table", "md", "latex", "html", "csv", "json")
_LISTED = 20


def parse_when(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time as an aware UTC datetime (a time without offset is UTC).

    A bare date is midnight UTC that day, or with ``end_of_day`` midnight after it, so
    ``--until 2024-05-31`` includes runs that started on May 31.

    Raises:
        argparse.ArgumentTypeError: not an ISO date or date-time.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            when = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            return when + timedelta(days=1) if end_of_day else when
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time (2024-05-01, 2024-05-01T12:00, "
            "2024-05-01T12:00+02:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _since(text: str) -> datetime:
    return parse_when(text)


def _until(text: str) -> datetime:
    return parse_when(text, end_of_day=True)


def _tag_names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give tag names, e.g. --by experiment,model")
    return names


def _where(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not tag=value; write --where tag=value")
    return key.strip(), value.strip()


def add_footprint_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``footprint`` subcommand to the subcommands ``sub``; returns its parser."""
    p = sub.add_parser(
        "footprint",
        help="add up every run of a project: per group of tags and in total",
        description="Read every greenmeter report under the given files, directories "
        "(recursively) and globs; count each run once (repeated checkpoints de-duplicated, "
        "ranks and nodes merged); and print per group and in total: runs by status, wall "
        "time, GPU-hours by GPU model, IT and facility energy, CO2e (location-based, "
        "market-based and embodied, kept apart), the estimated share and the intensity "
        "sources. Files that are not reports are listed and skipped. An index keeps what "
        "each file contributed, so a second run reads only new or changed files.",
        epilog="Runs that crashed before writing their first report left no file and cannot "
        "be counted. Exit status: 0, also when some files were skipped; 2 when a PATH "
        "matches nothing or an option is wrong.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="report files, directories or globs")
    p.add_argument(
        "--by",
        type=_tag_names,
        default=[],
        metavar="TAGS",
        help="group by these tags, comma-separated (e.g. experiment,model); runs without a "
        "tag go to the group '(none)'",
    )
    sel = p.add_argument_group("selection")
    sel.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="only runs that started at or after DATE (ISO date or date-time; UTC unless an "
        "offset is given)",
    )
    sel.add_argument(
        "--until",
        type=_until,
        metavar="DATE",
        help="only runs that started before DATE (a bare date includes that whole day)",
    )
    sel.add_argument(
        "--where",
        type=_where,
        action="append",
        default=[],
        metavar="TAG=VALUE",
        help="only runs with this tag value; repeat for more (the same tag twice: either "
        "value; different tags: both)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="table",
        help="table (terminal), md, latex (an appendix with BibTeX), html (a chart per "
        "group), csv or json (default table)",
    )
    out.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    out.add_argument(
        "--runs", action="store_true", help="also list every run counted (csv and json)"
    )
    idx = p.add_argument_group("index")
    place = idx.add_mutually_exclusive_group()
    place.add_argument(
        "--index",
        metavar="FILE",
        help="index database to use (default: footprint-index.sqlite3 in "
        "$GREENMETER_CACHE_DIR, else $XDG_CACHE_HOME/greenmeter, else ~/.cache/greenmeter)",
    )
    place.add_argument("--no-index", action="store_true", help="read every file; keep no index")
    return p


def cmd_footprint(args: argparse.Namespace) -> int:
    """``greenmeter footprint``."""
    from greenmeter.footprint import DEFAULT_INDEX, FootprintError, footprint
    from greenmeter.render.footprint import render_footprint

    where: dict[str, list[str]] = {}
    for key, value in args.where:
        where.setdefault(key, []).append(value)
    if args.since and args.until and args.until <= args.since:
        raise CliError("--until must be later than --since")
    warnings: list[str] = []
    try:
        summary = footprint(
            args.paths,
            group_by=args.by,
            since=args.since,
            until=args.until,
            where=where,
            index=None if args.no_index else (args.index or DEFAULT_INDEX),
            include_runs=args.runs,
            warnings=warnings,
        )
    except FootprintError as exc:
        raise CliError(str(exc)) from None
    for line in warnings:
        sys.stderr.write(f"greenmeter footprint: warning: {line}\n")
    if summary.skipped and args.format == "csv":
        sys.stderr.write(
            f"greenmeter footprint: {len(summary.skipped)} file(s) skipped (not readable "
            "greenmeter reports):\n"
        )
        for item in summary.skipped[:_LISTED]:
            sys.stderr.write(f"  {item.path}: {item.problem}\n")
        if len(summary.skipped) > _LISTED:
            sys.stderr.write(f"  ... and {len(summary.skipped) - _LISTED} more\n")
    emit(render_footprint(summary, args.format), args.output)
    return 0
