"""ClickHouse sink throughput and dashboard query latency on chdb.

1. Sink throughput: events from the Kafka events topic into chdb through ``KafkaSink`` (consume,
   decode, map, batch, insert, offset marks, commit), timed from the first message consumed to
   the last commit, against ``bulk_insert_rows_per_s``: the same rows, already mapped, inserted
   through the same chdb store in the same process in the same batch size (the sink's default 50k
   rows, 1 s), in interleaved rounds; the ratio is the median of the per-round ratios. A backlog of
   200k events keeps the final batch timer small against the run. The process runs with the sink
   process's garbage-collector policy (``tripwire.core.tune_gc``), baseline included. Goal: >= 0.5x. Each result
   also gives the ratio per CPU second (``cpu_ratio``: rows per CPU second of this process, which
   hosts the consumer, the sink and chdb, against the bulk insert's), with every round's ratios.
   ``BENCH_SINK_EVENTS`` / ``BENCH_SINK_ROUNDS`` change the backlog and rounds (200k, 3);
   ``BENCH_SINK_ONLY=throughput`` (or ``queries``) runs one half.
   - ``sink_rows_per_s[clickhouse_decode]``: ``validate_events=False``, ClickHouse decodes the Avro
     and nothing is checked beyond the Avro types;
   - ``sink_rows_per_s[sql_checks]``: the default (validating): ClickHouse decodes the Avro into a
     staging table and the model constraints and event limits are applied as SQL
     (``sinks/_avro_checks.py``);
   - ``sink_rows_per_s[python_decode]``: validating with the Python decoder forced (fastavro,
     field checks and ``check_event`` per event): the default before the SQL checks.
2. ``query_p95_ms[name]``: p95 latency of each dashboard query over 10M synthetic events
   (generated inside ClickHouse with ``numbers()``: 7M model calls, 3M tool calls, 1M run
   summaries, over the last 24 hours), with the dashboard's 24-hour window (every row in range).
   Goal: < 300 ms each.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from benchmarks._harness import Result, bootstrap, percentile, report

N_EVENTS = int(os.environ.get("BENCH_SINK_EVENTS", "200000"))
BATCH_ROWS = 50_000
SYNTH_MODEL_CALLS = 7_000_000
SYNTH_TOOL_CALLS = 3_000_000
SYNTH_RUNS = 1_000_000
QUERY_REPEATS = 15
ROUNDS = int(os.environ.get("BENCH_SINK_ROUNDS", "3"))
DAYS = 1


def _events(n: int) -> list:
    from tripwire.schemas import CallStatus, ModelCall, ToolCall

    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)  # inside the limits' time window
    out = []
    for i in range(n):
        run = f"run-{i // 10:06d}"
        common = {
            "event_id": str(uuid.UUID(int=i + 1)),
            "tenant": "acme",
            "agent_id": f"agent-{i % 5}",
            "agent_version": f"v{i % 3}",
            "workflow": "refunds",
            "environment": "prod",
            "principal": f"user-{i % 100}",
            "credential_fingerprint": "fp",
            "trace_id": f"{(i // 10) + 1:032x}",
            "span_id": f"{i + 1:016x}",
            "run_id": run,
            "seq": i % 10,
            "ts_start": t0 + timedelta(milliseconds=i),
            "ts_end": t0 + timedelta(milliseconds=i + 120),
        }
        if i % 2:
            out.append(
                ToolCall(
                    **common,
                    tool_name="lookup_order",
                    tool_call_id=f"c{i}",
                    risk="low",
                    status=CallStatus.OK,
                    side_effect=False,
                )
            )
        else:
            out.append(
                ModelCall(
                    **common,
                    provider="openai",
                    request_model="gpt-4o",
                    input_tokens=100 + i % 50,
                    output_tokens=20,
                    cost_usd=0.0001 * (i % 7),
                    cost_source="price_table",
                    status="ok",
                )
            )
    return out


def _sink_vs_bulk(path: str) -> list[Result]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from tripwire.core import tune_gc
    from tripwire.schemas import decode, encode, topic_names
    from tripwire.sinks import SinkSettings, migrate, open_store
    from tripwire.sinks.batching import BatchingSink
    from tripwire.sinks.kafka_sink import KafkaSink
    from tripwire.sinks.rows import TABLES, map_record

    events = _events(N_EVENTS)
    topics = topic_names(f"bench_{uuid.uuid4().hex[:8]}")
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    futs = admin.create_topics([NewTopic(t, num_partitions=3 if t == topics.events else 1) for t in topics.all()])
    for f in futs.values():
        f.result(timeout=30)
    p = Producer({"bootstrap.servers": bootstrap(), "linger.ms": 20, "batch.num.messages": 10000})
    for e in events:
        p.produce(topics.events, key=e.run_id.encode(), value=encode(e))
        p.poll(0)
    assert p.flush(60) == 0

    # baseline: the same rows, mapped in advance, bulk-inserted through the same store
    rows_by_table: dict[str, list] = {}
    for i, e in enumerate(events):
        table, row = map_record("events", e)
        rows_by_table.setdefault(table, []).append((*row, topics.events, 0, i))

    def bulk_round(r: int) -> tuple[float, float]:
        with open_store(f"chdb://{path}?database=bulk{r}") as store:
            migrate(store)
            t, c = time.perf_counter(), time.process_time()
            for table, rows in rows_by_table.items():
                cols = TABLES[table].insert_columns
                for k in range(0, len(rows), BATCH_ROWS):
                    store.insert(table, cols, rows[k : k + BATCH_ROWS])
            rate = N_EVENTS / (time.perf_counter() - t)
            cpu_rate = N_EVENTS / (time.process_time() - c)
            assert store.query("SELECT count() FROM model_calls").scalar() == N_EVENTS // 2
            return rate, cpu_rate

    def sink_round(r: int, mode: str, validate: bool) -> tuple[float, float]:
        with open_store(f"chdb://{path}?database=sink_{mode}{r}") as store:
            migrate(store)
            settings = SinkSettings(
                bootstrap=bootstrap(),
                group_id=f"bench-{uuid.uuid4().hex[:8]}",
                batch_rows=BATCH_ROWS,
                batch_seconds=1.0,
                poll_timeout_s=0.1,
                validate_events=validate,
            )
            factory = partial(BatchingSink, decoder=decode) if mode == "python_decode" else BatchingSink
            c = time.process_time()
            ks = KafkaSink(store, settings, topics=topics, sink_factory=factory)
            assert ks.sink.decodes_in_clickhouse == (mode != "python_decode")

            def finished() -> bool:
                return ks.sink.stats.rows_inserted >= N_EVENTS and ks.sink.buffered_rows == 0 and ks.commits > 0

            ks.run(until=finished, max_seconds=300)
            first = ks.sink.stats.first_message_at
            assert first is not None
            rate = N_EVENTS / (time.monotonic() - first)
            cpu_rate = N_EVENTS / (time.process_time() - c)
            got = store.query("SELECT (SELECT count() FROM model_calls) + (SELECT count() FROM tool_calls)").scalar()
            assert got == N_EVENTS, got
            assert ks.sink.stats.dead_lettered == 0 and ks.sink.stats.avro_fallbacks == 0
            return rate, cpu_rate

    # the garbage-collector policy of the sink process (`tripwire sink` calls tune_gc before its loop), for
    # the bulk insert and the sink alike
    tune_gc()
    # interleaved rounds, so that the load of a shared machine hits baseline and sink alike
    bulk_rates: list[float] = []
    bulk_cpu: list[float] = []
    modes = (("clickhouse_decode", False), ("sql_checks", True), ("python_decode", True))
    sink_rates: dict[str, list[float]] = {mode: [] for mode, _ in modes}
    sink_cpu: dict[str, list[float]] = {mode: [] for mode, _ in modes}
    for r in range(ROUNDS):
        rate, cpu = bulk_round(r)
        bulk_rates.append(rate)
        bulk_cpu.append(cpu)
        for mode, validate in modes:
            rate, cpu = sink_round(r, mode, validate)
            sink_rates[mode].append(rate)
            sink_cpu[mode].append(cpu)
    admin.delete_topics(list(topics.all()))
    bulk = statistics.median(bulk_rates)
    out = [Result("bulk_insert_rows_per_s", bulk, "rows/s", extra={"rows": N_EVENTS, "batch_rows": BATCH_ROWS})]
    for mode, rates in sink_rates.items():
        rate = statistics.median(rates)
        ratios = [x / b for x, b in zip(rates, bulk_rates, strict=True)]
        cpu_ratios = [x / b for x, b in zip(sink_cpu[mode], bulk_cpu, strict=True)]
        out.append(
            Result(
                f"sink_rows_per_s[{mode}]",
                rate,
                "rows/s",
                ratio=statistics.median(ratios),
                baseline=bulk,
                goal=">= 0.5x bulk insert",
                extra={
                    "rows": N_EVENTS,
                    "batch_rows": BATCH_ROWS,
                    "partitions": 3,
                    "runs": [round(r) for r in rates],
                    "round_ratios": [round(x, 3) for x in ratios],
                    "cpu_ratio": round(statistics.median(cpu_ratios), 3),
                    "round_cpu_ratios": [round(x, 3) for x in cpu_ratios],
                    "cpu_rows_per_s": [round(x) for x in sink_cpu[mode]],
                    "bulk_cpu_rows_per_s": [round(x) for x in bulk_cpu],
                    "bulk_runs": [round(r) for r in bulk_rates],
                    "load_avg_1m": round(os.getloadavg()[0], 1),
                },
            )
        )
    return out


def _synthesize(store, end: datetime) -> None:  # type: ignore[no-untyped-def]
    span_us = DAYS * 86_400_000_000
    start_us = int(end.timestamp() * 1_000_000) - span_us
    common = """
        toString(generateUUIDv4()) AS event_id, 'acme' AS tenant, concat('agent-', toString(number % 5)) AS agent_id,
        concat('v', toString(intDiv(number, 7) % 3)) AS agent_version, 'refunds' AS workflow, 'prod' AS environment,
        concat('user-', toString(number % 5000)) AS principal, 'fp' AS credential_fingerprint,
        leftPad(lower(hex(cityHash64(intDiv(number, 10)))), 32, '0') AS trace_id,
        leftPad(lower(hex(cityHash64(number))), 16, '0') AS span_id, NULL AS parent_span_id,
        concat('run-', toString(intDiv(number, 10))) AS run_id, toUInt64(number % 10) AS seq,
        fromUnixTimestamp64Micro(toInt64({start_us:Int64} + intDiv(number * {span_us:Int64}, {n:Int64})), 'UTC')
            AS ts_start,
        ts_start + toIntervalMillisecond(50 + cityHash64(number) % 2000) AS ts_end,
        'synthetic' AS src_topic, toUInt32(0) AS src_partition, number AS src_offset
    """
    store.command(
        f"""INSERT INTO model_calls (event_id, tenant, agent_id, agent_version, workflow, environment, principal,
            credential_fingerprint, trace_id, span_id, parent_span_id, run_id, seq, ts_start, ts_end, src_topic,
            src_partition, src_offset, operation_name, provider, request_model, input_tokens, output_tokens,
            cost_usd, cost_source, status)
        SELECT {common}, 'chat', 'openai', ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'gemini-pro'][number % 4 + 1],
            toUInt64(100 + number % 900), toUInt64(10 + number % 300), (number % 100) / 10000.0, 'price_table',
            if(number % 50 = 0, 'error', 'ok')
        FROM numbers({{n:UInt64}})""",
        {"n": SYNTH_MODEL_CALLS, "start_us": start_us, "span_us": span_us},
    )
    store.command(
        f"""INSERT INTO tool_calls (event_id, tenant, agent_id, agent_version, workflow, environment, principal,
            credential_fingerprint, trace_id, span_id, parent_span_id, run_id, seq, ts_start, ts_end, src_topic,
            src_partition, src_offset, tool_name, tool_call_id, risk, status, side_effect)
        SELECT {common}, ['lookup_order', 'issue_refund', 'send_email'][number % 3 + 1], toString(number),
            ['low', 'high', 'medium'][number % 3 + 1],
            multiIf(number % 97 = 0, 'blocked', number % 41 = 0, 'error', 'ok'),
            number % 3 = 1
        FROM numbers({{n:UInt64}})""",
        {"n": SYNTH_TOOL_CALLS, "start_us": start_us, "span_us": span_us},
    )
    store.command(
        """INSERT INTO run_summaries (run_id, tenant, agent_id, agent_version, workflow, environment, principal,
            trace_id, started_at, ended_at, duration_ms, outcome, cost_usd, cost_by_model, cost_input_usd,
            cost_cache_read_usd, cost_cache_write_usd, cost_output_usd, cost_reasoning_usd, cost_unknown_calls,
            input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, steps, model_calls,
            tool_calls, errors, blocked_calls, approvals, denials, events_seen, missing_seqs, seq_gaps, version,
            emitted_at, src_topic, src_partition, src_offset)
        SELECT concat('run-', toString(number)), 'acme', concat('agent-', toString(number % 5)),
            concat('v', toString(number % 3)), ['refunds', 'billing'][number % 2 + 1], 'prod',
            concat('user-', toString(number % 5000)), leftPad(lower(hex(cityHash64(number))), 32, '0'),
            fromUnixTimestamp64Micro(toInt64({start_us:Int64} + intDiv(number * {span_us:Int64}, {n:Int64})), 'UTC')
                AS s,
            s + toIntervalMillisecond(1000 + number % 20000), toFloat64(1000 + number % 20000),
            multiIf(number % 20 = 0, 'failure', number % 150 = 0, 'escalated', 'success'), (number % 100) / 1000.0,
            map('gpt-4o', (number % 100) / 1000.0), 0, 0, 0, 0, 0, 0, 1000, 0, 0, 200, 0, 7, 7, 3, 0,
            toUInt64(number % 200 = 0), 0, 0, 10, [], 0, toUInt64(1 + number % 2), s + toIntervalSecond(30),
            'synthetic', toUInt32(0), number
        FROM numbers({n:UInt64})""",
        {"n": SYNTH_RUNS, "start_us": start_us, "span_us": span_us},
    )
    for t in ("run_summaries", "model_calls_1m", "tool_calls_1m"):  # the steady state background merges reach
        store.command(f"OPTIMIZE TABLE {t} FINAL")


def _query_latency(path: str) -> list[Result]:
    from tripwire.sinks import migrate, open_store
    from tripwire.sinks import queries as Q

    end = datetime(2026, 11, 26, tzinfo=UTC)
    out: list[Result] = []
    with open_store(f"chdb://{path}?database=synthetic") as store:
        migrate(store)
        t = time.perf_counter()
        _synthesize(store, end)
        gen_s = time.perf_counter() - t
        events = int(
            store.query("SELECT (SELECT count() FROM model_calls) + (SELECT count() FROM tool_calls)").scalar()
        )
        assert events == SYNTH_MODEL_CALLS + SYNTH_TOOL_CALLS
        cases = [(name, name, {}) for name in Q.DASHBOARD_QUERIES]  # run_trace among them
        cases += [  # the same time series at 5-minute resolution (per-minute rollup)
            ("cost_timeseries@5m", "cost_timeseries", {"bucket_s": 300}),
            ("latency_timeseries@5m", "latency_timeseries", {"bucket_s": 300}),
        ]
        for label, name, overrides in cases:
            params = Q.default_params(name, tenant="acme", now=end, hours=24 * DAYS)
            if name == "run_trace":
                params["run_id"] = "run-123456"
            if "bucket_s" in params:
                params["bucket_s"] = 3600  # the dashboard's 24-hour view: hourly points
            params.update(overrides)
            Q.run(store, name, **params)  # warm-up
            samples = []
            rows = 0
            for _ in range(QUERY_REPEATS):
                t = time.perf_counter()
                rows = len(Q.run(store, name, **params).rows)
                samples.append((time.perf_counter() - t) * 1000)
            out.append(
                Result(
                    f"query_p95_ms[{label}]",
                    percentile(samples, 95),
                    "ms",
                    goal="< 300 ms",
                    extra={
                        "events": events,
                        "runs": SYNTH_RUNS,
                        "rows_returned": rows,
                        "median_ms": round(statistics.median(samples), 1),
                        "window_hours": 24 * DAYS,
                        "grain": Q.grain(params) if "@" in Q.QUERIES[name].sql else "raw",
                        "generate_s": round(gen_s, 1),
                        "load_avg_1m": round(os.getloadavg()[0], 1),
                    },
                )
            )
    return out


def run() -> list[Result]:
    path = tempfile.mkdtemp(prefix="tripwire-bench-sink-")
    only = os.environ.get("BENCH_SINK_ONLY")  # "throughput" or "queries"
    try:
        sink = _sink_vs_bulk(path) if only != "queries" else []
        return sink + (_query_latency(path) if only != "throughput" else [])
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    report(run())
