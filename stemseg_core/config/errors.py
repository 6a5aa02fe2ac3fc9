"""The one error type of the config package (defined at the bottom of the core, errors.py, so
the registries can raise it too)."""
from stemseg_core.errors import ConfigError

__all__ = ["ConfigError"]
