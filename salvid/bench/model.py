"""The peak matmul rate and the networks' own speed: inference forward frames/s and train-step samples/s.

Each model runs at its own input size (what ``predict`` resizes 854x480 frames to), in fp32 and bf16 (where
the hardware has bf16), in contiguous and channels_last memory, optionally ``torch.compile``-d:

* **forward**: :meth:`salvid.inference.core.NetworkSaliency.predict` on a stream of frames already at the input
  size, so a network that encodes frames one by one (``fusion3d``) reuses each frame's features in the clips
  that share it, exactly as ``predict`` and ``evaluate`` run it: one backbone pass per frame;
* **train**: one optimisation step of :class:`salvid.training.module.SaliencyModule` (its own ``_shared_step`` and
  loss, the default optimiser of ``conf/module/default.yaml``) under bf16 autocast as ``bf16-mixed`` training,
  in a process with the oneDNN setting a training process of that model gets.

FLOPs come from ``torch.utils.flop_counter`` on one inference call, and on a train step's forward counted three
times (its counter overcounts the gradients of grouped convolutions); "fraction of peak" divides the achieved
FLOP/s by the matmul rate of the same precision. On a CPU with bf16, the paper family's rows
also show what the training-only oneDNN ISA cap would cost inference.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from salvid.bench.common import (
    backends,
    best_seconds,
    family,
    load_model,
    model_config,
    precisions,
    run_child,
    synchronizer,
)
from salvid.data.sources import FrameSource
from salvid.runtime.environment import CPU_ISA_CAP, ISA_ENV

COMPILED = ("logits", "encode_frames", "decode")  # the network methods inference and training call


def matmul_gflops(device: str, precision: str, n: int, repeats: int) -> float:
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    seconds = best_seconds(lambda: a @ b, repeats, sync=synchronizer(device))
    return 2 * n**3 / seconds / 1e9


def bench_peak(device: str, quick: bool) -> dict[str, float]:
    """GFLOP/s of a square matmul per precision: the yardstick of the models' fraction of peak."""
    n = 512 if quick else (8192 if device.startswith("cuda") else 2048)
    return {p: matmul_gflops(device, p, n, 2 if quick else 5) for p in precisions(device)}


class RandomFrames(FrameSource):
    """``length`` random frames of ``size``, cycling through a few distinct ones: a stream without decoding."""

    def __init__(self, size: tuple[int, int], length: int, distinct: int = 16):
        rng = np.random.default_rng(0)
        self.pool = rng.integers(0, 256, (distinct, *size, 3), dtype=np.uint8)
        self.length = length
        self.path = None

    def __len__(self) -> int:
        return self.length

    @property
    def size(self) -> tuple[int, int]:
        return self.pool.shape[1:3]

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        return self.pool[indices % len(self.pool)]


def inference_forward(runner, batch: int, calls: int) -> Callable[[], None]:
    """Each call: the next ``batch`` frames of one stream through ``runner.predict`` (a
    :class:`salvid.inference.core.NetworkSaliency`), the frames already at the network's input size, so that only
    the network and its feature reuse run; at most ``calls`` calls."""
    from salvid.inference.core import iter_batches

    source = RandomFrames(runner.input_size, batch * calls + 1)  # + 1: the last clip's next frame
    batches = iter(list(iter_batches(source, runner.in_frames, batch)))

    def forward() -> None:
        ids, clips = next(batches)
        runner.predict(clips, ids)

    return forward


def compile_network(net) -> None:
    """``torch.compile`` the methods inference and training call, in place."""
    import torch

    for name in COMPILED:
        if hasattr(net, name):
            setattr(net, name, torch.compile(getattr(net, name)))


