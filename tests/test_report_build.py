"""build_report: every field lands where it should, against exact trace integrals."""

from __future__ import annotations

import json
import math
from datetime import timedelta, timezone

import pytest

from greenmeter.records import PhaseRecord
from greenmeter.report import (
    EstimatedComponent,
    ModelInfo,
    Report,
    ReportError,
    build_report,
    component_key,
    efficiency,
    exclusive_energy,
    phase_confidence,
)
from greenmeter.report.confidence import ComponentFacts
from test_report_support import (
    GPU_ID,
    GPU_UUID,
    HOST,
    HOST_INFO,
    RUN_S,
    START_UTC,
    T0,
    TRACES,
    StubAccountant,
    exact,
    expected_co2e_g,
    make_snapshot,
)

ALL = list(TRACES)
KEY = {i: component_key(i, HOST) for i in ALL}


def build(snap=None, **kw) -> Report:
    kw.setdefault("carbon", StubAccountant())
    kw.setdefault("host_info", HOST_INFO)
    kw.setdefault("include_git", False)
    return build_report(snap or make_snapshot(), **kw)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def test_run_level_fields() -> None:
    r = build(run_name="baseline", command=["train.py", "--api-key=abc", "--lr", "0.1"])
    assert r.schema_version == "2"
    assert len(r.run_id) == 32 and int(r.run_id, 16) >= 0
    assert r.run_name == "baseline"
    assert r.status == "complete"
    assert r.start_utc == START_UTC and r.start_utc.tzinfo == timezone.utc
    assert r.end_utc == START_UTC + timedelta(seconds=RUN_S)
    assert r.duration_s == RUN_S
    assert r.command == ["train.py", "--api-key=***", "--lr", "0.1"]
    assert r.git is None
    host = r.hosts[0]
    assert (host.hostname, host.cpu_model, host.logical_cores, host.ram_bytes) == (
        HOST, "Xeon", 16, 64 * 2**30,
    )  # fmt: skip
    assert host.ranks == [0]
    assert r.ranks[0].rank == 0 and r.ranks[0].host == HOST
    assert r.ranks[0].it_energy_j == approx(sum(exact(ALL, [(0, RUN_S)]).values()))
    assert r.software.python and r.software.greenmeter
    assert r.unavailable[0].sensor == "pyrapl" and r.unavailable[0].fix == "pip install"


def test_status_running_and_explicit() -> None:
    assert build(make_snapshot(running=True)).status == "running"
    assert build(status="interrupted").status == "interrupted"
    with pytest.raises(ReportError, match="status 'bogus'"):
        build(status="bogus")


def test_components_discriminated_by_method() -> None:
    r = build()
    assert [c.key for c in r.components] == [KEY[i] for i in ALL]
    est = r.component("estimate:ram")
    assert isinstance(est, EstimatedComponent)
    assert est.estimate_model == "W per GB x installed GB"
    assert est.estimate_constants == "0.375 W/GB x 13.3 GB"
    gpu = r.component(GPU_ID)
    assert gpu.method == "counter" and gpu.resolution_s == 0.1 and gpu.kind == "gpu"
    # the GPU facts come from the component's details
    g = r.gpus[0]
    assert (g.uuid, g.name, g.driver_version, g.architecture) == (
        GPU_UUID, "NVIDIA H100 80GB HBM3", "550.54.15", "Hopper",
    )  # fmt: skip
    assert g.power_limit_w == 700.0 and g.mig is False and g.index == 0
    assert g.pci_bus_id == "00000000:01:00.0" and g.component == KEY[GPU_ID]


def test_totals_energy_kwh_facility_and_device_hours() -> None:
    acct = StubAccountant(pue=1.5)
    r = build(carbon=acct)
    truth = exact(ALL, [(0.0, RUN_S)])
    it = sum(truth.values())
    t = r.totals
    for i in ALL:
        assert t.energy_j[KEY[i]] == approx(truth[i])
    assert t.it_energy_j == approx(it)
    assert t.it_energy_kwh == approx(it / 3.6e6)
    assert t.facility_energy_j == approx(it * 1.5)
    assert t.facility_energy_kwh == approx(it * 1.5 / 3.6e6)
    assert t.energy_by_kind_j["gpu"] == approx(truth[GPU_ID])
    assert t.estimated_energy_j == approx(truth["estimate:ram"])
    assert t.gpu_hours == approx(RUN_S / 3600) and t.device_hours["cpu"] == approx(RUN_S / 3600)
    assert "ram" not in t.device_hours
    # the whole run's CO2e applies each second's intensity to that second's energy
    assert t.co2e.operational_g == approx(expected_co2e_g([(0.0, RUN_S)]))
    assert t.co2e.embodied_g == approx(RUN_S / 3600 * (10 + 2))
    assert r.carbon == acct.info
    assert any(w.code == "carbon.fallback" for w in r.warnings)


