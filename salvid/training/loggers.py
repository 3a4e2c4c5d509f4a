"""The loggers of ``conf/logger/``: Lightning's CSV and W&B loggers, adapted to runs that resume."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from salvid.runtime.files import atomic_write_text, is_temporary

log = logging.getLogger(__name__)


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger, without passing W&B an ``anonymous`` setting it was not given: Lightning always
    passes ``anonymous=None``, which wandb >= 0.19 answers with a warning that the setting has no effect."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)



class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger, except that a resumed run keeps its ``metrics.csv`` and no kill or failed write
    damages it.

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
    """Keeps the rows before ``keep_before_step``; writes so that a kill or a failed write leaves whole rows.

    Lightning's writer truncates the file and writes it again in place when a metric adds a column, and leaves
    half-written rows behind an append that fails (then writes them all again): a run killed or interrupted
    there lost or mangled its history. Here a new column rewrites the file atomically, a failed append is cut
    back to where it started, and on resume a last row without its line end (a kill in mid-append) is left
    out."""

    def __init__(self, log_dir: str, keep_before_step: int) -> None:
        self._keep_before_step = keep_before_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        for leftover in path.parent.glob(f".{path.name}.*"):  # an atomic rewrite that a kill interrupted
            if is_temporary(leftover):
                leftover.unlink(missing_ok=True)
        if not path.is_file():
            return
        fields, rows = _read_rows(path)
        rows = [r for r in rows if _step(r) < self._keep_before_step]
        if not rows:
            path.unlink()
            return
        _write_rows(path, fields, rows)
        self.metrics_keys = fields  # new keys extend this header (the file is rewritten then)

    def save(self) -> None:
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        keys = list(self.metrics_keys)
        try:
            if self._record_new_keys() or not path.is_file():
                earlier = _read_rows(path)[1] if path.is_file() else []
                _write_rows(path, self.metrics_keys, earlier + self.metrics)
            else:
                _append_rows(path, self.metrics_keys, self.metrics)
        except BaseException:
            self.metrics_keys = keys  # the file's header; the rows stay pending for the next save
            raise
        self.metrics = []


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the whole rows of a metrics file. A last line without its line end, which a killed run
    was writing, is left out; so is, with a warning, a line whose fields do not match the header."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    whole = [r for r in rows if None not in r and None not in r.values()]
    if len(whole) < len(rows):
        log.warning("%s: %d damaged rows left out", path, len(rows) - len(whole))
    return list(reader.fieldnames or []), whole


def _write_rows(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _append_rows(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    size = path.stat().st_size
    try:
        with open(path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=fields).writerows(rows)
    except BaseException:
        os.truncate(path, size)
        raise


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0
