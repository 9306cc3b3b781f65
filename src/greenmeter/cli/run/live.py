"""The live display of ``greenmeter run``: power, energy and CO2e while a command runs.

On a terminal the status sits on the bottom row, below the command's own output (the
rows above scroll as usual; the bottom row is reserved with a scroll region, as apt
does, and given back when the run ends). Elsewhere (a log file, CI) it is one line
every ``period_s`` seconds, or nothing.

For training runs the display projects the run's total energy and CO2e once a few
epochs are done. Epochs are the phases of kind ``epoch`` or named ``epoch-N``
(``epoch_N``, ``epochN``) that the command reports through the phase channel. The
first epoch is treated as warm-up (data loading, compilation, caches) and left out of
the per-epoch figures once three epochs are done; the range is the lowest and highest
steady epoch. With the total number of epochs (``greenmeter run --epochs N``) the
projection is a total for the run and an ETA, else a figure per epoch.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from greenmeter.render.numbers import format_duration, format_energy, format_mass

__all__ = [
    "EpochStats",
    "EpochTracker",
    "LiveDisplay",
    "LiveSample",
    "Projection",
    "format_status",
    "is_epoch",
    "project",
    "short_name",
]

#: Completed epochs needed before the first one is dropped as warm-up.
WARMUP_AFTER = 3
_EPOCH_NAME = re.compile(r"^epoch[-_ ]?(\d+)$", re.IGNORECASE)


def is_epoch(name: str, kind: str) -> bool:
    """True for a phase that stands for one training epoch."""
    return kind == "epoch" or _EPOCH_NAME.match(name) is not None


@dataclass(frozen=True)
class EpochStats:
    """What the completed epochs say (one process's epochs, energy of the whole run).

    Attributes:
        completed: Epochs finished so far.
        used: Epochs the figures are based on (``completed`` minus a warm-up epoch).
        warmup_excluded: True when the first epoch was left out.
        mean_j / low_j / high_j: Energy per epoch (joules): mean, lowest, highest.
        mean_s: Duration per epoch (seconds), mean over the same epochs.
        base_energy_j: Run energy when the last epoch ended (joules).
        base_t_mono: When the last epoch ended (``time.monotonic()``).
    """

    completed: int
    used: int
    warmup_excluded: bool
    mean_j: float
    low_j: float
    high_j: float
    mean_s: float
    base_energy_j: float
    base_t_mono: float


class EpochTracker:
    """Follows epoch phases from the channel and measures each epoch's energy.

    A :class:`~greenmeter.cli.run.receiver.PhaseObserver`. Energy per epoch is the difference of
    ``energy_fn()`` (the run's total energy, joules) between the epoch's entry and exit.
    With several processes (DDP ranks) the epochs of the first process that reported
    one are used: every rank runs the same epochs at the same time, and the energy read
    is the whole run's anyway.
    """

    def __init__(
        self, energy_fn: Callable[[], float], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._energy = energy_fn
        self._clock = clock
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._open: dict[tuple[str, ...], tuple[float, float]] = {}
        self._done: list[tuple[float, float, float, float]] = []  # (J, s, end J, end t)

    def on_enter(self, pid: int, path: tuple[str, ...], kind: str) -> None:
        """Channel callback: a phase was entered."""
        if not is_epoch(path[-1], kind):
            return
        with self._lock:
            if self._pid is None:
                self._pid = pid
            if pid != self._pid:
                return
        start = (self._energy(), self._clock())
        with self._lock:
            self._open[path] = start

    def on_exit(self, pid: int, path: tuple[str, ...], kind: str) -> None:
        """Channel callback: a phase was exited."""
        if pid != self._pid or not is_epoch(path[-1], kind):
            return
        with self._lock:
            start = self._open.pop(path, None)
        if start is None:
            return
        energy, now = self._energy(), self._clock()
        with self._lock:
            self._done.append((max(0.0, energy - start[0]), max(0.0, now - start[1]), energy, now))

    def record(self, energy_j: float, duration_s: float, end_energy_j: float, end_t: float) -> None:
        """Add a completed epoch directly (joules, seconds, run energy and instant at its end)."""
        with self._lock:
            self._done.append((energy_j, duration_s, end_energy_j, end_t))

    def stats(self) -> EpochStats | None:
        """Per-epoch figures, or None before the first epoch ends."""
        with self._lock:
            done = list(self._done)
        if not done:
            return None
        steady = done[1:] if len(done) >= WARMUP_AFTER else done
        energies = [d[0] for d in steady]
        return EpochStats(
            completed=len(done),
            used=len(steady),
            warmup_excluded=len(steady) < len(done),
            mean_j=sum(energies) / len(energies),
            low_j=min(energies),
            high_j=max(energies),
            mean_s=sum(d[1] for d in steady) / len(steady),
            base_energy_j=done[-1][2],
            base_t_mono=done[-1][3],
        )


@dataclass(frozen=True)
class Projection:
    """Projected whole-run energy (joules) with a range, and time left (seconds)."""

    total_j: float
    low_j: float
    high_j: float
    remaining_epochs: int
    eta_s: float


def project(stats: EpochStats, total_epochs: int, now_mono: float) -> Projection | None:
    """Project the run's total energy from the completed epochs.

    Total = energy when the last epoch ended + remaining epochs x energy per epoch
    (mean; range from the lowest and highest steady epoch). Returns None before
    ``WARMUP_AFTER`` epochs are done (too little to go on) or when ``total_epochs`` is
    not above the completed count.
    """
    if stats.completed < WARMUP_AFTER or total_epochs <= 0:
        return None
    remaining = max(0, total_epochs - stats.completed)
    elapsed_in_epoch = max(0.0, now_mono - stats.base_t_mono)
    return Projection(
        total_j=stats.base_energy_j + remaining * stats.mean_j,
        low_j=stats.base_energy_j + remaining * stats.low_j,
        high_j=stats.base_energy_j + remaining * stats.high_j,
        remaining_epochs=remaining,
        eta_s=max(0.0, remaining * stats.mean_s - elapsed_in_epoch) if remaining else 0.0,
    )


# -- formatting ---------------------------------------------------------------------------


def short_name(component: Any) -> str:
    """A short label for a component in the live line: ``gpu0``, ``cpu1``, ``ram~``.

    ``~`` marks an estimated component.
    """
    kind = getattr(getattr(component, "kind", None), "value", None) or str(
        getattr(component, "kind", "?")
    )
    detail = getattr(component, "detail", {}) or {}
    index = detail.get("index") or detail.get("socket")
    if index is None:
        digits = re.search(r"(\d+)$", str(getattr(component, "id", "")))
        index = digits.group(1) if digits else ""
    method = getattr(getattr(component, "method", None), "value", None)
    return f"{kind}{index}{'~' if method == 'estimated' else ''}"


@dataclass(frozen=True)
class LiveSample:
    """One refresh of the display.

    Attributes:
        elapsed_s: Since the run started (seconds).
        power_w: Mean power since the previous refresh per component label (watts).
        energy_j: Energy so far, all components (joules).
        co2e_g: Operational CO2e so far (grams), None when carbon is not resolved.
        epochs: Epoch figures, when the command reports epochs.
        projection: Projected total, when ``--epochs`` is known and enough epochs ran.
        total_epochs: The expected number of epochs, if given.
        g_per_j: CO2e per joule of IT energy, to convert projections (None: unknown).
    """

    elapsed_s: float
    power_w: Mapping[str, float]
    energy_j: float
    co2e_g: float | None = None
    epochs: EpochStats | None = None
    projection: Projection | None = None
    total_epochs: int | None = None
    g_per_j: float | None = None
    extra: Sequence[str] = field(default_factory=tuple)


def format_status(sample: LiveSample, width: int | None = None) -> str:
    """The one-line status text (no escape sequences), cut to ``width`` characters."""
    parts = [f"greenmeter {format_duration(sample.elapsed_s)}"]
    total_w = sum(sample.power_w.values())
    if sample.power_w:
        each = ", ".join(f"{k} {v:.0f}" for k, v in sample.power_w.items())
        parts.append(f"{total_w:.0f} W ({each})" if len(sample.power_w) > 1 else f"{total_w:.0f} W")
    parts.append(format_energy(sample.energy_j))
    if sample.co2e_g is not None:
        parts.append(f"{format_mass(sample.co2e_g)} CO2e")
    ep = sample.epochs
    if ep is not None:
        of = f"/{sample.total_epochs}" if sample.total_epochs else ""
        pr = sample.projection
        if pr is not None:
            low, high = format_energy(pr.low_j), format_energy(pr.high_j)
            text = f"epoch {ep.completed}{of}: total ~{format_energy(pr.total_j)}"
            if low != high:
                text += f" ({low}-{high})"
            if sample.g_per_j is not None:
                text += f" ~{format_mass(pr.total_j * sample.g_per_j)} CO2e"
            if pr.remaining_epochs:
                text += f", ETA {format_duration(pr.eta_s)}"
        else:
            text = f"epoch {ep.completed}{of}: {format_energy(ep.mean_j)}/epoch"
            low, high = format_energy(ep.low_j), format_energy(ep.high_j)
            if ep.used > 1 and low != high:
                text += f" ({low}-{high})"
        parts.append(text)
    parts.extend(sample.extra)
    line = " | ".join(parts)
    if width is not None and len(line) > width:
        line = line[: max(0, width - 3)] + "..."
    return line


# -- the display ----------------------------------------------------------------------------


class LiveDisplay:
    """Draws :class:`LiveSample` s on a terminal's bottom row or as periodic lines.

    Args:
        meter: The started meter (read through ``snapshot()``).
        stream: Where to draw (stderr).
        mode: ``"tty"`` (bottom row, refreshed every ``period_s``), ``"lines"`` (one
            line every ``period_s``) or ``"off"``.
        period_s: Seconds between refreshes.
        tracker: Epoch tracker fed by the channel, if any.
        total_epochs: Expected number of epochs for the projection.
        g_per_j: CO2e grams per joule of IT energy (PUE included), None if unknown.
    """

    def __init__(
        self,
        meter: Any,
        stream: TextIO,
        *,
        mode: str = "lines",
        period_s: float = 1.0,
        tracker: EpochTracker | None = None,
        total_epochs: int | None = None,
        g_per_j: float | None = None,
    ) -> None:
        if mode not in ("tty", "lines", "off"):
            raise ValueError(f"mode must be 'tty', 'lines' or 'off', got {mode!r}")
        self.meter = meter
        self.stream = stream
        self.mode = mode
        self.period_s = float(period_s)
        self.tracker = tracker
        self.total_epochs = total_epochs
        self.g_per_j = g_per_j
        self._names: dict[str, str] = {}
        self._prev: tuple[float, dict[str, float]] | None = None
        self._next = time.monotonic() + (0.5 if mode == "tty" else self.period_s)
        self._rows = 0
        self._active = False

    # sampling ----------------------------------------------------------------------

    def sample(self, now: float | None = None) -> LiveSample:
        """Read the meter and build the current :class:`LiveSample`."""
        snap = self.meter.snapshot()
        if now is None:  # the instant the counters were read
            now = snap.started_mono + snap.duration_s
        if not self._names:
            self._names = _unique_names(snap.components)
        energy = dict(snap.energy_j)
        power: dict[str, float] = {}
        prev = self._prev
        if prev is not None and now > prev[0]:
            dt = now - prev[0]
            for cid, value in energy.items():
                label = self._names.get(cid, cid)
                power[label] = max(0.0, value - prev[1].get(cid, 0.0)) / dt
        elif snap.duration_s > 0:
            for cid, value in energy.items():
                power[self._names.get(cid, cid)] = value / snap.duration_s
        self._prev = (now, energy)
        total = sum(energy.values())
        stats = self.tracker.stats() if self.tracker is not None else None
        proj = (
            project(stats, self.total_epochs, now)
            if stats is not None and self.total_epochs
            else None
        )
        return LiveSample(
            elapsed_s=snap.duration_s,
            power_w=power,
            energy_j=total,
            co2e_g=total * self.g_per_j if self.g_per_j is not None else None,
            epochs=stats,
            projection=proj,
            total_epochs=self.total_epochs,
            g_per_j=self.g_per_j,
        )

    def tick(self, now: float | None = None) -> None:
        """Refresh if the period has passed. Never raises."""
        if self.mode == "off":
            return
        now = time.monotonic() if now is None else now
        if now < self._next:
            return
        self._next = now + self.period_s
        try:
            self._draw(self.sample())
        except Exception:  # a display problem must not stop the run
            self.mode = "off"

    def seconds_to_next(self, now: float | None = None) -> float:
        """Seconds until the next refresh is due (inf when off)."""
        if self.mode == "off":
            return float("inf")
        return max(0.0, self._next - (time.monotonic() if now is None else now))

    # drawing -----------------------------------------------------------------------

    def _draw(self, sample: LiveSample) -> None:
        if self.mode == "lines":
            self.stream.write(f"[{format_status(sample)}]\n")
            self.stream.flush()
            return
        cols, rows = _terminal_size(self.stream)
        if rows < 3:
            return
        if rows != self._rows:
            self._reserve(rows)
        text = format_status(sample, cols - 1)
        # save cursor, go to the reserved row, clear it, draw, restore cursor
        self.stream.write(f"\0337\033[{rows};1H\033[2K\033[7m{text}\033[0m\0338")
        self.stream.flush()

    def _reserve(self, rows: int) -> None:
        """Keep the bottom row out of the scroll region (rows 1..rows-1)."""
        # a newline first, so the cursor is not on the row we take away
        self.stream.write(f"\n\0337\033[1;{rows - 1}r\0338\033[1A")
        self.stream.flush()
        self._rows = rows
        self._active = True

    def close(self) -> None:
        """Give the bottom row back and clear it (terminal mode). Idempotent."""
        if not self._active:
            return
        self._active = False
        try:
            rows = _terminal_size(self.stream)[1]
            self.stream.write(f"\0337\033[1;{rows}r\033[{rows};1H\033[2K\0338")
            self.stream.flush()
        except Exception:
            pass


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns, size.lines
    except (OSError, ValueError, AttributeError):
        return 80, 0


def _unique_names(components: Sequence[Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    seen: dict[str, int] = {}
    for comp in components:
        name = short_name(comp)
        seen[name] = seen.get(name, 0) + 1
        names[comp.id] = name if seen[name] == 1 else f"{name}.{seen[name]}"
    return names
