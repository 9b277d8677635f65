"""The built-in detectors of the guardrails: one regular expression per kind of secret or personal
data, with an optional validator that rejects look-alikes (Luhn for card numbers, mod 97 for IBANs,
a JSON header for JWTs, …).

Every pattern is cheap to reject where it does not apply: it starts with a literal or a character
class (the regex engine then skips the alternative on the first character), and a check on the
character before the match comes right after that first character, as a two-character lookbehind.
Every quantifier is bounded, so the longest match of each detector is known; streams use it to
bound how much text they hold back.

A pattern may name a group `v`: only that part is the finding (and is masked), e.g. the value in
`password = "…"`. Other named groups are local to the pattern; `detectors` renames them apart when
it joins the patterns into one alternation. Validators get the finding's text and return how many
of its characters form the finding (usually all), or 0 to reject it.

Detectors that may match whitespace (`spaced`) carry an `anchor`: a pattern that matches at the
start of every match of theirs and ends before its first whitespace. A stream only holds back such
text from where an anchor occurs (other text only for the word still being written).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson

Validator = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of finding. Its pattern is `lead + rest`: detectors with the same `lead` (a literal,
    or a one-character class) share a scanning pass, which the regex engine runs by jumping from one
    occurrence of the lead to the next; `rest` checks what precedes the lead with a lookbehind."""

    category: str  # what results and block messages name; never the matched text
    token: str  # what `mask` writes in place of the finding
    lead: str
    rest: str
    validate: Validator | None = None
    spaced: bool = False  # a match may contain whitespace
    anchor: str | None = None  # for spaced detectors: where a match can start (None: anywhere)
    stream_rest: str | None = None  # a shorter `rest` for streams (what follows is tracked apart)
    lowered: bool = False  # matched against the text in lower case (labels written in any case)
    pivot: str | None = None  # a pattern found first; the match starts up to `back_max` characters before
    back: str = ""  # the characters that may stand between the start of a match and its pivot
    back_max: int = 0

    @property
    def pattern(self) -> str:
        return self.lead + self.rest


def before_lead(excluded: str, lead_len: int) -> str:
    """Lookbehind placed after a lead of lead_len characters: the character before the lead is not
    one of `excluded` (a character-class body)."""
    return f"(?<![{excluded}][\\s\\S]{{{lead_len}}})"


SECRET = "<SECRET>"
KEYWORD_TOKEN = "<KEYWORD>"
REGEX_TOKEN = "<REGEX_MATCH>"

_ALNUM = "A-Za-z0-9"
_WORD = "A-Za-z0-9_"
_END_ALNUM = r"(?![A-Za-z0-9])"
_END_TOKEN = r"(?![A-Za-z0-9_-])"
_ASSIGN = r"""["']?[ \t]{0,4}(?::=|=>|[:=])[ \t]{0,4}"""


def ci(word: str) -> str:
    """A case-insensitive literal spelled with character classes, so it keeps a quick first-character check."""
    out = []
    for c in word:
        if c.isascii() and c.isalpha():
            out.append(f"[{c.upper()}{c.lower()}]")
        elif c.isascii() and c.isalnum():
            out.append(c)
        else:
            out.append("\\" + c if c in r"\.^$*+?{}[]|()-#&~ " else c)
    return "".join(out)


# ---------------------------------------------------------------- validators


def looks_generated(value: str) -> bool:
    """A value that looks like a credential rather than a word, a placeholder or a variable."""
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    mixed_case = any(c.isupper() for c in value) and any(c.islower() for c in value)
    if not ((has_digit and has_alpha) or (len(value) >= 16 and mixed_case)):
        return False
    low = value.lower()
    return len(set(value)) >= 5 and not any(p in low for p in _PLACEHOLDERS)


_PLACEHOLDERS = ("your", "example", "changeme", "change_me", "placeholder", "redacted", "dummy", "xxxx",
                 "****", "<", ">", "${", "{{", "%s", "%(", "environ", "getenv", "process.env")


def _generated(text: str) -> int:
    return len(text) if looks_generated(text) else 0


def _generated_after_prefix(text: str) -> int:
    return len(text) if looks_generated(text[text.index("_") + 1:]) else 0


def _url_password(text: str) -> int:
    low = text.lower()
    if len(text) < 6 or any(p in low for p in ("pass", "secret", "pwd", *_PLACEHOLDERS)):
        return 0
    return len(text)


def _jwt(text: str) -> int:
    header = text.partition(".")[0]
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        return 0
    return len(text) if isinstance(decoded, dict) and isinstance(decoded.get("alg"), str) else 0


