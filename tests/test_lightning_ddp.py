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
from typing import Any

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
    out, strategy, stages = sys.argv[1], sys.argv[2], sys.argv[3].split(",")

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
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y), sync_dist=True)

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
            stage = getattr(stage, "value", stage)
            with open(f"{out}/rank-{trainer.global_rank}-{stage}.json", "w") as f:
                json.dump(dump, f)

    if __name__ == "__main__":
        cb = Dumping(report_path=f"{out}/report.json", sample_interval_s=0.05, verbose=False)
        trainer = pl.Trainer(
            accelerator="cpu", devices=2, strategy=strategy, max_epochs=2,
            limit_train_batches=3, limit_val_batches=2, limit_test_batches=2,
            num_sanity_val_steps=0, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, callbacks=[cb],
        )
        model = Tiny()
        if "fit" in stages:
            trainer.fit(model, loader(), loader())
        if "test" in stages:
            trainer.test(model, loader())
    '''
)


def run(tmp_path: Path, pc: EmulatedPowercap, strategy: str, stages: str) -> None:
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    drop = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(pc.env())  # GREENMETER_POWERCAP_ROOT: both ranks read the same package
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), strategy, stages],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]


def truth(pc: EmulatedPowercap, intervals: dict[str, list[list[float]]]) -> dict[str, Any]:
    return {
        path: {
            zone: sum(pc.true_energy_j(zone, a, b) for a, b in spans)
            for zone in ("package-0", "dram-0")
        }
        for path, spans in intervals.items()
    }


def traces() -> tuple[PowerTrace, PowerTrace]:
    package = PowerTrace([(0.01, 40.0), (0.015, 120.0)])
    return package, PowerTrace([(0.02, 6.0), (0.01, 12.0)], t0=package.t0)


def assert_phase(report: Report, path: str, spans: list[list[float]], true_j: Any) -> None:
    """Energy against the emulator's integral over rank 0's intervals (1 kHz updates:
    2 ms at peak power per boundary), duration = rank 0's time: the same window."""
    host = report.hosts[0].hostname
    phase = report.phase(path)
    for zone, peak_w in (("package-0", 120.0), ("dram-0", 12.0)):
        got = phase.energy_j[f"rapl:{zone}@{host}"]
        tol = 2 * len(spans) * 0.002 * peak_w + 0.01 * true_j[zone]
        assert got == pytest.approx(true_j[zone], abs=tol), (path, zone)
    rank0_s = sum(b - a for a, b in spans)
    assert phase.duration_s == pytest.approx(rank0_s, rel=1e-6, abs=1e-6), path


@pytest.mark.slow
def test_ddp_two_ranks_count_the_package_once(tmp_path: Path) -> None:
    package, dram = traces()
    with EmulatedPowercap([package], dram_traces=[dram], max_energy_range_uj=60_000_000) as pc:
        run(tmp_path, pc, "ddp_fork", "fit")
        rank0 = json.loads((tmp_path / "rank-0-fit.json").read_text())
        rank1 = json.loads((tmp_path / "rank-1-fit.json").read_text())
        true_j = truth(pc, rank0["intervals"])

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
    for path in ("fit", "fit/train", "fit/validate", "fit/train/epoch-1"):
        assert_phase(report, path, rank0["intervals"][path], true_j[path])
    # both ranks' samples were summed: 3 batches x 8 samples x 2 epochs x 2 ranks; the
    # ranks step together: 6 optimizer steps
    train = report.phase("fit/train")
    assert train.items.samples == 96
    assert train.items.steps == 6 and train.attrs["optimizer_steps"] == "6"
    assert report.phase("fit/validate").items.steps is None


@pytest.mark.slow
def test_ddp_spawn_fit_then_test_is_one_report(tmp_path: Path) -> None:
    package, dram = traces()
    with EmulatedPowercap([package], dram_traces=[dram], max_energy_range_uj=60_000_000) as pc:
        run(tmp_path, pc, "ddp_spawn", "fit,test")
        fit0 = json.loads((tmp_path / "rank-0-fit.json").read_text())
        test0 = json.loads((tmp_path / "rank-0-test.json").read_text())
        true_j = {**truth(pc, fit0["intervals"]), **truth(pc, test0["intervals"])}

    report = Report.load(tmp_path / "report.json")
    # the test stage ran in new processes and continued the fit's report
    assert report.extra["lightning.stages"] == "fit,test"
    top = {p.path_str for p in report.phases}
    assert {"fit", "test"} <= top
    for path in ("fit", "fit/train", "test"):
        spans = (fit0 if path.startswith("fit") else test0)["intervals"][path]
        assert_phase(report, path, spans, true_j[path])
    assert report.phase("test").items.samples == 2 * 8 * 2
    assert report.phase("fit/train").items.steps == 6
    # four rank reports: two ranks in each of two stages
    assert sorted(r.rank for r in report.ranks) == [0, 0, 1, 1]
