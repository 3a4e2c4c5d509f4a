"""The loggers of ``conf/logger/``: Lightning's CSV and W&B loggers, adapted to runs that resume."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from salvid.runtime.files import atomic_write_text


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger, without passing W&B an ``anonymous`` setting it was not given: Lightning always
    passes ``anonymous=None``, which wandb >= 0.19 answers with a warning that the setting has no effect."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)



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
    """Keeps the rows before ``keep_before_step``, and rewrites the file atomically when new columns arrive:
    Lightning truncates and rewrites it in place, so a run killed in between would lose its history."""

    def __init__(self, log_dir: str, keep_before_step: int) -> None:
        self._keep_before_step = keep_before_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        fields, rows = _read_rows(path)
        rows = [r for r in rows if _step(r) < self._keep_before_step]
        if not rows:
            path.unlink()
            return
        _write_rows(path, fields, rows)
        self.metrics_keys = fields  # new keys extend this header (the file is rewritten then)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        _write_rows(Path(self.metrics_file_path), fieldnames, _read_rows(Path(self.metrics_file_path))[1])


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the whole rows of a metrics file; a last line without its line end, which a killed run
    was writing, is left out."""
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def _write_rows(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0
