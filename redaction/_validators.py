"""Checks a regex candidate must pass before it is masked (checksums, shape, entropy)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

# ISO 13616 IBAN length per country (the registry's countries as of 2024).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


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
    """ISO 7064 mod-97 and the country's registered length."""
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit() or not s.isascii():
        return False
    expected = IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _card_brand_ok(d: str) -> bool:
    """The number starts with an issuer prefix of its length (Visa, Mastercard, Amex, Discover, JCB,
    Diners, UnionPay, Maestro, Mir): a random Luhn-valid number mostly does not."""
    n = len(d)
    p2, p4 = int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if d.startswith("6011") or d.startswith("65") or 644 <= int(d[:3]) <= 649 or p2 == 62:
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589 or p2 in (36, 38, 39) or d.startswith("30") or p2 == 22:
        return 14 <= n <= 19
    if p2 in (50, 56, 57, 58, 63, 67, 68, 69) or d.startswith("60"):
        return 12 <= n <= 19
    return False


def card_valid(m: str) -> bool:
    digits = m.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and digits.isdigit() and _card_brand_ok(digits) and luhn_valid(digits)


_SEP_RUNS = re.compile(r"\d+")


def phone_valid(m: str) -> bool:
    """International (+ or 00): 8 to 15 digits (E.164) and a country code that is not 0; national:
    10 to 15 digits in at least two separated groups (a bare run of digits is an id, not a phone)."""
    s = m.strip()
    n = sum(c.isdigit() for c in s)
    if s.startswith("+") or s.startswith("00"):
        body = s[1:] if s[0] == "+" else s[2:]
        return 8 <= n - (0 if s[0] == "+" else 2) <= 15 and body.lstrip(" (")[:1] not in ("0", "")
    return 10 <= n <= 15 and len(_SEP_RUNS.findall(s)) >= 2


def shannon_entropy(s: str) -> float:
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


_PLACEHOLDERS = re.compile(
    r"^(?:\*+|x+|\.+|-+|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%\([^)]*\)s|\$[A-Za-z_]+|null|none|true|false|"
    r"changeme|redacted|\[redacted[^\]]*\]|password|secret|example|your[_-].*|xxx.*)$",
    re.I,
)


def not_placeholder(s: str) -> bool:
    return not _PLACEHOLDERS.match(s) and not s.startswith("[REDACTED") and not s.isdigit()


def jwt_valid(m: str) -> bool:
    """The first segment decodes (base64url) to a JSON object, as a JWT header does."""
    head = m.split(".", 1)[0]
    try:
        obj = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(obj, dict)


VALIDATORS = {"jwt": jwt_valid, "not_placeholder": not_placeholder, "card": card_valid, "iban": iban_valid}
