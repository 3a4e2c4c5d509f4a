"""Process-level settings every entry point applies before work starts."""

from __future__ import annotations

import logging
import netrc
import os
import platform
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Hydra's config folder as an absolute path: a relative config_path resolves against the calling module, which
# for console scripts (salvid-train, ...) is not a file path and Hydra then looks for a 'conf' package.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")

ISA_ENV = "ONEDNN_MAX_CPU_ISA"
# AVX512 with bf16 instructions but without AMX: bf16 training on AMX CPUs can segfault or hang in oneDNN's
# Conv3d weight gradient, and this cap avoids it. It also takes AMX from bf16 inference (measured by
# `python -m salvid.bench model`: 1.5-3x slower forward), so only training processes set it.
CPU_ISA_CAP = "AVX512_CORE_BF16"


def cap_cpu_isa_for_training(model_config) -> None:
    """Cap oneDNN below AMX for this process when it trains the paper's 3D network (an explicit
    ``ONEDNN_MAX_CPU_ISA`` wins). The 2D convolutions of ``fusion3d`` train in bf16 without it.

    oneDNN reads the variable once, when torch first uses it: call this before importing torch.
    """
    if model_config.get("family", "paper") != "paper":
        return
    if ISA_ENV not in os.environ and "torch" in sys.modules:
        log.warning("%s set after torch was imported; it may not take effect (bf16 CPU training may crash)",
                    ISA_ENV)
    os.environ.setdefault(ISA_ENV, CPU_ISA_CAP)


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
