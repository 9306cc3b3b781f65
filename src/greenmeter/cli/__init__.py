"""The ``greenmeter`` command line: argument parsing and dispatch.

Subcommands::

    greenmeter run [options] -- CMD...     measure a command, write one report
    greenmeter report FILE... --format F   render reports (md, latex, html, csv, ...)
    greenmeter compare A.json B.json ...   side-by-side comparison
    greenmeter merge A.json B.json -o M    merge per-node or per-rank reports
    greenmeter validate FILE...            check report files against the schema
    greenmeter footprint PATH... [--by T]  every run of a project, grouped and summed
    greenmeter schema                      print the report's JSON Schema
    greenmeter doctor [--json]             which sensors this host has, and fixes
    greenmeter demo [--out DIR] [--quick]  a self-contained example run

Exit codes: 0 success; 1 ``validate`` found invalid files; 2 a usage error (bad option,
bad file, missing piece, an output that cannot be written, standard output included),
printed as one line naming the problem and the fix, with a did-you-mean for a mistyped
option, subcommand or format. ``run`` exits with the command's own code (see
:mod:`greenmeter.cli.run.runner`).

Importing this module is cheap: each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from greenmeter import __version__
from greenmeter.cli.common import (
    COMPARE_FORMATS,
    REPORT_FORMATS,
    CliError,
    GuardedStdout,
    clip,
    did_you_mean,
    format_name,
    gpus_arg,
    non_negative_float,
    one_line,
    positive_float,
    positive_int,
)
from greenmeter.cli.footprint import add_footprint_parser

__all__ = ["CliError", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at ``--help`` and suggest what was meant.

    Every parser of the command line is one (subcommands too, through
    ``parser_class``), so each option, subcommand and choice added anywhere gets the
    same treatment: an unknown option is an error naming the closest known one, and a
    value outside the choices names the closest choice. Unknown arguments are an error
    at the parser that sees them, so ``parse_known_args`` never returns any.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return parsed, extras

    def _unrecognized(self, extras: list[str]) -> str:
        options = [s for s in self._option_string_actions if s.startswith("--")]
        hint = next(
            (did_you_mean(x.split("=", 1)[0], options) for x in extras if x.startswith("--")),
            "",
        )
        shown = " ".join(clip(x) for x in extras[:3]) + (" ..." if len(extras) > 3 else "")
        return f"unrecognized argument{'s' if len(extras) > 1 else ''}: {shown}{hint}"

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            choices = [str(c) for c in action.choices or ()]
            hint = did_you_mean(str(value), choices)
            message = f"invalid choice {clip(value)} (choose from {', '.join(choices)}){hint}"
            raise argparse.ArgumentError(action, message) from exc


def _carbon_options(p: argparse.ArgumentParser, title: str = "carbon") -> None:
    g = p.add_argument_group(title)
    g.add_argument(
        "--location",
        metavar="WHERE",
        help="grid location: country code or name (FR, Germany), US state (US-CA), eGRID "
        "subregion (CAMX), ...",
    )
    g.add_argument(
        "--intensity",
        type=non_negative_float,
        metavar="G_PER_KWH",
        help="explicit grid carbon intensity in gCO2e/kWh (wins over --location)",
    )
    g.add_argument(
        "--pue",
        metavar="PUE",
        help="power usage effectiveness (>= 1.0), e.g. the facility's published PUE, or a "
        "preset: workstation, uptime-2024",
    )
    g.add_argument(
        "--cloud-region",
        "--cloud",
        dest="cloud",
        metavar="REGION",
        help="cloud region, e.g. aws:us-east-1, gcp:europe-west1 (Google regions use "
        "Google's own published figure)",
    )


_REDERIVE = "re-derive carbon (energy unchanged; the change is noted in the report)"


def _hardware_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--powercap-root",
        metavar="DIR",
        help="powercap tree to read RAPL counters from (default /sys/class/powercap)",
    )
    p.add_argument(
        "--gpus",
        type=gpus_arg,
        metavar="LIST",
        help="GPUs to measure: comma-separated indices or UUIDs, or 'none' (default: the "
        "GPUs visible to greenmeter)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to generate the CLI docs)."""
    parser = _Parser(
        prog="greenmeter",
        description="Energy and carbon accounting for machine learning.",
    )
    parser.add_argument("--version", action="version", version=f"greenmeter {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a command under measurement and write a report",
        description="Run CMD, measure the whole machine's energy while it runs (with the "
        "phases it reports when it uses greenmeter itself) and write one report. Exits with "
        "CMD's exit code.",
        usage="greenmeter run [options] -- CMD [ARG...]",
        epilog="exit status: CMD's own; 128+N when CMD was killed by signal N; 127 when "
        "CMD is not found; 126 when it cannot be executed; 2 for a usage error; 125 when "
        "CMD succeeded but the report could not be written. SIGINT, SIGTERM, SIGHUP, "
        "SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to CMD; the report is written "
        "however CMD ends (status interrupted after SIGINT/SIGTERM/SIGHUP/SIGQUIT).",
    )
    run.add_argument(
        "-o",
        "--output",
        default="greenmeter-report.json",
        metavar="FILE",
        help="report file to write (default: greenmeter-report.json)",
    )
    _hardware_options(run)
    run.add_argument(
        "--interval",
        type=positive_float,
        default=0.1,
        metavar="SECONDS",
        help="sampling period of the meter (default 0.1 s)",
    )
    run.add_argument(
        "--estimate-scope",
        choices=("process", "machine"),
        help="on hosts without energy counters, estimate the CPU and RAM energy of the "
        "command and its children (process) or of the whole machine (machine); default "
        "$GREENMETER_ESTIMATE_SCOPE, else the config file, else process",
    )
    _carbon_options(run)
    d = run.add_argument_group("display")
    d.add_argument(
        "--no-live",
        action="store_true",
        help="no live display on the terminal (status lines as when not on a terminal)",
    )
    d.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing (no status lines, no summary)"
    )
    d.add_argument(
        "--log-interval",
        type=non_negative_float,
        default=30.0,
        metavar="SECONDS",
        help="when stderr is not a terminal, print a status line this often (0: never; default 30)",
    )
    d.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        help="expected number of training epochs, to project the run's total energy",
    )
    d.add_argument(
        "--export",
        metavar="SPEC",
        help="publish live metrics while CMD runs: prometheus[:PORT] (scrape endpoint, "
        "default 127.0.0.1:9464), pushgateway:URL or otel; comma-separated for several "
        "(default: $GREENMETER_EXPORT)",
    )
    r = run.add_argument_group("report")
    r.add_argument(
        "--checkpoint-interval",
        type=positive_float,
        metavar="SECONDS",
        help="write an in-progress report (status running) this often",
    )
    r.add_argument("--run-name", metavar="NAME", help="a name for the run, kept in the report")
    r.add_argument(
        "--tag",
        action="append",
        dest="tags",
        metavar="KEY=VALUE",
        help="a label kept in the report's tags (repeatable; added to $GREENMETER_TAGS)",
    )
    r.add_argument(
        "--no-command",
        action="store_true",
        help="do not record the command line in the report (it may hold secrets)",
    )
    r.add_argument("--no-git", action="store_true", help="do not record the git commit")
    run.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    rep = sub.add_parser(
        "report",
        help="render report files (Markdown, LaTeX, HTML, CSV, model card, ...)",
        description="Render one report, or several side by side, in a format for papers, "
        "model cards and spreadsheets.",
    )
    rep.add_argument("files", nargs="+", metavar="FILE", help="report JSON file(s)")
    rep.add_argument(
        "-f",
        "--format",
        type=format_name,
        choices=REPORT_FORMATS,
        default="md",
        help="output format (default md; markdown is md)",
    )
    rep.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    rep.add_argument(
        "--plot",
        metavar="IMAGE",
        help="also plot power over time to IMAGE: .svg built in; .png, .pdf, .jpg and every "
        "other format matplotlib writes with the plot extra",
    )
    _carbon_options(rep, _REDERIVE)

    cmp_ = sub.add_parser(
        "compare",
        help="compare runs side by side (energy, CO2e, efficiency)",
        description="Compare two or more reports, e.g. a distilled model with its teacher.",
    )
    cmp_.add_argument("files", nargs="+", metavar="FILE", help="report JSON files")
    cmp_.add_argument(
        "-f",
        "--format",
        type=format_name,
        choices=COMPARE_FORMATS,
        default="md",
        help="output format (default md; markdown is md)",
    )
    cmp_.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    _carbon_options(cmp_, _REDERIVE)

    mrg = sub.add_parser(
        "merge",
        help="merge per-node or per-rank reports into one",
        description="Merge reports written separately (one per node or rank) into one.",
    )
    mrg.add_argument("files", nargs="+", metavar="FILE", help="report JSON files")
    mrg.add_argument("-o", "--output", metavar="FILE", help="merged report (default: stdout)")

    val = sub.add_parser(
        "validate",
        help="check report files against the schema",
        description="Validate report files. Exits 1 when any file is invalid, printing the "
        "field, what is wrong and what was expected.",
    )
    val.add_argument("files", nargs="+", metavar="FILE", help="report JSON files")
    val.add_argument("-q", "--quiet", action="store_true", help="print only the problems")

    add_footprint_parser(sub)

    sch = sub.add_parser(
        "schema",
        help="print the report's JSON Schema",
        description="Print the JSON Schema that report files validate against.",
    )
    sch.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    doc = sub.add_parser(
        "doctor",
        help="show which sensors this host has and how to enable the missing ones",
        description="List the energy sources greenmeter would use here, the method for "
        "each component, and for every missing source the reason and the fix.",
    )
    _hardware_options(doc)
    _carbon_options(doc)
    doc.add_argument("--json", action="store_true", help="machine-readable output")

    demo = sub.add_parser(
        "demo",
        help="train a teacher and a distilled student, measure both, write the reports",
        description=(
            "Train a small teacher and a distilled student with Lightning on synthetic data, "
            "measure their inference, and write both reports, their comparison (Markdown, "
            "LaTeX) and an HTML report."
        ),
    )
    demo.add_argument(
        "--out",
        default="greenmeter-demo",
        metavar="DIR",
        help="output directory (default: greenmeter-demo)",
    )
    demo.add_argument("--quick", action="store_true", help="smaller models and data: a few seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    guarded = GuardedStdout(sys.stdout)
    sys.stdout = guarded  # type: ignore[assignment]
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        if sys.stdout is guarded:
            sys.stdout = guarded.stream


def _main(argv: list[str]) -> int:
    parser = build_parser()
    name = "greenmeter"
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error already printed
            sys.stdout.flush()
            return exc.code if isinstance(exc.code, int) else 2
        if args.subcommand is None:
            parser.print_help(sys.stderr)
            return 2
        name = f"greenmeter {args.subcommand}"
        from greenmeter.cli import commands

        code = int(getattr(commands, f"cmd_{args.subcommand}")(args))
        sys.stdout.flush()  # a full disk fails here, not at exit with a traceback
        return code
    except CliError as exc:
        sys.stderr.write(f"{name}: error: {one_line(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("greenmeter: interrupted\n")
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`greenmeter schema | head`)
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
