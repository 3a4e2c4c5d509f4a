"""Train, then test: ``python -m salvid.train [+experiment=NAME] [overrides]``.

Writes ``<output_dir>/checkpoints/{last,best}.ckpt`` and, once the run has finished, ``metrics.json``
(its absence marks an incomplete run). Returns ``cfg.optimized_metric`` for sweepers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from salvid.runtime import cap_cpu_isa_for_training, wandb_mode

cap_cpu_isa_for_training()  # before lightning imports torch

import hydra  # noqa: E402
import lightning as L  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from salvid.io import atomic_write_json  # noqa: E402

log = logging.getLogger(__name__)


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def train(cfg: DictConfig) -> float | None:
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("logger") and "wandb" in cfg.logger:
        wandb_mode()

    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.module, model=OmegaConf.to_container(cfg.model, resolve=True),
                                     _convert_="all")
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=instantiate_all(cfg.get("callbacks")), logger=instantiate_all(cfg.get("logger"))
        or False
    )
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {}
    if cfg.get("test_untrained"):
        untrained = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        results["untrained"] = {k: float(v) for k, v in untrained.items()}
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)[0]
    results["test"] = {k: float(v) for k, v in tested.items()}
    results["checkpoint"] = best or None

    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", results)
        _print_summary(results, output_dir)
    return results["test"].get(cfg.get("optimized_metric") or "", None)


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


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
