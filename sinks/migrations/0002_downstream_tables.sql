-- Records the processors and the kill switch write, plus the dead letters and the
-- dashboard's alert acknowledgements.

-- One row per emitted revision of a run summary. ReplacingMergeTree(version) keeps the
-- highest revision per run after merges; exact queries read it with FINAL or with
-- argMax(..., version) GROUP BY run_id (queries.py says which one each query uses).
-- agent_version is constant within a run, so it can sit in the key (release-gate filter).
CREATE TABLE IF NOT EXISTS run_summaries
(
    run_id                        String,
    tenant                        LowCardinality(String),
    agent_id                      LowCardinality(String),
    agent_version                 LowCardinality(String),
    workflow                      LowCardinality(String),
    environment                   LowCardinality(String),
    principal                     Nullable(String),
    trace_id                      String,
    started_at                    Nullable(DateTime64(6, 'UTC')),
    ended_at                      Nullable(DateTime64(6, 'UTC')),
    duration_ms                   Nullable(Float64),
    outcome                       LowCardinality(String),
    cost_usd                      Float64,
    cost_by_model                 Map(LowCardinality(String), Float64),
    cost_input_usd                Float64,
    cost_cache_read_usd           Float64,
    cost_cache_write_usd          Float64,
    cost_output_usd               Float64,
    cost_reasoning_usd            Float64,
    cost_unknown_calls            UInt64,
    input_tokens                  UInt64,
    cache_read_tokens             UInt64,
    cache_write_tokens            UInt64,
    output_tokens                 UInt64,
    reasoning_tokens              UInt64,
    steps                         UInt64,
    model_calls                   UInt64,
    tool_calls                    UInt64,
    errors                        UInt64,
    blocked_calls                 UInt64,
    approvals                     UInt64,
    denials                       UInt64,
    budget_cost_pct               Nullable(Float64),
    budget_steps_pct              Nullable(Float64),
    budget_tool_calls_pct         Nullable(Float64),
    budget_prompt_tokens_pct      Nullable(Float64),
    budget_completion_tokens_pct  Nullable(Float64),
    events_seen                   UInt64,
    missing_seqs                  Array(UInt64),
    seq_gaps                      UInt64,
    version                       UInt64,
    emitted_at                    DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    src_topic                     LowCardinality(String),
    src_partition                 UInt32,
    src_offset                    UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at                   DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_started started_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, agent_id, agent_version, run_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Closed latency windows from the processors; a window re-emitted for late data replaces
-- the earlier emission (FINAL / argMax(..., emitted_at)).
CREATE TABLE IF NOT EXISTS window_stats
(
    tenant         LowCardinality(String),
    agent_id       LowCardinality(String),
    agent_version  LowCardinality(String),
    kind           LowCardinality(String),
    name           LowCardinality(String),
    model          LowCardinality(String),
    window_start   DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    window_end     DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    count          UInt64,
    errors         UInt64,
    cost_usd       Float64,
    p50_ms         Float64,
    p95_ms         Float64,
    p99_ms         Float64,
    min_ms         Float64,
    max_ms         Float64,
    sum_ms         Float64,
    sketch         String CODEC(ZSTD(3)),
    emitted_at     DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    src_topic      LowCardinality(String),
    src_partition  UInt32,
    src_offset     UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(emitted_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant, agent_id, window_start, agent_version, kind, name, model)
SETTINGS non_replicated_deduplication_window = 10000;

-- Every alert record as emitted (firing, updates, resolved). The current state of an
-- incident is argMax(..., updated_at) GROUP BY incident_id.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id                String,
    incident_id             String,
    kind                    LowCardinality(String),
    severity                LowCardinality(String),
    scope                   LowCardinality(String),
    tenant                  LowCardinality(String),
    agent_id                LowCardinality(String),
    agent_version           LowCardinality(Nullable(String)),
    tool_name               LowCardinality(Nullable(String)),
    run_id                  Nullable(String),
    credential_fingerprint  LowCardinality(Nullable(String)),
    observed                Float64,
    threshold               Float64,
    window_start            Nullable(DateTime64(6, 'UTC')),
    window_end              Nullable(DateTime64(6, 'UTC')),
    count                   UInt64,
    evidence_event_ids      Array(String),
    evidence_trace_ids      Array(String),
    summary                 String,
    status                  LowCardinality(String),
    created_at              DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    updated_at              DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    src_topic               LowCardinality(String),
    src_partition           UInt32,
    src_offset              UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at             DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, agent_id, created_at, incident_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Acknowledgements written by the dashboard (not from a topic).
CREATE TABLE IF NOT EXISTS alert_acks
(
    tenant       LowCardinality(String),
    incident_id  String,
    acked_by     String,
    acked_at     DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    note         String DEFAULT ''
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(acked_at)
ORDER BY (tenant, incident_id, acked_at);

-- Kill-switch audit: commands as seen on the kill-switch topic (source = 'topic') and the
-- actions taken from the CLI or the dashboard (source = 'cli' | 'dashboard'). `actor` is the
-- authenticated identity that acted (the signer's issued_by for topic rows).
CREATE TABLE IF NOT EXISTS killswitch_audit
(
    source               LowCardinality(String),
    actor                String,
    command_id           String,
    scope                LowCardinality(String),
    action               LowCardinality(String),
    min_risk             LowCardinality(Nullable(String)),
    throttle_per_minute  Nullable(UInt64),
    issued_at            DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    expires_at           Nullable(DateTime64(6, 'UTC')),
    reason               String,
    alert_id             Nullable(String),
    issued_by            String,
    nonce                String,
    key_id               LowCardinality(Nullable(String)),
    signature            Nullable(String),
    src_topic            LowCardinality(String),
    src_partition        UInt32,
    src_offset           UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at          DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(issued_at)
ORDER BY (scope, issued_at, command_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Messages that could not be decoded, validated or mapped, from the DLQ topic (stage set by
-- the producer of the dead letter) and from the sink itself (stage = 'sink').
CREATE TABLE IF NOT EXISTS dead_letters
(
    dlq_id         String,
    source_topic   LowCardinality(String),
    partition      Int32,
    offset         Int64,
    key            Nullable(String),
    value          Nullable(String) CODEC(ZSTD(3)),
    reason         String,
    error_type     LowCardinality(String),
    stage          LowCardinality(String),
    failed_at      DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    src_topic      LowCardinality(String),
    src_partition  UInt32,
    src_offset     UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(failed_at)
ORDER BY (stage, source_topic, failed_at)
SETTINGS non_replicated_deduplication_window = 10000;

-- The sink's replay marks: after a fully accepted flush, the offset up to which every message of a
-- source (topic, partition) is stored in every table (table_name = partition_id = '*'). With the
-- src_offset columns of the data tables this makes replays exact (see sinks/README.md).
CREATE TABLE IF NOT EXISTS sink_offsets
(
    table_name     LowCardinality(String),
    src_topic      LowCardinality(String),
    src_partition  UInt32,
    partition_id   String,
    max_offset     UInt64,
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(max_offset)
ORDER BY (table_name, src_topic, src_partition, partition_id);
