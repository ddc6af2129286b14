"""The redactor against a corpus per detector family, near-miss negatives, and hostile input."""

from __future__ import annotations

import json
import random
import re
from typing import get_args

import pytest

from tests.unit import _redaction_corpus as corpus
from tripwire.producers.config import RedactionSpec
from tripwire.redaction import (
    CREDENTIAL_FAMILIES,
    FAMILIES,
    FULL_MASK,
    SECRET,
    SECRET_RULES,
    Redactor,
)

R = Redactor(detectors=[SECRET, *FAMILIES])
SCORES = corpus.score(R)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_recall_and_precision_on_the_corpus(family: str) -> None:
    s = SCORES[family]
    assert s.positives >= 2
    assert (s.true_positives, s.false_positives) == (s.positives, 0), s


@pytest.mark.parametrize("text", corpus.NEGATIVES)
def test_near_misses_survive(text: str) -> None:
    assert R.redact_text(text) == text


def test_every_rule_of_the_rule_file_is_exercised_by_a_positive() -> None:
    hit = {f.rule for cases in corpus.POSITIVES.values() for text, _ in cases for f in R.find(text)}
    assert sorted(r.id for r in SECRET_RULES if r.id not in hit) == []


def test_rule_file_loads_with_sources_and_known_families() -> None:
    assert len(SECRET_RULES) == 50
    assert {r.family for r in SECRET_RULES} == set(CREDENTIAL_FAMILIES)
    assert all(r.source for r in SECRET_RULES)
    assert sum(r.source.startswith("detect-secrets") for r in SECRET_RULES) == 25


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_switched_off_finds_nothing_and_alone_finds_only_itself(family: str) -> None:
    others = [f for f in FAMILIES if f != family]
    without, alone = Redactor(detectors=others), Redactor(detectors=[family])
    for text, _ in corpus.POSITIVES[family]:
        assert all(f.family == family for f in alone.find(text))
        assert any(f.family == family for f in alone.find(text)), text
        assert all(f.family != family for f in without.find(text))


def test_secret_expands_to_every_credential_family_and_config_names_every_family() -> None:
    assert Redactor(detectors=[SECRET]).families == CREDENTIAL_FAMILIES
    literal = get_args(RedactionSpec.model_fields["detectors"].annotation)[0]
    assert set(get_args(literal)) == {SECRET, *FAMILIES}
    with pytest.raises(ValueError, match="unknown redaction detectors"):
        Redactor(detectors=["ssn"])


def test_connection_string_keeps_user_and_host() -> None:
    out = R.redact_text("postgres://app:s3cr3tP4ss@db.internal:5432/prod")
    assert out == "postgres://app:[REDACTED:SECRET]@db.internal:5432/prod"


def test_pem_block_is_masked_whole() -> None:
    text, _ = corpus.POSITIVES["private_key"][0]
    assert R.redact_text(f"before\n{text}\nafter") == "before\n[REDACTED:SECRET]\nafter"


def test_nested_json_under_neutral_keys() -> None:
    sk = "sk_live_" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    args = {"a": [{"b": {"c": [f"pay with {sk}", {"d": "mail josé@bücher.de"}]}}], "n": 4111111111111111}
    deep: dict = {"x": "AKIAIOSFODNN7EXAMPLE"}
    for _ in range(200):
        deep = {"k": [deep]}
    assert R.redact(args) == {
        "a": [{"b": {"c": ["pay with [REDACTED:SECRET]", {"d": "mail [REDACTED:EMAIL]"}]}}],
        "n": "[REDACTED:CARD]",
    }
    assert "AKIA" not in json.dumps(R.redact(deep))
    assert not R.is_clean_json(json.dumps(args, ensure_ascii=False))


def test_escaped_json_text_is_never_declared_clean() -> None:
    # "\nAKIA..." inside JSON text reads "\\nAKIA...": the run starts with "n" and no token rule matches it
    value = {"note": "line one\nAKIAIOSFODNN7EXAMPLE"}
    text = json.dumps(value)
    assert not R.is_clean_json(text)
    assert R.redact(value) == {"note": "line one\n[REDACTED:SECRET]"}


def test_one_megabyte_strings() -> None:
    rng = random.Random(1)
    clean = " ".join(rng.choice(["order", "shipped", "refund", "carrier", "2025-01-05", "ok."]) for _ in range(200_000))
    clean = clean[: 1 << 20]
    assert R.redact_text(clean) == clean
    dirty = clean[:-40] + " ghp_16C7e42F292c6912E7710c838347Ae178B4a"
    out = R.redact_text(dirty)
    assert out.endswith(" [REDACTED:SECRET]") and "ghp_" not in out
    blob = "A" * (1 << 20) + "@x"
    assert R.redact_text(blob) == blob  # no e-mail: a 1 MB local-part run is one pass, not quadratic


def test_binary_looking_and_malformed_utf8_strings_do_not_crash() -> None:
    rng = random.Random(7)
    raw = bytes(rng.randrange(256) for _ in range(64 * 1024))
    for text in (raw.decode("latin-1"), raw.decode("utf-8", "surrogateescape"), raw.decode("utf-8", "replace")):
        out = R.redact_text(text)
        assert isinstance(out, str)
    broken = b"mail jane@example.org \xff\xfe key AKIAIOSFODNN7EXAMPLE".decode("utf-8", "surrogateescape")
    assert R.redact_text(broken) == "mail [REDACTED:EMAIL] \udcff\udcfe key [REDACTED:SECRET]"
    assert R.redact({"b": b"card 4111 1111 1111 1111"}) == {"b": "card [REDACTED:CARD]"}


def test_a_failing_detector_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Redactor()

    def boom(text: str) -> list:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(r, "find", boom)
    assert r.redact_text("anything at all") == FULL_MASK
    assert r.redact({"a": "x", "b": ["y"]}) == {"a": FULL_MASK, "b": [FULL_MASK]}


def test_redact_error_masks_the_message() -> None:
    e = ValueError("could not charge 4111 1111 1111 1111 for jane@example.org")
    assert R.redact_error(e) == "ValueError: could not charge [REDACTED:CARD] for [REDACTED:EMAIL]"
    assert R.redact_error(KeyError()) == "KeyError"


def test_hash_mode_labels_credentials_as_secret() -> None:
    h = Redactor("hash", hash_key=b"k").redact_text("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx")
    assert re.fullmatch(r"\[SECRET:[0-9a-f]{16}\]", h)


def test_random_ordinary_identifiers_are_rarely_or_never_flagged() -> None:
    hits = corpus.noise_hits(R, n=2000)
    assert hits["base64_48B"] == hits["base64url_32B"] == hits["order_id"] == {}
    assert sum(hits["uuid4"].values()) <= 2 and sum(hits["sha1_hex"].values()) <= 2  # <= 0.1 %
    # a random 16-digit number: issuer prefix + Luhn let ~4 % through as a card (a 10-digit one ~1 %
    # as a phone written with the 00 international prefix): numbers are redacted on the side of caution
    assert hits["digits_16"].get("card", 0) <= 0.05 * 2000
