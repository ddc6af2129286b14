"""The shared kernel: what every stage package may import, and nothing else.

- :mod:`tripwire.core.errors`: the root :class:`TripwireError` and the errors shared by all packages;
- :mod:`tripwire.core.kafka_security`: the one block of Kafka TLS/SASL settings, with converters for
  librdkafka and aiokafka, and the fail-fast watch for refused logins;
- :mod:`tripwire.core.kafka_acls`: who may write the kill-switch topic (the ACLs of a broker with an
  authorizer: only the control plane writes it, agents read it);
- :mod:`tripwire.core.ratelimit`: rate-limited log lines;
- :mod:`tripwire.core.gcpolicy`: the garbage-collector policy of a long-running stage process.

The kernel imports no framework (no faust, no ClickHouse, no Streamlit) and nothing of the application
shell (``tripwire.cli``, the demo, the simulator, the dev services); stage packages import the kernel and
each other's public APIs, never the shell.
"""

from tripwire.core.errors import ConfigError, MissingExtraError, TripwireError
from tripwire.core.gcpolicy import tune_gc
from tripwire.core.ratelimit import RateLimitedLog

__all__ = ["ConfigError", "MissingExtraError", "RateLimitedLog", "TripwireError", "tune_gc"]
