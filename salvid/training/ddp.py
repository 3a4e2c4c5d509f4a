"""One run, one output directory, under Lightning's DDP launcher.

Lightning starts ranks 1..N-1 by re-running the command line (``python -m salvid.train <args>``). Under Hydra
each would compose its own config and output directory: a new timestamp, or with ``-m`` the whole sweep
again. Instead rank 0 hands its resolved config to the processes it starts through an environment variable,
and they skip Hydra: same config, same output directory, no ``.hydra/`` or log files of their own.

Processes started by a cluster (SLURM tasks, ``torchrun``) are not Lightning's children: each composes the
config itself, and Hydra gives them the same directory as long as the run directory does not depend on the
process (the submitit launcher fixes it per job; with ``torchrun`` pass ``hydra.run.dir`` explicitly).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf

CONFIG_VAR = "SALVID_RANK0_CONFIG"
# What Lightning's subprocess launcher sets in the launching process.
_LAUNCH_VARS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def launched_config() -> DictConfig | None:
    """The config rank 0 handed over, in a process its DDP launcher started; None in any other process."""
    if os.environ.get("LOCAL_RANK", "0") == "0" or CONFIG_VAR not in os.environ:
        return None
    return OmegaConf.create(os.environ[CONFIG_VAR])


@contextmanager
def shared_with_ranks(cfg: DictConfig) -> Iterator[None]:
    """Within the block, ranks that Lightning's launcher starts run ``cfg`` (resolved here, so ``${hydra:...}``
    values such as the output directory are rank 0's). Afterwards, undo what the launch left in this process,
    its environment variables and process group, so that the next job of a multirun launches its own ranks."""
    saved = {k: os.environ.get(k) for k in (CONFIG_VAR, *_LAUNCH_VARS)}
    os.environ[CONFIG_VAR] = OmegaConf.to_yaml(cfg, resolve=True)
    try:
        yield
    finally:
        import torch  # imported here: training applies a oneDNN setting before torch loads

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
