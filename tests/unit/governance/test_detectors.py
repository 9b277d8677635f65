"""Detectors: every secret kind found in real-looking (generated) keys, personal data with its
checksums, and no findings in ordinary code, ids, hashes, base64 data, versions, dates and numbers."""

from __future__ import annotations

import base64
import hashlib
import random
import string
import uuid

import orjson
import pytest

from sidegate.governance.guardrails.detectors import Scanner, detectors_of, mask_text
from sidegate.governance.guardrails.patterns import luhn_ok
from sidegate.policy.model import DetectorSet

RNG = random.Random(20240611)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
ALL_PII = ["email", "phone", "credit_card", "us_ssn", "iban", "ip_address"]


def rand(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def mixed(alphabet: str, n: int) -> str:
    """Random, with at least one upper, one lower letter and one digit (as generated keys have)."""
    while True:
        value = rand(alphabet, n)
        if any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value):
            return value


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(header: dict[str, str] | None = None) -> str:
    head = b64url(orjson.dumps(header or {"alg": "HS256", "typ": "JWT"}))
    body = b64url(orjson.dumps({"sub": "1234567890", "name": "A Person", "iat": 1516239022}))
    return f"{head}.{body}.{b64url(RNG.randbytes(32))}"


def make_pem(kind: str = "RSA PRIVATE KEY", escaped: bool = False) -> str:
    nl = "\\n" if escaped else "\n"
    body = nl.join(base64.b64encode(RNG.randbytes(48)).decode() for _ in range(20))
    return f"-----BEGIN {kind}-----{nl}{body}{nl}-----END {kind}-----"


SECRETS = {
    "aws_access_key_id": lambda: "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    "gcp_api_key": lambda: "AIza" + rand(URLSAFE, 35),
    "openai_api_key": lambda: "sk-proj-" + mixed(URLSAFE, 74) + "T3BlbkFJ" + mixed(URLSAFE, 74),
    "anthropic_api_key": lambda: "sk-ant-api03-" + mixed(URLSAFE, 93) + "AA",
    "github_token": lambda: "ghp_" + mixed(ALNUM, 36),
    "gitlab_token": lambda: "glpat-" + mixed(URLSAFE, 20),
    "slack_token": lambda: f"xoxb-{rand(string.digits, 12)}-{rand(string.digits, 13)}-{mixed(ALNUM, 24)}",
    "slack_webhook": lambda: f"https://hooks.slack.com/services/T{rand(ALNUM, 8)}/B{rand(ALNUM, 8)}/{rand(ALNUM, 24)}",
    "stripe_key": lambda: "sk_live_" + mixed(ALNUM, 24),
    "databricks_token": lambda: "dapi" + rand("0123456789abcdef", 32),
    "huggingface_token": lambda: "hf_" + rand(string.ascii_letters, 34),
    "npm_token": lambda: "npm_" + mixed(ALNUM, 36),
    "google_oauth_client_secret": lambda: "GOCSPX-" + mixed(URLSAFE, 28),
    "sendgrid_api_key": lambda: f"SG.{mixed(URLSAFE, 22)}.{mixed(URLSAFE, 43)}",
    "jwt": make_jwt,
    "private_key": make_pem,
}

# Each in a sentence or a line of code, so boundaries are exercised too.
CONTEXTS = ["my key is {} ok", 'API_KEY = "{}"', "export TOKEN={}\n", "{}", "(`{}`)"]


def scanner(spec: DetectorSet) -> Scanner:
    return Scanner([(0, detectors_of(spec))])


@pytest.fixture(scope="module")
def everything() -> Scanner:
    return scanner(DetectorSet(secrets=True, pii=ALL_PII))  # type: ignore[arg-type]


def found(s: Scanner, text: str) -> list[tuple[str, str]]:
    return [(f.alt.category, text[f.start:f.end]) for f in s.scan(text)]


@pytest.mark.parametrize("kind", sorted(SECRETS))
@pytest.mark.parametrize("context", CONTEXTS)
def test_every_secret_kind_is_found(everything: Scanner, kind: str, context: str) -> None:
    secret = SECRETS[kind]()
    text = context.format(secret)
    assert found(everything, text) == [(kind, secret)]


@pytest.mark.parametrize("make", [
    lambda: "ASIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    lambda: "sk-" + rand(string.ascii_letters, 20) + "T3BlbkFJ" + rand(string.ascii_letters, 20),
    lambda: "sk-" + mixed(ALNUM, 48),
    lambda: "sk-ant-oat01-" + mixed(URLSAFE, 80),
    lambda: "github_pat_" + mixed(ALNUM, 22) + "_" + mixed(ALNUM, 59),
    lambda: "gho_" + mixed(ALNUM, 36),
    lambda: "rk_test_" + mixed(ALNUM, 30),
    lambda: "pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 60),
    lambda: make_pem("PRIVATE KEY"),
    lambda: make_pem("OPENSSH PRIVATE KEY"),
    lambda: make_pem("EC PRIVATE KEY", escaped=True),
    lambda: make_jwt({"alg": "RS256", "kid": "abc"}),
])
def test_more_forms_of_secrets(everything: Scanner, make) -> None:
    secret = make()
    assert [v for _, v in found(everything, f"here: {secret} done")] == [secret]


