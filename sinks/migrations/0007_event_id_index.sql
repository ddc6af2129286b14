-- Issue 15: the sink drops a row whose event_id is already stored (an exporter retry or a replayed
-- OTLP batch after a receiver restart produces the same events at new offsets). The lookup is
-- `event_id IN (...)` per batch; a bloom-filter skip index keeps it from reading every granule.
-- Parts written before this are indexed when they are merged (or by MATERIALIZE INDEX).

ALTER TABLE model_calls ADD INDEX IF NOT EXISTS event_id_bf event_id TYPE bloom_filter(0.001) GRANULARITY 1;
ALTER TABLE tool_calls ADD INDEX IF NOT EXISTS event_id_bf event_id TYPE bloom_filter(0.001) GRANULARITY 1;
ALTER TABLE run_events ADD INDEX IF NOT EXISTS event_id_bf event_id TYPE bloom_filter(0.001) GRANULARITY 1;
