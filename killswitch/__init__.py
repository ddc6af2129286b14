"""tripwire.killswitch: signed kill-switch commands on a compacted Kafka topic (see README.md).

Scopes, commands, Ed25519 signing and verification, the verified state an agent obeys, the listener
that keeps it current, the settings, and the one :class:`CommandPublisher` through which the CLI, the
dashboard and the processors' policy sign and publish. The SDK's guard (``tripwire.producers.killswitch``)
and the policy operator (``tripwire.processors.killswitch_policy``) are clients of this package.
Dependencies: the base install only (confluent-kafka, cryptography, pydantic, fastavro).
"""

from tripwire.killswitch.commands import MAX_REASON_CHARS, new_command, parse_duration
from tripwire.killswitch.config import KillSwitchConfig
from tripwire.killswitch.errors import (
    CommandPublishError,
    KillSwitchError,
    KillSwitchKeyError,
    ScopeError,
    SignatureError,
)
from tripwire.killswitch.listener import KillSwitchListener, ensure_topic, read_topic, topic_config
from tripwire.killswitch.publisher import CommandPublisher, Republisher
from tripwire.killswitch.scopes import GRAMMAR, CallIdentity, Scope, ScopeKind, matching_scopes, parse_scope, scope_text
from tripwire.killswitch.signing import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    CommandSigner,
    CommandVerifier,
    build_signer,
    build_verifier,
    canonical_bytes,
    configured_public_keys,
    generate_keypair,
    key_id_of,
    load_private_key,
    load_public_key,
    parse_public_key,
)
from tripwire.killswitch.state import (
    CLEAR,
    RISK_ORDER,
    ActiveSwitch,
    ApplyResult,
    KillSwitchState,
    Rejection,
    Throttle,
    Throttles,
    Verdict,
)

__all__ = [
    "CLEAR",
    "GRAMMAR",
    "MAX_REASON_CHARS",
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "RISK_ORDER",
    "ActiveSwitch",
    "ApplyResult",
    "CallIdentity",
    "CommandPublishError",
    "CommandPublisher",
    "CommandSigner",
    "CommandVerifier",
    "KillSwitchConfig",
    "KillSwitchError",
    "KillSwitchKeyError",
    "KillSwitchListener",
    "KillSwitchState",
    "Rejection",
    "Republisher",
    "Scope",
    "ScopeError",
    "ScopeKind",
    "SignatureError",
    "Throttle",
    "Throttles",
    "Verdict",
    "build_signer",
    "build_verifier",
    "canonical_bytes",
    "configured_public_keys",
    "ensure_topic",
    "generate_keypair",
    "key_id_of",
    "load_private_key",
    "load_public_key",
    "matching_scopes",
    "new_command",
    "parse_duration",
    "parse_public_key",
    "parse_scope",
    "read_topic",
    "scope_text",
    "topic_config",
]
