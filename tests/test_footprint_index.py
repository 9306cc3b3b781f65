"""The footprint index: unchanged files are not read again, changed ones are, deleted ones
disappear; a damaged index is rebuilt; concurrent footprints share it safely."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from footprint_support import CPU, GPU_B_ID, GPU_ID, make_report, save, sums
from greenmeter.footprint import FootprintSummary, footprint
from greenmeter.footprint.collect import read_entry
from greenmeter.footprint.index import FootprintIndex, IndexEntry, default_index_path
from greenmeter.footprint.scan import FoundFile
from greenmeter.report import io as report_io
from greenmeter.report import merge as report_merge


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every report file the footprint opens, in order."""
    opened: list[str] = []
    real = report_io.read_report_bytes

    def counting(path: str, **kw: object) -> bytes:
        opened.append(str(path))
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(report_io, "read_report_bytes", counting)
    monkeypatch.setattr(report_io, "load_report", lambda p: pytest.fail(f"re-read {p}"))
    return opened


@pytest.fixture
def merges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    done: list[int] = []
    real = report_merge.merge_reports

    def counting(parts: list) -> object:
        done.append(len(parts))
        return real(parts)

    monkeypatch.setattr(report_merge, "merge_reports", counting)
    return done


def project(root: Path) -> list[Path]:
    paths = [save(make_report(n, tags={"model": f"m{n % 2}"}, day=n), root / f"r{n}.json")
             for n in range(1, 6)]  # fmt: skip
    # one run written by two ranks (merged), and a file that is not a report
    paths.append(
        save(make_report(9, ids=[*CPU, GPU_ID], rank=0, world_size=2), root / "d" / "0.json")
    )
    paths.append(
        save(make_report(9, ids=[*CPU, GPU_B_ID], rank=1, world_size=2), root / "d" / "1.json")
    )
    (root / "junk.json").write_text("{not json")
    return paths


def fp(root: Path, index: Path | None, **kw: object) -> FootprintSummary:
    return footprint([str(root)], index=index, group_by=["model"], **kw)  # type: ignore[arg-type]


def test_a_second_run_reads_no_report(tmp_path: Path, reads: list[str], merges: list[int]) -> None:
    root, db = tmp_path / "runs", tmp_path / "index.sqlite3"
    project(root)
    first = fp(root, db)
    assert len(reads) == 8 and first.files.read == 8 and first.files.from_index == 0
    assert merges == [2]
    reads.clear()
    second = fp(root, db)
    assert reads == [] and merges == [2]  # nothing read, nothing merged again
    assert second.files.read == 0 and second.files.from_index == 8
    assert second.model_dump(exclude={"generated_utc", "files"}) == first.model_dump(
        exclude={"generated_utc", "files"}
    )
    assert [s.path for s in second.skipped] == [str(root / "junk.json")]


def test_a_changed_file_is_read_again(tmp_path: Path, reads: list[str]) -> None:
    root, db = tmp_path / "runs", tmp_path / "index.sqlite3"
    paths = project(root)
    fp(root, db)
    reads.clear()
    changed = make_report(1, tags={"model": "changed"}, day=1, ids=CPU)
    save(changed, paths[0])
    st = paths[0].stat()
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a coarse clock
    summary = fp(root, db)
    assert reads == [str(paths[0])] and summary.files.read == 1
    group = {g.key["model"]: g for g in summary.groups}["changed"]
    assert group.it_energy_j == approx(changed.totals.it_energy_j)


def test_a_deleted_file_disappears(tmp_path: Path, reads: list[str]) -> None:
    root, db = tmp_path / "runs", tmp_path / "index.sqlite3"
    paths = project(root)
    before = fp(root, db)
    gone = make_report(2, tags={"model": "m0"}, day=2)
    paths[1].unlink()
    reads.clear()
    after = fp(root, db)
    assert reads == []
    assert after.total.runs.total == before.total.runs.total - 1
    assert after.total.it_energy_j == approx(before.total.it_energy_j - gone.totals.it_energy_j)
    with sqlite3.connect(db) as con:
        left = con.execute("SELECT count(*) FROM files WHERE path = ?", (str(paths[1]),))
        assert left.fetchone()[0] == 0


