"""One function per subcommand: turn parsed arguments into a call and an exit code.

The work itself lives elsewhere: :mod:`greenmeter.cli.run` (run),
:mod:`greenmeter.report` (merge, validate, schema), :mod:`greenmeter.render` (report,
compare, plots), :mod:`greenmeter.cli.footprint` (footprint), :mod:`greenmeter.demo` and
:mod:`greenmeter.cli.doctor`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from greenmeter.cli.common import CliError, emit, option_names

__all__ = [
    "carbon_config",
    "cmd_compare",
    "cmd_demo",
    "cmd_doctor",
    "cmd_footprint",
    "cmd_merge",
    "cmd_report",
    "cmd_run",
    "cmd_schema",
    "cmd_validate",
]


#: CarbonConfig parameters and the options that set them (errors name the options).
CARBON_OPTIONS: dict[str, str] = {
    "intensity_g_per_kwh": "--intensity",
    "location": "--location",
    "pue": "--pue",
    "cloud": "--cloud",
}


def carbon_config(args: argparse.Namespace) -> Any:
    """A :class:`greenmeter.carbon.CarbonConfig` from the carbon options, or None.

    Raises:
        CliError: the settings are invalid; the message names options, not parameters.
    """
    given: dict[str, Any] = {}
    if args.location:
        given["location"] = args.location
    if args.intensity is not None:
        given["intensity_g_per_kwh"] = args.intensity
        given["intensity_source"] = "given on the command line (--intensity)"
    if args.pue:
        try:
            given["pue"] = float(args.pue)
            given["pue_source"] = "given on the command line (--pue)"
        except ValueError:
            given["pue"] = args.pue
    if args.cloud:
        given["cloud"] = args.cloud
    if not given:
        return None
    from greenmeter.carbon import CarbonConfig, CarbonError

    try:
        return CarbonConfig(**given)
    except CarbonError as exc:
        raise CliError(f"carbon settings: {option_names(str(exc), CARBON_OPTIONS)}") from None


def _optional_module(name: str, what: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            raise CliError(
                f"{what} needs {name}, which is missing from this installation; reinstall "
                "greenmeter (pip install --force-reinstall greenmeter)"
            ) from None
        raise CliError(
            f"{what} needs the package {exc.name!r}, which is not installed; install it "
            f"with `pip install {exc.name}`"
        ) from None


def _function(module: ModuleType, name: str, what: str) -> Any:
    fn = getattr(module, name, None)
    if not callable(fn):
        raise CliError(
            f"{what} needs {module.__name__}.{name}(), which this installation lacks; "
            "reinstall greenmeter"
        )
    return fn


def _load(paths: list[str]) -> list[Any]:
    from greenmeter.report import Report, ReportError

    reports = []
    for path in paths:
        try:
            reports.append(Report.load(path))
        except ReportError as exc:
            raise CliError(f"{exc} (check the file with `greenmeter validate {path}`)") from None
    return reports


def _rederived(reports: list[Any], args: argparse.Namespace) -> list[Any]:
    """The reports with carbon re-derived when carbon options were given."""
    config = carbon_config(args)
    if config is None:
        return reports
    from greenmeter.carbon import CarbonError
    from greenmeter.carbon.rederive import rederive

    given = " ".join(
        f"--{flag} {value}"
        for flag, value in (
            ("location", args.location),
            ("cloud-region", args.cloud),
            ("pue", args.pue),
            ("intensity", args.intensity),
        )
        if value is not None
    )
    try:
        return [rederive(r, config, note=f"greenmeter {args.subcommand} {given}") for r in reports]
    except CarbonError as exc:
        raise CliError(f"carbon settings: {exc}") from None


# -- run ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``greenmeter run``."""
    from greenmeter.cli.run.runner import RunError, RunOptions, run

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError(
            "no command to run; put it after `--`, e.g. `greenmeter run -- python train.py`"
        )
    if args.export is not None:
        from greenmeter.export import parse_export

        try:
            parse_export(args.export)  # checked before the command starts
        except ValueError as exc:
            raise CliError(f"--export: {exc}") from None
    tags: dict[str, str] = {}
    if args.tags:
        from greenmeter.report.tags import TagError, parse_tags

        try:
            tags = parse_tags(args.tags)
        except TagError as exc:
            raise CliError(f"--tag: {exc}") from None
    options = RunOptions(
        command=command,
        output=Path(args.output),
        powercap_root=args.powercap_root,
        gpus=args.gpus or None,
        gpu=args.gpus != [],
        interval_s=args.interval,
        carbon=carbon_config(args),
        live=not args.no_live,
        quiet=args.quiet,
        log_interval_s=args.log_interval,
        checkpoint_interval_s=args.checkpoint_interval,
        run_name=args.run_name,
        estimate_scope=args.estimate_scope,
        tags=tags,
        epochs=args.epochs,
        include_command=not args.no_command,
        include_git=not args.no_git,
        export=args.export,
    )
    try:
        return run(options)
    except RunError as exc:
        raise CliError(str(exc), exc.exit_code) from None


