"""Time-varying grid intensity: parse a series and split energy across its buckets.

A series is a list of (timestamp, intensity) points. Point ``i`` holds from its own
timestamp to the next point's; the last point holds for one median step. Energy of a
segment that spans several buckets is split in proportion to the time it overlaps each
(power assumed constant within a segment), so the total is energy-weighted, not a plain
mean of intensities.

Accepted inputs:

* CSV with a header row: a time column (``timestamp``, ``datetime``, ``time``, ``date``
  or Electricity Maps' ``Datetime (UTC)``) and an intensity column (``intensity``,
  ``carbon_intensity``, ``g_per_kwh``, ``carbonIntensity``, or Electricity Maps'
  ``Carbon Intensity gCO2eq/kWh (LCA)`` / ``(direct)``; LCA is preferred).
* JSON: a list of objects with such keys, a list of ``[timestamp, intensity]`` pairs,
  or an object holding the list under ``history`` or ``data`` (Electricity Maps API
  responses).

Timestamps are ISO 8601 (``Z`` or an offset; a timestamp without offset is taken as
UTC, as in Electricity Maps exports) or Unix seconds.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greenmeter.carbon.errors import CarbonError

__all__ = [
    "MAX_SERIES_BYTES",
    "MAX_SERIES_POINTS",
    "IntensitySeries",
    "describe",
    "load_series",
    "parse",
]

#: Largest series file accepted (bytes): a year of 5-minute data fits easily.
MAX_SERIES_BYTES = 16 * 1024 * 1024
#: Most points accepted.
MAX_SERIES_POINTS = 500_000
#: A spacing larger than this many median steps is a gap.
GAP_FACTOR = 2.0
#: Accepted time range of a series, Unix seconds: 1970-01-01 to 9999-12-31 (UTC).
MIN_TIME_S = 0.0
MAX_TIME_S = 253_402_300_799.0

_TIME_KEYS = ("timestamp", "datetime", "datetime (utc)", "time", "date", "start", "ts")
_VALUE_KEYS = (
    "intensity",
    "intensity_g_per_kwh",
    "carbon_intensity",
    "carbonintensity",
    "g_per_kwh",
    "carbon intensity gco2eq/kwh (lca)",
    "carbon intensity gco₂eq/kwh (lca)",
    "carbon intensity gco2eq/kwh (direct)",
    "carbon intensity gco₂eq/kwh (direct)",
    "value",
)


@dataclass(frozen=True)
class IntensitySeries:
    """Validated points, sorted in time, with bucket ends.

    Attributes:
        times_s: Bucket starts, Unix seconds (UTC).
        values_g_per_kwh: Intensity per bucket.
        ends_s: Bucket ends (next start; last one = last start + step_s).
        step_s: Median spacing, seconds.
        origin: Where the points came from (file path or provider).
        basis: "lifecycle", "direct_combustion" or "unknown", as the series states it.
        zone: The zone the series names itself (Electricity Maps), else None.
    """

    times_s: tuple[float, ...]
    values_g_per_kwh: tuple[float, ...]
    ends_s: tuple[float, ...]
    step_s: float
    origin: str
    basis: str = "unknown"
    zone: str | None = None

    @property
    def start_s(self) -> float:
        return self.times_s[0]

    @property
    def end_s(self) -> float:
        return self.ends_s[-1]

    def split(self, start_s: float, end_s: float) -> list[tuple[float, float, bool]]:
        """Weights of ``[start_s, end_s)`` per bucket: ``(fraction, intensity, inside)``.

        Fractions sum to 1. For a part outside the series ``inside`` is False and
        ``intensity`` is the nearest point's value (the first before the series, the
        last after it); the caller may substitute another value. A zero-length segment
        falls wholly in the bucket holding ``start_s``.
        """
        first, last = self.values_g_per_kwh[0], self.values_g_per_kwh[-1]
        if end_s <= start_s:
            value = self._at(start_s)
            if value is None:
                return [(1.0, first if start_s < self.start_s else last, False)]
            return [(1.0, value, True)]
        duration = end_s - start_s
        out: list[tuple[float, float, bool]] = []
        if start_s < self.start_s:
            out.append(((min(end_s, self.start_s) - start_s) / duration, first, False))
        lo = max(start_s, self.start_s)
        hi = min(end_s, self.end_s)
        if hi > lo:
            i = max(0, bisect.bisect_right(self.times_s, lo) - 1)
            while i < len(self.times_s) and self.times_s[i] < hi:
                a = max(lo, self.times_s[i])
                b = min(hi, self.ends_s[i])
                if b > a:
                    out.append(((b - a) / duration, self.values_g_per_kwh[i], True))
                i += 1
        if end_s > self.end_s:
            out.append(((end_s - max(start_s, self.end_s)) / duration, last, False))
        return out

    def _at(self, t_s: float) -> float | None:
        if t_s < self.start_s or t_s >= self.end_s:
            return None
        return self.values_g_per_kwh[bisect.bisect_right(self.times_s, t_s) - 1]


def _parse_time(raw: Any, where: str) -> float:
    if isinstance(raw, bool):
        raise CarbonError(f"{where}: timestamp {raw!r} is not a date-time")
    if isinstance(raw, (int, float)):
        if not math.isfinite(raw):
            raise CarbonError(f"{where}: timestamp {raw!r} is not finite")
        return float(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise CarbonError(f"{where}: missing timestamp")
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):  # "nan" and "inf" parse as floats
            raise CarbonError(
                f"{where}: cannot read timestamp {raw!r}; use ISO 8601 such as "
                "'2024-05-01T13:00:00Z' or Unix seconds"
            ) from None
        return seconds
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _parse_value(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
        raise CarbonError(f"{where}: missing intensity value")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise CarbonError(f"{where}: intensity {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise CarbonError(f"{where}: intensity {raw!r} is not finite")
    if value < 0:
        raise CarbonError(f"{where}: intensity {value} is negative (gCO2e/kWh must be >= 0)")
    return value


def _pick(keys: Iterable[str], wanted: Sequence[str]) -> str | None:
    lowered = {k.strip().lower(): k for k in keys if isinstance(k, str)}
    for w in wanted:
        if w in lowered:
            return lowered[w]
    return None


def _rows_from_csv(text: str, origin: str) -> list[tuple[float, float, str]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    points: list[tuple[float, float, str]] = []
    t_col = v_col = -1
    for line_no, row in enumerate(reader, start=1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lstrip("\ufeff") for c in row]
            t_name = _pick(header, _TIME_KEYS)
            v_name = _pick(header, _VALUE_KEYS)
            if t_name is None or v_name is None:
                raise CarbonError(
                    f"{origin} line {line_no}: header {header!r} needs a time column "
                    "('timestamp') and an intensity column ('intensity', gCO2e/kWh)"
                )
            t_col, v_col = header.index(t_name), header.index(v_name)
            continue
        where = f"{origin} line {line_no}"
        if len(row) <= max(t_col, v_col):
            raise CarbonError(
                f"{where}: expected {len(header)} columns, found {len(row)} ({row!r})"
            )
        points.append((_parse_time(row[t_col], where), _parse_value(row[v_col], where), where))
        if len(points) > MAX_SERIES_POINTS:
            raise CarbonError(f"{origin}: more than {MAX_SERIES_POINTS} points; resample it")
    if header is None:
        raise CarbonError(f"{origin}: empty file (expected a header and rows)")
    return points


def _rows_from_json(data: Any, origin: str) -> list[tuple[float, float, str]]:
    if isinstance(data, dict):
        for key in ("history", "data", "series", "points"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            raise CarbonError(
                f"{origin}: JSON object needs a list under 'history' or 'data' "
                "(or give a list of points)"
            )
    if not isinstance(data, list):
        raise CarbonError(f"{origin}: expected a JSON list of points")
    if len(data) > MAX_SERIES_POINTS:
        raise CarbonError(f"{origin}: more than {MAX_SERIES_POINTS} points; resample it")
    points: list[tuple[float, float, str]] = []
    for i, item in enumerate(data):
        where = f"{origin} item {i}"
        if isinstance(item, (list, tuple)) and len(item) == 2:
            t_raw, v_raw = item
        elif isinstance(item, dict):
            t_name = _pick(item, _TIME_KEYS)
            v_name = _pick(item, _VALUE_KEYS)
            if t_name is None or v_name is None:
                raise CarbonError(
                    f"{where}: needs a time key ('datetime' or 'timestamp') and an "
                    f"intensity key ('carbonIntensity' or 'intensity'); got {sorted(item)}"
                )
            t_raw, v_raw = item[t_name], item[v_name]
        else:
            raise CarbonError(f"{where}: expected an object or a [timestamp, intensity] pair")
        points.append((_parse_time(t_raw, where), _parse_value(v_raw, where), where))
    return points


def _validate(points: list[tuple[float, float, str]], origin: str) -> IntensitySeries:
    if len(points) < 2:
        raise CarbonError(
            f"{origin}: a time series needs at least 2 points (found {len(points)}); "
            "for one value give intensity_g_per_kwh instead"
        )
    for (t0, _, w0), (t1, _, w1) in itertools.pairwise(points):
        if t1 == t0:
            raise CarbonError(f"{w1}: duplicate timestamp (same as {w0})")
        if t1 < t0:
            raise CarbonError(f"{w1}: timestamp goes back in time (before {w0}); sort the rows")
    steps = [b[0] - a[0] for a, b in itertools.pairwise(points)]
    step = statistics.median(steps)
    for t, _, where in (points[0], points[-1]):
        if not MIN_TIME_S <= t or not t + step <= MAX_TIME_S:
            raise CarbonError(
                f"{where}: timestamp {t!r} is outside 1970-01-01 to 9999-12-31 (UTC); give "
                "ISO 8601 date-times or Unix seconds"
            )
    for ((_, _, w0), (_, _, w1)), dt in zip(itertools.pairwise(points), steps, strict=True):
        if dt > GAP_FACTOR * step:
            raise CarbonError(
                f"{w1}: gap of {dt / 3600:.3g} h after {w0} while the series step is "
                f"{step / 3600:.3g} h; fill the missing rows (or resample) so every "
                "interval has a value"
            )
    times = tuple(p[0] for p in points)
    return IntensitySeries(
        times_s=times,
        values_g_per_kwh=tuple(p[1] for p in points),
        ends_s=(*times[1:], times[-1] + step),
        step_s=step,
        origin=origin,
    )


def parse(text: str, *, origin: str, fmt: str | None = None) -> IntensitySeries:
    """Parse series text; ``fmt`` is "csv" or "json" (guessed from the text when None)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if fmt is None:
        fmt = "json" if stripped[:1] in ("[", "{") else "csv"
    if fmt == "json":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CarbonError(
                f"{origin} line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})"
            ) from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise CarbonError(f"{origin}: invalid JSON ({exc})") from None
        except RecursionError:
            raise CarbonError(f"{origin}: JSON nested too deeply to be a time series") from None
        points = _rows_from_json(data, origin)
    elif fmt == "csv":
        try:
            points = _rows_from_csv(text, origin)
        except csv.Error as exc:  # e.g. a NUL byte, or a field over the csv size limit
            raise CarbonError(f"{origin}: not readable as CSV ({exc})") from None
    else:
        raise CarbonError(f"unknown series format {fmt!r}; use 'csv' or 'json'")
    basis, zone = describe(text)
    return dataclasses.replace(_validate(points, origin), basis=basis, zone=zone)


