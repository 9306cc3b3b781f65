"""GreenMeterCallback in a 2-process DDP fit (gloo, CPU) on an emulated RAPL package.

The fit runs in a fresh interpreter (``strategy="ddp_fork"``: the two ranks are forked
from it, so the test pays for one import of Lightning, not three).

Both ranks read the same emulated ``/sys/class/powercap`` tree (through
``GREENMETER_POWERCAP_ROOT``), as two ranks on one host read the same package counter.
The package must be counted once (by local rank 0), the merged report must exist once
(on global rank 0), and its energies must equal the emulator's exact trace integral over
rank 0's phase intervals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenmeter.report import Report
from greenmeter.testing import EmulatedPowercap, PowerTrace

pytest.importorskip("lightning.pytorch")

SCRIPT = textwrap.dedent(
    '''
    import json, sys, warnings
    import torch
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset
    from greenmeter.integrations.lightning import GreenMeterCallback

    warnings.filterwarnings("ignore")
    out = sys.argv[1]

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), sync_dist=True)

        def test_step(self, batch, batch_idx):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    def loader():
        g = torch.Generator().manual_seed(0)
        return DataLoader(TensorDataset(torch.randn(64, 4, generator=g), torch.randn(64, 1)), 8)

    class Dumping(GreenMeterCallback):
        """Also writes each rank's meter phases (monotonic intervals) for the truth."""

        def teardown(self, trainer, pl_module, stage):
            super().teardown(trainer, pl_module, stage)
            snap = self.meter.snapshot()
            dump = {
                "rank": trainer.global_rank,
                "components": [c.id for c in snap.components],
                "intervals": {"/".join(r.path): r.intervals_mono for r in snap.phases},
            }
            with open(f"{out}/rank-{trainer.global_rank}.json", "w") as f:
                json.dump(dump, f)

    cb = Dumping(report_path=f"{out}/report.json", sample_interval_s=0.05)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_fork", max_epochs=2,
        limit_train_batches=3, limit_val_batches=2, num_sanity_val_steps=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        callbacks=[cb],
    )
    trainer.fit(Tiny(), loader(), loader())
    '''
)


@pytest.mark.slow
def test_ddp_two_ranks_count_the_package_once(tmp_path: Path) -> None:
    package = PowerTrace([(0.01, 40.0), (0.015, 120.0)])
    dram = PowerTrace([(0.02, 6.0), (0.01, 12.0)], t0=package.t0)
    with EmulatedPowercap([package], dram_traces=[dram], max_energy_range_uj=60_000_000) as pc:
        script = tmp_path / "train_ddp.py"
        script.write_text(SCRIPT)
        drop = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(pc.env())  # GREENMETER_POWERCAP_ROOT: both ranks read the same package
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]
        rank0 = json.loads((tmp_path / "rank-0.json").read_text())
        rank1 = json.loads((tmp_path / "rank-1.json").read_text())
        truth = {
            path: {
                zone: sum(pc.true_energy_j(zone, a, b) for a, b in spans)
                for zone in ("package-0", "dram-0")
            }
            for path, spans in rank0["intervals"].items()
        }

    # local rank 0 measured the host, local rank 1 nothing (no GPU on a CPU run)
    assert rank0["components"] == ["rapl:package-0", "rapl:dram-0"]
    assert rank1["components"] == []
    assert sorted(p.name for p in tmp_path.glob("report*.json")) == ["report.json"]
    report = Report.load(tmp_path / "report.json")
    assert report.status == "complete"
    assert sorted(r.rank for r in report.ranks) == [0, 1]
    by_rank = {r.rank: r for r in report.ranks}
    assert by_rank[1].it_energy_j == 0.0 and by_rank[1].components == []
    assert len(report.hosts) == 1
    assert [c.id for c in report.components] == ["rapl:package-0", "rapl:dram-0"]
    host = report.hosts[0].hostname
    # 1 kHz emulator updates: allow 2 ms at peak power per boundary, per interval
    for path in ("fit", "fit/train", "fit/validate", "fit/train/epoch-1"):
        phase = report.phase(path)
        spans = len(rank0["intervals"][path])
        for zone, peak_w in (("package-0", 120.0), ("dram-0", 12.0)):
            got = phase.energy_j[f"rapl:{zone}@{host}"]
            tol = 2 * spans * 0.002 * peak_w + 0.01 * truth[path][zone]
            assert got == pytest.approx(truth[path][zone], abs=tol), (path, zone)
    # both ranks' work items were summed: 3 batches x 8 samples x 2 epochs x 2 ranks
    assert report.phase("fit/train").items.samples == 96
