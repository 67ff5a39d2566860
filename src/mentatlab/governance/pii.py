"""PII detection over batches of strings: Presidio pattern recognizers behind cheap pre-filters.

:class:`PiiDetector` finds, in each of N strings, the spans of text that are personal data
or secrets, one :class:`Finding` per span (category, offsets, confidence). Categories:

=================  ==========================================================================
``EMAIL_ADDRESS``  Presidio ``EmailRecognizer``; the domain's suffix is checked against
                   tldextract's bundled Public Suffix List snapshot (never fetched)
``PHONE_NUMBER``   Presidio ``PhoneRecognizer`` (python-phonenumbers, leniency VALID): ``+``
                   international formats and the national formats of ``phone_regions``
``CREDIT_CARD``    Presidio ``CreditCardRecognizer`` (Luhn-checked)
``US_SSN``         Presidio ``UsSsnRecognizer`` (its "medium" pattern; invalid area/group/serial
                   numbers refused)
``IBAN_CODE``      Presidio ``IbanRecognizer`` (ISO 13616 mod-97 checksum)
``IP_ADDRESS``     Presidio ``IpRecognizer`` (IPv4, IPv6), minus version strings (``v1.2.3.4``)
``SECRET``         Presidio ``PatternRecognizer`` s of :data:`SECRET_PATTERNS`: OpenAI,
                   Anthropic, AWS, GitHub, Slack, Stripe, Google keys, JWTs, PEM private keys
custom             one ``PatternRecognizer`` per ``pii_custom_entities`` entry (confidence 0.9)
``PERSON``,        only with ``pii_ner_model`` (an installed spaCy pipeline, default none):
``LOCATION``       its named entities (confidence 0.85); every string goes through it
=================  ==========================================================================

By default no NLP model is used: pattern recognizers run with ``nlp_artifacts=None`` (Presidio's
context-word boost needs a model, so scores are the patterns' own). Presidio is imported
when a detector first detects (:meth:`PiiDetector.detect_batch`), never at module import nor
when a detector is built, and not by :meth:`PiiDetector.may_contain` (the pre-filters are
RE2 regexes of pyarrow): it pulls in spaCy (its ``nlp_artifacts`` module imports
``spacy.tokens``, though the pattern recognizers used here never touch a spaCy object),
phonenumbers and tldextract, ~1.5 s and ~90 MiB per process.

Cost (docs/decisions/0017): Presidio's recognizers cost 20–100 µs per 200-character text,
the phone recognizer ~1.7 ms. Each recognizer therefore runs only on strings its
pre-filter (a character test or one compiled regex, ~1 µs) says can hold its entity, and
the phone recognizer only on short windows around digit runs. Equal strings in a batch
(a system prompt repeated in every span) are scanned once.
"""

from __future__ import annotations

import gc
import importlib.util
import ipaddress
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CATEGORIES", "MIN_CONFIDENCE", "SECRET_PATTERNS", "Finding", "PiiDetector"]

CATEGORIES: Final[tuple[str, ...]] = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS",
    "SECRET")
"""Built-in categories (Presidio entity names, plus ``SECRET``)."""
MIN_CONFIDENCE: Final = 0.4
"""Findings scored below this are discarded (Presidio's "very weak" SSN patterns score 0.05)."""
CUSTOM_CONFIDENCE: Final = 0.9
"""Confidence of a custom-entity match."""
NER_CONFIDENCE: Final = 0.85
"""Confidence of a named entity of the optional NER model (Presidio's SpacyRecognizer's)."""
_NER_LABELS: Final = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION",
                      "LOC": "LOCATION", "FAC": "LOCATION"}
"""spaCy labels (OntoNotes and WikiNER schemes) → the Presidio entity names reported."""

