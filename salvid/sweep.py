"""Sweeps (``python -m salvid.train -m ...``): what each job knows about its sweep, and the summary written
when the sweep ends.

Each job's config carries ``sweep.id`` (shared by all jobs of one multirun; the W&B group) and
``sweep.overrides`` (its command-line overrides; logged as config so a dashboard can compare runs).
The summary reads what every job left in its directory (``.hydra/overrides.yaml`` and ``metrics.json``),
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

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from salvid.io import atomic_write_text

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.csv"


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_id(task_name: str) -> str | None:
    """``<task_name>-<sweep directory name>`` in a multirun job, else None."""
    return f"{task_name}-{Path(HydraConfig.get().sweep.dir).name}" if in_multirun() else None


def run_name(task_name: str) -> str:
    """``<task_name>`` for a single run; ``<task_name>:<its overrides>`` for a job of a sweep."""
    if not in_multirun():
        return task_name
    job = HydraConfig.get().job
    return f"{task_name}:{job.override_dirname or job.num}"


def job_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


DEFAULT_OUTPUT_DIR = "${hydra:runtime.output_dir}"  # conf/paths/default.yaml: Hydra's job directory


def explicit_output_dir(root: DictConfig) -> str | None:
    """``paths.output_dir`` when the command line (or a config) set it, else None (Hydra's job directory)."""
    paths = root.get("paths")
    if paths is None or "output_dir" not in paths:
        return None
    if OmegaConf.is_interpolation(paths, "output_dir") and \
            paths._get_node("output_dir")._value() == DEFAULT_OUTPUT_DIR:
        return None
    value = paths.output_dir
    return None if value is None else str(value)


def sweep_dir(default: str, *, _root_: DictConfig) -> str:
    """``hydra.sweep.dir``: an explicit ``paths.output_dir``, else ``default``."""
    return explicit_output_dir(_root_) or default


def use_job_output_dir(cfg: DictConfig) -> None:
    """In a job of a multirun, point ``paths.output_dir`` at the job's own directory: an explicit
    ``paths.output_dir=X`` names the sweep directory (see :func:`sweep_dir`), shared by all jobs."""
    if in_multirun():
        cfg.paths.output_dir = HydraConfig.get().runtime.output_dir


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("sweep_id", sweep_id, replace=True)
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("job_overrides", job_overrides, replace=True)
    OmegaConf.register_new_resolver("sweep_dir", sweep_dir, replace=True)


def metric_value(results: dict[str, Any], name: str) -> float | None:
    """``name`` ("test/plcc", "val/plcc", ...) from a ``metrics.json`` mapping: test metrics, else the last
    validation's."""
    for stage in ("test", "val"):
        if name in results.get(stage, {}):
            return results[stage][name]
    return None


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, writes ``<sweep dir>/summary.csv`` with one row per job:
    its directory, overrides, status (``done``, or ``incomplete`` without ``metrics.json``) and the value
    of ``optimized_metric``; logs the best job."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        metric = config.get("optimized_metric") or "metric"
        rows = [self._row(path.parent.parent, sweep_dir, metric) for path in sweep_dir.rglob(".hydra/overrides.yaml")]
        rows.sort(key=lambda r: [int(p) if p.isdigit() else p for p in Path(r["job"]).parts])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["job", "overrides", "status", metric])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(sweep_dir / SUMMARY_FILE, buffer.getvalue())
        log.info("Sweep summary (%d jobs): %s", len(rows), sweep_dir / SUMMARY_FILE)
        scored = [r for r in rows if isinstance(r[metric], float) and not math.isnan(r[metric])]
        if scored:
            direction = config.hydra.sweeper.get("direction", "maximize")
            best = (max if direction != "minimize" else min)(scored, key=lambda r: r[metric])
            log.info("Best %s = %.4f: %s (%s)", metric, best[metric], best["overrides"], best["job"])

    @staticmethod
    def _row(job_dir: Path, sweep_dir: Path, metric: str) -> dict[str, Any]:
        overrides = OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
        metrics_file = job_dir / "metrics.json"
        results = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
        value = metric_value(results, metric) if results is not None else None
        return {
            "job": str(job_dir.relative_to(sweep_dir)),
            "overrides": " ".join(overrides),
            "status": "done" if results is not None else "incomplete",
            metric: value if value is not None else "",
        }
