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

from fastavro import schemaless_reader, schemaless_writer

from benchmarks._harness import Result, interleaved, report

GOAL = ">= 0.8x raw_record"


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
            base, ours = interleaved(raw_record, fn, rounds=9)
            union_base, _ = interleaved(raw_union, fn, rounds=2)
            results.append(
                {
                    "name": f"codec_{op}_{label}",
                    "value": ours,
                    "unit": "events/s",
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
    return results


def main() -> None:
    results = run()
    report([Result(**r) for r in results])
    print(json.dumps({"benchmark": "codec", "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()
