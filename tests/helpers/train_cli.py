"""Running ``python -m salvid.train`` on a tiny configuration, for the scale-out tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from salvid.runtime.configs import CONF_DIR  # importing it (and the training code) registers the resolvers
from salvid.training import run_folder  # noqa: F401  (the train config's hydra.output_subdir)

REPO = Path(__file__).resolve().parents[2]


def tiny(root: Path, data_dir: Path, epochs: int = 2) -> list[str]:
    """Overrides for a seconds-long CPU run: 1/16-width network at 32x32 on 2+1+1 synthetic videos of 10 frames."""
    return [
        "+experiment=demo",
        "model.width_mult=0.0625",
        "model.input_size=[32,32]",
        "data.synthetic.size=[32,32]",
        "data.synthetic.num_frames=10",
        "data.synthetic.num_videos={train:2,val:1,test:1}",
        "data.batch_size=4",
        "data.chunk_len=4",
        f"trainer.max_epochs={epochs}",
        "test_untrained=false",
        f"paths.root_dir={root}",
        f"paths.data_dir={data_dir}",
    ]


# What a test process's own DDP or W&B use leaves in its environment: a child inheriting WANDB_SERVICE would log
# through the test process's W&B service, which outlives a killed child and keeps its run id "in use".
PARENT_ONLY_ENV = ("LOCAL_RANK", "SALVID_RANK0_CONFIG", "WANDB_SERVICE")


def run_train(args: list[str], timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PARENT_ONLY_ENV}
    proc = subprocess.run([sys.executable, "-m", "salvid.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"salvid.train exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)
