"""A registry of named implementations, filled by decorators where they are defined.

As detectron2's registries: ``@DATASET_FORMATS.register("kitti_mots")`` on a class in any
module of the registry's package adds it; the package's modules are imported on first use, so
adding an implementation is one new file and no edit of a central list.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from stemseg_core.config import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> implementation. ``package``: import all its modules before the first lookup."""

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self.package = package
        self._items: dict[str, T] = {}
        self._loaded = package is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding ``obj`` under ``name``; a name can be registered once."""
        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({self._items[name]!r} and {obj!r})")
            self._items[name] = obj
            return obj
        return add

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{self.package}.{info.name}")

    def get(self, name: str) -> T:
        """The implementation named ``name``; ConfigError listing the names otherwise."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"{self.kind} {name!r} is not supported; allowed: "
                              f"{', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(list(self._items.items()))


__all__ = ["Registry"]
