"""Which backend and precision run a network at inference: the settings ``backend`` and ``precision``.

``backend=auto`` on a CPU measures instead of following a rule: which backend is fastest depends on the network and
the CPU. Side by side on 2-core CPUs, ONNX Runtime's fp32 ran the shipped ``fusion3d`` network 2-3x faster than
PyTorch's fp32 and bf16, while PyTorch's bf16 ran the ``paper`` family (3D convolutions) fastest on an AMD EPYC. So
the first run of a network on a machine times that network's forward (:func:`probe_backends`: a batch of 8 random
clips at its input size, a warm-up call and the median of up to five timed calls per candidate) with each candidate:
ONNX Runtime fp32 (when installed), PyTorch fp32, and PyTorch bf16 where ``precision=auto`` and
:func:`salvid.runtime.precision.bf16_is_faster` says bf16 may pay (``precision=fp32`` chooses among the fp32
candidates). The fastest is used, and the timings are kept in ``<cache>/machine/backend.json`` under the CPU's model
name, the torch and onnxruntime versions, the thread count and the network's graph key
(:func:`salvid.inference.onnx_backend.graph_key`), so the next run of the same network on the same machine reuses
them and other weights are measured on their own. ``precision=bf16`` runs PyTorch's bf16; on a GPU, ``auto`` is
PyTorch.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salvid.errors import ConfigError
from salvid.inference.onnx_backend import (
    OnnxNetwork,
    cached_graphs,
    encodes_frames,
    graph_key,
    onnxruntime_available,
    torch_on_one_thread,
)
from salvid.models import channels_last_enabled
from salvid.runtime.environment import cpu_model
from salvid.runtime.files import atomic_write_json, read_json_mapping, user_cache
from salvid.runtime.precision import autocast_dtype, bf16_is_faster
from salvid.runtime.schema import BACKENDS

log = logging.getLogger(__name__)

PROBE_VERSION = 2  # bump when the backend probe changes: older timings are then measured again


def resolve_backend(backend: str, precision: str, device: torch.device, net: nn.Module | None = None,
                    model_config: dict[str, Any] | None = None) -> tuple[str, torch.dtype | None]:
    """``(backend, autocast dtype)`` for the ``backend`` and ``precision`` settings on ``device``, and a
    :class:`ConfigError` for a combination that cannot run. ``backend=auto`` on a CPU measures ``net`` (in eval
    mode, on the CPU; ``model_config`` is part of its key) with :func:`fastest_backend` (module docstring)."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: must be one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ConfigError(f"backend=onnxruntime runs on the CPU, not device={device}: set device=cpu, or "
                              "backend=torch (or auto) for the GPU")
        if precision == "bf16":
            raise ConfigError("precision=bf16 with backend=onnxruntime: ONNX Runtime runs salvid's graphs in fp32; "
                              "set precision=fp32 (or auto), or backend=torch for bf16")
        if precision not in ("auto", "fp32"):
            autocast_dtype(precision, device)  # its own error, naming the key
        if not onnxruntime_available():
            raise ConfigError("backend=onnxruntime: onnxruntime and onnx are not installed; "
                              "pip install onnxruntime onnx (or salvid's own requirements), or set backend=torch")
        return "onnxruntime", None
    if backend == "auto" and device.type == "cpu" and precision in ("auto", "fp32"):
        if net is None:
            raise ValueError("backend=auto on a CPU measures the network: pass net")
        allowed = [c for c in candidates() if precision == "auto" or c.endswith("fp32")]
        choice = allowed[0] if len(allowed) == 1 else fastest_backend(net, model_config, allowed)
        name, precision = choice.split()
        return name, autocast_dtype(precision, device)
    return "torch", autocast_dtype(precision, device)


def candidates() -> list[str]:
    """What ``backend=auto`` may run on this CPU: ``"<backend> <precision>"``, fp32 first."""
    return ((["onnxruntime fp32"] if onnxruntime_available() else []) + ["torch fp32"]
            + (["torch bf16"] if bf16_is_faster() else []))


