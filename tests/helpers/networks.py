"""Networks whose output is worth comparing.

An untrained network in eval mode maps every input to (nearly) the same flat map: its BatchNorm layers still
hold their initial statistics, so the features they normalise are scaled towards zero and the head's bias is
all that remains (``sigmoid(head.bias)``, std 0). Two such maps agree whatever the weights are, so a test that
compares outputs of such networks cannot fail. Every output comparison in the suite therefore goes through
:func:`calibrated` (BatchNorm statistics that fit the activations) and checks :func:`assert_varied` on the
maps before comparing them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# A calibrated tiny network gives maps with std ~0.05-0.2 on random input; a flat one gives ~0 (< 1e-6).
MIN_STD = 0.01


def calibrated(net: nn.Module, frames: int | None = None, batches: int = 3, seed: int = 0) -> nn.Module:
    """``net`` with BatchNorm running statistics measured on random input (cumulative average over
    ``batches`` batches of 4 clips of ``frames`` frames, default ``net.in_frames``), returned in eval mode."""
    frames = net.in_frames if frames is None else frames
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average
    generator = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            net(torch.randn(4, 3, frames, *net.input_size, generator=generator))
    return net.eval()


def map_std(maps: torch.Tensor | np.ndarray) -> float:
    """The smallest per-map standard deviation over pixels of ``(N, [1,] H, W)`` maps."""
    maps = torch.as_tensor(np.asarray(maps) if isinstance(maps, np.ndarray) else maps.detach()).float()
    return float(maps.flatten(1).std(dim=1).min())


def assert_varied(maps: torch.Tensor | np.ndarray, min_std: float = MIN_STD, what: str = "maps") -> None:
    """Fail unless every map varies over its pixels (std > ``min_std``): a comparison of flat maps proves
    nothing."""
    std = map_std(maps)
    assert std > min_std, (f"{what} are flat (std {std:.2g} <= {min_std}): comparing them cannot fail; "
                           "use a calibrated or trained network")
