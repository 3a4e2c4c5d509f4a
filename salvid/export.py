"""Turn a training checkpoint into a pretrained model that ships:
``python -m salvid.export ckpt_path=<run>/checkpoints/<best>.ckpt name=<name> [metrics=<summary.json>]``.

Writes ``<name>.safetensors`` (weights only) and ``<name>.json``: the model config ``load_network`` rebuilds
the network from, and a model card: the training config, steps, epochs, wall time and hardware (from the run's
``metrics.json`` written by ``salvid.train``), the checkpoint's own validation score, and, when given, an
``evaluate`` summary of held-out sequences (the network's and the baselines' metrics).

With ``format=onnx`` it also writes ``<name>-onnx/``: the network as ONNX graphs (fp32, opset 18, the batch
dimension dynamic) for ONNX Runtime or any other ONNX runtime, and their ``manifest.json`` (file names, input and
output names, SHA-256 sums); the model card lists them under ``onnx``. A network that encodes frames one by one
(``fusion3d``) gets ``encoder.onnx`` (normalised frames ``(M, 3, H, W)`` to their feature pyramid) and
``decoder.onnx`` (per-level clip features ``(N, T, C, h, w)`` to logits); others get ``network.onnx`` (clips
``(N, 3, T, H, W)`` to logits). Maps are the sigmoid of the logits (``output_activation`` of the model config).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig

from salvid.checkpoints import PRETRAINED_DIR, load_network, save_pretrained
from salvid.errors import CheckpointError, ConfigError
from salvid.inference.onnx_backend import graph_key, onnxruntime_available, write_graphs
from salvid.runtime.checks import require_positive
from salvid.runtime.configs import CONF_DIR
from salvid.runtime.entry import entry_point, one_line_errors
from salvid.runtime.files import safe_name
from salvid.training.model_card import model_card

log = logging.getLogger(__name__)

FORMATS = ("safetensors", "onnx")


def export(cfg: DictConfig) -> Path:
    ckpt_path = Path(cfg.ckpt_path)
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format!r}: must be one of {', '.join(FORMATS)}")
    if cfg.format == "onnx" and not onnxruntime_available():
        raise ConfigError("format=onnx: onnx and onnxruntime are not installed; pip install onnx onnxruntime, or "
                          "set format=safetensors")
    if not str(ckpt_path).endswith(".ckpt"):
        raise CheckpointError(f"ckpt_path={ckpt_path}: export takes a Lightning .ckpt from salvid.train")
    net, config = load_network(ckpt_path, trusted=cfg.trusted_checkpoint)
    card = model_card(ckpt_path, cfg.trusted_checkpoint, cfg.metrics, cfg.hardware)
    name = safe_name(cfg.name)
    target = Path(cfg.output_dir or PRETRAINED_DIR) / f"{name}.safetensors"
    onnx_dir = target.with_name(f"{name}-onnx")
    if cfg.format == "onnx":
        manifest = write_graphs(net, onnx_dir, {"key": graph_key(net, config), "name": name})
        card["onnx"] = {"folder": onnx_dir.name, **manifest}
        log.info("%s: ONNX graphs %s", onnx_dir, ", ".join(manifest["files"]))
    save_pretrained(net, config, target, {"name": name, **card})
    megabytes = target.stat().st_size / 1e6
    if megabytes > cfg.max_megabytes:
        target.unlink()
        target.with_suffix(".json").unlink()
        if cfg.format == "onnx":
            shutil.rmtree(onnx_dir)
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
