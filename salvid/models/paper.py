"""The paper's network: Conv3DNet encoder + Deconv3DNet decoder, validated at construction."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from salvid.errors import ConfigError
from salvid.models.config import (
    MAX_LAYERS,
    MAX_WIDTH,
    MAX_WIDTH_MULT,
    check_counts,
    check_in_frames,
    check_input_size,
    shown,
    whole,
)
from salvid.models.decoder import Deconv3DNet
from salvid.models.encoder import Conv3DNet, Pool3d

PAPER_POOL_STRIDES = ((1, 2, 2), (1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2))


class SaliencyNet3D(nn.Module):
    """Three frames (t-1, t, t+1) in, the saliency map of frame t out.

    Input ``(N, 3, T, H, W)`` float (normalised RGB), output ``(N, 1, H, W)`` in [0, 1] at the input resolution.

    Output activation: the paper applies ReLU throughout and trains with a squared error, which leaves the
    map unbounded above. ``output_activation="sigmoid"`` (default) bounds the map to [0, 1] with a gradient
    everywhere, so the squared error of eq. (2) compares like with like and metrics see a proper map;
    ``"clamp"`` keeps the paper's ReLU and clamps at 1 (no gradient above 1).

    Every value the paper leaves open is an argument; see :class:`Conv3DNet` and :class:`Deconv3DNet`.
    ``width_mult`` scales every channel width (``model=small`` is 0.5, ``model=tiny`` 0.25).
    """

    family = "paper"

    def __init__(
        self,
        in_frames: int = 3,
        input_size: Sequence[int] = (224, 224),
        widths: Sequence[int] = (64, 128, 256, 512, 512),
        decoder_widths: Sequence[int] = (512, 256, 128, 64, 32),
        width_mult: float = 1.0,
        convs_per_block: Sequence[int] = (2, 2, 2, 2, 2),
        deconvs_per_group: Sequence[int] = (3, 3, 2, 2, 2),
        pool_strides: Sequence[Sequence[int]] = PAPER_POOL_STRIDES,
        pool_order: str = "pool_conv",
        temporal_pool: str = "clamp",
        unpool: str = "nearest",
        trim_temporal_kernels: bool = True,
        output_activation: str = "sigmoid",
    ):
        super().__init__()
        check_settings(in_frames=in_frames, input_size=input_size, widths=widths, decoder_widths=decoder_widths,
                       width_mult=width_mult, convs_per_block=convs_per_block, deconvs_per_group=deconvs_per_group,
                       pool_strides=pool_strides, pool_order=pool_order, temporal_pool=temporal_pool,
                       output_activation=output_activation)
        pool_strides = [tuple(int(v) for v in s) for s in pool_strides]
        self.in_frames = int(in_frames)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.output_activation = output_activation
        self.channels_last = False
        enc_w = [max(1, round(w * width_mult)) for w in widths]
        dec_w = [max(1, round(w * width_mult)) for w in decoder_widths]
        self.encoder = Conv3DNet(enc_w, convs_per_block, pool_strides, in_frames, 3, pool_order,
                                 temporal_pool, trim_temporal_kernels, keep_switches=unpool == "max")
        self.decoder = Deconv3DNet(self.encoder.out_channels, self.encoder.out_frames, dec_w,
                                   deconvs_per_group, unpool, self.encoder.pool_in_channels, trim_temporal_kernels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation map (N, 1, H, W); losses on logits (BCE) are numerically safer."""
        if x.ndim != 5 or x.shape[1] != 3 or x.shape[2] != self.in_frames:
            raise ValueError(f"expected input (N, 3, {self.in_frames}, H, W), got {tuple(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        feats, sizes, switches = self.encoder(x)
        return self.decoder(feats, sizes, switches)

    def use_channels_last(self, enabled: bool) -> None:
        """channels_last_3d memory (much faster bf16 3D convolutions on CPUs and GPUs)."""
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last_3d if enabled else torch.contiguous_format)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.output_activation == "sigmoid":
            return torch.sigmoid(logits)
        return logits.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.logits(x))


