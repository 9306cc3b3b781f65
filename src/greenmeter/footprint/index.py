"""The footprint index: what each report file contributed, so unchanged files are not read.

An embedded SQLite database (standard library ``sqlite3``; no server). One row per file,
keyed by absolute path and checked against the file's size and modification time (ns):
a row whose file still has that size and time is used as it is; any other file is read
again. A row holds the :class:`~greenmeter.footprint.record.RunRecord` figures, one per
column (or, for a file that is not a report, the problem found), and for a report that
is one part of a larger run, a slim copy for merging. Runs merged from several files are
kept too, keyed by run id and a fingerprint of their files.

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
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
INDEX_FORMAT = "3"
#: File name of the default index in the cache directory.
INDEX_NAME = "footprint-index.sqlite3"
_BATCH = 500
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS carbon (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    problem TEXT,
    slim BLOB,
    has_record INTEGER NOT NULL,
    {columns}
);
CREATE TABLE IF NOT EXISTS merged (
    run_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, record BLOB NOT NULL
);
"""
_FORMAT = f"{INDEX_FORMAT}/columns"


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
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is not None and row[0] != _FORMAT:  # another layout: start afresh
                db.execute("DROP TABLE IF EXISTS files")
                db.execute("DELETE FROM merged")
                db.execute("DELETE FROM carbon")
            for statement in _SCHEMA_SQL.split(";"):
                if statement.strip():
                    db.execute(statement)
            if row is None or row[0] != _FORMAT:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (_FORMAT,))
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
        decode = _Decoder(self._carbon_by_id).row
        with self._guard():
            for folder in dirs:
                lo, hi = _prefix_bounds(folder)
                for path, size, mtime, problem, has, *fields in self._db.execute(
                    f"{_SELECT} WHERE path > ? AND path < ?", (lo, hi)
                ):
                    record = decode(path, fields) if has else None
                    out[path] = (size, mtime, record, problem)
            wanted = [f for f in files if f not in out and _encodable(f)]
            if wanted:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (path TEXT PRIMARY KEY)")
                self._db.execute("DELETE FROM wanted")
                self._db.executemany(
                    "INSERT OR IGNORE INTO wanted VALUES (?)", ((f,) for f in wanted)
                )
                for path, size, mtime, problem, has, *fields in self._db.execute(
                    f"{_SELECT} JOIN wanted USING (path)"
                ):
                    record = decode(path, fields) if has else None
                    out[path] = (size, mtime, record, problem)
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
        return _Decoder(self._carbon_by_id)(None, row[1])

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
        with self._write() as db:
            rows = [
                (e.path, e.size, e.mtime_ns, e.problem, e.slim, e.record is not None,
                 *(self._fields(db, e.record) if e.record is not None else _NO_RECORD))
                for e in batch
            ]  # fmt: skip
            db.executemany(_INSERT, rows)

    def forget(self, paths: Iterable[str]) -> int:
        """Remove the rows of files that are no longer there; returns how many."""
        gone = [(p,) for p in paths]
        if gone:
            with self._write() as db:
                db.executemany("DELETE FROM files WHERE path = ?", gone)
        return len(gone)

    def store_merged(self, record: RunRecord, fingerprint: str) -> None:
        """Keep a merged run for the next footprint over the same files."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO merged VALUES (?, ?, ?)",
                (record.run_id, fingerprint, self._encode(db, record, with_path=True)),
            )

    def _fields(self, db: sqlite3.Connection, record: RunRecord) -> list[Any]:
        """A record's fields (without the path) as stored in the columns: numbers and
        text as they are, the mappings and segments as sorted JSON text, the carbon
        setting by id."""
        fields = list(record[1:])
        fields[_TAGS] = _text(record.tags)
        fields[_PART] = _text(record.part)
        fields[_SEGMENTS] = _text(record.segments)
        fields[_GPU_MODELS] = _text(record.gpu_hours_by_model)
        fields[_CARBON] = self._carbon_id(db, record.carbon)
        return fields

    def _encode(
        self, db: sqlite3.Connection, record: RunRecord | None, *, with_path: bool = False
    ) -> bytes | None:
        """A record as stored: its fields (the path only ``with_path``) as a compact JSON
        array (data only: reading it back can never run code), the mappings as sorted
        JSON text, the carbon setting by id."""
        if record is None:
            return None
        shift = 1 if with_path else 0
        fields = list(record if with_path else record[1:])
        # Repeated values are stored as interned text: reading them back gives one shared
        # string each, which the decoder maps to one shared object.
        fields[_TAGS + shift] = _text(record.tags)
        fields[_PART + shift] = _text(record.part)
        fields[_SEGMENTS + shift] = _text(record.segments)
        fields[_GPU_MODELS + shift] = _text(record.gpu_hours_by_model)
        fields[_CARBON + shift] = self._carbon_id(db, record.carbon)
        for i in _STRINGS:
            if isinstance(fields[i + shift], str):
                fields[i + shift] = sys.intern(fields[i + shift])
        return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def fingerprint(stamps: Iterable[tuple[str, int, int]]) -> str:
    """A hash of files' (path, size, mtime_ns): changes when any of them changes."""
    digest = hashlib.sha256()
    for path, size, mtime in sorted(stamps):
        digest.update(f"{path}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


# positions in a stored record (RunRecord's fields without the path)
_TAGS = RunRecord._fields.index("tags") - 1
_PART = RunRecord._fields.index("part") - 1
_GPU_MODELS = RunRecord._fields.index("gpu_hours_by_model") - 1
_CARBON = RunRecord._fields.index("carbon") - 1
_STRINGS = tuple(
    RunRecord._fields.index(n) - 1 for n in ("schema_version", "status", "greenmeter_version")
)
_FIELDS = len(RunRecord._fields) - 1
_SEGMENTS = RunRecord._fields.index("segments") - 1
#: One column per stored field: SQLite hands back numbers and text as they were
#: stored, so reading a row is one C call and no parsing (mappings stay JSON text).
_COLUMNS = tuple(f"f_{name}" for name in RunRecord._fields[1:])
_SCHEMA_SQL = _SCHEMA.replace("{columns}", ",\n    ".join(_COLUMNS))
_SELECT = f"SELECT path, size, mtime_ns, problem, has_record, {', '.join(_COLUMNS)} FROM files"
_INSERT = f"INSERT OR REPLACE INTO files VALUES ({', '.join('?' * (6 + len(_COLUMNS)))})"
_NO_RECORD = (None,) * len(_COLUMNS)


def _text(value: object) -> str:
    """A mapping or tuple as compact, sorted, interned JSON."""
    return sys.intern(json.dumps(value, separators=(",", ":"), sort_keys=True))


class _Decoder:
    """Stored records back to :class:`RunRecord`. Equal tags, members and GPU-model maps
    come back as one shared object each (a hundred thousand runs hold far fewer objects)."""

    def __init__(self, carbon: dict[int, CarbonSetting]) -> None:
        self._carbon = carbon
        self._shared: dict[tuple[int, str], Any] = {}

    def _value(self, index: int, text: str) -> Any:
        value = json.loads(text)
        if index == _PART:
            value = tuple(value)
        elif index == _SEGMENTS:
            value = tuple(tuple(seg) for seg in value)
        self._shared[index, text] = value
        return value

    def row(self, path: str, f: list[Any]) -> RunRecord | None:
        """The record of ``path`` from its columns; None when they are not a stored
        record (the caller reads the file again)."""
        shared = self._shared
        try:
            tags = shared.get((_TAGS, f[_TAGS]))
            if tags is None:
                tags = self._value(_TAGS, f[_TAGS])
            part = shared.get((_PART, f[_PART]))
            if part is None:
                part = self._value(_PART, f[_PART])
            segments = shared.get((_SEGMENTS, f[_SEGMENTS]))
            if segments is None:
                segments = self._value(_SEGMENTS, f[_SEGMENTS])
            models = shared.get((_GPU_MODELS, f[_GPU_MODELS]))
            if models is None:
                models = self._value(_GPU_MODELS, f[_GPU_MODELS])
            carbon = self._carbon.get(f[_CARBON]) if f[_CARBON] is not None else None
        except (ValueError, TypeError, IndexError, RecursionError):
            return None
        return tuple.__new__(  # type: ignore[no-any-return]
            RunRecord,
            (path, *f[:_TAGS], tags, part, *f[_PART + 1 : _SEGMENTS], segments,
             *f[_SEGMENTS + 1 : _GPU_MODELS], models, *f[_GPU_MODELS + 1 : _CARBON], carbon,
             *f[_CARBON + 1 :]),
        )  # fmt: skip

    def __call__(self, path: str | None, blob: bytes) -> RunRecord | None:
        """The record of ``path`` stored as one JSON array (merged runs), or with ``path``
        None one stored with its path; None when the bytes are not a stored record."""
        try:
            f = json.loads(blob)
        except (ValueError, RecursionError):
            return None
        if not isinstance(f, list):
            return None
        if path is None and f:
            path, f = f[0], f[1:]
        if not isinstance(path, str) or len(f) != _FIELDS:
            return None
        return self.row(path, f)
