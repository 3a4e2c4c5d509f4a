"""Conv3DNet: the spatiotemporal encoder of the paper (section 2.1).

Five blocks, each a 3D max-pool and 3D convolutions (3x3x3, stride 1, padding 1) with BatchNorm and ReLU.
The paper gives the pool strides (1x2x2 three times, then 2x2x2 twice) and the kernel; what it leaves open
is a constructor argument, documented where it is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from salvid.models.layers import conv3d_bn_relu


class Pool3d(nn.Module):
    """A 3D max-pool whose temporal part adapts to the clip length it meets.

    With three input frames the paper's two 2x2x2 pools cannot both be literal: the first leaves T=1 and a
    floor-mode 2x2x2 pool on T=1 is undefined. ``temporal_mode`` says how that is read:

    - ``"clamp"`` (default): the temporal kernel and stride are ``min(d, T)``, so a 2x2x2 pool on T=1 pools
      only spatially. T=3 -> 1 -> 1 for the paper's strides.
    - ``"ceil"``: PyTorch ``ceil_mode=True``; T=3 -> 2 -> 1.
    - ``"floor"``: the literal PyTorch pool; combinations that shrink T below 1 are rejected at construction.

    ``return_switches`` keeps the argmax positions (as spatial indices of the centre frame) for max-unpooling.
    """

    def __init__(self, stride: Sequence[int], t_in: int, temporal_mode: str, return_switches: bool = False):
        super().__init__()
        d, kh, kw = (int(s) for s in stride)
        d, self.t_out = self.temporal(t_in, d, temporal_mode)
        self.kernel = (d, kh, kw)
        self.ceil = temporal_mode == "ceil"
        self.return_switches = return_switches

    @staticmethod
    def temporal(t_in: int, d: int, mode: str) -> tuple[int, int]:
        """(temporal kernel, output frames) of a stride-``d`` pool over ``t_in`` frames in ``mode``
        (``clamp``: the kernel is min(d, t_in); ``ceil``/``floor``: PyTorch's rounding of the output size)."""
        if mode == "clamp":
            d = min(d, t_in)
        span = t_in - d
        return d, (-(-span // d) if mode == "ceil" else span // d) + 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.return_switches:
            return nn.functional.max_pool3d(x, self.kernel, self.kernel, ceil_mode=self.ceil), None
        y, idx = nn.functional.max_pool3d(x, self.kernel, self.kernel, ceil_mode=self.ceil, return_indices=True)
        # Decoder maps are single-frame, so keep where each max sat in the centre output frame, as a flat
        # index into the pre-pool H*W plane (what max_unpool2d expects).
        h, w = x.shape[-2:]
        centre = idx[:, :, idx.shape[2] // 2]
        return y, centre % (h * w)


class Conv3DNet(nn.Module):
    """Encoder: ``x`` (N, 3, T, H, W) -> features (N, C, T', H/S, W/S) plus the pooled sizes and switches.

    Args:
        widths: output channels of each block (C3D/VGG-like 64-128-256-512-512 in the paper reading).
        convs_per_block: number of conv+BN+ReLU layers in each block (the paper does not say; 2 as in VGG).
        pool_strides: one (d, k, k) stride per block; the pool kernel equals its stride.
        in_frames: frames per clip (3 in the paper: t-1, t, t+1).
        pool_order: ``"pool_conv"`` as the paper writes each block (pool, then convs) or ``"conv_pool"`` as C3D
            does (convs, then pool; ~3x the FLOPs because convs run at the higher resolution).
        temporal_pool: see :class:`Pool3d`.
        trim_temporal_kernels: once T=1 a 3x3x3 kernel with zero padding only ever uses its centre slice, so a
            1x3x3 kernel computes the same function with a third of the weights (and no dead parameters).
        keep_switches: record max-pool switches for max-unpooling in the decoder.
    """

    def __init__(
        self,
        widths: Sequence[int],
        convs_per_block: Sequence[int],
        pool_strides: Sequence[Sequence[int]],
        in_frames: int = 3,
        in_channels: int = 3,
        pool_order: str = "pool_conv",
        temporal_pool: str = "clamp",
        trim_temporal_kernels: bool = True,
        keep_switches: bool = False,
    ):
        super().__init__()
        self.pool_order = pool_order
        self.blocks = nn.ModuleList()
        self.pools = nn.ModuleList()
        self.pool_in_channels: list[int] = []
        t, c = in_frames, in_channels
        for width, n_convs, stride in zip(widths, convs_per_block, pool_strides, strict=True):
            convs = []
            if pool_order == "conv_pool":
                for _ in range(n_convs):
                    convs.append(conv3d_bn_relu(c, width, t, trim_temporal_kernels))
                    c = width
            pool = Pool3d(stride, t, temporal_pool, keep_switches)
            self.pool_in_channels.append(c)
            t = pool.t_out
            if pool_order == "pool_conv":
                for _ in range(n_convs):
                    convs.append(conv3d_bn_relu(c, width, t, trim_temporal_kernels))
                    c = width
            self.pools.append(pool)
            self.blocks.append(nn.Sequential(*convs))
        self.out_channels = c
        self.out_frames = t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]], list[torch.Tensor | None]]:
        sizes, switches = [], []
        for pool, block in zip(self.pools, self.blocks, strict=True):
            if self.pool_order == "conv_pool":
                x = block(x)
            sizes.append(tuple(x.shape[-2:]))
            x, sw = pool(x)
            switches.append(sw)
            if self.pool_order == "pool_conv":
                x = block(x)
        return x, sizes, switches