def test_phase_tree_energies_and_lookup() -> None:
    r = build()
    assert [p.path_str for p in r.iter_phases()] == [
        "fit", "fit/train", "fit/validate", "inference",
    ]  # fmt: skip
    train = r.phase("fit/train")
    assert train is r.phase(("fit", "train"))
    assert train.kind == "train" and train.count == 2 and train.name == "train"
    assert train.duration_s == 60.0
    truth = exact(ALL, [(10.0, 40.0), (50.0, 80.0)])
    for i in ALL:
        assert train.energy_j[KEY[i]] == approx(truth[i])
    assert train.it_energy_j == approx(sum(truth.values()))
    assert train.it_energy_kwh == approx(sum(truth.values()) / 3.6e6)
    assert train.facility_energy_j == approx(sum(truth.values()) * 1.5)
    assert train.start_utc == START_UTC + timedelta(seconds=10)
    assert train.end_utc == START_UTC + timedelta(seconds=80)
    assert train.intervals_s == [(10.0, 40.0), (50.0, 80.0)]
    assert train.gpu_hours == approx(60 / 3600)
    assert r.phase("fit").attrs == {"note": "x"}
    with pytest.raises(KeyError, match="fit/train"):
        r.phase("fit/nope")


def test_exclusive_energy_of_parent() -> None:
    r = build()
    fit = r.phase("fit")
    children = exact(ALL, [(10.0, 40.0), (50.0, 80.0), (40.0, 50.0), (80.0, 90.0)])
    own = exact(ALL, [(5.0, 95.0)])
    assert fit.exclusive_energy_j == approx(sum(own.values()) - sum(children.values()))
    # the parent's own time is 10 s at 365 W (GPU 300) and 5 s at 165 W (GPU 100)
    assert fit.exclusive_energy_j == approx(5 * 365 + 5 * 165)
    assert r.phase("fit/train").exclusive_energy_j is None  # no children


def test_exclusive_energy_rule() -> None:
    assert exclusive_energy(100.0, 10.0, []) is None
    assert exclusive_energy(100.0, 10.0, [(4.0, 30.0), (5.0, 50.0)]) == 20.0
    # children overlapping in time (concurrent): no meaningful subtraction
    assert exclusive_energy(100.0, 10.0, [(8.0, 30.0), (8.0, 50.0)]) is None
    # rounding below zero becomes 0; a real excess is not hidden
    assert exclusive_energy(100.0, 10.0, [(5.0, 50.0), (5.0, 50.0000000001)]) == 0.0
    assert exclusive_energy(100.0, 10.0, [(5.0, 60.0), (5.0, 60.0)]) is None


def test_efficiency_from_known_inputs() -> None:
    r = build()
    train = r.phase("fit/train")
    e = sum(exact(ALL, [(10.0, 40.0), (50.0, 80.0)]).values())
    eff = train.efficiency
    assert eff.energy_per_sample_j == approx(e / 6000)
    assert eff.energy_per_token_j == approx(e / 600_000)
    assert eff.energy_per_step_j == approx(e / 200)
    assert eff.samples_per_s == approx(6000 / 60)
    assert eff.tokens_per_s == approx(600_000 / 60)
    assert eff.mean_power_w == approx(e / 60)
    assert eff.peak_power_w == 420.0  # the sampler's figure, as recorded
    assert eff.latency_count == 0 and eff.latency_p50_s is None
    # no sampler peak: highest timeline step overlapping the phase (GPU at 300 W)
    assert r.phase("fit/validate").efficiency.peak_power_w == approx(365.0)
    inf = r.phase("inference").efficiency
    assert inf.latency_count == 100
    assert inf.latency_p50_s == approx(0.0505)
    assert inf.latency_p95_s == approx(0.09505)
    assert inf.latency_p99_s == approx(0.09901)
    assert inf.latency_mean_s == approx(0.0505)


def test_efficiency_function_edge_cases() -> None:
    eff = efficiency(it_energy_j=10.0, duration_s=0.0, samples=0, latencies_s=[0.2])
    assert eff.energy_per_sample_j is None and eff.samples_per_s is None
    assert eff.mean_power_w is None
    assert eff.latency_p50_s == eff.latency_p99_s == 0.2