def test_values_after_labels_are_masked_not_the_labels(everything: Scanner) -> None:
    aws = mixed(B64, 40)
    azure = rand(B64, 86) + "=="
    cases = {
        f"aws_secret_access_key = {aws}": aws,
        f'"SecretAccessKey": "{aws}"': aws,
        f"AWS_SECRET_KEY={aws}": aws,
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={azure};EndpointSuffix=core.windows.net": azure,
        'password = "Tr0ub4dor&3xyz"': "Tr0ub4dor&3xyz",
        "DB_PASSWORD: 'hunter2hunter2'": "hunter2hunter2",
        'client_secret="q8Xr2LmZ0pT4vW9s"': "q8Xr2LmZ0pT4vW9s",
        "postgres://app:Zx81qQvT9w@db.internal:5432/app": "Zx81qQvT9w",
        '"private_key_id": "' + hashlib.sha1(b"k").hexdigest() + '"': hashlib.sha1(b"k").hexdigest(),
    }
    for text, value in cases.items():
        assert [v for _, v in found(everything, text)] == [value], text
    masked = mask_text('password = "Tr0ub4dor&3xyz"', everything.scan('password = "Tr0ub4dor&3xyz"'))
    assert masked == 'password = "<SECRET>"'


def test_gcp_service_account_json_masks_key_and_id(everything: Scanner) -> None:
    account = orjson.dumps({
        "type": "service_account", "project_id": "demo", "private_key_id": hashlib.sha1(b"x").hexdigest(),
        "private_key": make_pem("PRIVATE KEY") + "\n", "client_email": "svc@demo.iam.gserviceaccount.com",
    }).decode()
    kinds = [k for k, _ in found(everything, account)]
    assert kinds == ["gcp_service_account_key", "private_key", "email"]
    masked = mask_text(account, everything.scan(account))
    assert "BEGIN" not in masked and "END PRIVATE" not in masked and masked.count("<SECRET>") == 2


# ---------------------------------------------------------------- near misses

CODE = '''
import os, hashlib, uuid
from typing import Any

API_URL = "https://api.example.com/v1"
password = os.environ["DB_PASSWORD"]
token = get_token(user_id=1234567890, retries=3)
api_key: str | None = None
secret = load_secret(name="prod/db")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    order_id = 4111111111111112  # fails Luhn
    ts = 1717171717171
    phone_field = "phone_number"
    return {"statusCode": 200, "body": json.dumps({"ok": True, "count": 1234567890})}

const config = { timeout: 30000, retries: 5, version: "3.11.4", build: "2024.06.11" };
let price = 1299.99; let qty = 10; const total = price * qty;
for (let i = 0; i < 10; i++) { console.log(`item ${i}: ${items[i]}`); }
SELECT id, created_at FROM orders WHERE id IN (1234, 5678) AND total > 100.00;
std::vector<int> v; auto it = std::find(v.begin(), v.end(), 42); Foo::Bar::new();
@property
def name(self) -> str: return self._name
git commit -m "fix" && git push origin main  # user@host style is not in this line
'''


def near_misses() -> dict[str, str]:
    sha256 = hashlib.sha256(b"data").hexdigest()
    png = base64.b64encode(RNG.randbytes(30000)).decode()
    return {
        "python and js code": CODE,
        "uuids": " ".join(str(uuid.UUID(int=RNG.getrandbits(128))) for _ in range(50)),
        "git shas": "\n".join(f"{hashlib.sha1(str(i).encode()).hexdigest()} commit {i}" for i in range(50)),
        "sha256": f"sha256:{sha256} and {sha256.upper()}",
        "base64 image": f'<img src="data:image/png;base64,{png}">',
        "versions and dates": "v1.2.3 3.11.4 10.0.19041 2024-06-11 11/06/2024 2024.06.11 12:30:45 1.0.0-rc.1",
        "order numbers": "order 4111111111111112, invoice 1234-5678-9012-3457, ref 0000 0000 0000 0000",
        "digits in code": "timeout=4155550100; id = 2125551234; ts=1717171717 port 5432 size 1048576",
        "ipv4-ish": "version 1.2.3.4.5, 999.1.1.1, 127.0.0.1 and 0.0.0.0",
        "prose": "The quick brown fox; passwords must be 12+ chars. Set your API key in settings.",
        "placeholders": 'password = "your_password_here" api_key="<API_KEY>" token: "${TOKEN}" secret="xxxxxxxxxx"',
        "ssn look-alikes": "000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000",
        "iban look-alikes": "DE89 3704 0044 0532 0130 01 and XX12 3456 7890 1234",
        "email look-alikes": "user@localhost @decorator a@b not@tld. @types/node",
    }


