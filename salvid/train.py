"""Train, then test: ``python -m salvid.train [+experiment=NAME] [overrides]``.

Writes ``<output_dir>/checkpoints/{last,best}.ckpt`` and, once the run has finished, ``metrics.json``
(its absence marks an incomplete run). Returns ``cfg.optimized_metric`` for sweepers. Rerunning with
``hydra.run.dir=<a run's directory>`` resumes that run (see :mod:`salvid.resume`); under DDP all ranks share
rank 0's config and output directory (see :mod:`salvid.ddp`).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from salvid import sweep
from salvid.io import atomic_write_json
from salvid.runtime import CONF_DIR, cap_cpu_isa_for_training, hardware_description, wandb_mode

# torch and Lightning are imported only once the config is known: the oneDNN ISA cap that the paper's 3D
# network needs for bf16 CPU training must be set before torch loads, and only when it is needed.

log = logging.getLogger(__name__)

sweep.register_resolvers()


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def train(cfg: DictConfig) -> float | None:
    cap_cpu_isa_for_training(cfg.model)
    from salvid import ddp, resume

    output_dir = Path(cfg.paths.output_dir)
    cfg.ckpt_path = resume.checkpoint_to_resume(cfg.get("ckpt_path"), output_dir)
    if cfg.get("logger") and "wandb" in cfg.logger:
        wandb_mode()
        if cfg.logger.wandb.get("id") is None:
            cfg.logger.wandb.id = resume.wandb_run_id(output_dir)
    try:
        with ddp.shared_with_ranks(cfg):
            return _fit_and_test(cfg, output_dir)
    finally:
        _finish_wandb_run()


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


def _finish_wandb_run() -> None:
    """Close this job's W&B run: Lightning leaves it open, and the next job of a multirun in this process
    would otherwise log into it."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


def _fit_and_test(cfg: DictConfig, output_dir: Path) -> float | None:
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.module, model=OmegaConf.to_container(cfg.model, resolve=True),
                                     _convert_="all")
    if cfg.get("init_weights") and cfg.ckpt_path:
        log.info("init_weights=%s not used: resuming from %s", cfg.init_weights, cfg.ckpt_path)
    elif cfg.get("init_weights"):
        _load_initial_weights(module, cfg.init_weights, cfg.get("trusted_checkpoint", False))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=instantiate_all(cfg.get("callbacks")), logger=instantiate_all(cfg.get("logger"))
        or False
    )
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {}
    if cfg.get("test_untrained") and not cfg.ckpt_path:
        untrained = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        results["untrained"] = {k: float(v) for k, v in untrained.items()}
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    # what a model card needs (salvid.export reads it): how long, how many steps, on what
    results["run"] = {"fit_wall_time_s": round(time.perf_counter() - started, 1), "steps": trainer.global_step,
                      "epochs": trainer.current_epoch, "hardware": hardware_description()}
    results["val"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

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
    return train(cfg)


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
