"""Compliance evidence reports: the controls in force and their evidence, per framework.

A report is a JSON document (``report_format`` 1) and its HTML rendering (one printable
page, no external resources). It names the audit-chain head it was built from (``seq`` and
``hash``) and carries a ``digest`` (SHA-256 of its canonical JSON without the digest), so
an auditor can later check both that the file was not edited and that the installation's
audit chain still holds that entry with that hash (:func:`verify_report`,
``mentatctl governance report verify``).

Controls and their article/criterion references are data
(``governance/frameworks.toml``); each control is judged from the evidence sections it
names (:mod:`mentatlab.governance.evidence`): ``in_force`` when every judged section is in
force, ``partial`` when some are, ``not_in_force`` when none is, ``not_available`` when
this build has none of them. ``erasure`` and ``decisions`` are evidence only (not judged).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

from mentatlab import __version__
from mentatlab.errors import ValidationError
from mentatlab.governance import evidence
from mentatlab.storage.base import SpanStore

if TYPE_CHECKING:
    from mentatlab.settings import Settings
    from mentatlab.storage.control import ControlStore

__all__ = ["FRAMEWORKS", "REPORT_FORMAT", "ReportCheck", "build_report", "frameworks",
           "parse_period", "render_html", "report_digest", "verify_report"]

REPORT_FORMAT = 1
"""Version of the report's JSON layout."""
FRAMEWORKS = ("gdpr", "eu-ai-act", "soc2")
"""Frameworks a report can be built for (keys of ``frameworks.toml``)."""
_EVIDENCE_ONLY = frozenset({"erasure", "decisions"})


@cache
def frameworks() -> dict[str, Any]:
    """The shipped control mapping: ``{framework: {"title", "controls": [...]}}``."""
    text = resources.files("mentatlab.governance").joinpath("frameworks.toml").read_text()
    return tomllib.loads(text)


def parse_period(text: str) -> tuple[datetime, datetime]:
    """``<start>..<end>`` (ISO-8601 dates or times; UTC when no offset; end exclusive).

    A date-only end means the end of that day (``2026-01-01..2026-03-31`` covers March 31).

    Raises:
        ValidationError: (field ``period``) not two times, or start not before end.
    """
    start_text, sep, end_text = text.partition("..")
    if not sep or not start_text or not end_text:
        raise ValidationError("period", f"Expected <start>..<end>, got {text!r}")
    try:
        start = datetime.fromisoformat(start_text)
        end = datetime.fromisoformat(end_text)
    except ValueError as exc:
        raise ValidationError("period", f"Expected ISO-8601 times, got {text!r}: {exc}"
                              ) from None
    if len(end_text) == 10:  # a date: through the end of that day
        end += timedelta(days=1)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if start >= end:
        raise ValidationError("period", f"Expected start before end, got {text!r}")
    return start.astimezone(UTC), end.astimezone(UTC)


