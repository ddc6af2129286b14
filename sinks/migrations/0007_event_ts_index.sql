-- Issue 15: the sink drops a row whose event_id is already stored (an exporter retry or a replayed
-- OTLP batch after a receiver restart produces the same events at new offsets). The lookup is
-- `event_id IN (...)` within the batch's own ts_start range (a duplicate has the same ts_start);
-- a minmax skip index on ts_start lets it read only the granules of that range (the sort key
-- starts with tenant and agent, so the primary index alone cannot skip by time).
-- Parts written before this are indexed when they are merged (or by MATERIALIZE INDEX).

ALTER TABLE model_calls ADD INDEX IF NOT EXISTS ts_start_mm ts_start TYPE minmax GRANULARITY 1;
ALTER TABLE tool_calls ADD INDEX IF NOT EXISTS ts_start_mm ts_start TYPE minmax GRANULARITY 1;
ALTER TABLE run_events ADD INDEX IF NOT EXISTS ts_start_mm ts_start TYPE minmax GRANULARITY 1;
