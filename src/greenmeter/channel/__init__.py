"""The local phase channel between ``greenmeter run`` and a measured child process.

``greenmeter run -- CMD`` measures the whole command with its own meter. When the
command itself uses greenmeter (an :class:`~greenmeter.EnergyMeter`, the Lightning
callback), its phases should show up in that one report, measured by the parent's
counters. The parent sets this up:

* it creates a Unix datagram socket in a fresh private directory (mode 0700, so only
  the same user can reach it) and puts the socket's path in the child's environment as
  ``GREENMETER_CHANNEL``;
* a child meter that starts with that variable set calls :func:`attach_from_env`,
  which adds a :class:`ChannelSender` as a phase listener. The sender turns every phase
  entry, exit and item count into one compact JSON datagram. It never raises into the
  measured program;
* the parent's :class:`~greenmeter.cli.run.receiver.ChannelServer` receives the
  datagrams on a thread, validates them strictly (size, schema, types; plain JSON,
  never eval or pickle; junk is dropped and counted by reason) and opens and closes the
  same phase paths on the parent's meter
  (:class:`~greenmeter.cli.run.receiver.PhaseApplier`).

Phase paths. The child's paths are kept as they are, at the top level of the parent's
report: a Lightning run under ``greenmeter run`` has the same ``fit/train`` phases as
one measured in-process, so the two reports compare phase by phase. The whole command
is the report's total (the meter runs from just before the child starts to just after
it ends), so it needs no phase of its own.

Several processes. Each (process id, meter) pair keeps its own open handles, so two
DDP ranks that both enter ``train`` never close each other's phase; both map to the
same path, whose energy the meter counts over the union of their time (never twice).
A process that dies with phases open has them closed when the parent notices
(liveness check, or the end of the command). The phase's ``processes`` attr says how
many processes entered it. Where the kernel passes the sender's credentials
(``SO_PASSCRED``, Linux) the process id is the kernel's, not the one claimed in the
datagram, and datagrams from other users are dropped. The number of phase paths and
of open instances accepted from children is bounded.

No event is lost. The sender's sends block while the parent's receive queue is full
(the kernel's back-pressure on a Unix datagram socket; the queue holds only
``net.unix.max_dgram_qlen`` datagrams, 10 by default), so a parent that reads slowly
slows the child's phase boundaries by the time it needs to catch up, never drops one.
An event is given up only when the parent cannot take it at all: its socket is gone
(the parent ended), or it has not read anything for :data:`STALL_TIMEOUT_S` seconds
(the parent is stuck; the child then goes on at full speed, trying each later event
for a short while only until one gets through). Each such event is counted
(``dropped``), said once as a warning in the child, and seen by the parent as a gap in
the sequence numbers (``channel_lost`` in the report). Measured throughput and cost per
event: ``benchmarks/bench_channel.py``.

Timing. The parent opens and closes its phases when a datagram arrives, typically well
under a millisecond after the child's boundary (the child waits when the queue is full,
so events are never batched up and applied late) (same host, same ``CLOCK_MONOTONIC``).
The largest delay seen per phase is kept in the phase's ``channel_lag_max_ms`` attr.

Wire format (version 1), one JSON object per datagram, at most
:data:`MAX_EVENT_BYTES` bytes::

    {"v":1,"e":"enter","pid":12,"m":"a1b2","n":0,"p":["fit","train"],"k":"train","t":812.25}
    {"v":1,"e":"exit","pid":12,"m":"a1b2","n":1,"p":["fit","train"],"t":815.5}
    {"v":1,"e":"items","pid":12,"m":"a1b2","n":2,"p":["fit","train"],"samples":32,
     "tokens":null,"steps":1}

Modules: :mod:`~greenmeter.channel.wire` (the format and its strict parsing) and
:mod:`~greenmeter.channel.sender` (the child's end) are all a measured child imports;
the parent's end, :mod:`greenmeter.cli.run.receiver`, belongs to ``greenmeter run``.

``m`` tells apart meters of one process, ``n`` is a per-meter sequence number (gaps are
counted as lost events), ``t`` is the ``time.monotonic()`` instant in the child.
"""

from __future__ import annotations

from greenmeter.channel.sender import STALL_TIMEOUT_S, ChannelSender, attach_from_env
from greenmeter.channel.wire import (
    ENV_VAR,
    MAX_EVENT_BYTES,
    PROTOCOL_VERSION,
    ChannelEvent,
    EventError,
    encode_event,
    parse_event,
)

__all__ = [
    "ENV_VAR",
    "MAX_EVENT_BYTES",
    "PROTOCOL_VERSION",
    "STALL_TIMEOUT_S",
    "ChannelEvent",
    "ChannelSender",
    "EventError",
    "attach_from_env",
    "encode_event",
    "parse_event",
]
