"""PII and secret redaction, applied to tool args and prompts before anything is serialized.

Built-in detectors (one combined regex pass per string; candidates are then validated):
emails, phone numbers, payment cards (Luhn-checked), IBANs (ISO 7064 mod-97 checked) and secrets
(``sk-...`` API keys, AWS ``AKIA``/``ASIA`` key ids, GitHub ``ghp_``/``gho_``/... tokens, JWTs, bearer
tokens). Values under sensitive dict keys (``password``, ``token``, ...) are masked whole.

Modes: ``redact`` (``[REDACTED:EMAIL]``), ``hash`` (``[EMAIL:<hmac-sha256 prefix>]``, stable for joins)
or ``drop`` (the match is removed). A custom callable runs after the built-ins. If anything in the
redactor raises, the whole value is masked: it fails closed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

logger = logging.getLogger(__name__)

Mode = Literal["redact", "hash", "drop"]
FULL_MASK = "[REDACTED]"
_MIN_LEN = 6  # shortest string any detector can match ("a@b.co")


class CustomRedactor(Protocol):
    """A user hook, called on every string after the built-in detectors: return the masked text."""

    def __call__(self, text: str, *, field: str) -> str: ...


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _card_ok(m: str) -> bool:
    digits = re.sub(r"[ -]", "", m)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _phone_ok(m: str) -> bool:
    n = sum(c.isdigit() for c in m)
    return 8 <= n <= 15 if m.lstrip().startswith("+") else 10 <= n <= 15


_DETECTORS: dict[str, tuple[str, Callable[[str], bool] | None]] = {
    # Order matters: the alternation tries earlier detectors first at each position.
    "secret": (
        r"(?:\bsk-[A-Za-z0-9_\-]{16,}"
        r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
        r"|\bgithub_pat_[A-Za-z0-9_]{20,}"
        r"|\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"
        r"|(?i:\bbearer)\s+[A-Za-z0-9\-._~+/]{8,}=*)",
        None,
    ),
    "email": (r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", None),
    "iban": (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", iban_valid),
    "card": (r"(?<![\d])\d(?:[ \-]?\d){12,18}(?![\d])", _card_ok),
    "phone": (
        r"(?:(?<![\w+])\+\d[\d \-.()]{6,20}\d(?!\d)"
        r"|(?<![\w])\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}(?!\d))",
        _phone_ok,
    ),
}

DETECTOR_NAMES = tuple(_DETECTORS)

# A cheap superset of every detector, made of substring tests (C speed; a regex alternation costs
# microseconds per 100 characters): a string that fails all of them cannot match any detector, so the
# combined pattern only runs on candidates. Digit runs are found by mapping digits and the separators
# a phone or card may contain to "D" (8 in a row: the shortest phone), and IBAN starts by mapping
# capitals to "U" and digits to "D" ("UUDD").
_DIGITS_SEPS = bytes(
    ord("D") if (48 <= i <= 57 or i in b" -.()") else (i if i != ord("D") else ord("x")) for i in range(256)
)
_CAPS_DIGITS = bytes(ord("D") if 48 <= i <= 57 else ord("U") if 65 <= i <= 90 else ord("x") for i in range(256))


def may_contain_pii(text: str, sensitive: tuple[bytes, ...] = ()) -> bool:
    """False only if no built-in detector can match ``text`` (nor any of the lower-case ``sensitive`` words)."""
    if "@" in text or "sk-" in text or "eyJ" in text or "AKIA" in text or "ASIA" in text or "github_pat_" in text:
        return True
    if "gh" in text and ("ghp_" in text or "gho_" in text or "ghu_" in text or "ghs_" in text or "ghr_" in text):
        return True
    b = text.encode()
    if b"DDDDDDDD" in b.translate(_DIGITS_SEPS) or b"UUDD" in b.translate(_CAPS_DIGITS):
        return True
    low = b.lower()
    if b"bearer" in low:
        return True
    return any(word in low for word in sensitive)


class Redactor:
    """Masks PII and secrets in strings and JSON-like structures. Thread-safe and stateless."""

    def __init__(
        self,
        mode: Mode = "redact",
        detectors: Iterable[str] = DETECTOR_NAMES,
        *,
        hash_key: bytes | None = None,
        custom: CustomRedactor | None = None,
        sensitive_keys: Iterable[str] = ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization"),
    ) -> None:
        if mode not in ("redact", "hash", "drop"):
            raise ValueError(f"redaction mode must be redact, hash or drop, got {mode!r}")
        names = list(detectors)
        unknown = sorted(set(names) - set(_DETECTORS))
        if unknown:
            raise ValueError(f"unknown redaction detectors {unknown}; known: {list(_DETECTORS)}")
        self.mode: Mode = mode
        self._hash_key = hash_key or b""
        self._custom = custom
        self._sensitive = tuple(k.lower() for k in sensitive_keys)
        self._key_cache: dict[str, bool] = {}
        self._sensitive_bytes = tuple(k.encode() for k in self._sensitive)
        ordered = [n for n in _DETECTORS if n in names]
        self._validators = {n: _DETECTORS[n][1] for n in ordered}
        self._pattern = re.compile("|".join(f"(?P<{n}>{_DETECTORS[n][0]})" for n in ordered)) if ordered else None

    # -- strings -----------------------------------------------------------------------------------
    def _replacement(self, kind: str, text: str) -> str:
        if self.mode == "drop":
            return ""
        if self.mode == "hash":
            digest = hmac.new(self._hash_key, text.encode(), hashlib.sha256).hexdigest()[:16]
            return f"[{kind.upper()}:{digest}]"
        return f"[REDACTED:{kind.upper()}]"

    def _sub(self, m: re.Match[str]) -> str:
        kind = m.lastgroup or "pii"
        text = m.group()
        check = self._validators.get(kind)
        if check is not None and not check(text):
            return text
        return self._replacement(kind, text)

    def redact_text(self, text: str, field: str = "") -> str:
        """The masked text; never raises (a failing detector or hook masks the whole value)."""
        try:
            out = text
            if self._pattern is not None and len(text) >= _MIN_LEN and may_contain_pii(text):
                out = self._pattern.sub(self._sub, text)
            if self._custom is not None:
                out = self._custom(out, field=field)
                if not isinstance(out, str):
                    raise TypeError(f"custom redactor returned {type(out).__name__}, expected str")
            return out
        except Exception as e:  # fail closed
            logger.warning("redaction failed, value fully masked field=%s error=%s", field, type(e).__name__)
            return FULL_MASK

    # -- structures --------------------------------------------------------------------------------
    def _is_sensitive_key(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            k = key.lower()
            hit = any(s in k for s in self._sensitive)
            if len(self._key_cache) < 4096:  # keys repeat; values are never cached
                self._key_cache[key] = hit
        return hit

    def _walk(self, value: Any, field: str) -> Any:
        t = type(value)
        if t is str:
            return self.redact_text(value, field)
        if t is bool or value is None or t is float:
            return value
        if t is int:
            # a card or phone number passed as an int
            if abs(value) >= 10_000_000:
                masked = self.redact_text(str(value), field)
                return value if masked == str(value) else masked
            return value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = k if type(k) is str else str(k)
                if v is not None and self._is_sensitive_key(key):
                    out[key] = FULL_MASK if self.mode != "hash" else self._replacement("secret", str(v))
                else:
                    out[key] = self._walk(v, f"{field}.{key}" if field else key)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(v, f"{field}[{i}]") for i, v in enumerate(value)]
        return self.redact_text(str(value), field)

    def is_clean_json(self, text: str) -> bool:
        """True if redacting the value serialized as ``text`` (JSON) provably changes nothing.

        Every detector match is made of characters JSON never escapes, so a value whose JSON holds
        no trigger and no sensitive key name has nothing to redact; this one regex pass replaces the
        walk in the common case. With a custom hook the walk always runs.
        """
        if self._custom is not None or self._pattern is None:
            return False
        return not may_contain_pii(text, self._sensitive_bytes)

    def redact(self, value: Any, field: str = "") -> Any:
        """A masked copy of a JSON-like value (dicts, lists, strings, numbers); fails closed."""
        try:
            return self._walk(value, field)
        except Exception as e:
            logger.warning("redaction failed, value fully masked field=%s error=%s", field, type(e).__name__)
            return FULL_MASK


__all__ = ["DETECTOR_NAMES", "FULL_MASK", "CustomRedactor", "Redactor", "iban_valid", "luhn_valid"]
