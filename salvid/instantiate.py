"""Objects built from config groups (callbacks, loggers), shared by the entry points."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group (callbacks, loggers)."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]
