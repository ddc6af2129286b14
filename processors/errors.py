"""Errors raised by the stream processors."""

from __future__ import annotations

from tripwire.core.errors import ConfigError, TripwireError


class ProcessorError(TripwireError):
    """Base class of every error the processors raise on purpose."""


class PolicyError(ProcessorError, ConfigError):
    """The detector policy YAML is missing, unreadable or invalid; the message names the field."""


class StateError(ProcessorError):
    """Stored operator state could not be decoded (corrupt or from an incompatible version)."""


class StateVersionError(StateError):
    """Stored operator state is in a newer format than this worker reads (a newer release wrote
    it): upgrade this worker, or roll every worker back together (see ``state_format``)."""


class FaustRuntimeError(ProcessorError, ConfigError):
    """The installed faust-streaming / aiokafka is not the one the processors' patches were written
    for (another version, or a patched or privately used symbol missing or changed); the message
    names the symbol and the supported versions."""
