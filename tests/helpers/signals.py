"""A callback that signals its own training process at a chosen moment, for the tests of stopped runs."""

from __future__ import annotations

import os
import signal

from lightning.pytorch import Callback


class SignalDuringValidation(Callback):
    """Sends ``signum`` to this process as the fit's validation of ``epoch`` starts its first batch."""

    def __init__(self, epoch: int = 1, signum: int = signal.SIGTERM):
        self.epoch, self.signum = epoch, signum

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch and batch_idx == 0:
            os.kill(os.getpid(), self.signum)
