"""``tripwire topics create | describe | acls``: the pipeline's topics, created up front with explicit
counts, and the ACLs that keep everyone but the control plane off the kill-switch topic
(:mod:`tripwire.core.kafka_acls`).

A deployment creates its topics once, before any producer or worker starts (the init service of
``docker-compose.yml``), so that broker auto-creation can never make a one-partition events topic
that breaks the processors' co-partitioning. ``create`` reuses the code the workers run at start:

- :func:`tripwire.processors.topics.ensure_runtime_topics`: the contract topics (events, runs,
  metrics, alerts, dlq) and the processors' internal topics, all with ``--partitions``;
- :func:`tripwire.killswitch.ensure_topic`: the compacted kill-switch topic.

Both are idempotent and fail when an existing topic has a different partition count.
"""

from __future__ import annotations

from typing import Any

import typer

topics_app = typer.Typer(help="Create and inspect the pipeline's Kafka topics (explicit partition counts).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _processor_config(**given: Any) -> Any:
    from tripwire.processors.config import ProcessorConfig

    return ProcessorConfig(**{k: v for k, v in given.items() if v is not None})


def _killswitch_config(config: Any, partitions: int | None) -> Any:
    """The kill-switch settings for the processors' cluster: its bootstrap and TLS/SASL settings."""
    from tripwire.killswitch import KillSwitchConfig
    from tripwire.schemas import topic_names

    base = KillSwitchConfig()
    prefix = config.topic_prefix
    update: dict[str, Any] = {"bootstrap": config.bootstrap, **config.security_fields()}
    if prefix:
        update["topic"] = topic_names(prefix).killswitch
    if partitions is not None:
        update["partitions"] = partitions
    return base.model_copy(update=update)


def _describe(
    config: Any, names: list[str], timeout: float, *, wait: bool = False
) -> list[tuple[str, int | None, str]]:
    """(topic, partitions or None when missing, cleanup.policy) for each name; ``wait`` polls the
    metadata until every name is visible (a topic just created may lag behind on this connection)."""
    import time

    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    from tripwire.core.kafka_security import AuthWatch
    from tripwire.processors.admin import list_topics

    watch = AuthWatch(config, config.bootstrap)  # refused credentials: a clear error, not a timeout
    conf: dict[str, Any] = {"bootstrap.servers": config.bootstrap, **config.confluent_conf(), "error_cb": watch}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    meta = list_topics(admin, config.bootstrap, timeout, watch)
    while wait and not all(n in meta for n in names) and time.monotonic() < deadline:
        time.sleep(0.1)  # metadata propagation: poll with a deadline
        meta = list_topics(admin, config.bootstrap, timeout, watch)
    present = [n for n in names if n in meta]
    policies: dict[str, str] = {}
    if present:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in present])
        for res, fut in futures.items():
            entry = fut.result(timeout=timeout).get("cleanup.policy")
            policies[res.name] = entry.value if entry is not None else ""
    return [(n, len(meta[n].partitions) if n in meta else None, policies.get(n, "")) for n in names]


