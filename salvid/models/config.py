"""Checks of model configs, from a training config or from a file: the one place that judges them.

Every check is read off the family's own constructor (its arguments and their defaults), so a new family's
settings are checked by declaring them.
"""

from __future__ import annotations

import inspect
import numbers
from pathlib import Path
from typing import Any

from salvid.errors import CheckpointError, ConfigError
from salvid.models.families import FAMILIES, family_of, network_arguments


def validate_model_config(config: Any, source: str | Path) -> dict[str, Any]:
    """Check a network configuration from a file against the network's own arguments."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: model config must be a mapping, got {type(config).__name__}")
    if "_target_" in config:
        raise CheckpointError(f"{source}: model config names _target_={config['_target_']!r}; salvid builds only "
                              "its own networks and never instantiates targets from files")
    if config.get("family") is not None and config["family"] not in FAMILIES:
        raise CheckpointError(f"{source}: model family {config['family']!r} is not one of salvid's "
                              f"{sorted(FAMILIES)}")
    allowed = network_arguments(config)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise CheckpointError(f"{source}: unknown model config keys {unknown} (known: {sorted(allowed)})")
    for key, value in config.items():
        if not isinstance(value, (int, float, str, bool, list, tuple)):
            raise CheckpointError(f"{source}: model config {key} has type {type(value).__name__}, expected plain data")
    problems = model_value_problems(config)
    if problems:
        raise CheckpointError(f"{source}: model config {'; '.join(problems)}")
    return dict(config)


def _kind(value: Any) -> str | None:
    """What a constructor default says its argument is: a number, a flag, a list (of numbers), or open."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, numbers.Real):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    return None


def _fits(value: Any, default: Any) -> bool:
    kind = _kind(default)
    if kind == "true or false":
        return isinstance(value, bool)
    if kind == "a number":
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind == "a list":
        return isinstance(value, (list, tuple)) and (
            not default or all(_fits(v, default[0]) for v in value))
    return True


def model_value_problems(config: dict[str, Any]) -> list[str]:
    """``key=value: must be ...`` for each value whose type differs from what the network takes (a string
    where a number belongs), judged by the family constructor's defaults; [] when all fit."""
    try:
        parameters = family_of(config).arguments()
    except ConfigError as e:
        return [str(e)]
    problems = []
    for key, value in config.items():
        parameter = parameters.get(key)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            continue
        if not _fits(value, parameter.default):
            kind = _kind(parameter.default)
            plural = {"a number": "numbers", "a list": "lists", "true or false": "flags"}
            element = f" of {plural.get(_kind(parameter.default[0]), 'values')}" if kind == "a list" and \
                parameter.default else ""
            problems.append(f"{key}={value!r}: must be {kind}{element}")
    return problems


def check_model_config(model: dict[str, Any]) -> None:
    """Refuse a model config of a training run whose values do not fit its family, naming the key."""
    problems = model_value_problems(model)
    if problems:
        raise ConfigError("; ".join(f"model.{p}" for p in problems))
    family_of(model).check_settings(model)
