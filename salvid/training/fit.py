"""A training run from its config: check it, resume or start it, fit, test, and record the results.

Writes ``<output_dir>/checkpoints/last.ckpt`` (and the best epoch's, ``epochNNN-plccX.XXXX.ckpt``, where a run
validates) and, once the run has finished, ``metrics.json``
(its absence marks an incomplete run). Rerunning in a run's folder resumes that run with all its records (see
:mod:`salvid.training.run_records`), after checking that the checkpoint was trained with the same model, module
and data config (see :mod:`salvid.training.run_folder`). Rerunning a finished run changes nothing: it says so
and returns the recorded metric. Under DDP all ranks share rank 0's config and output directory (see
:mod:`salvid.training.ddp`).

torch and Lightning are imported only inside the functions: the oneDNN ISA cap that some families need for
bf16 CPU training must be set before torch loads, and only when it is needed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from salvid.errors import ConfigError
from salvid.models.config import check_model_config
from salvid.runtime.configs import instantiate_all, use_job_output_dir
from salvid.runtime.environment import cap_cpu_isa_for_training, hardware_description
from salvid.runtime.files import atomic_write_json
from salvid.runtime.schema import TrainConfig, validate
from salvid.runtime.tracking import finish_wandb_run, wandb_mode
from salvid.training import run_folder, sweep

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    cap_cpu_isa_for_training(cfg.model)
    use_job_output_dir(cfg)
    output_dir = Path(cfg.paths.output_dir)
    finished = run_folder.finished_run(output_dir)
    if finished is not None:  # compared with the config as composed, before init_weights adopts a network
        differences = run_folder.finished_differences(output_dir, cfg)
        if differences:
            shown = "; ".join(differences[:4]) + (f"; ... ({len(differences)} in all)" if len(differences) > 4 else "")
            raise ConfigError(f"{output_dir}: holds a finished run of another config ({shown}); nothing was "
                              "changed. Choose another paths.output_dir for the new run")
        log.warning("%s: this run has finished (its metrics.json exists); nothing was changed. For a new run "
                    "choose another paths.output_dir", output_dir)
        return sweep.metric_value(finished, cfg.get("optimized_metric") or "")
    adopt_initial_network(cfg)
    check_config(cfg)
    from salvid.training import ddp, run_records  # Lightning: only once the config holds

    resolve_precision(cfg)
    start = run_folder.plan_resume(cfg, output_dir)
    cfg.ckpt_path = start.ckpt_path
    if start.ckpt_path:
        log.info("Resuming from %s (step %d)", start.ckpt_path, start.step)
    if cfg.get("logger") and "wandb" in cfg.logger:
        wandb_mode()
        if cfg.logger.wandb.get("id") is None:
            cfg.logger.wandb.id = run_records.wandb_run_id(output_dir)
    try:
        with ddp.shared_with_ranks(cfg):
            return fit_and_test(cfg, output_dir, start.step)
    finally:
        finish_wandb_run()


def check_config(cfg: DictConfig) -> None:
    """Refuse values that make no sense before any work starts, naming the key."""
    validate(TrainConfig, cfg)
    check_model_config(OmegaConf.to_container(cfg.model, resolve=True))
    check_accelerator(cfg.trainer)


def check_accelerator(trainer: DictConfig) -> None:
    """A GPU asked for (``trainer=gpu``, ``trainer=ddp``) where torch sees none: one line rather than Lightning's
    traceback. Checked where the run trains (a cluster's login node that submits it may have no GPU)."""
    import torch

    accelerator, devices = str(trainer.get("accelerator", "auto")), trainer.get("devices", 1)
    if accelerator not in ("gpu", "cuda"):
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0  # asks the driver only
    wanted = len(devices) if OmegaConf.is_list(devices) or isinstance(devices, list) else (
        devices if isinstance(devices, int) and devices > 0 else 1)
    if available < wanted:
        seen = f"{available} CUDA GPU(s)" if available else "no CUDA GPU"
        raise ConfigError(f"trainer.accelerator={accelerator} with trainer.devices={devices}: this PyTorch "
                          f"({torch.__version__}) sees {seen}; train on the CPU with trainer=cpu (or trainer=ddp_cpu "
                          "for several processes), or install a CUDA build of torch (README: Install)")


def resolve_precision(cfg: DictConfig) -> None:
    """``trainer.precision=auto`` becomes the value Lightning takes
    (:func:`salvid.runtime.precision.trainer_precision`), before the config is logged and handed to DDP ranks;
    ``metrics.json`` records what each segment trained in (``run.precision``), ``.hydra/config.yaml`` keeps the
    setting as given."""
    from salvid.models.families import family_of
    from salvid.runtime.precision import trainer_precision

    setting = cfg.trainer.get("precision", "32-true")
    resolved = trainer_precision(setting, str(cfg.trainer.get("accelerator", "auto")),
                                 family_of(OmegaConf.to_container(cfg.model, resolve=True)).training_isa_cap)
    if resolved != setting:
        log.info("trainer.precision=auto: %s here", resolved)
        cfg.trainer.precision = resolved


def _model_keys_given() -> set[str]:
    """The ``model.*`` keys set on the command line (``model.x=...``, ``+model.x``, ``++model.x``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    keys = (o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task)
    return {k.split(".")[1] for k in keys if k.startswith("model.") and k.count(".") >= 1}


def adopt_initial_network(cfg: DictConfig) -> None:
    """With ``init_weights``, train the network those weights belong to: its config becomes ``model.*``, except
    the family's training settings (``freeze_backbone``, ...) as the config gives them and any ``model.*`` key
    given on the command line. Its weights are loaded when the module is built (:func:`_load_initial_weights`)."""
    spec = cfg.get("init_weights")
    if not spec:
        return
    from salvid.checkpoints import load_network
    from salvid.models.families import family_of, with_defaults

    _, initial = load_network(spec, trusted=cfg.get("trusted_checkpoint", False))
    initial = with_defaults(initial)
    family = family_of(initial)
    given = OmegaConf.to_container(cfg.model, resolve=True)
    same_family = family_of(given) is family
    keep = (set(family.training_settings) if same_family else set()) | _model_keys_given()
    model = {**initial, **{k: v for k, v in given.items() if k in keep}}
    if "pretrained" in family.training_settings and "pretrained" not in _model_keys_given():
        model["pretrained"] = "none"  # every weight comes from init_weights
    cfg.model = OmegaConf.create(model)


def _load_initial_weights(module, spec: str, trusted: bool) -> None:
    """Start from a pretrained network (fine-tuning). Settings given on the command line may differ from the
    ones the weights were trained with (a larger input size), as long as the weights fit the network."""
    from salvid.checkpoints import load_network
    from salvid.errors import CheckpointError
    from salvid.models.families import identity

    net, config = load_network(spec, trusted=trusted)
    initial, trained = identity(config), identity(module.hparams.model)
    differ = sorted(k for k in set(initial) | set(trained) if initial.get(k) != trained.get(k))
    try:
        module.net.load_state_dict(net.state_dict())
    except RuntimeError as e:
        raise CheckpointError(f"init_weights={spec}: its weights do not fit the network asked for, which differs "
                              f"in model.{', model.'.join(differ)}; leave those keys out to fine-tune the network "
                              "as it is") from e
    log.info("initial weights from %s%s", spec, f" (model.{', model.'.join(differ)} changed)" if differ else "")


def _fit(trainer, module, datamodule, ckpt_path: str | None) -> None:
    """``trainer.fit``; stopped by a signal, the run says where it saved and ends with a non-zero status."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from salvid.training.callbacks import Preemption

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        preemption = next((c for c in trainer.callbacks if isinstance(c, Preemption)), None)
        saved = preemption.saved if preemption else None
        status = preemption.exit_status if preemption else 128 + 15
        if trainer.is_global_zero:
            by = "Ctrl-C (SIGINT)" if status == 130 else "a signal"
            print(f"stopped by {by} at step {trainer.global_step}: "
                  + (f"saved {saved}; rerun the same command to resume" if saved else "no checkpoint saved"),
                  file=sys.stderr, flush=True)
        raise SystemExit(status) from None


def fit_and_test(cfg: DictConfig, output_dir: Path, resume_step: int = 0) -> float | None:
    import lightning as L

    from salvid.runtime import progress
    from salvid.training.checkpoint_plugin import AtomicCheckpointIO
    from salvid.training.loggers import ResumableCSVLogger
    from salvid.training.run_records import RunRecord

    progress.quiet()  # no library messages a user cannot act on
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.module, model=OmegaConf.to_container(cfg.model, resolve=True),
                                     _convert_="all")
    if cfg.get("init_weights") and cfg.ckpt_path:
        log.info("init_weights=%s not used: resuming from %s", cfg.init_weights, cfg.ckpt_path)
    elif cfg.get("init_weights"):
        _load_initial_weights(module, cfg.init_weights, cfg.get("trusted_checkpoint", False))
    record = RunRecord(OmegaConf.to_container(cfg.data, resolve=True))
    loggers = instantiate_all(cfg.get("logger"))
    for lg in loggers:
        if isinstance(lg, ResumableCSVLogger):
            lg.resume_step = resume_step
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=[*instantiate_all(cfg.get("callbacks")), record], logger=loggers or False
    )
    checkpoint_io = trainer.strategy.checkpoint_io
    if not isinstance(checkpoint_io, AtomicCheckpointIO):
        raise ConfigError(f"trainer.plugins: the checkpoint plugin is {type(checkpoint_io).__name__}; salvid "
                          "needs salvid.training.checkpoint_plugin.AtomicCheckpointIO, which reads checkpoints without "
                          "running code from them")
    checkpoint_io.trusted = bool(cfg.get("trusted_checkpoint", False))
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {}
    if cfg.get("test_untrained") and not cfg.ckpt_path:
        untrained = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        record.untrained = {k: float(v) for k, v in untrained.items()}
    _fit(trainer, module, datamodule, cfg.ckpt_path)
    if record.untrained is not None:  # this segment's, or the first segment's from the checkpoint
        # before training: an untrained network, or the weights fine-tuning started from
        results["initial" if cfg.get("init_weights") else "untrained"] = record.untrained
    if cfg.get("init_weights"):
        results["initial_weights"] = str(cfg.init_weights)
    # what a model card needs (salvid.export reads it): how long (all segments), how many steps, on what
    results["run"] = {"fit_wall_time_s": round(record.fit_seconds(), 1), "segments": record.segments,
                      "steps": trainer.global_step, "epochs": trainer.current_epoch,
                      "precision": record.precision(),
                      "hardware": hardware_description()}
    # which sequences trained, selected and tested: how a model card shows that the test ones were kept out
    results["data"] = datamodule.split_record()
    results["val"] = record.val or {k: float(v) for k, v in trainer.callback_metrics.items()
                                    if k.startswith("val/")}

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    results["test"] = {}  # test=false: none (an empty "test" still marks the run finished)
    if cfg.get("test", True):
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)[0]
        results["test"] = {k: float(v) for k, v in tested.items()}
    results["checkpoint"] = best or None

    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", results)
        _print_summary(results, output_dir)
    return sweep.metric_value(results, cfg.get("optimized_metric") or "")


def _print_summary(results: dict[str, Any], output_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    if not results["test"]:
        print(f"no test stage (test=false); metrics: {output_dir / 'metrics.json'}", flush=True)
        return
    table = Table(title="Test metrics")
    table.add_column("metric")
    columns = [k for k in ("untrained", "initial", "test") if k in results]
    labels = {"test": "trained", "untrained": "untrained", "initial": f"initial ({results.get('initial_weights')})"}
    for c in columns:
        table.add_column(labels[c], justify="right", overflow="fold")  # a long checkpoint path, whole
    for name in results["test"]:
        table.add_row(name, *(f"{results[c].get(name, float('nan')):.4f}" for c in columns))
    console = Console()
    console.print(table)
    console.print(f"metrics: {output_dir / 'metrics.json'}")
