"""Lightning's checkpoint reader and writer for training: reads through salvid's safe loader, writes atomically."""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from salvid.runtime.files import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint plugin.

    Reading: every checkpoint Lightning loads (``trainer.fit(ckpt_path=...)`` to resume, ``trainer.test`` of
    the best checkpoint, SLURM requeue files) goes through :func:`salvid.checkpoints.read_checkpoint`:
    ``torch.load(weights_only=True)``, so a file can never run code, and URLs are downloaded first rather
    than handed to ``torch.hub`` (which Lightning calls with ``weights_only=False``). Lightning's own
    ``weights_only`` request is ignored; only ``trusted`` (``trusted_checkpoint=true``) lifts the restriction.

    Writing: never leaves a truncated file. It writes a temporary file beside the target and renames it over
    the target. Lightning's own writer stages the file in the system temp directory; when that is another
    filesystem (usual on clusters) the final move is a copy over the old checkpoint, and a kill during the
    copy leaves half a ``last.ckpt``. A save that fails for lack of space raises
    :class:`salvid.errors.DiskFullError` naming the folder (torch's writer alone says ``unexpected pos``), and
    removes its temporary file. Remote (``scheme://``) paths keep Lightning's writer.
    """

    def __init__(self, trusted: bool = False) -> None:
        super().__init__()
        self.trusted = trusted

    def load_checkpoint(self, path: Any, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        from salvid.checkpoints import read_checkpoint

        return read_checkpoint(str(path), trusted=self.trusted, map_location=map_location or "cpu")

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_open(path) as f:
            out = _KeepingWriteErrors(f)
            try:
                torch.save(checkpoint, out)
            except RuntimeError as e:
                if out.error is None:
                    raise
                raise out.error from e  # with its errno, which atomic_open reports (no space: DiskFullError)


class _KeepingWriteErrors:
    """The file torch.save writes to, keeping the OSError of a failed write: torch's writer reports it as a
    RuntimeError (``unexpected pos ...``) that has lost the reason."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()

    def __getattr__(self, name: str) -> Any:  # anything else a torch version asks of the file
        return getattr(self.f, name)
