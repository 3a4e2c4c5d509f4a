"""DDP with two CPU processes (gloo), as the jobs of a multirun: one output directory per job, files written
once, and test metrics equal to a single-process evaluation of the same checkpoint."""

from __future__ import annotations

import json

import hydra
import lightning as L
import pytest
from omegaconf import OmegaConf

from tests.helpers.train_cli import compose_config, run_train, tiny


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_ddp_jobs_write_once_and_test_like_one_process(tmp_path, data_dir):
    overrides = [*tiny(tmp_path, data_dir, epochs=1), "trainer=ddp_cpu", "trainer.devices=2", "logger=wandb"]
    sweep_dir = tmp_path / "sweep"
    # two jobs in one process: the second must launch its own rank 1 again
    run_train(["-m", *overrides, "pool_strides=paper,all_spatial", f"hydra.sweep.dir={sweep_dir}"])

    assert sorted(p.name for p in sweep_dir.iterdir()) == ["0", "1", "multirun.yaml", "summary.csv"]
    for job in ("0", "1"):
        run = sweep_dir / job
        assert [p.name for p in run.glob("*.log")] == ["train.log"]  # rank 1 wrote no log of its own
        assert [p.relative_to(run).as_posix() for p in run.rglob(".hydra")] == [".hydra"]
        assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # one W&B run, rank 0's
        assert (run / "checkpoints" / "last.ckpt").is_file()
        results = json.loads((run / "metrics.json").read_text())
        assert results["test"]["test/duplicate_frames"] == 0

    # Job 1's checkpoint, tested by one process. The test video's 10 frames were split 5/5 across the ranks,
    # so its per-video metrics only agree if the ranks' per-frame states were gathered.
    cfg = compose_config([*overrides, "pool_strides=all_spatial", f"paths.output_dir={sweep_dir / '1'}",
                          "trainer=cpu"])
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.module, model=OmegaConf.to_container(cfg.model, resolve=True),
                                     _convert_="all")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    single = trainer.test(module, datamodule=datamodule, ckpt_path=results["checkpoint"], verbose=False)[0]
    assert set(single) == set(results["test"])
    for name, value in single.items():
        assert results["test"][name] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name
