"""Turn a training checkpoint into a model that ``predict``, ``evaluate`` and ``salvid.load`` load by name:
``python -m salvid.export ckpt_path=<run>/checkpoints/<best>.ckpt name=<name> [metrics=<summary.json>]``.

Writes ``<name>.safetensors`` (weights only) and ``<name>.json``: the model config ``load_network`` rebuilds
the network from, and a model card: the training config, steps, epochs, wall time and hardware (from the run's
``metrics.json`` written by ``salvid.train``), the checkpoint's own validation score, and, when given, an
``evaluate`` summary of held-out sequences (the network's and the baselines' metrics).

They go into ``output_dir``, by default the user's models folder ``<cache>/models/`` (``$SALVID_CACHE``, else
``$XDG_CACHE_HOME/salvid``, else ``~/.cache/salvid``), where a bare ``name`` finds them. Export never writes
into the installed package: an ``output_dir`` inside it is refused, and so is the name of a shipped model
(whatever ``output_dir``), so the shipped models and the default one cannot be replaced or lost. Both are
checked before anything is written. The files are written under temporary names in ``output_dir`` and moved
into place only after the size check passes: a failed export leaves the folder as it was. An earlier export
of the same name is replaced only with ``overwrite=true``.

With ``format=onnx`` it also writes ``<name>-onnx/``: the network as ONNX graphs (fp32, opset 18, the batch
dimension dynamic) for ONNX Runtime or any other ONNX runtime, and their ``manifest.json`` (file names, input and
output names, SHA-256 sums); the model card lists them under ``onnx``. A network that encodes frames one by one
(``fusion3d``) gets ``encoder.onnx`` (normalised frames ``(M, 3, H, W)`` to their feature pyramid) and
``decoder.onnx`` (per-level clip features ``(N, T, C, h, w)`` to logits); others get ``network.onnx`` (clips
``(N, 3, T, H, W)`` to logits). Maps are the sigmoid of the logits (``output_activation`` of the model config).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig

from salvid.checkpoints import (
    PACKAGE_DIR,
    PRETRAINED_DIR,
    is_shipped_name,
    load_network,
    save_pretrained,
    user_models_dir,
)
from salvid.errors import CheckpointError, ConfigError, UnsafeOutputError
from salvid.inference.onnx_backend import graph_key, onnxruntime_available, write_graphs
from salvid.runtime.configs import CONF_DIR
from salvid.runtime.entry import entry_point, one_line_errors
from salvid.runtime.files import safe_name
from salvid.runtime.schema import ExportConfig, validate
from salvid.training.model_card import model_card

log = logging.getLogger(__name__)

def output_folder(output_dir: str | None) -> Path:
    """Where the files go: ``output_dir``, or the user's models folder; never inside the installed package."""
    folder = Path(output_dir).expanduser() if output_dir else user_models_dir()
    resolved = folder.resolve()
    for package in (PACKAGE_DIR, PRETRAINED_DIR.resolve()):
        if not resolved.is_relative_to(package):
            continue
        if not output_dir:
            raise UnsafeOutputError(f"output_dir=null: the user's models folder {folder} is inside the installed "
                                    f"salvid package ({package}), which export never writes into; set SALVID_CACHE "
                                    "to a folder outside it, or pass output_dir=<folder>")
        raise UnsafeOutputError(f"output_dir={folder}: inside the installed salvid package ({package}), which "
                                "export never writes into; leave output_dir unset for the user's models folder "
                                f"({user_models_dir()}) or name a folder outside the package")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output_dir={folder}: a file, not a folder; name a folder for the exported model")
    return folder


def check_name(given: str, name: str) -> None:
    if is_shipped_name(name):
        raise ConfigError(f"name={given}: {name!r} is a shipped model, and export never replaces one; choose "
                          "another name for yours")


def present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def refuse_earlier_export(files: list[Path], overwrite: bool) -> None:
    existing = [p for p in files if present(p)]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]}: an earlier export of this name is there; pass overwrite=true to replace "
                          "it, or choose another name")


def export(cfg: DictConfig) -> Path:
    ckpt_path = Path(cfg.ckpt_path)
    if cfg.format == "onnx" and not onnxruntime_available():
        raise ConfigError("format=onnx: onnx and onnxruntime are not installed; pip install onnx onnxruntime, or "
                          "set format=safetensors")
    if not str(ckpt_path).endswith(".ckpt"):
        raise CheckpointError(f"ckpt_path={ckpt_path}: export takes a Lightning .ckpt from salvid.train")
    name = safe_name(cfg.name)
    check_name(cfg.name, name)
    folder = output_folder(cfg.output_dir)
    target, card_file, onnx_dir = (folder / f"{name}.safetensors", folder / f"{name}.json", folder / f"{name}-onnx")
    # an earlier export's ONNX folder counts too: left beside a card that does not list it, it would pass for
    # the new model's graphs
    refuse_earlier_export([target, card_file, onnx_dir], cfg.overwrite)
    net, config = load_network(ckpt_path, trusted=cfg.trusted_checkpoint)
    card = model_card(ckpt_path, cfg.trusted_checkpoint, cfg.metrics, cfg.hardware, cfg.cross_validation)
    folder.mkdir(parents=True, exist_ok=True)
    # written here first, moved into place once complete and small enough: a failure leaves the folder as it was
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".export", dir=folder))
    try:
        if cfg.format == "onnx":
            manifest = write_graphs(net, staging / onnx_dir.name, {"key": graph_key(net, config), "name": name})
            card["onnx"] = {"folder": onnx_dir.name, **manifest}
        save_pretrained(net, config, staging / target.name, {"name": name, **card}, half=cfg.weights == "float16")
        megabytes = (staging / target.name).stat().st_size / 1e6
        if megabytes > cfg.max_megabytes:
            raise ConfigError(f"{target}: {megabytes:.1f} MB exceeds max_megabytes={cfg.max_megabytes}; nothing "
                              "written. Export a smaller model configuration")
        refuse_earlier_export([target, card_file, onnx_dir], cfg.overwrite)  # one may have appeared meanwhile
        if present(onnx_dir):
            os.replace(onnx_dir, staging / ".earlier-onnx")  # a folder cannot replace a folder; removed below
        for path in (onnx_dir, target, card_file):  # the card last: it names what is there
            if present(staging / path.name):
                os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if cfg.format == "onnx":
        log.info("%s: ONNX graphs %s", onnx_dir, ", ".join(card["onnx"]["files"]))
    spec = name if folder.resolve() == user_models_dir().resolve() else str(target)
    log.info("%s: %.1f MB (%d steps); load with ckpt_path=%s or salvid.load(%r)", target, megabytes,
             card["steps"] or 0, spec, spec)
    return target


@entry_point
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        validate(ExportConfig, cfg)
        export(cfg)


if __name__ == "__main__":
    main()
