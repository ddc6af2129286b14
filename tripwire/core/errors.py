"""The root of every error tripwire raises on purpose."""


class TripwireError(Exception):
    """Base class of all tripwire errors; each package derives its own from it."""


class ConfigError(TripwireError, ValueError):
    """A configuration value is missing or invalid; the message names the field."""


class MissingExtraError(TripwireError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed; install it with: pip install 'tripwire[{extra}]'")
        self.module = module
        self.extra = extra
