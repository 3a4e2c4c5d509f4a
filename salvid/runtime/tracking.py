"""Experiment tracking with W&B: online only where an API key is configured, and each job's run closed.

Nothing here imports torch or Lightning: training calls it before it sets the oneDNN cap."""

from __future__ import annotations

import logging
import netrc
import os
import sys


def wandb_mode() -> str:
    """Run W&B offline unless an API key is configured, so a run never waits on a login prompt.

    Respects an explicit ``WANDB_MODE``. Returns the mode in effect.
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY") or _netrc_has_wandb():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    logging.getLogger(__name__).warning("W&B: no API key configured, logging offline (sync later with `wandb sync <run dir>`)")
    return "offline"


def _netrc_has_wandb() -> bool:
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def finish_wandb_run() -> None:
    """Close this job's W&B run: Lightning's logger leaves it open, and the next job of a multirun in this
    process would otherwise log into it."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()