def test_confidence_levels_from_resolution() -> None:
    r = build()
    # train: 30 s per entry, GPU resolution 0.1 s -> ratio 300 -> high
    assert r.phase("fit/train").confidence.level == "high"
    # validate: 20 s over 4 entries = 5 s per entry -> ratio 50 -> medium, limited by GPU
    val = r.phase("fit/validate").confidence
    assert (val.level, val.component) == ("medium", KEY[GPU_ID])
    # inference: 40 ms per entry vs 0.1 s -> low
    inf = r.phase("inference").confidence
    assert inf.level == "low" and "0.1 s resolution" in inf.reason
    # the RAM estimate carries under 5% of the energy: it does not limit the phase
    assert r.phase("fit/train").confidence.estimated is False


def test_confidence_rule_estimates_and_degraded() -> None:
    facts = {
        "c": ComponentFacts("c", "counter", 0.001),
        "e": ComponentFacts("e", "estimated", 1.0),
        "d": ComponentFacts("d", "counter", 0.001, degraded=True),
    }
    hi = phase_confidence(duration_s=10, count=1, energy_j={"c": 100.0}, components=facts)
    assert hi.level == "high" and not hi.estimated
    est = phase_confidence(
        duration_s=1000, count=1, energy_j={"c": 80.0, "e": 20.0}, components=facts
    )
    assert (est.level, est.estimated, est.component) == ("low", True, "e")
    small = phase_confidence(
        duration_s=1000, count=1, energy_j={"c": 99.0, "e": 1.0}, components=facts
    )
    assert small.level == "high"
    deg = phase_confidence(duration_s=10, count=1, energy_j={"d": 5.0}, components=facts)
    assert deg.level == "low" and "degraded" in deg.reason
    # boundaries: ratio exactly 100 is high, exactly 10 medium
    assert (
        phase_confidence(duration_s=0.1, count=1, energy_j={"c": 1.0}, components=facts).level
        == "high"
    )
    assert (
        phase_confidence(duration_s=0.5, count=50, energy_j={"c": 1.0}, components=facts).level
        == "medium"
    )


def test_estimate_only_run_is_low_confidence_everywhere() -> None:
    r = build(make_snapshot(ids=["estimate:ram"]))
    for p in r.iter_phases():
        assert p.confidence.level == "low" and p.confidence.estimated


def test_phase_co2e_uses_segments_summing_to_phase_energy() -> None:
    acct = StubAccountant(pue=1.5)
    r = build(carbon=acct)
    train = r.phase("fit/train")
    ivs = [(10.0, 40.0), (50.0, 80.0)]
    # one call per phase plus one for the run; find the train call by its energy
    e = train.it_energy_j
    call = next(c for c in acct.calls if abs(sum(s[2] for s in c[0]) - e) < 1e-9)
    segments, hours = call
    assert sum(s[2] for s in segments) == approx(e)
    assert all(s[0].tzinfo is not None and s[1] >= s[0] for s in segments)
    # the host's wall time rides along for the server's embodied emissions
    assert hours == {"gpu": approx(60 / 3600), "cpu": approx(60 / 3600), "host": approx(60 / 3600)}
    # time-varying intensity applied per bucket: 100 g/kWh before 50 s, 400 after
    assert train.co2e.operational_g == approx(expected_co2e_g(ivs))
    plain = sum(exact(ALL, ivs).values()) * 1.5 / 3.6e6 * 100.0
    assert train.co2e.operational_g > plain  # the later, dirtier hour counts more
    assert train.co2e.embodied_g == approx(60 / 3600 * 12)


def test_no_carbon_means_pue_one_and_no_co2e() -> None:
    r = build(carbon=False)
    assert r.carbon is None and r.totals.co2e is None and r.totals.pue == 1.0
    assert r.totals.facility_energy_j == r.totals.it_energy_j


def test_power_timeline_matches_traces() -> None:
    r = build()
    series = r.power_timeline[0]
    assert len(series.t_s) == 100 and series.t_s[0] == 1.0 and series.t_s[-1] == RUN_S
    gpu = series.power_w[KEY[GPU_ID]]
    assert gpu[:50] == [approx(300.0)] * 50 and gpu[50:] == [approx(100.0)] * 50
    assert series.power_w[KEY["rapl:package-0"]] == [approx(50.0)] * 100


def test_power_timeline_is_bounded() -> None:
    r = build(make_snapshot(timeline_step_s=0.01), carbon=False)
    series = r.power_timeline[0]
    assert len(series.t_s) <= 4096
    # downsampling keeps energy: mean power x time still equals the GPU's total
    t = [0.0, *series.t_s]
    energy = sum(p * (t[k + 1] - t[k]) for k, p in enumerate(series.power_w[KEY[GPU_ID]]))
    assert energy == pytest.approx(20000.0, rel=1e-9)


