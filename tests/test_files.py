"""The one file writer: atomic for files, through for devices and FIFOs, links followed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fixtures.reports import teacher
from greenmeter.files import OutputError, write_file

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _tmp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_regular_file_is_replaced_atomically_and_honours_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    old = os.umask(0o022)
    try:
        written = write_file(target, "one")
    finally:
        os.umask(old)
    assert written == target and target.read_text() == "one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    inode = target.stat().st_ino
    write_file(target, b"two")
    assert target.read_bytes() == b"two"
    assert target.stat().st_ino != inode  # a new file renamed over the old one
    assert _tmp_files(target.parent) == []


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "shared.json"
    target.write_text("x")
    target.chmod(0o640)
    write_file(target, "y")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "y"


def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert write_file(link, "new") == real
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "later.json")
    write_file(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "later.json").read_text() == "made"


@pytest.mark.skipif(not IS_ROOT, reason="mknod of a character device needs root")
def test_character_device_is_written_through_never_replaced(tmp_path: Path) -> None:
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the same device as /dev/null
    write_file(node, "x" * 10_000)
    st = node.stat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert _tmp_files(tmp_path) == []


def test_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    opened = threading.Event()

    def reader() -> None:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opens at once, without a writer
        opened.set()
        chunks: list[bytes] = []
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    threading.Event().wait(0.01)
                    continue
                if not chunk:
                    if chunks:
                        break  # the writer closed
                    threading.Event().wait(0.01)  # no writer yet
                    continue
                chunks.append(chunk)
        finally:
            os.close(fd)
        got.append(b"".join(chunks))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert opened.wait(5)
    write_file(fifo, "through the pipe")
    thread.join(5)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_fifo_without_reader_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="FIFO and no process is reading it"):
        write_file(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_directory_and_socket_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        write_file(tmp_path, "x")
    sock_path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(sock_path))
        with pytest.raises(OutputError, match="is a socket"):
            write_file(sock_path, "x")
    finally:
        sock.close()


@pytest.mark.skipif(IS_ROOT, reason="root may write anywhere")
def test_permission_error_names_the_path(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"locked.*choose a path you may write to"):
            write_file(locked / "out.json", "x")
    finally:
        locked.chmod(0o700)


def test_temp_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".run.json.{dead_pid}.deadbeef.tmp"
    stale.write_text("{torn")
    alive = tmp_path / f".run.json.{os.getppid()}.cafecafe.tmp"  # a live writer's
    alive.write_text("{in progress")
    other = tmp_path / f".other.json.{dead_pid}.deadbeef.tmp"  # another file's
    other.write_text("{")
    write_file(target, "{}")
    assert not stale.exists()
    assert alive.exists() and other.exists()


def test_report_save_goes_through_the_writer(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    real = tmp_path / "real.json"
    link.symlink_to(real)
    report = teacher()
    report.save(link)
    assert link.is_symlink() and json.loads(real.read_text())["run_id"] == report.run_id


def test_dev_stdout_redirected_to_a_file_is_appended_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    code = (
        "import sys; print('before', flush=True);"
        "from greenmeter.files import write_file; write_file('/dev/stdout', 'after\\n')"
    )
    with open(out, "w") as fh:
        subprocess.run([sys.executable, "-c", code], stdout=fh, check=True)
    assert out.read_text() == "before\nafter\n"


@pytest.mark.skipif(
    not IS_ROOT or shutil.which("unshare") is None,
    reason="needs root and unshare(1) for a private mount namespace",
)
def test_greenmeter_run_to_dev_null_leaves_a_character_device(tmp_path: Path) -> None:
    """`greenmeter run -o /dev/null` as root: /dev/null stays a device (private namespace)."""
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    script = (
        f"mount --bind {node} /dev/null && "
        f"{sys.executable} -m greenmeter run -q -o /dev/null -- true && "
        "stat -c %F /dev/null"
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0 and "unshare failed" in proc.stderr:
        pytest.skip(f"no mount namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "character special file"
    assert stat.S_ISCHR(node.stat().st_mode)