def _slack(text: str) -> int:
    return len(text) if sum(c.isdigit() for c in text) >= 8 else 0


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_network_ok(d: str) -> bool:
    """Issuer ranges and lengths of the networks that issue payment cards."""
    n, two, three, four = len(d), int(d[:2]), int(d[:3]), int(d[:4])
    return (
        (d[0] == "4" and n in (13, 16, 19))  # Visa
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and n == 16)  # Mastercard
        or (two in (34, 37) and n == 15)  # American Express
        or ((four == 6011 or two in (62, 65) or 644 <= three <= 649) and 16 <= n <= 19)  # Discover, UnionPay
        or (3528 <= four <= 3589 and 16 <= n <= 19)  # JCB
        or ((two in (36, 38, 39) or 300 <= three <= 305) and 14 <= n <= 19)  # Diners Club
        or ((two in (50, 56, 57, 58) or d[0] == "6") and 12 <= n <= 19)  # Maestro
    )


def _card_digits_ok(digits: str) -> bool:
    return _card_network_ok(digits) and luhn_ok(digits) and len(set(digits)) > 1


def _credit_card(text: str) -> int:
    """Digits alone, or groups split by one kind of separator; a trailing group that breaks the check
    (an expiry date, a count) is left out of the finding."""
    separators = {c for c in text if not c.isdigit()}
    if not separators:
        return len(text) if _card_digits_ok(text) else 0
    if len(separators) > 1:
        return 0
    groups = text.split(separators.pop())
    if any(len(g) > 6 for g in groups):
        return 0
    for keep in range(len(groups), 2, -1):
        digits = "".join(groups[:keep])
        if len(digits) >= 13 and _card_digits_ok(digits):
            return len(groups[0]) + sum(len(g) + 1 for g in groups[1:keep])
    return 0


def _ssn(text: str) -> int:
    area, group, serial = text[:3], text[4:6], text[7:]
    if text[3] != text[6] or area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return 0
    return len(text)


# Lengths of IBANs by country (ISO 13616 registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def _iban(text: str) -> int:
    """Mod-97 check over exactly the country's number of characters (spaces between groups allowed)."""
    want = _IBAN_LENGTHS.get(text[:2])
    if want is None:
        return 0
    chars: list[str] = []
    end = 0
    for i, c in enumerate(text):
        if c != " ":
            chars.append(c)
            if len(chars) == want:
                end = i + 1
                break
    if not end:
        return 0
    code = "".join(chars)
    number = "".join(str(int(c, 36)) for c in code[4:] + code[:4])
    return end if int(number) % 97 == 1 else 0


def _phone(text: str) -> int:
    digits = [c for c in text if c.isdigit()]
    n = len(digits)
    if text[0] == "+":
        return len(text) if 8 <= n <= 15 else 0
    # national formats are read as North American numbers: NXX-NXX-XXXX, with an optional leading 1
    if n == 11 and digits[0] == "1":
        digits = digits[1:]
    elif n != 10:
        return 0
    return len(text) if digits[0] >= "2" and digits[3] >= "2" else 0


# Loopback, "this network" and broadcast addresses identify nobody; they are not reported.
_IGNORED_IPV4 = ("0.", "127.", "255.255.255.255")


def _ip(text: str) -> int:
    if ":" not in text:
        octets = text.split(".")
        if any((len(o) > 1 and o[0] == "0") or int(o) > 255 for o in octets):
            return 0
        return 0 if text.startswith(_IGNORED_IPV4) else len(text)
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return 0
    if address.is_loopback or address.is_unspecified or sum(1 for g in text.split(":") if g) < 3:
        return 0
    return len(text)


# ---------------------------------------------------------------- secrets

