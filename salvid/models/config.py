"""Checks of model configs, from a training config or from a file: the one place that judges them.

Every check is read off the family's own constructor (its arguments and their defaults), so a new family's
settings are checked by declaring them. The bounds below are what any config, model card or checkpoint may ask
for: every network salvid trains fits well inside them, and they stop a file from asking for tens of gigabytes
(a 60000x60000 input, ``width_mult=300``) before anything else could fail. The family modules apply them in
their ``check_settings``; the whole network's size is checked here.
"""

from __future__ import annotations

import inspect
import math
import numbers
import reprlib
from pathlib import Path
from typing import Any

from salvid.errors import CheckpointError, ConfigError
from salvid.models.families import FAMILIES, build_network, family_of, network_arguments, with_defaults

MAX_INPUT_SIDE = 4096  # pixels, each side of model.input_size
MAX_IN_FRAMES = 9  # model.in_frames: odd, from 1
MAX_WIDTH_MULT = 4.0  # model.width_mult: in (0, 4]
MAX_WIDTH = 2048  # channels of one layer (model.widths, model.decoder_widths, after width_mult)
MAX_LAYERS = 8  # encoder blocks; convolutions per block or group (model.convs_per_block, deconvs_per_group)
MAX_WEIGHTS = 500_000_000  # values in the whole network: 2 GB as float32

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxstring, _SHORT.maxother = 3, 12, 12, 80, 80


def shown(value: Any) -> str:
    """``repr`` cut short: a value from a file may be a list of millions or nested thousands deep."""
    return _SHORT.repr(value)


def whole(value: Any) -> bool:
    """A finite number without a fractional part (3 or 3.0, not 2.5, nan, inf or True)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and \
        value == int(value)


def check_in_frames(in_frames: Any) -> None:
    if not (whole(in_frames) and 1 <= in_frames <= MAX_IN_FRAMES and in_frames % 2 == 1):
        raise ConfigError(f"model.in_frames={shown(in_frames)}: must be odd, from 1 to {MAX_IN_FRAMES} (the map "
                          "is for the centre frame)")


def check_input_size(input_size: Any, multiple: int = 1, why: str = "") -> None:
    """``[height, width]``, whole multiples of ``multiple`` (``why`` says what needs them), at most
    :data:`MAX_INPUT_SIDE` each."""
    if not (isinstance(input_size, (list, tuple)) and len(input_size) == 2 and
            all(whole(s) and multiple <= s <= MAX_INPUT_SIDE and s % multiple == 0 for s in input_size)):
        what = f"multiples of {multiple} {why}".rstrip() if multiple > 1 else "positive whole numbers"
        raise ConfigError(f"model.input_size={shown(list(input_size) if isinstance(input_size, tuple) else input_size)}"
                          f": must be [height, width], {what}, each at most {MAX_INPUT_SIDE} pixels")


def check_counts(key: str, values: Any, low: int, high: int, what: str) -> None:
    """Each entry of a list setting a whole number in [low, high]."""
    if not all(whole(v) and low <= v <= high for v in values):
        raise ConfigError(f"model.{key}={shown(list(values))}: each must be {what}, a whole number from {low} to "
                          f"{high}")


def validate_model_config(config: Any, source: str | Path) -> dict[str, Any]:
    """Check a network configuration from a file against the network's own arguments."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: model config must be a mapping, got {type(config).__name__}")
    if "_target_" in config:
        raise CheckpointError(f"{source}: model config names _target_={config['_target_']!r}; salvid builds only "
                              "its own networks and never instantiates targets from files")
    if config.get("family") is not None and (not isinstance(config["family"], str) or config["family"] not in
                                             FAMILIES):
        raise CheckpointError(f"{source}: model family {shown(config['family'])} is not one of salvid's "
                              f"{sorted(FAMILIES)}")
    allowed = network_arguments(config)
    unknown = sorted(str(k) for k in set(config) - allowed)
    if unknown:
        raise CheckpointError(f"{source}: unknown model config keys {shown(unknown)} (known: {sorted(allowed)})")
    for key, value in config.items():
        if not isinstance(value, (int, float, str, bool, list, tuple)):
            raise CheckpointError(f"{source}: model config {key} has type {type(value).__name__}, expected plain data")
    problems = model_value_problems(config)
    if problems:
        raise CheckpointError(f"{source}: model config {'; '.join(problems)}")
    try:  # before anything is built: a file may ask for a network far too large to allocate
        family_of(config).check_settings(config)
        check_network_size(config)
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None
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
        return [str(e).removeprefix("model.")]
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
            problems.append(f"{key}={shown(value)}: must be {kind}{element}")
    return problems


def check_model_config(model: dict[str, Any]) -> None:
    """Refuse a model config of a training run whose values do not fit its family, naming the key."""
    problems = model_value_problems(model)
    if problems:
        raise ConfigError("; ".join(f"model.{p}" for p in problems))
    family_of(model).check_settings(model)
    check_network_size(model)


def check_network_size(config: dict[str, Any]) -> None:
    """Refuse a network of more than :data:`MAX_WEIGHTS` values, counted on torch's meta device (shapes only,
    nothing allocated). Each setting may be within its bounds while their product is not (8 blocks of 8
    convolutions 2048 channels wide). Call it after the family's ``check_settings``."""
    import torch

    settings = with_defaults(config)
    if "pretrained" in settings:
        settings["pretrained"] = "none"  # the count needs no downloaded weights
    try:
        with torch.device("meta"):
            net = build_network(settings)
    except (RuntimeError, NotImplementedError):
        return  # a constructor that needs real values (a timm backbone may): counted once built, if at all
    count = sum(t.numel() for t in net.state_dict().values())
    if count > MAX_WEIGHTS:
        raise ConfigError(f"model: the network would hold {count / 1e6:.0f} million weights ({count * 4 / 1e9:.1f} "
                          f"GB as float32), more than the {MAX_WEIGHTS // 1_000_000} million salvid builds: use fewer "
                          "or narrower layers")
