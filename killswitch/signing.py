"""Ed25519 signing of kill-switch commands.

The control plane (the policy worker and the on-call CLI) holds the private key; SDKs hold
only public keys. The signature covers a canonical byte form of every field of the command
except ``signature`` itself: a domain-separation prefix, then compact JSON with sorted keys,
enums as their symbols, timestamps as integer microseconds since the epoch (exactly what the
Avro ``timestamp-micros`` carries, so a command survives the topic round trip bit for bit).

``key_id`` names the signing key (the first 16 hex digits of the SHA-256 of the raw public
key) so that SDKs can trust several keys at once while a key is rotated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tripwire.core.errors import ConfigError
from tripwire.killswitch.errors import KillSwitchKeyError, SignatureError
from tripwire.schemas import KillSwitchCommand

if TYPE_CHECKING:
    from tripwire.killswitch.config import KillSwitchConfig

SIGNING_DOMAIN = b"tripwire.killswitch.v1\n"
PRIVATE_KEY_FILE = "killswitch_ed25519.pem"
PUBLIC_KEY_FILE = "killswitch_ed25519.pub.pem"

# Every field but ``signature``, in a fixed list: a field added to the model later is not
# silently left out of (or into) the signed bytes without a new domain.
SIGNED_FIELDS = (
    "command_id",
    "scope",
    "action",
    "min_risk",
    "throttle_per_minute",
    "issued_at",
    "expires_at",
    "reason",
    "alert_id",
    "issued_by",
    "nonce",
    "key_id",
)


def _micros(value: datetime) -> int:
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _canonical_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return _micros(value)
    raise TypeError(f"cannot sign a field of type {type(value).__name__}")


def canonical_bytes(command: KillSwitchCommand) -> bytes:
    """The exact bytes a signature covers (the command without its signature)."""
    body = {name: _canonical_value(getattr(command, name)) for name in SIGNED_FIELDS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return SIGNING_DOMAIN + text.encode("utf-8")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CommandSigner:
    """Signs commands with one Ed25519 private key (control plane side)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.key_id = key_id_of(private_key.public_key())

    @classmethod
    def from_file(cls, path: Path) -> CommandSigner:
        return cls(load_private_key(path))

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(self, command: KillSwitchCommand) -> KillSwitchCommand:
        """A copy of ``command`` carrying this key's id and a signature over its canonical bytes."""
        unsigned = command.model_copy(update={"key_id": self.key_id, "signature": None})
        signature = self._key.sign(canonical_bytes(unsigned))
        return unsigned.model_copy(update={"signature": signature})

    def __repr__(self) -> str:  # never show key material
        return f"CommandSigner(key_id={self.key_id!r})"


class CommandVerifier:
    """Verifies commands against a set of trusted public keys (SDK side)."""

    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        if not public_keys:
            raise KillSwitchKeyError("a verifier needs at least one trusted public key")
        self._keys = {key_id_of(k): k for k in public_keys}

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def verify(self, command: KillSwitchCommand) -> None:
        """Return if ``command`` carries a valid signature by a trusted key, else raise :class:`SignatureError`."""
        if not command.signature:
            raise SignatureError("unsigned", f"command {command.command_id} carries no signature")
        if command.key_id is not None:
            key = self._keys.get(command.key_id)
            if key is None:
                raise SignatureError("unknown_key", f"command {command.command_id} is signed by untrusted key")
            candidates = [key]
        else:
            candidates = list(self._keys.values())
        data = canonical_bytes(command)
        for key in candidates:
            try:
                key.verify(command.signature, data)
                return
            except InvalidSignature:
                continue
        raise SignatureError("bad_signature", f"command {command.command_id} has an invalid signature")


# -- key files -----------------------------------------------------------------------------


def generate_keypair(out_dir: Path, *, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write a new Ed25519 keypair as PEM files (private key mode 0600); return (private, public, key_id)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / PRIVATE_KEY_FILE
    public_path = out_dir / PUBLIC_KEY_FILE
    if not overwrite and (private_path.exists() or public_path.exists()):
        raise KillSwitchKeyError(f"key files already exist in {out_dir}; refusing to overwrite them")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Create the private key file with 0600 from the start: never world-readable, even briefly.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(private_path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, private_pem)
    finally:
        os.close(fd)
    public_path.write_bytes(public_pem)
    return private_path, public_path, key_id_of(key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KillSwitchKeyError(f"cannot read the kill-switch private key file {path}: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KillSwitchKeyError(f"{path} is not an unencrypted PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KillSwitchKeyError(f"{path} is not an Ed25519 private key")
    return key


def parse_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM text or the base64 of its 32 raw bytes."""
    data = text.encode() if isinstance(text, str) else text
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as e:
            raise KillSwitchKeyError("not a PEM public key") from e
        if not isinstance(key, Ed25519PublicKey):
            raise KillSwitchKeyError("the PEM public key is not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(data.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise KillSwitchKeyError("a public key must be PEM or the base64 of 32 raw Ed25519 bytes") from e


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KillSwitchKeyError(f"cannot read the kill-switch public key file {path}: {e.strerror}") from e
    try:
        return parse_public_key(data)
    except KillSwitchKeyError as e:
        raise KillSwitchKeyError(f"{path}: {e}") from e


# -- keys named by the settings ------------------------------------------------------------


def configured_public_keys(config: KillSwitchConfig) -> list[Ed25519PublicKey]:
    """The public keys ``config`` names (``public_key_path`` or ``public_key``); empty when it names none."""
    if config.public_key_path is not None:
        return [load_public_key(config.public_key_path)]
    if config.public_key is not None:
        return [parse_public_key(config.public_key)]
    return []


def build_verifier(config: KillSwitchConfig) -> CommandVerifier:
    """The verifier of the control plane's public key named by ``config`` (ConfigError if none is)."""
    keys = configured_public_keys(config)
    if not keys:
        raise ConfigError(
            "killswitch: no public key configured; set TRIPWIRE_KILLSWITCH_PUBLIC_KEY_PATH (or _PUBLIC_KEY) "
            "to the control plane's Ed25519 public key (tripwire keys generate)"
        )
    return CommandVerifier(keys)


def build_signer(config: KillSwitchConfig) -> CommandSigner:
    """The signer of ``config.private_key_path`` (ConfigError if none is set, KillSwitchKeyError if unreadable)."""
    if config.private_key_path is None:
        raise ConfigError(
            "killswitch: no signing key configured; run `tripwire keys generate` and set "
            "TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH (control plane and on-call only)"
        )
    return CommandSigner.from_file(config.private_key_path)


__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "SIGNED_FIELDS",
    "CommandSigner",
    "CommandVerifier",
    "KillSwitchKeyError",
    "SignatureError",
    "build_signer",
    "build_verifier",
    "canonical_bytes",
    "configured_public_keys",
    "generate_keypair",
    "key_id_of",
    "load_private_key",
    "load_public_key",
    "parse_public_key",
]
