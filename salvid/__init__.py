"""salvid: video salient-object detection with 3D convolutional networks."""

import os

# bf16 training on AMX CPUs can crash in oneDNN's Conv3d weight gradient (see README, "Performance");
# capping the ISA avoids it. Must be set before torch initialises oneDNN; an explicit setting wins.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