def test_model_info_forms() -> None:
    one = build(model={"name": "bert", "parameters_total": 110, "dtypes": {"float32": 110}})
    assert one.models == [ModelInfo(name="bert", parameters_total=110, dtypes={"float32": 110})]
    two = build(model=[ModelInfo(name="teacher"), {"name": "student", "size_bytes": 4}])
    assert [m.name for m in two.models] == ["teacher", "student"]
    with pytest.raises(ReportError, match="parameters_total"):
        build(model={"parameters_total": -1})
    with pytest.raises(ReportError, match="trainable"):
        build(model={"parameters_total": 1, "parameters_trainable": 2})


def test_warnings_are_structured() -> None:
    r = build()
    wrap = next(w for w in r.warnings if w.code == "rapl.wrap")
    assert wrap.component == KEY["rapl:package-0"] and wrap.at_s == approx(12.0)
    assert wrap.host == HOST


def test_bad_sensor_values_become_warnings_not_exceptions() -> None:
    snap = make_snapshot()
    snap.energy_j["rapl:dram-0"] = math.nan
    snap.phases[1].energy_j["rapl:package-0"] = -5.0
    snap.phases.append(PhaseRecord(path=("odd",), kind="not-a-kind", count=1, duration_s=1.0))
    r = build(snap)
    assert r.totals.energy_j[KEY["rapl:dram-0"]] == 0.0
    assert r.phase("fit/train").energy_j[KEY["rapl:package-0"]] == 0.0
    assert r.phase("odd").kind == "custom"
    assert sum(w.code == "report.invalid_value" for w in r.warnings) >= 2


def test_options_and_extra() -> None:
    r = build(include_command=False, extra={"lr": 0.1, "tags": ["a"], "seed": 3})
    assert r.command is None
    assert r.extra == {"lr": 0.1, "tags": "['a']", "seed": 3}
    fixed = build(run_id="ab" * 16)
    assert fixed.run_id == "ab" * 16


def test_git_info_of_a_checkout(tmp_path) -> None:
    import subprocess

    try:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not available")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"}  # fmt: skip
    (tmp_path / "f.txt").write_text("1")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f.txt"], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "c"], check=True, env=env)
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    clean = build(include_git=True, cwd=str(tmp_path))
    assert clean.git.commit == head and clean.git.dirty is False
    (tmp_path / "f.txt").write_text("2")
    assert build(include_git=True, cwd=str(tmp_path)).git.dirty is True
    assert build(include_git=True, cwd="/").git is None


def test_json_round_trip_keeps_every_field(tmp_path) -> None:
    r = build(model={"name": "m", "parameters_total": 5}, run_name="n", extra={"k": "v"})
    path = r.save(tmp_path / "run.json")
    back = Report.load(path)
    assert back == r
    assert json.loads(path.read_text()) == json.loads(r.to_json())


