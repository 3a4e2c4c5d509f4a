"""What every network of salvid offers, whatever its family: the contract training and inference rely on."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from salvid.errors import ConfigError


@runtime_checkable
class SaliencyNetwork(Protocol):
    """``(N, 3, T, H, W)`` normalised frames in, the map of the centre frame out.

    ``in_frames`` (T) and ``input_size`` ([H, W]) are what the network was built for; inference resizes every
    frame to ``input_size``. Losses take :meth:`logits`, maps are :meth:`activate` of them, in [0, 1].
    """

    in_frames: int
    input_size: tuple[int, int]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, H, W)`` pre-activation map."""

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits to maps in [0, 1]."""

    def use_channels_last(self, enabled: bool) -> None:
        """Switch the network's memory format (faster bf16 convolutions)."""


@runtime_checkable
class FrameEncodingNetwork(SaliencyNetwork, Protocol):
    """A network that encodes each frame on its own, then fuses: inference encodes every frame once and reuses
    its features in each clip that holds it."""

    def encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """``(M, 3, H, W)`` frames to their feature pyramid, finest level first, ``(M, C_l, h_l, w_l)`` each."""

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Per level ``(N, T, C_l, h_l, w_l)`` clip features to ``(N, 1, H, W)`` logits."""


def channels_last_enabled(setting: str | bool) -> bool:
    """The ``channels_last`` setting of training and inference: ``"auto"`` means on. It made bf16 convolutions
    1.4-3.5x faster on an H200 and ~2x on a 2-core CPU, and was no slower in fp32 on a 2-core AMD EPYC (the
    default model's forward a median 1.06x, docs/performance.md)."""
    if setting not in ("auto", True, False):
        raise ConfigError(f"channels_last={setting!r}: must be auto, true or false")
    return True if setting == "auto" else bool(setting)
