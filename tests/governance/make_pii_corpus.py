"""Builds tests/governance/data/pii_corpus.jsonl: the labelled PII corpus (seeded, reproducible).

Run from the repository root: ``python tests/governance/make_pii_corpus.py``. Each line is one
payload string as a span carries it: ``{"key": <attribute key | event:exception.message |
status_message>, "value": <the string, often JSON-encoded messages or tool arguments>,
"entities": [[<category>, <entity text as decoded>], ...]}``. About half the lines hold no
entity but look-alikes (order numbers, ids, UUIDs, versions, timestamps, prices, token
counts, checksum-failing card and IBAN numbers, key-like words). Numbers that must pass a
checksum (cards: Luhn; IBANs: ISO 13616 mod 97) are computed here.
"""

# ruff: noqa: E501 — generator tables: one value per line reads better than wrapped
from __future__ import annotations

import json
import random
import string
from pathlib import Path

R = random.Random(17)
OUT = Path(__file__).parent / "data" / "pii_corpus.jsonl"

FIRST = ["jane", "omar", "li", "maria", "raj", "sven", "aiko", "fatima", "lucas", "chloe", "dmitri",
         "amara", "noah", "ines", "kofi", "hana", "mateo", "zoe", "yusuf", "elena"]
LAST = ["doe", "haddad", "wei", "garcia", "patel", "lindqvist", "tanaka", "okafor", "martin",
        "dubois", "ivanov", "nwosu", "smith", "moreau", "mensah", "kim", "rossi", "novak"]
DOMAINS = ["example.com", "acme-corp.io", "mail.example.org", "contoso.co.uk", "fabrikam.de",
           "globex.com.au", "initech.net", "umbrella.fr", "hooli.xyz", "students.uni-example.edu"]


def luhn_complete(prefix: str, length: int) -> str:
    digits = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        candidate = digits + check
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d * 2 > 9 else d * 2
            total += d
        if total % 10 == 0:
            return candidate
    raise AssertionError


def luhn_broken(prefix: str, length: int) -> str:
    good = luhn_complete(prefix, length)
    return good[:-1] + str((int(good[-1]) + R.randint(1, 9)) % 10)


def card() -> str:
    kind = R.choice(["visa", "mc", "amex", "disc", "visa"])
    number = {"visa": lambda: luhn_complete("4", 16), "mc": lambda: luhn_complete(R.choice(["51", "53", "55"]), 16),
              "amex": lambda: luhn_complete(R.choice(["34", "37"]), 15),
              "disc": lambda: luhn_complete("6011", 16)}[kind]()
    style = R.choice(["plain", "space", "dash"])
    if style == "plain":
        return number
    sep = " " if style == "space" else "-"
    if len(number) == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


IBAN_LAYOUT = {"DE": 18, "GB": None, "FR": 23, "ES": 20, "NL": None, "IT": None, "CH": 17, "BE": 12}


def iban(valid: bool = True) -> str:
    country = R.choice(["DE", "GB", "FR", "ES", "NL", "IT", "CH", "BE"])
    if country == "GB":
        bban = R.choice(["NWBK", "BARC", "LOYD", "HBUK"]) + "".join(R.choice(string.digits) for _ in range(14))
    elif country == "NL":
        bban = R.choice(["ABNA", "RABO", "INGB"]) + "".join(R.choice(string.digits) for _ in range(10))
    elif country == "IT":
        bban = R.choice(string.ascii_uppercase) + "".join(R.choice(string.digits) for _ in range(10)) + \
            "".join(R.choice(string.digits) for _ in range(12))
    else:
        bban = "".join(R.choice(string.digits) for _ in range(IBAN_LAYOUT[country]))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + R.randint(1, 40)) % 97 or 13
    code = f"{country}{check:02d}{bban}"
    if R.random() < 0.6:
        return " ".join(code[i:i + 4] for i in range(0, len(code), 4))
    return code


def ssn() -> str:
    while True:
        area = R.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"


