"""Fine-tuning the default model on one's own videos, in one line: ``python -m salvid.train +experiment=finetune
data=videos data.root=DIR``."""

from __future__ import annotations

import json

import pytest

from salvid.checkpoints import DEFAULT_PRETRAINED
from salvid.data.synthetic import generate_dataset
from tests.helpers.train_cli import run_train

# only to keep the test short: one epoch of two batches on a few small generated videos
SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=2", "data.batch_size=2", "data.num_workers=0", "logger=csv"]


@pytest.mark.slow
def test_the_one_line_fine_tune_starts_from_the_default_model_and_names_it(tmp_path):
    videos = generate_dataset(tmp_path / "my_videos", num_videos={"train": 2, "val": 1, "test": 1}, num_frames=8,
                              size=(96, 160), seed=3)
    proc = run_train(["+experiment=finetune", "data=videos", f"data.root={videos}", *SHORT,
                      f"paths.output_dir={tmp_path / 'run'}"], timeout=900)
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["initial_weights"] == DEFAULT_PRETRAINED and "untrained" not in results
    assert set(results["initial"]) == set(results["test"]) and results["run"]["steps"] == 2
    assert f"initial ({DEFAULT_PRETRAINED})" in proc.stdout
    config = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "family: fusion3d" in config and "freeze_backbone: 2" in config  # its network, the recipe's training

    refused = run_train(["+experiment=finetune", "data=videos", f"data.root={videos}", *SHORT,
                         "model.widths=[8,8,8,8,8]", f"paths.output_dir={tmp_path / 'run2'}"], check=False)
    assert refused.returncode == 2
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert f"init_weights={DEFAULT_PRETRAINED}" in line and "model.widths" in line
