"""What a run carries across a resume: its W&B run id, its random state and its records.

Rerun the same command with ``paths.output_dir=<the run's folder>``: training continues from the newest of
``checkpoints/last.ckpt`` and Lightning's SLURM requeue checkpoints (``hpc_ckpt_*.ckpt``), the W&B run whose
id is stored in the directory, and the random state saved with the checkpoint. The stream position is
restored by the datamodule (see :meth:`salvid.data.datamodule.SaliencyDataModule.state_dict`). The run keeps
its records: the CSV history (:class:`salvid.training.loggers.ResumableCSVLogger`), the untrained scores and the total fit time
(:class:`RunRecord`). Which checkpoint, and whether it may be resumed, is decided in :mod:`salvid.training.run_folder`.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only

from salvid.runtime.files import atomic_write_text

log = logging.getLogger(__name__)

WANDB_ID_FILE = "wandb-run-id.txt"


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


# -- records that survive a resume -------------------------------------------------------------------------


class RunRecord(L.Callback):
    """What a run records besides its weights, carried in every checkpoint so that a resumed run keeps it:
    the data config (compared on resume), the untrained network's test scores, the last validation scores,
    and the time spent in ``fit`` summed over all segments (each up to the checkpoint the next resumed from:
    work after it was redone). Plain data only, so checkpoints load with ``weights_only=True``.

    Each checkpoint also flushes the loggers, so the CSV history on disk reaches at least as far as the
    checkpoint a killed run resumes from.
    """

    def __init__(self, data_config: dict[str, Any] | None = None) -> None:
        self.config = {"data": data_config}
        self.untrained: dict[str, float] | None = None
        self.val: dict[str, float] = {}
        self.previous_seconds = 0.0
        self.segments = 1
        self.precisions: list[str] = []  # Lightning's precision of each segment
        self._started: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()
        self.precisions.append(str(trainer.precision))

    def precision(self) -> str:
        """The run's training precision, e.g. ``bf16-mixed``; ``32-true, then bf16-mixed`` when a resumed segment
        trained in another (``trainer.precision=auto`` resumed on another machine)."""
        distinct = list(dict.fromkeys(self.precisions))
        return ", then ".join(distinct)

    def fit_seconds(self) -> float:
        current = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.previous_seconds + current

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            logger.save()

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config, "untrained": self.untrained, "val": self.val,
                "fit_seconds": self.fit_seconds(), "segments": self.segments, "precisions": self.precisions}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.untrained = state_dict.get("untrained")
        self.val = dict(state_dict.get("val") or {})
        self.previous_seconds = float(state_dict.get("fit_seconds", 0.0))
        self.segments = int(state_dict.get("segments", 1)) + 1
        self.precisions = [str(p) for p in state_dict.get("precisions") or []] + self.precisions
