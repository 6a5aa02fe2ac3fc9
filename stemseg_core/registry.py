"""Every registry of named implementations, at the bottom of the core (imports nothing of ours
but errors.py).

An implementation registers itself where it is defined::

    from stemseg_core.registry import BACKBONES

    @BACKBONES.register("my_backbone")
    def build_my_backbone(cfg: BackboneConfig) -> nn.Module: ...

Before a registry's first look-up (:meth:`Registry.get`, ``names``, ``in``, iteration) every
module of its package is imported (``pkgutil`` scan), so adding one is one new file and no
central list. Config validation reads the allowed names from here.

Third-party modules (outside ``stemseg_core``) are found the same way, through either

- the entry point group ``stemseg.plugins`` (in a package's ``pyproject.toml``:
  ``[project.entry-points."stemseg.plugins"] mine = "my_pkg.stemseg_parts"``), or
- the environment variable ``STEMSEG_PLUGINS``: comma-separated module names,

each imported once, before the first look-up of any registry; a module may register into
several registries. The registries and what they hold:

- ``BACKBONES`` (``model/backbones/``): ``builder(cfg.model.backbone) -> nn.Module`` mapping
  (N, 3, H, W) images to the 4 FPN maps at strides 4, 8, 16, 32 (backbones/torchvision_fpn.py).
- ``MIXING_FUNCTIONS`` (``model/mixings/``): ``builder(cfg.model.embedding) -> Mixing``-like.
- ``ARCHITECTURES`` (``model/architectures/``): ``builder(cfg) -> nn.Module``, the whole network.
- ``DATASET_FORMATS`` (``data/formats/``): ``DatasetFormat`` subclasses (detect + load).
- ``BACKENDS`` (``backends/``): ``Backend`` subclasses (backends/base.py), by their ``name``.
- ``CAMERA_EFFECTS`` (the module ``data/camera_effects.py``): ``CameraEffect`` entries.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from stemseg_core.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Entry point group whose entries name third-party modules that register implementations.
PLUGIN_GROUP = "stemseg.plugins"
#: Environment variable: comma-separated module names imported like the entry points.
PLUGIN_ENV = "STEMSEG_PLUGINS"

_plugins_loaded = False


def plugin_modules() -> list[str]:
    """Module names of the third-party plugins: the entry points, then ``STEMSEG_PLUGINS``."""
    names = [ep.value for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)]
    names += [n.strip() for n in os.environ.get(PLUGIN_ENV, "").split(",") if n.strip()]
    return list(dict.fromkeys(names))


def load_plugins() -> None:
    """Import every plugin module once (they register themselves)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for name in plugin_modules():
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"stemseg plugin module {name!r} (from entry point group "
                              f"{PLUGIN_GROUP!r} or ${PLUGIN_ENV}) cannot be imported: {e}; "
                              f"install it or remove it from there") from e
        log.debug("loaded stemseg plugin %s", name)


class Registry(Generic[T]):
    """Name -> implementation. ``package``: its modules are imported before the first look-up;
    ``config_key``: the config field that names one (in error messages)."""

    def __init__(self, kind: str, config_key: str | None = None,
                 package: str | None = None) -> None:
        self.kind = kind
        self.config_key = config_key
        self.package = package
        self._items: dict[str, T] = {}
        self._loaded = package is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding ``obj`` under ``name``; a name can be registered once."""
        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({self._items[name]!r} and {obj!r}); pick another name")
            self._items[name] = obj
            return obj
        return add

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):  # a module: itself
            importlib.import_module(f"{self.package}.{info.name}")
        load_plugins()

    def get(self, name: str) -> T:
        """The implementation named ``name``; ConfigError listing the names otherwise."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            where = f"{self.config_key}: " if self.config_key else ""
            raise ConfigError(f"{where}unknown {self.kind} {name!r}; allowed: "
                              f"{', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        """(name, implementation) pairs, in registration order."""
        self._load()
        return iter(list(self._items.items()))


BACKBONES: Registry[Callable[..., Any]] = Registry(
    "backbone", "model.backbone.name", "stemseg_core.model.backbones")
MIXING_FUNCTIONS: Registry[Callable[..., Any]] = Registry(
    "mixing function", "model.embedding.mixing", "stemseg_core.model.mixings")
ARCHITECTURES: Registry[Callable[..., Any]] = Registry(
    "architecture", "model.architecture", "stemseg_core.model.architectures")
DATASET_FORMATS: Registry[Any] = Registry("data format", "data.format",
                                          "stemseg_core.data.formats")
BACKENDS: Registry[Any] = Registry("backend", "inference.backend", "stemseg_core.backends")
CAMERA_EFFECTS: Registry[Any] = Registry("camera effect", "data.camera_effects",
                                         "stemseg_core.data.camera_effects")

__all__ = ["ARCHITECTURES", "BACKBONES", "BACKENDS", "CAMERA_EFFECTS", "DATASET_FORMATS",
           "MIXING_FUNCTIONS", "PLUGIN_ENV", "PLUGIN_GROUP", "Registry", "load_plugins",
           "plugin_modules"]
