"""Redaction: detectors, validation (Luhn, mod-97), modes, custom hook, failing closed."""

from __future__ import annotations

import json

import pytest

from tripwire.redaction import FULL_MASK, Redactor, iban_valid, luhn_valid

pytestmark = pytest.mark.unit

R = Redactor()

DETECTED = [
    ("write to jane.doe+x@example.co.uk please", "write to [REDACTED:EMAIL] please"),
    ("call (415) 555-0143 now", "call [REDACTED:PHONE] now"),
    ("call 415-555-0143", "call [REDACTED:PHONE]"),
    ("intl +44 20 7946 0958.", "intl [REDACTED:PHONE]."),
    ("card 4111 1111 1111 1111 ok", "card [REDACTED:CARD] ok"),
    ("amex 340000000000009", "amex [REDACTED:CARD]"),
    ("iban GB82 WEST 1234 5698 7654 32", "iban [REDACTED:IBAN]"),
    ("DE89370400440532013000", "[REDACTED:IBAN]"),
    ("key=sk-proj-Abc123Def456Ghi789Jkl0", "key=[REDACTED:SECRET]"),
    ("AKIAIOSFODNN7EXAMPLE", "[REDACTED:SECRET]"),
    ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "token [REDACTED:SECRET]"),
    ("Authorization: Bearer mF_9.B5f-4.1JqM", "Authorization: [REDACTED:SECRET]"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "jwt [REDACTED:SECRET]"),
]


@pytest.mark.parametrize(("text", "expected"), DETECTED)
def test_builtin_detectors(text: str, expected: str) -> None:
    assert R.redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "GB82 WEST 1234 5698 7654 33",  # fails mod-97
        "order 12345678 for 4999 cents on 2025-01-05",
        "refund ch_3MmlLrLkdIwHu7ix0snN0B15",
        "no pii here at all",
    ],
)
def test_lookalikes_survive(text: str) -> None:
    assert R.redact_text(text) == text


def test_validators() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")


def test_structures_keys_ints_and_lists() -> None:
    args = {
        "customer": {"email": "a@b.io", "phone": "+14155550143"},
        "card": 4111111111111111,
        "amount": 4999,
        "password": "hunter2",
        "apiKey": "whatever",
        "tags": ["vip", "x@y.org"],
        "ok": True,
        "ratio": 0.5,
        "none": None,
    }
    assert R.redact(args) == {
        "customer": {"email": "[REDACTED:EMAIL]", "phone": "[REDACTED:PHONE]"},
        "card": "[REDACTED:CARD]",
        "amount": 4999,
        "password": FULL_MASK,
        "apiKey": FULL_MASK,
        "tags": ["vip", "[REDACTED:EMAIL]"],
        "ok": True,
        "ratio": 0.5,
        "none": None,
    }
    assert args["customer"]["email"] == "a@b.io"  # the input is not modified


def test_hash_and_drop_modes() -> None:
    h1 = Redactor("hash", hash_key=b"k").redact_text("mail a@b.io")
    h2 = Redactor("hash", hash_key=b"k").redact_text("mail a@b.io")
    h3 = Redactor("hash", hash_key=b"other").redact_text("mail a@b.io")
    assert h1 == h2 != h3
    assert h1.startswith("mail [EMAIL:") and len(h1) == len("mail [EMAIL:]") + 16
    assert Redactor("drop").redact_text("mail a@b.io now") == "mail  now"
    assert (
        Redactor(detectors=["email"]).redact_text("a@b.io 4111 1111 1111 1111")
        == "[REDACTED:EMAIL] 4111 1111 1111 1111"
    )


def test_custom_hook_runs_after_builtins_and_failures_mask_everything() -> None:
    fields: list[str] = []

    def custom(text: str, *, field: str) -> str:
        fields.append(field)
        return text.replace("ACME-", "[CUSTOMER]-")

    r = Redactor(custom=custom)
    assert r.redact({"ref": "ACME-42 a@b.io", "x": {"y": ["ACME-1"]}}) == {
        "ref": "[CUSTOMER]-42 [REDACTED:EMAIL]",
        "x": {"y": ["[CUSTOMER]-1"]},
    }
    assert fields == ["ref", "x.y[0]"]

    def broken(text: str, *, field: str) -> str:
        raise RuntimeError("regex engine on fire")

    assert Redactor(custom=broken).redact({"ref": "ACME-42", "n": 5}) == {"ref": FULL_MASK, "n": 5}

    def wrong_type(text: str, *, field: str) -> str:
        return 42  # type: ignore[return-value]

    assert Redactor(custom=wrong_type).redact_text("hello") == FULL_MASK


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        Redactor("scramble")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown redaction detectors"):
        Redactor(detectors=["email", "ssn"])


def test_digit_windows_inside_a_finding_and_the_clean_json_check_give_the_same_answers() -> None:
    r = Redactor()
    found = [(f.rule, f.start, f.end) for f in r.find("iban DE89370400440532013000 card 4111 1111 1111 1111")]
    assert found == [("iban", 5, 27), ("card", 33, 52)]  # the IBAN's digits are not also a card or a phone
    found = [(f.rule, f.start, f.end) for f in r.find("call +44 20 7946 0958, card 4111-1111-1111-1111")]
    assert found == [("phone", 5, 21), ("card", 28, 47)]
    assert r.redact_text("pay DE89 3704 0044 0532 0130 00 now") == "pay [REDACTED:IBAN] now"
    # is_clean_json stops at the first PII finding; the answer is the walk's
    for value in ({"a": "x", "b": "jane@example.org", "c": "4111 1111 1111 1111"}, {"n": "ORD-2025-000123"}):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        assert r.is_clean_json(text) is (r.redact(value) == value)