def test_hostinfo_software_without_importing_frameworks() -> None:
    import importlib.metadata
    import subprocess
    import sys

    code = (
        "import sys, json; from greenmeter import hostinfo; v = hostinfo.software_versions(); "
        "print(json.dumps([v, sorted(m for m in ('torch', 'lightning', 'transformers') "
        "if m in sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    versions, imported = json.loads(out.stdout)
    assert imported == [], out.stderr
    for key, dist in [("torch", "torch"), ("pydantic", "pydantic")]:
        try:
            want = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            want = None
        assert versions[key] == want


def test_hostinfo_facts_of_this_machine() -> None:
    from greenmeter import hostinfo

    facts = hostinfo.host_facts("h")
    assert facts["hostname"] == "h"
    assert facts["logical_cores"] >= 1 and facts["ram_bytes"] > 0
    assert hostinfo.redact_command(["x", "--token", "abc", "--password=p", "--lr", "1"]) == [
        "x", "--token", "***", "--password=***", "--lr", "1",
    ]  # fmt: skip


def test_open_phase_in_checkpoint() -> None:
    snap = make_snapshot(running=True)
    rec = snap.phases[1]
    rec.open = True
    rec.last_end_mono = None
    r = build(snap)
    train = r.phase("fit/train")
    assert train.open and train.end_utc is None
    assert train.it_energy_j == approx(sum(exact(ALL, [(10.0, 40.0), (50.0, 80.0)]).values()))


def test_component_lookup_errors() -> None:
    r = build()
    with pytest.raises(KeyError, match="no component"):
        r.component("nvml:GPU-missing")
    assert r.component(KEY[GPU_ID]).id == GPU_ID


def test_start_time_offset_normalised_to_utc() -> None:
    snap = make_snapshot()
    snap.started_utc = START_UTC.astimezone(timezone(timedelta(hours=2)))
    r = build(snap)
    assert r.start_utc.utcoffset() == timedelta(0) and r.start_utc == START_UTC
    assert r.phase("fit").start_utc == START_UTC + timedelta(seconds=5)
    assert T0 > 0


def test_with_the_real_carbon_accountant(tmp_path) -> None:
    """End to end through greenmeter.carbon.resolve: explicit, then a time series."""
    from greenmeter.carbon import CarbonConfig

    r = build(carbon=CarbonConfig(intensity_g_per_kwh=400.0, pue=1.2))
    it_kwh = r.totals.it_energy_kwh
    assert r.totals.pue == 1.2 and r.carbon.pue.value == 1.2
    assert r.totals.co2e.operational_g == pytest.approx(it_kwh * 1.2 * 400.0, rel=1e-9)
    train = r.phase("fit/train")
    assert train.co2e.operational_g == pytest.approx(train.it_energy_kwh * 1.2 * 400.0)
    # an hourly series that switches from 100 to 400 g/kWh 50 s into the run
    series = tmp_path / "grid.csv"
    series.write_text(
        "timestamp,intensity\n"
        f"{START_UTC.isoformat()},100\n"
        f"{(START_UTC + timedelta(seconds=50)).isoformat()},400\n"
        f"{(START_UTC + timedelta(seconds=100)).isoformat()},400\n"
    )
    ts = build(carbon=CarbonConfig(intensity_series=str(series), pue=1.5))
    assert ts.totals.co2e.operational_g == pytest.approx(expected_co2e_g([(0.0, RUN_S)]))
    ivs = [(10.0, 40.0), (50.0, 80.0)]
    assert ts.phase("fit/train").co2e.operational_g == pytest.approx(expected_co2e_g(ivs))
    assert Report.load(ts.save(tmp_path / "ts.json")) == ts


def test_sampled_mig_and_degraded_components() -> None:
    from dataclasses import replace

    from greenmeter.report import SampledComponent
    from greenmeter.sensors.base import ComponentStatus, Method

    snap = make_snapshot()
    gpu = next(c for c in snap.components if c.id == GPU_ID)
    detail = {
        **gpu.detail,
        "mig": "true",
        "parent_uuid": "GPU-parent",
        "power_source": "instant_field",
    }
    sampled = replace(gpu, method=Method.SAMPLED, sampling_period_s=0.1, shared=True, detail=detail)
    snap.components = [sampled if c.id == GPU_ID else c for c in snap.components]
    snap.status = {"rapl:package-0": ComponentStatus(True, "permission lost", T0 + 30)}
    r = build(snap)
    comp = r.component(GPU_ID)
    assert isinstance(comp, SampledComponent)
    assert comp.sampling_period_s == 0.1 and comp.power_source == "instant_field" and comp.shared
    g = r.gpus[0]
    assert g.mig is True and g.parent_uuid == "GPU-parent" and g.shared is True
    pkg = r.component("rapl:package-0")
    assert pkg.degraded and pkg.degraded_reason == "permission lost"
    conf = r.phase("fit/train").confidence
    assert conf.level == "low" and conf.component == KEY["rapl:package-0"]
    # a sampled component without a period gets one assumed, and a warning
    snap.components = [replace(sampled, sampling_period_s=None) if c.id == GPU_ID else c
                       for c in snap.components]  # fmt: skip
    r2 = build(snap)
    assert r2.component(GPU_ID).sampling_period_s == 0.1  # its resolution
    assert any(w.code == "report.missing_sampling_period" for w in r2.warnings)


def test_cuda_version_from_torch_metadata(tmp_path, monkeypatch) -> None:
    from greenmeter import hostinfo

    class Dist:
        def __init__(self, version: str, text: str | None) -> None:
            self.version = version
            self.text = text

        def locate_file(self, name: str):
            path = tmp_path / "version.py"
            if self.text is None:
                return tmp_path / "missing.py"
            path.write_text(self.text)
            return path

    for version, text, want in [
        ("2.3.0", "__version__ = '2.3.0'\ncuda: Optional[str] = '12.1'\n", "12.1"),
        ("2.3.0", "cuda = '11.8'\n", "11.8"),
        ("2.3.0+cu124", None, "12.4"),
        ("2.3.0+cpu", "cuda: Optional[str] = None\n", None),
    ]:
        dist = Dist(version, text)
        monkeypatch.setattr(hostinfo.metadata, "distribution", lambda _n, d=dist: d)
        assert hostinfo.cuda_version() == want, (version, text)
