"""Interop with the Apache ``avro`` reference library (PyPI ``avro``), both directions, with the
single-object framing built and checked independently of fastavro.

Note: avro-python 1.12's ``canonical_form`` keeps logical-typed primitives as ``{"type":"long"}``
where the spec's Parsing Canonical Form ([STRIP] then [PRIMITIVES]) and the Java implementation
give ``"long"``; fastavro follows the spec. The test proves that this is the only difference and
computes the fingerprint with the reference library's own CRC-64-AVRO code.
"""

from __future__ import annotations

import io
import struct

import avro.io
import avro.schema
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from tripwire.schemas import decode, default_catalog, encode, to_record
from tripwire.schemas.samples import sample_records, sample_run

pytestmark = pytest.mark.unit

ALL = [*sample_run(21, steps=5), *sample_records()]

# From apache/avro share/test/data/schema-tests.txt (fingerprints as Java signed longs).
SPEC_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('"long"', '"long"', -3434872931120570953),
    ('"string"', '"string"', -8142146995180207161),
    ('{"type":"long","logicalType":"timestamp-micros"}', '"long"', -3434872931120570953),
    (
        '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    (
        '{"name":"PigValue","type":"record","fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
        '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
        -1759257747318642341,
    ),
]


def _reference_pcf(schema_text: str) -> str:
    pcf = avro.schema.parse(schema_text).canonical_form
    # the one deviation of avro-python 1.12 from the spec (see module doc)
    return pcf.replace('{"type":"long"}', '"long"').replace('{"type":"int"}', '"int"')


def _reference_header(schema_text: str) -> bytes:
    return b"\xc3\x01" + avro.schema._crc_64_fingerprint(_reference_pcf(schema_text).encode())


@pytest.mark.parametrize(("text", "canonical", "fp"), SPEC_VECTORS)
def test_fingerprints_match_the_avro_spec_vectors(text, canonical, fp):
    import json

    ours = to_parsing_canonical_form(json.loads(text))
    assert ours == canonical
    assert bytes.fromhex(fingerprint(ours, "CRC-64-AVRO")) == struct.pack("<q", fp)
    assert avro.schema._crc_64_fingerprint(canonical.encode()) == struct.pack("<q", fp)


def test_shipped_canonical_forms_differ_from_the_reference_library_only_by_the_logical_type_bug():
    for sv in default_catalog().all():
        text = sv.path.read_text()
        assert _reference_pcf(text) == sv.canonical
        assert _reference_header(text) == b"\xc3\x01" + sv.fingerprint


@pytest.mark.parametrize("record", ALL, ids=lambda r: type(r).__name__)
def test_reference_library_reads_our_bytes(record):
    data = encode(record)
    sv = default_catalog().current(type(record).SCHEMA_NAME)
    text = sv.path.read_text()
    assert data[:10] == _reference_header(text)
    reader = avro.io.DatumReader(avro.schema.parse(text))
    body = io.BytesIO(data[10:])
    got = reader.read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(data) - 10
    assert got == to_record(record)
    assert list(got) == list(type(record).model_fields)  # the right union branch


@pytest.mark.parametrize("record", ALL, ids=lambda r: type(r).__name__)
def test_we_read_reference_library_bytes(record):
    sv = default_catalog().current(type(record).SCHEMA_NAME)
    text = sv.path.read_text()
    writer = avro.io.DatumWriter(avro.schema.parse(text))
    buf = io.BytesIO()
    buf.write(_reference_header(text))
    plain = {k: (str(v) if isinstance(v, str) else v) for k, v in to_record(record).items()}  # no StrEnum
    writer.write(plain, avro.io.BinaryEncoder(buf))
    data = buf.getvalue()
    assert data == encode(record)  # byte-identical to what we write
    assert decode(data) == record
