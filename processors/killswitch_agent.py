"""The kill-switch policy in the faust worker: alerts in, signed commands out on the compacted topic.

Thin wiring of :class:`~tripwire.processors.killswitch_policy.KillSwitchPolicy` (plain Python) to
the alerts topic. The operator's per-incident state (the trip still in force) lives in a faust
Table keyed by incident_id, like the alerts topic, so a restarted worker does not trip an incident
twice. The worker also follows the kill-switch topic (the SDK's listener), so a policy trip never
replaces a stronger or longer switch already on its scope, such as a human's open-ended freeze.
Commands are signed and published at once by the kill switch's :class:`~tripwire.killswitch.CommandPublisher`
(idempotent producer, acks=all), outside the worker's transactions: a command must reach agents now, not
at the next transaction commit. The table of trips is transactional; the price is that a worker killed
between publishing and committing may trip the same incident again after its restart: a second,
identical-in-effect command, which is harmless.

The agent is only registered when a signing key is configured
(``TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH``); without one the worker runs and logs that the policy is off.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tripwire.killswitch import CommandPublisher, KillSwitchConfig

log = logging.getLogger(__name__)

TABLE_NAME = "state-killswitch-trips"
AGENT_NAME = "tripwire.processors.killswitch_policy"
PUBLISH_TIMEOUT_S = 10.0
TOPIC_TIMEOUT_S = 15.0


def killswitch_topic(runtime: Any) -> str:
    from tripwire.schemas import topic_names

    return topic_names(runtime.config.topic_prefix).killswitch


def register_killswitch_agent(runtime: Any, config: KillSwitchConfig | None = None) -> bool:
    """Add the policy agent to ``runtime.app``; False (and a warning) when it cannot sign commands."""
    from tripwire.killswitch import (
        CommandVerifier,
        KillSwitchListener,
        KillSwitchState,
        Republisher,
        build_signer,
        configured_public_keys,
    )
    from tripwire.processors.killswitch_policy import KillSwitchPolicy, load_killswitch_policy

    if AGENT_NAME in runtime.app.agents:  # already wired (the worker and a caller both asked)
        return True
    config = config or KillSwitchConfig()
    if not config.enabled or config.private_key_path is None:
        log.warning("killswitch policy is off: no signing key (set TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH)")
        return False
    signer = build_signer(config)
    topic = killswitch_topic(runtime)
    # The policy's clients talk to the worker's cluster: its bootstrap and its TLS/SASL settings.
    topic_config = config.model_copy(
        update={"bootstrap": runtime.config.bootstrap, "topic": topic, **runtime.config.security_fields()}
    )
    # The worker follows the topic like an SDK does, so a trip never replaces a stronger switch on its scope,
    # and a new command is dated after what its scope holds.
    trusted = [signer.public_key(), *configured_public_keys(config)]
    state = KillSwitchState(CommandVerifier(trusted), max_clock_skew_s=config.max_clock_skew_s)

    def newest(scope: str) -> Any:
        held = state.switches().get(scope)
        return held.issued_at if held is not None else None

    publisher = CommandPublisher(topic_config, signer, timeout_s=PUBLISH_TIMEOUT_S,
                                 client_id="tripwire-killswitch-policy", newest=newest)
    publisher.ensure_topic(timeout=TOPIC_TIMEOUT_S)
    # Compaction cannot undo a switch: a record on a scope's key that is not its newest command (a replay, a
    # tombstone, a re-keyed copy) is followed by a re-publication of the newest one, and every scope's newest
    # command is re-published more often than the topic's min.compaction.lag.ms (killswitch/README.md).
    listener = KillSwitchListener(topic_config, state, name="tripwire-killswitch-policy",
                                  on_replay=publisher.republish).start()
    Republisher(listener, publisher, config.republish_interval_s).start()
    # The operator builds unsigned commands; the publisher signs what it publishes.
    policy = KillSwitchPolicy(
        load_killswitch_policy(config.policy_path), current=lambda scope: state.switches().get(scope)
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
                await asyncio.get_running_loop().run_in_executor(None, self.publisher.publish_all, commands)
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


__all__ = ["KillSwitchPolicyAgent", "register_killswitch_agent"]
