"""salvid: video salient-object detection with 3D convolutional networks."""

import os

# The oneDNN ISA cap that keeps bf16 training safe costs inference its AMX speed, so only training entry
# points set it: see salvid.runtime.cap_cpu_isa_for_training.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
