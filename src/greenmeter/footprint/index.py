"""The footprint index: what each report file contributed, so unchanged files are not read.

An embedded SQLite database (standard library ``sqlite3``; no server). One row per file,
keyed by absolute path and checked against the file's size and modification time (ns):
a row whose file still has that size and time is used as it is; any other file is read
again. A row holds the :class:`~greenmeter.footprint.record.RunRecord` figures (or, for
a file that is not a report, the problem found), and for a report that is one part of a
larger run, a slim copy for merging. Runs merged from several files are kept too, keyed
by run id and a fingerprint of their files.

By default the database is ``footprint-index.sqlite3`` in greenmeter's cache directory
(:func:`greenmeter.cache.cache_dir`). Several footprints may run at once: the database
is in WAL mode, every write is a short transaction, and a writer waits for another
(busy timeout). A damaged database is moved aside and rebuilt (the caller warns).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from greenmeter.cache import cache_dir
from greenmeter.footprint.record import CarbonSetting, RunRecord

__all__ = [
    "INDEX_FORMAT",
    "INDEX_NAME",
    "FootprintIndex",
    "IndexDamaged",
    "IndexEntry",
    "IndexUnavailable",
    "default_index_path",
    "fingerprint",
]

#: Version of the database layout; a database of another version is rebuilt.
INDEX_FORMAT = "1"
#: File name of the default index in the cache directory.
INDEX_NAME = "footprint-index.sqlite3"
_BATCH = 500
_BUSY_TIMEOUT_S = 60.0

_RECORD_COLUMNS = (
    "run_id", "run_name", "schema_version", "status", "start_ts", "end_ts", "duration_s",
    "tags", "part", "world_size", "segments", "it_energy_j", "facility_energy_j",
    "estimated_energy_j", "gpu_hours", "gpu_models", "co2e_location_g", "co2e_low_g",
    "co2e_high_g", "co2e_market_g", "co2e_embodied_g", "carbon_id", "greenmeter",
)  # fmt: skip
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS carbon (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    problem TEXT,
    {", ".join(_RECORD_COLUMNS)},
    slim BLOB
);
CREATE TABLE IF NOT EXISTS merged (
    run_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, record TEXT NOT NULL
);
"""


class IndexUnavailable(Exception):
    """The database cannot be used now (cannot be created, or locked for too long)."""


class IndexDamaged(IndexUnavailable):
    """The database file is damaged or not a database: move it aside and rebuild."""


@dataclass(frozen=True)
class IndexEntry:
    """What one file contributed: a record, or the problem that kept it out."""

    path: str
    size: int
    mtime_ns: int
    record: RunRecord | None = None
    problem: str | None = None
    slim: bytes | None = None


def default_index_path() -> Path:
    """``footprint-index.sqlite3`` in greenmeter's cache directory."""
    return cache_dir() / INDEX_NAME


