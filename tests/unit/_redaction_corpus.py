"""A corpus per detector family (positives) and near-miss negatives, and the precision/recall scorer.

Token values are generated from a fixed seed in the providers' formats (no real credential is in the
repository, and the strings do not trip push-protection scanners). ``python tests/unit/_redaction_corpus.py``
prints the per-family table quoted in the redaction docs.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

_R = random.Random(18)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"


def tok(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


def _b64url(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


JWT = f"{_b64url({'alg': 'RS256', 'typ': 'JWT'})}.{_b64url({'sub': 'u-1842', 'exp': 1767225600})}.{tok(43, URLSAFE)}"
PEM_BODY = "\n".join(tok(64, B64) for _ in range(4))

# family -> [(text, the secret part that must not survive)]
POSITIVES: dict[str, list[tuple[str, str]]] = {
    "cloud": [
        (f"key id {(k := 'AKIA' + tok(16, string.ascii_uppercase + string.digits))} for the bucket", k),
        (f"aws_secret_access_key = {(k := tok(40, B64))}", k),
        (f"AWS_SECRET_ACCESS_KEY: {(k := tok(40, ALNUM))} in the env file", k),
        (f"maps key {(k := 'AIza' + tok(35, URLSAFE))}", k),
        (f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={(k := tok(86, B64) + '==')};", k),
        (f"client secret {(k := tok(3, ALNUM) + '8Q~' + tok(34, ALNUM))}", k),
        (f"DIGITALOCEAN_TOKEN {(k := 'dop_v1_' + tok(64, HEX))}", k),
        (f"aliyun {(k := 'LTAI' + tok(20, ALNUM))}", k),
        (f"databricks {(k := 'dapi' + tok(32, HEX))}", k),
        (f"VAULT_TOKEN={(k := 'hvs.' + tok(90, URLSAFE))}", k),
    ],
    "payment": [
        (f"charge with {(k := 'sk_live_' + tok(24))}", k),
        (f"restricted {(k := 'rk_live_' + tok(24))}", k),
        (f"test mode {(k := 'sk_test_' + tok(99))}", k),
        (f"webhook {(k := 'whsec_' + tok(32))}", k),
        (f"square {(k := 'sq0csp-' + tok(43, URLSAFE))}", k),
        (f"square access {(k := 'EAAA' + tok(60, ALNUM))}", k),
        (f"shopify {(k := 'shpat_' + tok(32, HEX))}", k),
        (f"braintree {(k := 'access_token$production$' + tok(16, HEX) + '$' + tok(32, HEX))}", k),
    ],
    "chat": [
        (f"bot {(k := 'xoxb-' + tok(12, string.digits) + '-' + tok(13, string.digits) + '-' + tok(24))}", k),
        (f"user token {(k := 'xoxp-' + tok(12, string.digits) + '-' + tok(12, string.digits) + '-' + tok(32))}", k),
        (f"app {(k := 'xapp-1-A0' + tok(9, string.digits) + '-' + tok(13, string.digits) + '-' + tok(64, HEX))}", k),
        (f"post to {(k := 'https://hooks.slack.com/services/T' + tok(8) + '/B' + tok(8) + '/' + tok(24))}", k),
        (f"discord bot {(k := 'M' + tok(23, URLSAFE) + '.' + tok(6, URLSAFE) + '.' + tok(27, URLSAFE))}", k),
        (f"hook {(k := 'https://discord.com/api/webhooks/' + tok(18, string.digits) + '/' + tok(68, URLSAFE))}", k),
        (f"telegram {(k := tok(9, string.digits) + ':AA' + tok(33, URLSAFE))}", k),
        (f"teams {(k := 'https://acme.webhook.office.com/webhookb2/' + tok(36, HEX) + '@' + tok(36, HEX))}", k),
    ],
    "saas": [
        (f"twilio key {(k := 'SK' + tok(32, HEX))}", k),
        (f"sendgrid {(k := 'SG.' + tok(22, URLSAFE) + '.' + tok(43, URLSAFE))}", k),
        (f"mailchimp {(k := tok(32, HEX) + '-us6')}", k),
    ],
    "vcs": [
        ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        (f"oauth {(k := 'gho_' + tok(36))}", k),
        (f"fine-grained {(k := 'github_pat_' + tok(22) + '_' + tok(59))}", k),
        (f"gitlab {(k := 'glpat-' + tok(20, URLSAFE))}", k),
        (f"runner {(k := 'glrt-' + tok(20, URLSAFE))}", k),
        (f"bitbucket {(k := 'ATBB' + tok(32))}", k),
        (f"jira {(k := 'ATATT3' + tok(180, URLSAFE))}", k),
    ],
    "registry": [
        (f"npm {(k := 'npm_' + tok(36))}", k),
        (f"//registry.npmjs.org/:_authToken={(k := tok(36, HEX))}", k),
        (f"upload {(k := 'pypi-AgEIcHlwaS5vcmc' + tok(70, URLSAFE))}", k),
        (f"docker login -p {(k := 'dckr_pat_' + tok(27, URLSAFE))}", k),
        (f"gem {(k := 'rubygems_' + tok(48, HEX))}", k),
        (f"artifactory {(k := 'AKCp' + tok(69))}", k),
        (f"nuget {(k := 'oy2' + tok(43, string.ascii_lowercase + string.digits))}", k),
    ],
    "ai": [
        ("key=sk-proj-Abc123Def456Ghi789Jkl0", "sk-proj-Abc123Def456Ghi789Jkl0"),
        (f"OPENAI_API_KEY {(k := 'sk-proj-' + tok(48, URLSAFE))}", k),
        (f"claude {(k := 'sk-ant-api03-' + tok(93, URLSAFE) + 'AA')}", k),
        (f"hub {(k := 'hf_' + tok(34, string.ascii_letters))}", k),
        (f"groq {(k := 'gsk_' + tok(52))}", k),
        (f"replicate {(k := 'r8_' + tok(37))}", k),
        (f"grok {(k := 'xai-' + tok(80))}", k),
        (f"perplexity {(k := 'pplx-' + tok(48))}", k),
    ],
    "private_key": [
        (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----", PEM_BODY),
        (f"key: -----BEGIN OPENSSH PRIVATE KEY----- {tok(70, B64)} -----END OPENSSH PRIVATE KEY-----", "OPENSSH"),
        (f"-----BEGIN EC PRIVATE KEY-----\n{(k := tok(64, B64))}\n", k),  # cut short: no END line
        (f"-----BEGIN PRIVATE KEY-----\\n{(k := tok(64, B64))}\\n-----END PRIVATE KEY-----", k),  # escaped \n
        (
            f"PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\n{(k := tok(44, B64))}\nPrivate-MAC: {tok(64, HEX)}",
            k,
        ),
    ],
    "jwt": [
        (f"id_token {JWT}", JWT),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "dozjgNryP4J3jVmNHl0w5N"),
    ],
    "url_credentials": [
        (f"DATABASE_URL=postgres://app:{(k := tok(20))}@db.internal:5432/prod", k),
        (f"mongodb+srv://svc:{(k := tok(16))}@cluster0.example.net/orders", k),
        (f"redis://:{(k := tok(24))}@cache:6379/0", k),
        (f"git clone https://bot:{(k := tok(30))}@git.example.com/acme/repo.git", k),
        (f"amqp://guest:{(k := 'Gu3st!pass')}@mq.example.com:5672/", k),
    ],
    "generic": [
        ("password=hunter22 for the admin account", "hunter22"),
        ("DB_PASSWORD: 'Tr0ub4dor&3'", "Tr0ub4dor&3"),
        (f'the response was {{"client_secret": "{(k := tok(32))}", "expires_in": 3600}}', k),
        (f"set api_key={(k := tok(32))} in the header", k),
        (f"Authorization: Bearer {(k := tok(40, URLSAFE + '.'))}", k),
        (f"export SERVICE_TOKEN={(k := tok(28))}", k),
        (f"signing_key: {(k := tok(44, B64))}", k),
        (f"Server=db;Database=app;User Id=sa;Password={(k := 'P@55w0rd-' + tok(6))};", k),
    ],
    "email": [
        ("write to jane.doe+x@example.co.uk please", "jane.doe+x@example.co.uk"),
        ("contact josé.müller@example.de today", "josé.müller@example.de"),
        ("info@bücher.de", "info@bücher.de"),
        ("ask 用户@例子.广告 about it", "用户@例子.广告"),
        ("иван.петров@пример.рф wrote", "иван.петров@пример.рф"),
        ("punycode a.b@xn--bcher-kva.de", "a.b@xn--bcher-kva.de"),
        ("Ελένη <eleni@παράδειγμα.ελ>", "eleni@παράδειγμα.ελ"),
        ("o'brien@example.ie replied", "o'brien@example.ie"),
    ],
    "phone": [
        ("intl +44 20 7946 0958.", "+44 20 7946 0958"),
        ("call +1 (415) 555-0143", "+1 (415) 555-0143"),
        ("Berlin office +49 30 1234567", "+49 30 1234567"),
        ("from abroad 0049 30 12345678", "0049 30 12345678"),
        ("mobile +33 6 12 34 56 78", "+33 6 12 34 56 78"),
        ("Tokyo +81 3-1234-5678", "+81 3-1234-5678"),
        ("India +91 98765 43210", "+91 98765 43210"),
        ("call (415) 555-0143 now", "(415) 555-0143"),
        ("London 020 7946 0958", "020 7946 0958"),
        ("São Paulo +55 11 91234-5678", "+55 11 91234-5678"),
        ("E.164 +14155550143", "+14155550143"),
    ],
    "card": [
        ("card 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
        ("mc 5500-0000-0000-0004", "5500-0000-0000-0004"),
        ("amex 3782 822463 10005", "3782 822463 10005"),
        ("discover 6011111111111117", "6011111111111117"),
        ("jcb 3530111333300000", "3530111333300000"),
        ("diners 30569309025904", "30569309025904"),
        ("2-series 2223003122003222", "2223003122003222"),
        ("unionpay 6200000000000005", "6200000000000005"),
    ],
    "iban": [
        ("iban GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
        ("DE89370400440532013000", "DE89370400440532013000"),
        ("pay FR1420041010050500013M02606", "FR1420041010050500013M02606"),
        ("NL91ABNA0417164300", "NL91ABNA0417164300"),
        ("ES9121000418450200051332", "ES9121000418450200051332"),
        ("CH9300762011623852957", "CH9300762011623852957"),
        ("IT60X0542811101000000123456", "IT60X0542811101000000123456"),
        ("BE68 5390 0754 7034", "BE68 5390 0754 7034"),
    ],
}

# Ordinary data that must come out unchanged.
NEGATIVES: list[str] = [
    "order ORD-2025-000123 shipped",
    "order #A1B2C3D4E5F6G7H8 and INV-0004519872",
    "request 6f1c2d3e-4b5a-6789-abcd-ef0123456789 retried",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (short 9fceb02)",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBgYGBgoJCgwKDAsLCw0PEg8NDhEOCwsQFhAREhMUFRUVDA8XGBYUGBIUFRT",
    "long number 1234567812345670 is a ledger id",
    "card 4111 1111 1111 1112 fails Luhn",
    "GB82 WEST 1234 5698 7654 33 fails mod-97",
    "timestamp 1733241600000 and epoch 1733241600",
    "UPS 1Z999AA10123456784",
    "refund ch_3MmlLrLkdIwHu7ix0snN0B15 for cus_9s6XKzkNRiz8i3 via pi_3MtwBwLkdIwHu7ix28a3tqPa",
    "on 2025-01-05T10:00:00Z from 192.168.10.254 running v1.24.3",
    "order 12345678 for 4999 cents on 2025-01-05",
    "token_count=1234 max_tokens: 4096 password_reset_required: true",
    "password: ******** and password=<your-password> and api_key: ${API_KEY}",
    "primary_key: id, sort_key: created_at, monkey: banana",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "see https://example.com/path?x=1 and postgres://db.internal:5432/app",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    "ISBN 978-3-16-148410-0, price 1,234,567.89 EUR",
    "user at example dot com, @mention, name@localhost",
    "eyJhbGciOiJub25lIn0 is just base64 of a header",
    "no pii here at all",
    "quarterly revenue grew 12.5% to 4,500,000 across 18 regions",
    "the ACCOUNT_SID field and the SKU ABC-12345",
]


@dataclass(frozen=True, slots=True)
class Score:
    family: str
    positives: int
    true_positives: int
    false_positives: int

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else 1.0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0


def score(redactor) -> dict[str, Score]:  # type: ignore[no-untyped-def]
    """Per family: a positive counts when a finding of that family covers its secret and the secret is
    gone from the redacted text; a finding of the family on any negative is a false positive."""
    out = {}
    for family, cases in POSITIVES.items():
        tp = 0
        for text, secret in cases:
            start = text.index(secret)
            covered = any(
                f.family == family and f.start <= start and f.end >= start + len(secret) for f in redactor.find(text)
            )
            if covered and secret not in redactor.redact_text(text):
                tp += 1
        fp = sum(1 for text in NEGATIVES for f in redactor.find(text) if f.family == family)
        out[family] = Score(family, len(cases), tp, fp)
    return out


def noise_hits(redactor, n: int = 5000) -> dict[str, dict[str, int]]:  # type: ignore[no-untyped-def]
    """Findings per family on ``n`` random ordinary identifiers of each kind (every one is a false positive)."""
    import hashlib
    import uuid
    from collections import Counter

    rng = random.Random(5)
    gens = {
        "uuid4": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "sha1_hex": lambda: hashlib.sha1(rng.randbytes(8)).hexdigest(),
        "base64_48B": lambda: base64.b64encode(rng.randbytes(48)).decode(),
        "base64url_32B": lambda: base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("="),
        "digits_16": lambda: "".join(rng.choice(string.digits) for _ in range(16)),
        "digits_10": lambda: "".join(rng.choice(string.digits) for _ in range(10)),
        "order_id": lambda: f"ORD-{rng.randrange(2020, 2027)}-{rng.randrange(10**6):06d}",
    }
    out = {}
    for name, gen in gens.items():
        c: Counter[str] = Counter()
        for _ in range(n):
            for fam in {f.family for f in redactor.find(gen())}:
                c[fam] += 1
        out[name] = dict(c)
    return out


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tripwire.redaction import Redactor

    print("| family | positives | recall | false positives on", len(NEGATIVES), "negatives | precision |")
    print("|---|---|---|---|---|")
    for s in score(Redactor()).values():
        print(f"| {s.family} | {s.positives} | {s.recall:.2f} | {s.false_positives} | {s.precision:.2f} |")
    print()
    print("findings on 5000 random identifiers of each kind (all false positives):")
    for kind, hits in noise_hits(Redactor()).items():
        print(f"  {kind}: {hits or 'none'}")
