"""The inference core shared by ``evaluate`` and ``predict``: frame sources in, saliency maps out.

* :func:`iter_batches` streams the clips (t-1, t, t+1 by default) of a :class:`FrameSource`: every frame is
  decoded once, in ascending chunks, and only a sliding window of frames is held, so memory does not grow
  with the video's length. Missing neighbours at the ends repeat the edge frame (as in training).
* :class:`SaliencyMethod` is what turns a batch of clips into maps at the frames' own resolution; the network
  (:class:`NetworkSaliency`), the classical baselines and folders of precomputed maps all implement it, so
  one loop scores them all from one decoding pass.
* :class:`NetworkSaliency` resizes and normalises exactly as the evaluation transform of training does
  (:mod:`salvid.data.preprocess`), runs under ``torch.inference_mode`` with optional bf16 autocast and
  channels_last memory, and resizes each map back to its frame (bilinear). For a network that encodes frames
  one by one (``fusion3d``) it encodes each frame once and reuses its features in the clips that share it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from salvid.data.preprocess import normalise, normalise_frame, resize_frame
from salvid.data.sources import FrameSource
from salvid.data.stream import triplet_indices
from salvid.errors import CheckpointError, ConfigError
from salvid.inference.backends import resolve_backend
from salvid.inference.onnx_backend import OnnxNetwork, cached_graphs, encodes_frames, torch_on_one_thread
from salvid.inference.pipeline import alternating, prefetched
from salvid.methods import Clip, SaliencyMethod
from salvid.models import channels_last_enabled

__all__ = ["NetworkSaliency", "Prediction", "frame_stems",
           "iter_batches", "iter_clips", "middle_frames", "resolve_device"]

log = logging.getLogger(__name__)

# where stream's background thread prepares frames: beside the network, between its batches, or nowhere
OVERLAPS = ("network", "caller", None)


def iter_clips(
    source: FrameSource, in_frames: int, targets: Iterable[int] | None = None, chunk_len: int = 32,
    at_least: tuple[int, int] | None = None,
) -> Iterator[tuple[int, Clip]]:
    """``(t, clip)`` for each target frame ``t`` (all frames by default), in ascending order.

    Only the frames some clip needs are decoded, each once, ``chunk_len`` at a time; frames no later clip
    needs are dropped, so at most ``chunk_len + in_frames`` frames are held. ``at_least``: frames may come
    shrunk to this size or more (:meth:`FrameSource.read`).
    """
    n = len(source)
    targets = range(n) if targets is None else sorted(set(targets))
    needed = sorted({i for t in targets for i in triplet_indices(t, n, in_frames)})
    window: dict[int, np.ndarray] = {}
    next_needed = 0
    r = in_frames // 2
    for t in targets:
        last = min(t + r, n - 1)
        while next_needed < len(needed) and needed[next_needed] <= last:
            chunk = needed[next_needed : next_needed + chunk_len]
            frames = source.read(chunk) if at_least is None else source.read(chunk, at_least)
            window.update(zip(chunk, frames, strict=True))
            next_needed += len(chunk)
        yield t, [window[i] for i in triplet_indices(t, n, in_frames)]
        for i in [i for i in window if i < t + 1 - r]:  # later clips start at t + 1 - r or after
            del window[i]


def iter_batches(
    source: FrameSource, in_frames: int, batch_size: int, targets: Iterable[int] | None = None, chunk_len: int = 32,
    at_least: tuple[int, int] | None = None,
) -> Iterator[tuple[list[int], list[Clip]]]:
    """:func:`iter_clips` grouped into batches of up to ``batch_size`` (frame indices, clips)."""
    ids: list[int] = []
    clips: list[Clip] = []
    for t, clip in iter_clips(source, in_frames, targets, max(chunk_len, batch_size), at_least):
        ids.append(t)
        clips.append(clip)
        if len(ids) == batch_size:
            yield ids, clips
            ids, clips = [], []
    if ids:
        yield ids, clips


def middle_frames(clip: Clip, in_frames: int) -> Clip:
    """The middle ``in_frames`` frames of a longer clip (edge padding stays consistent)."""
    r = (len(clip) - in_frames) // 2
    return clip[r : r + in_frames]


def frame_stems(frames: Path | Sequence[Path], n_frames: int) -> list[str]:
    """A name per frame: the image files' stems for a frame folder, the zero-padded index for a video file.

    Predicted maps are written under these names and maps folders are read by them.
    """
    if isinstance(frames, Path):
        return [f"{i:05d}" for i in range(n_frames)]
    return [p.stem for p in frames]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    missing = not torch.cuda.is_available() or (resolved.index or 0) >= torch.cuda.device_count()
    if resolved.type == "cuda" and missing:
        seen = f"{torch.cuda.device_count()} CUDA GPU(s)" if torch.cuda.is_available() else "no CUDA GPU"
        raise ConfigError(f"device={device}: this PyTorch ({torch.__version__}) sees {seen}; use device=cpu or "
                          "device=auto, or install a CUDA build of torch (README: Install)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device}: this PyTorch ({torch.__version__}) sees no Apple GPU (MPS); use "
                          "device=cpu or device=auto")
    return resolved


@dataclass(frozen=True)
class Prediction:
    index: int  # frame index in the source
    saliency: np.ndarray  # (H, W) float32 in [0, 1] at the source's frame size, also where ``frame`` is shrunk
    frame: np.ndarray  # (H, W, 3) uint8 RGB; shrunk where the stream was asked for no whole frames


class NetworkSaliency(SaliencyMethod):
    """A network of :mod:`salvid.models` as a saliency method.

    Args:
        net: the network (put in eval mode here).
        name: the method's name in tables.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``, ...
        precision: ``"auto"`` (bf16 autocast on CUDA GPUs with bf16, and on CPUs where a short probe measured bf16
            faster than fp32, see :mod:`salvid.runtime.precision`; else fp32; with ``backend="auto"`` on a CPU,
            bf16 only where it also ran this network fastest), ``"bf16"`` or ``"fp32"``.
        channels_last: ``"auto"``, ``True`` or ``False`` (see :func:`salvid.models.channels_last_enabled`).
        backend: ``"torch"``, ``"onnxruntime"`` (fp32 on the CPU; the graphs are exported once into the cache,
            see :mod:`salvid.inference.onnx_backend`) or ``"auto"`` (on a CPU the fastest for this network, measured
            once per machine and cached, see :mod:`salvid.inference.backends`; PyTorch on a GPU).
        model_config: the network's model config (as :func:`salvid.checkpoints.load_network` returns it), part of
            the key of its cached ONNX graphs; without it the network's printed structure stands in.

    Frame features. A network with ``encode_frames`` / ``decode`` (``fusion3d``) computes its backbone once
    per frame: :meth:`predict` keeps the features of the previous call's frames, so consecutive batches of
    one stream (whose clips overlap by ``in_frames - 1`` frames) cost one backbone pass per frame.

    ``seconds`` adds up where the time goes: ``decode`` (frames read by :meth:`stream`), ``resize`` (frames to
    the input size, normalised: by :meth:`stream` ahead of the network, on a background thread with ``overlap``),
    ``forward`` (the network) and ``upsample`` (maps back to the frames' size).
    """

    def __init__(self, net: nn.Module, name: str = "salvid", device: str = "auto", precision: str = "auto",
                 channels_last: bool | str = "auto", backend: str = "auto",
                 model_config: dict[str, Any] | None = None):
        self.name = name
        self.device = resolve_device(device)
        self.net = net.eval().to(self.device)
        # backend=auto on a CPU times this very network
        self.backend, self.dtype = resolve_backend(backend, precision, self.device, self.net, model_config)
        self.net.use_channels_last(self.backend == "torch" and channels_last_enabled(channels_last))
        self.in_frames = net.in_frames
        self.input_size = net.input_size
        self.encodes_frames = encodes_frames(net)
        # what computes logits (or encode_frames / decode): the network itself, or its ONNX graphs
        self.compute = OnnxNetwork(cached_graphs(self.net, model_config)) if self.backend == "onnxruntime" else net
        # with ONNX Runtime, torch's operations around the network stay off its threads
        self._torch_threads = torch_on_one_thread if self.backend == "onnxruntime" else nullcontext
        # id(frame) -> (frame, its features): holding the frame keeps its id from being reused
        self._features: dict[int, tuple[np.ndarray, list[torch.Tensor]]] = {}
        self.seconds = {"decode": 0.0, "resize": 0.0, "forward": 0.0, "upsample": 0.0}
        self._input_seconds = 0.0  # of the current predict call: resizing and normalising its frames
        # on a GPU, frames travel as uint8 and are normalised there; on the CPU, by table when stream prepares them
        self.normalise_on_device = self.device.type != "cpu"
        log.info("%s: %s, %s, %s", name, self.device, self.backend, "bf16 autocast" if self.dtype else "fp32")

    @property
    def precision(self) -> str:
        return "fp32" if self.dtype is None else "bf16"

    def _inputs(self, frames: Iterable[np.ndarray]) -> dict[int, torch.Tensor]:
        """id(frame) -> the frame resized to the input size, ``(h, w, 3)`` on the CPU: normalised, or uint8 with
        :attr:`normalise_on_device` (a quarter of the bytes to copy)."""
        frames = list(frames)
        if not frames:
            return {}
        resized = (resize_frame(f, self.input_size) for f in frames)
        x = torch.from_numpy(np.stack([r if self.normalise_on_device else normalise_frame(r) for r in resized]))
        return {id(f): x[i] for i, f in enumerate(frames)}

    def _normalised(self, frames: list[np.ndarray], inputs: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """``(M, 3, h, w)`` network input of single frames on the device, channels-last in memory as
        :func:`normalise` lays out a batch; frames in ``inputs`` are not prepared again."""
        start = time.perf_counter()
        inputs = inputs or {}
        missing = self._inputs(f for f in frames if id(f) not in inputs)
        x = torch.stack([inputs[id(f)] if id(f) in inputs else missing[id(f)] for f in frames]).to(self.device)
        x = normalise(x) if x.dtype == torch.uint8 else x.movedim(-1, 1)
        self._input_seconds += time.perf_counter() - start
        return x

    def _clip_logits(self, clips: list[Clip], inputs: dict[int, torch.Tensor] | None) -> torch.Tensor:
        """Every frame once through the whole network input: ``(N, 3, T, h, w)``."""
        unique = list({id(f): f for clip in clips for f in clip}.values())
        index = {id(f): i for i, f in enumerate(unique)}
        x = self._normalised(unique, inputs)
        order = torch.tensor([[index[id(f)] for f in clip] for clip in clips], device=self.device)
        return self.compute.logits(x[order].transpose(1, 2))

    def _cached_logits(self, clips: list[Clip], inputs: dict[int, torch.Tensor] | None) -> torch.Tensor:
        """Backbone features of frames not seen in the previous call, reused ones from it, then decoding."""
        frames = {id(f): f for clip in clips for f in clip}
        new = [f for key, f in frames.items() if key not in self._features]
        if new:
            levels = self.compute.encode_frames(self._normalised(new, inputs))
            for i, f in enumerate(new):
                self._features[id(f)] = (f, [level[i] for level in levels])
        self._features = {key: self._features[key] for key in frames}  # what the next batch can share
        n_levels = len(next(iter(self._features.values()))[1])
        features = [torch.stack([torch.stack([self._features[id(f)][1][level] for f in clip]) for clip in clips])
                    for level in range(n_levels)]
        return self.compute.decode(features)

    @torch.inference_mode()
    def predict(self, clips: list[Clip], frame_ids: list[int] | None = None,
                inputs: dict[int, torch.Tensor] | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
        """Maps of ``clips`` at ``size`` (height, width), by default their frames' size; ``inputs`` (id(frame) -> its
        network input, as :meth:`stream` prepares them ahead) spares preparing those frames here."""
        with self._torch_threads():
            start = time.perf_counter()
            self._input_seconds = 0.0
            with torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
                logits = (self._cached_logits(clips, inputs) if self.encodes_frames
                          else self._clip_logits(clips, inputs))
                maps = self.net.activate(logits)
            middle = time.perf_counter()
            self.seconds["resize"] += self._input_seconds
            self.seconds["forward"] += middle - start - self._input_seconds
            size = tuple(size) if size is not None else clips[0][len(clips[0]) // 2].shape[:2]
            if self.device.type == "cpu":  # OpenCV's bilinear resize: the same maps (to 3e-5), 4x faster than torch's
                out = np.stack([cv2.resize(m, size[::-1], interpolation=cv2.INTER_LINEAR)
                                for m in maps[:, 0].float().numpy()])
                np.clip(out, 0.0, 1.0, out=out)
            else:
                maps = F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
                out = maps[:, 0].cpu().numpy()
            self.seconds["upsample"] += time.perf_counter() - middle
        if not np.isfinite(out).all():  # would be written as a black map
            frames = f"frames {frame_ids}" if frame_ids is not None else f"{len(clips)} frames"
            raise CheckpointError(f"{self.name}: the network's maps of {frames} hold NaN or infinite values: its "
                                  "weights are damaged or do not suit this input; no map was written for them")
        return out

    def _prepared(self, batches: Iterator[tuple[list[int], list[Clip]]]
                  ) -> Iterator[tuple[list[int], list[Clip], dict[int, torch.Tensor], float, float]]:
        """Batches with their frames' network inputs and the seconds spent decoding and preparing them (added up
        by the consuming thread, so that two threads never update ``self.seconds``). With the frame-feature
        cache, a frame shared with the previous batch was prepared there and is skipped."""
        previous: dict[int, np.ndarray] = {}  # holding the frames keeps their ids from being reused
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            decode_seconds = time.perf_counter() - start
            if batch is None:
                return
            start = time.perf_counter()
            ids, clips = batch
            frames = {id(f): f for clip in clips for f in clip}
            inputs = self._inputs(f for key, f in frames.items() if key not in previous)
            if self.encodes_frames:
                previous = frames
            yield ids, clips, inputs, decode_seconds, time.perf_counter() - start

    def stream(self, source: FrameSource, batch_size: int = 8, targets: Iterable[int] | None = None,
               chunk_len: int = 32, overlap: str | None = None, whole_frames: bool = True) -> Iterator[Prediction]:
        """Maps of a whole source (or its ``targets``), in frame order, in constant memory, at the frames' size.
        ``overlap``: where decoding and preparing the network's input runs on a background thread
        (:mod:`salvid.inference.pipeline`): ``"network"``, up to two batches ahead while the network runs;
        ``"caller"``, the next batch while the caller handles this one's maps, never beside the network; ``None``:
        on the caller's thread. ``whole_frames=False``: the caller needs no frame pixels, so a source may decode
        them shrunk towards the network's input (JPEG frames, :meth:`FrameSource.read`); ``source`` must then be a
        :class:`FrameSource` (its ``size`` and ``read(indices, at_least)``)."""
        if overlap not in OVERLAPS:
            raise ValueError(f"overlap={overlap!r}: expected one of {OVERLAPS}")
        at_least = None if whole_frames else self.input_size
        batches = self._prepared(iter_batches(source, self.in_frames, batch_size, targets, chunk_len, at_least))
        predictions = functools.partial(self._predictions,
                                        size=None if whole_frames else tuple(int(s) for s in source.size))
        if overlap == "caller":
            yield from alternating(batches, predictions)
            return
        if overlap == "network":
            batches = prefetched(batches, 2)
        for batch in batches:
            yield from predictions(batch)

    def _predictions(self, batch: tuple[list[int], list[Clip], dict[int, torch.Tensor], float, float],
                     size: tuple[int, int] | None) -> list[Prediction]:
        ids, clips, inputs, decode_seconds, input_seconds = batch
        self.seconds["decode"] += decode_seconds
        self.seconds["resize"] += input_seconds
        maps = self.predict(clips, ids, inputs, size)
        return [Prediction(t, saliency, clip[len(clip) // 2]) for t, clip, saliency in zip(ids, clips, maps, strict=True)]
