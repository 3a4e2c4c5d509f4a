"""Process-level settings every entry point applies before work starts."""

from __future__ import annotations

import logging
import netrc
import os
import platform
from pathlib import Path

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


def hardware_description() -> str:
    """The CPU model and core count, plus the GPUs torch sees: what a model card records about training."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu} ({os.cpu_count()} cores)"]
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        parts.append(", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names)))
    return "; ".join(parts)
