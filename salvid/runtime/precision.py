"""Whether bf16 pays on this machine: measured once, not read from CPU flags.

A CPU may report AVX512-BF16 and still compute bf16 slower than fp32 (no AMX behind it: a bf16 matmul at half
the fp32 rate was seen on one such Xeon). So ``precision=auto`` on a CPU asks :func:`bf16_is_faster`: a short
probe (two convolutions of the kinds the networks spend their time in, fp32 against bf16 autocast, well under a
second) decides, and its verdict is kept in ``<cache>/machine/precision.json`` under the CPU's model name and the
torch version, so the next run on the same machine and torch reuses it. A CPU without AVX512-BF16 or AMX emulates
bf16 and is never probed: it runs fp32.

Training asks the same question through ``trainer.precision=auto`` (:func:`trainer_precision`): on a 2-core AMD
EPYC with AVX2 only, one bf16-mixed training step of ``model=fusion3d`` took 46 s against 4.2 s in fp32.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from salvid.errors import ConfigError
from salvid.runtime.environment import cpu_model
from salvid.runtime.files import atomic_write_json, read_json_mapping, user_cache
from salvid.runtime.schema import PRECISIONS

log = logging.getLogger(__name__)

PROBE_VERSION = 1  # bump when the probe changes: older verdicts are then measured again


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:  # not Linux: do not guess
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags)) and torch.backends.mkldnn.is_available()


def probe_bf16(rounds: int = 2) -> dict[str, float]:
    """Seconds of the same small work as inference runs it in fp32 (contiguous memory) and in bf16 (autocast,
    channels_last): on 4 images, a pointwise convolution of 192 channels at 28x48 and a 3x3 convolution of 64
    channels at 28x48, the kinds of layer the networks spend their time in. The best of ``rounds`` calls per
    side, the sides alternated so that a change of load hits both; about 0.1-0.3 s in all."""
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Conv2d(64, 192, 1), torch.nn.Conv2d(192, 64, 3, padding=1)).eval()
    layers_cl = copy.deepcopy(layers).to(memory_format=torch.channels_last)
    x = torch.randn(4, 64, 28, 48)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def fp32() -> None:
        layers(x)

    def bf16() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layers_cl(x_cl)

    seconds: dict[str, list[float]] = {"fp32_s": [], "bf16_s": []}
    with torch.inference_mode():
        fp32(), bf16()  # oneDNN picks its kernels on the first call
        for _ in range(rounds):
            for key, fn in (("fp32_s", fp32), ("bf16_s", bf16)):
                start = time.perf_counter()
                fn()
                seconds[key].append(time.perf_counter() - start)
    return {k: min(v) for k, v in seconds.items()}


def _cache_file() -> Path:
    return user_cache() / "machine" / "precision.json"


def _machine_key() -> str:
    return f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads | probe {PROBE_VERSION}"


def bf16_is_faster(probe: Callable[[], dict[str, float]] | None = None) -> bool:
    """Whether bf16 autocast is measured faster than fp32 on this CPU; measured once per CPU model, torch
    version and thread count, then read from the cache. ``probe``: what measures (default :func:`probe_bf16`)."""
    if not cpu_has_native_bf16():
        return False
    path, key = _cache_file(), _machine_key()
    verdicts = read_json_mapping(path)
    cached = verdicts.get(key)
    if isinstance(cached, dict) and isinstance(cached.get("bf16_faster"), bool):
        return cached["bf16_faster"]
    seconds = (probe or probe_bf16)()
    faster = seconds["bf16_s"] < seconds["fp32_s"]
    verdicts[key] = {**seconds, "bf16_faster": faster}
    try:
        atomic_write_json(path, verdicts)
    except OSError as e:  # a read-only cache: measure again next time
        log.warning("could not keep the bf16 probe's verdict in %s: %s", path, e)
    log.info("bf16 probe: fp32 %.3f s, bf16 %.3f s -> %s", seconds["fp32_s"], seconds["bf16_s"],
             "bf16" if faster else "fp32")
    return faster


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for ``"bf16"``, ``None`` (fp32) for ``"fp32"``; ``"auto"``: bf16 on CUDA GPUs that have it, and on a
    CPU where :func:`bf16_is_faster` measured it faster than fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: must be one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        else:
            native = device.type == "cpu" and bf16_is_faster()
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


def cuda_has_native_bf16() -> bool:
    """Whether the first CUDA GPU computes bf16 natively (not by emulation, as pre-Ampere GPUs do), asked in a
    child process so that this one does not initialise CUDA before Lightning forks or assigns devices."""
    import subprocess
    import sys

    query = ("import torch; "
             "print(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))")
    try:
        out = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("could not ask the GPU whether it has bf16 (%s): training in fp32", e)
        return False
    return out.stdout.strip() == "True"


def trainer_precision(setting: str | int, accelerator: str, cpu_bf16_capped: bool = False) -> str | int:
    """Lightning's ``Trainer(precision=...)`` for ``trainer.precision``: any value but ``"auto"`` as given;
    ``"auto"``: ``"bf16-mixed"`` on CUDA GPUs with native bf16 and on a CPU where :func:`bf16_is_faster` measured
    it faster, else ``"32-true"``. ``accelerator`` is ``trainer.accelerator`` (``"auto"``: a CUDA GPU when torch
    sees one, else the CPU unless another accelerator is there). ``cpu_bf16_capped``: the network's family trains
    bf16 on CPUs only under the oneDNN ISA cap, which makes it slower than fp32 there, so ``auto`` trains it in
    fp32 on a CPU."""
    if setting != "auto":
        return setting
    if accelerator == "auto":
        if torch.cuda.is_available():  # asks the driver, does not initialise CUDA
            accelerator = "cuda"
        elif torch.backends.mps.is_available():
            accelerator = "mps"
        else:
            accelerator = "cpu"
    if accelerator in ("gpu", "cuda"):
        native = cuda_has_native_bf16()
    else:
        native = accelerator == "cpu" and not cpu_bf16_capped and bf16_is_faster()
    return "bf16-mixed" if native else "32-true"