def _prefix_bounds(folder: str) -> tuple[str, str]:
    """Paths strictly below ``folder`` sort between these two strings."""
    base = folder.rstrip(os.sep) + os.sep
    return base, base[:-1] + chr(ord(os.sep) + 1)


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class FootprintIndex:
    """An open index database (use as a context manager, or call :meth:`close`).

    Raises:
        IndexDamaged: from any method, when the database is damaged; the caller moves it
            aside with :meth:`discard` and starts again.
        IndexUnavailable: from any method, when it cannot be used now (not writable,
            locked by another process for longer than the busy timeout).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._carbon_ids: dict[str, int] = {}
        self._carbon_by_id: dict[int, CarbonSetting] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None
            )
        except (OSError, sqlite3.Error) as exc:
            raise IndexUnavailable(f"cannot open {self.path}: {exc}") from None
        try:
            self._setup()
        except IndexUnavailable:
            self._db.close()
            raise

    # -- set-up -----------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if any(w in text for w in ("locked", "busy", "unable to open", "readonly")):
                raise IndexUnavailable(f"{self.path}: {exc}") from None
            raise IndexDamaged(f"{self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:  # damaged file, not a database
            raise IndexDamaged(f"{self.path}: {exc}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _setup(self) -> None:
        with self._guard():
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None or row[0] != INDEX_FORMAT:
                if row is not None:  # another layout: start afresh
                    db.execute("DELETE FROM files")
                    db.execute("DELETE FROM merged")
                    db.execute("DELETE FROM carbon")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (INDEX_FORMAT,))
        with self._guard():
            for cid, key in self._db.execute("SELECT id, key FROM carbon"):
                self._carbon_ids[key] = cid
                self._carbon_by_id[cid] = CarbonSetting.from_key(key)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> FootprintIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def discard(path: str | os.PathLike[str]) -> Path | None:
        """Move a damaged database (and its WAL files) aside; returns where it went."""
        target = Path(path)
        aside = target.with_name(f"{target.name}.damaged-{int(time.time())}")
        moved = None
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(target) + suffix)
            try:
                os.replace(src, Path(str(aside) + suffix))
                moved = moved or aside
            except OSError:
                continue
        return moved

    # -- reading ----------------------------------------------------------------------

    def lookup(
        self, dirs: Sequence[str], files: Sequence[str]
    ) -> dict[str, tuple[int, int, RunRecord | None, str | None]]:
        """Rows under ``dirs`` and for ``files``: path -> (size, mtime_ns, record, problem)."""
        out: dict[str, tuple[int, int, RunRecord | None, str | None]] = {}
        cols = "path, size, mtime_ns, problem, " + ", ".join(_RECORD_COLUMNS)
        decode = _Decoder(self._carbon_by_id)
        with self._guard():
            for folder in dirs:
                lo, hi = _prefix_bounds(folder)
                rows = self._db.execute(
                    f"SELECT {cols} FROM files WHERE path > ? AND path < ?", (lo, hi)
                )
                for row in rows:
                    out[row[0]] = decode(row)
            wanted = [f for f in files if f not in out and _encodable(f)]
            if wanted:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (path TEXT PRIMARY KEY)")
                self._db.execute("DELETE FROM wanted")
                self._db.executemany(
                    "INSERT OR IGNORE INTO wanted VALUES (?)", ((f,) for f in wanted)
                )
                rows = self._db.execute(f"SELECT {cols} FROM files JOIN wanted USING (path)")
                for row in rows:
                    out[row[0]] = decode(row)
        return out

    def slim(self, path: str) -> bytes | None:
        """The slim report stored for ``path``, if any."""
        with self._guard():
            row = self._db.execute("SELECT slim FROM files WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def merged(self, run_id: str, fingerprint: str) -> RunRecord | None:
        """A run merged earlier from exactly the same files, if stored."""
        with self._guard():
            row = self._db.execute(
                "SELECT fingerprint, record FROM merged WHERE run_id = ?", (run_id,)
            ).fetchone()
        if row is None or row[0] != fingerprint:
            return None
        try:
            data = json.loads(row[1])
            carbon = data.pop("carbon")
            data["carbon"] = CarbonSetting(**carbon) if carbon is not None else None
            data["part"] = tuple(data["part"])
            data["segments"] = tuple(tuple(s) for s in data["segments"])
            return RunRecord(**data)
        except (ValueError, TypeError, KeyError):
            return None

    # -- writing ----------------------------------------------------------------------

    def _carbon_id(self, db: sqlite3.Connection, setting: CarbonSetting | None) -> int | None:
        if setting is None:
            return None
        key = setting.key()
        cid = self._carbon_ids.get(key)
        if cid is None:
            db.execute("INSERT OR IGNORE INTO carbon (key) VALUES (?)", (key,))
            cid = db.execute("SELECT id FROM carbon WHERE key = ?", (key,)).fetchone()[0]
            self._carbon_ids[key] = cid
            self._carbon_by_id[cid] = setting
        return cid

    def store(self, entries: Iterable[IndexEntry]) -> None:
        """Add or replace rows, in short transactions of a few hundred files."""
        batch: list[IndexEntry] = []
        for entry in entries:
            if _encodable(entry.path):
                batch.append(entry)
            if len(batch) >= _BATCH:
                self._store(batch)
                batch = []
        if batch:
            self._store(batch)

    def _store(self, batch: Sequence[IndexEntry]) -> None:
        marks = ", ".join("?" * (5 + len(_RECORD_COLUMNS)))
        sql = (
            f"INSERT OR REPLACE INTO files (path, size, mtime_ns, problem, "
            f"{', '.join(_RECORD_COLUMNS)}, slim) VALUES ({marks})"
        )
        with self._write() as db:
            rows = []
            for e in batch:
                cid = self._carbon_id(db, e.record.carbon) if e.record else None
                values = _encode(e.record, cid)
                rows.append((e.path, e.size, e.mtime_ns, e.problem, *values, e.slim))
            db.executemany(sql, rows)

    def purge(self, dirs: Sequence[str], keep: set[str]) -> int:
        """Forget files under ``dirs`` that are no longer there; returns how many."""
        gone: list[tuple[str]] = []
        with self._guard():
            for folder in dirs:
                lo, hi = _prefix_bounds(folder)
                for (path,) in self._db.execute(
                    "SELECT path FROM files WHERE path > ? AND path < ?", (lo, hi)
                ):
                    if path not in keep:
                        gone.append((path,))
        if gone:
            with self._write() as db:
                db.executemany("DELETE FROM files WHERE path = ?", gone)
        return len(gone)

    def store_merged(self, record: RunRecord, fingerprint: str) -> None:
        """Keep a merged run for the next footprint over the same files."""
        data = asdict(record)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO merged VALUES (?, ?, ?)",
                (record.run_id, fingerprint, json.dumps(data)),
            )


def fingerprint(stamps: Iterable[tuple[str, int, int]]) -> str:
    """A hash of files' (path, size, mtime_ns): changes when any of them changes."""
    digest = hashlib.sha256()
    for path, size, mtime in sorted(stamps):
        digest.update(f"{path}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _encode(r: RunRecord | None, carbon_id: int | None) -> tuple[object, ...]:
    if r is None:
        return (None,) * len(_RECORD_COLUMNS)
    return (
        r.run_id, r.run_name, r.schema_version, r.status, r.start_ts, r.end_ts, r.duration_s,
        _json(r.tags), _json(list(r.part)), r.world_size,
        _json([list(s) for s in r.segments]) if r.segments else None,
        r.it_energy_j, r.facility_energy_j, r.estimated_energy_j, r.gpu_hours,
        _json(r.gpu_hours_by_model) if r.gpu_hours_by_model else None,
        r.co2e_location_g, r.co2e_location_low_g, r.co2e_location_high_g, r.co2e_market_g,
        r.co2e_embodied_g, carbon_id, r.greenmeter_version,
    )  # fmt: skip


class _Decoder:
    """Rows back to records; equal JSON texts (tags, members) share one object."""

    def __init__(self, carbon: dict[int, CarbonSetting]) -> None:
        self._carbon = carbon
        self._texts: dict[str, Any] = {}

    def _load(self, text: str | None, default: Any) -> Any:
        if text is None:
            return default
        value = self._texts.get(text)
        if value is None:
            value = json.loads(text)
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            self._texts[text] = value
        return value

    def __call__(self, row: Sequence[Any]) -> tuple[int, int, RunRecord | None, str | None]:
        path, size, mtime_ns, problem = row[0], row[1], row[2], row[3]
        if problem is not None or row[4] is None:
            return size, mtime_ns, None, problem or "no figures stored"
        # The record columns follow RunRecord's fields, path first (checked by a test).
        values = list(row[4:])
        values[7] = self._load(values[7], {})  # tags
        values[8] = self._load(values[8], ())  # part
        values[10] = self._load(values[10], ())  # segments
        values[15] = self._load(values[15], {})  # gpu_hours_by_model
        values[21] = self._carbon.get(values[21]) if values[21] is not None else None
        return size, mtime_ns, RunRecord(path, *values), None
