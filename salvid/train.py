"""Train, then test: ``python -m salvid.train [+experiment=NAME] [overrides]``.

Writes ``<output_dir>/checkpoints/{last,best}.ckpt`` and, once the run has finished, ``metrics.json``
(its absence marks an incomplete run). Returns ``cfg.optimized_metric`` for sweepers. Rerunning with
``hydra.run.dir=<a run's directory>`` resumes that run with all its records (see :mod:`salvid.resume`), after
checking that the checkpoint was trained with the same model, module and data config (see
:mod:`salvid.rundir`). Rerunning a finished run (it has ``metrics.json``) changes nothing: it says so and
returns the recorded metric. Under DDP all ranks share rank 0's config and output directory (see
:mod:`salvid.ddp`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from salvid import sweep
from salvid.cli import ConfigError, entry_point, one_line_errors, require_int, require_positive
from salvid.instantiate import finish_wandb_run, instantiate_all
from salvid.io import atomic_write_json
from salvid.runtime import CONF_DIR, cap_cpu_isa_for_training, hardware_description, wandb_mode

# torch and Lightning are imported only once the config is known: the oneDNN ISA cap that the paper's 3D
# network needs for bf16 CPU training must be set before torch loads, and only when it is needed.

log = logging.getLogger(__name__)

sweep.register_resolvers()


def train(cfg: DictConfig) -> float | None:
    cap_cpu_isa_for_training(cfg.model)
    from salvid import ddp, resume, rundir

    sweep.use_job_output_dir(cfg)
    check_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    finished = rundir.finished_run(output_dir)
    if finished is not None:
        log.warning("%s: this run has finished (its metrics.json exists); nothing was changed. For a new run "
                    "choose another hydra.run.dir", output_dir)
        return sweep.metric_value(finished, cfg.get("optimized_metric") or "")
    start = rundir.plan_resume(cfg, output_dir)
    cfg.ckpt_path = start.ckpt_path
    if start.ckpt_path:
        log.info("Resuming from %s (step %d)", start.ckpt_path, start.step)
    if cfg.get("logger") and "wandb" in cfg.logger:
        wandb_mode()
        if cfg.logger.wandb.get("id") is None:
            cfg.logger.wandb.id = resume.wandb_run_id(output_dir)
    try:
        with ddp.shared_with_ranks(cfg):
            return _fit_and_test(cfg, output_dir, start.step)
    finally:
        finish_wandb_run()


def check_config(cfg: DictConfig) -> None:
    """Refuse values that make no sense before any work starts, naming the key."""
    from salvid.checkpoints import model_value_problems

    data = cfg.data
    require_int("data.batch_size", data.get("batch_size"), 1)
    require_int("data.num_workers", data.get("num_workers", 0), 0)
    if "chunk_len" in data:
        require_int("data.chunk_len", data.chunk_len, 1)
    optimizer = cfg.module.optimizer
    require_positive("module.optimizer.lr", optimizer.get("lr"))
    if optimizer.get("backbone_lr") is not None:
        require_positive("module.optimizer.backbone_lr", optimizer.backbone_lr)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    problems = model_value_problems(model)
    if problems:
        raise ConfigError("; ".join(f"model.{p}" for p in problems))
    if model.get("family", "paper") == "paper" and "pool_strides" in model:
        # the network judges the other lists by pool_strides; when they agree with each other, the strides
        # are the odd one out and the message should say so
        others = {k: len(model[k]) for k in ("widths", "convs_per_block", "decoder_widths", "deconvs_per_group")
                  if k in model}
        if len(set(others.values())) == 1 and len(model["pool_strides"]) not in others.values():
            n = next(iter(others.values()))
            raise ConfigError(f"model.pool_strides has {len(model['pool_strides'])} strides, but model."
                              f"{', model.'.join(others)} have {n} entries: give one [d, k, k] stride per encoder "
                              "block (or choose a preset, e.g. pool_strides=paper)")


def _load_initial_weights(module, spec: str, trusted: bool) -> None:
    """Start from a pretrained network (fine-tuning): its config must equal the model being trained."""
    from salvid.checkpoints import CheckpointError, load_network

    net, config = load_network(spec, trusted=trusted)
    if config != module.hparams.model:
        differ = sorted(k for k in set(config) | set(module.hparams.model)
                        if config.get(k) != module.hparams.model.get(k))
        raise CheckpointError(f"init_weights={spec}: its model config differs from model.* in {differ}")
    module.net.load_state_dict(net.state_dict())
    log.info("initial weights from %s", spec)


def _fit_and_test(cfg: DictConfig, output_dir: Path, resume_step: int = 0) -> float | None:
    import lightning as L

    from salvid import progress
    from salvid.checkpoint_io import AtomicCheckpointIO
    from salvid.resume import ResumableCSVLogger, RunRecord

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
                          "needs salvid.checkpoint_io.AtomicCheckpointIO, which reads checkpoints without "
                          "running code from them")
    checkpoint_io.trusted = bool(cfg.get("trusted_checkpoint", False))
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {}
    if cfg.get("test_untrained") and not cfg.ckpt_path:
        untrained = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        record.untrained = {k: float(v) for k, v in untrained.items()}
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    if record.untrained is not None:  # this segment's, or the first segment's from the checkpoint
        results["untrained"] = record.untrained
    # what a model card needs (salvid.export reads it): how long (all segments), how many steps, on what
    results["run"] = {"fit_wall_time_s": round(record.fit_seconds(), 1), "segments": record.segments,
                      "steps": trainer.global_step, "epochs": trainer.current_epoch,
                      "hardware": hardware_description()}
    results["val"] = record.val or {k: float(v) for k, v in trainer.callback_metrics.items()
                                    if k.startswith("val/")}

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
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

    table = Table(title="Test metrics")
    table.add_column("metric")
    columns = [k for k in ("untrained", "test") if k in results]
    for c in columns:
        table.add_column("trained" if c == "test" else c, justify="right")
    for name in results["test"]:
        table.add_row(name, *(f"{results[c].get(name, float('nan')):.4f}" for c in columns))
    console = Console()
    console.print(table)
    console.print(f"metrics: {output_dir / 'metrics.json'}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    with one_line_errors():
        return train(cfg)


@entry_point
def main() -> float | None:
    """Entry point. In a DDP rank that Lightning's launcher started, run rank 0's config without Hydra."""
    from salvid import ddp

    cfg = ddp.launched_config()
    if cfg is None:
        return _hydra_main()
    cap_cpu_isa_for_training(cfg.model)
    return _fit_and_test(cfg, Path(cfg.paths.output_dir))


if __name__ == "__main__":
    main()