def load_series(path: str | os.PathLike[str]) -> IntensitySeries:
    """Read and validate a series file (bounded size).

    Raises:
        CarbonError: missing, too large, malformed or gappy file (the message names the
            line or item and what is wrong).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise CarbonError(f"cannot read intensity series {str(p)!r}: {exc.strerror}") from None
    if size > MAX_SERIES_BYTES:
        raise CarbonError(
            f"intensity series {str(p)!r} is {size / 1e6:.1f} MB, above the "
            f"{MAX_SERIES_BYTES / 1e6:.0f} MB limit; keep only the run's period or resample"
        )
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CarbonError(f"intensity series {str(p)!r} is not UTF-8 text") from None
    suffix = p.suffix.lower()
    fmt = "json" if suffix == ".json" else "csv" if suffix in (".csv", ".txt") else None
    return parse(text, origin=str(p), fmt=fmt)


def describe(text: str) -> tuple[str, str | None]:
    """The basis and zone a series states about itself: ``(basis, zone)``.

    Electricity Maps CSV exports name the basis in the intensity column ("(LCA)" is
    lifecycle, "(direct)" direct combustion; the LCA column is the one used when both are
    there) and carry a "Zone id" column; its API responses carry ``emissionFactorType``
    and ``zone``. Anything else is ``("unknown", None)``.
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("[", "{"):
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError):
            return "unknown", None
        zone = data.get("zone") if isinstance(data, dict) else None
        items = data.get("history") or data.get("data") if isinstance(data, dict) else data
        first = items[0] if isinstance(items, list) and items else {}
        if not isinstance(first, dict):
            return "unknown", zone if isinstance(zone, str) else None
        kind = str(first.get("emissionFactorType", "")).lower()
        zone = zone or first.get("zone")
        basis = {"lifecycle": "lifecycle", "direct": "direct_combustion"}.get(kind, "unknown")
        return basis, zone if isinstance(zone, str) else None
    header = next(
        (line for line in stripped.splitlines() if line.strip() and not line.startswith("#")), ""
    ).lower()
    zone = None
    if "zone id" in header:
        rows = list(csv.reader(io.StringIO(stripped)))
        cols = [c.strip().lower() for c in rows[0]] if rows else []
        if len(rows) > 1 and "zone id" in cols and len(rows[1]) > cols.index("zone id"):
            zone = rows[1][cols.index("zone id")].strip() or None
    if "(lca)" in header:
        return "lifecycle", zone
    if "(direct)" in header:
        return "direct_combustion", zone
    return "unknown", zone
