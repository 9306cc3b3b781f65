"""``greenmeter run``: run a command under measurement and write one report.

The runner starts a meter on the host's sensors, starts the command with a phase
channel in its environment (:mod:`greenmeter.channel`; the parent's end is
:mod:`~greenmeter.cli.run.receiver`), shows a live display (:mod:`~greenmeter.cli.run.live`),
waits, and writes the report, whatever way the command ends.

Exit codes follow the shell's conventions:

* the command's own exit code; ``128 + N`` when it was killed by signal ``N``;
* ``127`` when the command is not found, ``126`` when it cannot be executed;
* ``2`` for a usage problem found before the command starts (bad output path, bad
  carbon settings);
* ``125`` when the command succeeded but greenmeter could not write the report.

Signals. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to greenmeter are
passed on to the command, which decides when to stop; greenmeter then writes the report
(status ``interrupted`` for the first four). A Ctrl-C typed at the terminal already
reaches every process of the foreground job, the command included, so the first
SIGINT or SIGQUIT is not sent a second time when greenmeter is in the terminal's
foreground process group; a second one is always passed on.

Testing hook: when ``GREENMETER_TESTING_TRACES`` names a JSON file
``{"<component id>": {"steps": [[duration_s, power_w], ...], "t0": <monotonic s>,
"repeat": true, "kind": "cpu"}}``, the runner measures those traces
(:class:`greenmeter.testing.sensors.TraceSensor`) instead of discovering hardware, so the
whole command line can be tested against exact energies.

Signal forwarding and exit codes live in :mod:`~greenmeter.cli.run.child_signals`; this
module is the one flow from options to exit code (start, waiting, the final report, the
summary), about 500 lines, that reads best in one place.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from greenmeter.cli.run.child_signals import (
    INTERRUPTING_SIGNALS,
    Forwarder,
    describe_end,
    exit_code_of,
)

__all__ = [
    "EXIT_CANNOT_EXECUTE",
    "EXIT_NOT_FOUND",
    "EXIT_REPORT_FAILED",
    "EXIT_USAGE",
    "TESTING_TRACES_ENV",
    "RunError",
    "RunOptions",
    "exit_code_of",
    "resolve_command",
    "run",
]

EXIT_USAGE = 2
EXIT_REPORT_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
TESTING_TRACES_ENV = "GREENMETER_TESTING_TRACES"


class RunError(Exception):
    """A problem that stops ``greenmeter run`` before or around the command.

    Attributes:
        exit_code: What the process should exit with.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunOptions:
    """Everything ``greenmeter run`` needs.

    Attributes:
        command: The command and its arguments.
        output: Where the report goes (written atomically).
        powercap_root: Root of the powercap tree (``/sys/class/powercap`` by default).
        gpus: GPU indices or UUIDs; None for those visible to greenmeter.
        gpu / cpu: Measure GPUs / CPU and memory at all.
        interval_s: Sampling period of the meter (seconds).
        carbon: A :class:`greenmeter.carbon.CarbonConfig` or None (resolver defaults).
        live: Show the live display on a terminal.
        quiet: No periodic lines and no final summary.
        log_interval_s: Seconds between status lines when stderr is not a terminal
            (0: none).
        refresh_s: Seconds between refreshes of the terminal display.
        checkpoint_interval_s: Write an in-progress report this often (None: never).
        run_name: Name recorded in the report.
        estimate_scope: ``"process"`` or ``"machine"`` for the CPU/RAM estimate on hosts
            without counters (None: the environment, the config file, else
            ``"process"``, which covers the command and its children).
        tags: Run labels (``key -> value``) added to those of ``GREENMETER_TAGS``.
        epochs: Expected number of training epochs, for the live projection.
        include_command / include_git: Record the command line / git state.
        export: Live metrics specs (``prometheus:9464``, ``pushgateway:URL``, ``otel``;
            see :mod:`greenmeter.export`); None: ``$GREENMETER_EXPORT`` or the config
            file's ``export``.
    """

    command: list[str]
    output: Path = Path("greenmeter-report.json")
    powercap_root: str | None = None
    gpus: list[int | str] | None = None
    gpu: bool = True
    cpu: bool = True
    interval_s: float = 0.1
    carbon: Any = None
    live: bool = True
    quiet: bool = False
    log_interval_s: float = 30.0
    refresh_s: float = 1.0
    checkpoint_interval_s: float | None = None
    run_name: str | None = None
    estimate_scope: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    epochs: int | None = None
    include_command: bool = True
    include_git: bool = True
    export: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_command(command: list[str], env: dict[str, str] | None = None) -> str:
    """The executable that ``command[0]`` names, or :class:`RunError` (127/126).

    A name without ``/`` is looked up in ``PATH``; a path must exist and be executable.
    """
    if not command:
        raise RunError(
            "no command to run; put it after `--`, e.g. `greenmeter run -- python train.py`"
        )
    name = command[0]
    if os.sep not in name:
        path = (env or os.environ).get("PATH", os.defpath)
        found = shutil.which(name, path=path)
        if found is None:
            raise RunError(
                f"command not found: {name!r} (not in PATH); check the name or give its full path",
                EXIT_NOT_FOUND,
            )
        return found
    if not os.path.exists(name):
        raise RunError(f"command not found: {name!r} does not exist", EXIT_NOT_FOUND)
    if os.path.isdir(name) or not os.access(name, os.X_OK):
        raise RunError(
            f"cannot execute {name!r}: not an executable file (try `chmod +x {name}`)",
            EXIT_CANNOT_EXECUTE,
        )
    return name


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise RunError(f"--output {str(path)!r} is a directory; give a file name like run.json")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise RunError(
            f"cannot write the report to {str(path)!r}: directory {str(parent)!r} does not "
            "exist; create it first"
        )
    if not os.access(parent, os.W_OK):
        raise RunError(
            f"cannot write the report to {str(path)!r}: directory {str(parent)!r} is not "
            "writable; choose another --output"
        )


