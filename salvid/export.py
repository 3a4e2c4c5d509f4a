"""Turn a training checkpoint into a pretrained model that ships:
``python -m salvid.export ckpt_path=<run>/checkpoints/<best>.ckpt name=<name> [metrics=<summary.json>]``.

Writes ``<name>.safetensors`` (weights only) and ``<name>.json``: the model config ``load_network`` rebuilds
the network from, and a model card: the training config, steps, epochs, wall time and hardware (from the run's
``metrics.json`` written by ``salvid.train``), the checkpoint's own validation score, and, when given, an
``evaluate`` summary of held-out sequences (the network's and the baselines' metrics).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from salvid.checkpoints import PRETRAINED_DIR, load_network, save_pretrained
from salvid.errors import CheckpointError, ConfigError
from salvid.runtime.checks import require_positive
from salvid.runtime.configs import CONF_DIR
from salvid.runtime.entry import entry_point, one_line_errors
from salvid.runtime.files import safe_name
from salvid.training.model_card import model_card

log = logging.getLogger(__name__)


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
        raise ConfigError(f"{target}: {megabytes:.1f} MB exceeds max_megabytes={cfg.max_megabytes}; removed. "
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
