"""Registries of model parts, by name (as detectron2's ``BACKBONE_REGISTRY``).

Adding a backbone, a mixing function or a network architecture is one new file in
``stemseg_core/model/backbones/``, ``mixings/`` or ``architectures/`` that registers itself::

    from stemseg_core.model.registry import BACKBONES

    @BACKBONES.register("my_backbone")
    def build_my_backbone(cfg: BackboneConfig) -> nn.Module: ...

Every module of those three packages is imported the first time a registry is asked for a name
(:meth:`Registry.get`, :meth:`Registry.names`), so no central list needs an edit; the config
validation reads the allowed names from here. This module itself imports neither torch nor the
parts, so the config can use it without loading the model.

What each registry holds:

- ``BACKBONES``: ``builder(cfg.model.backbone) -> nn.Module`` whose ``forward(x, with_stem=False)``
  maps (N, 3, H, W) normalised images to the 4 FPN maps at strides 4, 8, 16, 32 and which has
  ``out_channels`` and ``stem_channels`` (see backbone.py).
- ``MIXING_FUNCTIONS``: ``builder(cfg.model.embedding) -> Mixing``-like module (mixing.py).
- ``ARCHITECTURES``: ``builder(cfg) -> nn.Module``, the whole network (``cfg.model.architecture``).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

#: Packages whose modules register parts (imported on first look-up).
_PART_PACKAGES = ("stemseg_core.model.backbones", "stemseg_core.model.mixings",
                  "stemseg_core.model.architectures")
_loaded = False


def _load_parts() -> None:
    """Import every module of the part packages once (they register themselves)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in _PART_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{info.name}")


class Registry:
    """Name -> builder. ``@REG.register("name")`` adds one; ``REG.get(name)`` finds it."""

    def __init__(self, kind: str, config_key: str):
        self.kind = kind
        self.config_key = config_key
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders and self._builders[name] is not builder:
                raise ValueError(f"{self.kind} '{name}' is registered twice "
                                 f"({self._builders[name]} and {builder}); pick another name")
            self._builders[name] = builder
            return builder
        return add

    def names(self) -> tuple[str, ...]:
        """All registered names, in registration order."""
        _load_parts()
        return tuple(self._builders)

    def get(self, name: str) -> Callable[..., Any]:
        _load_parts()
        if name not in self._builders:
            raise ValueError(f"{self.config_key}: unknown {self.kind} '{name}'; allowed: "
                             f"{', '.join(self._builders)}")
        return self._builders[name]

    def __contains__(self, name: object) -> bool:
        _load_parts()
        return name in self._builders


BACKBONES = Registry("backbone", "model.backbone.name")
MIXING_FUNCTIONS = Registry("mixing function", "model.embedding.mixing")
ARCHITECTURES = Registry("architecture", "model.architecture")
