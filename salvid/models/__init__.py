"""The paper's network in pure torch: encoder (Conv3DNet), decoder (Deconv3DNet), composed (SaliencyNet3D)."""

from salvid.models.decoder import Deconv3DNet
from salvid.models.encoder import Conv3DNet
from salvid.models.network import PAPER_POOL_STRIDES, SaliencyNet3D

__all__ = ["Conv3DNet", "Deconv3DNet", "SaliencyNet3D", "PAPER_POOL_STRIDES"]
