"""Who may write the kill-switch topic: the Kafka ACLs of a deployment whose brokers run an
authorizer (``authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer``,
``allow.everyone.if.no.acl.found=false``).

A signed command is only half the boundary: anyone who may write the compacted kill-switch topic
can append records to it (replays, tombstones) even without a signing key. So only the control
plane's principal may write it; the agents' principal may read it (and write the events topic):

============================  =====================  ==========================================
principal                     resource               operations
============================  =====================  ==========================================
control plane                 kill-switch topic      WRITE, READ, DESCRIBE (allow)
agents                        kill-switch topic      READ, DESCRIBE (allow); WRITE (**deny**)
agents                        events topic           WRITE, DESCRIBE (allow)
agents                        groups ``tripwire-``   READ (allow; prefixed: the SDK's listener
                              ``killswitch-*``       sets a throwaway group id, never commits)
============================  =====================  ==========================================

The explicit deny keeps the agents off the kill-switch topic even if a broader allow is added
later (a deny wins over any allow). Topics and ACLs are created by an admin principal (a super user).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tripwire.core.errors import ConfigError

log = logging.getLogger(__name__)

KILLSWITCH_GROUP_PREFIX = "tripwire-killswitch-"


class KafkaAclError(ConfigError):
    """The broker refused to create ACLs (no authorizer, or the principal may not alter them)."""


def principal(name: str) -> str:
    """``User:<name>`` for a SASL user name (a full ``Type:name`` principal is kept as given)."""
    name = name.strip()
    if not name:
        raise KafkaAclError("a principal needs a name (the SASL user name)")
    return name if ":" in name else f"User:{name}"


def killswitch_acls(*, killswitch_topic: str, events_topic: str, control_plane: str, agents: str) -> list[Any]:
    """The ACL bindings of the table above, for these topics and principals (SASL user names)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    cp, ag = principal(control_plane), principal(agents)
    if cp == ag:
        raise KafkaAclError(f"the control plane and the agents need different principals, both are {cp}")
    allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
    topic, group, literal = ResourceType.TOPIC, ResourceType.GROUP, ResourcePatternType.LITERAL

    def acl(who: str, rtype: Any, name: str, op: Any, perm: Any, pattern: Any = literal) -> Any:
        return AclBinding(rtype, name, pattern, who, "*", op, perm)

    return [
        *(acl(cp, topic, killswitch_topic, op, allow)
          for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)),
        *(acl(ag, topic, killswitch_topic, op, allow) for op in (AclOperation.READ, AclOperation.DESCRIBE)),
        acl(ag, topic, killswitch_topic, AclOperation.WRITE, deny),
        *(acl(ag, topic, events_topic, op, allow) for op in (AclOperation.WRITE, AclOperation.DESCRIBE)),
        acl(ag, group, KILLSWITCH_GROUP_PREFIX, AclOperation.READ, allow, ResourcePatternType.PREFIXED),
    ]


def create_acls(admin: Any, bindings: Sequence[Any], *, timeout: float = 30.0) -> int:
    """Create ``bindings`` with a confluent-kafka ``AdminClient`` (idempotent: an existing ACL is
    kept); returns how many were asked for. KafkaAclError names the first one the broker refused."""
    from confluent_kafka import KafkaException

    futures = admin.create_acls(list(bindings), request_timeout=timeout)
    for binding, fut in futures.items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as e:
            raise KafkaAclError(f"the broker refused the ACL {binding}: {e.args[0] if e.args else e}") from e
    log.info("kafka acls created count=%d", len(bindings))
    return len(bindings)
