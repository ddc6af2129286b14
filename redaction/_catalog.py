"""The detectors: credential rules loaded from ``secret_rules.toml`` plus the PII detectors, by family.

Every detector has a Python pattern (what the redactor runs) and an RE2 pattern (what ``tripwire data
scan`` hands to ClickHouse's ``match()`` as a prefilter: a superset of the Python pattern, so that the
rows it returns are then checked by the same Python code).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from tripwire.redaction._validators import VALIDATORS, card_valid, iban_valid, phone_valid

Anchor = Literal["token", "keyword", "pii"]

CREDENTIAL_FAMILIES = (
    "cloud",
    "payment",
    "chat",
    "saas",
    "vcs",
    "registry",
    "ai",
    "private_key",
    "jwt",
    "url_credentials",
    "generic",
)
PII_FAMILIES = ("email", "iban", "card", "phone")
FAMILIES = CREDENTIAL_FAMILIES + PII_FAMILIES
SECRET = "secret"  # alias: every credential family
RULES_FILE = "secret_rules.toml"


@dataclass(frozen=True, slots=True)
class Detector:
    """One detector: a compiled pattern, the family it is switched by and the label it masks with."""

    id: str
    family: str
    pattern: re.Pattern[str]
    re2: str
    anchor: Anchor
    keywords: tuple[str, ...] = ()
    group: int = 0
    min_entropy: float = 0.0
    validator: Callable[[str], bool] | None = None
    source: str = "tripwire"
    label: str = field(default="secret")
    needs: str = ""
    prefixes: tuple[str, ...] = ()
    contains: str = ""
    run_length: tuple[int, int] = (0, 1 << 30)


# Email: Unicode local parts and IDN domains (``\w`` is Unicode in Python); the look-behind makes only
# the start of a local-part run try a match, so a long run without "@" costs one pass.
_EMAIL = (
    r"(?<![\w.!#$%&'*+=?^`{|}~-])[\w.!#$%&'*+=?^`{|}~-]{1,64}"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{2,59})(?![\w-])"
)
_IBAN = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"
_CARD = r"(?<![\d])\d(?:[ \-]?\d){12,18}(?![\d])"
_PHONE = (
    r"(?:(?<![\w+])(?:\+|00)\d[\d \-.()/]{6,20}\d(?!\d)"  # +44 20 7946 0958, 0049 30 1234567
    r"|(?<![\w])\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}(?!\d)"  # (415) 555-0143
    r"|(?<![\w.\-])0\d{1,4}[ \-/]\d{2,4}(?:[ \-]\d{2,4}){1,3}(?![\d\-]))"  # 020 7946 0958, 06 12 34 56 78
)
PII_DETECTORS = (
    Detector("email", "email", re.compile(_EMAIL), r"[^\s@]@[^\s@.]+\.[^\s@]", "pii", label="email"),
    Detector(
        "iban", "iban", re.compile(_IBAN), r"[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4}", "pii", validator=iban_valid, label="iban"
    ),
    Detector("card", "card", re.compile(_CARD), r"[0-9](?:[ -]?[0-9]){12}", "pii", validator=card_valid, label="card"),
    Detector(
        "phone",
        "phone",
        re.compile(_PHONE),
        r"[0-9+(][0-9 ().\-/]{7,}[0-9]",
        "pii",
        validator=phone_valid,
        label="phone",
    ),
)


def _load_rules() -> tuple[Detector, ...]:
    raw = tomllib.loads(resources.files(__package__).joinpath(RULES_FILE).read_text("utf-8"))
    out = []
    for r in raw["rule"]:
        if r["family"] not in CREDENTIAL_FAMILIES:
            raise ValueError(f"rule {r['id']}: unknown family {r['family']!r}")
        if r["anchor"] == "token" and not (r.get("prefixes") or r.get("contains")):
            raise ValueError(f"token rule {r['id']} needs prefixes or contains")
        if r["anchor"] == "keyword" and not r.get("keywords"):
            raise ValueError(f"keyword rule {r['id']} needs keywords")
        validator = r.get("validator")
        out.append(
            Detector(
                id=r["id"],
                family=r["family"],
                pattern=re.compile(r["regex"]),
                re2=r["regex"],
                anchor=r["anchor"],
                keywords=tuple(r.get("keywords", ())),
                group=int(r.get("group", 0)),
                min_entropy=float(r.get("min_entropy", 0.0)),
                validator=VALIDATORS[validator] if validator else None,
                source=r.get("source", "tripwire"),
                needs=r.get("needs", ""),
                prefixes=tuple(r.get("prefixes", ())),
                contains=r.get("contains", ""),
                run_length=tuple(r.get("run_length", (0, 1 << 30))),  # type: ignore[arg-type]
            )
        )
    return tuple(out)


SECRET_RULES = _load_rules()
ALL_DETECTORS = SECRET_RULES + PII_DETECTORS


def expand_families(names: Iterable[str]) -> tuple[str, ...]:
    """Family names (``secret`` = every credential family), checked, in catalog order."""
    wanted: set[str] = set()
    for n in names:
        if n == SECRET:
            wanted.update(CREDENTIAL_FAMILIES)
        elif n in FAMILIES:
            wanted.add(n)
        else:
            raise ValueError(f"unknown redaction detectors [{n!r}]; known families: {[SECRET, *FAMILIES]}")
    return tuple(f for f in FAMILIES if f in wanted)


def detectors_for(families: Iterable[str]) -> tuple[Detector, ...]:
    fams = set(expand_families(families))
    return tuple(d for d in ALL_DETECTORS if d.family in fams)
