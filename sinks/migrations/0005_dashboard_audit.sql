-- Dashboard action audit (issue 11): every action a dashboard user attempts (trip, reset,
-- acknowledge, SQL query), allowed or refused, with the signed-in identity and its role.
-- Kill-switch commands that were issued are also in killswitch_audit (source = 'dashboard').

CREATE TABLE IF NOT EXISTS dashboard_audit
(
    at             DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    actor          String,
    role           LowCardinality(String),
    authenticated  Bool,
    action         LowCardinality(String),
    decision       LowCardinality(String),
    reason         String,
    details        String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (actor, at);
