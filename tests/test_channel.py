"""The phase channel: strict validation, a lossless sender, parent-side accounting."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from greenmeter import EnergyMeter
from greenmeter.channel import (
    ENV_VAR,
    MAX_EVENT_BYTES,
    ChannelEvent,
    ChannelSender,
    EventError,
    attach_from_env,
    encode_event,
    parse_event,
)
from greenmeter.cli.run.receiver import ChannelServer, PhaseApplier
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


def _trace() -> PowerTrace:
    return PowerTrace([(0.03, 150.0), (0.03, 30.0), (0.04, 260.0)])


def _truth(trace: PowerTrace, intervals: list[tuple[float, float]]) -> float:
    return sum(trace.energy_j(a, b) for a, b in intervals)


def _wait_for(cond, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def _enter(path, kind="custom", pid=4242, n=0, t=1.0, m="ab12") -> dict:
    return {"v": 1, "e": "enter", "pid": pid, "m": m, "n": n, "p": list(path), "k": kind, "t": t}


# -- validation ------------------------------------------------------------------------


def test_valid_events_parse_to_their_fields():
    ev = parse_event(encode_event(_enter(("fit", "train"), "train", t=12.5)))
    assert ev == ChannelEvent("enter", 4242, "ab12", 0, ("fit", "train"), "train", 12.5)
    ex = parse_event(
        encode_event({"v": 1, "e": "exit", "pid": 7, "m": "z", "n": 3, "p": ["a"], "t": 2})
    )
    assert (ex.event, ex.t_mono, ex.kind) == ("exit", 2.0, None)
    it = parse_event(
        encode_event(
            {
                "v": 1,
                "e": "items",
                "pid": 7,
                "m": "z",
                "n": 4,
                "p": ["a"],
                "samples": 32,
                "tokens": None,
                "steps": 1,
            }
        )
    )
    assert (it.samples, it.tokens, it.steps) == (32, None, 1)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe not utf8", "not_json"),
        (b"{not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"e": "enter"}', "bad_keys"),
        (encode_event({**_enter(("a",)), "extra": 1}), "bad_keys"),
        (encode_event({**_enter(("a",)), "e": "rm -rf"}), "unknown_event"),
        (encode_event({**_enter(("a",)), "v": 2}), "bad_version"),
        (encode_event({**_enter(("a",)), "v": True}), "bad_version"),
        (encode_event({**_enter(("a",)), "pid": -1}), "bad_pid"),
        (encode_event({**_enter(("a",)), "pid": "1"}), "bad_pid"),
        (encode_event({**_enter(("a",)), "n": 1.5}), "bad_seq"),
        (encode_event({**_enter(("a",)), "m": "../x"}), "bad_meter"),
        (encode_event(_enter(())), "bad_path"),
        (encode_event(_enter(("a/b",))), "bad_path"),
        (encode_event(_enter(("",))), "bad_path"),
        (encode_event(_enter(("x",) * 33)), "bad_path"),
        (encode_event({**_enter(("a",)), "p": "a"}), "bad_path"),
        (encode_event(_enter(("a",), kind="__import__('os')")), "bad_kind"),
        (b'{"v":1,"e":"enter","pid":1,"m":"a","n":0,"p":["a"],"k":"fit","t":NaN}', "not_json"),
        (encode_event({**_enter(("a",)), "t": "now"}), "bad_time"),
        (b" " * (MAX_EVENT_BYTES + 1), "too_large"),
    ],
)
def test_junk_is_rejected_with_a_reason(data, reason):
    with pytest.raises(EventError) as info:
        parse_event(data)
    assert info.value.reason == reason


def test_items_must_be_non_negative_integers():
    base = {"v": 1, "e": "items", "pid": 7, "m": "z", "n": 0, "p": ["a"], "tokens": None}
    for bad in (-1, 1.0, True, "3", 2**60):
        with pytest.raises(EventError, match="bad_items"):
            parse_event(encode_event({**base, "samples": bad, "steps": None}))


# -- the applier: per-process handles, union accounting -------------------------------------


def test_two_processes_same_path_keep_their_own_handles_and_union_energy():
    trace = _trace()
    meter = EnergyMeter([TraceSensor({"t:cpu": trace})]).start()
    applier = PhaseApplier(meter)

    def ev(kind, pid, n, path=("train",)):
        if kind == "enter":
            return ChannelEvent("enter", pid, "m", n, path, "train", time.monotonic())
        return ChannelEvent("exit", pid, "m", n, path, None, time.monotonic())

    assert applier.apply(ev("enter", 100, 0))
    time.sleep(0.04)
    assert applier.apply(ev("enter", 200, 0))  # overlaps the first
    time.sleep(0.04)
    assert applier.apply(ev("exit", 100, 1))  # pid 100 closes only its own instance
    snap = meter.snapshot()
    (train,) = snap.phases
    assert train.open and train.count == 2
    time.sleep(0.03)
    assert applier.apply(ev("exit", 200, 1))
    assert not applier.apply(ev("exit", 200, 2))  # nothing open any more
    assert applier.ignored["exit_without_enter"] == 1
    snap = meter.stop()
    (train,) = snap.phases
    assert train.count == 2 and not train.open
    # energy over the union of both processes' time, counted once
    assert len(train.intervals_mono) == 1
    assert train.energy_j["t:cpu"] == pytest.approx(_truth(trace, train.intervals_mono), rel=1e-9)
    assert train.attrs["processes"] == "2"


def test_sequence_gaps_are_counted_as_lost_and_items_reach_the_phase():
    meter = EnergyMeter([TraceSensor({"t:cpu": _trace()})]).start()
    applier = PhaseApplier(meter)
    t = time.monotonic()
    applier.apply(ChannelEvent("enter", 9, "m", 0, ("eval",), "validate", t))
    applier.apply(ChannelEvent("items", 9, "m", 1, ("eval",), samples=5, steps=1))
    applier.apply(ChannelEvent("items", 9, "m", 4, ("eval",), samples=7, tokens=70))  # 2 lost
    applier.apply(ChannelEvent("exit", 9, "m", 5, ("eval",), t_mono=time.monotonic()))
    snap = meter.stop()
    (rec,) = snap.phases
    assert (rec.samples, rec.tokens, rec.steps, rec.kind) == (12, 70, 1, "validate")
    assert applier.lost == 2


# -- the sender ----------------------------------------------------------------------------


def test_sender_never_blocks_or_raises_when_the_parent_is_gone(tmp_path):
    notes: list[str] = []
    sender = ChannelSender(str(tmp_path / "gone"), on_drop=notes.append)
    t0 = time.perf_counter()
    for i in range(200):
        sender.phase_entered(("a", str(i)), "custom", time.monotonic())
        sender.items_added(("a",), 1, None, None)
        sender.phase_exited(("a", str(i)), time.monotonic())
    assert time.perf_counter() - t0 < 1.0
    assert sender.dropped == 600 and sender.sent == 0
    assert len(notes) == 1 and "not reachable" in notes[0]


def test_a_slow_parent_slows_the_sender_and_loses_nothing():
    """The kernel queue holds a handful of datagrams: the sender waits for room."""
    with ChannelServer(rcvbuf_bytes=4096) as server:  # nobody reads yet
        sender = ChannelSender(server.path)
        done = threading.Event()

        def send() -> None:
            for i in range(2000):
                sender.phase_entered(("p" * 200, str(i)), "custom", time.monotonic())
            done.set()

        thread = threading.Thread(target=send)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set()  # blocked on the full queue, not dropping
        read = 0
        while not done.is_set() or read < sender.sent:
            n = server.drain()
            read += n
            if n == 0:
                time.sleep(0.001)  # a slow reader
        thread.join()
        read += server.drain()
        assert (sender.sent, sender.dropped, read) == (2000, 0, 2000)
        assert sender.waited_s >= 0.25


def test_a_stuck_parent_costs_the_sender_one_bounded_wait_then_little():
    with ChannelServer(rcvbuf_bytes=4096) as server:  # never started: nobody reads
        notes: list[str] = []
        sender = ChannelSender(server.path, on_drop=notes.append, stall_timeout_s=0.3)
        t0 = time.perf_counter()
        for i in range(40):
            sender.phase_entered(("p" * 200, str(i)), "custom", time.monotonic())
        elapsed = time.perf_counter() - t0
        assert sender.dropped > 0 and sender.sent + sender.dropped == 40
        assert 0.3 <= elapsed < 0.3 + 40 * 0.05 + 1.0
        assert len(notes) == 1 and "read nothing for 0.3 s" in notes[0]
        assert server.drain() == sender.sent  # what was sent is intact and readable


def test_attach_from_env_only_with_an_absolute_socket_path(tmp_path):
    meter = EnergyMeter([TraceSensor({"t:cpu": _trace()})])
    assert attach_from_env(meter, env={}) is None
    assert attach_from_env(meter, env={ENV_VAR: "relative/sock"}) is None
    sender = attach_from_env(meter, env={ENV_VAR: str(tmp_path / "sock")})
    assert isinstance(sender, ChannelSender)
    assert sender in meter.core._listeners


def test_a_child_meter_never_imports_the_command_line(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        from greenmeter import EnergyMeter
        from greenmeter.testing import PowerTrace
        from greenmeter.testing.sensors import TraceSensor
        trace = TraceSensor({"t:cpu": PowerTrace.constant(50.0)})
        meter = EnergyMeter([trace], report_path=sys.argv[1]).start()
        with meter.phase("train"):
            pass
        meter.stop()
        loaded = [m for m in sys.modules if m.startswith(("greenmeter.channel", "greenmeter.cli"))]
        print(" ".join(sorted(loaded)))
        """
    )
    env = {**os.environ, ENV_VAR: str(tmp_path / "sock")}  # a parent that is not there
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert (tmp_path / "r.json").exists() and "energy" in out.stderr  # the closing line
    assert out.stdout.split() == [
        "greenmeter.channel",
        "greenmeter.channel.sender",
        "greenmeter.channel.wire",
    ]


