"""What every bench section shares: best-of-N timing, fresh child processes, the machine, models by name."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salvid.runtime.configs import CONF_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]

# A child imports the measured function only after salvid.runtime.environment has set the training oneDNN cap (when asked
# to): oneDNN reads it once, when torch first uses it.
_CHILD = """
import importlib, json, sys
from salvid.runtime.environment import cap_cpu_isa_for_training
call = json.loads(sys.argv[1])
if call["training_model"] is not None:
    cap_cpu_isa_for_training(call["training_model"])
module, name = call["function"].split(":")
result = getattr(importlib.import_module(module), name)(**call["kwargs"])
with open(call["out"], "w") as f:
    json.dump(result, f)
"""


def best_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1,
                 sync: Callable[[], None] = lambda: None) -> float:
    """The fastest of ``repeats`` timed calls after ``warmup`` untimed ones: on a shared machine the least
    disturbed call is the closest to what the code costs."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def synchronizer(device: str) -> Callable[[], None]:
    """Waits for queued GPU work (nothing to wait for on a CPU)."""
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def precisions(device: str) -> list[str]:
    """``fp32``, plus ``bf16`` where the hardware has bf16 instructions (CUDA with bf16, CPUs with AVX512-BF16
    or AMX), whether or not it is faster there: the rows show which is."""
    import torch

    from salvid.runtime.precision import cpu_has_native_bf16

    if device.startswith("cuda"):
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = cpu_has_native_bf16()
    return ["fp32", "bf16"] if native else ["fp32"]


def backends(device: str) -> list[str]:
    """The inference backends to measure on ``device``: ``torch``, and ``onnxruntime`` on a CPU where it is
    installed."""
    from salvid.inference.onnx_backend import onnxruntime_available

    return ["torch", "onnxruntime"] if device == "cpu" and onnxruntime_available() else ["torch"]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB: Linux's ``VmHWM``, which starts afresh at ``exec`` (the
    ``ru_maxrss`` of a child started by ``subprocess`` can hold its parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def reset_peak_rss() -> None:
    """Start :func:`peak_rss_mb` afresh from the current memory (Linux; elsewhere the peak keeps counting from
    the process's start), so a measurement's peak leaves out what the bench allocated before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def run_child(function: str, kwargs: dict[str, Any], env: dict[str, str] | None = None,
              training_model: dict[str, Any] | None = None) -> Any:
    """``module:function(**kwargs)`` in a fresh interpreter, so that one measurement's memory, threads and
    oneDNN settings never leak into the next; its JSON result. With ``training_model`` the child first applies
    what a training process of that model gets (:func:`salvid.runtime.environment.cap_cpu_isa_for_training`)."""
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="salvid-bench-child-") as tmp:
        out = Path(tmp) / "result.json"
        call = {"function": function, "kwargs": kwargs, "training_model": training_model, "out": str(out)}
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(call)], env=child_env,
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
            raise RuntimeError(f"bench child {function}({kwargs}) failed ({how}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def machine(device: str) -> dict[str, Any]:
    import torch

    from salvid.runtime.environment import hardware_description

    return {"hardware": hardware_description(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": device}


def compose(config_name: str, overrides: list[str] | None = None):
    """A config of ``conf/`` composed by Hydra as the entry points compose it (a DictConfig)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "defaults list is missing _self_" of config groups
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=overrides or [])


def is_model_config(spec: str) -> bool:
    """Whether ``spec`` names a model config (``conf/model/<spec>.yaml``) rather than a pretrained model."""
    return (Path(CONF_DIR) / "model" / f"{spec}.yaml").is_file()


def model_config(spec: str, input_size: list[int] | None = None) -> dict[str, Any]:
    """The network config of ``spec``: a model config name (``fusion3d``, ``paper``, ``small``, ...) or a
    pretrained model (``salvid-small-davis``, a ``.safetensors`` or ``.ckpt`` file). A pretrained backbone is
    left uninitialised (``pretrained: none``): speed does not depend on the weights."""
    from omegaconf import OmegaConf

    from salvid.models import network_arguments

    if is_model_config(spec):
        config = OmegaConf.to_container(compose(f"model/{spec}").model, resolve=True)
    else:
        from salvid.checkpoints import load_network

        config = dict(load_network(spec)[1])
    if "pretrained" in network_arguments(config):
        config["pretrained"] = "none"
    if input_size is not None:
        config["input_size"] = list(input_size)
    return config


def load_model(spec: str, input_size: list[int] | None = None):
    """The network of ``spec`` (see :func:`model_config`): a pretrained model with its weights, a model config
    with random ones (also a pretrained model given another ``input_size``, as in quick runs)."""
    from salvid.models import build_network

    if not is_model_config(spec):
        from salvid.checkpoints import load_network

        net, config = load_network(spec)
        if input_size is None or list(input_size) == list(config["input_size"]):
            return net
    return build_network(model_config(spec, input_size))


def family(config: dict[str, Any]) -> dict[str, Any]:
    """What the bench reports and decides by about a model's family."""
    from salvid.models.families import family_of

    info = family_of(config)
    return {"family": info.name, "training_isa_cap": info.training_isa_cap, "encodes_frames": info.encodes_frames}