def _print(rows: list[tuple[str, int | None, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for name, partitions, policy in rows:
        count = "missing" if partitions is None else f"{partitions:>4} partitions"
        typer.echo(f"{name.ljust(width)}  {count}  {policy}".rstrip())


@topics_app.command("create")
def create(
    bootstrap: str | None = typer.Option(None, help="Kafka bootstrap servers (default: env / 127.0.0.1:9092)"),
    topic_prefix: str | None = typer.Option(None, help="prefix of every topic name"),
    partitions: int | None = typer.Option(None, min=1, help="partitions of the events topic and of every topic "
                                          "co-partitioned with it (default TRIPWIRE_PROCESSORS_PARTITIONS)"),
    replication: int | None = typer.Option(None, min=1, help="replication factor (default "
                                           "TRIPWIRE_PROCESSORS_REPLICATION)"),
    app_id: str | None = typer.Option(None, help="processors app id = consumer group: names the internal topics"),
    killswitch_partitions: int | None = typer.Option(None, min=1, help="partitions of the compacted kill-switch "
                                                     "topic (default TRIPWIRE_KILLSWITCH_PARTITIONS)"),
    timeout: float = typer.Option(30.0, help="seconds to wait for the broker"),
) -> None:
    """Create every topic the pipeline uses (idempotent); fail if one exists with another partition count."""
    from confluent_kafka import KafkaException

    from tripwire.core.errors import TripwireError
    from tripwire.killswitch import ensure_topic
    from tripwire.processors.topics import RuntimeTopics, ensure_runtime_topics

    try:
        config = _processor_config(bootstrap=bootstrap, topic_prefix=topic_prefix, partitions=partitions,
                                   replication=replication, app_id=app_id)
        ks = _killswitch_config(config, killswitch_partitions)
        ensure_runtime_topics(config)
        ensure_topic(ks, timeout=timeout)
        runtime = RuntimeTopics.from_config(config)
        names = [*runtime.partition_counts(config.partitions), ks.topic]
        rows = _describe(config, names, timeout, wait=True)
    except (TripwireError, KafkaException, ValueError) as e:
        raise _fail(str(e)) from e
    wrong = [(n, p) for n, p, _ in rows if n == ks.topic and p != ks.partitions]
    if wrong:
        raise _fail(f"{ks.topic} exists with {wrong[0][1]} partitions, expected {ks.partitions}")
    _print(rows)


@topics_app.command("describe")
def describe(
    bootstrap: str | None = typer.Option(None, help="Kafka bootstrap servers (default: env / 127.0.0.1:9092)"),
    topic_prefix: str | None = typer.Option(None, help="prefix of every topic name"),
    app_id: str | None = typer.Option(None, help="processors app id = consumer group: names the internal topics"),
    timeout: float = typer.Option(30.0, help="seconds to wait for the broker"),
) -> None:
    """Partition count and cleanup policy of every pipeline topic; exit 1 if one is missing."""
    from confluent_kafka import KafkaException

    from tripwire.core.errors import TripwireError
    from tripwire.processors.topics import RuntimeTopics

    try:
        config = _processor_config(bootstrap=bootstrap, topic_prefix=topic_prefix, app_id=app_id)
        ks = _killswitch_config(config, None)
        names = [*RuntimeTopics.from_config(config).partition_counts(1), ks.topic]
        rows = _describe(config, names, timeout)
    except (TripwireError, KafkaException, ValueError) as e:
        raise _fail(str(e)) from e
    _print(rows)
    if any(p is None for _, p, _ in rows):
        raise typer.Exit(1)


@topics_app.command("acls")
def acls(
    control_plane: str = typer.Option(..., help="SASL user of the control plane (processors' policy, CLI, "
                                      "dashboard): the only principal that may write the kill-switch topic"),
    agents: str = typer.Option(..., help="SASL user of the agents (the SDK): reads the kill-switch topic, "
                               "writes the events topic, may not write the kill-switch topic"),
    bootstrap: str | None = typer.Option(None, help="Kafka bootstrap servers (default: env / 127.0.0.1:9092)"),
    topic_prefix: str | None = typer.Option(None, help="prefix of every topic name"),
    timeout: float = typer.Option(30.0, help="seconds to wait for the broker"),
) -> None:
    """Create the ACLs that let only the control plane write the kill-switch topic (idempotent). Run it as
    a super user (TRIPWIRE_KAFKA_SASL_*) against brokers with an authorizer (see docs/scale-out.md)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from tripwire.core.errors import TripwireError
    from tripwire.core.kafka_acls import create_acls, killswitch_acls, principal
    from tripwire.schemas import topic_names

    try:
        config = _processor_config(bootstrap=bootstrap, topic_prefix=topic_prefix)
        ks = _killswitch_config(config, None)
        events = topic_names(config.topic_prefix).events
        bindings = killswitch_acls(killswitch_topic=ks.topic, events_topic=events, control_plane=control_plane,
                                   agents=agents)
        admin = AdminClient({"bootstrap.servers": config.bootstrap, **config.confluent_conf()})
        n = create_acls(admin, bindings, timeout=timeout)
    except (TripwireError, KafkaException, ValueError) as e:
        raise _fail(str(e)) from e
    typer.echo(f"{n} ACLs: {principal(control_plane)} writes {ks.topic}; {principal(agents)} reads it and "
               f"writes {events}")