# -- report files -----------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """``greenmeter report``: render one or more reports."""
    if args.plot and len(args.files) != 1:
        raise CliError("--plot draws one report; give a single FILE with --plot")
    render = _optional_module("greenmeter.render", "greenmeter report")
    if args.plot:  # a plot that cannot be written stops the command before any output
        try:
            _function(render, "check_plot_path", "--plot")(args.plot)
        except ValueError as exc:
            raise CliError(f"--plot: {exc}") from None
    reports = _rederived(_load(args.files), args)
    subject: Any = reports[0] if len(reports) == 1 else reports
    try:
        text = _function(render, "render", "greenmeter report")(subject, args.format)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    emit(text, args.output)
    if args.plot:
        plot = _function(render, "plot", "--plot")
        try:
            plot(reports[0], args.plot)
        except ModuleNotFoundError as exc:
            raise CliError(
                f"--plot needs {exc.name}; install it with `pip install 'greenmeter[plot]'`"
            ) from None
        except (ValueError, OSError) as exc:  # their messages name the path
            raise CliError(f"--plot: {exc}") from None
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``greenmeter compare``: reports side by side."""
    if len(args.files) < 2:
        raise CliError("compare needs at least two report files")
    render = _optional_module("greenmeter.render", "greenmeter compare")
    reports = _rederived(_load(args.files), args)
    try:
        text = _function(render, "compare", "greenmeter compare")(reports, args.format)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    emit(text, args.output)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """``greenmeter merge``: one report from several."""
    from greenmeter.report import ReportError, merge_reports

    reports = _load(args.files)
    try:
        merged = merge_reports(reports)
    except ReportError as exc:
        raise CliError(f"cannot merge: {exc}") from None
    if args.output is None:
        emit(merged.to_json(), None)
        return 0
    try:
        merged.save(args.output)
    except OSError as exc:
        raise CliError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """``greenmeter validate``: 0 when every file is valid, else 1."""
    from greenmeter.report import validate_files

    bad = 0
    for name, ok, message in validate_files(args.files):
        if ok:
            if not args.quiet:
                sys.stdout.write(f"{name}: OK, {message}\n")
        else:
            bad += 1
            text = message if message.startswith(name) else f"{name}: {message}"
            sys.stderr.write(f"{text}\n")
    if bad:
        sys.stderr.write(f"greenmeter validate: {bad} of {len(args.files)} file(s) invalid\n")
    return 1 if bad else 0


def cmd_footprint(args: argparse.Namespace) -> int:
    """``greenmeter footprint``: see :mod:`greenmeter.cli.footprint`."""
    from greenmeter.cli.footprint import cmd_footprint as run_footprint

    return run_footprint(args)


def cmd_schema(args: argparse.Namespace) -> int:
    """``greenmeter schema``: the JSON Schema of report files."""
    from greenmeter.report.schema import schema_text

    emit(schema_text(), args.output)
    return 0


# -- host and demo ------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    """``greenmeter doctor``."""
    from greenmeter.cli.doctor import doctor

    return doctor(
        powercap_root=args.powercap_root,
        gpus=args.gpus or None,
        gpu=args.gpus != [],
        carbon=carbon_config(args),
        as_json=args.json,
        out=sys.stdout,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """``greenmeter demo``."""
    demo = _optional_module("greenmeter.demo", "greenmeter demo")
    return int(_function(demo, "main", "greenmeter demo")(args.out, quick=args.quick))
