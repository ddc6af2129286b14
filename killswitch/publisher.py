"""Signing and publishing kill-switch commands: :class:`CommandPublisher`, the one way a command reaches the topic.

The on-call CLI, the dashboard's actions and the processors' kill-switch policy all publish through it:

- the command is signed with the control plane's Ed25519 key (``TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH``,
  or the signer given);
- the compacted topic is created first if it does not exist (never left to broker auto-creation, which
  would make a plain, uncompacted topic), once per process and topic;
- it is produced keyed by its scope (the topic keeps one command per scope) by an idempotent producer
  with ``acks=all``, with the TLS/SASL settings of :class:`KillSwitchConfig`;
- the call waits for the broker's acknowledgement within ``timeout_s`` and raises
  :class:`CommandPublishError` otherwise (refused, unreachable, credentials refused): it never returns
  without knowing the command is on the topic.

- its ``issued_at`` is moved just after the newest signed command its scope holds on the topic when that
  one is dated later (a command from a control plane whose clock ran ahead, inside the SDKs' skew
  allowance): a legitimate reset is never refused as a replay of a command "from the future".

An in-process ``sink`` replaces Kafka for the embedded demo: the signed command is handed to it instead.

:class:`Republisher` is the control plane's side of "compaction cannot undo a switch": it re-publishes the
exact signed bytes of every scope's newest command more often than the topic's ``min.compaction.lag.ms``,
so that command is always in the log, whatever was appended after it (see killswitch/README.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from tripwire.core.kafka_security import AuthWatch, KafkaAuthError
from tripwire.killswitch.config import KillSwitchConfig
from tripwire.killswitch.errors import CommandPublishError
from tripwire.killswitch.listener import KillSwitchListener, ensure_topic, read_topic
from tripwire.killswitch.signing import CommandSigner, CommandVerifier, build_signer, configured_public_keys
from tripwire.killswitch.state import KillSwitchState
from tripwire.schemas import KillSwitchCommand, encode

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 15.0
TOPIC_TIMEOUT_S = 15.0
FLUSH_SLICE_S = 0.1
CLIENT_ID = "tripwire-killswitch-publisher"

CommandSink = Callable[[KillSwitchCommand], None]
NewestLookup = Callable[[str], datetime | None]
"""scope -> ``issued_at`` of the newest signed command the scope holds (None: none)."""
_TICK = timedelta(microseconds=1)  # the resolution of issued_at on the wire (timestamp-micros)

_topics_ensured: set[tuple[str, str]] = set()
_topics_lock = threading.Lock()


class CommandPublisher:
    """Signs commands and publishes them on the compacted kill-switch topic (see the module doc).

    One producer per publisher, created on first use and reused; safe to share between threads.
    """

    def __init__(
        self,
        config: KillSwitchConfig,
        signer: CommandSigner | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client_id: str = CLIENT_ID,
        sink: CommandSink | None = None,
        newest: NewestLookup | None = None,
    ) -> None:
        """``signer`` defaults to the key of ``config.private_key_path`` (``ConfigError`` if none is set,
        ``KillSwitchKeyError`` if it cannot be read). ``newest`` tells what each scope holds (a control plane
        that follows the topic passes its state); without it a Kafka publish reads the topic first."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        self.config = config
        self.signer = signer if signer is not None else build_signer(config)
        self.topic = config.topic
        self.timeout_s = timeout_s
        self.client_id = client_id
        self.republished = 0
        self._sink = sink
        self._newest = newest
        self._producer: Any = None
        self._auth: AuthWatch | None = None
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self.signer.key_id

    # -- the topic ---------------------------------------------------------------------------

    def ensure_topic(self, timeout: float | None = None) -> None:
        """Create the compacted topic if needed (once per process and topic); CommandPublishError on failure."""
        self._ensure_topic(time.monotonic() + (TOPIC_TIMEOUT_S if timeout is None else timeout))

    def _ensure_topic(self, deadline: float) -> None:
        key = (self.config.bootstrap, self.topic)
        if key in _topics_ensured:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CommandPublishError(f"no time left to check the kill-switch topic {self.topic}")
        try:
            created = ensure_topic(self.config, timeout=remaining)
        except Exception as e:  # KafkaException, a timeout, bad client settings
            raise CommandPublishError(
                f"cannot create or check the kill-switch topic {self.topic} at {self.config.bootstrap}: "
                f"{e or type(e).__name__}"
            ) from e
        if created:
            log.info("killswitch topic created topic=%s partitions=%d", self.topic, self.config.partitions)
        with _topics_lock:
            _topics_ensured.add(key)

    # -- signing and publishing ------------------------------------------------------------------

    def sign(self, command: KillSwitchCommand) -> KillSwitchCommand:
        """A copy of ``command`` signed with the publisher's key."""
        try:
            return self.signer.sign(command)
        except Exception as e:
            raise CommandPublishError(f"cannot sign command {command.command_id}: {e}",
                                      command_id=command.command_id, scope=command.scope) from e

    def publish(self, command: KillSwitchCommand) -> KillSwitchCommand:
        """Sign ``command``, publish it and wait for the broker's ack; return the signed command."""
        return self.publish_all([command])[0]

    def publish_all(self, commands: Sequence[KillSwitchCommand]) -> list[KillSwitchCommand]:
        """Sign and publish every command, then wait (one deadline for all) until the broker acknowledged each;
        CommandPublishError names the first that was not. Blocking: run it off an event loop."""
        if not commands:
            return []
        deadline = time.monotonic() + self.timeout_s  # one deadline for reading, checking and delivering
        if self._sink is None and self._newest is None:
            self._ensure_topic(deadline)  # first: it fails fast on refused credentials or no broker
            held = self._held_on_topic(deadline, commands[0])
            commands = [self.after_held(c, held.get(c.scope)) for c in commands]
        elif self._newest is not None:
            commands = [self.after_held(c, self._newest(c.scope)) for c in commands]
        signed = [self.sign(c) for c in commands]
        if self._sink is not None:
            for command in signed:
                try:
                    self._sink(command)
                except Exception as e:
                    raise CommandPublishError(
                        f"the kill-switch command could not be delivered: {type(e).__name__}: {e}",
                        command_id=command.command_id, scope=command.scope,
                    ) from e
            return signed
        self._ensure_topic(deadline)
        self._deliver(signed, deadline)
        return signed

    @staticmethod
    def after_held(command: KillSwitchCommand, held_at: datetime | None) -> KillSwitchCommand:
        """``command`` dated just after ``held_at`` when that is not earlier (its ttl kept), else unchanged."""
        if held_at is None or command.issued_at > held_at:
            return command
        shift = held_at - command.issued_at + _TICK
        expires = command.expires_at + shift if command.expires_at is not None else None
        log.warning("killswitch scope=%s holds a command dated %s: issuing after it", command.scope,
                    held_at.isoformat())  # fmt: skip
        return command.model_copy(update={"issued_at": command.issued_at + shift, "expires_at": expires})

    def _held_on_topic(self, deadline: float, first: KillSwitchCommand) -> dict[str, datetime]:
        """issued_at of each scope's newest validly signed command now on the topic (as any SDK would hold)."""
        keys = [self.signer.public_key(), *configured_public_keys(self.config)]
        state = KillSwitchState(CommandVerifier(keys), max_clock_skew_s=self.config.max_clock_skew_s)
        try:
            records = read_topic(self.config, timeout=max(0.5, deadline - time.monotonic()))
        except Exception as e:  # unreachable or refused: publishing could not work either
            raise CommandPublishError(
                f"cannot read the kill-switch topic {self.topic} at {self.config.bootstrap} before publishing: "
                f"{e or type(e).__name__}",
                command_id=first.command_id, scope=first.scope,
            ) from e
        from tripwire.schemas import DecodeError, decode

        for m in records:
            if m.value() is None:
                continue
            try:
                command = decode(m.value())
            except DecodeError:
                continue
            if isinstance(command, KillSwitchCommand):
                state.apply(command, key=m.key().decode("utf-8", "replace") if m.key() is not None else None)
        return {scope: s.issued_at for scope, s in state.switches().items()}

    def republish(self, scope: str, value: bytes, *, periodic: bool = False) -> None:
        """Put the exact signed bytes of the command ``scope`` holds back at the end of its key: after a record
        that could otherwise end up last on the key (``KillSwitchListener(on_replay=...)``), or periodically
        (:class:`Republisher`). Does not wait for the ack: it runs on the listener's or the republisher's thread."""
        producer = self._get_producer()
        producer.produce(self.topic, key=scope.encode(), value=value)
        producer.poll(0)
        self.republished += 1
        if not periodic:
            log.warning("killswitch record that is not the command held on scope=%s: re-published the held one",
                        scope)  # fmt: skip

    def close(self, timeout: float = 5.0) -> int:
        """Wait (bounded) for what was re-published to be delivered; returns the records still pending."""
        with self._lock:
            producer, self._producer = self._producer, None
        return producer.flush(timeout) if producer is not None else 0

    def __enter__(self) -> CommandPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never show key material
        return f"CommandPublisher(topic={self.topic!r}, bootstrap={self.config.bootstrap!r}, key_id={self.key_id!r})"

    # -- Kafka -------------------------------------------------------------------------------------

    def _get_producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                from confluent_kafka import Producer

                self._auth = AuthWatch(self.config, self.config.bootstrap)
                self._producer = Producer({
                    **self.config.kafka_properties(),
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 0,
                    # librdkafka gives up on a record at the deadline too, so a publish reported as failed
                    # does not land minutes later from the producer's queue.
                    "message.timeout.ms": max(1000, int(self.timeout_s * 1000)),
                    "client.id": self.client_id,
                    "error_cb": self._auth,
                })
            return self._producer

    def _deliver(self, signed: list[KillSwitchCommand], deadline: float) -> None:
        from confluent_kafka import KafkaException

        producer = self._get_producer()
        outcomes: list[tuple[int, Any]] = []

        def on_delivery(index: int) -> Callable[[Any, Any], None]:
            return lambda err, _msg: outcomes.append((index, err))

        for i, command in enumerate(signed):
            try:
                producer.produce(self.topic, key=command.scope.encode(), value=encode(command),
                                 on_delivery=on_delivery(i))
            except (BufferError, KafkaException) as e:
                raise CommandPublishError(f"cannot queue command {command.command_id} for {self.topic}: {e}",
                                          command_id=command.command_id, scope=command.scope) from e
        while len(outcomes) < len(signed):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            producer.flush(min(FLUSH_SLICE_S, remaining))
            self._check_auth()
        failed = next(((i, err) for i, err in sorted(outcomes, key=lambda o: o[0]) if err is not None), None)
        if failed is not None:
            command = signed[failed[0]]
            raise CommandPublishError(
                f"Kafka at {self.config.bootstrap} refused kill-switch command {command.command_id} "
                f"on {self.topic}: {failed[1]}",
                command_id=command.command_id, scope=command.scope,
            )
        if len(outcomes) < len(signed):
            done = {i for i, _ in outcomes}
            command = next(c for i, c in enumerate(signed) if i not in done)
            # Records never sent are dropped now, so a publish reported as failed does not happen later.
            producer.purge(in_queue=True, in_flight=False, blocking=False)
            producer.poll(0)
            raise CommandPublishError(
                f"kill-switch command {command.command_id} on {command.scope} was not acknowledged by Kafka at "
                f"{self.config.bootstrap} (topic {self.topic}) within {self.timeout_s:g}s",
                command_id=command.command_id, scope=command.scope,
            )

    def _check_auth(self) -> None:
        if self._auth is None:
            return
        try:
            self._auth.check()
        except KafkaAuthError as e:
            raise CommandPublishError(str(e)) from e


class Republisher:
    """Every ``interval_s``, re-publish the exact signed bytes of each scope's newest command that ``listener``
    has read (in force, expired or a resume), on a daemon thread. With ``interval_s`` shorter than the topic's
    ``min.compaction.lag.ms``, the log always holds a copy of every scope's newest command younger than the lag,
    which compaction never removes: no replay, tombstone or re-keyed record can leave an older command as the
    only one of its scope, for a running SDK or a freshly started one."""

    def __init__(self, listener: KillSwitchListener, publisher: CommandPublisher, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.listener = listener
        self.publisher = publisher
        self.interval_s = interval_s
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Re-publish every held command now; returns how many."""
        held = self.listener.held_records()
        for scope, raw in held.items():
            self.publisher.republish(scope, raw, periodic=True)
        self.rounds += 1
        if held:
            log.info("killswitch re-published the newest command of %d scope(s)", len(held))
        return len(held)

    def start(self) -> Republisher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tripwire-killswitch-republisher", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception as e:  # a broker hiccup costs one round, never the thread
                log.warning("killswitch re-publication failed, retrying next round error=%r", e)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


__all__ = ["DEFAULT_TIMEOUT_S", "CommandPublisher", "CommandSink", "NewestLookup", "Republisher"]
