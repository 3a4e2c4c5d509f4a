"""FusionNet3D: an ImageNet-pretrained 2D backbone per frame, fused over time at every scale, then decoded.

The paper's idea, moved to the feature level: Conv3DNet lets motion and appearance meet in 3D convolutions
over frames t-1, t, t+1. Here each frame goes through a pretrained 2D backbone (shared weights), and at each
of the five pyramid levels a (T, 3, 3) convolution over the T frames' features collapses time, exactly as a
3D convolution with temporal kernel T and no temporal padding does (``convs=separable`` factorises it). A
decoder in the spirit of Deconv3DNet (upsampling groups of convolutions) climbs back from the coarsest fused
level, taking a skip connection from every finer one, to the map of frame t at the input resolution
(``decoder_stride=4`` leaves the finest level out of the fusion and the decoder). ``pixel_skip`` hands the
fusion the frames' own pixels too, at its finest level: a backbone's features blur the few pixels a small
object moves, the pixels of three frames do not.

``in_frames=1`` is the image-only ablation of the same network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from salvid.errors import ConfigError
from salvid.models.backbones import DEFAULT_BACKBONE, build_backbone
from salvid.models.config import MAX_WIDTH, check_counts, check_in_frames, check_input_size, shown, whole

FREEZE_CHOICES = "none, all, or the number of pyramid levels to freeze from the stem (0-5)"
CONVS = ("full", "separable")
DECODER_STRIDES = {2: 0, 4: 1}  # the decoder's finest stride -> the first backbone level it fuses


def conv2d_bn_relu(cin: int, cout: int, convs: str = "full") -> nn.Sequential:
    """A 3x3 convolution + BatchNorm + ReLU; ``separable``: a depthwise 3x3 + BatchNorm, then a pointwise 1x1 +
    BatchNorm + ReLU (MobileNet's factorisation, with one ReLU), about 1/7 of the operations at these widths."""
    if convs == "separable":
        return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                             nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TemporalFusion(nn.Module):
    """``(N, T, C, h, w) -> (N, width, h, w)``: a (T, 3, 3) convolution over time, BatchNorm, ReLU.

    Computed as a 2D convolution over the T frames' channels stacked in time order: the same function as
    ``nn.Conv3d(C, width, (T, 3, 3), padding=(0, 1, 1))`` on ``(N, C, T, h, w)``, with 2D kernels that run
    (and train, in bf16) fast on CPUs. ``separable`` factorises it: each frame's channels are filtered in space
    one by one, then a 1x1 convolution mixes channels and frames.
    """

    def __init__(self, channels: int, frames: int, width: int, convs: str = "full"):
        super().__init__()
        self.block = conv2d_bn_relu(channels * frames, width, convs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.block(features.flatten(1, 2))


class FusionNet3D(nn.Module):
    """``(N, 3, T, H, W)`` normalised frames in, ``(N, 1, H, W)`` map of the centre frame out, in [0, 1].

    Args:
        in_frames: frames per clip (odd; 1 is the image-only ablation).
        input_size: [height, width], multiples of 32.
        backbone: ``efficientnet_lite0`` (default), ``efficientnet_lite1``, ``efficientnet_lite2``, or any timm
            model name (needs timm).
        pretrained: ``imagenet``, ``timm_hub`` or ``none`` (see :func:`salvid.models.backbones.build_backbone`).
            A saved salvid model is always rebuilt with ``none``: its weights are in the file.
        freeze_backbone: ``none``, ``all``, or ``k``: the stem and the first ``k`` pyramid levels stay fixed
            (weights and BatchNorm statistics).
        widths: channels of the fused features and of the decoder at each level, finest first.
        convs: the fusion's and decoder's 3x3 convolutions: ``full`` or ``separable`` (depthwise + pointwise).
        decoder_stride: the finest level the decoder fuses and climbs to: 2 (every backbone level) or 4 (the
            stride-2 level is left out, and with it its width; the map is resized from a quarter of the input).
        pixel_skip: each frame's RGB, averaged over cells of the finest fused level's stride, joins that level's
            backbone features (3 more channels), so the fusion over the frames sees pixel-level change.
    """

    family = "fusion3d"

    def __init__(
        self,
        in_frames: int = 3,
        input_size: Sequence[int] = (224, 384),
        backbone: str = DEFAULT_BACKBONE,
        pretrained: str = "imagenet",
        freeze_backbone: str | int = "none",
        widths: Sequence[int] = (24, 32, 48, 96, 160),
        convs: str = "full",
        decoder_stride: int = 2,
        pixel_skip: bool = False,
    ):
        super().__init__()
        check_settings(in_frames=in_frames, input_size=input_size, freeze_backbone=freeze_backbone, widths=widths,
                       convs=convs, decoder_stride=decoder_stride, pixel_skip=pixel_skip)
        self.in_frames = int(in_frames)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.output_activation = "sigmoid"
        self.backbone = build_backbone(backbone, pretrained)
        channels = self.backbone.feature_channels
        if len(widths) != len(channels):
            raise ConfigError(f"model.widths={list(widths)}: needs one width per backbone level ({len(channels)})")
        self.first_level = DECODER_STRIDES[int(decoder_stride)]
        channels, widths = list(channels[self.first_level:]), widths[self.first_level:]
        self.pixel_skip = bool(pixel_skip)
        if self.pixel_skip:
            channels[0] += 3
        self.fusion = nn.ModuleList(TemporalFusion(c, self.in_frames, w, convs)
                                    for c, w in zip(channels, widths, strict=True))
        self.decoder = nn.ModuleList(nn.Sequential(conv2d_bn_relu(widths[i + 1] + widths[i], widths[i], convs),
                                                   conv2d_bn_relu(widths[i], widths[i], convs))
                                     for i in range(len(widths) - 1))
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.frozen = self._freeze(freeze_backbone)
        self.channels_last = False

    def _freeze(self, freeze: str | int) -> list[nn.Module]:
        stages = self.backbone.stages()
        k = {"none": 0, "all": len(stages)}.get(str(freeze), None)
        frozen = [m for stage in stages[: int(freeze) if k is None else k] for m in stage]
        for module in frozen:
            module.requires_grad_(False)
        return frozen

    def train(self, mode: bool = True) -> FusionNet3D:
        super().train(mode)
        for module in self.frozen:  # frozen BatchNorm keeps its ImageNet statistics
            module.eval()
        return self

    def use_channels_last(self, enabled: bool) -> None:
        """channels_last memory (much faster bf16 convolutions on CPUs and GPUs)."""
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Backbone features of single frames ``(M, 3, H, W)``, the levels the decoder fuses: computed once per
        frame, shared by clips."""
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        features = list(self.backbone(frames)[self.first_level:])
        if self.pixel_skip:
            stride = 2 ** (self.first_level + 1)
            features[0] = torch.cat([features[0], F.avg_pool2d(frames, stride)], dim=1)
        return features

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` from per-level clip features ``(N, T, C, h, w)``."""
        fused = [f(x) for f, x in zip(self.fusion, features, strict=True)]
        x = fused[-1]
        for i in range(len(fused) - 2, -1, -1):
            x = F.interpolate(x, size=fused[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.decoder[i](torch.cat([x, fused[i]], dim=1))
        return F.interpolate(self.head(x), size=self.input_size, mode="bilinear", align_corners=False)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3 or x.shape[2] != self.in_frames or tuple(x.shape[3:]) != self.input_size:
            raise ValueError(f"expected input (N, 3, {self.in_frames}, {self.input_size[0]}, {self.input_size[1]}), "
                             f"got {tuple(x.shape)}")
        n, t = x.shape[0], x.shape[2]
        per_frame = self.encode_frames(x.transpose(1, 2).flatten(0, 1))
        return self.decode([f.unflatten(0, (n, t)) for f in per_frame])

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.logits(x))


def check_settings(*, in_frames, input_size, freeze_backbone, widths, convs, decoder_stride, pixel_skip=False,
                   **_) -> None:
    """What construction checks, without building: a ConfigError naming the first setting that does not fit.
    (That ``widths`` has one entry per backbone level is checked once the backbone is built.)"""
    check_in_frames(in_frames)
    check_input_size(input_size, 32, "(the backbone halves the size five times)")
    if str(freeze_backbone) not in ("none", "all", *map(str, range(6))):
        raise ConfigError(f"model.freeze_backbone={shown(freeze_backbone)}: must be {FREEZE_CHOICES}")
    check_counts("widths", widths, 1, MAX_WIDTH, "a number of channels")
    if convs not in CONVS:
        raise ConfigError(f"model.convs={shown(convs)}: must be one of {', '.join(CONVS)}")
    if not whole(decoder_stride) or int(decoder_stride) not in DECODER_STRIDES:
        raise ConfigError(f"model.decoder_stride={shown(decoder_stride)}: must be 2 or 4")
    if not isinstance(pixel_skip, bool):
        raise ConfigError(f"model.pixel_skip={shown(pixel_skip)}: must be true or false")
