"""salvid: video salient-object detection with 3D convolutional networks, as a Lightning + Hydra framework."""

import os

# albumentations checks PyPI for a newer version at every import (a 2 s timeout offline); salvid pins its
# own dependencies, so the check only costs time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

# salvid.load, salvid.predict_video, salvid.SaliencyModel (salvid.inference.api), imported on first use: a
# training process sets its oneDNN cap before torch loads, and ``import salvid`` must not load torch.
_API = ("SaliencyModel", "load", "predict_video")


def __getattr__(name: str):
    if name in _API:
        from salvid.inference import api

        return getattr(api, name)
    raise AttributeError(f"module 'salvid' has no attribute {name!r}")
