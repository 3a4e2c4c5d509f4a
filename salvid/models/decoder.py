"""Deconv3DNet: the saliency decoder of the paper (section 2.2).

Five groups, each a 3D unpooling (1x2x2) followed by 3D transposed convolutions with BatchNorm and ReLU
(three in groups 1-2, two in groups 3-5), at a temporal size of 1 because the map is for frame t only;
then one 3D convolution to a single-channel map at the input resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from salvid.errors import ConfigError
from salvid.models.layers import deconv3d_bn_relu


class Deconv3DNet(nn.Module):
    """Decoder: encoder features (N, C, T', h, w) -> logits (N, 1, H, W).

    Args:
        in_channels, in_frames: what the encoder delivers.
        widths: output channels of each group (mirrors the encoder: 512-256-128-64-32 in the paper reading).
        deconvs_per_group: 3, 3, 2, 2, 2 in the paper.
        unpool: ``"nearest"`` (repeat each value over its 2x2 cell) or ``"max"`` (SegNet-style max-unpooling
            that puts each value back where the encoder's max came from). ``"max"`` needs each group's input
            channels to equal the channels the mirrored encoder pool saw (``switch_channels``), which the
            C3D order (``pool_order=conv_pool``) with the default widths satisfies.
        trim_temporal_kernels: use 1x3x3 kernels at T=1 (same function as 3x3x3, see ``layers``).

    If the encoder leaves more than one frame (e.g. all-spatial pool strides), a temporal-fusion convolution
    with kernel (T', 1, 1) first collapses time: the map is for the centre frame only.
    """

    def __init__(
        self,
        in_channels: int,
        in_frames: int,
        widths: Sequence[int],
        deconvs_per_group: Sequence[int],
        unpool: str = "nearest",
        switch_channels: Sequence[int] | None = None,
        trim_temporal_kernels: bool = True,
    ):
        super().__init__()
        if unpool not in ("nearest", "max"):
            raise ConfigError(f"model.unpool must be 'nearest' or 'max', got {unpool!r}")
        self.unpool = unpool
        self.fuse = None
        if in_frames > 1:
            self.fuse = nn.Sequential(
                nn.Conv3d(in_channels, in_channels, (in_frames, 1, 1), bias=False),
                nn.BatchNorm3d(in_channels),
                nn.ReLU(inplace=True),
            )
        if unpool == "max":
            expected = list(reversed(switch_channels or []))
            got = [in_channels, *widths[:-1]]
            if expected != got:
                raise ConfigError(
                    "model.unpool=max needs each decoder group's input channels to match the encoder pool it "
                    f"undoes: encoder pools saw {expected} (deepest first), decoder groups get {got}. "
                    "Use model.pool_order=conv_pool with mirrored model.decoder_widths, or model.unpool=nearest."
                )
        self.groups = nn.ModuleList()
        c = in_channels
        for width, n in zip(widths, deconvs_per_group, strict=True):
            layers = []
            for _ in range(n):
                layers.append(deconv3d_bn_relu(c, width, 1, trim_temporal_kernels))
                c = width
            self.groups.append(nn.Sequential(*layers))
        kernel = (1, 3, 3) if trim_temporal_kernels else (3, 3, 3)
        self.head = nn.Conv3d(c, 1, kernel, padding=(kernel[0] // 2, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        sizes: Sequence[tuple[int, int]],
        switches: Sequence[torch.Tensor | None],
    ) -> torch.Tensor:
        if self.fuse is not None:
            x = self.fuse(x)
        for group, size, sw in zip(self.groups, reversed(sizes), reversed(switches), strict=True):
            x = self._unpool(x, size, sw)
            x = group(x)
        return self.head(x)[:, :, 0]

    def _unpool(self, x: torch.Tensor, size: tuple[int, int], switches: torch.Tensor | None) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):  # a stage whose spatial stride was 1
            return x
        if self.unpool == "max":
            h, w = x.shape[-2:]
            kernel = (size[0] // h, size[1] // w)
            y = F.max_unpool2d(x[:, :, 0], switches, kernel, kernel, output_size=size)
            return y.unsqueeze(2)
        return F.interpolate(x, size=(1, *size), mode="nearest")
