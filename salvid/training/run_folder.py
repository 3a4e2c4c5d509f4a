"""A training run's directory, checked before anything is written into it: finished or not, which checkpoint
training continues from, and whether that checkpoint was trained with the config given now.

Nothing here imports torch at import time: the Hydra callback :class:`ResumeCheck` runs before training sets
the oneDNN variable that must precede torch (see :func:`salvid.runtime.environment.cap_cpu_isa_for_training`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from salvid.errors import CheckpointError, ConfigError
from salvid.models.families import with_defaults
from salvid.runtime.configs import explicit_output_dir

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
METRICS_FILE = "metrics.json"
RUN_RECORD = "RunRecord"  # the state key of salvid.training.run_records.RunRecord in a checkpoint
# Keys that say how to run, not what is trained: a resume may change them.
IGNORED_ON_RESUME = {"data": {"root", "num_workers", "pin_memory"}, "module": {"log_images", "channels_last"}}


def checkpoint_to_resume(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``ckpt_path`` as given; ``"last"``: this run's newest checkpoint, which must exist; ``None``: that
    checkpoint when the directory has one (a run restarted in place), else a fresh start."""
    if ckpt_path not in (None, "last"):
        return ckpt_path
    candidates = [p for p in [output_dir / LAST_CHECKPOINT, *output_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    if not candidates:
        if ckpt_path == "last":
            raise ConfigError(f"ckpt_path=last: no {LAST_CHECKPOINT} in {output_dir}; "
                              "pass paths.output_dir=<the folder of the run to resume>")
        return None
    return str(max(candidates, key=lambda p: p.stat().st_mtime))


def finished_run(output_dir: Path) -> dict[str, Any] | None:
    """The records of the finished run in ``output_dir`` (its ``metrics.json``), or None."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return results if isinstance(results, dict) and "test" in results else None


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(f"{prefix}.{key}", inner))
        return flat
    return {prefix: value}


def _plain(value: Any) -> Any:
    """Tuples as lists, so a config from a checkpoint compares equal to the same config from YAML."""
    return json.loads(json.dumps(value, default=str))


def config_differences(checkpoint: dict[str, Any], cfg: DictConfig) -> list[str]:
    """``key (<in the checkpoint> in the checkpoint, <now> now)`` for every model, module and data setting
    that differs between the checkpoint and ``cfg``; [] when training can continue from it."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("model"), dict):
        raise CheckpointError("no salvid model config in its hyper_parameters (not a salvid training checkpoint?)")
    stored = {"model": with_defaults(hparams["model"]),
              "module": {k: v for k, v in hparams.items() if k != "model"}}
    now = {"model": with_defaults(OmegaConf.to_container(cfg.model, resolve=True)),
           "module": OmegaConf.to_container(cfg.module, resolve=True)}
    record = (checkpoint.get("callbacks") or {}).get(RUN_RECORD) or {}
    if isinstance(record.get("config"), dict) and "data" in record["config"] and cfg.get("data") is not None:
        stored["data"] = record["config"]["data"]
        now["data"] = OmegaConf.to_container(cfg.data, resolve=True)
    differences = []
    for group in stored:
        old, new = _flatten(group, _plain(stored[group])), _flatten(group, _plain(now[group]))
        for key in sorted(old.keys() & new.keys() if group != "model" else old.keys() | new.keys()):
            if key.split(".")[1] in IGNORED_ON_RESUME.get(group, ()):
                continue
            if old.get(key) != new.get(key):
                differences.append(f"{key} ({old.get(key)!r} in the checkpoint, {new.get(key)!r} now)")
    return differences


@dataclass
class Resume:
    """Where training starts: a fresh run (``ckpt_path`` None) or a local checkpoint at ``step``."""

    ckpt_path: str | None = None
    step: int = 0


def plan_resume(cfg: DictConfig, output_dir: Path) -> Resume:
    """The checkpoint training continues from, read with the safe loader and compared with ``cfg``.

    Raises :class:`ConfigError` naming every differing key when the checkpoint was trained with another
    model, module or data config: resuming it would fail on mismatched weights, or silently train something
    else. Nothing is written here, so a refused resume leaves the run directory as it was.
    """
    spec = checkpoint_to_resume(cfg.get("ckpt_path"), output_dir)
    if spec is None:
        return Resume()
    from salvid.checkpoints import local_copy, read_checkpoint

    path = str(local_copy(spec))
    try:
        checkpoint = read_checkpoint(path, trusted=bool(cfg.get("trusted_checkpoint", False)))
    except CheckpointError as e:
        if cfg.get("ckpt_path") not in (None, "last"):
            raise
        # the folder's own checkpoint, which a rerun resumes from unasked: say how to get past it
        raise CheckpointError(f"{e}; the run in {output_dir} resumes from it: move it away to start the run over, "
                              "or resume from another checkpoint with ckpt_path=<file>") from None
    try:
        differences = config_differences(checkpoint, cfg)
    except CheckpointError as e:
        raise CheckpointError(f"{spec}: {e}") from None
    if differences:
        raise ConfigError(
            f"{spec}: cannot resume with a different config: {'; '.join(differences)}. Rerun with the "
            "checkpoint's settings, or start a new run in another directory (init_weights=<checkpoint> "
            "fine-tunes from its weights)"
        )
    return Resume(path, int(checkpoint.get("global_step", 0)))


def check_output(cfg: DictConfig, output_dir: Path) -> None:
    """Refuse, before anything is written: a dataset or a checkpoint to resume that is not there, and a run folder
    inside the dataset or equal to a checkpoint it reads."""
    from salvid.runtime.environment import cap_cpu_isa_for_training

    cap_cpu_isa_for_training(cfg.model)  # first: the checks below import torch
    from salvid.checkpoints import is_remote
    from salvid.data.layouts import check_root, dataset_roots
    from salvid.runtime.files import OutputGuard

    for layout, root, key in dataset_roots(cfg.data):
        check_root(layout, root, key)
    resume = cfg.get("ckpt_path")
    if resume not in (None, "last") and not is_remote(resume) and not Path(str(resume)).exists():
        raise CheckpointError(f"{resume}: checkpoint not found (ckpt_path)")

    data_root = cfg.data.get("root")
    files = [Path(p) for p in (cfg.get("ckpt_path"), cfg.get("init_weights")) if p and Path(str(p)).is_file()]
    OutputGuard(output_dir, input_dirs=[data_root] if data_root else [], input_files=files)



# Keys that say where a run reads and writes, not what it trains: a rerun of a finished run may change them.
IGNORED_WHEN_FINISHED = ("paths", "ckpt_path", "trusted_checkpoint")


def finished_differences(output_dir: Path, cfg: DictConfig) -> list[str]:
    """``key (<then> then, <now> now)`` for every setting in which ``cfg`` differs from the config the finished
    run in ``output_dir`` was started with (its ``.hydra/config.yaml``, as composed: interpolations unresolved);
    [] when they agree or the folder keeps no config."""
    saved = Path(output_dir) / ".hydra" / "config.yaml"
    if not saved.is_file():
        return []
    then = _flatten("", _plain(OmegaConf.to_container(OmegaConf.load(saved), resolve=False)))
    now = _flatten("", _plain(OmegaConf.to_container(cfg, resolve=False)))
    differences = []
    for key in sorted(then.keys() | now.keys()):
        parts = key.lstrip(".").split(".")
        if parts[0] in IGNORED_WHEN_FINISHED or (len(parts) > 1 and parts[1] in IGNORED_ON_RESUME.get(parts[0], ())):
            continue
        if then.get(key) != now.get(key):
            differences.append(f"{key.lstrip('.')} ({then.get(key)!r} then, {now.get(key)!r} now)")
    return differences


def leaves_alone(config: DictConfig, output_dir: Path) -> bool:
    """Whether ``salvid.train`` will leave ``output_dir`` as it is: it holds a finished run, or a checkpoint that
    :func:`plan_resume` refuses (``config``: the whole config, Hydra's part too)."""
    if not output_dir.is_dir():
        return False
    if finished_run(output_dir) is not None:
        return True
    from salvid.runtime.environment import cap_cpu_isa_for_training

    cap_cpu_isa_for_training(config.model)  # reading a checkpoint loads torch
    try:
        plan_resume(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]), output_dir)
        return False  # resumable: Hydra records this segment as usual
    except Exception:  # noqa: BLE001  (salvid.train raises it again, and reports it)
        return True


