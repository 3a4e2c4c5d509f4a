"""salvid: video salient-object detection with 3D convolutional networks, as a Lightning + Hydra framework."""

import os

# albumentations checks PyPI for a newer version at every import (a 2 s timeout offline); salvid pins its
# own dependencies, so the check only costs time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