def check_settings(*, in_frames, input_size, widths, decoder_widths, width_mult, convs_per_block, deconvs_per_group,
                   pool_strides, pool_order, temporal_pool, output_activation, **_) -> None:
    """What construction checks, without building: a ConfigError naming the first setting that does not fit."""
    def fail(key: str, value, why: str):
        raise ConfigError(f"model.{key}={shown(value)}: {why}")

    check_in_frames(in_frames)
    check_input_size(input_size)
    if not 0 < width_mult <= MAX_WIDTH_MULT:  # written so that nan fails too
        fail("width_mult", width_mult, f"must be > 0 and at most {MAX_WIDTH_MULT:g}")
    if len(pool_strides) > MAX_LAYERS:
        fail("pool_strides", [list(s) for s in pool_strides], f"at most {MAX_LAYERS} encoder blocks")
    if not all(len(s) == 3 and all(whole(v) for v in s) for s in pool_strides):
        fail("pool_strides", [list(s) for s in pool_strides], "each stride must be three whole numbers [d, k, k]")
    pool_strides = [tuple(int(v) for v in s) for s in pool_strides]
    for key, seq in (("widths", widths), ("decoder_widths", decoder_widths)):
        check_counts(key, seq, 1, MAX_WIDTH, "a number of channels")
        if max((round(w * width_mult) for w in seq), default=0) > MAX_WIDTH:
            fail(key, list(seq), f"times model.width_mult={width_mult:g} exceeds {MAX_WIDTH} channels")
    check_counts("convs_per_block", convs_per_block, 0, MAX_LAYERS, "a number of convolutions")
    check_counts("deconvs_per_group", deconvs_per_group, 0, MAX_LAYERS, "a number of convolutions")
    if pool_order not in ("pool_conv", "conv_pool"):
        fail("pool_order", pool_order, "must be 'pool_conv' (as the paper writes) or 'conv_pool' (C3D)")
    if temporal_pool not in ("clamp", "ceil", "floor"):
        fail("temporal_pool", temporal_pool, "must be 'clamp', 'ceil' or 'floor'")
    if output_activation not in ("sigmoid", "clamp"):
        fail("output_activation", output_activation, "must be 'sigmoid' or 'clamp'")
    n = len(pool_strides)
    others = {"widths": len(widths), "convs_per_block": len(convs_per_block), "decoder_widths": len(decoder_widths),
              "deconvs_per_group": len(deconvs_per_group)}
    if len(set(others.values())) == 1 and n not in others.values():  # the strides are the odd one out
        raise ConfigError(f"model.pool_strides has {n} strides, but model.{', model.'.join(others)} have "
                          f"{len(widths)} entries: give one [d, k, k] stride per encoder block (or choose a preset, "
                          "e.g. pool_strides=paper)")
    for key, seq in (("widths", widths), ("convs_per_block", convs_per_block)):
        if len(seq) != n:
            fail(key, list(seq), f"needs one entry per encoder block ({n}, as in model.pool_strides)")
    for key, seq in (("decoder_widths", decoder_widths), ("deconvs_per_group", deconvs_per_group)):
        if len(seq) != n:
            fail(key, list(seq), f"needs one entry per decoder group ({n}, mirroring model.pool_strides)")
    strides = [list(s) for s in pool_strides]
    t = int(in_frames)
    for i, s in enumerate(pool_strides):
        if len(s) != 3 or min(s) < 1:
            fail("pool_strides", strides, f"block {i + 1}: each stride must be three positive ints [d, k, k]")
        if temporal_pool == "floor" and s[0] > t:
            fail("pool_strides", strides, f"block {i + 1}: temporal stride {s[0]} on {t} frame(s) leaves T<1 "
                 "(use model.temporal_pool=clamp or ceil)")
        t = Pool3d.temporal(t, s[0], temporal_pool)[1]
    for axis, name in ((1, "height"), (2, "width")):
        total = math.prod(s[axis] for s in pool_strides)
        if input_size[axis - 1] % total:
            fail("input_size", list(input_size), f"{name} {input_size[axis - 1]} is not divisible by the total "
                 f"spatial stride {total} of model.pool_strides={strides}")
