"""salvid's Hydra configs: where they are, the resolvers they use, and the objects they describe.

The configs are the repository's top-level ``conf/`` folder. A wheel installs it as ``salvid/conf`` (see
``pyproject.toml``); in a checkout, and in an editable install of it, it is ``conf/`` beside the package.
Either way it is found from the package's own location, so every entry point works from any working folder.
Add your own config groups without editing salvid with Hydra's ``--config-dir DIR`` (or
``hydra.searchpath=[file://DIR]``).

Each job's config carries ``sweep.id`` (shared by all jobs of one multirun; the W&B group) and
``sweep.overrides`` (its command-line overrides; logged as config so a dashboard can compare runs). Every job
has its own output directory: by default ``<hydra.sweep.dir>/<job number>``; with ``paths.output_dir=X`` on
the command line of a multirun, X becomes the sweep directory and each job writes to ``X/<job number>`` (a
single run writes to X itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from salvid.errors import ConfigError
from salvid.runtime.entry import in_multirun


def _config_dir() -> str:
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "conf", package.parent / "conf"):  # installed wheel, then checkout
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise ConfigError(f"salvid's configs are missing (neither {package / 'conf'} nor {package.parent / 'conf'} "
                      "holds train.yaml): reinstall salvid")


# An absolute path: a relative config_path resolves against the calling module, which for console scripts
# (salvid-train, ...) is not a file path.
CONF_DIR = _config_dir()


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


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


# conf/hydra/default.yaml, which every entry point composes, uses them: importing the configs' home makes
# them available.
register_resolvers()
