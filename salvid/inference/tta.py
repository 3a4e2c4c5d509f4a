"""Test-time augmentation of the network: ``tta=flip`` averages each frame's map with the un-mirrored map of
its horizontally mirrored clip.

The mirrored clips go through the network in the same call as the clips themselves (one batch of twice the
size). Each frame is mirrored once into an array kept for as long as the network's frame-feature cache can
hold it, so a ``fusion3d`` network still encodes every frame once per direction, and a mirrored frame's
features are never mistaken for the frame's own (they are cached under a different array).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from salvid.errors import ConfigError
from salvid.inference.core import NetworkSaliency
from salvid.methods import Clip
from salvid.runtime.schema import TTAS

__all__ = ["TTAS", "FlipAveraged", "check_tta", "network_saliency"]


class FlipAveraged(NetworkSaliency):
    """A :class:`NetworkSaliency` whose maps are the mean of the map of each clip and the mirrored-back map of
    its mirror image. Twice the network's work per frame."""

    def __init__(self, net: nn.Module, name: str = "salvid", **options: Any):
        super().__init__(net, name, **options)
        # id(frame) -> (frame, its mirror image), for the frames of the last call: holding the frame keeps its
        # id from being reused, holding the mirror keeps its cached features reachable by the next call
        self._mirrors: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _mirrored(self, clips: list[Clip]) -> list[Clip]:
        frames = {id(f): f for clip in clips for f in clip}
        mirrors = {}
        for key, f in frames.items():
            known = self._mirrors.get(key)
            mirrors[key] = known if known is not None and known[0] is f else (f, np.ascontiguousarray(f[:, ::-1]))
        self._mirrors = mirrors
        return [[mirrors[id(f)][1] for f in clip] for clip in clips]

    def predict(self, clips: list[Clip], frame_ids: list[int] | None = None,
                inputs: dict[int, torch.Tensor] | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
        maps = super().predict(clips + self._mirrored(clips), frame_ids, inputs, size)
        n = len(clips)
        return (maps[:n] + maps[n:, :, ::-1]) * np.float32(0.5)


def check_tta(tta: str) -> None:
    if tta not in TTAS:
        raise ConfigError(f"tta={tta!r}: must be one of {', '.join(TTAS)}")


def network_saliency(net: nn.Module, name: str = "salvid", tta: str = "none", **options: Any) -> NetworkSaliency:
    """The network as a saliency method, with the test-time augmentation ``tta`` (``none`` or ``flip``);
    ``options`` are :class:`NetworkSaliency`'s."""
    check_tta(tta)
    return (FlipAveraged if tta == "flip" else NetworkSaliency)(net, name, **options)
