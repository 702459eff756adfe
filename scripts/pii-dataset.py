#!/usr/bin/env python3
"""Generates tests/data/pii_eval.jsonl, the labelled evaluation set for the PII guardrail.

Run through scripts/pii-dataset.sh (it makes .venv and pins faker). Deterministic: fixed seeds,
a pinned faker version (checked below), no clock, no hash-order dependence. A rerun writes a
byte-identical file.

Each line is one JSON object:

    {"text": str, "spans": [{"start": int, "end": int, "type": str}], "locale": str, "kind": str}

- start/end: BYTE offsets into the UTF-8 encoding of text (end exclusive). The substring they
  cover is exactly the value, without the words or punctuation around it ("IBAN ", "<", ")",
  "mailto:", a trailing full stop or a "[...]:443" bracket/port are outside the span).
- type: email, phone, us_ssn, credit_card, iban, ip_address, secret.
- locale: the faker locale that made the values and fillers (en_US, en_GB, de_DE, fr_FR, es_ES,
  it_IT, nl_NL). Texts of a non-English locale are in that language or in English.
- kind:
  - "positive": 1 to 3 labelled values in a sentence, form, log line, chat or e-mail; the rest of
    the text is ordinary words, names, cities, companies, short numbers, dates and times.
  - "mixed": a positive text plus one or two hard-negative sentences (order numbers, versions,
    card-like numbers that fail Luhn, IBAN-like strings that fail mod 97, invalid SSNs, UUIDs,
    git SHAs, ...), none of which is labelled.
  - "negative": spans is []; only hard negatives, no PII of any of the seven types.

Values: email = faker email()/free_email()/company_email(); phone = faker phone_number() as
the locale formats it (en_US extensions "x1234" removed) plus E.164 numbers; us_ssn = faker
en_US ssn() (only in en_US texts), "AAA-GG-SSSS" or "AAA GG SSSS"; credit_card = faker
credit_card_number() for 9 card types, plain or grouped with spaces or dashes; iban = faker
iban() of the locale (en_US has no IBAN provider and gives GB IBANs), compact or in groups of
4; ip_address = faker ipv4_public()/ipv4_private()/ipv6(), some IPv6 in "::" compressed form;
secret = random tokens in the formats of OpenAI, Anthropic, AWS, GitHub, Slack, Google,
Stripe, GitLab keys, and generic 32-48 character random tokens after a key-like label.

Checks (the run fails if any does not hold): every span's bytes decode to exactly its value;
every value is valid for its type (Luhn, mod 97, SSN area/group/serial rules, ipaddress,
known prefix); a span never touches a letter or digit on either side; and the unlabelled
text (negatives, and positives with their spans blanked out) holds no email, no 13-19 digit
run that passes Luhn, no IBAN-shaped token that passes mod 97, no valid SSN, no valid IPv4
or IPv6 address, no E.164-looking "+digits" and no token with a known key prefix.

Usage: pii-dataset.py [--out PATH] [--check] [--examples N]
  --check  validate an existing file only (default path), generate nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import random
import re
import string
import sys
import uuid
from collections import Counter
from pathlib import Path

FAKER_VERSION = "40.54.0"
SEED = 20240115
N_POSITIVE = 900
N_MIXED = 300
N_NEGATIVE = 600
MIN_PER_TYPE = 120

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"]
LANG = {"en_US": "en", "en_GB": "en", "de_DE": "de", "fr_FR": "fr", "es_ES": "es", "it_IT": "it", "nl_NL": "nl"}
TYPES = ["email", "phone", "us_ssn", "credit_card", "iban", "ip_address", "secret"]
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii_eval.jsonl"

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


def rand_str(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# --------------------------------------------------------------------------------------------
# Validators
# --------------------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    s = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def ssn_ok(value: str) -> bool:
    m = re.fullmatch(r"(\d{3})([- ])(\d{2})\2(\d{4})", value)
    if not m:
        return False
    area, group, serial = int(m.group(1)), int(m.group(3)), int(m.group(4))
    return area != 0 and area != 666 and area < 900 and group != 0 and serial != 0


def ipv4_ok(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
        return True
    except ValueError:
        return False


def ipv6_ok(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
        return True
    except ValueError:
        return False


EMAIL_FULL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SECRET_FULL = re.compile(
    r"sk-proj-[A-Za-z0-9_-]{40}|sk-ant-api03-[A-Za-z0-9_-]{93}AA|sk-[A-Za-z0-9]{48}"
    r"|AKIA[A-Z0-9]{16}|ghp_[A-Za-z0-9]{36}|xoxb-\d{10,13}-\d{10,13}-[A-Za-z0-9]{24}"
    r"|AIza[A-Za-z0-9_-]{35}|sk_live_[A-Za-z0-9]{24}|glpat-[A-Za-z0-9_-]{20}"
    r"|[A-Za-z0-9]{32,48}"
)


def value_ok(typ: str, v: str) -> bool:
    if typ == "email":
        return EMAIL_FULL.fullmatch(v) is not None
    if typ == "phone":
        n = sum(c.isdigit() for c in v)
        return 7 <= n <= 16 and re.fullmatch(r"[+()\d][\d ()./-]*\d", v) is not None
    if typ == "us_ssn":
        return ssn_ok(v)
    if typ == "credit_card":
        digits = re.sub(r"[ -]", "", v)
        return digits.isdigit() and 13 <= len(digits) <= 19 and luhn_ok(digits)
    if typ == "iban":
        return iban_ok(v)
    if typ == "ip_address":
        return ipv4_ok(v) or ipv6_ok(v)
    if typ == "secret":
        if SECRET_FULL.fullmatch(v) is None:
            return False
        if re.fullmatch(r"[A-Za-z0-9]{32,48}", v):  # generic token: mixed case and digits
            return any(c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v)
        return True
    raise ValueError(typ)


# --------------------------------------------------------------------------------------------
# Finders for unlabelled PII (used on negatives and on positives with spans blanked out)
# --------------------------------------------------------------------------------------------

DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)*")
SSN_FIND = re.compile(r"(?<!\d)(?<!\d[ -])\d{3}([- ])\d{2}\1\d{4}(?!\d)(?![ -]\d)")
IPV4_FIND = re.compile(r"(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\.?\d)")
IPV6_FIND = re.compile(r"(?<![0-9A-Za-z:_.-])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?:\.[0-9.]+)?(?![0-9A-Za-z:_-])")
IBAN_FIND = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
E164_FIND = re.compile(r"\+\d[\d ()-]{6,}\d")
SECRET_FIND = re.compile(
    r"(?<![A-Za-z0-9_])(?:sk-[A-Za-z0-9_-]{16,}|AKIA[A-Z0-9]{16}|ghp_[A-Za-z0-9]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[A-Za-z0-9_-]{20,}|sk_live_[A-Za-z0-9]{10,}|glpat-[A-Za-z0-9_-]{16,})"
)


def find_pii(text: str) -> list[tuple[str, str]]:
    """Conservative finder: anything it reports would be a plausible true PII hit."""
    found: list[tuple[str, str]] = []
    for m in EMAIL_FULL.finditer(text):
        found.append(("email", m.group()))
    for m in DIGIT_RUN.finditer(text):
        groups = re.split(r"[ -]", m.group())
        for i in range(len(groups)):
            for j in range(i, len(groups)):
                digits = "".join(groups[i : j + 1])
                if 13 <= len(digits) <= 19 and luhn_ok(digits):
                    found.append(("credit_card", digits))
    for m in SSN_FIND.finditer(text):
        if ssn_ok(m.group()):
            found.append(("us_ssn", m.group()))
    for m in IPV4_FIND.finditer(text):
        if ipv4_ok(m.group()):
            found.append(("ipv4", m.group()))
    for m in IPV6_FIND.finditer(text):
        cand = m.group()
        if cand.count(":") >= 2 and ipv6_ok(cand):
            found.append(("ipv6", cand))
    for m in IBAN_FIND.finditer(text):
        parts = m.group().split(" ")
        for k in range(1, len(parts) + 1):
            compact = "".join(parts[:k])
            if 15 <= len(compact) <= 34 and iban_ok(compact):
                found.append(("iban", compact))
    for m in E164_FIND.finditer(text):
        found.append(("phone", m.group()))
    for m in SECRET_FIND.finditer(text):
        found.append(("secret", m.group()))
    return found


# --------------------------------------------------------------------------------------------
# PII value generators
# --------------------------------------------------------------------------------------------

CARD_TYPES = ["visa16", "visa16", "mastercard", "mastercard", "amex", "discover", "visa13", "visa19",
              "jcb15", "jcb16", "diners"]

E164_CC = {"en_US": "1", "en_GB": "44", "de_DE": "49", "fr_FR": "33", "es_ES": "34", "it_IT": "39", "nl_NL": "31"}


class Gen:
    def __init__(self, rng: random.Random, fakers: dict):
        self.rng = rng
        self.fakers = fakers
        self.notes: Counter = Counter()

    # -- values ---------------------------------------------------------------------------
    def value(self, typ: str, locale: str) -> str:
        for _ in range(50):
            v = getattr(self, "v_" + typ)(locale)
            if value_ok(typ, v) and not (typ == "phone" and self._phone_ambiguous(v)):
                return v
        raise RuntimeError(f"could not make a valid {typ} for {locale}")

    def v_email(self, locale: str) -> str:
        f = self.fakers[locale]
        r = self.rng.random()
        if r < 0.45:
            return f.email()
        if r < 0.75:
            return f.free_email()
        return f.company_email()

    def v_phone(self, locale: str) -> str:
        f = self.fakers[locale]
        rng = self.rng
        if rng.random() < 0.75:
            if locale == "en_GB" and rng.random() < 0.4:
                v = f.cellphone_number()
            else:
                v = f.phone_number()
            if re.search(r"x\d+$", v):
                self.notes["phone: en_US extension removed"] += 1
                v = re.sub(r"x\d+$", "", v)
            return v
        # E.164, compact or spaced
        cc = E164_CC[locale]
        spaced = rng.random() < 0.5
        if locale == "en_US":
            area = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
            line = f"01{rng.randint(0, 99):02d}"
            return f"+1 {area} 555 {line}" if spaced else f"+1{area}555{line}"
        if locale == "en_GB":
            if rng.random() < 0.5:
                rest = f"{rng.randint(0, 999):03d}"
                return f"+44 20 7946 0{rest}" if spaced else f"+442079460{rest}"
            rest = f"{rng.randint(0, 999):03d}"
            return f"+44 7700 900{rest}" if spaced else f"+447700900{rest}"
        if locale == "de_DE":
            area = rng.choice(["30", "40", "89", "69", "221", "151", "160", "170", "176"])
            sub = "".join(rng.choice(string.digits) for _ in range(11 - len(area)))
            return f"+49 {area} {sub}" if spaced else f"+49{area}{sub}"
        if locale == "fr_FR":
            nsn = rng.choice("167") + "".join(rng.choice(string.digits) for _ in range(8))
            return ("+33 " + nsn[0] + " " + " ".join(nsn[i : i + 2] for i in range(1, 9, 2))) if spaced else "+33" + nsn
        if locale == "es_ES":
            nsn = rng.choice("6789") + "".join(rng.choice(string.digits) for _ in range(8))
            return f"+34 {nsn[:3]} {nsn[3:6]} {nsn[6:]}" if spaced else "+34" + nsn
        if locale == "it_IT":
            nsn = "3" + "".join(rng.choice(string.digits) for _ in range(9))
            return f"+39 {nsn[:3]} {nsn[3:]}" if spaced else "+39" + nsn
        if locale == "nl_NL":
            nsn = "6" + "".join(rng.choice(string.digits) for _ in range(8))
            return f"+31 6 {nsn[1:]}" if spaced else "+31" + nsn
        raise ValueError(locale)

    @staticmethod
    def _phone_ambiguous(v: str) -> bool:
        # A phone whose digits would also pass as a card number is left out: its label would be
        # a coin toss. (Faker's formats are at most 13 digits, so this is rare.)
        return any(k == "credit_card" for k, _ in find_pii(v))

    def v_us_ssn(self, locale: str) -> str:
        v = self.fakers["en_US"].ssn()
        if self.rng.random() < 0.2:
            v = v.replace("-", " ")
        return v

    def v_credit_card(self, locale: str) -> str:
        f = self.fakers[locale]
        rng = self.rng
        ctype = rng.choice(CARD_TYPES)
        num = f.credit_card_number(card_type=ctype)
        self.notes[f"credit_card type {ctype}"] += 1
        style = rng.random()
        if style < 0.4:
            return num
        sep = " " if style < 0.75 else "-"
        n = len(num)
        if ctype == "amex" or (n == 15 and rng.random() < 0.5):
            sizes = [4, 6, 5]
        elif n == 14:
            sizes = [4, 6, 4]
        elif n == 13:
            sizes = [4, 4, 5] if rng.random() < 0.5 else [13]
        else:
            sizes = [4] * (n // 4) + ([n % 4] if n % 4 else [])
        parts, i = [], 0
        for s in sizes:
            parts.append(num[i : i + s])
            i += s
        return sep.join(parts)

    def v_iban(self, locale: str) -> str:
        v = self.fakers[locale].iban()
        if self.rng.random() < 0.5:
            return " ".join(v[i : i + 4] for i in range(0, len(v), 4))
        return v

    def v_ip_address(self, locale: str) -> str:
        f = self.fakers[locale]
        r = self.rng.random()
        if r < 0.40:
            return f.ipv4_public()
        if r < 0.60:
            return f.ipv4_private()
        if r < 0.82:
            return f.ipv6()
        # compressed IPv6 derived from a faker one: keep the first 2-3 and last 1-2 groups
        groups = f.ipv6().split(":")
        head = self.rng.randint(2, 3)
        tail = self.rng.randint(1, 2)
        full = groups[:head] + ["0"] * (8 - head - tail) + groups[8 - tail :]
        return ipaddress.IPv6Address(":".join(full)).compressed

    def v_secret(self, locale: str) -> str:
        rng = self.rng
        kind = rng.choice(["openai", "openai", "openai_legacy", "anthropic", "anthropic", "aws", "aws", "github",
                           "github", "slack", "google", "stripe", "gitlab", "generic"])
        self.notes[f"secret kind {kind}"] += 1
        if kind == "openai":
            return "sk-proj-" + rand_str(rng, URLSAFE, 40)
        if kind == "openai_legacy":
            return "sk-" + rand_str(rng, ALNUM, 48)
        if kind == "anthropic":
            return "sk-ant-api03-" + rand_str(rng, URLSAFE, 93) + "AA"
        if kind == "aws":
            return "AKIA" + rand_str(rng, UPPER_DIGITS, 16)
        if kind == "github":
            return "ghp_" + rand_str(rng, ALNUM, 36)
        if kind == "slack":
            return (f"xoxb-{rand_str(rng, string.digits, rng.choice([10, 11, 12, 13]))}"
                    f"-{rand_str(rng, string.digits, 13)}-{rand_str(rng, ALNUM, 24)}")
        if kind == "google":
            return "AIza" + rand_str(rng, URLSAFE, 35)
        if kind == "stripe":
            return "sk_live_" + rand_str(rng, ALNUM, 24)
        if kind == "gitlab":
            return "glpat-" + rand_str(rng, URLSAFE, 20)
        return rand_str(rng, ALNUM, rng.choice([32, 40, 48]))

    # -- fillers ------------------------------------------------------------------------
    def a_date(self) -> dt.date:
        return dt.date(2022, 1, 1) + dt.timedelta(days=self.rng.randrange(4 * 365))

    def date_str(self, locale: str) -> str:
        d = self.a_date()
        if self.rng.random() < 0.35:
            return d.isoformat()
        return {
            "en_US": f"{d.month:02d}/{d.day:02d}/{d.year}",
            "en_GB": f"{d.day:02d}/{d.month:02d}/{d.year}",
            "de_DE": f"{d.day:02d}.{d.month:02d}.{d.year}",
            "fr_FR": f"{d.day:02d}/{d.month:02d}/{d.year}",
            "es_ES": f"{d.day:02d}/{d.month:02d}/{d.year}",
            "it_IT": f"{d.day:02d}/{d.month:02d}/{d.year}",
            "nl_NL": f"{d.day:02d}-{d.month:02d}-{d.year}",
        }[locale]

    def time_str(self) -> str:
        return f"{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}:{self.rng.randint(0, 59):02d}"

    def filler(self, slot: str, locale: str) -> str:
        f = self.fakers[locale]
        rng = self.rng
        if slot == "name":
            return f.name()
        if slot in ("first", "first2"):
            return f.first_name()
        if slot == "company":
            return f.company()
        if slot == "city":
            return f.city()
        if slot == "date":
            return self.date_str(locale)
        if slot == "isodate":
            return self.a_date().isoformat()
        if slot == "time":
            return self.time_str()
        if slot == "hhmm":
            return self.time_str()[:5]
        if slot == "n":
            return str(rng.randint(2, 9999))
        if slot == "pid":
            return str(rng.randint(100, 65000))
        if slot == "amount":
            return f"{rng.randint(5, 4999)}.{rng.randint(0, 99):02d}"
        if slot == "port":
            return str(rng.choice([22, 80, 443, 5432, 6379, 8080, 8443, 9090]))
        if slot == "srcport":
            return str(rng.randint(32768, 60999))
        if slot == "status":
            return str(rng.choice([200, 201, 401, 403, 404, 429, 500, 502, 503]))
        raise KeyError(slot)


# --------------------------------------------------------------------------------------------
# Positive templates. "{v}" is the value of the template's type; the other slots are fillers.
# --------------------------------------------------------------------------------------------

SINGLE = {
    "en": {
        "email": [
            "Please send the invoice to {v} by Friday.",
            "You can reach me at {v}, I check it daily.",
            "Hi team, my login email is {v} but the reset link never arrives.",
            "Contact: {v}",
            "[{hhmm}] <{first}> ping me at {v} when the deploy is done",
            "Reply-To: {v}",
            "Could you add {v} to the billing account (cc finance)?",
            "User \"{v}\" was not found in the directory.",
            "Email address on file: {v}.",
            "pls forward to {v} thx",
            "The new owner of the account is {name} ({v}).",
            "Unsubscribe request received from <{v}>.",
            "For questions about the contract write to mailto:{v}",
            "{isodate} {time} INFO notification sent to={v} status=delivered",
            "Hello, I changed jobs, please use {v} from now on. Regards, {first}",
            "Why does my account {v} say the subscription expired?",
        ],
        "phone": [
            "Call me back on {v} after 5pm.",
            "My mobile number is {v}.",
            "Phone: {v}",
            "If the courier can't find the building they should ring {v}.",
            "{name} left a voicemail, callback number {v}, re: the delayed order.",
            "Tel. {v} (office hours only)",
            "whatsapp me: {v}",
            "Please update my phone number to \"{v}\".",
            "Emergency contact: {name}, {v}",
            "Customer called from {v} asking about the refund.",
            "SMS delivery failed for recipient {v}: carrier rejected the message",
            "You can reach our support line at {v}, Monday to Friday.",
            "new number!! {v}",
            "The delivery driver tried {v} twice but nobody answered.",
        ],
        "us_ssn": [
            "My SSN is {v}, please update the tax form.",
            "SSN: {v}",
            "Social Security Number: {v}",
            "The W-2 lists the employee SSN as {v} but the last digits are wrong.",
            "Applicant {name}, social security no. {v}, start date {date}.",
            "employee_ssn=\"{v}\" dept=payroll action=update",
            "Can you verify {v} against the payroll record for {name}?",
            "I typed my social {v} into the wrong field, can you delete it?",
            "Form 1099 recipient TIN: {v}",
            "The background check came back for SSN {v} with no issues.",
            "hey its {first}, my ss# is {v} if u need it for the lease",
            "Please do not store the SSN ({v}) in the ticket.",
        ],
        "credit_card": [
            "My card number is {v}, expiry 09/27.",
            "Card: {v}",
            "Please charge {v} for the annual plan.",
            "The payment with card {v} was declined twice.",
            "I see a duplicate charge on {v} from {date}.",
            "CC# {v} exp 11/26",
            "pan=\"{v}\" amount={amount} currency=USD result=DECLINED",
            "Here is the full number as requested: {v}.",
            "Use the corporate card ({v}) for the hotel booking.",
            "Update billing card to {v}",
            "{first} said the card {v} was stolen, please block it.",
            "card on file: {v}; billing city {city}",
        ],
        "iban": [
            "Please transfer the deposit to IBAN {v}.",
            "IBAN: {v}",
            "Our bank details: {company}, IBAN {v}, reference {n}.",
            "Refund should go to {v} (account holder {name}).",
            "The SEPA mandate for {v} was rejected.",
            "beneficiary_iban={v} amount={amount} currency=EUR",
            "Can you change my payout account to {v}?",
            "Wire the funds to {name}, {v}, before the end of the month.",
            "The direct debit from {v} failed on {date}.",
            "Salary account (IBAN) {v}",
        ],
        "ip_address": [
            "Failed login from {v} at {time}.",
            "The server at {v} is not responding to pings.",
            "{isodate} {time} sshd[{pid}]: Accepted publickey for deploy from {v} port {srcport} ssh2",
            "client_ip={v} method=POST path=/v1/chat/completions status={status}",
            "Whitelist my home IP {v} please.",
            "Connection refused: {v}:{port}",
            "X-Forwarded-For: {v}",
            "my VPN gives me {v} and the API blocks it",
            "Blocked {v} after 50 requests in 10 seconds.",
            "Ping to {v} timed out (100% packet loss).",
            "Host {v} added to the allowlist by {name}.",
            "Could you check why {v} is rate limited?",
            "upstream connect error to {v}:{port}, retrying",
        ],
        "secret": [
            "Here is my API key: {v}",
            "API_KEY={v}",
            "Authorization: Bearer {v}",
            "I accidentally committed {v} to the public repo, how do I revoke it?",
            "config.yaml:\n  api_key: \"{v}\"\n  timeout: 30",
            "The token {v} returns 401 since this morning.",
            "curl -H \"x-api-key: {v}\" https://api.example.com/v1/models",
            "Use key {v} for the staging environment.",
            "token='{v}'",
            "can you check if {v} is still active? it's our prod key",
            "secret: {v}",
            "{first}, rotate {v} today, it was in the build log.",
        ],
    },
    "de": {
        "email": [
            "Bitte schicken Sie die Rechnung an {v}.",
            "Sie erreichen mich unter {v}.",
            "Meine neue E-Mail-Adresse lautet {v}, bitte aktualisieren.",
            "E-Mail: {v}",
            "Können Sie {v} als Rechnungsempfänger hinterlegen?",
        ],
        "phone": [
            "Rufen Sie mich bitte unter {v} zurück.",
            "Telefon: {v}",
            "Meine Handynummer ist {v}.",
            "Der Kunde {name} hat von {v} angerufen und bittet um Rückruf.",
            "Bei Rückfragen erreichen Sie mich tagsüber unter {v}.",
        ],
        "credit_card": [
            "Meine Kartennummer lautet {v}, gültig bis 08/27.",
            "Die Zahlung mit der Kreditkarte {v} wurde abgelehnt.",
            "Bitte buchen Sie den Betrag von der Karte {v} ab.",
            "Kreditkarte: {v}",
        ],
        "iban": [
            "Bitte überweisen Sie den Betrag auf das Konto mit der IBAN {v}.",
            "IBAN: {v}",
            "Die Erstattung bitte an {v} (Kontoinhaber: {name}).",
            "Meine Bankverbindung hat sich geändert, neue IBAN {v}.",
        ],
        "ip_address": [
            "Fehlgeschlagene Anmeldung von {v} um {hhmm} Uhr.",
            "Der Server {v} antwortet nicht mehr.",
            "Bitte schalten Sie die IP-Adresse {v} für den Zugriff frei.",
            "Verbindung zu {v}:{port} abgelehnt.",
        ],
        "secret": [
            "Hier ist mein API-Schlüssel: {v}",
            "Ich habe versehentlich den Token {v} ins öffentliche Repository gepusht.",
            "Der Schlüssel {v} liefert seit heute Morgen 401.",
        ],
    },
    "fr": {
        "email": [
            "Merci d'envoyer la facture à {v}.",
            "Vous pouvez me joindre à l'adresse {v}.",
            "Mon adresse e-mail est {v}, merci de la mettre à jour.",
            "Courriel : {v}",
            "Pourriez-vous ajouter {v} en copie ?",
        ],
        "phone": [
            "Rappelez-moi au {v} s'il vous plaît.",
            "Téléphone : {v}",
            "Mon numéro de portable est le {v}.",
            "{name} a appelé depuis le {v} au sujet de sa commande.",
        ],
        "credit_card": [
            "Mon numéro de carte est {v}, date d'expiration 05/28.",
            "Le paiement avec la carte {v} a été refusé.",
            "Carte bancaire : {v}",
            "Veuillez débiter la carte {v} pour l'abonnement annuel.",
        ],
        "iban": [
            "Merci de virer l'acompte sur l'IBAN {v}.",
            "IBAN : {v}",
            "Le remboursement doit être effectué sur {v} (titulaire : {name}).",
            "Voici mon nouveau RIB, IBAN {v}.",
        ],
        "ip_address": [
            "Tentative de connexion échouée depuis {v} à {hhmm}.",
            "Le serveur {v} ne répond plus.",
            "Pouvez-vous autoriser l'adresse IP {v} ?",
            "Connexion refusée : {v}:{port}",
        ],
        "secret": [
            "Voici ma clé d'API : {v}",
            "J'ai publié par erreur le jeton {v} sur GitHub, comment le révoquer ?",
            "La clé {v} renvoie une erreur 401 depuis ce matin.",
        ],
    },
    "es": {
        "email": [
            "Por favor, envíe la factura a {v}.",
            "Puede contactarme en {v}.",
            "Mi correo electrónico es {v}, gracias.",
            "Correo: {v}",
        ],
        "phone": [
            "Llámeme al {v} por la tarde.",
            "Teléfono: {v}",
            "Mi número de móvil es el {v}.",
            "{name} llamó desde el {v} para preguntar por el reembolso.",
        ],
        "credit_card": [
            "El número de mi tarjeta es {v}, caduca el 03/27.",
            "El pago con la tarjeta {v} fue rechazado.",
            "Tarjeta: {v}",
        ],
        "iban": [
            "Por favor, haga la transferencia al IBAN {v}.",
            "IBAN: {v}",
            "El reembolso debe ir a {v} (titular: {name}).",
            "He cambiado de banco, mi nuevo IBAN es {v}.",
        ],
        "ip_address": [
            "Intento de acceso fallido desde {v} a las {hhmm}.",
            "El servidor {v} no responde.",
            "¿Pueden añadir la IP {v} a la lista blanca?",
        ],
        "secret": [
            "Aquí está mi clave de API: {v}",
            "Subí sin querer el token {v} a un repositorio público.",
            "La clave {v} devuelve 401 desde esta mañana.",
        ],
    },
    "it": {
        "email": [
            "Per favore inviate la fattura a {v}.",
            "Potete contattarmi all'indirizzo {v}.",
            "Il mio indirizzo email è {v}, grazie.",
            "Email: {v}",
        ],
        "phone": [
            "Richiamatemi al numero {v}, grazie.",
            "Telefono: {v}",
            "Il mio cellulare è {v}.",
            "{name} ha chiamato dal {v} per il rimborso.",
        ],
        "credit_card": [
            "Il numero della mia carta è {v}, scadenza 10/26.",
            "Il pagamento con la carta {v} è stato rifiutato.",
            "Carta di credito: {v}",
        ],
        "iban": [
            "Effettuate il bonifico sull'IBAN {v}.",
            "IBAN: {v}",
            "Il rimborso va accreditato su {v} (intestatario: {name}).",
        ],
        "ip_address": [
            "Accesso non riuscito da {v} alle {hhmm}.",
            "Il server {v} non risponde.",
            "Potete abilitare l'indirizzo IP {v}?",
        ],
        "secret": [
            "Ecco la mia chiave API: {v}",
            "Ho pubblicato per errore il token {v} su un repository pubblico.",
            "La chiave {v} restituisce 401 da stamattina.",
        ],
    },
    "nl": {
        "email": [
            "Stuur de factuur alstublieft naar {v}.",
            "U kunt mij bereiken via {v}.",
            "Mijn e-mailadres is {v}, graag aanpassen.",
            "E-mail: {v}",
        ],
        "phone": [
            "Bel me terug op {v} na vijf uur.",
            "Telefoon: {v}",
            "Mijn mobiele nummer is {v}.",
            "{name} belde vanaf {v} over de vertraagde bestelling.",
        ],
        "credit_card": [
            "Mijn kaartnummer is {v}, geldig tot 07/27.",
            "De betaling met kaart {v} is geweigerd.",
            "Creditcard: {v}",
        ],
        "iban": [
            "Gelieve het bedrag over te maken naar IBAN {v}.",
            "IBAN: {v}",
            "De terugbetaling graag naar {v} (t.n.v. {name}).",
        ],
        "ip_address": [
            "Mislukte aanmelding vanaf {v} om {hhmm}.",
            "De server {v} reageert niet meer.",
            "Kunnen jullie IP-adres {v} toevoegen aan de allowlist?",
        ],
        "secret": [
            "Hier is mijn API-sleutel: {v}",
            "Ik heb per ongeluk het token {v} in een openbare repository gezet.",
            "De sleutel {v} geeft sinds vanochtend een 401.",
        ],
    },
}

# Multi-value templates: slots named after a type are labelled values.
MULTI = {
    "en": [
        "Name: {name}\nEmail: {email}\nPhone: {phone}\nMessage: please call me about my order",
        "From: {name} <{email}>\nTo: {email}\nSubject: refund\n\nHi, please refund me to {iban}. Thanks, {first}",
        "{isodate} {time} WARN auth.failed user={email} ip={ip_address} reason=bad_password",
        "Customer {name} ({email}, {phone}) wants the card on file changed to {credit_card}.",
        "export API_KEY={secret}\nexport DB_HOST={ip_address}",
        "Applicant: {name}\nSSN: {us_ssn}\nPhone: {phone}",
        "--\n{name}\n{company}\nT: {phone}\nE: {email}",
        "X-Forwarded-For: {ip_address}, {ip_address}",
        "Hi, I'm {first}. My SSN is {us_ssn} and my email is {email}; the tax portal keeps rejecting them.",
        "Payment details for {company}: IBAN {iban}, or card {credit_card} if the transfer fails.",
        "[{hhmm}] {first}: here's the key {secret}\n[{hhmm}] {first2}: don't paste keys in chat!! rotate it now",
        "Employee record updated: ssn={us_ssn} email={email} phone={phone}",
        "Order for {name}: refund to {iban}, confirmation to {email}.",
        "HTTPError: 401 Unauthorized for key {secret} (client {ip_address})",
        "The webhook from {ip_address} carried the header Authorization: Bearer {secret}",
        "Can you call {phone} or email {email}? It's about the charge on card {credit_card}.",
        "W-9 details\nName: {name}\nTIN/SSN: {us_ssn}\nBank account (IBAN): {iban}",
        "{isodate}T{time}Z payment.declined card={credit_card} ip={ip_address} email={email}",
    ],
    "de": [
        "Name: {name}\nE-Mail: {email}\nTelefon: {phone}",
        "Bitte überweisen Sie an {iban} und schicken Sie die Bestätigung an {email}.",
        "Mit freundlichen Grüßen\n{name}\n{company}\nTel.: {phone}\nE-Mail: {email}",
        "Zugriff von {ip_address} mit dem Schlüssel {secret} wurde gesperrt.",
    ],
    "fr": [
        "Nom : {name}\nCourriel : {email}\nTéléphone : {phone}",
        "Cordialement,\n{name}\n{company}\nTél. : {phone}\n{email}",
        "Virement sur {iban}, confirmation à {email} svp.",
    ],
    "es": [
        "Nombre: {name}\nCorreo: {email}\nTeléfono: {phone}",
        "Saludos,\n{name}\nTel.: {phone}\n{email}",
        "Pago rechazado con la tarjeta {credit_card}; por favor use el IBAN {iban}.",
    ],
    "it": [
        "Nome: {name}\nEmail: {email}\nTelefono: {phone}",
        "Cordiali saluti,\n{name}\n{company}\nTel. {phone}\n{email}",
        "Bonifico su {iban}; per conferma scrivete a {email}.",
    ],
    "nl": [
        "Naam: {name}\nE-mail: {email}\nTelefoon: {phone}",
        "Met vriendelijke groet,\n{name}\n{company}\nT {phone}\nE {email}",
        "Graag terugstorten op {iban}, bevestiging naar {email}.",
    ],
}

JOINERS = [" ", " ", "\n", "\n\n", " Also: ", " -- ", "\nP.S. "]
JOINERS_LOCAL = {"de": [" Außerdem: ", "\nPS: "], "fr": [" Aussi : ", "\nP.-S. : "], "es": [" Además: ", "\nPD: "],
                 "it": [" Inoltre: ", "\nPS: "], "nl": [" Verder: ", "\nPS: "]}


# --------------------------------------------------------------------------------------------
# Hard negatives
# --------------------------------------------------------------------------------------------

class Neg:
    """Distractor values that look like PII and are not."""

    def __init__(self, gen: Gen):
        self.g = gen
        self.rng = gen.rng

    def _digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def order_id(self, loc):
        r = self.rng.random()
        if r < 0.35:
            return f"ORD-{self.rng.randint(2019, 2025)}-{self.rng.randint(0, 999999):06d}"
        if r < 0.6:
            return f"{self._digits(3)}-{self._digits(7)}-{self._digits(7)}"
        if r < 0.8:
            return f"#{self.rng.randint(10000, 999999)}"
        return f"PO-{self.rng.randint(10000, 99999)}"

    def invoice(self, loc):
        y = self.rng.randint(2019, 2025)
        return self.rng.choice([f"INV-{y}-{self.rng.randint(1, 99999):05d}", f"RE-{y}/{self.rng.randint(1, 9999):04d}",
                                f"F{y}-{self.rng.randint(1, 999999):06d}", f"{y}{self._digits(6)}"])

    def version(self, loc):
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return f"v{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}"
        if r < 0.45:
            return f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}-rc.{rng.randint(1, 4)}"
        if r < 0.6:
            return rng.choice(["10.0.19045", "10.0.22631", "10.0.17763", "6.1.7601"])
        if r < 0.8:  # browser builds: 4 parts, third > 255 so never an IPv4 address
            return f"{rng.randint(100, 131)}.0.{rng.randint(4000, 6999)}.{rng.randint(10, 230)}"
        return f"{rng.randint(1, 3)}.{rng.randint(60, 85)}.{rng.randint(0, 3)}"

    def date(self, loc):
        d = self.g.a_date()
        months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December"]
        return self.rng.choice([
            d.isoformat(), f"{d.day:02d}.{d.month:02d}.{d.year}", f"{d.month:02d}/{d.day:02d}/{d.year}",
            f"{d.day:02d}/{d.month:02d}/{d.year}", f"{months[d.month - 1][:3]} {d.day}, {d.year}",
            f"{d.day} {months[d.month - 1]} {d.year}", f"{d.year}{d.month:02d}{d.day:02d}",
            f"{d.isoformat()}T{self.g.time_str()}Z", f"{d.day:02d}-{d.month:02d}-{d.year}",
        ])

    def time(self, loc):
        t = self.g.time_str()
        return self.rng.choice([t, t[:5], f"{t}.{self.rng.randint(0, 999):03d}",
                                f"{self.rng.randint(1, 12)}:{self.rng.randint(0, 59):02d} {self.rng.choice(['AM', 'PM'])}"])

    def price(self, loc):
        a, c = self.rng.randint(1, 9999), self.rng.randint(0, 99)
        return self.rng.choice([f"${a:,}.{c:02d}", f"€ {a:,}.{c:02d}".replace(",", "X").replace(".", ",").replace("X", "."),
                                f"£{a}.{c:02d}", f"{a},{c:02d} €", f"USD {a:,}.{c:02d}", f"CHF {a}.-"])

    def tracking(self, loc):
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return "1Z" + rand_str(rng, UPPER_DIGITS, 6) + self._digits(10)
        if r < 0.5:
            return self._digits(12)
        if r < 0.75:
            d = "94" + self._digits(20)
            return " ".join(d[i : i + 4] for i in range(0, 22, 4))
        return "JJD" + self._digits(18)

    def isbn(self, loc):
        if self.rng.random() < 0.6:
            body = "978" + self._digits(9)
            check = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10) % 10
            full = body + str(check)
            return f"{full[:3]}-{full[3]}-{full[4:6]}-{full[6:12]}-{full[12]}"
        body = self._digits(9)
        s = sum((10 - i) * int(c) for i, c in enumerate(body))
        check = (11 - s % 11) % 11
        full = body + ("X" if check == 10 else str(check))
        return f"{full[0]}-{full[1:4]}-{full[4:9]}-{full[9]}"

    def uuid(self, loc):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sha(self, loc):
        return rand_str(self.rng, HEX, 40)

    def short_sha(self, loc):
        return rand_str(self.rng, HEX, self.rng.choice([7, 8, 12]))

    def sha256(self, loc):
        return "sha256:" + rand_str(self.rng, HEX, 64)

    def bad_card(self, loc):
        rng = self.rng
        n = rng.choice([16, 16, 16, 15, 14, 13, 19])
        while True:
            d = rng.choice("3456") + self._digits(n - 1)
            if not luhn_ok(d):
                break
        style = rng.random()
        if style < 0.4 or n not in (16, 19):
            return d
        sep = " " if style < 0.75 else "-"
        return sep.join(d[i : i + 4] for i in range(0, n, 4))

    def bad_iban(self, loc):
        f = self.g.fakers[loc]
        v = f.iban()
        while True:
            cd = f"{self.rng.randint(2, 98):02d}"
            bad = v[:2] + cd + v[4:]
            if not iban_ok(bad):
                break
        if self.rng.random() < 0.5:
            return " ".join(bad[i : i + 4] for i in range(0, len(bad), 4))
        return bad

    def bad_ssn(self, loc):
        rng = self.rng
        r = rng.random()
        area, group, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        if area == 666:
            area = 665
        if r < 0.2:
            area = 0
        elif r < 0.4:
            area = 666
        elif r < 0.6:  # 9xx, with groups outside the ITIN ranges (ITINs are PII too)
            area, group = rng.randint(900, 999), rng.randint(1, 49)
        elif r < 0.8:
            group = 0
        else:
            serial = 0
        sep = "-" if rng.random() < 0.8 else " "
        return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"

    def postal(self, loc):
        return self.rng.choice(["SW1A 1AA", "EC1A 1BB", "M1 1AE", "10115", "80331", "75008", "69002", "28013",
                                "08001", "00184", "20121", "1012 AB", "3511 LX", "90210", "10001-2345", "94105"])

    def qty(self, loc):
        rng = self.rng
        return rng.choice([f"{rng.randint(2, 12)} x {rng.choice([250, 500, 750])} ml", f"qty {rng.randint(1, 500)}",
                           f"{rng.randint(1, 9)},{rng.randint(0, 999):03d} units", f"{rng.randint(2, 144)} pcs",
                           f"{rng.randint(1, 40)} kg"])

    def hex_color(self, loc):
        return "#" + rand_str(self.rng, HEX, self.rng.choice([3, 6]))

    def pct(self, loc):
        rng = self.rng
        return rng.choice([f"{rng.randint(90, 99)}.{rng.randint(0, 99):02d}%", f"{rng.randint(1, 100)} %",
                           f"{rng.randint(0, 9)}.{rng.randint(1, 9)}%"])

    def port(self, loc):
        p = self.rng.choice([3000, 5000, 5432, 6379, 8000, 8080, 8443, 9090, 11434])
        return self.rng.choice([f"localhost:{p}", f"port {p}", f":{p}", f"http://localhost:{p}/health"])

    def path(self, loc):
        return self.rng.choice(["/var/log/nginx/access.log", "C:\\Program Files\\Switchyard\\config.ini",
                                "./src/main.rs", "~/.config/switchyard/settings.toml", "/etc/ssl/certs/ca-bundle.crt",
                                "/tmp/build-4471/output.tar.gz", "D:\\Backups\\2023\\Q4\\ledger.xlsx"])

    def semver_range(self, loc):
        rng = self.rng
        a, b, c = rng.randint(0, 9), rng.randint(0, 30), rng.randint(0, 20)
        return rng.choice([f"^{a}.{b}.{c}", f">={a}.{b}.0 <{a + 1}.0.0", f"~{a}.{b}", f"~> {a}.{b}", f"{a}.{b}.x"])

    def room(self, loc):
        rng = self.rng
        return rng.choice([f"Room {rng.randint(1, 6)}.{rng.randint(1, 130):03d}", f"room B-{rng.randint(100, 499)}",
                           f"Raum {rng.randint(1, 5)}.{rng.randint(10, 60)}", f"Suite {rng.randint(100, 2400)}"])

    def sku(self, loc):
        rng = self.rng
        return rng.choice([f"SKU-{rng.randint(10000, 99999)}-{rng.choice(['BLK', 'WHT', 'RED'])}-{rng.choice(['S', 'M', 'XL'])}",
                           f"ART-{rng.randint(0, 999999):06d}", f"{rand_str(rng, string.ascii_uppercase, 3)}-{rng.randint(100, 999)}"])

    def ean(self, loc):
        body = self.rng.choice(["400", "300", "800", "870", "500", "840"]) + self._digits(9)
        check = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10) % 10
        return body + str(check)

    def oid(self, loc):
        return self.rng.choice(["1.3.6.1.4.1.311.21.7", "1.3.6.1.2.1.1.3.0", "2.5.4.3", "1.2.840.113549.1.1.11",
                                "1.3.6.1.4.1.2021.10.1.3.1"])

    def bad_ip(self, loc):
        rng = self.rng
        parts = [rng.randint(1, 255) for _ in range(4)]
        parts[rng.randrange(4)] = rng.randint(256, 999)
        return ".".join(map(str, parts))

    def redacted_key(self, loc):
        rng = self.rng
        return rng.choice(["sk-proj-" + "*" * rng.randint(8, 20), "sk-..." + rand_str(rng, ALNUM, 4),
                           "AKIA" + "*" * 16, "<YOUR_API_KEY>", "ghp_****", "$OPENAI_API_KEY", "${ANTHROPIC_API_KEY}",
                           "xoxb-<redacted>", "[REDACTED]"])

    def integrity(self, loc):
        import base64
        raw = bytes(self.rng.getrandbits(8) for _ in range(self.rng.choice([48, 64])))
        algo = "sha384" if len(raw) == 48 else "sha512"
        return f"{algo}-{base64.b64encode(raw).decode()}"

    def handle(self, loc):
        return self.rng.choice(["@switchyard_dev", "@types/node", "lodash@4.17.21", "@here", "@anthropic-ai/sdk",
                                "react@18.3.1", "@Override", "@dataclass(frozen=True)"])

    def code_path(self, loc):
        return self.rng.choice(["std::collections::HashMap", "crate::config::Settings", "tokio::sync::mpsc",
                                "Foo::bar()", "serde_json::Value"])

    def unix_ts(self, loc):
        s = self.rng.randint(1640995200, 1767225599)
        return str(s) if self.rng.random() < 0.5 else f"{s}{self.rng.randint(0, 999):03d}"

    def serial(self, loc):
        return self.rng.choice(["S/N ", "serial "]) + rand_str(self.rng, UPPER_DIGITS, 12)

    def pod(self, loc):
        return f"api-{rand_str(self.rng, HEX, 9)}-{rand_str(self.rng, string.ascii_lowercase + string.digits, 5)}"

    def hex_code(self, loc):
        return "0x" + rand_str(self.rng, "0123456789ABCDEF", 8)

    def resolution(self, loc):
        return self.rng.choice(["1920x1080", "2560x1440", "3840x2160", "1280x720"])

    def customer_no(self, loc):
        return self.rng.choice(["KD-Nr. ", "Customer ID ", "Kundennummer ", "client n° ", "cliente n.º "]) + str(
            self.rng.randint(1000000, 99999999))

    def build(self, loc):
        d = self.g.a_date()
        return f"{d.year}{d.month:02d}{d.day:02d}.{self.rng.randint(1, 9)}"


NEG_EN = [
    ("order_id", "Your order {order_id} has shipped and should arrive within 3-5 business days."),
    ("order_id", "Where is my package? Order number {order_id}, placed on {date}."),
    ("invoice", "Invoice {invoice} is overdue by 14 days, total {price}."),
    ("invoice", "Please reference {invoice} on your payment."),
    ("version", "After upgrading to {version} the app crashes on startup."),
    ("version", "Running on Windows build {version} with 16 GB RAM."),
    ("version", "User-Agent: Mozilla/5.0 Chrome/{version} Safari/537.36"),
    ("date", "The meeting was moved to {date} at {time}."),
    ("date", "Report generated {date}, covering {qty} shipped."),
    ("time", "Backup finished at {time} with no errors."),
    ("price", "The total came to {price} including VAT."),
    ("price", "Can I get a refund of {price} for the broken charger?"),
    ("tracking", "Tracking number: {tracking}"),
    ("tracking", "The carrier shows {tracking} as delivered but nothing arrived."),
    ("isbn", "Looking for the hardcover edition, ISBN {isbn}."),
    ("uuid", "request_id={uuid} status=500 latency_ms=812"),
    ("uuid", "Session {uuid} expired after 30 minutes of inactivity."),
    ("sha", "The regression came in with commit {sha}."),
    ("short_sha", "Reverted {short_sha} because it broke the nightly build."),
    ("sha256", "Pull the image by digest: registry.local/gateway@{sha256}"),
    ("bad_card", "Reference number {bad_card} is printed on the back of the gift voucher."),
    ("bad_card", "Membership no. {bad_card}, valid until 12/2026."),
    ("bad_card", "Batch {bad_card} failed validation in the import."),
    ("bad_iban", "Test fixture account {bad_iban} (checksum intentionally wrong)."),
    ("bad_iban", "The bank rejected {bad_iban} as an invalid account number."),
    ("bad_ssn", "Placeholder SSN {bad_ssn} is not a valid number and was rejected by the form."),
    ("bad_ssn", "Validation error: {bad_ssn} is not an issuable social security number."),
    ("postal", "Ship to the warehouse in postcode {postal}, gate 4."),
    ("qty", "We need {qty} by next week."),
    ("hex_color", "Change the button color to {hex_color} and the border to 2px."),
    ("pct", "Uptime last month was {pct}."),
    ("port", "The dev server listens on {port}."),
    ("path", "Logs are written to {path}."),
    ("path", "Open {path} and set the timeout to 30."),
    ("semver_range", "The package.json pins express to \"{semver_range}\"."),
    ("room", "The workshop is in {room}, second floor."),
    ("sku", "Item {sku} is out of stock until {date}."),
    ("ean", "Scan barcode {ean} at the self checkout."),
    ("oid", "The SNMP agent does not answer OID {oid}."),
    ("oid", "Signature algorithm OID {oid} is not supported."),
    ("bad_ip", "Config error: {bad_ip} is not a valid address."),
    ("redacted_key", "Set the key with export OPENAI_API_KEY={redacted_key} before running."),
    ("redacted_key", "The log shows api_key={redacted_key} so the secret was masked correctly."),
    ("integrity", "\"integrity\": \"{integrity}\""),
    ("handle", "Thanks {handle} for the quick fix!"),
    ("handle", "npm install {handle} failed with ERESOLVE."),
    ("code_path", "error[E0433]: failed to resolve: use of undeclared type {code_path}"),
    ("unix_ts", "created_at={unix_ts} updated_by=scheduler"),
    ("serial", "Device {serial} needs a firmware update."),
    ("pod", "Pod {pod} restarted 3 times (OOMKilled)."),
    ("hex_code", "Installer failed with error code {hex_code}."),
    ("resolution", "Screenshots must be {resolution} or larger."),
    ("customer_no", "{customer_no} has 2 open tickets."),
    ("build", "Nightly build {build} is available for testing."),
    ("multi", "Order {order_id} for {qty}, invoice {invoice}, total {price}."),
    ("multi", "{date} {time} INFO deploy {short_sha} version={version} pod={pod}"),
    ("multi", "Ticket #{n} opened on {date}: app {version} crashes in {room}."),
    ("multi", "Batch {bad_card} imported at {time}; checksum {sha}."),
    ("multi", "Release {version} ({short_sha}) requires node {semver_range}."),
]

NEG_LOCAL = {
    "de": [
        ("order_id", "Ihre Bestellung {order_id} wurde am {date} versendet."),
        ("price", "Der Gesamtbetrag beträgt {price} inkl. MwSt."),
        ("invoice", "Bitte geben Sie bei der Zahlung die Rechnungsnummer {invoice} an."),
        ("bad_iban", "Die Bank hat {bad_iban} als ungültige Kontonummer abgelehnt."),
        ("date", "Der Termin wurde auf den {date} um {time} verschoben."),
        ("customer_no", "{customer_no} hat noch offene Rechnungen."),
        ("room", "Die Schulung findet in {room} statt."),
    ],
    "fr": [
        ("order_id", "Votre commande {order_id} a été expédiée le {date}."),
        ("price", "Le montant total est de {price} TTC."),
        ("bad_iban", "La banque a refusé {bad_iban} : numéro de compte invalide."),
        ("date", "La réunion est déplacée au {date} à {time}."),
        ("tracking", "Numéro de suivi : {tracking}"),
        ("postal", "Livraison à l'entrepôt, code postal {postal}."),
    ],
    "es": [
        ("order_id", "Su pedido {order_id} fue enviado el {date}."),
        ("price", "El importe total es de {price} con IVA."),
        ("bad_iban", "El banco rechazó {bad_iban} por ser una cuenta no válida."),
        ("date", "La reunión se ha movido al {date} a las {time}."),
        ("tracking", "Número de seguimiento: {tracking}"),
    ],
    "it": [
        ("order_id", "Il suo ordine {order_id} è stato spedito il {date}."),
        ("price", "L'importo totale è di {price} IVA inclusa."),
        ("bad_iban", "La banca ha rifiutato {bad_iban} perché il conto non è valido."),
        ("date", "La riunione è spostata al {date} alle {time}."),
        ("invoice", "Fattura {invoice} in scadenza il {date}."),
    ],
    "nl": [
        ("order_id", "Uw bestelling {order_id} is op {date} verzonden."),
        ("price", "Het totaalbedrag is {price} incl. btw."),
        ("bad_iban", "De bank heeft {bad_iban} afgewezen als ongeldig rekeningnummer."),
        ("date", "De afspraak is verplaatst naar {date} om {time}."),
        ("postal", "Afleveradres: magazijn, postcode {postal}."),
    ],
}
NEG_SLOTS = {name for name in dir(Neg) if not name.startswith("_")}
FILLER_SLOTS = {"name", "first", "first2", "company", "city", "date", "isodate", "time", "hhmm", "n", "pid", "amount",
                "port", "srcport", "status"}


# --------------------------------------------------------------------------------------------
# Building texts from segments
# --------------------------------------------------------------------------------------------

SLOT_RE = re.compile(r"\{(\w+)\}")


class Builder:
    def __init__(self, rng: random.Random, fakers: dict):
        self.rng = rng
        self.gen = Gen(rng, fakers)
        self.neg = Neg(self.gen)

    def fill(self, template: str, locale: str, vtype: str | None = None, neg: bool = False) -> list[tuple[str, str | None]]:
        """Template -> segments [(text, type-or-None)]. neg: distractor slots ({date}, {time},
        {port}, ...) take the hard-negative generators instead of the plain fillers."""
        parts = SLOT_RE.split(template)
        segs: list[tuple[str, str | None]] = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                if part:
                    segs.append((part, None))
                continue
            slot = part
            typ = vtype if slot == "v" else (slot if slot in TYPES else None)
            if typ is not None:
                value = self.gen.value(typ, locale)
                nxt = parts[i + 1] if i + 1 < len(parts) else ""
                port_follows = nxt.startswith(":") and (nxt == ":" or nxt[1:2].isdigit())
                if typ == "ip_address" and ":" in value and port_follows:
                    segs += [("[", None), (value, typ), ("]", None)]
                else:
                    segs.append((value, typ))
            elif slot in NEG_SLOTS and (neg or slot not in FILLER_SLOTS):
                segs.append((getattr(self.neg, slot)(locale), None))
            else:
                segs.append((self.gen.filler(slot, locale), None))
        return segs

    def lang_for(self, locale: str, p_native: float) -> str:
        lang = LANG[locale]
        if lang != "en" and self.rng.random() >= p_native:
            return "en"
        return lang

    def joiner(self, lang: str) -> str:
        pool = JOINERS + (JOINERS_LOCAL.get(lang, []) if lang != "en" else [])
        return self.rng.choice(pool)

    def positive(self, primary: str, n_values: int) -> tuple[list, str]:
        rng = self.rng
        locale = "en_US" if primary == "us_ssn" else rng.choice(LOCALES)
        lang = self.lang_for(locale, 0.7)
        allowed = [t for t in TYPES if t != "us_ssn" or locale == "en_US"]
        if n_values >= 2 and rng.random() < 0.5:
            cands = [t for t in MULTI[lang]
                     if ("{" + primary + "}") in t
                     and len([s for s in SLOT_RE.findall(t) if s in TYPES]) == n_values
                     and all(s in allowed for s in SLOT_RE.findall(t) if s in TYPES)]
            if cands:
                return self.fill(rng.choice(cands), locale), locale
        types = [primary]
        while len(types) < n_values:
            t = rng.choice(allowed)
            if t not in types:
                types.append(t)
        rng.shuffle(types)
        segs: list = []
        for k, t in enumerate(types):
            tl = lang if t in SINGLE[lang] else "en"
            if k:
                segs.append((tidy_sep(segs, self.joiner(lang)), None))
            segs += self.fill(rng.choice(SINGLE[tl][t]), locale, t)
        return segs, locale

    def negative_sentence(self, locale: str, lang: str, want: str | None = None) -> list:
        pool = NEG_LOCAL.get(lang, []) if lang != "en" else []
        if not pool or self.rng.random() < 0.5:
            pool = NEG_EN
        if want is not None:
            pool = [p for p in NEG_EN if p[0] == want]
        _, template = self.rng.choice(pool)
        return self.fill(template, locale, neg=True)

    def negative(self, want: str) -> tuple[list, str]:
        rng = self.rng
        locale = rng.choice(LOCALES)
        lang = self.lang_for(locale, 0.5)
        k = rng.choices([1, 2, 3], weights=[55, 35, 10])[0]
        sents = [self.negative_sentence(locale, lang, want)]
        for _ in range(k - 1):
            sents.append(self.negative_sentence(locale, lang))
        rng.shuffle(sents)
        segs: list = []
        for i, s in enumerate(sents):
            if i:
                segs.append((tidy_sep(segs, rng.choice([" ", "\n", " ", " | "])), None))
            segs += s
        return segs, locale

    def mixed(self, primary: str, n_values: int) -> tuple[list, str]:
        rng = self.rng
        segs, locale = self.positive(primary, n_values)
        lang = LANG[locale] if rng.random() < 0.5 else "en"
        for _ in range(rng.choice([1, 1, 2])):
            distractor = self.negative_sentence(locale, lang)
            sep = rng.choice([" ", "\n", " -- ", "\n\n"])
            if rng.random() < 0.5:
                segs = distractor + [(tidy_sep(distractor, sep), None)] + segs
            else:
                segs = segs + [(tidy_sep(segs, sep), None)] + distractor
        return segs, locale


def tidy_sep(segs: list, sep: str) -> str:
    """A run-on " " or " Also: " after a line that ends without a full stop becomes a line break."""
    last = segs[-1][0].rstrip()[-1:] if segs else ""
    if sep.startswith(" ") and sep not in (" -- ", " | ") and last not in ".!?":
        return "\n" + sep.lstrip()
    return sep


def to_record(segs: list, locale: str, kind: str) -> dict:
    text = ""
    spans = []
    for piece, typ in segs:
        if typ is not None:
            start_b = len(text.encode())
            spans.append({"start": start_b, "end": start_b + len(piece.encode()), "type": typ, "_value": piece})
        text += piece
    return {"text": text, "spans": spans, "locale": locale, "kind": kind}


def record_problems(rec: dict) -> list[str]:
    """Everything the file promises about one record; [] when it holds."""
    probs = []
    text = rec["text"]
    b = text.encode()
    if rec["kind"] not in ("positive", "negative", "mixed"):
        probs.append(f"bad kind {rec['kind']}")
    if rec["locale"] not in LOCALES:
        probs.append(f"bad locale {rec['locale']}")
    if rec["kind"] == "negative" and rec["spans"]:
        probs.append("negative with spans")
    if rec["kind"] != "negative" and not 1 <= len(rec["spans"]) <= 3:
        probs.append(f"{len(rec['spans'])} spans")
    masked = bytearray(b)
    prev_end = 0
    for sp in rec["spans"]:
        s, e, typ = sp["start"], sp["end"], sp["type"]
        if typ not in TYPES:
            probs.append(f"bad type {typ}")
            continue
        if not (0 <= s < e <= len(b)) or s < prev_end:
            probs.append(f"bad offsets {s}..{e}")
            continue
        prev_end = e
        try:
            val = b[s:e].decode()
        except UnicodeDecodeError:
            probs.append(f"span {s}..{e} cuts a character")
            continue
        if "_value" in sp and val != sp["_value"]:
            probs.append(f"span text {val!r} != value {sp['_value']!r}")
        if not value_ok(typ, val):
            probs.append(f"invalid {typ} {val!r}")
        before = b[:s].decode(errors="replace")[-1:]
        after = b[e:].decode(errors="replace")[:1]
        if (before and (before.isalnum() or before in "_@")) or (after and (after.isalnum() or after in "_@")):
            probs.append(f"{typ} {val!r} touches {before!r}/{after!r}")
        if typ == "ip_address" and ":" in val and after == ":":
            probs.append(f"IPv6 {val!r} followed by a bare ':' (port without brackets)")
        if typ == "us_ssn" and rec["locale"] != "en_US":
            probs.append("us_ssn outside en_US")
        masked[s:e] = b" \xc2\xa4 ".ljust(e - s, b" ") if e - s >= 4 else b" " * (e - s)
    for k, v in find_pii(bytes(masked).decode(errors="replace")):
        probs.append(f"unlabelled {k} {v!r}")
    return probs


def generate() -> list[dict]:
    import faker as faker_pkg
    from faker import Faker

    if faker_pkg.VERSION != FAKER_VERSION:
        sys.exit(f"pii-dataset: faker {faker_pkg.VERSION} installed, {FAKER_VERSION} required (run scripts/pii-dataset.sh)")
    fakers = {}
    for i, loc in enumerate(LOCALES):
        f = Faker(loc)
        f.seed_instance(SEED + i)
        fakers[loc] = f
    rng = random.Random(SEED)
    bld = Builder(rng, fakers)
    records: list[dict] = []
    seen: set[str] = set()
    rejected: Counter = Counter()

    def add(make, kind: str) -> None:
        for _ in range(100):
            segs, locale = make()
            rec = to_record(segs, locale, kind)
            probs = record_problems(rec)
            if probs:
                rejected[probs[0].split(" ")[0] + " " + probs[0].split(" ")[1]] += 1
                continue
            if rec["text"] in seen:
                rejected["duplicate"] += 1
                continue
            seen.add(rec["text"])
            records.append(rec)
            return
        raise RuntimeError(f"could not build a {kind} record")

    # positives and mixed: primary type round-robin, 1-3 values
    for i in range(N_POSITIVE + N_MIXED):
        primary = TYPES[i % len(TYPES)]
        n_values = rng.choices([1, 2, 3], weights=[50, 35, 15])[0]
        kind = "positive" if i < N_POSITIVE else "mixed"
        if kind == "positive":
            add(lambda: bld.positive(primary, n_values), kind)
        else:
            add(lambda: bld.mixed(primary, n_values), kind)
    # negatives: every distractor kind in turn
    kinds = sorted({k for k, _ in NEG_EN})
    for i in range(N_NEGATIVE):
        want = kinds[i % len(kinds)]
        add(lambda: bld.negative(want), "negative")

    rng.shuffle(records)
    for rec in records:
        for sp in rec["spans"]:
            del sp["_value"]
    print("rejected drafts (regenerated):", dict(sorted(rejected.items())), file=sys.stderr)
    print("generator notes:", dict(sorted(bld.gen.notes.items())), file=sys.stderr)
    return records


def report(records: list[dict], n_examples: int) -> list[str]:
    errors = []
    for i, rec in enumerate(records):
        for p in record_problems(rec):
            errors.append(f"line {i + 1}: {p}")
    by_type = Counter(sp["type"] for r in records for sp in r["spans"])
    texts_by_type = Counter(t for r in records for t in {sp["type"] for sp in r["spans"]})
    by_kind = Counter(r["kind"] for r in records)
    by_locale = Counter(r["locale"] for r in records)
    loc_type = Counter((r["locale"], sp["type"]) for r in records for sp in r["spans"])
    n_spans = Counter(len(r["spans"]) for r in records if r["kind"] != "negative")
    print(f"records: {len(records)}  kinds: {dict(sorted(by_kind.items()))}")
    print(f"spans per non-negative text: {dict(sorted(n_spans.items()))}")
    print("spans per type (texts containing it):")
    for t in TYPES:
        print(f"  {t:<12} {by_type[t]:>5}  ({texts_by_type[t]})")
    print("records per locale:", dict(sorted(by_locale.items())))
    print("spans per locale x type:")
    print("  " + " " * 7 + "".join(f"{t[:11]:>12}" for t in TYPES))
    for loc in LOCALES:
        print(f"  {loc:<7}" + "".join(f"{loc_type[(loc, t)]:>12}" for t in TYPES))
    ascii_only = sum(1 for r in records if r["text"].isascii())
    print(f"texts with non-ASCII characters: {len(records) - ascii_only}")
    for t in TYPES:
        if by_type[t] < MIN_PER_TYPE:
            errors.append(f"only {by_type[t]} {t} spans (< {MIN_PER_TYPE})")
    # the two checksums the brief asks for, stated on their own
    for i, rec in enumerate(records):
        b = rec["text"].encode()
        for sp in rec["spans"]:
            v = b[sp["start"] : sp["end"]].decode()
            if sp["type"] == "credit_card" and not luhn_ok(re.sub(r"[ -]", "", v)):
                errors.append(f"line {i + 1}: credit_card fails Luhn: {v!r}")
            if sp["type"] == "iban" and not iban_ok(v):
                errors.append(f"line {i + 1}: iban fails mod 97: {v!r}")
    if n_examples:
        ex_rng = random.Random(7)
        print(f"\n{n_examples} examples:")
        for kind in ("positive", "mixed", "negative"):
            pool = [r for r in records if r["kind"] == kind]
            for r in ex_rng.sample(pool, min(n_examples, len(pool))):
                b = r["text"].encode()
                labels = [f"{sp['type']}={b[sp['start']:sp['end']].decode()!r}" for sp in r["spans"]]
                print(f"  [{kind} {r['locale']}] {r['text']!r}\n      -> {labels}")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only validate the existing file")
    ap.add_argument("--examples", type=int, default=3, help="examples per kind to print")
    args = ap.parse_args()
    if args.check:
        records = [json.loads(line) for line in args.out.read_text(encoding="utf-8").splitlines()]
    else:
        records = generate()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8", newline="\n") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"wrote {len(records)} records to {args.out}")
    errors = report(records, args.examples)
    if errors:
        print(f"\n{len(errors)} problem(s):", file=sys.stderr)
        for e in errors[:50]:
            print("  " + e, file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
