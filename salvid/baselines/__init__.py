"""Saliency methods to compare against, scored by the same code as the network (see :mod:`salvid.inference.scoring`).

``BASELINES`` maps the names accepted by ``evaluate baselines=[...]`` to their constructors; a constructor
raises :class:`BaselineUnavailable` (with the reason) when the method cannot run here.
"""

from salvid.baselines.classical import (
    BaselineUnavailable,
    CenterPrior,
    FrameDifference,
    OpenCVFineGrained,
    SpectralResidual,
)
from salvid.baselines.maps_folder import MapsFolder, MissingMapsError

BASELINES = {
    "center_prior": CenterPrior,
    "frame_difference": FrameDifference,
    "spectral_residual": SpectralResidual,
    "opencv_fine_grained": OpenCVFineGrained,
}

__all__ = [
    "BASELINES",
    "BaselineUnavailable",
    "CenterPrior",
    "FrameDifference",
    "MapsFolder",
    "MissingMapsError",
    "OpenCVFineGrained",
    "SpectralResidual",
]
