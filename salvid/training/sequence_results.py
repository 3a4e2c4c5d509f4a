"""Per-sequence test results of a training run, for cross-validation (:mod:`salvid.data.folds`).

``train`` writes only the test means to ``metrics.json``; a fold holds few sequences, and which of them a
change helps or hurts is the useful part of a comparison. This callback writes the last test of a run (the
best checkpoint's, after any untrained test) as one CSV row per test sequence: its name, scored frames and
every test metric. ``scripts/cross_validate.py`` reads it beside ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from salvid.runtime.files import atomic_write_csv


class PerSequenceTestResults(L.Callback):
    """Writes ``path`` (CSV: ``sequence, frames, excluded_frames, <metric>...``) at the end of every test."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Callbacks run before the module's own hook, which computes and then resets the test metrics.
        per_video = pl_module.test_metrics.compute_per_video()  # a collective under DDP: every rank calls it
        sequences = trainer.datamodule.sequences["test"]
        if not trainer.is_global_zero:
            return
        rows = [{"sequence": sequences[v].name, **values} for v, values in sorted(per_video.items())]
        atomic_write_csv(self.path, rows, first=("sequence", "frames", "excluded_frames"))
