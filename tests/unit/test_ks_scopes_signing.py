"""Kill-switch scopes and Ed25519 signing: parsing, matching, canonical bytes, forgery."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tripwire.killswitch import (
    CallIdentity,
    CommandSigner,
    CommandVerifier,
    KillSwitchKeyError,
    Scope,
    ScopeError,
    ScopeKind,
    SignatureError,
    canonical_bytes,
    generate_keypair,
    load_private_key,
    load_public_key,
    matching_scopes,
    new_command,
    parse_duration,
    parse_public_key,
    parse_scope,
    scope_text,
)
from tripwire.schemas import KillSwitchCommand, decode, encode
from tripwire.schemas.enums import KillSwitchAction, Risk

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("global", Scope(ScopeKind.GLOBAL)),
        ("tenant:acme", Scope(ScopeKind.TENANT, tenant="acme")),
        ("agent:refund-assistant", Scope(ScopeKind.AGENT, agent="refund-assistant")),
        ("agent:refund-assistant@1.4.2", Scope(ScopeKind.AGENT_VERSION, agent="refund-assistant", version="1.4.2")),
        ("tool:stripe.issue_refund", Scope(ScopeKind.TOOL, tool="stripe.issue_refund")),
        ("agent:a1/tool:search", Scope(ScopeKind.AGENT_TOOL, agent="a1", tool="search")),
        ("credential:sha256:ab12=", Scope(ScopeKind.CREDENTIAL, credential="sha256:ab12=")),
    ],
)
def test_scopes_parse_and_print_back_to_the_same_text(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "text", ["", "Global", "agent:", "agent:a b", "agent:a@", "tool:x/agent:a", "agent:a/tool:", "tenant:t:u",
             "agent:a@1/tool:x", " global", "user:bob", "agent:-x"],
)
def test_bad_scopes_raise_a_scope_error_naming_the_grammar(text: str) -> None:
    with pytest.raises(ScopeError, match="expected global"):
        parse_scope(text)


def test_scope_text_builds_and_validates() -> None:
    assert scope_text("agent_tool", agent="a", tool="t.x") == "agent:a/tool:t.x"
    with pytest.raises(ScopeError):
        scope_text("agent_tool", agent="a", tool=None)
    with pytest.raises(ScopeError):
        scope_text("agent", agent="has space")


def test_matching_scopes_lists_every_scope_of_a_call_broadest_first() -> None:
    call = CallIdentity("acme", "bot", "2.0", "search", "fp1")
    assert matching_scopes(call) == (
        "global", "tenant:acme", "agent:bot", "agent:bot@2.0", "tool:search", "agent:bot/tool:search", "credential:fp1",
    )
    assert matching_scopes(CallIdentity("acme", "bot", None, "search")) == (
        "global", "tenant:acme", "agent:bot", "tool:search", "agent:bot/tool:search",
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("1h", 3600), ("45s", 45), ("2d", 172800), ("250ms", 0.25), ("90", 90), (5, 5)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "-5m", "0s", "5 weeks"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_new_command_validates_action_arguments() -> None:
    c = new_command(scope="agent:a", action="throttle", reason="r", issued_by="me", throttle_per_minute=3,
                    ttl=timedelta(minutes=5), now=T0)
    assert (c.scope, c.action, c.throttle_per_minute, c.issued_at, c.expires_at) == (
        "agent:a", KillSwitchAction.THROTTLE, 3, T0, T0 + timedelta(minutes=5))
    with pytest.raises(ValueError, match="per-minute"):
        new_command(scope="agent:a", action="throttle", reason="r", issued_by="me")
    with pytest.raises(ValueError, match="min_risk"):
        new_command(scope="agent:a", action="freeze_tool", reason="r", issued_by="me", min_risk="high")
    with pytest.raises(ScopeError):
        new_command(scope="agent a", action="freeze_tool", reason="r", issued_by="me")
    a = new_command(scope="global", action="resume", reason="", issued_by="me")
    b = new_command(scope="global", action="resume", reason="", issued_by="me")
    assert a.nonce != b.nonce and a.command_id != b.command_id


def _command(**kw: object) -> KillSwitchCommand:
    args: dict = dict(scope="agent:refund-assistant", action="force_approval", reason="cost spike", issued_by="oncall",
                      min_risk="medium", ttl=timedelta(minutes=30), alert_id="al-1", now=T0)
    args.update(kw)
    return new_command(**args)  # type: ignore[arg-type]


def test_signature_verifies_and_survives_the_avro_round_trip() -> None:
    signer = CommandSigner(Ed25519PrivateKey.generate())
    verifier = CommandVerifier([signer.public_key()])
    signed = signer.sign(_command())
    assert signed.key_id == signer.key_id and len(signed.signature or b"") == 64
    verifier.verify(signed)
    decoded = decode(encode(signed))
    assert isinstance(decoded, KillSwitchCommand)
    assert canonical_bytes(decoded) == canonical_bytes(signed)
    verifier.verify(decoded)


def test_canonical_bytes_cover_every_field_but_the_signature() -> None:
    signer = CommandSigner(Ed25519PrivateKey.generate())
    verifier = CommandVerifier([signer.public_key()])
    signed = signer.sign(_command())
    changes = {
        "command_id": "other", "scope": "agent:other", "action": KillSwitchAction.FREEZE_TOOL, "min_risk": Risk.HIGH,
        "throttle_per_minute": 7, "issued_at": T0 + timedelta(microseconds=1), "expires_at": None,
        "reason": "cost spike!", "alert_id": None, "issued_by": "mallory", "nonce": "n2",
    }
    for field, value in changes.items():
        tampered = signed.model_copy(update={field: value})
        assert canonical_bytes(tampered) != canonical_bytes(signed), field
        with pytest.raises(SignatureError) as e:
            verifier.verify(tampered)
        assert e.value.reason == "bad_signature", field
    assert canonical_bytes(signed.model_copy(update={"signature": b"x" * 64})) == canonical_bytes(signed)


def test_unsigned_forged_and_unknown_key_commands_fail_with_their_reason() -> None:
    trusted = CommandSigner(Ed25519PrivateKey.generate())
    attacker = CommandSigner(Ed25519PrivateKey.generate())
    verifier = CommandVerifier([trusted.public_key()])
    cases = {
        "unsigned": _command(),
        "unknown_key": attacker.sign(_command()),
        # The attacker claims the trusted key id but signs with its own key.
        "bad_signature": attacker.sign(_command()).model_copy(update={"key_id": trusted.key_id}),
    }
    for reason, cmd in cases.items():
        with pytest.raises(SignatureError) as e:
            verifier.verify(cmd)
        assert e.value.reason == reason
    no_key_id = trusted.sign(_command()).model_copy(update={"key_id": None})
    with pytest.raises(SignatureError):  # key_id is signed too
        verifier.verify(no_key_id)


def test_several_trusted_keys_allow_rotation() -> None:
    old, new = CommandSigner(Ed25519PrivateKey.generate()), CommandSigner(Ed25519PrivateKey.generate())
    verifier = CommandVerifier([old.public_key(), new.public_key()])
    verifier.verify(old.sign(_command()))
    verifier.verify(new.sign(_command()))
    assert set(verifier.key_ids) == {old.key_id, new.key_id}
    with pytest.raises(KillSwitchKeyError):
        CommandVerifier([])


def test_generated_key_files_load_and_the_private_key_is_0600(tmp_path) -> None:
    private, public, key_id = generate_keypair(tmp_path / "keys")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    signer = CommandSigner(load_private_key(private))
    assert signer.key_id == key_id
    CommandVerifier([load_public_key(public)]).verify(signer.sign(_command()))
    assert key_id not in repr(load_private_key(private)) and "PRIVATE" not in repr(signer)
    with pytest.raises(KillSwitchKeyError, match="refusing to overwrite"):
        generate_keypair(tmp_path / "keys")
    with pytest.raises(KillSwitchKeyError, match="not an unencrypted PEM private key"):
        load_private_key(public)
    with pytest.raises(KillSwitchKeyError, match="cannot read"):
        load_public_key(tmp_path / "missing.pem")


def test_public_key_from_base64_raw_bytes() -> None:
    import base64

    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    parsed = parse_public_key(base64.b64encode(raw).decode())
    signer = CommandSigner(key)
    CommandVerifier([parsed]).verify(signer.sign(_command()))
    with pytest.raises(KillSwitchKeyError):
        parse_public_key("not a key")
