-- Per-minute rollups (minute x agent x version x model / tool) that the dashboard reads for
-- its time series. Counts and sums are SimpleAggregateFunction(sum); latency keeps a
-- t-digest state, merged with quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms).
-- Inserts deduplicated on the source table are not forwarded (deduplicate_blocks_in_dependent_materialized_views
-- and the window setting below), so replays do not double the rollups.

CREATE TABLE IF NOT EXISTS model_calls_1m
(
    tenant              LowCardinality(String),
    agent_id            LowCardinality(String),
    minute              DateTime('UTC') CODEC(Delta, ZSTD(1)),
    agent_version       LowCardinality(String),
    model               LowCardinality(String),
    calls               SimpleAggregateFunction(sum, UInt64),
    errors              SimpleAggregateFunction(sum, UInt64),
    cost_usd            SimpleAggregateFunction(sum, Float64),
    input_tokens        SimpleAggregateFunction(sum, UInt64),
    output_tokens       SimpleAggregateFunction(sum, UInt64),
    latency_ms          AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, agent_id, minute, agent_version, model)
TTL minute + INTERVAL ${CALL_TTL_DAYS} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS model_calls_1m_mv TO model_calls_1m AS
SELECT
    tenant,
    agent_id,
    toStartOfMinute(ts_start) AS minute,
    agent_version,
    request_model AS model,
    toUInt64(count()) AS calls,
    toUInt64(countIf(status != 'ok')) AS errors,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    toUInt64(sum(input_tokens)) AS input_tokens,
    toUInt64(sum(output_tokens)) AS output_tokens,
    quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS latency_ms
FROM model_calls
GROUP BY tenant, agent_id, minute, agent_version, model;

CREATE TABLE IF NOT EXISTS tool_calls_1m
(
    tenant              LowCardinality(String),
    agent_id            LowCardinality(String),
    minute              DateTime('UTC') CODEC(Delta, ZSTD(1)),
    agent_version       LowCardinality(String),
    tool_name           LowCardinality(String),
    calls               SimpleAggregateFunction(sum, UInt64),
    errors              SimpleAggregateFunction(sum, UInt64),
    blocked             SimpleAggregateFunction(sum, UInt64),
    latency_ms          AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, agent_id, minute, agent_version, tool_name)
TTL minute + INTERVAL ${CALL_TTL_DAYS} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tool_calls_1m_mv TO tool_calls_1m AS
SELECT
    tenant,
    agent_id,
    toStartOfMinute(ts_start) AS minute,
    agent_version,
    tool_name,
    toUInt64(count()) AS calls,
    toUInt64(countIf(status IN ('error', 'timeout'))) AS errors,
    toUInt64(countIf(status IN ('blocked', 'denied'))) AS blocked,
    quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS latency_ms
FROM tool_calls
GROUP BY tenant, agent_id, minute, agent_version, tool_name;
