"""The redactor: finds credentials and PII in strings and JSON-like values and masks them.

Finding runs in three cheap-first stages per string, each gated by a test that runs at C speed:
PII (one combined pattern, only if the text holds an "@", a run of 8 digits/separators or a
capital-capital-digit-digit start), token rules (tried only where a run of 13+ ``[A-Za-z0-9_-]``
starts: provider keys are such runs) and keyword rules (tried only if the text holds one of their
keywords and one of the characters they need). Candidates are then validated (Luhn + issuer, IBAN
mod-97 + length, JWT header, entropy, placeholder) and overlapping findings merged.

Modes: ``redact`` (``[REDACTED:EMAIL]``), ``hash`` (``[EMAIL:<hmac-sha256 prefix>]``, stable for joins)
or ``drop`` (the match is removed). A custom callable runs after the built-ins. If anything in the
redactor raises, the whole value is masked: it fails closed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple, Protocol

from tripwire.redaction._catalog import SECRET, Detector, detectors_for, expand_families
from tripwire.redaction._validators import shannon_entropy

logger = logging.getLogger(__name__)

Mode = Literal["redact", "hash", "drop"]
FULL_MASK = "[REDACTED]"
DETECTOR_NAMES = (SECRET, "email", "card", "iban", "phone")
DEFAULT_SENSITIVE_KEYS = ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization")
_MIN_LEN = 6  # shortest string any detector can match ("a@b.co")
_TOKEN_RUN = 13  # shortest token rule match ("AKC" + 10)

_TOKEN_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_TOKEN_W = bytes(ord("w") if i in _TOKEN_CHARS else 32 for i in range(256))
_TOKEN_GATE = b"w" * _TOKEN_RUN
# digits and what a phone or card may hold between them -> "D", anything else -> "x" (8 "D" in a row:
# the shortest phone); capitals -> "U", digits -> "D" ("UUDD": an IBAN start)
_DIGITS_SEPS = bytes(ord("D") if (48 <= i <= 57 or i in b" -.()/+") else ord("x") for i in range(256))
_CAPS_DIGITS = bytes(ord("D") if 48 <= i <= 57 else ord("U") if 65 <= i <= 90 else ord("x") for i in range(256))
_EMAIL_BEFORE, _EMAIL_AFTER = 65, 256  # local part <= 64, domain <= 255
_IBAN_SPAN = 48  # 34 characters and their spaces


def _covered(found: list[Finding], lo: int, hi: int) -> bool:
    """True if ``[lo, hi)`` lies inside one finding: a match there would overlap it and end no later."""
    return any(f.start <= lo and hi <= f.end for f in found)


class CustomRedactor(Protocol):
    """A user hook, called on every string after the built-in detectors: return the masked text."""

    def __call__(self, text: str, *, field: str) -> str: ...


class Finding(NamedTuple):
    """One thing found: ``text[start:end]`` is masked; ``family`` and ``rule`` name the detector."""

    start: int
    end: int
    family: str
    rule: str
    label: str


class Redactor:
    """Masks PII and secrets in strings and JSON-like structures. Thread-safe and stateless."""

    def __init__(
        self,
        mode: Mode = "redact",
        detectors: Iterable[str] = DETECTOR_NAMES,
        *,
        hash_key: bytes | None = None,
        custom: CustomRedactor | None = None,
        sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS,
    ) -> None:
        if mode not in ("redact", "hash", "drop"):
            raise ValueError(f"redaction mode must be redact, hash or drop, got {mode!r}")
        self.families = expand_families(detectors)  # raises ValueError on an unknown name
        self.mode: Mode = mode
        self._hash_key = hash_key or b""
        self._custom = custom
        self._sensitive = tuple(k.lower() for k in sensitive_keys)
        self._key_cache: dict[str, bool] = {}
        self._sensitive_bytes = tuple(k.encode() for k in self._sensitive)
        dets = detectors_for(self.families)
        pii = [d for d in dets if d.anchor == "pii"]
        self._pii = {d.id: d for d in pii}
        self._tokens = [d for d in dets if d.anchor == "token"]
        self._by_first: dict[str, tuple[Detector, ...]] = {}
        for d in self._tokens:
            for c in {p[0] for p in d.prefixes}:
                self._by_first[c] = (*self._by_first.get(c, ()), d)
        self._contain_rules = tuple(d for d in self._tokens if d.contains)
        self._prefixes = tuple(sorted({p for d in self._tokens for p in d.prefixes}))
        self._contains = tuple(sorted({d.contains for d in self._tokens if d.contains}))
        # keyword rules, cheapest gate first; keywords compared lower-case (the regex decides the case)
        kw = [(d, tuple(sorted({k.lower() for k in d.keywords}))) for d in dets if d.anchor == "keyword"]
        groups: dict[str, list[tuple[Detector, tuple[str, ...]]]] = {}
        for d, keywords in kw:  # rules that need the same characters are gated together
            groups.setdefault(d.needs, []).append((d, keywords))
        self._kw_groups = tuple((needs, tuple(rules)) for needs, rules in sorted(groups.items()))
        self._keyword = tuple(kw)
        self._needs_chars = "".join(sorted({c for d, _ in kw for c in d.needs}))
        self._kw_for: dict[str, tuple[tuple[tuple[Detector, tuple[str, ...]], ...], ...]] = {}
        self.detectors: tuple[Detector, ...] = dets

    @classmethod
    def from_spec(cls, spec: Any, custom: CustomRedactor | None = None) -> Redactor:
        """The redactor of a ``RedactionSpec`` (``TracerConfig.redaction``): the SDK, the OTLP receiver and
        the framework adapters build theirs with this, so one config means one behaviour on every path."""
        key = spec.hash_key.get_secret_value().encode() if spec.hash_key is not None else None
        return cls(spec.mode, spec.detectors, hash_key=key, custom=custom, sensitive_keys=spec.sensitive_keys)

    # -- finding -----------------------------------------------------------------------------------
    def _accept(self, d: Detector, secret: str) -> bool:
        if d.min_entropy and shannon_entropy(secret) < d.min_entropy:
            return False
        return d.validator is None or d.validator(secret)

    def _find_pii(self, text: str, b: bytes, ascii_: bool, out: list[Finding], first: bool = False) -> None:
        # one pass per detector (a card candidate that fails Luhn may still be a phone number); in ASCII
        # text (byte offsets = character offsets) only the windows around a trigger are searched;
        # ``first``: return once anything is found (``is_clean_json`` needs only a yes or no)
        pii = self._pii
        email = pii.get("email")
        if email is not None and "@" in text:
            if not ascii_:
                self._scan(email, text, out)
            else:
                at = text.find("@")
                while at >= 0:
                    self._scan(email, text, out, max(0, at - _EMAIL_BEFORE), at + _EMAIL_AFTER)
                    at = text.find("@", at + 1)
            if first and out:
                return
        iban = pii.get("iban")
        if iban is not None and len(b) >= 15:
            t = b.translate(_CAPS_DIGITS)
            p = t.find(b"UUDD")
            if p >= 0 and not ascii_:
                self._scan(iban, text, out)
            while p >= 0 and ascii_:
                self._scan(iban, text, out, p, p + _IBAN_SPAN)
                p = t.find(b"UUDD", p + 4)
            if first and out:
                return
        card, phone = pii.get("card"), pii.get("phone")
        if (card is not None or phone is not None) and len(b) >= 8:
            t = b.translate(_DIGITS_SEPS)
            p = t.find(b"DDDDDDDD")
            if p >= 0 and not ascii_:
                p, end = 0, len(text)
            elif p >= 0:
                end = t.find(b"x", p)
            while p >= 0:
                hi = end if end >= 0 else len(t)
                # a window inside a finding (an IBAN's digits, a card's) can add nothing the merge would keep
                if card is not None and not _covered(out, p, hi):
                    self._scan(card, text, out, p, hi)
                if phone is not None and not _covered(out, p, hi):
                    self._scan(phone, text, out, p, hi)
                if not ascii_ or end < 0:
                    break
                p = t.find(b"DDDDDDDD", hi)
                end = t.find(b"x", p) if p >= 0 else -1

    def _scan(self, d: Detector, text: str, out: list[Finding], lo: int = 0, hi: int | None = None) -> None:
        for m in d.pattern.finditer(text, lo, len(text) if hi is None else hi):
            if d.validator is None or d.validator(m.group()):
                out.append(Finding(m.start(), m.end(), d.family, d.id, d.label))

    def _find_tokens(self, text: str, b: bytes, ascii_: bool, out: list[Finding]) -> None:
        t = b.translate(_TOKEN_W)
        p = t.find(_TOKEN_GATE)  # the first 13 "w" in a row start a run
        cursor = 0
        while p >= 0:
            end = t.find(b" ", p)
            if end < 0:
                end = len(t)
            if ascii_:
                pos, run = p, text[p:end]
            else:
                run = b[p:end].decode("ascii")
                pos = text.find(run, cursor)
                if pos < 0:  # cannot happen for text that encodes to b; fail closed rather than skip
                    raise ValueError("token run not found in text")
                cursor = pos + len(run)
            if self._try_at(text, run, 0, pos, out):
                pass
            elif "-" in run:
                # a key may start after a dash inside the run ("x-sk-...", "api-ghp_...")
                i = run.find("-")
                while 0 <= i < len(run) - _TOKEN_RUN and not self._try_at(text, run, i + 1, pos, out):
                    i = run.find("-", i + 1)
            p = t.find(_TOKEN_GATE, end)

    def _try_at(self, text: str, run: str, i: int, pos: int, out: list[Finding]) -> bool:
        if run.startswith(self._prefixes, i):
            rules = self._by_first.get(run[i], ())
        elif self._contains and (self._contains[0] in run or any(c in run for c in self._contains[1:])):
            rules = self._contain_rules
        else:
            return False
        n = len(run) - i
        for d in rules:
            lo, hi = d.run_length
            if not lo <= n <= hi or not (run.startswith(d.prefixes, i) or (d.contains and d.contains in run)):
                continue
            m = d.pattern.match(text, pos + i)
            if m is not None and self._accept(d, m.group()):
                out.append(Finding(m.start(), m.end(), d.family, d.id, d.label))
                return True
        return False

    def _find_keywords(self, text: str, out: list[Finding], json_text: bool) -> None:
        present = [c for c in self._needs_chars if c in text]
        # in JSON text where every ":" ends a key (a ":" inside a string value is never after an unescaped
        # quote), the values, which the walk redacts one by one, hold none
        if json_text and ":" in present and text.count(":") == text.count('":'):
            present.remove(":")
        # the groups whose needed characters occur, per set of present characters (at most 2^9 sets)
        key = "".join(present)
        groups = self._kw_for.get(key)
        if groups is None:
            chars = set(key)
            groups = tuple(rules for needs, rules in self._kw_groups if not needs or not chars.isdisjoint(needs))
            self._kw_for[key] = groups
        if not groups:
            return
        low = text.lower()
        hits: dict[str, bool] = {}
        for rules in groups:
            for d, keywords in rules:
                found = False
                for k in keywords:
                    hit = hits.get(k)
                    if hit is None:
                        hit = hits[k] = k in low
                    if hit:
                        found = True
                        break
                if found:
                    for m in d.pattern.finditer(text):
                        s = m.group(d.group)
                        if s and self._accept(d, s):
                            out.append(Finding(m.start(d.group), m.end(d.group), d.family, d.id, d.label))

    def find(self, text: str, *, json_text: bool = False) -> list[Finding]:
        """Every finding in ``text``, sorted and without overlaps (the earliest, then longest, wins).

        ``json_text``: ``text`` is compact JSON without a backslash, searched only to learn whether any
        of its string values holds something (``is_clean_json``): the stages stop at the first finding."""
        if len(text) < _MIN_LEN:
            return []
        b = text.encode("utf-8", "surrogatepass")
        ascii_ = len(b) == len(text)
        found: list[Finding] = []
        if self._pii:
            self._find_pii(text, b, ascii_, found, json_text)
        if self._tokens and len(b) >= _TOKEN_RUN and not (json_text and found):
            self._find_tokens(text, b, ascii_, found)
        if self._keyword and not (json_text and found):
            self._find_keywords(text, found, json_text)
        if len(found) < 2:
            return found
        # at one start a credential wins over PII (and a provider rule over a generic one); a PII match
        # overlapping a credential is dropped
        # (in "db://u:pw@host.io" the password is the secret, "pw@host.io" is no e-mail address)
        found.sort(key=lambda f: (f.start, f.label != "secret", -f.end, f.family == "generic"))
        merged = [found[0]]
        for f in found[1:]:
            last = merged[-1]
            if f.start < last.end:
                if f.end > last.end and not (last.label == "secret" and f.label != "secret"):
                    merged[-1] = last._replace(end=f.end)
                continue
            merged.append(f)
        return merged

    # -- masking -----------------------------------------------------------------------------------
    def _replacement(self, label: str, text: str) -> str:
        if self.mode == "drop":
            return ""
        if self.mode == "hash":
            digest = hmac.new(self._hash_key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
            return f"[{label.upper()}:{digest}]"
        return f"[REDACTED:{label.upper()}]"

    def redact_text(self, text: str, field: str = "") -> str:
        """The masked text; never raises (a failing detector or hook masks the whole value)."""
        try:
            out = text
            found = self.find(text)
            if found:
                parts, prev = [], 0
                for f in found:
                    parts.append(text[prev : f.start])
                    parts.append(self._replacement(f.label, text[f.start : f.end]))
                    prev = f.end
                parts.append(text[prev:])
                out = "".join(parts)
            if self._custom is not None:
                out = self._custom(out, field=field)
                if not isinstance(out, str):
                    raise TypeError(f"custom redactor returned {type(out).__name__}, expected str")
            return out
        except Exception as e:  # fail closed
            logger.warning("redaction failed, value fully masked field=%s error=%s", field, type(e).__name__)
            return FULL_MASK

    def redact_error(self, error: BaseException) -> str:
        """``Type: message`` of an exception with the message redacted (for logs and error fields)."""
        try:
            message = str(error)
        except Exception:
            return f"{type(error).__name__}: {FULL_MASK}"
        return f"{type(error).__name__}: {self.redact_text(message, 'error')}" if message else type(error).__name__

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
        if isinstance(value, bytes | bytearray):
            return self.redact_text(bytes(value).decode("utf-8", "replace"), field)
        return self.redact_text(str(value), field)

    def is_clean_json(self, text: str) -> bool:
        """True if redacting the value serialized as ``text`` (JSON) provably changes nothing.

        Every detector works on characters JSON does not escape (``\\n`` inside a PEM block is the one
        exception, and its ``-----BEGIN`` keyword is not escaped), and no sensitive key name occurs:
        then the walk would find nothing, and this one pass over the text replaces it. With a custom
        hook the walk always runs.
        """
        if self._custom is not None or "\\" in text:  # an escape (\n, \") can hide a match: walk
            return False
        if self._sensitive:
            low = text.lower()
            for k in self._sensitive:
                if k in low:
                    return False
        return not self.find(text, json_text=True)

    def redact(self, value: Any, field: str = "") -> Any:
        """A masked copy of a JSON-like value (dicts, lists, strings, numbers); fails closed."""
        try:
            return self._walk(value, field)
        except Exception as e:
            logger.warning("redaction failed, value fully masked field=%s error=%s", field, type(e).__name__)
            return FULL_MASK