def test_a_part_of_a_merged_run_that_changes_is_merged_again(
    tmp_path: Path, reads: list[str], merges: list[int]
) -> None:
    root, db = tmp_path / "runs", tmp_path / "index.sqlite3"
    project(root)
    fp(root, db)
    rank1 = make_report(9, ids=[GPU_B_ID], rank=1, world_size=2)
    target = save(rank1, root / "d" / "1.json")
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    reads.clear()
    summary = fp(root, db, include_runs=True)
    assert reads == [str(target)] and merges == [2, 2]
    merged = next(r for r in summary.runs or [] if r.files == 2)
    truth = report_merge.merge_reports(
        [make_report(9, ids=[*CPU, GPU_ID], rank=0, world_size=2), rank1]
    )
    assert merged.it_energy_j == approx(truth.totals.it_energy_j)


def test_a_damaged_index_is_rebuilt(tmp_path: Path, reads: list[str]) -> None:
    root, db = tmp_path / "runs", tmp_path / "index.sqlite3"
    project(root)
    good = fp(root, db)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not an SQLite database" * 100)
    reads.clear()
    warnings: list[str] = []
    again = footprint([str(root)], index=db, group_by=["model"], warnings=warnings)
    assert len(reads) == 8
    assert any("damaged" in w and "rebuilt" in w for w in warnings)
    assert again.total == good.total
    assert list(tmp_path.glob("index.sqlite3.damaged-*"))  # kept for a look
    reads.clear()
    fp(root, db)
    assert reads == []  # the rebuilt index works


def test_without_an_index_every_file_is_read(tmp_path: Path, reads: list[str]) -> None:
    root = tmp_path / "runs"
    project(root)
    fp(root, None)
    fp(root, None)
    assert len(reads) == 16


def test_an_unusable_index_place_is_warned_about(tmp_path: Path, reads: list[str]) -> None:
    root = tmp_path / "runs"
    project(root)
    blocker = tmp_path / "file"
    blocker.write_text("a file, so no directory can be made below it")
    warnings: list[str] = []
    summary = footprint([str(root)], index=blocker / "sub" / "index.sqlite3", warnings=warnings)
    assert summary.total.runs.total == 6 and len(reads) == 8
    assert any("not used" in w for w in warnings)


def test_the_default_index_follows_the_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENMETER_CACHE_DIR", str(tmp_path / "cache"))
    assert default_index_path() == tmp_path / "cache" / "footprint-index.sqlite3"
    monkeypatch.delenv("GREENMETER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_index_path() == tmp_path / "xdg" / "greenmeter" / "footprint-index.sqlite3"
    root = tmp_path / "runs"
    save(make_report(1), root / "a.json")
    footprint([str(root)])
    assert (tmp_path / "xdg" / "greenmeter" / "footprint-index.sqlite3").is_file()


def test_a_stored_record_reads_back_unchanged(tmp_path: Path) -> None:
    path = save(make_report(1, tags={"a": "b"}, rank=1, world_size=2, carbon="fr"),
                tmp_path / "r.json")  # fmt: skip
    st = path.stat()
    entry = read_entry(FoundFile(str(path), st.st_size, st.st_mtime_ns))
    assert entry.record is not None and entry.slim is not None  # a part: slim copy kept
    with FootprintIndex(tmp_path / "i.sqlite3") as index:
        index.store([entry, IndexEntry("/x/y.json", 3, 4, problem="bad")])
        rows = index.lookup([str(tmp_path)], ["/x/y.json"])
        assert index.slim(str(path)) == entry.slim
    size, mtime, record, problem = rows[str(path)]
    assert (size, mtime, problem) == (st.st_size, st.st_mtime_ns, None)
    assert record == entry.record
    assert rows["/x/y.json"] == (3, 4, None, "bad")


def _worker(args: tuple[str, str]) -> tuple[float, int]:
    root, db = args
    summary = footprint([root], index=db)
    return summary.total.it_energy_j, summary.total.runs.total


def test_concurrent_footprints_share_the_index(tmp_path: Path) -> None:
    root, db = tmp_path / "runs", tmp_path / "index.sqlite3"
    reports = [make_report(n, day=n) for n in range(1, 41)]
    for r in reports:
        save(r, root / f"{r.run_id}.json")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_worker, [(str(root), str(db))] * 4)
    truth = sums(reports)["it_energy_j"]
    assert all(n == 40 and e == approx(truth) for e, n in results)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 40
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
