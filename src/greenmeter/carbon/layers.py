"""Where a carbon setting came from: argument, environment or config file, in that order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.models import ResolvedFrom

__all__ = ["Layer", "origin", "pick", "setting"]


@dataclass(frozen=True)
class Layer:
    """One source of settings (argument, environment or config file)."""

    origin: ResolvedFrom  # "explicit" | "env" | "config_file"
    config: CarbonConfig
    label: str

    def first(self, name: str) -> object | None:
        return getattr(self.config, name)


def pick(layers: Sequence[Layer], name: str) -> tuple[object | None, Layer | None]:
    for layer in layers:
        value = layer.first(name)
        if value is not None:
            return value, layer
    return None, None


def origin(layer: Layer, kind: ResolvedFrom) -> ResolvedFrom:
    return kind if layer.origin == "explicit" else layer.origin


def setting(layer: Layer, name: str, env_names: Mapping[str, str]) -> str:
    if layer.origin == "env":
        return f"environment {env_names.get(name, name)}"
    if layer.origin == "config_file":
        return f"config file {layer.label}: {name}"
    return f"argument {name}"