def _testing_sensors() -> list[Any] | None:
    spec_path = os.environ.get(TESTING_TRACES_ENV)
    if not spec_path:
        return None
    from greenmeter.sensors.base import ComponentKind
    from greenmeter.testing.sensors import TraceSensor
    from greenmeter.testing.trace import PowerTrace

    try:
        path = Path(spec_path)
        if path.stat().st_size > 1 << 20:
            raise ValueError("larger than 1 MiB")
        spec = json.loads(path.read_text())
        if not isinstance(spec, dict):
            raise TypeError("the top level must be an object of component id -> trace")
        sensors = []
        for cid, item in spec.items():
            trace = PowerTrace(
                [tuple(s) for s in item["steps"]],
                t0=float(item["t0"]),
                repeat=bool(item.get("repeat", True)),
            )
            sensors.append(TraceSensor({cid: trace}, kind=ComponentKind(item.get("kind", "cpu"))))
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise RunError(
            f"{TESTING_TRACES_ENV}={spec_path!r} is not a valid trace file: {exc}"
        ) from None
    return sensors


def _g_per_j(run: Any) -> float | None:
    """CO2e grams per joule of IT energy (PUE included), for the live display.

    Resolves the run's carbon settings (once per run: the report uses the same result).
    """
    from datetime import datetime, timedelta, timezone

    from greenmeter.carbon import CarbonError

    try:
        run.check_carbon()
    except CarbonError as exc:
        raise RunError(f"carbon settings: {exc}") from None
    acct = run.accountant()
    if not acct:  # the report states the carbon problem; the display goes without
        return None
    try:
        now = datetime.now(timezone.utc)
        out = acct.co2e([(now, now + timedelta(hours=1), 3.6e6)], {})
        return float(out.operational_g) / 3.6e6
    except Exception:
        return None


def _note(meter: Any, code: str, message: str) -> None:
    add = getattr(meter, "add_warning", None)
    if add is not None:
        try:
            add(code, message)
        except Exception:
            pass


