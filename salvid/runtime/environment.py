"""The process and the machine: the oneDNN cap training may need, and what the hardware is."""

from __future__ import annotations

import logging
import os
import platform
import sys
from pathlib import Path

from salvid.models.families import family_of

log = logging.getLogger(__name__)

ISA_ENV = "ONEDNN_MAX_CPU_ISA"
# AVX512 with bf16 instructions but without AMX: bf16 training on AMX CPUs can segfault or hang in oneDNN's
# Conv3d weight gradient, and this cap avoids it. It also takes AMX from bf16 inference (measured by
# `python -m salvid.bench model`: 1.5-3x slower forward), so only training processes set it.
CPU_ISA_CAP = "AVX512_CORE_BF16"


def cap_cpu_isa_for_training(model_config) -> None:
    """Cap oneDNN below AMX for this process when it trains a model family that needs it (its
    ``training_isa_cap`` in :mod:`salvid.models.families`); an explicit ``ONEDNN_MAX_CPU_ISA`` wins.

    oneDNN reads the variable once, when torch first uses it: call this before importing torch.
    """
    if not family_of(model_config).training_isa_cap:
        return
    if ISA_ENV not in os.environ and "torch" in sys.modules:
        log.warning("%s set after torch was imported; it may not take effect (bf16 CPU training may crash)",
                    ISA_ENV)
    os.environ.setdefault(ISA_ENV, CPU_ISA_CAP)


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first processor's fields of a ``/proc/cpuinfo`` text, keys lower-case."""
    fields = (line.split(":", 1) for line in text.strip().split("\n\n", 1)[0].splitlines() if ":" in line)
    return {key.strip().lower(): value.strip() for key, value in fields}


def _cpuinfo() -> dict[str, str]:
    """:func:`parse_cpuinfo` of this machine (empty where there is no ``/proc/cpuinfo``)."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


def cpu_model(info: dict[str, str] | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``, or ``info`` read from it), else what the platform says."""
    info = _cpuinfo() if info is None else info
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def vector_isa(flags: set[str]) -> str | None:
    """The widest vector instructions among the CPU's flags, as speed depends on them (bf16 pays only with
    native bf16 instructions or AMX)."""
    if "amx_tile" in flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512 with bf16, no AMX" if "avx512_bf16" in flags else "AVX-512, no bf16 instructions"
    return "AVX2, no AVX-512" if "avx2" in flags else None


def hardware_description() -> str:
    """The CPU model, core count, family and vector instructions, plus the GPUs torch sees: what a model card
    and a benchmark record about the machine (CPUs sold under one name differ in all of these)."""
    info = _cpuinfo()
    cpu = [f"{os.cpu_count()} cores", *([f"CPU family {info['cpu family']}"] if "cpu family" in info else []),
           *filter(None, [vector_isa(set(info.get("flags", "").split()))])]
    parts = [f"{cpu_model(info)} ({'; '.join(cpu)})"]
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        parts.append(", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names)))
    return "; ".join(parts)
