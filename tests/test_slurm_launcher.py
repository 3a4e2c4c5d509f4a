"""The SLURM launcher config: composed with the real hydra-submitit-launcher plugin, it submits each sweep
job as one sbatch job with one task per GPU. Submission itself is intercepted (no SLURM here)."""

from __future__ import annotations

import pytest
import submitit
from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode

from salvid.training.fit import train
from tests.helpers.train_cli import REPO


def test_slurm_ddp_launcher_submits_one_task_per_gpu(tmp_path, monkeypatch):
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(REPO / "conf")))
    cfg = loader.load_configuration(
        "train",
        overrides=["hydra/launcher=slurm_ddp", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                   "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}"],
        run_mode=RunMode.MULTIRUN,
    )
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks(cfg)), task_function=train, config=cfg
    )
    submitted = {}

    def capture(executor, fn, *job_args):
        submitted["executor"], submitted["jobs"] = executor, list(zip(*job_args, strict=True))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun is installed"
    launcher.launch([("pool_strides=paper",), ("pool_strides=all_spatial",)], initial_job_idx=0)

    assert [job[0] for job in submitted["jobs"]] == [["pool_strides=paper"], ["pool_strides=all_spatial"]]
    sbatch = submitted["executor"]._executor._make_submission_file_text("python -m salvid.train", "uid")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --partition=gpu", "#SBATCH --time=1440"):
        assert line in sbatch.splitlines(), (line, sbatch)
    assert submitted["executor"]._executor.max_num_timeout == 3


@pytest.mark.parametrize("devices", [1, 8])
def test_task_count_follows_trainer_devices(devices):
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(REPO / "conf")))
    cfg = loader.load_configuration("train", overrides=["hydra/launcher=slurm_ddp", "trainer=ddp",
                                                        f"trainer.devices={devices}"], run_mode=RunMode.MULTIRUN)
    assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node == devices
    assert cfg.hydra.launcher.nodes == 1
