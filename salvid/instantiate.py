"""Objects built from config groups (callbacks, loggers), shared by the entry points."""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def finish_wandb_run() -> None:
    """Close this job's W&B run: Lightning's logger leaves it open, and the next job of a multirun in this
    process would otherwise log into it."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()