def train_step(config: dict[str, Any], batch: int, device: str, precision: str, channels_last: bool,
               compiled: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """One step of :class:`salvid.training.module.SaliencyModule` on random clips: its ``_shared_step`` (network and
    loss) under autocast, backward, the optimiser of ``conf/module/default.yaml``; and the step's forward
    alone."""
    import torch
    from omegaconf import OmegaConf

    from salvid.bench.common import compose
    from salvid.training.module import SaliencyModule

    settings = OmegaConf.to_container(compose("module/default").module, resolve=True)
    module = SaliencyModule(model=config, optimizer=settings["optimizer"], loss=settings["loss"]).to(device)
    module.net.use_channels_last(channels_last)
    if compiled:
        compile_network(module.net)
    module.train()
    optimizer = module.configure_optimizers()
    size = config["input_size"]
    data = {"frames": torch.randn(batch, 3, config["in_frames"], *size, device=device),
            "mask": torch.rand(batch, 1, *size, device=device).round()}

    def forward() -> torch.Tensor:
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16"):
            return module._shared_step(data)[0]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward().backward()
        optimizer.step()

    return step, forward


def count_flops(fn: Callable[[], None]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def model_rates(model: str, input_size: list[int] | None, mode: str, batch: int, repeats: int, device: str,
                compile_: bool = False, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of ``{backend, precision, channels_last, compiled, rate, flops, first_call_s}``: frames/s of the
    inference forward (``mode="forward"``) or samples/s of a train step (``mode="train"``); ``flops`` per frame
    or sample. ``only``: these precisions (default: every one the device has). The forward adds an ONNX Runtime
    row (fp32) where it runs (:func:`salvid.bench.common.backends`)."""
    import torch

    from salvid.inference.core import NetworkSaliency

    config = model_config(model, input_size)
    variants = [("torch", p, cl, False) for p in (only or precisions(device)) for cl in (False, True)]
    if compile_:  # compiling takes tens of seconds per variant: only the fastest setting
        variants.append(("torch", variants[-1][1], True, True))
    if mode == "forward" and only is None:
        variants += [(b, "fp32", False, False) for b in backends(device) if b != "torch"]
    rows = []
    for backend, precision, channels_last, compiled in variants:
        torch.manual_seed(0)
        if mode == "forward":
            net = load_model(model, input_size)
            if compiled:
                compile_network(net)
            runner = NetworkSaliency(net, device=device, precision=precision, channels_last=channels_last,
                                     backend=backend, model_config=config)
            step = inference_forward(runner, batch, calls=repeats + 3)
        else:
            step, step_forward = train_step(config, batch, device, precision, channels_last, compiled)
        start = time.perf_counter()
        step()  # the first call compiles and picks oneDNN / cuDNN kernels
        first = time.perf_counter() - start
        flops = None
        if not compiled and backend == "torch":  # the flop counter does not see into compiled graphs
            # a train step counts as 3 forwards: torch's counter overcounts grouped-convolution gradients
            flops = (count_flops(step) if mode == "forward" else 3 * count_flops(step_forward)) / batch
        # compiled: the second call (the stream's steady batch shapes) compiles again
        seconds = best_seconds(step, repeats, warmup=2 if compiled else 0, sync=synchronizer(device))
        rows.append({"backend": backend, "precision": precision, "channels_last": channels_last, "compiled": compiled,
                     "rate": batch / seconds, "flops": flops, "first_call_s": first})
    flops = next(r["flops"] for r in rows if r["flops"] is not None)
    for row in rows:
        row["flops"] = row["flops"] or flops
    return rows


def isa_probe(model: str, input_size: list[int] | None, batch: int, repeats: int, matmul_n: int) -> dict[str, Any]:
    """bf16 matmul GFLOP/s and bf16 forward frames/s under whatever ``ONEDNN_MAX_CPU_ISA`` this process got."""
    import torch

    out = {"isa": os.environ.get(ISA_ENV, "default"),
           "bf16_matmul_gflops": matmul_gflops("cpu", "bf16", matmul_n, repeats)}
    for row in model_rates(model, input_size, "forward", batch, repeats, "cpu", only=["bf16"]):
        out[f"bf16_forward{'_channels_last' if row['channels_last'] else ''}"] = row["rate"]
    out["torch_threads"] = torch.get_num_threads()
    return out


def bench_isa_cap(model: str, input_size: list[int] | None, quick: bool) -> dict[str, Any]:
    """What capping oneDNN at ``AVX512_CORE_BF16`` (no AMX), as training of the families that need it does, would cost bf16
    inference: the same probe with the cap and without, alternated so that load changes hit both sides."""
    kwargs = {"model": model, "input_size": input_size, "batch": 2 if quick else 4, "repeats": 1 if quick else 2,
              "matmul_n": 512 if quick else 2048}
    results: dict[str, list[dict]] = {"capped": [], "uncapped": []}
    for _ in range(1 if quick else 2):
        results["uncapped"].append(run_child("salvid.bench.model:isa_probe", kwargs, {ISA_ENV: "ALL"}))
        results["capped"].append(run_child("salvid.bench.model:isa_probe", kwargs, {ISA_ENV: CPU_ISA_CAP}))
    best = {side: {k: max(r[k] for r in rs) for k in rs[0] if k.startswith("bf16")} for side, rs in results.items()}
    return {"model": model, "cap": CPU_ISA_CAP, **best,
            "uncapped_over_capped": {k: best["uncapped"][k] / best["capped"][k] for k in best["capped"]}}


def bench_model(models: list[str], device: str, quick: bool, compile_: bool, peak: dict[str, float],
                input_size: list[int] | None = None) -> dict[str, Any]:
    """Forward and train rows of each model, each kind in its own child process. ``input_size`` overrides
    every model's (quick runs)."""
    batch = 2 if quick else (4 if device == "cpu" else 32)
    repeats = 1 if quick else 2
    out: dict[str, Any] = {"batch": batch, "models": {}}
    for spec in models:
        config = model_config(spec, input_size)
        kwargs = {"model": spec, "input_size": input_size, "batch": batch, "repeats": repeats, "device": device,
                  "compile_": compile_}
        forward = run_child("salvid.bench.model:model_rates", {**kwargs, "mode": "forward"})
        train = run_child("salvid.bench.model:model_rates", {**kwargs, "mode": "train"}, training_model=config)
        for row in forward + train:
            row["gflops"] = row["rate"] * row["flops"] / 1e9
            row["fraction_of_peak"] = row["gflops"] / peak[row["precision"]]
        out["models"][spec] = {**family(config), "input_size": config["input_size"],
                               "gflop_per_frame": forward[0]["flops"] / 1e9,
                               "gflop_per_train_sample": train[0]["flops"] / 1e9, "forward": forward,
                               "train": train}
    capped = [spec for spec in models if out["models"][spec]["training_isa_cap"]]
    if device == "cpu" and "bf16" in peak and capped:
        out["isa_cap"] = bench_isa_cap(capped[0], input_size, quick)
    return out

