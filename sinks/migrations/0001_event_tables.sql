-- Event tables: write-once MergeTree, one row per event of the events topic.
-- Every row carries its source position (src_topic, src_partition, src_offset): the sink
-- derives its replay high-water marks from it, and insert_deduplication_token needs
-- non_replicated_deduplication_window on a single server / chdb (Replicated* tables have
-- replicated_deduplication_window by default).
-- ${PROMPT_TTL_DAYS} and ${CALL_TTL_DAYS} are integers rendered from ClickHouseSettings.

CREATE TABLE IF NOT EXISTS model_calls
(
    event_id               String,
    tenant                 LowCardinality(String),
    agent_id               LowCardinality(String),
    agent_version          LowCardinality(String),
    workflow               LowCardinality(String),
    environment            LowCardinality(String),
    principal              Nullable(String),
    credential_fingerprint LowCardinality(Nullable(String)),
    trace_id               String,
    span_id                String,
    parent_span_id         Nullable(String),
    run_id                 String,
    seq                    UInt64 CODEC(Delta, ZSTD(1)),
    ts_start               DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    ts_end                 DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ms            Float64 DEFAULT dateDiff('microsecond', ts_start, ts_end) / 1000.0 CODEC(ZSTD(1)),
    operation_name         LowCardinality(String),
    provider               LowCardinality(String),
    request_model          LowCardinality(String),
    response_model         LowCardinality(Nullable(String)),
    input_tokens           UInt64 CODEC(T64, ZSTD(1)),
    cache_read_tokens      UInt64 CODEC(T64, ZSTD(1)),
    cache_write_tokens     UInt64 CODEC(T64, ZSTD(1)),
    output_tokens          UInt64 CODEC(T64, ZSTD(1)),
    reasoning_tokens       UInt64 CODEC(T64, ZSTD(1)),
    cost_usd               Nullable(Float64) CODEC(ZSTD(1)),
    cost_source            LowCardinality(String),
    price_version          LowCardinality(Nullable(String)),
    status                 LowCardinality(String),
    finish_reason          LowCardinality(Nullable(String)),
    error_type             LowCardinality(Nullable(String)),
    prompt                 Nullable(String) TTL toDateTime(ts_start) + INTERVAL ${PROMPT_TTL_DAYS} DAY CODEC(ZSTD(3)),
    completion             Nullable(String) TTL toDateTime(ts_start) + INTERVAL ${PROMPT_TTL_DAYS} DAY CODEC(ZSTD(3)),
    src_topic              LowCardinality(String),
    src_partition          UInt32,
    src_offset             UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at            DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts_start)
ORDER BY (tenant, agent_id, toStartOfHour(ts_start), agent_version, request_model, ts_start)
TTL toDateTime(ts_start) + INTERVAL ${CALL_TTL_DAYS} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tool_calls
(
    event_id               String,
    tenant                 LowCardinality(String),
    agent_id               LowCardinality(String),
    agent_version          LowCardinality(String),
    workflow               LowCardinality(String),
    environment            LowCardinality(String),
    principal              Nullable(String),
    credential_fingerprint LowCardinality(Nullable(String)),
    trace_id               String,
    span_id                String,
    parent_span_id         Nullable(String),
    run_id                 String,
    seq                    UInt64 CODEC(Delta, ZSTD(1)),
    ts_start               DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    ts_end                 DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ms            Float64 DEFAULT dateDiff('microsecond', ts_start, ts_end) / 1000.0 CODEC(ZSTD(1)),
    tool_name              LowCardinality(String),
    tool_call_id           String,
    risk                   LowCardinality(String),
    args                   Nullable(String) TTL toDateTime(ts_start) + INTERVAL ${PROMPT_TTL_DAYS} DAY CODEC(ZSTD(3)),
    args_hash              Nullable(String),
    status                 LowCardinality(String),
    error_type             LowCardinality(Nullable(String)),
    idempotency_key        Nullable(String),
    approval_ref           Nullable(String),
    side_effect            Bool,
    blocked_reason         LowCardinality(Nullable(String)),
    src_topic              LowCardinality(String),
    src_partition          UInt32,
    src_offset             UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at            DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts_start)
ORDER BY (tenant, agent_id, toStartOfHour(ts_start), agent_version, tool_name, ts_start)
TTL toDateTime(ts_start) + INTERVAL ${CALL_TTL_DAYS} DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Run lifecycle and approvals: event_type is run_started | approval_decision | run_finished;
-- the columns of the other event types are NULL.
CREATE TABLE IF NOT EXISTS run_events
(
    event_id               String,
    event_type             LowCardinality(String),
    tenant                 LowCardinality(String),
    agent_id               LowCardinality(String),
    agent_version          LowCardinality(String),
    workflow               LowCardinality(String),
    environment            LowCardinality(String),
    principal              Nullable(String),
    credential_fingerprint LowCardinality(Nullable(String)),
    trace_id               String,
    span_id                String,
    parent_span_id         Nullable(String),
    run_id                 String,
    seq                    UInt64 CODEC(Delta, ZSTD(1)),
    ts_start               DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    ts_end                 DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    conversation_id        Nullable(String),
    parent_run_id          Nullable(String),
    max_steps              Nullable(UInt64),
    max_tool_calls         Nullable(UInt64),
    max_prompt_tokens      Nullable(UInt64),
    max_completion_tokens  Nullable(UInt64),
    max_cost_usd           Nullable(Float64),
    tool_name              LowCardinality(Nullable(String)),
    tool_call_id           Nullable(String),
    risk                   LowCardinality(Nullable(String)),
    decision               LowCardinality(Nullable(String)),
    approver               Nullable(String),
    reason                 Nullable(String),
    outcome                LowCardinality(Nullable(String)),
    error_type             LowCardinality(Nullable(String)),
    last_seq               Nullable(UInt64),
    src_topic              LowCardinality(String),
    src_partition          UInt32,
    src_offset             UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at            DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts_start)
ORDER BY (tenant, agent_id, toStartOfHour(ts_start), event_type, ts_start)
SETTINGS non_replicated_deduplication_window = 10000;
