"""Lightning's checkpoint writer, made atomic (training only)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from salvid.io import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint writer that never leaves a truncated file: it writes a temporary file beside the
    target and renames it over the target.

    Lightning's own writer stages the file in the system temp directory; when that is another filesystem
    (usual on clusters) the final move is a copy over the old checkpoint, and a kill during the copy leaves
    half a ``last.ckpt``. Remote (``scheme://``) paths keep Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_open(path) as f:
            torch.save(checkpoint, f)
