"""Process-level settings every entry point applies before work starts."""

from __future__ import annotations

import logging
import netrc
import os

log = logging.getLogger(__name__)


def wandb_mode() -> str:
    """Run W&B offline unless an API key is configured, so a run never waits on a login prompt.

    Respects an explicit ``WANDB_MODE``. Returns the mode in effect.
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY") or _netrc_has_wandb():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    log.warning("W&B: no API key configured, logging offline (sync later with `wandb sync <run dir>`)")
    return "offline"


def _netrc_has_wandb() -> bool:
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
