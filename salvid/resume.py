"""Resuming a killed run in its own output directory: which checkpoint, which W&B run, which random state,
and the run's records.

Rerun the same command with ``hydra.run.dir=<the run's directory>``: training continues from the newest of
``checkpoints/last.ckpt`` and Lightning's SLURM requeue checkpoints (``hpc_ckpt_*.ckpt``), the W&B run whose
id is stored in the directory, and the random state saved with the checkpoint. The stream position is
restored by the datamodule (see :meth:`salvid.data.datamodule.SaliencyDataModule.state_dict`). The run keeps
its records: the CSV history (:class:`ResumableCSVLogger`), the untrained scores and the total fit time
(:class:`RunRecord`). Which checkpoint, and whether it may be resumed, is decided in :mod:`salvid.rundir`.
"""

from __future__ import annotations

import csv
import io
import logging
import random
import secrets
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from salvid.io import atomic_write_text
from salvid.rundir import LAST_CHECKPOINT, checkpoint_to_resume  # noqa: F401  (part of this module's interface)

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
        self._started: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

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
                "fit_seconds": self.fit_seconds(), "segments": self.segments}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.untrained = state_dict.get("untrained")
        self.val = dict(state_dict.get("val") or {})
        self.previous_seconds = float(state_dict.get("fit_seconds", 0.0))
        self.segments = int(state_dict.get("segments", 1)) + 1


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger, except that a resumed run keeps its ``metrics.csv``.

    Lightning's deletes an existing ``metrics.csv`` when it starts. This one keeps the rows logged before the
    step training resumes from (:attr:`resume_step`, set by ``salvid.train``) and appends after them; rows
    from later steps describe work that is being redone and are dropped. A fresh run (step 0) starts an empty
    file, as Lightning's does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = 0

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self.resume_step)
        return self._experiment


class _KeepingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, keep_before_step: int) -> None:
        self._keep_before_step = keep_before_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = [r for r in reader if _step(r) < self._keep_before_step]
        if not rows:
            path.unlink()
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buffer.getvalue())
        self.metrics_keys = fields  # new keys extend this header (Lightning rewrites the file then)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0
