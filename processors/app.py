"""The faust App, and nothing else (topics, tables and agents live in their own modules)."""

from __future__ import annotations

from typing import Any

from tripwire.core.errors import MissingExtraError
from tripwire.processors.config import ProcessorConfig, faust_credentials

PRODUCER_BATCH_BYTES = 512 * 1024
"""A producer batch at most (under the broker's default 1 MB ``message.max.bytes``)."""


def create_app(config: ProcessorConfig) -> Any:
    """A faust App for ``config``: RocksDB tables with changelogs, the configured guarantee."""
    try:
        import faust
    except ImportError as e:  # pragma: no cover - depends on the install
        raise MissingExtraError("faust-streaming", "pipeline") from e
    from tripwire.processors._faust_fixes import apply as apply_faust_fixes

    # checks the pinned faust/aiokafka (FaustRuntimeError otherwise), then patches them: exactly-once
    # rebalancing between live workers and the commit hook (see _faust_fixes)
    apply_faust_fixes()
    brokers = ";".join(f"kafka://{b.strip()}" for b in config.bootstrap.split(",") if b.strip())
    return faust.App(
        config.group_id,
        broker=brokers,
        store="rocksdb://",
        datadir=str(config.data_dir / config.group_id),
        processing_guarantee=config.processing_guarantee,
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication,
        broker_commit_interval=config.commit_interval_s,
        # a killed worker's partitions move after this long (faust's default is 60 s)
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=max(0.5, config.session_timeout_s / 4),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        stream_wait_empty=False,
        producer_linger=config.producer_linger_s,
        # a commit sends the changed states of a partition as whole batches (_batch_send):
        # one batch per partition per commit, where the 16 KB default took a round trip per 16 KB
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        broker_credentials=faust_credentials(config),  # TLS/SASL (None: PLAINTEXT)
    )
