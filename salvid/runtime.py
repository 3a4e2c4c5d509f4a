"""Process-level settings every entry point applies before work starts."""

from __future__ import annotations

import logging
import netrc
import os
import sys

log = logging.getLogger(__name__)

ISA_ENV = "ONEDNN_MAX_CPU_ISA"
# AVX512 with bf16 instructions but without AMX: bf16 training on AMX CPUs can segfault or hang in oneDNN's
# Conv3d weight gradient, and this cap avoids it. It also takes AMX from bf16 inference (measured by
# `python -m salvid.bench model`: 1.5-3x slower forward), so only training processes set it.
CPU_ISA_CAP = "AVX512_CORE_BF16"


def cap_cpu_isa_for_training() -> None:
    """Cap oneDNN below AMX for this process (an explicit ``ONEDNN_MAX_CPU_ISA`` wins).

    oneDNN reads the variable once, when torch first uses it: call this before importing torch.
    """
    if ISA_ENV not in os.environ and "torch" in sys.modules:
        log.warning("%s set after torch was imported; it may not take effect (bf16 CPU training may crash)",
                    ISA_ENV)
    os.environ.setdefault(ISA_ENV, CPU_ISA_CAP)


def wandb_mode() -> str:
    """Run W&B offline unless an API key is configured, so a run never waits on a login prompt.

    Respects an explicit ``WANDB_MODE``. Returns the mode in effect.
    """
    if "WANDB_MODE" in os.environ:
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