def test_server_socket_lives_in_a_private_directory():
    with ChannelServer() as server:
        directory = Path(server.path).parent
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(os.stat(server.path).st_mode)
        assert server.env() == {ENV_VAR: server.path}
    assert not directory.exists()


# -- end to end: real datagrams into a parent meter -----------------------------------------


def test_junk_datagrams_are_dropped_and_counted_while_valid_events_apply():
    trace = _trace()
    meter = EnergyMeter([TraceSensor({"t:cpu": trace})]).start()
    with ChannelServer() as server:
        server.start(meter)
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        junk = [
            b"garbage",
            b"\x80\x04\x95pickle",
            b'{"v":1}',
            json.dumps(_enter(("x",), kind="nope")).encode(),
            b"[" * 5000,  # too large
            encode_event(_enter(("a",) * 40)),
        ]
        for data in junk:
            raw.sendto(data, server.path)
        sender = ChannelSender(server.path)
        sender.phase_entered(("ok",), "inference", time.monotonic())
        time.sleep(0.05)
        sender.items_added(("ok",), 3, None, None)
        sender.phase_exited(("ok",), time.monotonic())
        _wait_for(lambda: server.applier.applied == 3)
        assert sum(server.junk.values()) == len(junk)
        assert server.junk["too_large"] == 1 and server.junk["not_json"] == 2
        stats = server.stats()
        assert stats["channel_invalid"] == len(junk) and stats["channel_events"] == 3
    snap = meter.stop()
    (ok,) = snap.phases
    assert ok.path == ("ok",) and ok.kind == "inference" and ok.samples == 3
    assert ok.energy_j["t:cpu"] == pytest.approx(_truth(trace, ok.intervals_mono), rel=1e-9)


CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    spans = {}
    meter = EnergyMeter([TraceSensor({"own:cpu": PowerTrace.constant(1.0)})]).start()
    with meter.phase("fit"):
        for name in ("train", "validate"):
            with meter.phase(name) as ph:
                a = time.monotonic()
                time.sleep(0.08)
                ph.add(samples=16)
                b = time.monotonic()
            spans[name] = (a, b)
    if sys.argv[1] == "die":
        h = meter.enter("dying")
        print(json.dumps(spans), flush=True)
        os._exit(0)  # dies with a phase open
    meter.stop()
    print(json.dumps(spans), flush=True)
    """
)


def test_child_process_phases_measured_by_parent(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    trace = _trace()
    meter = EnergyMeter([TraceSensor({"t:cpu": trace})]).start()
    with ChannelServer(liveness_period_s=0.05) as server:
        server.start(meter)
        env = {**os.environ, **server.env()}
        out = subprocess.run(
            [sys.executable, str(script), "live"], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        spans = json.loads(out.stdout)
        assert server.finish() == 0
        assert server.stats()["channel_processes"] == 1
    snap = meter.stop()
    phases = {p.path: p for p in snap.phases}
    assert set(phases) == {("fit",), ("fit", "train"), ("fit", "validate")}
    for name in ("train", "validate"):
        rec = phases[("fit", name)]
        assert rec.samples == 16 and rec.kind == name
        # exact against the trace over the parent's own interval
        assert rec.energy_j["t:cpu"] == pytest.approx(_truth(trace, rec.intervals_mono), rel=1e-9)
        # and the parent's interval is the child's, shifted by the delivery delay only
        (start, end), (a, b) = rec.intervals_mono[0], spans[name]
        assert abs(start - a) < 0.05 and abs(end - b) < 0.05
        assert float(rec.attrs["channel_lag_max_ms"]) < 50


def test_phases_of_a_process_that_died_are_closed_by_the_liveness_check(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    meter = EnergyMeter([TraceSensor({"t:cpu": _trace()})]).start()
    with ChannelServer(liveness_period_s=0.05) as server:
        server.start(meter)
        env = {**os.environ, **server.env()}
        out = subprocess.run(
            [sys.executable, str(script), "die"], env=env, capture_output=True, text=True
        )
        died = time.monotonic()
        assert out.returncode == 0, out.stderr

        # the parent applies the child's events on a thread of its own: wait until the
        # phase the child left open has arrived, then until it is closed
        def dying_phase():
            return next((p for p in meter.snapshot().phases if p.path == ("dying",)), None)

        _wait_for(lambda: (ph := dying_phase()) is not None and not ph.open, timeout_s=3.0)
        dying = dying_phase()
        assert dying.last_end_mono - died < 0.5
        assert server.applier.closed_at_exit == 1
    meter.stop()


def test_the_parent_bounds_what_children_can_make_it_hold(monkeypatch):
    monkeypatch.setattr("greenmeter.cli.run.receiver.MAX_PHASE_PATHS", 5)
    monkeypatch.setattr("greenmeter.cli.run.receiver.MAX_OPEN_PER_PATH", 3)
    meter = EnergyMeter([TraceSensor({"t:cpu": _trace()})]).start()
    applier = PhaseApplier(meter)
    t = time.monotonic()
    for i in range(8):
        applier.apply(ChannelEvent("enter", 1, "m", i, (f"p{i}",), "custom", t))
    for i in range(5):
        applier.apply(ChannelEvent("enter", 1, "m", 8 + i, ("p0",), "custom", t))
    assert applier.ignored["too_many_phases"] == 3 and applier.ignored["too_many_open"] == 3
    assert len(meter.stop().phases) == 5
