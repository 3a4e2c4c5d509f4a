"""The networks, in pure torch, and the registry that builds them from plain configuration data.

Two families (:mod:`salvid.models.families`): ``paper`` (:class:`SaliencyNet3D`, the paper's Conv3DNet +
Deconv3DNet, in :mod:`salvid.models.paper`) and ``fusion3d`` (:class:`FusionNet3D`, a pretrained 2D backbone
per frame fused over time by 3D convolutions, in :mod:`salvid.models.fusion3d`). What every network offers is
:class:`salvid.models.interface.SaliencyNetwork`.

The network classes load on first use, so that reading the registry does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from salvid.models.families import DEFAULT_FAMILY, FAMILIES, build_network, family_of, network_arguments

_LAZY = {
    "SaliencyNet3D": "salvid.models.paper",
    "PAPER_POOL_STRIDES": "salvid.models.paper",
    "FusionNet3D": "salvid.models.fusion3d",
    "Conv3DNet": "salvid.models.encoder",
    "Deconv3DNet": "salvid.models.decoder",
    "SaliencyNetwork": "salvid.models.interface",
    "channels_last_enabled": "salvid.models.interface",
}

__all__ = ["DEFAULT_FAMILY", "FAMILIES", "build_network", "family_of", "network_arguments", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'salvid.models' has no attribute {name!r}")