class ResumeCheck(HydraCallback):
    """Hydra callback of ``salvid.train``: keeps Hydra from writing into a run directory that training will
    leave alone.

    Hydra saves ``.hydra/config.yaml`` and appends to the job's log at the start of every run, over the
    config a resumed run was started with (the record ``salvid.export`` copies into a model card). When the
    directory holds a finished run, or a checkpoint that :func:`plan_resume` refuses, this turns both off for
    the run; ``salvid.train`` then says why in one line, and the directory stays as it was. A multirun's jobs
    get the same decision from ``hydra.output_subdir`` (:func:`train_output_subdir`): no
    config is saved over such a job's, its log has the one line appended.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # the ${hydra:...} values the paths need
        output_dir = Path(explicit_output_dir(config) or config.hydra.run.dir)
        leave = leaves_alone(config, output_dir)
        with read_write(config.hydra), open_dict(config.hydra):
            # decided here for a single run, so that the resolver does not read the checkpoint again
            config.hydra.output_subdir = None if leave else ".hydra"
            if not leave:
                return
            logging_config = config.hydra.get("job_logging")
            if logging_config is not None and "file" in (logging_config.get("handlers") or {}):
                # Python's logging opens every handler it is given, used or not
                del logging_config.handlers["file"]
                root = logging_config.get("root") or {}
                if "handlers" in root:
                    root.handlers = [h for h in root.handlers if h != "file"]


def train_output_subdir(*, _root_: DictConfig) -> str | None:
    """``hydra.output_subdir`` of ``salvid.train`` (read by Hydra as each run or job starts): ``.hydra``, or none
    where the folder holds a run that training will leave as it is (a finished run, a checkpoint it refuses to
    resume), so that Hydra saves no config over that run's own record."""
    output_dir = OmegaConf.select(_root_, "hydra.runtime.output_dir", default=None)
    return None if output_dir and leaves_alone(_root_, Path(output_dir)) else ".hydra"


# conf/train.yaml's hydra.output_subdir uses it: importing the training code makes it available.
OmegaConf.register_new_resolver("train_output_subdir", train_output_subdir, replace=True)
