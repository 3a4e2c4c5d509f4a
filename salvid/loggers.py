"""Loggers of ``conf/logger/``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger, without passing W&B an ``anonymous`` setting it was not given: Lightning always
    passes ``anonymous=None``, which wandb >= 0.19 answers with a warning that the setting has no effect."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
