"""Resuming a killed run in its own output directory: which checkpoint, which W&B run, which random state.

Rerun the same command with ``hydra.run.dir=<the run's directory>``: training continues from the newest of
``checkpoints/last.ckpt`` and Lightning's SLURM requeue checkpoints (``hpc_ckpt_*.ckpt``), the W&B run whose
id is stored in the directory, and the random state saved with the checkpoint. The stream position is
restored by the datamodule (see :meth:`salvid.data.datamodule.SaliencyDataModule.state_dict`).
"""

from __future__ import annotations

import logging
import random
import secrets
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only

from salvid.io import atomic_write_text

log = logging.getLogger(__name__)

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
WANDB_ID_FILE = "wandb-run-id.txt"


def checkpoint_to_resume(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``ckpt_path`` as given; ``"last"``: this run's newest checkpoint, which must exist; ``None``: that
    checkpoint when the directory has one (a run restarted in place), else a fresh start."""
    if ckpt_path not in (None, "last"):
        return ckpt_path
    candidates = [p for p in [output_dir / LAST_CHECKPOINT, *output_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    if not candidates:
        if ckpt_path == "last":
            raise FileNotFoundError(f"ckpt_path=last: no {LAST_CHECKPOINT} in {output_dir}; "
                                    "pass hydra.run.dir=<the directory of the run to resume>")
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    log.info("Resuming from %s", newest)
    return str(newest)


def wandb_run_id(output_dir: Path) -> str:
    """The W&B run id of this output directory, created (by rank 0) on first use."""
    path = output_dir / WANDB_ID_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    run_id = secrets.token_hex(4)  # W&B ids: lowercase letters and digits
    if rank_zero_only.rank == 0:
        atomic_write_text(path, run_id + "\n")
    return run_id


class RngState(L.Callback):
    """Saves the global random states (Python, NumPy, torch, CUDA) with each checkpoint and restores them
    when training resumes, so random draws after a resume (dropout, random ops) continue as if uninterrupted.

    Stored as plain lists and tensors, so checkpoints still load with ``torch.load(weights_only=True)``.
    """

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        version, state, gauss = random.getstate()
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "python": [version, list(state), gauss],
            "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._to_restore is None:
            return
        state, self._to_restore = self._to_restore, None
        version, py_state, gauss = state["python"]
        random.setstate((version, tuple(py_state), gauss))
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
