"""The one error type of the config package."""


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message says which and why."""
