"""The one place salvid loads weights: Lightning checkpoints, safetensors files, pretrained names.

Nothing here unpickles arbitrary objects: ``.ckpt`` files go through ``torch.load(weights_only=True)``
(refused with a clear message when they need other globals, unless ``trusted=True`` is passed explicitly),
and the network configuration read from any file is checked against the allow-listed families of
:mod:`salvid.models` and their arguments before it is used, so a ``_target_`` or unknown key can never pick
what gets built.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from salvid.models import FAMILIES, build_network, network_arguments

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_PRETRAINED = "salvid-fusion3d-davis"


class CheckpointError(ValueError):
    """A weights file cannot be used; the message names the file and why."""


def validate_model_config(config: Any, source: str | Path) -> dict[str, Any]:
    """Check a network configuration from a file against the network's own arguments."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: model config must be a mapping, got {type(config).__name__}")
    if "_target_" in config:
        raise CheckpointError(f"{source}: model config names _target_={config['_target_']!r}; salvid builds only "
                              "its own networks and never instantiates targets from files")
    if config.get("family", "paper") not in FAMILIES:
        raise CheckpointError(f"{source}: model family {config['family']!r} is not one of salvid's "
                              f"{sorted(FAMILIES)}")
    allowed = network_arguments(config)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise CheckpointError(f"{source}: unknown model config keys {unknown} (known: {sorted(allowed)})")
    for key, value in config.items():
        if not isinstance(value, (int, float, str, bool, list, tuple)):
            raise CheckpointError(f"{source}: model config {key} has type {type(value).__name__}, expected plain data")
    return dict(config)


def read_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Load a Lightning ``.ckpt`` without executing code from it (unless ``trusted``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: loading it would run code or build objects beyond tensors and plain data "
            f"({_unpickler_reason(e)}). If you trust its author, pass trusted_checkpoint=true."
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {e}") from e


def _unpickler_reason(error: Exception) -> str:
    """The one informative line of torch's long weights_only message."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    return next((line.strip() for line in text.splitlines() if line.strip()), "unsupported pickle content")


def load_network(spec: str | Path | None = None, trusted: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network from a pretrained name, a ``.safetensors`` file (config in the sibling ``.json``) or a
    Lightning ``.ckpt``. Returns the network in eval mode and its configuration."""
    spec = spec or DEFAULT_PRETRAINED
    path = Path(spec)
    if not path.exists() and (PRETRAINED_DIR / f"{spec}.safetensors").is_file():
        path = PRETRAINED_DIR / f"{spec}.safetensors"
    if path.suffix == ".safetensors":
        return _from_safetensors(path)
    if path.suffix == ".ckpt" or path.is_file():
        return _from_lightning(path, trusted)
    names = sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
    if spec == DEFAULT_PRETRAINED:
        raise CheckpointError(
            f"the default pretrained model {DEFAULT_PRETRAINED!r} is not in this installation ({PRETRAINED_DIR} "
            f"holds {names or 'none'}): pass ckpt_path=<.ckpt or .safetensors file>, or train and export one "
            "(python -m salvid.train +experiment=pretrain_davis, then python -m salvid.export)"
        )
    raise CheckpointError(f"{spec}: no such file, and not a pretrained name (available: {names})")


def _build(config: dict[str, Any], state: dict[str, torch.Tensor], source: Path) -> nn.Module:
    # the file holds every weight: a pretrained backbone is not fetched again
    build = {**config, "pretrained": "none"} if "pretrained" in network_arguments(config) else config
    try:
        net = build_network(build)
    except ValueError as e:
        raise CheckpointError(f"{source}: its model config is invalid: {e}") from e
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: weights do not fit the model config stored with them: {e}") from e
    return net.eval()


def _from_safetensors(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    config_path = path.with_suffix(".json")
    if not config_path.is_file():
        raise CheckpointError(f"{path}: model config {config_path} is missing")
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON: {e}") from e
    config = validate_model_config(meta.get("model"), config_path)
    try:
        state = load_file(path)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from e
    return _build(config, state, path), config


def _from_lightning(path: Path, trusted: bool) -> tuple[nn.Module, dict[str, Any]]:
    ckpt = read_checkpoint(path, trusted)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "model" not in hparams:
        raise CheckpointError(f"{path}: no salvid model config in hyper_parameters (not a salvid checkpoint?)")
    config = validate_model_config(dict(hparams["model"]), path)
    state = {k.removeprefix("net."): v for k, v in ckpt.get("state_dict", {}).items() if k.startswith("net.")}
    return _build(config, state, path), config


def save_pretrained(net: nn.Module, config: dict[str, Any], path: str | Path, card: dict[str, Any],
                    half: bool = False) -> None:
    """Write ``<path>.safetensors`` + ``<path>.json`` (model config and how it was trained).

    ``half`` stores floating-point weights as float16 (half the size; loading casts them back to float32).
    """
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path))
    path.with_suffix(".json").write_text(json.dumps({"model": config, **card}, indent=2) + "\n", encoding="utf-8")
