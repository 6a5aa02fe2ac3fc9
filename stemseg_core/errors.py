"""The core's bottom error type, shared by the config and the registries (imports nothing)."""


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message says which and why."""


__all__ = ["ConfigError"]
