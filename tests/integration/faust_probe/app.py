"""A minimal faust-streaming app: one agent reads a topic, counts per key in a Table
(rocksdb store, changelog-backed) and writes "value:count" to another topic.
Names come from the environment so each test run uses uuid topics."""

import os

import faust

SUFFIX = os.environ["PROBE_SUFFIX"]
app = faust.App(
    f"probe-{SUFFIX}",
    broker=f"kafka://{os.environ['PROBE_BOOTSTRAP']}",
    store="rocksdb://",
    datadir=os.environ["PROBE_DATADIR"],
    topic_partitions=2,
    web_enabled=False,
    processing_guarantee=os.environ.get("PROBE_GUARANTEE", "exactly_once"),
)
source = app.topic(f"src-{SUFFIX}", value_serializer="raw", key_serializer="raw", partitions=2)
sink = app.topic(f"dst-{SUFFIX}", value_serializer="raw", key_serializer="raw", partitions=2)
counts = app.Table("counts", default=int, partitions=2)


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for key, value in stream.items():
        counts[key] += 1
        await sink.send(key=key, value=value + b":" + str(counts[key]).encode())
