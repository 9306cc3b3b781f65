"""Carbon in built reports: embodied counted once per host and per board, the PUE warning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from greenmeter.carbon import CarbonConfig, resolve
from greenmeter.carbon.constants import EMBODIED_DEFAULTS
from greenmeter.report import build_report
from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope
from test_report_support import GPU_B_ID, GPU_ID, HOST, HOST_INFO, make_snapshot


def _dual_socket_snapshot():  # type: ignore[no-untyped-def]
    snap = make_snapshot(ids=["rapl:package-0", "rapl:dram-0", GPU_ID, GPU_B_ID])
    package1 = ComponentInfo(
        "rapl:package-1", ComponentKind.CPU, Scope.CPU_PACKAGE, Method.COUNTER, "rapl",
        "CPU package 1", HOST, 0.001, 0.5, detail={"socket": "1", "cpu_model": "Xeon"},
    )  # fmt: skip
    return dataclasses.replace(
        snap,
        components=[*snap.components, package1],
        energy_j={**snap.energy_j, "rapl:package-1": snap.energy_j["rapl:package-0"]},
    )


def _build(snap, carbon, sockets: int):  # type: ignore[no-untyped-def]
    host = {**HOST_INFO, "sockets": sockets}
    return build_report(snap, carbon=carbon, host_info=host, include_git=False)


def test_dual_socket_host_is_charged_once_and_each_gpu_board_once(tmp_path: Path) -> None:
    acct = resolve(CarbonConfig(location="FR", pue=1.2, embodied=True), cwd=tmp_path, env={})
    report = _build(_dual_socket_snapshot(), acct, sockets=2)
    hours = report.duration_s / 3600.0
    assert report.totals.device_hours["cpu"] == pytest.approx(2 * hours)  # two packages
    co2e = report.totals.co2e
    assert co2e is not None and co2e.embodied_by_kind_g is not None
    server = EMBODIED_DEFAULTS["server"].per_device_hour_g
    gpu = EMBODIED_DEFAULTS["gpu"].per_device_hour_g
    assert co2e.embodied_by_kind_g["server"] == pytest.approx(hours * server)  # once per host
    assert co2e.embodied_by_kind_g["gpu"] == pytest.approx(2 * hours * gpu)  # two boards
    assert co2e.embodied_g == pytest.approx(hours * server + 2 * hours * gpu)
    fit = report.phase("fit")
    fit_h = fit.duration_s / 3600.0
    assert fit.co2e is not None and fit.co2e.embodied_by_kind_g is not None
    assert fit.co2e.embodied_by_kind_g["server"] == pytest.approx(fit_h * server)


def test_non_owner_rank_does_not_charge_the_server_again(tmp_path: Path) -> None:
    acct = resolve(CarbonConfig(location="FR", pue=1.2, embodied=True), cwd=tmp_path, env={})
    snap = dataclasses.replace(make_snapshot(ids=[GPU_B_ID]), local_rank=1)
    co2e = _build(snap, acct, sockets=1).totals.co2e
    assert co2e is not None and co2e.embodied_by_kind_g is not None
    assert co2e.embodied_by_kind_g["server"] == 0.0
    assert co2e.embodied_by_kind_g["gpu"] > 0.0


@pytest.mark.parametrize(
    ("ids", "sockets", "pue", "warned"),
    [
        ([GPU_ID], 1, None, True),  # an H100 with no PUE given
        (["rapl:package-0"], 2, None, True),  # a dual-socket host
        (["rapl:package-0"], 1, None, False),  # a desktop
        ([GPU_ID], 1, 1.0, False),  # PUE 1.0 given on purpose
        ([GPU_ID], 1, 1.3, False),
    ],
)
def test_pue_one_on_datacentre_hardware_warns(
    tmp_path: Path, ids: list[str], sockets: int, pue: float | None, warned: bool
) -> None:
    acct = resolve(CarbonConfig(location="FR", pue=pue), cwd=tmp_path, env={})
    report = _build(make_snapshot(ids=ids), acct, sockets=sockets)
    found = [w.message for w in report.warnings if w.code == "carbon.pue_default_datacentre"]
    assert bool(found) is warned
    if warned:
        assert "GREENMETER_PUE" in found[0] and "--pue" in found[0]
