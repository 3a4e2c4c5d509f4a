"""The one place salvid loads weights: Lightning checkpoints, safetensors files, pretrained names.

Nothing here unpickles arbitrary objects: ``.ckpt`` files go through ``torch.load(weights_only=True)``
(refused with a clear message when they need other globals, unless ``trusted=True`` is passed explicitly),
and the network configuration read from any file is checked against the allow-listed families of
:mod:`salvid.models` and their arguments before it is used, so a ``_target_`` or unknown key can never pick
what gets built. Training reads its resume checkpoints here too (:mod:`salvid.training.checkpoint_plugin`).

A checkpoint may be an ``http(s)://`` URL: it is downloaded to ``<cache>/checkpoints/`` (``$SALVID_CACHE``,
else ``$XDG_CACHE_HOME/salvid``, else ``~/.cache/salvid``) and then read like a local file. Other remote
schemes (``s3://``, ...) are refused: copy the file first.

A bare model name is a shipped model (``salvid/pretrained/<name>.safetensors``) or, for any other name, one
that ``salvid.export`` wrote into the user's models folder ``<cache>/models/``. Shipped names always mean the
shipped files: a user file of that name is never read in their place.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import torch
from safetensors.torch import load_file, save
from torch import nn

from salvid.errors import CheckpointError
from salvid.models.config import validate_model_config
from salvid.models.families import build_network, network_arguments
from salvid.runtime.files import atomic_open, atomic_write_text, safe_name, user_cache

PACKAGE_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_PRETRAINED = "salvid-fusion3d-fast-davis-duts"


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_remote(spec: str | Path) -> bool:
    """Whether ``spec`` is a URL (``scheme://...``) rather than a local path."""
    return bool(_SCHEME.match(str(spec)))


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept."""
    return user_cache() / "checkpoints"


def user_models_dir() -> Path:
    """Where ``salvid.export`` writes models by default and where bare names not shipped are looked up:
    ``<cache>/models/``, beside the downloaded checkpoints, per user like the torch hub and Hugging Face caches."""
    return user_cache() / "models"


def shipped_names() -> list[str]:
    """The models that ship in the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))


def is_shipped_name(name: str) -> bool:
    """Whether ``name`` is reserved for a shipped model: one in the package, or the default model (which a
    checkout may not hold yet). Case is ignored, so no name differs from a shipped one only in case."""
    return name.casefold() in {n.casefold() for n in (DEFAULT_PRETRAINED, *shipped_names())}


def exported_names() -> list[str]:
    """The models in :func:`user_models_dir` that a bare name loads."""
    return sorted(p.stem for p in user_models_dir().glob("*.safetensors") if not is_shipped_name(p.stem))


def named_model(name: str) -> Path | None:
    """The weights file a bare model name stands for: the shipped model of that name, else (for a name no
    shipped model has) one exported into :func:`user_models_dir`; None when there is none."""
    if safe_name(name) != name:
        return None  # a path, not a name
    shipped = PRETRAINED_DIR / f"{name}.safetensors"
    if shipped.is_file():
        return shipped
    if is_shipped_name(name):
        return None
    exported = user_models_dir() / f"{name}.safetensors"
    return exported if exported.is_file() else None


def local_copy(spec: str | Path) -> Path:
    """The local file behind a checkpoint spec: a path as given, or an ``http(s)`` URL downloaded once into
    :func:`cache_dir` (a later call with the same URL reuses the file). Nothing is loaded here."""
    if not is_remote(spec):
        return Path(spec)
    url = str(spec)
    scheme = _SCHEME.match(url).group(1).lower()
    if scheme not in ("http", "https"):
        raise CheckpointError(f"{url}: salvid reads checkpoints from local files and http(s) URLs only, not "
                              f"{scheme}://; copy the file to this machine and pass its path")
    from salvid.data.acquire.download import DownloadError, download

    name = safe_name(PurePosixPath(urlparse(url).path).name or "checkpoint")
    # one folder per URL minus its suffix, so that x.safetensors and its model config x.json sit together
    folder = hashlib.sha256(url.rsplit(".", 1)[0].encode("utf-8")).hexdigest()[:16]
    dest = cache_dir() / folder / name
    try:
        return download(url, dest)
    except DownloadError as e:
        raise CheckpointError(f"{url}: cannot download the checkpoint ({e})") from e