SECRET_PATTERNS: Final[tuple[tuple[str, str, float], ...]] = (
    ("PEM private key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:(?s:.)*?-----END "
     r"(?:[A-Z0-9]+ )*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)", 1.0),
    ("Anthropic key", r"\bsk-ant-[a-z]+\d{0,3}-[A-Za-z0-9_\-]{20,}", 1.0),
    ("OpenAI key", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}", 0.95),
    ("AWS access key id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", 0.95),
    ("AWS secret access key", r"(?i:aws_?secret_?(?:access_?)?key\W{0,4})\K"
     r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])", 0.9),
    ("GitHub token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b", 1.0),
    ("GitHub fine-grained token", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b", 1.0),
    ("Slack token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,250}", 1.0),
    ("Slack webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}", 1.0),
    ("Stripe secret key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}\b", 1.0),
    ("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])", 0.95),
    ("JWT", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", 0.95),
)
"""``(name, regex, confidence)`` of the ``SECRET`` recognizer (Python ``regex`` syntax, as
Presidio compiles it); formats from the providers' key documentation and gitleaks' rules."""

_SECRET_PREFILTER = re.compile(
    r"(?:\b(?:sk-|[sr]k_(?:live|test)_|A(?:KIA|SIA|BIA|CCA)|gh[pousr]_|github_pat_|xox[abposr]-"
    r"|hooks\.slack|AIza|eyJ|(?i:aws_?secret))|-----BEGIN)")
"""Key prefixes; ``\b`` first, so the many positions inside words fail at once."""
# digits with the separators numbers are written with; the recognizers decide
_CARD_PREFILTER = re.compile(r"\d(?:[ -]?\d){12,18}")
_SSN_PREFILTER = re.compile(r"\d{3}[- .]\d{2}[- .]\d{4}")
_IBAN_PREFILTER = re.compile(r"[A-Z]{2}\d{2}[ -]?[A-Z0-9]{4}")
_IP_PREFILTER_RE2 = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|::|(?:[0-9A-Fa-f]{1,4}:){4}"
_PHONE_PREFILTER_RE2 = r"\d[\d \t().\-/]{5,24}\d"
"""Texts the phone check looks at: a digit run with separators of 7+ characters ..."""
_PHONE_PREFILTER_RAW_RE2 = r"\d[\d \t().\-/\\]{5,30}\d"
"""... and in raw JSON text, where ``/`` may be written ``\\/`` and a tab ``\\t``."""
_DATE_TIME_RE2 = (r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
                  r"(?:Z|[+-]\d{2}:?\d{2})?\b")
"""ISO 8601 dates and times: never phone numbers (phonenumbers refuses them too), and so
common in telemetry that they would send most texts to the phone check."""


def _phone_mask(column: pa.Array, pattern: str = _PHONE_PREFILTER_RE2) -> pa.Array:
    """Which strings hold a digit run worth the phone check, ISO dates and times aside."""
    return pc.match_substring_regex(
        pc.replace_substring_regex(column, _DATE_TIME_RE2, "D"), pattern)
_PHONE_CANDIDATE = re.compile(r"(?<![A-Za-z0-9_])\+?\(?\d[\d \t().\-/]{5,24}\d(?![A-Za-z0-9_])")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")
_PHONE_MARGIN_CHARS = 12
"""Characters of context kept each side of a digit run handed to phonenumbers (it checks
what surrounds a candidate: a following ``:30`` makes it a time, letters a word)."""
_REFERENCE_BEFORE = re.compile(
    r"(?:#|\b(?i:order|invoice|ref|reference|ticket|case|sku|tracking|po|isbn|serial|build|"
    r"batch|run|job)\b[\s:#.-]*(?i:no\.?|number|id)?[\s:#.-]*)$")
"""A digit run right after this is a reference number, not a phone number."""
_VERSION_BEFORE = re.compile(r"(?:\b[vV]|(?i:version|release|build) |[\w-]==|@)$")
_VERSION_AFTER = re.compile(r"^\.\d")
_CODE_BEFORE = re.compile(r"[A-Za-z0-9]-$")
_CODE_AFTER = re.compile(r"-[A-Za-z0-9]")


@dataclass(frozen=True, slots=True)
class Finding:
    """One span of a string found to be PII: ``text[start:end]`` is ``category``."""

    category: str
    """Presidio entity name (``EMAIL_ADDRESS``...), ``SECRET`` or a custom entity name."""
    start: int
    """Offset of the first character, in characters (Python ``str`` indices)."""
    end: int
    """Offset after the last character."""
    confidence: float
    """Recognizer score, 0 to 1 (1.0: a checksum or validation passed)."""


def _resolve_overlaps(found: list[Finding]) -> list[Finding]:
    """Non-overlapping findings by start: the more confident, then the longer, wins."""
    if len(found) < 2:
        return found
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (-f.confidence, f.start - f.end, f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


class PiiDetector:
    """Finds PII in batches of strings (see the module docstring for the categories).

    Args:
        custom_entities: ``{ENTITY_NAME: regex}`` recognised besides the built-ins.
        phone_regions: ISO 3166 regions whose national phone formats are recognised.
        ner_model: an installed spaCy pipeline (package name or folder) whose named
            entities add ``PERSON`` and ``LOCATION`` findings; empty (default): no NER.

    Raises:
        ImportError: ``presidio-analyzer`` is not installed.
        ConfigError: ``ner_model`` is set but cannot be loaded (it is never downloaded).
    """

    def __init__(self, custom_entities: Mapping[str, str] | None = None,
                 phone_regions: Sequence[str] = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR"),
                 ner_model: str = "") -> None:
        if importlib.util.find_spec("presidio_analyzer") is None:
            raise ImportError("Expected presidio-analyzer to be installed for PII detection")
        self._custom_entities = dict(custom_entities or {})
        self._phone_regions = tuple(phone_regions)
        # (category, pre-filter as an RE2 regex over the batch's column, or as a Python test
        # of one text): a recognizer runs on a text only when its pre-filter says the text
        # can hold its entity. Known now; the recognizers are built on first detection.
        self._prefilters: list[tuple[str, str | Callable[[str], object]]] = [
            ("EMAIL_ADDRESS", "@"),
            ("CREDIT_CARD", _CARD_PREFILTER.pattern),
            ("US_SSN", _SSN_PREFILTER.pattern),
            ("IBAN_CODE", _IBAN_PREFILTER.pattern),
            ("IP_ADDRESS", _IP_PREFILTER_RE2),
            ("SECRET", _SECRET_PREFILTER.pattern),
        ]
        for name, regex in self._custom_entities.items():
            # a custom regex is Python syntax (maybe not RE2's): its own pre-filter
            self._prefilters.append((name, re.compile(regex).search))
        self._nlp = _load_ner(ner_model) if ner_model else None
        self._checks: list[tuple[str, Any, str | Callable[[str], object]]] = []
        self._phones_by_region: list[Any] = []
        self._phone_international: Any = None
        self._build_lock = threading.Lock()

    def _recognizers(self) -> list[tuple[str, Any, str | Callable[[str], object]]]:
        """``(category, recognizer, pre-filter)``: Presidio imported and built on first use.

        Presidio imports spaCy and phonenumbers' metadata (~1.5 s, ~90 MiB per process), so
        a process that never sees a candidate string never pays for them (issue 18).
        """
        if self._checks:
            return self._checks
        with self._build_lock:
            if not self._checks:
                self._build()
        return self._checks

    def _build(self) -> None:
        from presidio_analyzer import Pattern, PatternRecognizer
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )

        email = _offline_email_recognizer(EmailRecognizer)
        secret = PatternRecognizer(
            supported_entity="SECRET", name="SecretRecognizer",
            patterns=[Pattern(name, regex, score) for name, regex, score in SECRET_PATTERNS])
        # leniency 2 (STRICT_GROUPING): the digit groups must be grouped as the region
        # writes numbers, so "#4532-1190-88" or "ORD-2024-118822" are no phone numbers
        # typed Any: Presidio types nlp_artifacts as required, and None is what we pass
        self._phones_by_region = [
            PhoneRecognizer(supported_regions=(region,), leniency=2)
            for region in self._phone_regions]
        self._phone_international = PhoneRecognizer(supported_regions=("US",), leniency=2)
        recognizers: dict[str, Any] = {
            "EMAIL_ADDRESS": email, "CREDIT_CARD": CreditCardRecognizer(),
            "US_SSN": UsSsnRecognizer(), "IBAN_CODE": IbanRecognizer(),
            "IP_ADDRESS": IpRecognizer(), "SECRET": secret}
        for name, regex in self._custom_entities.items():
            recognizers[name] = PatternRecognizer(
                supported_entity=name, name=f"Custom{name}",
                patterns=[Pattern(name, regex, CUSTOM_CONFIDENCE)])
        # assigned last: a non-empty list means every recognizer is built
        self._checks = [(category, recognizers[category], prefilter)
                        for category, prefilter in self._prefilters]
        # Presidio, spaCy and the recognizers live as long as the process: out of the
        # collector's sight, as what start-up built is (pipeline.workers.freeze_heap ran
        # before they were loaded); ~4 us per span of full collections otherwise
        gc.collect()
        gc.freeze()

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category this detector reports (built-ins, then custom entities)."""
        return ("PHONE_NUMBER", *(category for category, _ in self._prefilters))

    def detect(self, text: str) -> list[Finding]:
        """Findings in one string, non-overlapping, sorted by ``start``."""
        return self.detect_batch([text])[0]

    def detect_batch(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings in each of N strings (N lists, in order).

        Equal strings are scanned once. The pre-filters run as RE2 regexes over the column
        of distinct strings (``pyarrow.compute.match_substring_regex``: one vectorised pass
        per category), so a string no pre-filter admits costs no Python work at all.
        """
        distinct = list(dict.fromkeys(texts))
        column = pa.array(distinct, pa.string())
        checks = self._recognizers()
        masks: list[list[bool] | None] = []
        for _, _, prefilter in checks:
            masks.append(pc.match_substring_regex(column, prefilter).to_pylist()
                         if isinstance(prefilter, str) else None)
        phone_mask = _phone_mask(column).to_pylist()
        named = self._named_entities(distinct)
        results: dict[str, list[Finding]] = {}
        for i, text in enumerate(distinct):
            found: list[Finding] = []
            for (category, recognizer, prefilter), mask in zip(checks, masks,
                                                               strict=True):
                if mask[i] if mask is not None else prefilter(text):  # type: ignore[operator]
                    found.extend(
                        Finding(category, r.start, r.end, round(r.score, 2))
                        for r in recognizer.analyze(text, [category], None)
                        if r.score >= MIN_CONFIDENCE)
            if phone_mask[i]:
                found.extend(self._phones(text))
            if named:
                found.extend(named[i])
            results[text] = _resolve_overlaps(
                [f for f in found if not _is_look_alike(text, f)]) if found else []
        return [results[text] for text in texts]

    def may_contain(self, texts: Sequence[str]) -> list[bool]:
        r"""For each of N strings, whether some category's pre-filter admits it (NER: all).

        A cheap gate over raw values (JSON text included: escapes never hide an ``@``, a
        digit or a key prefix, and ``\\/`` counts as a separator): a value it refuses holds
        no finding, so it is neither parsed nor cut into leaves. With custom entities
        (Python regexes, possibly not RE2's) every value is admitted.
        """
        if self._nlp is not None or any(
                not isinstance(prefilter, str) for _, prefilter in self._prefilters):
            return [True] * len(texts)
        column = pa.array(texts, pa.string())
        mask = pc.match_substring_regex(column, self._any_re2)
        admitted: list[bool] = pc.or_(
            mask, _phone_mask(column, _PHONE_PREFILTER_RAW_RE2)).to_pylist()
        return admitted

    def _named_entities(self, texts: list[str]) -> list[list[Finding]]:
        """``PERSON``/``LOCATION`` findings of the NER model, one list per text; [] without."""
        if self._nlp is None:
            return []
        out: list[list[Finding]] = []
        for doc in self._nlp.pipe(texts, batch_size=256):
            out.append([Finding(_NER_LABELS[ent.label_], ent.start_char, ent.end_char,
                                NER_CONFIDENCE) for ent in doc.ents
                        if ent.label_ in _NER_LABELS])
        return out

    @property
    def _any_re2(self) -> str:
        return "|".join(f"(?:{prefilter})" for _, prefilter in self._prefilters
                        if isinstance(prefilter, str))

    def _phones(self, text: str) -> list[Finding]:
        """Phone numbers: phonenumbers runs only on windows around plausible digit runs.

        A run is plausible with 7 to 15 digits, not touching letters or digits (hex ids,
        versions), not a date, not part of a code (``A-…``) and not after a reference word
        (order, ticket…). A run starting with ``+`` carries its country code, so one
        region's matcher finds it; others go through every region of ``phone_regions``.
        """
        found: list[Finding] = []
        covered = -1
        for m in _PHONE_CANDIDATE.finditer(text):
            run = m.group()
            digits = sum(c.isdigit() for c in run)
            start = m.start()
            if not 7 <= digits <= 15 or m.end() <= covered or _DATE.match(run) or \
                    _CODE_BEFORE.search(text, max(0, start - 2), start) or \
                    _REFERENCE_BEFORE.search(text[max(0, start - 24):start]):
                continue
            lo = max(0, start - _PHONE_MARGIN_CHARS)
            hi = min(len(text), m.end() + _PHONE_MARGIN_CHARS)
            recognizers = [self._phone_international] if run[0] == "+" else \
                self._phones_by_region
            for recognizer in recognizers:  # regions in order; the first that finds it wins
                hits = [r for r in recognizer.analyze(text[lo:hi], ["PHONE_NUMBER"], None)
                        if r.score >= MIN_CONFIDENCE and r.end + lo > covered
                        and sum(c.isdigit() for c in text[r.start + lo:r.end + lo]) >= 7]
                for r in hits:
                    found.append(Finding("PHONE_NUMBER", r.start + lo, r.end + lo,
                                         round(r.score, 2)))
                    covered = max(covered, r.end + lo)
                if hits:
                    break
        return found


def _load_ner(name: str) -> Any:
    """The spaCy pipeline ``name`` (an installed package or a folder), never downloaded.

    Raises:
        ConfigError: it is not installed or does not load.
    """
    import spacy

    from mentatlab.errors import ConfigError

    try:
        return spacy.load(name, exclude=["lemmatizer", "parser", "tagger", "attribute_ruler"])
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(
            f"Expected pii_ner_model to name an installed spaCy pipeline or a folder, got "
            f"{name!r} ({exc}); MentatLab never downloads one: install it first, e.g. "
            f"'python -m spacy download en_core_web_sm'") from None


def _is_look_alike(text: str, finding: Finding) -> bool:
    """True when a match is part of something else the recognizer cannot see.

    * an IP address that is a version string (``v1.2.3.4``, ``pkg==1.2.3.4``, ``1.2.3.4.5``)
      or no host's address (``0.0.0.0``, ``::``, loopback, broadcast);
    * an SSN or phone number inside a longer code (``A-123-45-6789``, ``123-45-6789-B``) or
      right after a reference word (``ticket 123-45-6789``, ``order #415 555 2671``).
    """
    category = finding.category
    if category == "IP_ADDRESS":
        before = text[max(0, finding.start - 12):finding.start]
        if _VERSION_BEFORE.search(before) or _VERSION_AFTER.match(text[finding.end:]):
            return True
        try:
            address = ipaddress.ip_address(text[finding.start:finding.end].split("/")[0])
        except ValueError:
            return False
        return address.is_unspecified or address.is_loopback or (
            address.version == 4 and int(address) == 0xFFFFFFFF)
    if category in ("US_SSN", "PHONE_NUMBER"):
        if _CODE_BEFORE.search(text, max(0, finding.start - 2), finding.start) or \
                _CODE_AFTER.match(text, finding.end):
            return True
        return bool(_REFERENCE_BEFORE.search(text[max(0, finding.start - 24):finding.start]))
    return False


def _offline_email_recognizer(base: Any) -> Any:
    """Presidio's EmailRecognizer with the domain suffix checked offline.

    Presidio validates an address with ``tldextract.extract``, whose default extractor
    fetches the Public Suffix List over the network on first use; this one reads only the
    snapshot bundled with tldextract (no fetch, no cache directory).
    """
    import tldextract

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    extractor("example.com")  # loads the snapshot now (~0.5 s), not on the first email

    class OfflineEmailRecognizer(base):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extractor(pattern_text).fqdn)

    return OfflineEmailRecognizer()
