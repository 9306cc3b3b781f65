"""Each AMD board's facts, reading state and component, and the warnings it deserves.

The middle step of :func:`greenmeter.sensors.amd.probe`, after the boards and their
readings are chosen (:mod:`greenmeter.sensors.amd_setup`):

* :func:`board_facts`: identity and configuration, as the report and doctor show them;
* :func:`check_counters`: each accumulator's update step, and whether it moves at all;
* :func:`make_reader`: the run-time state (:class:`Reader`) and the component;
* :func:`setup_warnings`: what the user should know about each board (partitions
  shared, averaged power, other processes, slow calls).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from greenmeter.sensors.amd_setup import (
    SOURCE_AVERAGE,
    SOURCE_COUNTER,
    Board,
    BoardPlan,
    power_plan,
)
from greenmeter.sensors.amd_visible import LogicalGpu
from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope, Sensor
from greenmeter.sensors.readings import (
    PowerIntegrator,
    WrappingCounter,
    measure_update_steps,
    slow_calls,
    timed,
)

__all__ = [
    "Reader",
    "board_facts",
    "check_counters",
    "make_reader",
    "raw_and_time",
    "setup_warnings",
]

_STEP_PROBE_BUDGET_S = 0.12
_STEP_PROBE_CHANGES = 4
_MIN_RESOLUTION_S = 0.01
_DEFAULT_COUNTER_RESOLUTION_S = 0.1
_SLOW_CALL_S = 0.010
#: Plausible peak draw when the power cap is unknown (W), and the cap multiple otherwise.
_DEFAULT_MAX_POWER_W = 1500.0
_CAP_HEADROOM = 2.0
#: Bounds on the wrap-guard polling period of a counter that may be 32 bits wide (s).
_MAX_GUARD_S = 5.0
_MIN_GUARD_S = 0.01
#: Below this (W) a board is idle enough that a still counter proves nothing.
_STILL_COUNTER_MIN_W = 1.0


@dataclass
class Reader:
    """Run-time state of one board: its plan, component id, counter or integrator."""

    plan: BoardPlan
    component_id: str
    counter: WrappingCounter | None = None
    integrator: PowerIntegrator = field(default_factory=PowerIntegrator)
    guard_s: float | None = None  # wrap-guard period of a counter that may be 32 bits
    last_read_t: float = 0.0
    dead: bool = False
    transient: int = 0
    events: dict[str, int] = field(default_factory=dict)

    def cumulative_j(self) -> float:
        return self.counter.energy_j if self.counter is not None else self.integrator.energy_j


def board_facts(
    amd: Any,
    board: Board,
    plan: BoardPlan,
    mine: list[LogicalGpu],
    position: Mapping[int, int],
    costs: dict[str, float],
) -> dict[str, str]:
    """Identity and configuration of a board, as the report and doctor show them."""
    h = plan.handle
    facts = dict(board.facts)
    facts.update(
        vendor="amd",
        uuid=plan.gpu.uuid,
        index=str(board.gpus[0].index),
        pci_bus_id=board.gpus[0].bdf,
        partitions=str(len(board.gpus)),
        reading_partition=str(plan.gpu.partition),
        visible_partitions=",".join(str(g.partition) for g in mine),
    )
    if plan.gpu.rocr_uuid:
        facts["rocr_uuid"] = plan.gpu.rocr_uuid
    ordinals = [str(position[g.index]) for g in mine if g.index in position]
    if ordinals:
        facts["hip_ordinals"] = ",".join(ordinals)

    def ask(name: str, *args: Any) -> Any:
        fn = getattr(amd, name, None)
        if fn is None:
            return None
        try:
            return timed(costs, name, fn, h, *args)
        except Exception:
            return None

    driver = ask("amdsmi_get_gpu_driver_info")
    if isinstance(driver, dict) and driver.get("driver_version") not in (None, "", "N/A"):
        facts["driver_version"] = str(driver["driver_version"])
    cap = ask("amdsmi_get_power_cap_info")
    cap_uw = cap.get("power_cap") if isinstance(cap, dict) else None
    if isinstance(cap_uw, int) and 0 < cap_uw < 10**10:
        facts["power_limit_w"] = f"{cap_uw / 1e6:g}"
    for key, name in (
        ("compute_partition", "amdsmi_get_gpu_compute_partition"),
        ("memory_partition", "amdsmi_get_gpu_memory_partition"),
    ):
        value = ask(name)
        if isinstance(value, str) and value.strip() and value != "N/A":
            facts[key] = value.strip()
    procs = ask("amdsmi_get_gpu_process_list")
    if isinstance(procs, list):
        me = os.getpid()
        pids = {p.get("pid") for p in procs if isinstance(p, dict)}
        facts["other_processes"] = str(len({p for p in pids if p not in (None, me)}))
    else:
        facts["other_processes"] = "unknown"
    facts["power_source"] = plan.source
    return facts


def check_counters(
    amd: Any, plans: list[tuple[BoardPlan, dict[str, str]]], costs: dict[str, float]
) -> dict[str, float | None]:
    """Measure each accumulator's update step; drop accumulators that stand still.

    A counter that shows no change during the probe while its board reports power draw
    is stuck: the board is sampled instead (its plan is replaced in ``plans``).
    """
    counters = [p for p, _ in plans if p.source == SOURCE_COUNTER]
    if not counters:
        return {}

    def reader(h: Any) -> Any:
        return lambda: raw_and_time(amd.amdsmi_get_energy_count(h))

    steps = measure_update_steps(
        {p.gpu.uuid: reader(p.handle) for p in counters},
        {p.gpu.uuid: raw_and_time(p.first or {}) for p in counters},
        budget_s=_STEP_PROBE_BUDGET_S,
        changes=_STEP_PROBE_CHANGES,
    )
    for k, (plan, facts) in enumerate(plans):
        if plan.source != SOURCE_COUNTER or steps.get(plan.gpu.uuid) is not None:
            continue
        sampled = power_plan(amd, plan.board, costs)
        if sampled is None or (sampled.power_w or 0.0) < _STILL_COUNTER_MIN_W:
            continue  # idle or unknown: a still counter proves nothing
        sampled.errors.append(
            f"the energy accumulator did not move in {_STEP_PROBE_BUDGET_S:g} s while the "
            f"board drew {sampled.power_w:g} W"
        )
        facts["power_source"] = sampled.source
        facts["counter_stuck"] = "true"
        plans[k] = (sampled, facts)
    return steps


def raw_and_time(e: Mapping[str, Any]) -> tuple[Any, Any]:
    """(count, timestamp) of an ``amdsmi_get_energy_count`` answer: either moving is an update.

    The count's key is ``power`` in amdsmi 6.1 and 6.2, ``energy_accumulator`` from 6.4 on.
    """
    return e.get("energy_accumulator", e.get("power")), e.get("timestamp")


def _partitioned(facts: Mapping[str, str]) -> bool:
    """Whether the board is split into compute partitions (so others may use it)."""
    return int(facts.get("partitions", "1")) > 1 or facts.get("compute_partition", "SPX") != "SPX"


def make_reader(
    plan: BoardPlan,
    facts: dict[str, str],
    steps: Mapping[str, float | None],
    costs: Mapping[str, float],
    sample_interval_s: float,
    host: str,
) -> tuple[Reader, ComponentInfo]:
    cid = f"amdsmi:{plan.gpu.uuid}"
    reader = Reader(plan, cid)
    if plan.source == SOURCE_COUNTER:
        first = plan.first or {}
        raw = int(raw_and_time(first)[0])
        res_uj = float(first["counter_resolution"])
        cap = facts.get("power_limit_w")
        max_w = _CAP_HEADROOM * float(cap) if cap else _DEFAULT_MAX_POWER_W
        step = steps.get(plan.gpu.uuid)
        reader.counter = WrappingCounter(
            raw, time.monotonic(), res_uj * 1e-6, max_w, slack_s=max(0.05, 2 * (step or 0.0))
        )
        if raw < 2**32:  # may be a 32-bit count: read often enough to see every wrap
            reader.guard_s = min(_MAX_GUARD_S, max(_MIN_GUARD_S, reader.counter.guard_period_s()))
        facts["counter_resolution_uj"] = f"{res_uj:.6g}"
        if step is not None:
            facts["counter_step_s"] = f"{step:.4g}"
        resolution = max(step, _MIN_RESOLUTION_S) if step else _DEFAULT_COUNTER_RESOLUTION_S
        method, period = Method.COUNTER, reader.guard_s
    else:
        averaged = plan.source == SOURCE_AVERAGE
        if averaged:
            facts["power_window_s"] = "unknown"
        resolution = max(3 * sample_interval_s, 1.0 if averaged else 0.0)
        method, period = Method.SAMPLED, sample_interval_s
    if plan.errors and plan.source != SOURCE_COUNTER:
        facts["counter_unavailable"] = "; ".join(dict.fromkeys(plan.errors))
    read_call = (
        "amdsmi_get_energy_count" if plan.source == SOURCE_COUNTER else "amdsmi_get_power_info"
    )
    if read_call in costs:
        facts["read_cost_ms"] = f"{costs[read_call] * 1e3:.3g}"
    other = facts.get("other_processes", "0")
    shared = _partitioned(facts) or (other.isdigit() and int(other) > 0)
    name = facts.get("name", "AMD GPU")
    component = ComponentInfo(
        id=cid,
        kind=ComponentKind.GPU,
        scope=Scope.GPU_BOARD,
        method=method,
        sensor="amdsmi",
        label=f"{name} ({plan.gpu.uuid})",
        host=host,
        resolution_s=resolution,
        sampling_period_s=period,
        shared=shared,
        detail=facts,
    )
    return reader, component


def setup_warnings(
    sensor: Sensor, components: list[ComponentInfo], call_costs_s: Mapping[str, float]
) -> None:
    """Queue on ``sensor`` what the user should know about each board."""
    now = time.monotonic()
    for c in components:
        d = c.detail
        if d.get("counter_stuck") == "true":
            sensor.warn(
                "amdsmi.counter_stuck",
                f"{c.label}: the energy accumulator does not move although the board draws "
                f"power (seen on MI100 until a reboot); sampling {d.get('power_source')} "
                "instead",
                c.id,
                now,
            )
        if d.get("power_source") == SOURCE_AVERAGE:
            sensor.warn(
                "amdsmi.power_average",
                f"{c.label}: no energy accumulator or current power; sampling "
                "average_socket_power, a firmware average over an undocumented window, so "
                "phase energies lag the real draw",
                c.id,
                now,
            )
        if _partitioned(d):
            sensor.warn(
                "amdsmi.partition_shared",
                f"{c.label}: the board is split into {d.get('partitions')} compute partitions "
                f"({d.get('compute_partition', 'mode unknown')}); a partition has no power "
                "reading of its own, so the whole board is measured once, including the "
                f"other partitions' work (this process uses partition(s) "
                f"{d.get('visible_partitions') or 'none'})",
                c.id,
                now,
            )
        other = d.get("other_processes", "0")
        if other.isdigit() and int(other) > 0:
            sensor.warn(
                "amdsmi.shared_gpu",
                f"{c.label}: {other} other process(es) use this GPU; its energy includes "
                "their work",
                c.id,
                now,
            )
        if "MI250" in d.get("name", ""):
            sensor.warn(
                "amdsmi.dual_die",
                f"{c.label}: an MI250/MI250X module shows as two GPUs (one per die) and "
                "reports the module's power on one of them; measure both GPUs of a module "
                "together, and read their sum as the module's energy",
                c.id,
                now,
            )
    slow = slow_calls(call_costs_s, _SLOW_CALL_S, skip="amdsmi_init")
    if slow:
        sensor.warn(
            "amdsmi.slow_call",
            f"AMD SMI calls are slow on this machine ({slow}); boundary reads will cost "
            "about as much",
            None,
            now,
        )
