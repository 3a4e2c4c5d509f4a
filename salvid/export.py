"""Turn a training checkpoint into a pretrained model that ships:
``python -m salvid.export ckpt_path=<run>/checkpoints/<best>.ckpt name=<name> [metrics=<summary.json>]``.

Writes ``<name>.safetensors`` (weights only) and ``<name>.json``: the model config ``load_network`` rebuilds
the network from, and a model card: the training config, steps, epochs, wall time and hardware (from the run's
``metrics.json`` written by ``salvid.train``), the checkpoint's own validation score, and, when given, an
``evaluate`` summary of held-out sequences (the network's and the baselines' metrics).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig

import salvid  # noqa: F401  (sets process environment before torch loads)
from salvid.checkpoints import PRETRAINED_DIR, CheckpointError, load_network, read_checkpoint, save_pretrained
from salvid.cli import entry_point, one_line_errors, require_positive
from salvid.io import safe_name
from salvid.runtime import CONF_DIR

log = logging.getLogger(__name__)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file: {e}") from e


def _without_machine_paths(config: dict[str, Any]) -> dict[str, Any]:
    """A training config fit to publish: where the run and its data lay on the training machine is dropped,
    and the dataset is named by its folder's name."""
    config.pop("paths", None)
    data = config.get("data") or {}
    if data.get("root"):
        data["root"] = Path(str(data["root"])).name
    return config


def model_card(ckpt_path: Path, trusted: bool, metrics: str | None, hardware: str | None) -> dict[str, Any]:
    """How the checkpoint was trained, from the checkpoint and the files its training run left beside it."""
    ckpt = read_checkpoint(ckpt_path, trusted)
    run_dir = ckpt_path.resolve().parent.parent  # <run>/checkpoints/<file>.ckpt
    hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if k != "model"}
    card: dict[str, Any] = {"source_checkpoint": ckpt_path.name, "module": hparams,
                            "steps": ckpt.get("global_step"), "epochs": ckpt.get("epoch")}
    for state_key, state in ckpt.get("callbacks", {}).items():
        if state_key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            card["selection"] = {"monitor": state.get("monitor"), "best_score": float(state["best_model_score"])}
    run_config = run_dir / ".hydra" / "config.yaml"
    if run_config.is_file():
        card["train_config"] = _without_machine_paths(yaml.safe_load(run_config.read_text(encoding="utf-8")))
    run_metrics = run_dir / "metrics.json"
    if run_metrics.is_file():
        recorded = _read_json(run_metrics)
        card["run"] = recorded.get("run", {})
        card["train_test_metrics"] = recorded.get("test")
    if hardware:
        card.setdefault("run", {})["hardware"] = hardware
    if metrics:
        card["heldout_metrics"] = _read_json(Path(metrics))
    return card


def export(cfg: DictConfig) -> Path:
    ckpt_path = Path(cfg.ckpt_path)
    if not str(ckpt_path).endswith(".ckpt"):
        raise CheckpointError(f"ckpt_path={ckpt_path}: export takes a Lightning .ckpt from salvid.train")
    net, config = load_network(ckpt_path, trusted=cfg.trusted_checkpoint)
    card = model_card(ckpt_path, cfg.trusted_checkpoint, cfg.metrics, cfg.hardware)
    name = safe_name(cfg.name)
    target = Path(cfg.output_dir or PRETRAINED_DIR) / f"{name}.safetensors"
    save_pretrained(net, config, target, {"name": name, **card})
    megabytes = target.stat().st_size / 1e6
    if megabytes > cfg.max_megabytes:
        target.unlink()
        target.with_suffix(".json").unlink()
        raise ValueError(f"{target}: {megabytes:.1f} MB exceeds max_megabytes={cfg.max_megabytes}; removed. "
                         "Export a smaller model configuration")
    log.info("%s: %.1f MB (%d steps); load with load_network(%r)", target, megabytes, card["steps"] or 0, name)
    return target


@entry_point
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        require_positive("max_megabytes", cfg.max_megabytes)
        export(cfg)


if __name__ == "__main__":
    main()