def report_digest(report: dict[str, Any]) -> str:
    """SHA-256 (hex) of the report's canonical JSON.

    Sorted keys, no spaces; without ``digest`` and the API envelope's ``ok``.
    """
    body = {k: v for k, v in report.items() if k not in ("digest", "ok")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _status(sections: list[str], evidence_sections: dict[str, dict[str, Any]]) -> str:
    judged = [evidence_sections[s] for s in sections if s not in _EVIDENCE_ONLY]
    if not judged:
        available = any(evidence_sections[s].get("available", True) for s in sections)
        return "evidence" if available else "not_available"
    usable = [s for s in judged if s.get("available", True)]
    if not usable:
        return "not_available"
    in_force = [bool(s.get("in_force")) for s in usable]
    if all(in_force) and len(usable) == len(judged):
        return "in_force"
    return "partial" if any(in_force) else "not_in_force"


def build_report(framework: str, period: tuple[datetime, datetime], *, settings: Settings,
                 store: SpanStore, control: ControlStore, org_id: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """Build the report of ``framework`` over ``period`` for one org (or the installation).

    Args:
        framework: one of :data:`FRAMEWORKS`.
        period: ``(start, end)``, UTC, end exclusive: the window of the counted evidence
            (decisions, findings, erasures, audit entries); settings are as of now.
        settings: the server's settings.
        store: the span store.
        control: the control store.
        org_id: one org's report; None: the whole installation.
        now: the build time (default: the current time, UTC).

    Returns:
        The report as a JSON-ready dict with its ``digest``.

    Raises:
        ValidationError: (field ``framework``) an unknown framework.
        StoreError: a store failed.
    """
    mapping = frameworks().get(framework)
    if mapping is None:
        raise ValidationError("framework", f"Expected one of {list(FRAMEWORKS)}, got "
                              f"{framework!r}")
    chain = evidence.read_audit_chain(control, period, org_id)  # first: the head it is built on
    columns = evidence.span_columns(store)
    audit = {**chain, "available": True, "in_force": chain["intact"]}
    decisions = {
        "available": True,
        "policy_decisions": evidence.read_policy_decisions(store, period, org_id, columns),
        "pii_findings": evidence.read_pii_findings(store, period, org_id, columns),
    }
    sections: dict[str, dict[str, Any]] = {
        "retention": evidence.read_retention(settings, control, org_id),
        "pii": evidence.read_pii_mode(settings, org_id),
        "encryption": evidence.read_encryption(settings, store, control),
        "policies": evidence.read_policies(control, org_id),
        "access": evidence.read_access(settings, control, org_id),
        "audit": audit,
        "erasure": evidence.read_erasures(control, period, org_id),
        "decisions": decisions,
    }
    controls = [{
        "id": c["id"], "title": c["title"], "references": list(c["references"]),
        "sections": list(c["sections"]), "status": _status(list(c["sections"]), sections),
    } for c in mapping["controls"]]
    report: dict[str, Any] = {
        "report_format": REPORT_FORMAT,
        "framework": framework,
        "framework_title": mapping["title"],
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "mentatlab_version": __version__,
        "period": {"start": period[0].isoformat(), "end": period[1].isoformat()},
        "org_id": org_id,
        "audit_chain": {"head_seq": chain["head_seq"], "head_hash": chain["head_hash"]},
        "controls": controls,
        "sections": sections,
    }
    report["digest"] = report_digest(report)
    return report


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mentatlab.governance", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)


def render_html(report: dict[str, Any], *, nonce: str | None = None) -> str:
    """The report as one printable HTML page (inline CSS, no scripts, no external links).

    Args:
        report: from :func:`build_report`.
        nonce: the CSP nonce of the response serving it (its ``<style>`` carries it).
    """
    return _environment().get_template("report.html").render(
        report=report, nonce=nonce, json_text=json.dumps(report, indent=1, sort_keys=True))


@dataclass(frozen=True, slots=True)
class ReportCheck:
    """What :func:`verify_report` found: ``problems`` empty when the report checks out."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def verify_report(report: dict[str, Any], control: ControlStore) -> ReportCheck:
    """Check a report against itself and the installation's audit chain.

    1. its ``digest`` matches its content (the file was not edited);
    2. the audit entry at ``audit_chain.head_seq`` has ``audit_chain.head_hash`` (the report
       was built from this chain, and the chain up to there was not rewritten);
    3. the chain verifies as a whole (``mentatctl audit verify``).

    Raises:
        ValidationError: (field ``report``) not a MentatLab report.
        StoreError: the control store failed.
    """
    try:
        head_seq = int(report["audit_chain"]["head_seq"])
        head_hash = str(report["audit_chain"]["head_hash"])
        digest = str(report["digest"])
    except (KeyError, TypeError, ValueError):
        raise ValidationError("report", "Expected a MentatLab compliance report (JSON with "
                              "audit_chain and digest)") from None
    problems: list[str] = []
    notes: list[str] = []
    if report_digest(report) != digest:
        problems.append("digest: the report's content does not match its digest (edited)")
    if head_seq == 0:
        notes.append("the report was built from an empty audit log")
    else:
        found = control.audit.entries(all_orgs=True, before_seq=head_seq + 1, limit=1)
        if not found or found[0].seq != head_seq:
            # trimmed by retention at a (signed) checkpoint, which `verify` below accepts
            # as the chain's new start; only a checkpoint at that very seq still holds
            # the hash to compare with
            same = [c for c in control.audit.checkpoints() if c.seq == head_seq]
            if same and same[0].hash != head_hash:
                problems.append(f"audit_chain: the checkpoint at {head_seq} has hash "
                                f"{same[0].hash}, the report says {head_hash}")
            elif not same:
                notes.append(f"audit entry {head_seq} is no longer in the log (trimmed by "
                             "retention): the report's head cannot be matched any more; "
                             "compare it with a checkpoint kept outside")
        elif found[0].hash != head_hash:
            problems.append(f"audit_chain: entry {head_seq} has hash {found[0].hash}, the "
                            f"report says {head_hash}")
    chain = control.audit.verify()
    if not chain.ok:
        problems.append(f"audit_chain: the audit log does not verify ({len(chain.problems)} "
                        "problems; run `mentatctl audit verify`)")
    return ReportCheck(tuple(problems), tuple(notes))
