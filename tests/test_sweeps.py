"""Sweeps: a grid over pooling-stride presets, an Optuna search, and the summary written at the end."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml
from omegaconf import OmegaConf

from tests.helpers.train_cli import compose_config, run_train, tiny

PRESETS = ("paper", "all_spatial", "early_temporal", "late_temporal")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.mark.parametrize("preset", PRESETS)
def test_pool_stride_presets_compose_into_the_model(preset):
    cfg = compose_config(["+experiment=demo", f"pool_strides={preset}"])
    strides = OmegaConf.to_container(cfg.model.pool_strides)
    assert strides == yaml.safe_load(open(f"conf/pool_strides/{preset}.yaml"))["pool_strides"]
    assert cfg.model.widths == [64, 128, 256, 512, 512] and cfg.model.width_mult == 0.25  # rest of model=tiny
    # a literal list still wins over the preset
    cfg = compose_config(["+experiment=demo", f"pool_strides={preset}", "model.pool_strides=[[1,2,2],[1,2,2],"
                          "[1,2,2],[1,2,2],[1,2,2]]"])
    assert OmegaConf.to_container(cfg.model.pool_strides) == [[1, 2, 2]] * 5


def read_summary(sweep_dir):
    with open(sweep_dir / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_grid_sweep_shares_a_wandb_group_and_writes_a_summary(tmp_path, data_dir):
    sweep_dir = tmp_path / "sweep"
    run_train(["-m", *tiny(tmp_path, data_dir, epochs=1), "pool_strides=paper,all_spatial", "logger=wandb",
               f"hydra.sweep.dir={sweep_dir}"])
    rows = read_summary(sweep_dir)
    assert [r["job"] for r in rows] == ["0", "1"]
    groups, wandb_runs = set(), set()
    for row, preset in zip(rows, ("paper", "all_spatial"), strict=True):
        job = sweep_dir / row["job"]
        logged = yaml.safe_load((job / "csv" / "hparams.yaml").read_text())  # the config the loggers received
        assert logged["model"]["pool_strides"] == yaml.safe_load(open(f"conf/pool_strides/{preset}.yaml"))[
            "pool_strides"]
        assert f"pool_strides={preset}" in logged["sweep"]["overrides"]
        assert logged["logger"]["wandb"]["group"] == logged["sweep"]["id"]
        groups.add(logged["sweep"]["id"])
        (run,) = (job / "wandb").glob("offline-run-*")  # each job its own W&B run
        wandb_runs.add(run.name.rsplit("-", 1)[-1])
        assert f"pool_strides={preset}" in row["overrides"].split() and row["status"] == "done"
        test = json.loads((job / "metrics.json").read_text())["test"]
        assert float(row["test/plcc"]) == pytest.approx(test["test/plcc"])
    assert len(groups) == 1 and None not in groups
    assert len(wandb_runs) == 2


def test_optuna_search_returns_the_validation_metric(tmp_path, data_dir):
    sweep_dir = tmp_path / "optuna"
    run_train([*tiny(tmp_path, data_dir, epochs=1), "hparams_search=optuna", "hydra.sweeper.n_trials=3",
               "logger=csv", f"hydra.sweep.dir={sweep_dir}"])
    rows = read_summary(sweep_dir)
    assert len(rows) == 3 and all(r["status"] == "done" for r in rows)
    values = [float(r["val/plcc"]) for r in rows]
    for row, value in zip(rows, values, strict=True):
        assert value == pytest.approx(json.loads((sweep_dir / row["job"] / "metrics.json").read_text())["val"][
            "val/plcc"])
        assert "module.optimizer.lr=" in row["overrides"] and "pool_strides=" in row["overrides"]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(v for v in values if not math.isnan(v)))


def test_a_multirun_with_paths_output_dir_gives_each_job_its_own_subdirectory(tmp_path, data_dir):
    out = tmp_path / "out"
    run_train(["-m", *tiny(tmp_path, data_dir, epochs=1), "pool_strides=paper,all_spatial", "logger=csv",
               f"paths.output_dir={out}"])
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "multirun.yaml", "summary.csv"]
    for row, preset in zip(read_summary(out), ("paper", "all_spatial"), strict=True):
        job = out / row["job"]
        assert row["status"] == "done" and f"pool_strides={preset}" in row["overrides"]
        assert (job / "metrics.json").is_file() and (job / "checkpoints" / "last.ckpt").is_file()
        assert yaml.safe_load((job / "csv" / "hparams.yaml").read_text())["paths"]["output_dir"] == str(job)


def test_a_crashed_job_leaves_every_jobs_row_in_the_summary(tmp_path, data_dir):
    sweep_dir = tmp_path / "sweep"
    proc = run_train(["-m", *tiny(tmp_path, data_dir, epochs=1), "logger=csv", "module.optimizer.lr=1e-3,-1",
                      f"hydra.sweep.dir={sweep_dir}"], check=False)
    assert proc.returncode != 0  # the sweep stops at the failed job, and says so
    rows = read_summary(sweep_dir)
    assert [r["job"] for r in rows] == ["0", "1"]
    assert rows[0]["status"] == "done" and float(rows[0]["test/plcc"]) == pytest.approx(
        json.loads((sweep_dir / "0" / "metrics.json").read_text())["test"]["test/plcc"])
    assert rows[1]["status"].startswith("failed: ConfigError: module.optimizer.lr=-1") and rows[1]["test/plcc"] == ""


def test_a_sweep_rerun_with_other_values_is_refused_and_each_jobs_record_kept(tmp_path, data_dir):
    """Job folders are numbered, not named by their values: rerun into the same folder with new values, each
    job would meet another value's finished run. It is refused (exit 2), its .hydra/ config and the summary keep
    the values the run trained with, and nothing is written into it; the same values again change nothing."""
    out = tmp_path / "sweep"
    args = ["-m", *tiny(tmp_path, data_dir, epochs=1), "logger=csv", f"paths.output_dir={out}"]
    run_train([*args, "module.optimizer.lr=1e-3,2e-3"])
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and "wandb" not in p.parts}
    refused = run_train([*args, "module.optimizer.lr=5e-3,9e-3"], check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: {out / '0'}: holds a finished run of another config (module.optimizer.lr (0.001 then, 0.005 now)); "
        "nothing was changed. Choose another paths.output_dir for the new run")
    after = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and "wandb" not in p.parts}
    # each job's log has the refusal appended; multirun.yaml is Hydra's record of the last multirun launched here
    kept = {p: b for p, b in before.items() if p.name not in ("train.log", "multirun.yaml")}
    assert {p: b for p, b in after.items() if p.name not in ("train.log", "multirun.yaml")} == kept
    assert [r["overrides"].split()[-1] for r in read_summary(out)] == ["module.optimizer.lr=0.001",
                                                                      "module.optimizer.lr=0.002"]
    assert run_train([*args, "module.optimizer.lr=1e-3,2e-3"]).returncode == 0

