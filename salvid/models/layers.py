"""The two building blocks of the network: (transposed) 3D convolution + BatchNorm + ReLU."""

from __future__ import annotations

from torch import nn


def _kernel(frames: int, trim_temporal: bool) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    # On a single frame a 3x3x3 kernel with zero padding only sees its centre slice: 1x3x3 is the same function.
    if trim_temporal and frames == 1:
        return (1, 3, 3), (0, 1, 1)
    return (3, 3, 3), (1, 1, 1)


def _bn_relu(layer: type[nn.Conv3d] | type[nn.ConvTranspose3d], c_in: int, c_out: int, frames: int,
             trim_temporal: bool) -> nn.Sequential:
    kernel, padding = _kernel(frames, trim_temporal)
    # bias is redundant before BatchNorm
    return nn.Sequential(
        layer(c_in, c_out, kernel, stride=1, padding=padding, bias=False),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


def conv3d_bn_relu(c_in: int, c_out: int, frames: int, trim_temporal: bool) -> nn.Sequential:
    return _bn_relu(nn.Conv3d, c_in, c_out, frames, trim_temporal)


def deconv3d_bn_relu(c_in: int, c_out: int, frames: int, trim_temporal: bool) -> nn.Sequential:
    return _bn_relu(nn.ConvTranspose3d, c_in, c_out, frames, trim_temporal)
