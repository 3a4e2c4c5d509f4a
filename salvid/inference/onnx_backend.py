"""The network run by ONNX Runtime instead of PyTorch: the inference backend ``backend=onnxruntime``
(:mod:`salvid.inference.backends` chooses between the backends).

The graphs are exported from the loaded network itself (``torch.onnx.export``, opset 18, fp32, batch dimension
dynamic, then simplified by :mod:`salvid.inference.onnx_rewrite`, same function) the first time a network is run
this way, and kept in ``<cache>/onnx/<key>/`` beside the downloaded checkpoints (``$SALVID_CACHE``, else
``$XDG_CACHE_HOME/salvid``, else ``~/.cache/salvid``). ``<key>`` hashes the weights, the model config, the input
size and the export format: any change to them gives a new key, so a stale graph is never used. Files are
written atomically, the manifest last, so a graph is used only once it is complete. salvid reads ONNX files only
from this cache; ``python -m salvid.export format=onnx`` writes the same graphs beside an exported model for
deployment.

A network that encodes frames one by one (``fusion3d``) gets two graphs, ``encoder.onnx`` (single frames to
their feature pyramid) and ``decoder.onnx`` (per-level clip features to logits), so that inference still encodes
each frame once; other networks get one graph, ``network.onnx`` (clips to logits). Activation and the resizing
of maps stay in torch, identical for both backends.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from salvid.inference.onnx_rewrite import simplified
from salvid.runtime.files import atomic_write_bytes, atomic_write_json, user_cache

log = logging.getLogger(__name__)

OPSET = 18
FORMAT_VERSION = 2  # bump when what is exported changes: older cached graphs are then exported again
MANIFEST = "manifest.json"


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def encodes_frames(net: nn.Module) -> bool:
    return hasattr(net, "encode_frames")


def graph_key(net: nn.Module, model_config: dict[str, Any] | None = None) -> str:
    """A hash of everything an exported graph depends on: every weight and buffer (names, shapes, dtypes,
    values), the model config (or, without one, the network's class and its printed structure), the input size
    and frame count, and the export format."""
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    described = json.dumps(model_config, sort_keys=True, default=str) if model_config else repr(net)
    h.update(f"{type(net).__module__}.{type(net).__qualname__}|{described}".encode())
    h.update(f"{net.in_frames}|{tuple(net.input_size)}|opset {OPSET}|format {FORMAT_VERSION}".encode())
    return h.hexdigest()[:24]


class _Encoder(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.net.encode_frames(frames))


class _Decoder(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.net.decode(list(features))


class _Logits(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net.logits(clips)


def _to_onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str],
             output_names: list[str]) -> bytes:
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in [*input_names, *output_names]}
    with warnings.catch_warnings():
        # shapes read in Python become constants of the graph: right here, where only the batch size varies
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # the reversed slice of a constant pad is left unfolded here; onnx_rewrite.simplified folds it
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(module, inputs, buffer, opset_version=OPSET, dynamo=False, input_names=input_names,
                          output_names=output_names, dynamic_axes=axes)
    return simplified(buffer.getvalue())


def export_graphs(net: nn.Module) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """``{file name: (ONNX bytes, {"inputs": [...], "outputs": [...]})}`` of ``net`` (fp32, on the CPU).

    The network is exported as it is (its weights are not copied); its memory format is left as it was."""

    net = copy.deepcopy(net).float().cpu().eval()  # the caller's network keeps its device and memory format
    net.use_channels_last(False)
    h, w = net.input_size
    graphs = {}
    with torch.no_grad():  # inference_mode tensors cannot be traced
        if encodes_frames(net):
            frames = torch.randn(2, 3, h, w)
            levels = net.encode_frames(frames)
            feats = [f"features{i}" for i in range(len(levels))]
            graphs["encoder.onnx"] = (_to_onnx(_Encoder(net), (frames,), ["frames"], feats),
                                      {"inputs": ["frames"], "outputs": feats})
            clip_features = tuple(level[:1].expand(2, *level.shape[1:]).unsqueeze(1)
                                  .expand(2, net.in_frames, *level.shape[1:]).contiguous() for level in levels)
            graphs["decoder.onnx"] = (_to_onnx(_Decoder(net), clip_features, feats, ["logits"]),
                                      {"inputs": feats, "outputs": ["logits"]})
        else:
            clips = torch.randn(2, 3, net.in_frames, h, w)
            graphs["network.onnx"] = (_to_onnx(_Logits(net), (clips,), ["clips"], ["logits"]),
                                      {"inputs": ["clips"], "outputs": ["logits"]})
    return graphs


def write_graphs(net: nn.Module, folder: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export ``net`` into ``folder`` (each file atomically, the manifest last); returns the manifest."""
    graphs = export_graphs(net)
    files = {}
    for name, (data, io_names) in graphs.items():
        atomic_write_bytes(folder / name, data)
        files[name] = {**io_names, "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"format": FORMAT_VERSION, "opset": OPSET, "in_frames": net.in_frames,
                "input_size": list(net.input_size), "encodes_frames": encodes_frames(net), "files": files,
                "torch": torch.__version__, **(extra or {})}
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def onnx_cache_root() -> Path:
    return user_cache() / "onnx"


def cached_graphs(net: nn.Module, model_config: dict[str, Any] | None = None) -> Path:
    """The folder of ``net``'s graphs in the cache, exported now if they are not there yet (or incomplete)."""
    key = graph_key(net, model_config)
    folder = onnx_cache_root() / key
    if not _complete(folder):
        log.info("exporting the network to ONNX once: %s", folder)
        write_graphs(net, folder, {"key": key})
    return folder


def _complete(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return manifest.get("format") == FORMAT_VERSION and all((folder / f).is_file() for f in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextlib.contextmanager
def torch_on_one_thread() -> Iterator[None]:
    """torch's own operations (stacking features, the sigmoid) on the calling thread alone while ONNX Runtime
    computes the network on its threads: a torch (OpenMP) worker thread keeps spinning for a while after each
    operation it shares, taking a core from ONNX Runtime's threads and from ``predict``'s decoding and writing
    (docs/performance.md). The thread count is this thread's, restored on leaving. OpenCV, which resizes the maps,
    keeps its own thread pool, whose workers sleep when idle."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class OnnxNetwork:
    """A network's ``logits`` (or ``encode_frames`` / ``decode``) computed by ONNX Runtime from ``folder``'s
    graphs; torch tensors in and out, fp32, on the CPU."""

    def __init__(self, folder: Path, threads: int | None = None):
        import onnxruntime as ort

        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # batch sizes vary (the first batch of a stream encodes one more frame): a memory plan per shape cost
        # ~260 MB of peak memory for the default model and no measurable speed
        options.enable_mem_pattern = False
        # no busy-waiting between calls: frame decoding and map writing share the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {name: ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
                         for name in manifest["files"]}
        self.files = manifest["files"]
        self.folder = folder

    def _run(self, name: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        feed = {key: np.ascontiguousarray(x.detach().float().cpu().numpy())
                for key, x in zip(self.files[name]["inputs"], inputs, strict=True)}
        return [torch.from_numpy(y) for y in self.sessions[name].run(None, feed)]

    def encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        return self._run("encoder.onnx", [frames])

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self._run("decoder.onnx", list(features))[0]

    def logits(self, clips: torch.Tensor) -> torch.Tensor:
        return self._run("network.onnx", [clips])[0]
