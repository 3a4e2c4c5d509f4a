"""The networks, in pure torch, and the registry that builds them from plain configuration data.

Two families: ``paper`` (:class:`SaliencyNet3D`, the paper's Conv3DNet + Deconv3DNet) and ``fusion3d``
(:class:`FusionNet3D`, a pretrained 2D backbone per frame fused over time by 3D convolutions). A model config
names its family in ``family`` (absent: ``paper``, the only family of earlier salvid versions); the rest are
the family's constructor arguments. Only the families listed here can be built, whatever a file says.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from salvid.models.decoder import Deconv3DNet
from salvid.models.encoder import Conv3DNet
from salvid.models.fusion import FusionNet3D
from salvid.models.network import PAPER_POOL_STRIDES, SaliencyNet3D

FAMILIES: dict[str, type[nn.Module]] = {"paper": SaliencyNet3D, "fusion3d": FusionNet3D}

__all__ = ["Conv3DNet", "channels_last_enabled", "Deconv3DNet", "FAMILIES", "FusionNet3D", "PAPER_POOL_STRIDES", "SaliencyNet3D",
           "build_network", "family_of", "network_arguments"]


def family_of(config: dict[str, Any]) -> type[nn.Module]:
    family = config.get("family", "paper")
    if family not in FAMILIES:
        raise ValueError(f"model.family={family!r}: must be one of {sorted(FAMILIES)}")
    return FAMILIES[family]


def network_arguments(config: dict[str, Any]) -> set[str]:
    """The keys a model config of this family may hold (``family`` and the constructor's arguments)."""
    return {"family"} | (set(inspect.signature(family_of(config).__init__).parameters) - {"self"})


def build_network(config: dict[str, Any]) -> nn.Module:
    """The network a model config describes (``family`` + constructor arguments)."""
    unknown = sorted(set(config) - network_arguments(config))
    if unknown:
        raise ValueError(f"model.{unknown[0]}: not a setting of model family {config.get('family', 'paper')!r} "
                         f"(its settings: {sorted(network_arguments(config))})")
    return family_of(config)(**{k: v for k, v in config.items() if k != "family"})


def channels_last_enabled(setting: str | bool, device_type: str, bf16: bool) -> bool:
    """The ``channels_last`` setting of training and inference: ``"auto"`` means on CUDA or in bf16, where it
    made bf16 convolutions 1.4-3.5x faster (H200) and ~2x faster (2-core CPU); fp32 on a CPU gains nothing."""
    if setting not in ("auto", True, False):
        raise ValueError(f"channels_last={setting!r}: must be auto, true or false")
    return device_type == "cuda" or bf16 if setting == "auto" else bool(setting)