PHONES = [
    lambda: f"+1 {R.choice(['415', '212', '312', '617', '206'])}-{R.randint(200, 999)}-{R.randint(1000, 9999)}",
    lambda: f"({R.choice(['415', '646', '312', '303', '512'])}) {R.randint(200, 999)}-{R.randint(1000, 9999)}",
    lambda: f"+44 20 {R.randint(7000, 8999)} {R.randint(1000, 9999)}",
    lambda: f"+44 7{R.randint(400, 999)} {R.randint(100000, 999999)}",
    lambda: f"+49 30 {R.randint(1000000, 9999999)}",
    lambda: f"+49 151 {R.randint(10000000, 99999999)}",
    lambda: f"+33 1 {R.randint(40, 49)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
    lambda: f"+33 6 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
    lambda: f"+91 9{R.randint(1000, 9999)} {R.randint(10000, 99999)}",
    lambda: f"+55 11 9{R.randint(1000, 9999)}-{R.randint(1000, 9999)}",
    lambda: f"+61 2 {R.randint(8000, 9999)} {R.randint(1000, 9999)}",
    lambda: f"+81 3-{R.randint(1000, 9999)}-{R.randint(1000, 9999)}",
    lambda: f"+972-3-{R.randint(500, 799)}-{R.randint(1000, 9999)}",
    lambda: f"{R.choice(['415', '646', '312'])}.{R.randint(200, 999)}.{R.randint(1000, 9999)}",
    lambda: f"020 {R.randint(7000, 8999)} {R.randint(1000, 9999)}",
    lambda: f"+34 6{R.randint(10, 99)} {R.randint(100, 999)} {R.randint(100, 999)}",
    lambda: f"+31 6 {R.randint(10000000, 99999999)}",
]


def phone() -> str:
    return R.choice(PHONES)()


def email() -> str:
    sep = R.choice([".", "_", "", "+"])
    local = R.choice(FIRST) + sep + R.choice(LAST) if sep != "+" else R.choice(FIRST) + "+billing"
    return f"{local}{R.choice(['', '', str(R.randint(1, 99))])}@{R.choice(DOMAINS)}"


def ipv4() -> str:
    return R.choice([f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
                     f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}",
                     f"{R.randint(11, 223)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"])


def ipv6() -> str:
    return R.choice([f"2001:db8::{R.randint(1, 0xffff):x}",
                     ":".join(f"{R.randint(0, 0xffff):x}" for _ in range(8)),
                     f"fe80::{R.randint(1, 0xffff):x}:{R.randint(1, 0xffff):x}"])


