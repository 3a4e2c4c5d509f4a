"""Checks of config values that every entry point runs before work starts; each error names its key."""

from __future__ import annotations

import numbers
from typing import Any

from salvid.errors import ConfigError


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def require_int(key: str, value: Any, minimum: int, otherwise: str = "") -> None:
    """``otherwise``: what else the key accepts, said after the rule (``or -1 (no limit)``)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{key}={value!r}: must be an integer >= {minimum}{', ' + otherwise if otherwise else ''}")


def require_positive(key: str, value: Any) -> None:
    if not _is_number(value) or not value > 0:
        raise ConfigError(f"{key}={value!r}: must be a number > 0")


def require_range(key: str, value: Any, low: float, high: float) -> None:
    if not _is_number(value) or not low <= value <= high:
        raise ConfigError(f"{key}={value!r}: must be a number in [{low}, {high}]")
