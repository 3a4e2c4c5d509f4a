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
