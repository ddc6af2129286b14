-- Hourly rollups for windows of many hours (merging 1,440 per-minute t-digests per series for a
-- day costs far more than 24 hourly ones), and bloom-filter indexes so a run's trace is found
-- without scanning every row of the tenant. Run migrations with the sink stopped: the backfill
-- below copies what the per-minute rollups hold at that moment (its token makes a re-run a no-op).

CREATE TABLE IF NOT EXISTS model_calls_1h
(
    tenant              LowCardinality(String),
    agent_id            LowCardinality(String),
    hour                DateTime('UTC') CODEC(Delta, ZSTD(1)),
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
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, agent_id, hour, agent_version, model)
TTL hour + INTERVAL ${CALL_TTL_DAYS} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS model_calls_1h_mv TO model_calls_1h AS
SELECT
    tenant,
    agent_id,
    toStartOfHour(ts_start) AS hour,
    agent_version,
    request_model AS model,
    toUInt64(count()) AS calls,
    toUInt64(countIf(status != 'ok')) AS errors,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    toUInt64(sum(input_tokens)) AS input_tokens,
    toUInt64(sum(output_tokens)) AS output_tokens,
    quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS latency_ms
FROM model_calls
GROUP BY tenant, agent_id, hour, agent_version, model;

INSERT INTO model_calls_1h SETTINGS insert_deduplication_token = 'migration-0004-model_calls_1h'
SELECT tenant, agent_id, toStartOfHour(minute) AS hour, agent_version, model, sum(calls), sum(errors), sum(cost_usd),
       sum(input_tokens), sum(output_tokens), quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_ms)
FROM model_calls_1m
GROUP BY tenant, agent_id, hour, agent_version, model;

CREATE TABLE IF NOT EXISTS tool_calls_1h
(
    tenant              LowCardinality(String),
    agent_id            LowCardinality(String),
    hour                DateTime('UTC') CODEC(Delta, ZSTD(1)),
    agent_version       LowCardinality(String),
    tool_name           LowCardinality(String),
    calls               SimpleAggregateFunction(sum, UInt64),
    errors              SimpleAggregateFunction(sum, UInt64),
    blocked             SimpleAggregateFunction(sum, UInt64),
    latency_ms          AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, agent_id, hour, agent_version, tool_name)
TTL hour + INTERVAL ${CALL_TTL_DAYS} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tool_calls_1h_mv TO tool_calls_1h AS
SELECT
    tenant,
    agent_id,
    toStartOfHour(ts_start) AS hour,
    agent_version,
    tool_name,
    toUInt64(count()) AS calls,
    toUInt64(countIf(status IN ('error', 'timeout'))) AS errors,
    toUInt64(countIf(status IN ('blocked', 'denied'))) AS blocked,
    quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS latency_ms
FROM tool_calls
GROUP BY tenant, agent_id, hour, agent_version, tool_name;

INSERT INTO tool_calls_1h SETTINGS insert_deduplication_token = 'migration-0004-tool_calls_1h'
SELECT tenant, agent_id, toStartOfHour(minute) AS hour, agent_version, tool_name, sum(calls), sum(errors), sum(blocked),
       quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_ms)
FROM tool_calls_1m
GROUP BY tenant, agent_id, hour, agent_version, tool_name;

ALTER TABLE model_calls ADD INDEX IF NOT EXISTS idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE tool_calls ADD INDEX IF NOT EXISTS idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE run_events ADD INDEX IF NOT EXISTS idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 1;
