"""What runs print: progress lines off a terminal, and none of the library noise a user cannot act on."""

import logging
import re
import time
import warnings

import pytest

from salvid.runtime import progress


@pytest.fixture
def off_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, "interactive", lambda: False)
    monkeypatch.setenv(progress.INTERVAL_VAR, "0.05")


def test_progress_logs_done_total_rate_and_time_left_off_a_terminal(off_a_terminal, caplog):
    with caplog.at_level(logging.INFO, logger="salvid.runtime.progress"), progress.progress("bear", total=40) as counter:
        for _ in range(8):
            counter.advance(2)
            time.sleep(0.03)
    lines = [r.getMessage() for r in caplog.records if r.name == "salvid.runtime.progress"]
    assert lines and all(re.match(r"bear: \d+/40 frames \(\d+%\), [\d.]+ frames/s, \d+ s elapsed", x) for x in lines)
    assert any("left" in x for x in lines)


def test_progress_interval_defaults_to_30_seconds(monkeypatch):
    monkeypatch.delenv(progress.INTERVAL_VAR, raising=False)
    assert progress.interval() == 30
    monkeypatch.setenv(progress.INTERVAL_VAR, "junk")
    assert progress.interval() == 30


def test_training_logs_progress_lines_off_a_terminal(off_a_terminal, caplog):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from salvid.training.callbacks import TrainingProgress

    class Slow(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            time.sleep(0.03)
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(max_epochs=2, accelerator="cpu", callbacks=[TrainingProgress()], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with caplog.at_level(logging.INFO, logger="salvid.runtime.progress"):
        trainer.fit(Slow(), DataLoader(TensorDataset(torch.randn(40, 2)), batch_size=4))
    lines = [r.getMessage() for r in caplog.records if r.name == "salvid.runtime.progress"]
    assert any(re.match(r"train, epoch [12]/2, batch \d+/10, [\d.]+ batches/s, .*train/loss \d", x) for x in lines)


def test_model_summary_leaves_out_flops_it_did_not_count():
    from rich import get_console

    from salvid.training.callbacks import ModelSummary

    data = [(" ", ["0"]), ("Name", ["net"]), ("Type", ["SaliencyNet3D"]), ("Params", ["1.4 M"]), ("Mode", ["train"]),
            ("FLOPs", ["0"])]
    with get_console().capture() as captured:
        ModelSummary.summarize(data, 1_400_000, 1_400_000, 5.4, {"train": 1, "eval": 0}, 0)
    text = captured.get()
    assert "SaliencyNet3D" in text and "Total params" in text and "FLOPs" not in text


def test_wandb_logger_does_not_pass_the_anonymous_setting(tmp_path):
    from salvid.training.loggers import WandbLogger

    logger = WandbLogger(project="p", save_dir=str(tmp_path), offline=True)
    assert "anonymous" not in logger._wandb_init and logger._wandb_init["project"] == "p"


def test_quiet_drops_lightning_noise(caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        progress.quiet()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("Your `IterableDataset` has `__len__` defined. In combination with ...", UserWarning, stacklevel=1)
        warnings.warn("a warning that stays", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a warning that stays"]
    with caplog.at_level(logging.INFO):
        rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        rank_zero.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
        rank_zero.info("Trainer already configured with model summary callbacks: [ModelSummary]. Skipping ...")
        rank_zero.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
