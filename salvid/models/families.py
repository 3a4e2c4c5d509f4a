"""What a model family is: its name, where its network class lives, and what it needs of the process.

A model config names its family in ``family`` (absent: :data:`DEFAULT_FAMILY`, so that model cards written
before configs named their family still load); its other keys are the arguments of the family's network class.
Only the families listed here can be built, whatever a file says. Importing this module does not import torch:
training reads ``training_isa_cap`` before torch loads (:func:`salvid.runtime.environment.cap_cpu_isa_for_training`).

A new family: a module in ``salvid/models/`` with a network class that offers
:class:`salvid.models.interface.SaliencyNetwork`, and one entry in :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib
import inspect
import reprlib
from dataclasses import dataclass
from typing import Any

from salvid.errors import ConfigError


@dataclass(frozen=True)
class Family:
    name: str
    module: str  # where the network class is defined
    class_name: str
    # bf16 training of 3D convolutions can crash oneDNN on AMX CPUs: such families train under an ISA cap
    training_isa_cap: bool = False
    # encodes each frame on its own (interface.FrameEncodingNetwork): inference reuses a frame's features
    encodes_frames: bool = False
    # settings that say how the network is trained, not what its weights are: fine-tuning may change them
    training_settings: frozenset[str] = frozenset()

    def network_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.class_name)

    def check_settings(self, config: dict[str, Any]) -> None:
        """The family's own checks of a model config's values (its module's ``check_settings``), without
        building the network."""
        settings = {k: v for k, v in with_defaults(config).items() if k != "family"}
        importlib.import_module(self.module).check_settings(**settings)

    def arguments(self) -> dict[str, inspect.Parameter]:
        """The network constructor's parameters: the settings a model config of this family may hold."""
        return {k: p for k, p in inspect.signature(self.network_class().__init__).parameters.items() if k != "self"}


FAMILIES: dict[str, Family] = {
    "paper": Family("paper", "salvid.models.paper", "SaliencyNet3D", training_isa_cap=True),
    "fusion3d": Family("fusion3d", "salvid.models.fusion3d", "FusionNet3D", encodes_frames=True,
                       training_settings=frozenset({"pretrained", "freeze_backbone"})),
}
DEFAULT_FAMILY = "paper"


def family_of(config: dict[str, Any]) -> Family:
    """The family a model config names (``family``, or the default)."""
    name = config.get("family", DEFAULT_FAMILY)
    if not isinstance(name, str) or name not in FAMILIES:  # a list from a file is no name (nor hashable)
        raise ConfigError(f"model.family={reprlib.repr(name)}: must be one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def network_arguments(config: dict[str, Any]) -> set[str]:
    """The keys a model config of this family may hold (``family`` and the constructor's arguments)."""
    return {"family"} | set(family_of(config).arguments())


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A model config with its family and every constructor default spelled out: a checkpoint written before a
    key existed holds the same network as a config that gives the default."""
    family = family_of(config)
    defaults = {k: p.default for k, p in family.arguments().items() if p.default is not inspect.Parameter.empty}
    return {"family": family.name, **defaults, **config}


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """What defines a network's weights (family, widths, frames, input size, ...): the config with its defaults,
    without the family's training settings."""
    training = family_of(config).training_settings
    return {k: v for k, v in with_defaults(config).items() if k not in training}


def build_network(config: dict[str, Any]):
    """The network a model config describes (``family`` + constructor arguments)."""
    unknown = sorted(set(config) - network_arguments(config))
    if unknown:
        raise ConfigError(f"model.{unknown[0]}: not a setting of model family {family_of(config).name!r} "
                          f"(its settings: {sorted(network_arguments(config))})")
    return family_of(config).network_class()(**{k: v for k, v in config.items() if k != "family"})