def rand(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"


def secret() -> str:
    kind = R.choice(["openai", "openai_proj", "anthropic", "aws", "github", "github_pat", "slack",
                     "stripe", "jwt", "pem", "google"])
    if kind == "openai":
        return "sk-" + rand(ALNUM, 48)
    if kind == "openai_proj":
        return "sk-proj-" + rand(B64URL, 64)
    if kind == "anthropic":
        return "sk-ant-api03-" + rand(B64URL, 93) + "AA"
    if kind == "aws":
        return "AKIA" + rand(string.ascii_uppercase + string.digits, 16)
    if kind == "github":
        return R.choice(["ghp_", "gho_", "ghs_"]) + rand(ALNUM, 36)
    if kind == "github_pat":
        return "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59)
    if kind == "slack":
        return R.choice(["xoxb-", "xoxp-"]) + f"{R.randint(10**10, 10**11)}-{R.randint(10**10, 10**11)}-" + rand(ALNUM, 24)
    if kind == "stripe":
        return R.choice(["sk_live_", "rk_live_", "sk_test_"]) + rand(ALNUM, 24)
    if kind == "google":
        return "AIza" + rand(B64URL, 35)
    if kind == "jwt":
        import base64
        def enc(obj: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
        return ".".join([enc({"alg": "HS256", "typ": "JWT"}),
                         enc({"sub": str(R.randint(1000, 99999)), "exp": 1733571234}), rand(B64URL, 43)])
    lines = "\n".join(rand(string.ascii_letters + string.digits + "+/", 64) for _ in range(R.randint(2, 5)))
    kind_name = R.choice(["RSA ", "EC ", "", "OPENSSH "])
    return f"-----BEGIN {kind_name}PRIVATE KEY-----\n{lines}\n-----END {kind_name}PRIVATE KEY-----"


GENERATORS = {"EMAIL_ADDRESS": email, "PHONE_NUMBER": phone, "CREDIT_CARD": card, "US_SSN": ssn,
              "IBAN_CODE": iban, "IP_ADDRESS": lambda: ipv4() if R.random() < 0.7 else ipv6(),
              "SECRET": secret}

POSITIVE_SENTENCES = {
    "EMAIL_ADDRESS": ["Please send the invoice to {x} by Friday.", "My email is {x}", "cc {x} on the ticket",
                      "User {x} reported the bug after the 2.3.1 upgrade.", "Forward to {x}; she owns the account."],
    "PHONE_NUMBER": ["You can reach me at {x} after 5pm.", "Call the customer back on {x}.",
                     "Mobile: {x}", "their support line is {x}, ask for Dana", "phone {x} (weekdays only)"],
    "CREDIT_CARD": ["Charge the card {x}, expiry 09/27.", "card number: {x}", "I paid with {x} yesterday",
                    "Refund to card {x} please", "Use {x} for the renewal."],
    "US_SSN": ["My SSN is {x}.", "social security number {x}", "Applicant SSN: {x}, DOB withheld",
               "verify identity with SSN {x}", "the form lists {x} as the SSN"],
    "IBAN_CODE": ["Wire the refund to IBAN {x}.", "Bank account: {x} (BIC DEUTDEFF500)",
                  "pay supplier {x} within 30 days", "IBAN {x} belongs to the landlord", "Send it to {x}."],
    "IP_ADDRESS": ["Login from {x} was blocked.", "client_ip={x} hit the rate limit",
                   "SSH to {x} failed", "request came from {x} via the proxy", "allowlist {x} in the firewall"],
    "SECRET": ["Here is my key: {x}", "export OPENAI_API_KEY={x}", "use token {x} for the API",
               "Authorization: Bearer {x}", "The config has api_key = \"{x}\""],
}

NEGATIVES = [
    lambda: f"Order #{R.randint(1000, 9999)}-{R.randint(1000, 9999)}-{R.randint(10, 99)} shipped on 2024-06-{R.randint(10, 28)}.",
    lambda: f"order ORD-2024-{R.randint(100000, 999999)} is delayed",
    lambda: f"Your order number is {R.randint(10**7, 10**8 - 1)}.",
    lambda: f"invoice INV-{R.randint(10**5, 10**6 - 1)} total ${R.randint(1, 9)},{R.randint(100, 999)}.{R.randint(10, 99)}",
    lambda: f"trace {rand('0123456789abcdef', 32)} span {rand('0123456789abcdef', 16)}",
    lambda: f"request id {R.choice(['chatcmpl-', 'req_', 'msg_01'])}{rand(ALNUM, 24)} took {R.randint(100, 9999)} ms",
    lambda: f"run {rand('0123456789abcdef', 8)}-{rand('0123456789abcdef', 4)}-4{rand('0123456789abcdef', 3)}-a{rand('0123456789abcdef', 3)}-{rand('0123456789abcdef', 12)} finished",
    lambda: f"upgraded from v{R.randint(1, 9)}.{R.randint(0, 30)}.{R.randint(0, 20)} to v{R.randint(1, 9)}.{R.randint(0, 30)}.{R.randint(0, 20)}",
    lambda: f"pinned numpy=={R.randint(1, 2)}.{R.randint(20, 30)}.{R.randint(0, 9)} and torch=={R.randint(1, 2)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
    lambda: f"agent version v{R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)} deployed",
    lambda: f"Windows build 10.0.{R.randint(17000, 22999)}.{R.randint(100, 3000)} detected",
    lambda: f"timestamp 2024-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}.{R.randint(100, 999)}Z",
    lambda: f"started at {R.randint(2020, 2026)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d} {R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d} UTC",
    lambda: f"epoch_ns={R.randint(1_700_000_000_000_000_000, 1_760_000_000_000_000_000)}",
    lambda: f"The subscription costs ${R.randint(1, 999)}.{R.randint(10, 99)} per month, or €{R.randint(1000, 9999)}.00 a year",
    lambda: f"input_tokens={R.randint(100, 200000)} output_tokens={R.randint(10, 8000)} total {R.randint(1000, 300000)}",
    lambda: f"Used {R.randint(1000, 999999):,} tokens across {R.randint(2, 90)} calls",
    lambda: f"card ending in {R.randint(1000, 9999)} was declined",
    lambda: f"test number {luhn_broken('4', 16)} fails the checksum",
    lambda: "reference " + " ".join(n[i:i + 4] for n in [luhn_broken("5", 16)] for i in range(0, 16, 4)),
    lambda: f"account {iban(valid=False)} (checksum wrong)",
    lambda: f"SKU {R.choice(['DE', 'FR', 'GB'])}{R.randint(10, 99)}-{R.randint(1000, 9999)}-{R.choice(string.ascii_uppercase)}",
    lambda: f"ISBN 978-{R.randint(0, 9)}-{R.randint(10, 99)}-{R.randint(100000, 999999)}-{R.randint(0, 9)}",
    lambda: f"coordinates {R.uniform(-80, 80):.4f}, {R.uniform(-170, 170):.4f}",
    lambda: f"listening on localhost:{R.randint(1024, 65000)} and 0.0.0.0:{R.randint(1024, 65000)}",
    lambda: f"git commit {rand('0123456789abcdef', 40)}",
    lambda: f"sha256:{rand('0123456789abcdef', 64)}",
    lambda: "retina assets icon@2x.png and logo@3x.webp are missing",
    lambda: f"npm i @types/node@{R.randint(18, 22)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
    lambda: "the task-runner and desk-booking services use sk-learn style pipelines",
    lambda: f"Ask-{rand(string.ascii_letters, 12)} prompt template v{R.randint(1, 9)}",
    lambda: f"temperature 0.{R.randint(0, 9)}, top_p 0.9{R.randint(0, 9)}, max_tokens {R.randint(256, 4096)}",
    lambda: f"latency p95 {R.randint(100, 9999)}.{R.randint(0, 99)} ms over {R.randint(1000, 99999)} requests",
    lambda: f"file /var/data/{R.randint(2020, 2026)}/{R.randint(1, 12):02d}/batch-{R.randint(100000, 999999)}.parquet",
    lambda: f"SSN field left blank; ticket {R.randint(100, 999)}-{R.randint(10, 99)}-{R.randint(1000, 9999)}-A",
    lambda: f"Zip code {R.randint(10000, 99999)}, apartment {R.randint(1, 999)}",
    lambda: f"date {R.randint(1, 12):02d}/{R.randint(1, 28):02d}/{R.randint(2019, 2026)} at {R.randint(0, 23):02d}:{R.randint(0, 59):02d}",
    lambda: f"model gpt-4o-2024-08-06 with seed {R.randint(10**8, 10**9)}",
    lambda: f"HTTP {R.choice([200, 404, 429, 500, 503])} after {R.randint(1, 60)}.{R.randint(0, 999):03d} s",
    lambda: f"the jwt library eyJ-parser {R.randint(1, 9)}.{R.randint(0, 9)} decodes headers",
    lambda: f"balance {R.randint(1, 99)},{R.randint(100, 999)},{R.randint(100, 999)}.{R.randint(10, 99)} USD",
    lambda: f"phone field is empty; call count {R.randint(1, 400)}",
]


def chat_messages(text: str, role: str) -> str:
    system = {"role": "system", "parts": [{"type": "text", "content": "You are a helpful support agent for Acme."}]}
    msg = {"role": role, "parts": [{"type": "text", "content": text}]}
    if role == "assistant":
        msg["finish_reason"] = "stop"
        return json.dumps([msg])
    return json.dumps([system, msg])


def wrap(text: str) -> tuple[str, str]:
    """A realistic payload around a sentence: (attribute key, value)."""
    form = R.choice(["input_messages", "output_messages", "tool_args", "tool_result", "exception",
                     "status", "input_value", "output_value", "plain"])
    if form == "input_messages":
        return "gen_ai.input.messages", chat_messages(text, "user")
    if form == "output_messages":
        return "gen_ai.output.messages", chat_messages(text, "assistant")
    if form == "tool_args":
        return "gen_ai.tool.call.arguments", json.dumps(
            {"query": text, "limit": R.randint(1, 50), "include_archived": R.random() < 0.5})
    if form == "tool_result":
        return "gen_ai.tool.call.result", json.dumps(
            {"status": "ok", "results": [{"id": R.randint(1, 10**6), "snippet": text}]})
    if form == "exception":
        return "event:exception.message", f"ValueError: could not process request: {text}"
    if form == "status":
        return "status_message", f"tool call failed: {text}"
    if form == "input_value":
        return "input.value", json.dumps({"messages": [{"role": "user", "content": text}]})
    if form == "output_value":
        return "output.value", text
    return "user.note", text


HAND_WRITTEN: list[tuple[str, list[list[str]]]] = [
    # written by hand, not tuned on: harder formats and look-alikes
    ("Customer wrote: 'reach me at JANE.DOE@EXAMPLE.COM or 415 555 2671'",
     [["EMAIL_ADDRESS", "JANE.DOE@EXAMPLE.COM"], ["PHONE_NUMBER", "415 555 2671"]]),
    ("SSN on file: 536 22 8145 (spaces, as typed)", [["US_SSN", "536 22 8145"]]),
    ("amex 3782 822463 10005 for the team offsite", [["CREDIT_CARD", "3782 822463 10005"]]),
    ("mailto:o.haddad+support@sub.mail.example.co.uk?subject=refund",
     [["EMAIL_ADDRESS", "o.haddad+support@sub.mail.example.co.uk"]]),
    ("Tel.: +49 (0)30 901820 – Zentrale", [["PHONE_NUMBER", "+49 (0)30 901820"]]),
    ("X-Forwarded-For: 203.0.113.195, 70.41.3.18", [["IP_ADDRESS", "203.0.113.195"],
                                                   ["IP_ADDRESS", "70.41.3.18"]]),
    ("IBAN: GB82WEST12345698765432 (sort code 12-34-56)", [["IBAN_CODE", "GB82WEST12345698765432"]]),
    ("curl -H 'Authorization: token ghp_16C7e42F292c6912E7710c838347Ae178B4a' api.github.com",
     [["SECRET", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"]]),
    ("STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc", [["SECRET", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"]]),
    ("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE",
     [["SECRET", "AKIAIOSFODNN7EXAMPLE"]]),
    ("Visa 4012888888881881 declined, retrying with 5105105105105100",
     [["CREDIT_CARD", "4012888888881881"], ["CREDIT_CARD", "5105105105105100"]]),
    ("ring +1-212-555-0147 ext. 12", [["PHONE_NUMBER", "+1-212-555-0147"]]),
    ("Server at [2001:db8:85a3::8a2e:370:7334]:443 refused", [["IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334"]]),
    ("FR76 3000 6000 0112 3456 7890 189 is the company account",
     [["IBAN_CODE", "FR76 3000 6000 0112 3456 7890 189"]]),
    ("Build 2024.06.01.1832 passed all 1,284 tests in 93.5 s", []),
    ("Connected to 127.0.0.1:5432 (postgres 16.3)", []),
    ("Version 1.2.3.4 of the SDK drops Python 3.8", []),
    ("Order 4111-1111 was split into 2 shipments", []),
    ("Processed 4,111,111,111 tokens this quarter for $12,345.67", []),
    ("uuid 550e8400-e29b-41d4-a716-446655440000 and 6ba7b810-9dad-11d1-80b4-00c04fd430c8", []),
    ("trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7", []),
    ("span 5312345678901234 has 3 children", []),
    ("price list: 19.99, 29.99, 149.00 and 1999.00 EUR", []),
    ("Deadline 2025-03-14 09:26:53.589 +0100", []),
    ("Use the @decorator pattern: @app.get('/users/{id}')", []),
    ("RFC 3339 says 1985-04-12T23:20:50.52Z is valid", []),
    ("matrix shape 1024x768x3, batch 64, lr 3e-4", []),
    ("Ticket JIRA-40213 blocks PR #8812", []),
    ("PO box 12345, Building 7, floor 3", []),
    ("Tracking number 1Z999AA10123456784 is in transit", []),
]


def main() -> None:
    lines = []
    for text, entities in HAND_WRITTEN:
        key, value = wrap(text)
        lines.append({"key": key, "value": value, "entities": entities})
    categories = list(GENERATORS)
    for i in range(175):  # positives: each category ~25 times
        category = categories[i % len(categories)]
        x = GENERATORS[category]()
        sentence = R.choice(POSITIVE_SENTENCES[category]).format(x=x)
        if category == "SECRET" and i % 4 == 0:  # an AWS secret key: found by its label only
            x = rand(ALNUM + "/+", 40)
            sentence = R.choice(["aws_secret_access_key = {x}", "AWS_SECRET_ACCESS_KEY={x}",
                                 '"aws_secret_key": "{x}"']).format(x=x)
        entities = [[category, x]]
        if R.random() < 0.3:  # a second entity of another category
            other = R.choice([c for c in categories if c != category])
            y = GENERATORS[other]()
            sentence += " " + R.choice(POSITIVE_SENTENCES[other]).format(x=y)
            entities.append([other, y])
        if R.random() < 0.3:  # and a look-alike next to it
            sentence += " " + R.choice(NEGATIVES)()
        key, value = wrap(sentence)
        lines.append({"key": key, "value": value, "entities": entities})
    for _ in range(160):  # negatives: look-alikes only
        sentence = R.choice(NEGATIVES)()
        if R.random() < 0.4:
            sentence += " " + R.choice(NEGATIVES)()
        key, value = wrap(sentence)
        lines.append({"key": key, "value": value, "entities": []})
    R.shuffle(lines)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    print(f"{len(lines)} strings -> {OUT}")


if __name__ == "__main__":
    main()