def _live_mode(options: RunOptions, stream: TextIO) -> str:
    if options.quiet:
        return "off"
    is_tty = False
    try:
        is_tty = stream.isatty()
    except (AttributeError, ValueError):
        pass
    if is_tty and options.live and os.environ.get("TERM", "") != "dumb":
        return "tty"
    return "lines" if options.log_interval_s and options.log_interval_s > 0 else "off"


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(command, env=env)
    except FileNotFoundError as exc:
        raise RunError(
            f"cannot run {command[0]!r}: {exc.strerror} (a script's `#!` interpreter may be "
            "missing)",
            EXIT_NOT_FOUND,
        ) from None
    except OSError as exc:
        raise RunError(
            f"cannot execute {command[0]!r}: {exc.strerror}", EXIT_CANNOT_EXECUTE
        ) from None


def _wait(child: subprocess.Popen[bytes], display: Any) -> int:
    """Wait for the child, refreshing the display (checkpoints are the run's writer's)."""
    try:
        while True:
            wait_s = min(display.seconds_to_next(time.monotonic()), 0.5)
            try:
                return child.wait(timeout=max(0.01, wait_s))
            except subprocess.TimeoutExpired:
                pass
            display.tick(time.monotonic())
    except BaseException:
        # greenmeter itself failed while waiting: do not leave the command orphaned
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                child.kill()
        raise


def run(options: RunOptions, *, stderr: TextIO | None = None) -> int:
    """Run ``options.command`` under measurement; returns the exit code to use.

    Raises:
        RunError: the command cannot be started or the options are unusable (the
            message names the fix; ``exit_code`` says what to exit with).
    """
    from greenmeter.meter import EnergyMeter

    err = stderr if stderr is not None else sys.stderr
    command = list(options.command)
    resolve_command(command)
    _check_output(options.output)
    if options.powercap_root is not None and not os.path.isdir(options.powercap_root):
        raise RunError(
            f"--powercap-root {options.powercap_root!r} is not a directory; point it at a "
            "powercap tree such as /sys/class/powercap"
        )
    from greenmeter.carbon.check import check_configuration, warn_configuration

    problems = check_configuration(options.carbon)
    if any(p.fatal for p in problems):
        raise RunError("; ".join(p.message for p in problems if p.fatal))
    warn_configuration(problems=problems, stream=err)
    sensors = _testing_sensors()
    try:
        meter = EnergyMeter(
            sensors,
            powercap_root=options.powercap_root,
            gpus=options.gpus,
            gpu=options.gpu,
            cpu=options.cpu,
            sample_interval_s=options.interval_s,
            carbon=options.carbon,
            run_name=options.run_name,
            report_path=options.output,
            checkpoint_interval_s=options.checkpoint_interval_s,
            handle_signals=False,  # the runner forwards signals to the command itself
            estimate_scope=options.estimate_scope,
            export=options.export,
            tags=options.tags or None,
            verbose=False,  # the runner prints its own closing line
        )
    except ValueError as exc:
        raise RunError(str(exc)) from None
    g_per_j = _g_per_j(meter.run)
    report_kwargs: dict[str, Any] = {
        "command": command if options.include_command else None,
        "include_command": options.include_command,
        "include_git": options.include_git,
    }
    meter.report_kwargs.update(report_kwargs)
    forwarder = Forwarder()
    forwarder.install()
    try:
        returncode, stats = _measure(meter, command, options, forwarder, err, g_per_j)
        return _finish(meter, options, forwarder, returncode, stats, err)
    finally:
        forwarder.restore()  # only now: a Ctrl-C while the report is written is ignored