@pytest.mark.parametrize("name", sorted(near_misses()))
def test_near_misses_are_not_findings(everything: Scanner, name: str) -> None:
    assert found(everything, near_misses()[name]) == []


# ---------------------------------------------------------------- personal data


@pytest.mark.parametrize(("kind", "value"), [
    ("email", "alice.o'neil@example.com".replace("'", "")),
    ("email", "bob+tag@mail.example.co.uk"),
    ("phone", "+1 415 555 0100"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "(415) 555-0100"),
    ("phone", "415-555-0100"),
    ("phone", "1-415-555-0100"),
    ("credit_card", "4111 1111 1111 1111"),
    ("credit_card", "5500-0000-0000-0004"),
    ("credit_card", "378282246310005"),
    ("credit_card", "6011111111111117"),
    ("us_ssn", "123-45-6789"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432"),
    ("iban", "FR1420041010050500013M02606"),
    ("ip_address", "192.168.1.20"),
    ("ip_address", "8.8.8.8"),
    ("ip_address", "2001:db8::8a2e:370:7334"),
    ("ip_address", "fe80::1ff:fe23:4567:890a"),
    ("ip_address", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
])
def test_personal_data(everything: Scanner, kind: str, value: str) -> None:
    assert found(everything, f"Details: {value}. Thanks") == [(kind, value)]


def test_card_with_expiry_after_it_is_still_a_card(everything: Scanner) -> None:
    assert found(everything, "card 4111 1111 1111 1111 12/27") == [("credit_card", "4111 1111 1111 1111")]


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_only_the_kinds_asked_for() -> None:
    s = scanner(DetectorSet(pii=["email"]))
    text = "alice@example.com +1 415 555 0100 " + SECRETS["github_token"]()
    assert found(s, text) == [("email", "alice@example.com")]


def test_list_form_turns_on_whole_detectors() -> None:
    s = Scanner([(0, detectors_of(["pii"]))])
    assert {k for k, _ in found(s, "alice@example.com 4111 1111 1111 1111")} == {"email", "credit_card"}


# ---------------------------------------------------------------- keywords and regexes


def test_keywords_match_whole_words_in_any_case() -> None:
    s = scanner(DetectorSet(keywords=["project-x", "internal only"]))
    assert found(s, "About PROJECT-X: internal   only? No: Internal only.") == [
        ("keyword", "PROJECT-X"), ("keyword", "Internal only")]
    assert found(s, "subproject-xyz") == []


def test_regexes_keep_their_flags_and_groups() -> None:
    s = scanner(DetectorSet(regex=["(?i)confidential", r"(\d{3})-\1", r"(?P<code>ZZ\d+)"]))
    text = "CONFIDENTIAL: 123-123 and 123-124 with ZZ42"
    assert found(s, text) == [("regex", "CONFIDENTIAL"), ("regex", "123-123"), ("regex", "ZZ42")]
    assert mask_text(text, s.scan(text)) == "<REGEX_MATCH>: <REGEX_MATCH> and 123-124 with <REGEX_MATCH>"


def test_anchored_regexes_are_scanned_text_by_text() -> None:
    s = scanner(DetectorSet(regex=["^secret plan"]))
    assert not s.joinable
    assert [[t[f.start:f.end] for f in fs] for t, fs in zip(
        ["secret plan A", "no secret plan"], s.scan_many(["secret plan A", "no secret plan"]), strict=True)] == [
        ["secret plan"], []]


# ---------------------------------------------------------------- scanning many texts


def test_scan_many_maps_findings_to_their_texts(everything: Scanner) -> None:
    texts = ["hello", "mail alice@example.com", "", "x" * 300, "card 4111 1111 1111 1111 and bob@example.org"]
    results = everything.scan_many(texts)
    assert [[(f.alt.category, t[f.start:f.end]) for f in fs] for t, fs in zip(texts, results, strict=True)] == [
        [], [("email", "alice@example.com")], [], [],
        [("credit_card", "4111 1111 1111 1111"), ("email", "bob@example.org")]]


def test_no_match_reads_across_two_texts(everything: Scanner) -> None:
    assert everything.scan_many(["call 415-555", "-0100 now", "alice@", "example.com"]) == [[], [], [], []]


def test_long_clean_texts_are_remembered_and_texts_with_findings_are_not() -> None:
    s = scanner(DetectorSet(pii=["email"]))
    clean, dirty = "lorem ipsum " * 100, "lorem ipsum " * 100 + "alice@example.com"
    s.scan_many([clean, dirty])
    assert hash(clean) in s._clean and hash(dirty) not in s._clean
    assert len(s.scan_many([clean, dirty])[1]) == 1


def test_two_owners_share_one_detector() -> None:
    email = detectors_of(DetectorSet(pii=["email"]))
    both = Scanner([(0, email), (1, detectors_of(DetectorSet(pii=["email", "phone"])))])
    f = both.scan("alice@example.com")[0]
    assert f.alt.owners == (0, 1)
