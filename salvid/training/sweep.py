"""Sweeps (``python -m salvid.train -m ...``): the summary written when the sweep ends, and the metric a
sweeper optimises.

What each job knows about its sweep (``sweep.id``, ``sweep.overrides``, its own output folder) is resolved in
:mod:`salvid.runtime.configs`. The summary reads what every job left in its directory (``.hydra/overrides.yaml`` and ``metrics.json``),
so it works whichever launcher ran the jobs, local or SLURM, and lists failed jobs too.

Every job has its own output directory. By default that is ``<hydra.sweep.dir>/<job number>``; with
``paths.output_dir=X`` on the command line of a multirun, X becomes the sweep directory and each job writes
to ``X/<job number>`` (a single run writes to X itself).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from salvid.runtime.entry import in_multirun
from salvid.runtime.files import atomic_write_text

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.csv"


def metric_value(results: dict[str, Any], name: str) -> float | None:
    """``name`` ("test/plcc", "val/plcc", ...) from a ``metrics.json`` mapping: test metrics, else the last
    validation's."""
    for stage in ("test", "val"):
        if name in results.get(stage, {}):
            return results[stage][name]
    return None


JOB_ERROR_FILE = "job_error.txt"  # in a job's folder: the error that ended it


class SweepSummary(Callback):
    """Hydra callback: ``<sweep dir>/summary.csv`` with one row per job: its folder, overrides, status
    (``done``; ``failed: <error>``; ``incomplete`` while running or when killed) and the value of
    ``optimized_metric``. Rewritten as each job ends, so a job that crashes the sweep (Hydra stops at the first
    failed job) still leaves every job's row; at the end of the multirun it also logs the best job."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobStatus

        if not in_multirun():
            return
        hydra = HydraConfig.get()
        job_dir = Path(hydra.runtime.output_dir)
        # a folder holding a finished run keeps that run's record: a rerun refused there writes nothing into it
        if job_return.status == JobStatus.FAILED and not (job_dir / "metrics.json").is_file():
            error = job_return._return_value  # the exception; reading .return_value would raise it
            line = next((ln for ln in str(error).splitlines() if ln.strip()), "")
            atomic_write_text(job_dir / JOB_ERROR_FILE, f"{type(error).__name__}: {line}\n")
        self._write(Path(hydra.sweep.dir), config.get("optimized_metric") or "metric")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        metric = config.get("optimized_metric") or "metric"
        rows = self._write(sweep_dir, metric)
        log.info("Sweep summary (%d jobs): %s", len(rows), sweep_dir / SUMMARY_FILE)
        scored = [r for r in rows if isinstance(r[metric], float) and not math.isnan(r[metric])]
        if scored:
            direction = config.hydra.sweeper.get("direction", "maximize")
            best = (max if direction != "minimize" else min)(scored, key=lambda r: r[metric])
            log.info("Best %s = %.4f: %s (%s)", metric, best[metric], best["overrides"], best["job"])

    def _write(self, sweep_dir: Path, metric: str) -> list[dict[str, Any]]:
        rows = [self._row(path.parent.parent, sweep_dir, metric) for path in sweep_dir.rglob(".hydra/overrides.yaml")]
        rows.sort(key=lambda r: [int(p) if p.isdigit() else p for p in Path(r["job"]).parts])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["job", "overrides", "status", metric])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(sweep_dir / SUMMARY_FILE, buffer.getvalue())
        return rows

    @staticmethod
    def _row(job_dir: Path, sweep_dir: Path, metric: str) -> dict[str, Any]:
        overrides = OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
        metrics_file = job_dir / "metrics.json"
        results = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
        value = metric_value(results, metric) if results is not None else None
        error_file = job_dir / JOB_ERROR_FILE
        status = "done" if results is not None else (
            f"failed: {error_file.read_text(encoding='utf-8').strip()}" if error_file.is_file() else "incomplete")
        return {
            "job": str(job_dir.relative_to(sweep_dir)),
            "overrides": " ".join(overrides),
            "status": status,
            metric: value if value is not None else "",
        }