def _measure(
    meter: Any,
    command: list[str],
    options: RunOptions,
    forwarder: Forwarder,
    err: TextIO,
    g_per_j: float | None,
) -> tuple[int, dict[str, Any]]:
    """Start the meter and the channel, run the command; returns (returncode, stats).

    ``stats`` holds the channel's counters and ``surviving_pids``: the command's
    descendants still alive when it exited (None where they cannot be found).
    """
    from greenmeter.cli.run.live import EpochTracker, LiveDisplay
    from greenmeter.cli.run.receiver import ChannelServer
    from greenmeter.cli.run.survivors import SurvivorWatch

    watch = SurvivorWatch()

    with ChannelServer() as server:
        try:
            meter.start()
        except Exception as exc:
            raise RunError(f"could not start measuring: {exc}", EXIT_REPORT_FAILED) from exc
        if not options.quiet:
            for exporter in meter.exporters:
                err.write(f"greenmeter: live metrics: {exporter.describe()}\n")
        display: LiveDisplay | None = None
        try:
            tracker = EpochTracker(lambda: meter.total_energy_j)
            server.start(meter, observers=[tracker])
            mode = _live_mode(options, err)
            display = LiveDisplay(
                meter,
                err,
                mode=mode,
                period_s=options.refresh_s if mode == "tty" else options.log_interval_s,
                tracker=tracker,
                total_epochs=options.epochs,
                g_per_j=g_per_j,
            )
            watch.start()
            child = _spawn(command, {**os.environ, **server.env()})
            forwarder.child = child
            for sig in list(forwarder.received):  # arrived while the child was starting
                forwarder.forward(sig)
            returncode = _wait(child, display)
            try:  # greenmeter's own helpers (git) are done once the facts are in
                meter.run.facts()
            except Exception:
                pass
            survivors = watch.survivors(child.pid)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt) or forwarder.interrupted
            meter.report_kwargs.setdefault("status", "interrupted" if interrupted else "failed")
            meter.stop()
            raise
        finally:
            watch.stop()
            if display is not None:
                display.close()
        server.finish()
        return returncode, {**server.stats(), "surviving_pids": survivors}


def _finish(
    meter: Any,
    options: RunOptions,
    forwarder: Forwarder,
    returncode: int,
    stats: dict[str, Any],
    err: TextIO,
) -> int:
    """Stop the meter, write the report, print the summary; returns the exit code."""
    if forwarder.interrupted or (returncode < 0 and -returncode in INTERRUPTING_SIGNALS):
        status = "interrupted"
    elif returncode != 0:
        status = "failed"
    else:
        status = "complete"
    closed = stats["channel_closed_at_exit"]
    if closed:
        _note(
            meter,
            "channel.phase_open_at_exit",
            f"{closed} phase(s) of the command were still open when its process ended; "
            "they were closed at that instant",
        )
    if stats["channel_invalid"] or stats["channel_lost"]:
        _note(
            meter,
            "channel.events_dropped",
            f"{stats['channel_invalid']} invalid and {stats['channel_lost']} lost phase "
            "event(s) from the command were not applied",
        )
    survivors = stats.pop("surviving_pids", None)
    if survivors:
        from greenmeter.cli.run.survivors import describe_survivors

        line = describe_survivors(survivors)
        _note(meter, "command.processes_survived", line)
        if not options.quiet:
            err.write(f"greenmeter: {line}\n")
            err.flush()
    code = exit_code_of(returncode)
    extra: dict[str, Any] = {
        **options.extra,
        **stats,
        "exit_code": code,
        "monotonic_start_s": meter.started_mono,
    }
    if survivors is not None:
        extra["surviving_processes"] = len(survivors)
        extra["surviving_pids"] = ",".join(str(p) for p in survivors[:100])
    if returncode < 0:
        extra["signal"] = describe_end(returncode).removeprefix("killed by ")
    meter.report_kwargs.update(status=status, extra=extra)
    meter.stop()  # the run writes the final report, after any checkpoint in flight
    outcome = meter.run.outcome
    report = outcome.report if outcome is not None else None
    if report is None or outcome is None or outcome.path != options.output:
        why = outcome.error if outcome is not None else "the meter did not stop"
        err.write(
            f"greenmeter: error: could not write the report to {str(options.output)!r}: {why}\n"
        )
        return code if code != 0 else EXIT_REPORT_FAILED
    if not options.quiet:
        err.write(_summary(report, options.output, returncode, status) + "\n")
        err.flush()
    return code


def _summary(report: Any, output: Path, returncode: int, status: str) -> str:
    from greenmeter.render.closing import summary_line
    from greenmeter.render.numbers import format_duration

    lead = (
        f"greenmeter: command {describe_end(returncode)} after "
        f"{format_duration(report.duration_s)} ({status});"
    )
    return summary_line(report, output, lead=lead, with_status=False)
