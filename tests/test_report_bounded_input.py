"""Reading a report is bounded in time and memory, whatever the file.

FIFOs, devices and directories are refused or read within a time limit; files built to
exhaust the validator are refused under a 1 GiB address-space limit (each in its own
process, so a regression fails the test instead of taking the machine down); duplicate
keys are named; echoed values are shortened. The command line gives one clear line for
each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenmeter.cli import main
from greenmeter.report import ReportError, build_report, load_report, parse_report
from test_report_support import HOST_INFO, StubAccountant, make_snapshot

BASE = build_report(
    make_snapshot(), carbon=StubAccountant(), host_info=HOST_INFO, include_git=False,
    command=["train.py"],
)  # fmt: skip
BASE_TEXT = BASE.to_json()

GIB = 1024**3
SRC = Path(__file__).resolve().parents[1] / "src"


def _capped_load(path: Path, cap_bytes: int = GIB, timeout_s: float = 120) -> tuple[str, float]:
    """Load ``path`` in a child process limited to ``cap_bytes`` of address space.

    Returns what the child printed (``REJECTED: <first line>`` or ``ACCEPTED``) and its
    peak resident memory in MiB (``VmHWM``: after a spawn, ``ru_maxrss`` can report the
    parent's). A child that runs out of memory exits with a traceback.
    """
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({cap_bytes}, {cap_bytes}))
        from greenmeter.report import ReportError, load_report
        try:
            load_report({str(path)!r})
            print("ACCEPTED")
        except ReportError as exc:
            print("REJECTED: " + str(exc).splitlines()[0])
        with open("/proc/self/status") as status:  # ru_maxrss may be the parent's
            peak = next(line for line in status if line.startswith("VmHWM:"))
        print(int(peak.split()[1]) / 1024)
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out, rss = done.stdout.strip().rsplit("\n", 1)
    return out, float(rss)


def _write_empty_objects(path: Path, total_bytes: int, where: str) -> None:
    """A file of about ``total_bytes``: ``{}`` repeated in a list, as ``where`` says."""
    n = total_bytes // 3
    head = {"x": b'{"schema_version":"1","x":[', "phases": b'{"schema_version":"2","phases":['}
    with open(path, "wb") as fh:
        fh.write(head[where])
        fh.write(b"{}," * n)
        fh.write(b"{}]}")


@pytest.mark.parametrize("mib", [4, 64])
def test_huge_list_of_empty_objects_is_refused_within_1_gib(tmp_path: Path, mib: int) -> None:
    path = tmp_path / "wide.json"
    _write_empty_objects(path, mib * 1024 * 1024 - 64, "x")
    out, rss = _capped_load(path)
    assert out.startswith("REJECTED: ") and str(path) in out
    assert ("JSON values" in out) if mib == 64 else ("not a valid schema" in out)
    assert rss < 700


def test_objects_missing_their_fields_cost_no_copies(tmp_path: Path) -> None:
    """pydantic copies an object per missing field: 20 levels of phases around 100,000
    empty objects (a 300 KB file) took 2.4 GB to reject, 100,000 empty phases 1.3 GB."""
    inner = '{"x":[' + ",".join(["{}"] * 100_000) + "]}"
    for _ in range(20):
        inner = '{"children":[' + inner + "]}"
    chain = tmp_path / "chain.json"
    chain.write_text('{"schema_version":"2","phases":[' + inner + "]}")
    flat = tmp_path / "flat.json"
    _write_empty_objects(flat, 300_000, "phases")
    for path in (chain, flat):
        out, rss = _capped_load(path)
        assert out.startswith("REJECTED: ") and "not a valid schema 2 report" in out, out
        assert rss < 400


def test_many_bad_phases_stop_at_the_first() -> None:
    """10,000 phases with wrong values gave 300,000 errors (440 MB for a 6 MB file)."""
    doc = json.loads(BASE_TEXT)
    bad = dict(doc["phases"][1], name=1, count="x", duration_s="x", kind=1)
    doc["phases"] = [dict(bad, path=[f"p{i}"]) for i in range(10_000)]
    with pytest.raises(ReportError) as info:
        parse_report(json.dumps(doc))
    head = str(info.value).splitlines()[0]
    found = re.search(r"\((\d+)\+? problem", head)
    assert found, head
    count = int(found.group(1))
    assert 0 < count <= 50, head
    assert "phases[0].name" in str(info.value)


def test_many_bad_values_in_lists_stop_early() -> None:
    """A list or mapping of a million bad values is not validated value by value."""
    doc = json.loads(BASE_TEXT)
    doc["phases"][1]["latency_samples_s"] = [-1.0] * 1_000_000
    doc["totals"]["energy_j"] = {f"k{i}": -1.0 for i in range(200_000)}
    start = time.monotonic()
    with pytest.raises(ReportError) as info:
        parse_report(json.dumps(doc))
    assert time.monotonic() - start < 30
    text = str(info.value)
    assert "phases[1].latency_samples_s[0]" in text and "greater than or equal to 0" in text
    assert "more problem(s)" in text and len(text) < 20_000


# --------------------------------------------------------------------------------------
# files that are not files


def test_fifo_nobody_writes_to_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    code = (
        "import greenmeter.report.reader as r\n"
        "from greenmeter.report import ReportError, load_report\n"
        f"try:\n    load_report({str(fifo)!r}, timeout_s=0.5)\n"
        "except ReportError as exc:\n    print(exc)\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert time.monotonic() - start < 30
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pipe or FIFO and nothing arrived within 0.5 s" in done.stdout
    assert str(fifo) in done.stdout


def test_fifo_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as fh:
            for k in range(0, len(BASE_TEXT), 4096):
                fh.write(BASE_TEXT[k : k + 4096].encode())
                fh.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert load_report(fifo, timeout_s=20) == BASE
    writer.join(5)


def test_fifo_that_stalls_is_cut_off(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    release = threading.Event()

    def write() -> None:
        with open(fifo, "wb") as fh:
            fh.write(BASE_TEXT[:100].encode())
            fh.flush()
            release.wait(30)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        with pytest.raises(ReportError, match=r"only 100 bytes arrived within 0\.5 s"):
            load_report(fifo, timeout_s=0.5)
    finally:
        release.set()
        writer.join(5)


def test_devices_and_directories_are_refused_at_once(tmp_path: Path) -> None:
    for path, words in [("/dev/zero", "character device"), (tmp_path, "directory")]:
        start = time.monotonic()
        with pytest.raises(ReportError, match=words) as info:
            load_report(path)
        assert time.monotonic() - start < 1.0
        assert "give the path of a report's JSON file" in str(info.value)


# --------------------------------------------------------------------------------------
# duplicate keys and echoed values


def test_duplicate_keys_are_named() -> None:
    key = '"run_id": "' + BASE.run_id + '"'
    text = BASE_TEXT.replace(key, key + ', "run_id": "' + "f" * 32 + '"', 1)
    assert text != BASE_TEXT and json.loads(text)["run_id"] == "f" * 32  # JSON keeps the last
    with pytest.raises(ReportError, match=re.escape("(top level): the key 'run_id' appears twice")):
        parse_report(text)
    doc = json.loads(BASE_TEXT)
    comp = next(iter(doc["totals"]["energy_j"]))
    inner = json.dumps(doc["totals"]["energy_j"])[:-1] + f', "{comp}": 0.0}}'
    text = json.dumps(doc).replace(json.dumps(doc["totals"]["energy_j"]), inner, 1)
    with pytest.raises(ReportError, match=rf"totals\.energy_j: the key '{comp}' appears twice"):
        parse_report(text)


@pytest.mark.parametrize("where", ["schema_version", "run_id", "key", "phase name"])
def test_a_10_mb_value_is_not_echoed_whole(where: str) -> None:
    huge = "x" * 10_000_000
    doc = json.loads(BASE_TEXT)
    if where == "key":
        doc[huge] = 1
    elif where == "phase name":
        doc["phases"][1]["name"] = huge
    else:
        doc[where] = huge
    with pytest.raises(ReportError) as info:
        parse_report(json.dumps(doc))
    text = str(info.value)
    assert len(text) < 5_000 and "xxxxxxxx" in text
    if where in ("schema_version", "key"):
        assert "10000000 characters" in text


# --------------------------------------------------------------------------------------
# the command line: one clear line for each


def _unblock(fifo: Path, stop: threading.Event) -> None:
    """Open ``fifo`` for writing now and then, so a reader blocked on it gets EOF.

    Only a reader that hangs needs this (the test then fails instead of hanging).
    """
    while not stop.wait(2.0):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader: nothing is blocked


@pytest.fixture
def bad_inputs(tmp_path: Path) -> Iterator[dict[str, tuple[Path, str]]]:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge-value.json"
    huge.write_text('{"schema_version": "' + "9" * 10_000_000 + '"}')
    stop = threading.Event()
    rescuer = threading.Thread(target=_unblock, args=(fifo, stop), daemon=True)
    rescuer.start()
    yield {
        "fifo": (fifo, "nothing arrived within"),
        "directory": (tmp_path, "it is a directory"),
        "dev-zero": (Path("/dev/zero"), "character device"),
        "huge-value": (huge, "unknown schema_version"),
    }
    stop.set()
    rescuer.join(5)


@pytest.mark.parametrize("command", ["validate", "report", "merge", "compare"])
@pytest.mark.parametrize("which", ["fifo", "directory", "dev-zero", "huge-value"])
def test_cli_bad_inputs_get_one_clear_line(
    bad_inputs: dict[str, tuple[Path, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
    which: str,
) -> None:
    monkeypatch.setattr("greenmeter.report.reader.READ_TIMEOUT_S", 0.3, raising=False)
    path, words = bad_inputs[which]
    good = tmp_path / "good.json"
    BASE.save(good)
    args = [command, str(path)] + ([str(good)] if command in ("merge", "compare") else [])
    start = time.monotonic()
    code = main(args)
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert code == (1 if command == "validate" else 2)
    first = err.splitlines()[0]
    assert str(path) in first and words in first, err
    assert len(first) < 500 and "Traceback" not in err
    assert len(err.splitlines()) == (2 if command == "validate" else 1)  # + validate's tally


def test_every_list_of_nested_models_stops_at_its_first_bad_item() -> None:
    """The structural check validates lists of flat models itself; lists of models that
    nest others (phases) are left to pydantic, which must stop at their first bad item."""
    import typing

    from pydantic import BaseModel

    from greenmeter.report import Report
    from greenmeter.report.shape import _flat_model, _models_in, _unwrap

    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Report]
    recursed = []
    while todo:
        model = todo.pop()
        for name, field in model.model_fields.items():
            bare, _, _ = _unwrap(field.annotation)
            inner = list(_models_in(field.annotation))
            if typing.get_origin(bare) in (list, tuple) and not all(map(_flat_model, inner)):
                recursed.append(f"{model.__name__}.{name}")
                assert any(getattr(m, "fail_fast", False) for m in field.metadata), name
            todo += [m for m in inner if m not in seen]
            seen.update(inner)
    assert sorted(recursed) == ["Phase.children", "Report.phases"]
