"""Fixtures for the evaluation tests: a tiny synthetic dataset and tiny networks (trained for a few steps)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from salvid.checkpoints import load_network, save_pretrained
from salvid.data.datamodule import SaliencyDataModule
from salvid.data.synthetic import generate_dataset
from salvid.models import SaliencyNet3D
from salvid.training.module import SaliencyModule
from tests.helpers.networks import calibrated

__all__ = ["CONF", "OPTIMIZER", "TINY", "calibrated", "compose_config"]  # what the eval tests import from here

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = {"width_mult": 0.125, "input_size": [64, 64]}
OPTIMIZER = OmegaConf.to_container(OmegaConf.load(CONF / "module" / "default.yaml").optimizer)  # its one home


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synthetic"
    generate_dataset(root, num_videos={"train": 2, "val": 1, "test": 2}, num_frames=8, size=(72, 96), seed=0)
    return root


@pytest.fixture(scope="session")
def trained_ckpt(eval_data, tmp_path_factory) -> Path:
    """A real Lightning checkpoint of the tiny network after 4 training steps, whose maps are not flat."""
    run = tmp_path_factory.mktemp("run")
    L.seed_everything(0)
    module = SaliencyModule(model=TINY, optimizer=OPTIMIZER, log_images=0)
    # BatchNorm statistics averaged over the 4 steps (not moved 10% from their initial values per step), so
    # the network's maps vary over the frame and comparisons of them can fail (tests.helpers.networks)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    data = SaliencyDataModule("videos", str(eval_data), {"train": "train", "val": "val", "test": None},
                              input_size=(64, 64), batch_size=4, buffer_size=8)
    trainer = L.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1,
                        callbacks=[ModelCheckpoint(dirpath=run / "checkpoints", save_last=True)])
    trainer.fit(module, datamodule=data)
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def tiny_pretrained(trained_ckpt, tmp_path_factory) -> Path:
    net, config = load_network(trained_ckpt)
    path = tmp_path_factory.mktemp("pretrained") / "tiny.safetensors"
    save_pretrained(net, config, path, {"note": "test network, 4 steps"})
    return path


@pytest.fixture(scope="session")
def image_only_pretrained(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = {**TINY, "in_frames": 1}
    path = tmp_path_factory.mktemp("image_only") / "image_only.safetensors"
    save_pretrained(calibrated(SaliencyNet3D(**config), 1), config, path, {"note": "untrained, 1 frame"})
    return path


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """An entry point's config as the command line would compose it (paths set, so no Hydra runtime needed)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)
