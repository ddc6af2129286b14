"""PII and credential redaction: the one redactor every path into tripwire calls.

The SDK runs it on tool args, prompts, completions, principals, approval and guard reasons and the
messages of exceptions it logs; the OTLP receiver and the framework adapters are to call the same
``Redactor`` built from the same ``RedactionSpec``; ``tripwire data scan`` runs the same detectors over
what is already stored.

Detectors are switched on and off by family: credentials (``cloud``, ``payment``, ``chat``, ``saas``,
``vcs``, ``registry``, ``ai``, ``private_key``, ``jwt``, ``url_credentials``, ``generic``; ``secret``
names them all) are rules loaded as data from ``secret_rules.toml`` (adapted from detect-secrets
1.5.0, Apache-2.0; see its header), PII (``email`` with Unicode local parts and IDN domains, ``phone``,
``card`` with Luhn and issuer checks, ``iban`` with mod-97 and country length) are built in.
"""

from tripwire.redaction._catalog import (
    ALL_DETECTORS,
    CREDENTIAL_FAMILIES,
    FAMILIES,
    PII_FAMILIES,
    SECRET,
    SECRET_RULES,
    Detector,
    detectors_for,
    expand_families,
)
from tripwire.redaction._redactor import (
    DEFAULT_SENSITIVE_KEYS,
    DETECTOR_NAMES,
    FULL_MASK,
    CustomRedactor,
    Finding,
    Mode,
    Redactor,
)
from tripwire.redaction._validators import card_valid, iban_valid, luhn_valid, phone_valid

__all__ = [
    "ALL_DETECTORS",
    "CREDENTIAL_FAMILIES",
    "DEFAULT_SENSITIVE_KEYS",
    "DETECTOR_NAMES",
    "FAMILIES",
    "FULL_MASK",
    "PII_FAMILIES",
    "SECRET",
    "SECRET_RULES",
    "CustomRedactor",
    "Detector",
    "Finding",
    "Mode",
    "Redactor",
    "card_valid",
    "detectors_for",
    "expand_families",
    "iban_valid",
    "luhn_valid",
    "phone_valid",
]