_B64 = "A-Za-z0-9+/"
PEM_HEADER_REST = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
# The rest of a PEM block, as a message or a JSON answer holds it: base64 lines, optional RFC 1421
# headers (Proc-Type, DEK-Info), newlines raw or escaped as \n, and the END line.
PEM_BODY = (r"(?:[A-Za-z0-9+/=\r\n\\]|[A-Za-z-]{1,20}: [A-Za-z0-9,-]{0,64}){0,16384}"
            r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?")
_AWS_VALUE = f"{_ASSIGN}[\"']?(?P<v>[{_B64}]{{40}})(?![{_B64}=])"


def _token(category: str, lead: str, rest: str, before: str = _WORD, validate: Validator | None = None) -> Detector:
    """A secret that is one word starting with a fixed prefix, not glued to a word before it."""
    return Detector(category, SECRET, re.escape(lead), before_lead(before, len(lead)) + rest, validate)


def _label(category: str, lead: str, rest: str, anchor: str) -> Detector:
    """A secret value after a label written in any case (`password = "…"`): matched in lower case."""
    return Detector(category, SECRET, lead, rest, _generated, spaced=True, anchor=anchor, lowered=True)


_QUOTED_VALUE = f"{_ASSIGN}(?P<q>[\"'])(?P<v>[^\\s\"'\\\\]{{8,64}})(?P=q)"
# (each spelled with classes, so the anchors of a stream scanner join into one fast search)
_CI_LABELS = "|".join(ci(label) for label in ("aws", "secret", "pass", "api", "access", "auth"))

SECRETS: tuple[Detector, ...] = (
    Detector("private_key", SECRET, "-----BEGIN", PEM_HEADER_REST + PEM_BODY, spaced=True, anchor="-----BEGIN",
             stream_rest=PEM_HEADER_REST),
    _token("aws_access_key_id", "A", r"(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z2-7]{16}" + _END_ALNUM, _ALNUM),
    _token("gcp_api_key", "A", r"Iza[0-9A-Za-z_-]{35}" + _END_TOKEN),
    Detector("azure_storage_key", SECRET, "A", r"ccountKey=(?P<v>[A-Za-z0-9+/]{86}==)"),
    _label("aws_secret_access_key", "aws", r"_?secret_?(?:access_?)?key" + _AWS_VALUE, _CI_LABELS),
    _label("aws_secret_access_key", "secret", r"_?access_?key" + _AWS_VALUE, _CI_LABELS),
    Detector("gcp_service_account_key", SECRET, '"private_key_id',
             r'\\?"[ \t]{0,4}:[ \t]{0,4}\\?"(?P<v>[0-9a-f]{40})(?![0-9a-f])', spaced=True, anchor='"private_key_id'),
    Detector("azure_shared_access_key", SECRET, "S", r"haredAccessKey=(?P<v>[A-Za-z0-9+/]{43}=)"),
    _token("sendgrid_api_key", "S", r"G\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + _END_TOKEN),
    Detector("azure_sas_token", SECRET, "sig=", r"(?<=[?&]sig=)(?P<v>[A-Za-z0-9%+/]{40,120}(?:%3[Dd]|=))"
             + _END_ALNUM),
    _token("anthropic_api_key", "sk-", r"ant-(?:api|admin|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{32,200}" + _END_TOKEN),
    _token("openai_api_key", "sk-", r"(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}|[A-Za-z0-9_-]{20,200}"
           r"T3BlbkFJ[A-Za-z0-9_-]{20,200}|[A-Za-z0-9]{48})" + _END_TOKEN),
    _token("stripe_key", "sk_", r"(?:live|test)_[A-Za-z0-9]{20,247}" + _END_ALNUM),
    _token("stripe_key", "rk_", r"(?:live|test)_[A-Za-z0-9]{20,247}" + _END_ALNUM),
    _token("github_token", "gh", r"[pousr]_[A-Za-z0-9]{36}" + _END_ALNUM),
    _token("github_token", "github_pat_", r"[A-Za-z0-9]{22}_[A-Za-z0-9]{59}" + _END_ALNUM),
    _token("gitlab_token", "gl", r"(?:pat|dt|rt|ptt|cbt|soat)-[A-Za-z0-9_-]{20,64}(?:\.[A-Za-z0-9_-]{2,64}){0,3}"
           + _END_TOKEN),
    _token("slack_token", "xox", r"[abposre]-[0-9A-Za-z-]{10,250}" + _END_ALNUM, validate=_slack),
    _token("slack_token", "xapp-", r"[0-9A-Za-z-]{10,250}" + _END_ALNUM, validate=_slack),
    Detector("slack_webhook", SECRET, re.escape("https://hooks.slack.com/"),
             r"(?:services|workflows|triggers)/[A-Za-z0-9_/]{20,120}"),
    _token("databricks_token", "dapi", r"[0-9a-f]{32}(?:-[0-9])?" + _END_ALNUM),
    _token("huggingface_token", "hf_", r"[A-Za-z]{34}" + _END_ALNUM, validate=_generated_after_prefix),
    _token("npm_token", "npm_", r"[A-Za-z0-9]{36}" + _END_ALNUM),
    _token("pypi_token", "pypi-AgEIcHlwaS5vcmc", r"[A-Za-z0-9_-]{50,300}" + _END_TOKEN),
    _token("google_oauth_client_secret", "GOCSPX-", r"[A-Za-z0-9_-]{28}" + _END_TOKEN),
    _token("jwt", "eyJ", r"[A-Za-z0-9_-]{8,1000}\.[A-Za-z0-9_-]{2,4000}\.[A-Za-z0-9_-]{0,1000}" + _END_TOKEN,
           validate=_jwt),
    Detector("credential_in_url", SECRET, "[A-Za-z]",
             r"(?<![A-Za-z0-9+.-][\s\S])[A-Za-z0-9+.-]{0,19}://[^\s:/?#@\"'<>]{1,128}:"
             r"(?P<v>[^\s/?#@\"'<>]{3,128})@(?=[A-Za-z0-9\[])", _url_password,
             pivot="://", back="A-Za-z0-9+.-", back_max=20),
    # last: where a known kind of key stands in quotes after a label, the finding names its kind
    _label("password_assignment", "secret", _QUOTED_VALUE, _CI_LABELS),
    _label("password_assignment", "pass", r"(?:word|wd|phrase)" + _QUOTED_VALUE, _CI_LABELS),
    _label("password_assignment", "api", r"[_-]?key" + _QUOTED_VALUE, _CI_LABELS),
    _label("password_assignment", "access", r"_?token" + _QUOTED_VALUE, _CI_LABELS),
    _label("password_assignment", "auth", r"_?token" + _QUOTED_VALUE, _CI_LABELS),
)

# ---------------------------------------------------------------- personal data

_AFTER_NUMBER = r"(?![\w-]|\.[0-9])"
# Numbers start at a digit that follows no word character and no dot (the pass for digits checks once).
_DIGIT_LEAD = r"[0-9](?<![\w.][\s\S])"
_HEX = "[0-9A-Fa-f]"

PII: dict[str, Detector] = {
    "email": Detector(
        "email", "<EMAIL_ADDRESS>", "[A-Za-z0-9]",
        r"(?<![A-Za-z0-9._%+-][\s\S])[A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,6}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])",
        pivot="@", back="A-Za-z0-9._%+-", back_max=64),
    "credit_card": Detector(
        "credit_card", "<CREDIT_CARD>", _DIGIT_LEAD,
        r"(?<!-[\s\S])(?:[0-9]{12,18}|[0-9]{3}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,4})?"
        r"|[0-9]{3}[ -][0-9]{6}[ -][0-9]{4,5})" + _AFTER_NUMBER, _credit_card, spaced=True, anchor="[0-9]"),
    "us_ssn": Detector(
        "us_ssn", "<US_SSN>", _DIGIT_LEAD, r"(?<=[0-8])(?<!-[\s\S])[0-9]{2}[ -][0-9]{2}[ -][0-9]{4}" + _AFTER_NUMBER,
        _ssn, spaced=True, anchor="[0-8]"),
    "phone": Detector(
        "phone", "<PHONE_NUMBER>", _DIGIT_LEAD,
        r"(?<![+-][\s\S])(?:[0-9]{2}|[ .-][2-9][0-9]{2})(?P<s>[ .-])[2-9][0-9]{2}(?P=s)[0-9]{4}" + _AFTER_NUMBER,
        _phone, spaced=True, anchor="[0-9]"),
    "ip_address": Detector(
        "ip_address", "<IP_ADDRESS>", _DIGIT_LEAD,
        r"(?<!:[\s\S])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w]|\.[0-9])", _ip),
    "iban": Detector(
        "iban", "<IBAN>", "[A-Z][A-Z][0-9][0-9]",
        before_lead(_ALNUM, 4) + r"(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?" + _END_ALNUM,
        _iban, spaced=True, anchor="[A-Z]{2}[0-9]{2}"),
}
# More forms of the same kinds, scanned in passes of their own.
PII_MORE: dict[str, tuple[Detector, ...]] = {
    "phone": (
        Detector("phone", "<PHONE_NUMBER>", r"\+",
                 r"(?<![\w+][\s\S])[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,5}(?:[ .-]?[0-9]{1,5}){1,4}"
                 + _AFTER_NUMBER, _phone, spaced=True, anchor=r"\+[0-9]"),
        Detector("phone", "<PHONE_NUMBER>", r"\(",
                 r"(?<![\w(][\s\S])[2-9][0-9]{2}\)[ .-]?[2-9][0-9]{2}[ .-][0-9]{4}" + _AFTER_NUMBER, _phone,
                 spaced=True, anchor=r"\([0-9]"),
    ),
    "ip_address": (
        Detector("ip_address", "<IP_ADDRESS>", "",
                 f"(?<![\\w:.])(?:{_HEX}{{1,4}}(?:(?::{_HEX}{{1,4}}){{7}}|(?::{_HEX}{{1,4}}){{0,5}}::"
                 f"(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}}){{0,5}})?)|::(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}}){{0,6}})?)"
                 r"(?![\w:]|\.[0-9])", _ip, pivot=f"::(?={_HEX}|[^\\w:]|$)|:{_HEX}{{1,4}}:{_HEX}{{1,4}}:{_HEX}{{1,4}}:",
                 back="0-9A-Fa-f:", back_max=39),
    ),
}

# Where a built-in category comes from, for records that group categories (metrics, reports).
DETECTOR_OF_CATEGORY: dict[str, str] = {
    **{d.category: "secrets" for d in SECRETS}, **{kind: "pii" for kind in PII},
    "keyword": "keywords", "regex": "regex",
}
