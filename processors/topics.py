"""The runtime's topics: the contract topics plus three internal ones, all co-partitioned."""

from __future__ import annotations

from dataclasses import dataclass

from tripwire.processors.config import ProcessorConfig
from tripwire.schemas import topic_names


@dataclass(frozen=True, slots=True)
class RuntimeTopics:
    events: str
    runs: str
    metrics: str
    alerts: str
    dlq: str
    by_agent: str  # valid events re-keyed by tenant|agent_id (AgentStage input)
    by_credential: str  # first event per run and credential, keyed by fingerprint (CredentialStage input)
    ticks: str  # one clock message per partition per tick interval (time-driven outputs)

    @classmethod
    def from_config(cls, config: ProcessorConfig) -> RuntimeTopics:
        t = topic_names(config.topic_prefix)
        base = config.group_id
        return cls(
            events=t.events,
            runs=t.runs,
            metrics=t.metrics,
            alerts=t.alerts,
            dlq=t.dlq,
            by_agent=f"{base}.by-agent",
            by_credential=f"{base}.by-credential",
            ticks=f"{base}.ticks",
        )

    def partition_counts(self, partitions: int) -> dict[str, int]:
        names = (
            self.events,
            self.runs,
            self.metrics,
            self.alerts,
            self.dlq,
            self.by_agent,
            self.by_credential,
            self.ticks,
        )
        return dict.fromkeys(names, partitions)

    def topic_configs(self) -> dict[str, dict[str, str]]:
        return {self.ticks: {"retention.ms": str(3_600_000)}}


def ensure_runtime_topics(config: ProcessorConfig) -> RuntimeTopics:
    """Create every topic the worker reads or writes, with ``config.partitions`` partitions each."""
    from tripwire.processors.admin import ensure_topics

    topics = RuntimeTopics.from_config(config)
    ensure_topics(
        config.bootstrap,
        topics.partition_counts(config.partitions),
        replication=config.replication,
        config=topics.topic_configs(),
        security=config,
    )
    return topics
