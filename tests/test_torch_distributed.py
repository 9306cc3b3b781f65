"""A 2-process torchrun-style job (gloo): one merged report, the host's package counted once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from greenmeter.report import Report  # noqa: E402
from greenmeter.testing import EmulatedPowercap, PowerTrace  # noqa: E402

RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset
    from greenmeter import EnergyMeter
    from greenmeter.integrations.torch import distributed_report, gather_reports

    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")
    n = 10 if rank == 0 else 7          # samples differ per rank; batches of 4
    loader = DataLoader(TensorDataset(torch.randn(n, 3)), batch_size=4)
    meter = EnergyMeter(gpu=False, sample_interval_s=0.02).start()
    dist.barrier()
    for (x,) in meter.track(loader, "train"):
        time.sleep(0.05)
    dist.barrier()
    snap = meter.stop()
    merged = distributed_report(meter, os.path.join(out, "merged.json"), include_git=False)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({
            "count_host": meter.count_host,
            "components": [c.id for c in meter.components],
            "started_mono": snap.started_mono,
            "ended_mono": snap.ended_mono,
            "merged_here": merged is not None,
        }, f)
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_one_report_host_counted_once(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    package = PowerTrace([(0.05, 60.0), (0.03, 95.0)])
    dram = PowerTrace.constant(6.0, t0=package.t0)
    with EmulatedPowercap([package], dram_traces=[dram], subzones=False) as pc:
        port = str(_free_port())
        procs = []
        for rank in range(2):
            env = {
                **os.environ,
                **pc.env(),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": "2",
                "LOCAL_WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "GREENMETER_POWERCAP_ROOT": str(pc.root),
                "OMP_NUM_THREADS": "1",
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(script), str(tmp_path)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        for p, text in zip(procs, outputs, strict=True):
            assert p.returncode == 0, text
        info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
        truth_pkg = pc.true_package_energy_j(info[0]["started_mono"], info[0]["ended_mono"])
        truth_dram = pc.true_dram_energy_j(info[0]["started_mono"], info[0]["ended_mono"])

    # only local rank 0 measured the host; only rank 0 received the merged report
    assert info[0]["count_host"] and not info[1]["count_host"]
    assert "rapl:package-0" in info[0]["components"]
    assert not any(c.startswith(("rapl:", "estimate:")) for c in info[1]["components"])
    assert [i["merged_here"] for i in info] == [True, False]

    report = Report.load(tmp_path / "merged.json")
    assert sorted(r.rank for r in report.ranks) == [0, 1]
    packages = [c for c in report.components if c.id == "rapl:package-0"]
    assert len(packages) == 1
    pkg_j = report.totals.energy_j[packages[0].key]
    assert pkg_j == pytest.approx(truth_pkg, rel=0.01)  # once, not twice
    dram_key = next(c.key for c in report.components if c.id == "rapl:dram-0")
    assert report.totals.energy_j[dram_key] == pytest.approx(truth_dram, rel=0.01)
    train = report.phase("train")
    assert train.items.samples == 17  # 10 + 7, partial last batches included
    assert train.items.steps == 3 + 2