def probe_backends(net: nn.Module, model_config: dict[str, Any] | None, names: list[str], batch: int = 8,
                   rounds: int = 5, slower: float = 2.0) -> dict[str, float]:
    """Seconds per candidate (:func:`candidates`) of the network's forward on ``batch`` random clips at its input
    size, as :class:`salvid.inference.core.NetworkSaliency` runs it (``fusion3d``: ``batch`` new frames encoded,
    then ``batch`` clips decoded), bf16 with the channels_last memory it gets there, ONNX Runtime with torch's
    operations on one thread (:func:`torch_on_one_thread`). ``batch`` is inference's default batch size:
    PyTorch's time per frame falls with the batch (a fixed cost per call), ONNX Runtime's hardly, so a smaller
    batch would favour ONNX Runtime. One warm-up call per candidate (the first call picks kernels and
    allocates: up to 2.5x slower), then the median of ``rounds`` calls, the candidates alternated so that a
    change of load hits each; the best call would favour a backend whose times scatter (on a 2-core AMD EPYC,
    PyTorch bf16's best of two beat ONNX Runtime in one probe of three, its median in none). A clear loser is
    not timed further: one whose warm-up took ``2 * slower`` times the fastest warm-up (its warm-up time
    stands), or whose best call took ``slower`` times the best. ``net`` is left as it was."""
    torch.manual_seed(0)
    h, w = net.input_size
    frames = torch.randn(batch, 3, h, w)
    # clip j holds frames j-r..j+r, clamped at the ends, as a stream's clips share frames
    r = net.in_frames // 2
    order = torch.tensor([[min(max(j + k, 0), batch - 1) for k in range(-r, r + 1)] for j in range(batch)])

    def forward(compute: Any, bf16: bool) -> Callable[[], None]:
        threads = torch_on_one_thread if isinstance(compute, OnnxNetwork) else contextlib.nullcontext

        def run() -> None:
            with threads(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if encodes_frames(net):
                    compute.decode([level[order] for level in compute.encode_frames(frames)])
                else:
                    compute.logits(frames[order].transpose(1, 2))
        return run

    runs: dict[str, Callable[[], None]] = {}
    for name in names:
        backend, precision = name.split()
        if backend == "onnxruntime":
            runs[name] = forward(OnnxNetwork(cached_graphs(net, model_config)), False)
        else:
            layout = channels_last_enabled("auto")
            # a copy where the memory format changes: the caller's network keeps its own
            own = net if bool(getattr(net, "channels_last", False)) == layout else copy.deepcopy(net)
            own.use_channels_last(layout)
            runs[name] = forward(own, precision == "bf16")
    with torch.inference_mode():
        return best_seconds(runs, rounds, slower)


def best_seconds(runs: dict[str, Callable[[], None]], rounds: int = 5, slower: float = 2.0,
                 clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """The schedule of :func:`probe_backends`: seconds per run (the median of its timed calls, or its warm-up's
    for one dropped then), clear losers dropped early."""
    def timed(run: Callable[[], None]) -> float:
        start = clock()
        run()
        return clock() - start

    warm = {name: timed(run) for name, run in runs.items()}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    timing = [name for name in runs if warm[name] <= 2 * slower * min(warm.values())]
    for _ in range(rounds):
        for name in timing:
            seconds[name].append(timed(runs[name]))
        best = min(min(seconds[name]) for name in timing)
        timing = [name for name in timing if min(seconds[name]) <= slower * best]
    return {name: statistics.median(seconds[name] or [warm[name]]) for name in runs}


def _backend_cache_file() -> Path:
    return user_cache() / "machine" / "backend.json"


def _backend_key(net: nn.Module, model_config: dict[str, Any] | None) -> str:
    ort = "none"
    if onnxruntime_available():
        import onnxruntime

        ort = onnxruntime.__version__
    return (f"{cpu_model()} | torch {torch.__version__} | onnxruntime {ort} | {torch.get_num_threads()} threads | "
            f"network {graph_key(net, model_config)} | probe {PROBE_VERSION}")


def fastest_backend(net: nn.Module, model_config: dict[str, Any] | None = None, allowed: list[str] | None = None,
                    probe: Callable[..., dict[str, float]] | None = None) -> str:
    """The fastest of ``allowed`` (default: every :func:`candidates`) for ``net`` on this CPU, as
    ``"<backend> <precision>"``: every candidate is measured once per network, CPU model, torch and onnxruntime
    version and thread count, then the timings are read from the cache. ``probe``: what measures (default
    :func:`probe_backends`)."""
    names = candidates()
    allowed = [c for c in (allowed or names) if c in names]
    path, key = _backend_cache_file(), _backend_key(net, model_config)
    entries = read_json_mapping(path)
    cached = entries.get(key)
    seconds = cached.get("seconds") if isinstance(cached, dict) else None
    if not (isinstance(seconds, dict) and set(seconds) == set(names)
            and all(isinstance(v, (int, float)) and v > 0 for v in seconds.values())):
        seconds = (probe or probe_backends)(net, model_config, names)
        entries[key] = {"seconds": seconds, "fastest": min(seconds, key=seconds.get)}
        try:
            atomic_write_json(path, entries)
        except OSError as e:  # a read-only cache: measure again next time
            log.warning("could not keep the backend probe's timings in %s: %s", path, e)
        log.info("backend probe: %s -> %s", ", ".join(f"{name} {s:.3f} s" for name, s in seconds.items()),
                 min(allowed, key=seconds.get))
    return min(allowed, key=seconds.get)