def model_name(spec: str | Path | None) -> str:
    """What a network is called in tables and figures: a pretrained name as given (the default model's name
    for none), a weights file by its stem, a training checkpoint (``<run>/checkpoints/<file>.ckpt``) by its
    run's folder, a multirun job's (numbered ``<sweep>/<n>``) as ``<sweep>-<n>``."""
    if spec is None:
        return DEFAULT_PRETRAINED
    path = PurePosixPath(urlparse(str(spec)).path) if is_remote(spec) else Path(spec)
    if path.suffix == ".ckpt" and path.parent.name == "checkpoints" and path.parent.parent.name:
        run = path.parent.parent
        return f"{run.parent.name}-{run.name}" if run.name.isdigit() and run.parent.name else run.name
    return path.stem if path.suffix in (".ckpt", ".safetensors") else str(spec)


def read_checkpoint(path: str | Path, trusted: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning ``.ckpt`` (a path or an ``http(s)`` URL) without executing code from it (unless
    ``trusted``)."""
    label = str(path) if is_remote(path) else Path(path)
    path = local_copy(path)
    if not path.is_file():
        raise CheckpointError(f"{label}: checkpoint not found")
    kind = torch_save_format(path)
    if kind is None:  # checked first, so that not even a trusted load unpickles a file that is no checkpoint
        raise CheckpointError(f"{label}: not a checkpoint: {_CKPT_IS} (a Lightning .ckpt); this file is neither")
    try:
        with warnings.catch_warnings():
            # torch's note that a file uses a newer pickle protocol says nothing a user can act on
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if trusted or not _well_formed_pickle(path, kind):  # damage, not content: trusting it would not help
            raise CheckpointError(f"{label}: not a readable checkpoint (truncated or corrupt?): "
                                  f"{_unpickler_reason(e)}") from e
        raise CheckpointError(
            f"{label}: refused: loading it would run code or build objects beyond tensors and plain data "
            f"({_unpickler_reason(e)}). If you trust its author, pass trusted_checkpoint=true."
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as e:
        # KeyError, IndexError: torch's weights-only unpickler on a damaged pickle (a memo entry that is missing)
        raise CheckpointError(f"{label}: not a readable checkpoint (truncated or corrupt?): "
                              f"{_first_line(e)}") from e


_CKPT_IS = "a checkpoint is the zip archive or the pickle that torch.save writes"
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's legacy (non-zip) format


def torch_save_format(path: Path) -> str | None:
    """``"zip"`` or ``"pickle"`` when the file starts as ``torch.save`` writes (a zip archive with a ``data.pkl``;
    a pickle of protocol 2 or later, torch's legacy format or a plain ``pickle.dump``), else None: a text file, a
    video or a safetensors file is no checkpoint. Only the first bytes (and a zip's index) are read."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "zip"  # a truncated checkpoint: torch.load names the damage
        return "zip" if any(PurePosixPath(n).name == "data.pkl" for n in names) else None
    return "pickle" if len(head) >= 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= 5 else None


def _well_formed_pickle(path: Path, kind: str) -> bool:
    """Whether every pickle of the checkpoint parses, opcode by opcode, to its end (nothing is built): then
    torch's refusal is about what the file would build, which trusting its author lifts, not about damage."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if PurePosixPath(n).name == "data.pkl")
                with archive.open(name) as f:
                    _walk_pickle(f)
            return True
        with open(path, "rb") as f:
            first = _walk_pickle(f)
            if first == [("PROTO", 2), ("LONG1", _TORCH_MAGIC), ("STOP", None)]:
                for _ in range(4):  # the legacy format: then the version, system info, checkpoint, storage keys
                    _walk_pickle(f)
        return True
    except (ValueError, EOFError, OSError, StopIteration, zipfile.BadZipFile):
        return False


def _walk_pickle(f) -> list[tuple[str, Any]]:
    """The opcodes of one pickle, read up to its STOP (``pickletools.genops`` decodes, never builds)."""
    ops = []
    for op, arg, _ in pickletools.genops(f):
        if len(ops) < 4:
            ops.append((op.name, arg))
    return ops


def _first_line(error: Exception) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _unpickler_reason(error: Exception) -> str:
    """The one informative line of torch's long weights_only message."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    return next((line.strip() for line in text.splitlines() if line.strip()), "unsupported pickle content")


def load_network(spec: str | Path | None = None, trusted: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network from a model name (shipped, or exported: :func:`named_model`), a ``.safetensors`` file
    (config in the sibling ``.json``), a model folder (``config.json`` + ``model.safetensors``, as
    :func:`save_folder` writes and the Hugging Face hub hosts), a hub repository ``owner/name`` (with
    huggingface_hub, online) or a Lightning ``.ckpt``. Returns the network in eval mode and its configuration."""
    spec = spec or DEFAULT_PRETRAINED
    if is_remote(spec):
        if str(spec).endswith(".safetensors"):
            local_copy(str(spec)[: -len(".safetensors")] + ".json")  # the model config, beside the weights
        path = local_copy(spec)
        return _from_safetensors(path) if path.suffix == ".safetensors" else _from_lightning(path, trusted)
    path = Path(spec)
    if not path.exists():
        path = named_model(str(spec)) or path
    if not path.exists() and _HUB_REPO.match(str(spec)):
        path = hub_download(str(spec))
    if is_model_folder(path):
        return _from_safetensors(path / HUB_WEIGHTS, path / HUB_CONFIG)
    if path.suffix == ".safetensors":
        return _from_safetensors(path)
    if path.is_dir():
        missing = " and ".join(n for n in (HUB_CONFIG, HUB_WEIGHTS) if not (path / n).is_file())
        raise CheckpointError(f"{path}: a folder, but not a model folder: it lacks {missing}")
    if path.is_file() and torch_save_format(path) is None:
        sibling = path.with_suffix(".safetensors")
        hint = f"; for the model this card describes pass {sibling}" if path.suffix == ".json" and \
            sibling.is_file() else ""
        raise CheckpointError(f"{path}: not a checkpoint: {_LOADS}; this file is none of these{hint}")
    if path.suffix == ".ckpt" or path.is_file():
        return _from_lightning(path, trusted)
    names = shipped_names()
    if spec == DEFAULT_PRETRAINED:
        raise CheckpointError(
            f"the default pretrained model {DEFAULT_PRETRAINED!r} is not in this installation ({PRETRAINED_DIR} "
            f"holds {names or 'none'}): reinstall salvid (the default model ships inside the package), or pass "
            "ckpt_path=<.ckpt or .safetensors file> or the name of a model you exported (python -m salvid.export "
            "ckpt_path=<run>/checkpoints/last.ckpt name=<name>)"
        )
    raise CheckpointError(f"{spec}: no such file, and not a pretrained name (shipped: {names}; exported into "
                          f"{user_models_dir()}: {exported_names()})")


_LOADS = ("salvid loads a .ckpt as torch.save writes it (a zip archive or a pickle), a <name>.safetensors file "
          "with its <name>.json model card beside it, a model folder (config.json and model.safetensors) or a "
          "model name")


def _build(config: dict[str, Any], state: dict[str, torch.Tensor], source: Path) -> nn.Module:
    # the file holds every weight: a pretrained backbone is not fetched again
    build = {**config, "pretrained": "none"} if "pretrained" in network_arguments(config) else config
    try:
        net = build_network(build)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{source}: its model config is invalid: {e}") from e
    _check_weights(net, state, source)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: weights do not fit the model config stored with them: {e}") from e
    return net.eval()


def _check_weights(net: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Refuse weights that would load but draw garbage: an integer tensor where the network holds floats (int8
    weights give a constant map), or a NaN or infinite value (black maps)."""
    expected = net.state_dict()
    for key, tensor in state.items():
        if key not in expected or not expected[key].is_floating_point():
            continue  # unknown keys are load_state_dict's to name; counters stay integers
        if not tensor.is_floating_point():
            raise CheckpointError(f"{source}: weight {key} is {str(tensor.dtype).removeprefix('torch.')}, not "
                                  "floating point (a quantised or damaged file?); salvid loads float16/32/64 and "
                                  "bfloat16 weights")
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{source}: weight {key} holds {bad} NaN or infinite value(s): the file is damaged "
                                  "or the training run diverged; use an earlier checkpoint")


# A model card is a few kB of JSON a few levels deep: these bounds only stop a hostile one from costing
# memory, or a RecursionError in the JSON parser, before its content is checked.
MAX_CARD_BYTES = 1_000_000
MAX_CARD_DEPTH = 32


def read_card(path: Path) -> Any:
    """The JSON of a model card (``<name>.json`` or a model folder's ``config.json``), refused in one line naming
    the file when it is larger than :data:`MAX_CARD_BYTES` or nested deeper than :data:`MAX_CARD_DEPTH`."""
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise CheckpointError(f"{path}: {size} bytes, too large for a model card (at most {MAX_CARD_BYTES})")
    too_deep = CheckpointError(f"{path}: JSON nested deeper than a model card is (at most {MAX_CARD_DEPTH} levels)")
    try:
        card = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from e
    except RecursionError:  # the parser stops cleanly at the interpreter's recursion limit
        raise too_deep from None
    level = [card] if isinstance(card, (dict, list)) else []
    for _ in range(MAX_CARD_DEPTH):  # the containers one level further in, each round
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c) if isinstance(v, (dict, list))]
    if level:
        raise too_deep
    return card


def trained_sequences(spec: str | Path | None) -> set[str]:
    """The video sequences a local model's card says it trained or was selected on (``data_splits`` train and
    val, without their dataset prefix): a shipped or exported name, a ``.safetensors`` beside its card, or a
    model folder. Empty where there is no card or it records none (a ``.ckpt``, a remote model)."""
    spec = spec or DEFAULT_PRETRAINED
    if is_remote(spec):
        return set()
    path = Path(spec) if Path(spec).exists() else named_model(str(spec))
    if path is None:
        return set()
    card_path = path / HUB_CONFIG if is_model_folder(path) else path.with_suffix(".json")
    if path.suffix not in (".safetensors", "") or not card_path.is_file():
        return set()
    splits = (read_card(card_path) or {}).get("data_splits")
    seen: set[str] = set()
    for stage in ("train", "val"):
        videos = splits.get(stage, {}).get("videos", []) if isinstance(splits, dict) and isinstance(
            splits.get(stage), dict) else []
        seen |= {str(v).rsplit("/", 1)[-1] for v in videos if isinstance(v, str)}
    return seen


def _from_safetensors(path: Path, config_path: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    config_path = config_path or path.with_suffix(".json")
    if not config_path.is_file():
        raise CheckpointError(f"{path}: model config {config_path} is missing")
    meta = read_card(config_path)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object with a \"model\" entry")
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


# A model folder as the Hugging Face hub holds one: plain JSON (the model config and card) beside the weights.
HUB_CONFIG, HUB_WEIGHTS = "config.json", "model.safetensors"
_HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / HUB_CONFIG).is_file() and (path / HUB_WEIGHTS).is_file()


