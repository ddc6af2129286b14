"""Codec throughput against raw fastavro on the same events.

Baselines (no framing, no models, dicts prepared in advance):
- ``raw_record``: ``fastavro.schemaless_writer``/``schemaless_reader`` with each event's own parsed
  record schema: the fastest raw fastavro writes or reads these bodies. Ratios are against this.
- ``raw_union``: the same calls with the parsed events *union* schema (the literal writer schema);
  fastavro re-walks a top-level union on every call, so this baseline is much slower, and
  ratios against it are reported only as extra information.

Candidates (``tripwire.schemas``): single-object framing + pydantic models, validated (the default)
or trusted (``validate=False``: encode skips re-validating a model already built and validated;
decode builds the model without re-validation after fastavro has checked every type).
"""

from __future__ import annotations

import io
import json
import time

from fastavro import schemaless_reader, schemaless_writer

from benchmarks._harness import Result, report

GOAL = ">= 0.8x raw_record"
ROUNDS = 15


def _cpu_rate(fn) -> float:
    """Items per CPU-second of this process: the codec is single-threaded and does no I/O, so CPU
    time is its cost, and time spent descheduled by other work on the machine does not count."""
    t0 = time.process_time()
    n = fn()
    return n / max(time.process_time() - t0, 1e-9)


def interleaved(baseline, candidate, rounds: int = ROUNDS) -> tuple[float, float]:
    """Best items per CPU-second of a baseline and a candidate over ``rounds`` alternating runs.
    Other work only ever slows a run (cache and frequency effects), so each side's best run is its
    least disturbed figure; alternating exposes both sides to the same conditions."""
    b = c = 0.0
    for _ in range(rounds):
        b = max(b, _cpu_rate(baseline))
        c = max(c, _cpu_rate(candidate))
    return b, c


def _workload():
    from tripwire.schemas import default_catalog, encode, to_record
    from tripwire.schemas.samples import sample_run

    events = [e for seed in range(300) for e in sample_run(seed, steps=6)]
    sv = default_catalog().current("events")
    by_name = dict(zip(sv.branch_names, sv.branches, strict=True))
    records = [to_record(e) for e in events]
    record_schemas = [by_name[type(e).AVRO_NAME] for e in events]
    union_records = [(type(e).AVRO_NAME, r) for e, r in zip(events, records, strict=True)]
    framed = [encode(e) for e in events]
    bodies = [d[11:] for d in framed]  # after the 10-byte header and the 1-byte branch index
    return events, sv.parsed, records, record_schemas, union_records, framed, bodies


def run() -> list[dict]:
    from tripwire.schemas import decode, encode

    events, union_schema, records, record_schemas, union_records, framed, bodies = _workload()
    n = len(events)
    pairs = list(zip(record_schemas, records, strict=True))
    read_pairs = list(zip(record_schemas, bodies, strict=True))
    union_bodies = [d[10:] for d in framed]

    def raw_record_encode() -> int:
        for schema, rec in pairs:
            buf = io.BytesIO()
            schemaless_writer(buf, schema, rec)
            buf.getvalue()
        return n

    def raw_union_encode() -> int:
        for rec in union_records:
            buf = io.BytesIO()
            schemaless_writer(buf, union_schema, rec)
            buf.getvalue()
        return n

    def raw_record_decode() -> int:
        for schema, body in read_pairs:
            schemaless_reader(io.BytesIO(body), schema)
        return n

    def raw_union_decode() -> int:
        for body in union_bodies:
            schemaless_reader(io.BytesIO(body), union_schema)
        return n

    def enc(validate: bool):
        def f() -> int:
            for e in events:
                encode(e, validate)
            return n

        return f

    def dec(validate: bool):
        def f() -> int:
            for d in framed:
                decode(d, validate)
            return n

        return f

    results: list[dict] = []
    for op, raw_record, raw_union, candidates in (
        ("encode", raw_record_encode, raw_union_encode, (("validated", enc(True)), ("trusted", enc(False)))),
        ("decode", raw_record_decode, raw_union_decode, (("validated", dec(True)), ("trusted", dec(False)))),
    ):
        for label, fn in candidates:
            base, ours = interleaved(raw_record, fn)
            union_base, _ = interleaved(raw_union, fn, rounds=3)
            results.append(
                {
                    "name": f"codec_{op}_{label}",
                    "value": ours,
                    "unit": "events/cpu-s",
                    "ratio": ours / base,
                    "baseline": base,
                    "goal": GOAL,
                    "extra": {
                        "baseline_name": f"raw_record_{op}",
                        "raw_union_events_per_s": union_base,
                        "ratio_vs_raw_union": ours / union_base,
                        "events": n,
                    },
                }
            )
    results += _confluent(events, n, raw_record_encode, raw_record_decode)
    return results


def _confluent(events, n, raw_record_encode, raw_record_decode) -> list[dict]:
    """The Confluent framing (confluent-kafka's AvroSerializer/AvroDeserializer, in-process mock
    registry so no network time is counted), trusted path, against the same raw baseline."""
    try:
        from tripwire.schemas.confluent import ConfluentCodec
    except ImportError:  # the 'registry' extra is not installed
        return []
    codec = ConfluentCodec("mock://bench-codec")
    framed = [codec.encode(e) for e in events]

    def enc() -> int:
        for e in events:
            codec.encode(e, False)
        return n

    def dec() -> int:
        for d in framed:
            codec.decode(d, False)
        return n

    out = []
    for op, raw, fn in (("encode", raw_record_encode, enc), ("decode", raw_record_decode, dec)):
        base, ours = interleaved(raw, fn, rounds=5)
        out.append(
            {
                "name": f"codec_confluent_{op}_trusted",
                "value": ours,
                "unit": "events/cpu-s",
                "ratio": ours / base,
                "baseline": base,
                "extra": {"baseline_name": f"raw_record_{op}", "events": n, "registry": "mock://"},
            }
        )
    return out


def main() -> None:
    results = run()
    report([Result(**r) for r in results])
    print(json.dumps({"benchmark": "codec", "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()
