"""The kill-switch policy in the faust worker: alerts in, signed commands out on the compacted topic.

Thin wiring of :class:`~tripwire.processors.killswitch_policy.KillSwitchPolicy` (plain Python) to
the alerts topic. The operator's per-incident state (the trip still in force) lives in a faust
Table keyed by incident_id, like the alerts topic, so a restarted worker does not trip an incident
twice. The worker also follows the kill-switch topic (the SDK's listener), so a policy trip never
replaces a stronger or longer switch already on its scope, such as a human's open-ended freeze.
Commands are published at once, outside the worker's transactions (see :class:`CommandPublisher`):
the table of trips is transactional, the command's visibility does not wait for a commit.

The agent is only registered when a signing key is configured
(``TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH``); without one the worker runs and logs that the policy is off.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tripwire.producers._ks_config import KillSwitchConfig

log = logging.getLogger(__name__)

TABLE_NAME = "state-killswitch-trips"
AGENT_NAME = "tripwire.processors.killswitch_policy"


def killswitch_topic(runtime: Any) -> str:
    from tripwire.schemas import topic_names

    return topic_names(runtime.config.topic_prefix).killswitch


def register_killswitch_agent(runtime: Any, config: KillSwitchConfig | None = None) -> bool:
    """Add the policy agent to ``runtime.app``; False (and a warning) when it cannot sign commands."""
    from tripwire.processors.killswitch_policy import KillSwitchPolicy, load_killswitch_policy
    from tripwire.producers._ks_listener import KillSwitchListener, ensure_topic
    from tripwire.producers._ks_signing import CommandSigner, CommandVerifier, load_public_key, parse_public_key
    from tripwire.producers._ks_state import KillSwitchState

    if AGENT_NAME in runtime.app.agents:  # already wired (the worker and a caller both asked)
        return True
    config = config or KillSwitchConfig()
    if not config.enabled or config.private_key_path is None:
        log.warning("killswitch policy is off: no signing key (set TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH)")
        return False
    signer = CommandSigner.from_file(config.private_key_path)
    topic = killswitch_topic(runtime)
    # The policy's clients talk to the worker's cluster: its bootstrap and its TLS/SASL settings.
    topic_config = config.model_copy(
        update={"bootstrap": runtime.config.bootstrap, "topic": topic, **runtime.config.security_fields()}
    )
    ensure_topic(topic_config)
    # The worker follows the topic like an SDK does, so a trip never replaces a stronger switch on its scope.
    trusted = [signer.public_key()]
    if config.public_key_path is not None:
        trusted.append(load_public_key(config.public_key_path))
    elif config.public_key is not None:
        trusted.append(parse_public_key(config.public_key))
    state = KillSwitchState(CommandVerifier(trusted), max_clock_skew_s=config.max_clock_skew_s)
    publisher = CommandPublisher(topic_config)
    # A replayed older command would, once compaction drops the newer one, be what restarted SDKs see:
    # re-publishing the exact bytes of the command in force puts it back last on its key.
    KillSwitchListener(topic_config, state, name="tripwire-killswitch-policy", on_replay=publisher.republish).start()
    policy = KillSwitchPolicy(
        load_killswitch_policy(config.policy_path), signer, current=lambda scope: state.switches().get(scope)
    )
    app = runtime.app
    import faust

    schema: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        TABLE_NAME,
        schema=schema,
        partitions=runtime.config.partitions,
        help="kill-switch policy: the trip in force per incident",
    )
    table.key_serializer = table.value_serializer = "raw"
    raw = {"key_serializer": "raw", "value_serializer": "raw", "key_type": bytes, "value_type": bytes}
    agent = KillSwitchPolicyAgent(runtime, policy, table, publisher)

    async def killswitch_policy(stream: Any) -> None:
        async for event in stream.events():
            await agent.handle(event.message)

    app.agent(app.topic(runtime.topics.alerts, **raw), name=AGENT_NAME)(killswitch_policy)
    log.info(
        "killswitch policy on alerts=%s -> %s key_id=%s rules=%d",
        runtime.topics.alerts,
        topic,
        signer.key_id,
        len(policy.config.rules),
    )
    return True


class CommandPublisher:
    """Publishes signed commands straight away (idempotent producer, acks=all), outside the worker's
    transactions: a command must reach agents now, not at the next transaction commit. The price is
    that a worker killed between publishing and committing may trip the same incident again after its
    restart: a second, identical-in-effect command, which is harmless."""

    def __init__(self, config: KillSwitchConfig, timeout_s: float = 10.0) -> None:
        from confluent_kafka import Producer

        self.topic = config.topic
        self.timeout_s = timeout_s
        self.republished = 0
        self._producer = Producer(
            {
                **config.kafka_properties(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "client.id": "tripwire-killswitch-policy",
            }
        )

    def publish(self, commands: list[Any]) -> None:
        """Deliver every command or raise (blocking; run it off the event loop)."""
        from tripwire.schemas import encode

        errors: list[Any] = []
        for command in commands:
            self._producer.produce(
                self.topic,
                key=command.scope.encode(),
                value=encode(command),
                on_delivery=lambda err, _m: errors.append(err) if err is not None else None,
            )
        left = self._producer.flush(self.timeout_s)
        if errors or left:
            raise RuntimeError(
                f"kill-switch command not delivered to {self.topic}: "
                f"{errors[0] if errors else f'{left} pending after {self.timeout_s:g}s'}"
            )

    def republish(self, scope: str, value: bytes) -> None:
        """Put the exact signed bytes of the command in force for ``scope`` back at the end of its key."""
        self._producer.produce(self.topic, key=scope.encode(), value=value)
        self._producer.poll(0)
        self.republished += 1
        log.warning("killswitch replay of an older command on scope=%s: re-published the command in force", scope)


class KillSwitchPolicyAgent:
    """One alert message at a time: restore the incident's trip, run the policy, publish, store."""

    def __init__(self, runtime: Any, policy: Any, table: Any, publisher: CommandPublisher) -> None:
        self.runtime = runtime
        self.policy = policy
        self.table = table
        self.publisher = publisher

    async def handle(self, msg: Any) -> None:
        import asyncio

        from tripwire.schemas import Alert, DecodeError

        runtime = self.runtime
        tid = runtime._tid(msg)
        if msg.value is None:
            return
        try:
            alert = runtime.codec.decode(msg.value, True)
        except DecodeError as e:
            runtime.dead_letter(msg, tid, "decode", f"{e.reason}: {e}", type(e).__name__)
            return
        if not isinstance(alert, Alert):
            runtime.dead_letter(msg, tid, "validate", f"not an alert: a {type(alert).__name__}", "NotAnAlert")
            return
        key = alert.incident_id.encode()
        try:
            stored = self.table.get(key)
            before = json.loads(stored) if stored else None
            self.policy.restore_trip(alert.incident_id, before)
            commands = self.policy.process(alert)
        except Exception as e:  # never stop the worker: the alert goes to the DLQ with the reason
            log.exception("killswitch policy failed on alert %s", alert.alert_id)
            runtime.dead_letter(msg, tid, "process", f"killswitch policy: {e}", type(e).__name__)
            return
        if commands:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.publisher.publish, commands)
            except Exception as e:
                # Not recorded as tripped, so the incident's next update trips again; the alert is kept.
                self.policy.restore_trip(alert.incident_id, before)
                log.error("killswitch trip not published alert_id=%s error=%s", alert.alert_id, e)
                runtime.dead_letter(msg, tid, "notify", f"killswitch publish: {e}", type(e).__name__)
                return
            for command in commands:
                log.warning(
                    "killswitch tripped scope=%s action=%s alert_id=%s incident=%s command_id=%s",
                    command.scope,
                    command.action,
                    command.alert_id,
                    alert.incident_id,
                    command.command_id,
                )
        trip = self.policy.trip_state(alert.incident_id)
        if trip is not None:
            self.table[key] = json.dumps(trip, separators=(",", ":")).encode()
        elif stored is not None:
            del self.table[key]


__all__ = ["CommandPublisher", "KillSwitchPolicyAgent", "register_killswitch_agent"]