def save_folder(net: nn.Module, config: dict[str, Any], folder: str | Path, card: dict[str, Any]) -> Path:
    """Write ``folder/config.json`` (model config and card) and ``folder/model.safetensors``: a model folder
    that :func:`load_network` reads and the Hugging Face hub hosts as it is."""
    folder = Path(folder)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    _write_safetensors(state, folder / HUB_WEIGHTS)
    atomic_write_text(folder / HUB_CONFIG, json.dumps({"model": config, **card}, indent=2) + "\n")
    return folder


def hub_download(repo_id: str) -> Path:
    """The model folder of a Hugging Face hub repository (``owner/name``), downloaded once into the hub's
    cache: only its config.json and model.safetensors, never code."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{repo_id}: not a file, folder or pretrained name here; to load it from the Hugging "
                              "Face hub, pip install huggingface_hub") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=[HUB_CONFIG, HUB_WEIGHTS]))
    except Exception as e:  # the hub client raises many types: offline, unknown repo, no access
        raise CheckpointError(f"{repo_id}: cannot fetch it from the Hugging Face hub ({type(e).__name__}: "
                              f"{_first_line(e)})") from e


def _write_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """Atomically, with the mode a plain open() gives (safetensors' own save_file leaves 0600 files, which a
    shared group cannot read)."""
    with atomic_open(path) as f:
        f.write(save(state))


def save_pretrained(net: nn.Module, config: dict[str, Any], path: str | Path, card: dict[str, Any],
                    half: bool = False) -> None:
    """Write ``<path>.safetensors`` + ``<path>.json`` (model config and how it was trained).

    ``half`` stores floating-point weights as float16 (half the size; loading casts them back to float32).
    """
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    _write_safetensors(state, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps({"model": config, **card}, indent=2) + "\n")
