"""Tracker-compliance alerts, computed at the end of each compliance sweep from what it stored.

Conditions (thresholds are fields of the tracker's rules):
- session_expired: the indexer's last call failed with `session_expired` and nothing succeeded since;
- ratio_near_floor: the account's ratio < ratio_floor + ratio_margin;
- unsatisfied_near_limit: the unsatisfied count >= the account's limit - unsatisfied_margin;
- inactive_unsatisfied: a complete torrent the tracker does not count as satisfied has not been seen seeding
  for inactive_after (not reported by its client, or its counter stood still) — hit-and-run risk.

One open `TrackerAlert` per (subject, kind): raised when the condition starts, its message kept current, cleared
when it ends. A job's alert raised or cleared is also a message on the job's timeline (its page redraws the
alert panel on it). Each raise is mailed once to the user it concerns (claimed with a conditional UPDATE, so two
sweeps never mail twice; a failed send is tried again by the next sweep). Nothing here is audited: alerts are
machine-written, no user acted. Messages carry no secret (no cookie, no passkey, no tracker error text)."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from downloads import events
from downloads.models import EventKind, Job
from indexers.models import Indexer

from .models import SeedingLedger, TrackerAccount, TrackerAlert, TrackerRules

log = logging.getLogger(__name__)
Kind = TrackerAlert.Kind
SESSION_EXPIRED = "session_expired"
RAISED, CLEARED = "tracker_alert", "tracker_alert_cleared"  # codes of the job events


@dataclass(frozen=True)
class Condition:
    subject: str
    kind: str
    message: str
    user_id: int | None
    job_id: int | None = None
    indexer_id: int | None = None


# --- what the sweep stored says -------------------------------------------------------------------------------


def session_state(indexer: Indexer, account: TrackerAccount | None) -> str:
    """"expired" (the last failure was an expired session and nothing worked since), "ok" (a call worked) or
    "unknown" (never checked)."""
    worked = max((t for t in (indexer.last_success_at, account.ok_at if account else None) if t), default=None)
    if indexer.last_error_code == SESSION_EXPIRED and not (
            worked and indexer.last_failure_at and worked > indexer.last_failure_at):
        return "expired"
    return "ok" if worked else "unknown"


def tracker_account(indexer: Indexer) -> TrackerAccount | None:
    try:
        return indexer.tracker_account
    except TrackerAccount.DoesNotExist:
        return None


def account_conditions(indexer: Indexer, rules: TrackerRules) -> list[Condition]:
    subject, found = f"indexer:{indexer.pk}", []

    def add(kind: str, message: str) -> None:
        found.append(Condition(subject, kind, message, indexer.owner_id, indexer_id=indexer.pk))

    if session_state(indexer, tracker_account(indexer)) == "expired":
        add(Kind.SESSION_EXPIRED, f"The {rules.name} session of your indexer “{indexer.name}” expired: searches, "
                                  "grabs and compliance checks stop until you create a new session on the tracker "
                                  "and paste it into the indexer.")
    account = indexer.account_status or {}
    ratio = account.get("ratio")
    if isinstance(ratio, (int, float)) and rules.ratio_floor and ratio < rules.ratio_floor + rules.ratio_margin:
        add(Kind.RATIO_NEAR_FLOOR, f"Your {rules.name} ratio ({indexer.name}) is {ratio:.2f}, near the floor of "
                                   f"{rules.ratio_floor:.2f}: new downloads wait unless they are freeleech.")
    count, limit = account.get("unsatisfied"), account.get("unsatisfied_limit")
    if isinstance(count, int) and isinstance(limit, int) and limit > 0 and count >= limit - rules.unsatisfied_margin:
        add(Kind.UNSATISFIED_NEAR_LIMIT, f"{count} of your {limit} unsatisfied {rules.name} torrents ({indexer.name}) "
                                         "are in use: new downloads wait until one is satisfied.")
    return found


def inactive_condition(ledger: SeedingLedger, rules: TrackerRules, now: dt.datetime) -> Condition | None:
    if not ledger.inactive(rules, now):
        return None
    job = ledger.job
    seeded, needed = ledger.seeded_seconds / 3600, rules.min_seed_time.total_seconds() / 3600
    if ledger.hit_and_run(rules, now):
        text = (f"“{job.name}” is not seeding and its {rules.seed_window.days}-day window ended before it was "
                f"satisfied ({seeded:.1f} of {needed:.0f} h): {rules.name} counts it as a hit and run. Seed it again "
                "to clear it.")
    else:
        ends = ledger.window_ends_at(rules)
        text = (f"“{job.name}” has not been seen seeding for over {_hours(rules.inactive_after)} while "
                f"{rules.name} does not count it as satisfied ({seeded:.1f} of {needed:.0f} h seeded, window ends "
                f"{ends:%Y-%m-%d %H:%M} UTC): hit-and-run risk. Check that it seeds in its client.")
    return Condition(f"job:{job.pk}", Kind.INACTIVE_UNSATISFIED, text, job.user_id, job_id=job.pk)


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{delta.total_seconds() / 60:g} min"


def conditions(now: dt.datetime) -> list[Condition]:
    """Every condition that holds now: two queries for the accounts, one for the ledgers."""
    rules = {r.tracker: r for r in TrackerRules.objects.filter(enabled=True)}
    found: list[Condition] = []
    for indexer in Indexer.objects.filter(kind__in=list(rules), enabled=True).select_related("tracker_account"):
        found += account_conditions(indexer, rules[indexer.kind])
    unsatisfied = (SeedingLedger.objects.filter(tracker__in=list(rules), released_at__isnull=True)
                   .exclude(satisfied_at__isnull=False, tracker_satisfied_at__isnull=False).select_related("job"))
    for ledger in unsatisfied:
        condition = inactive_condition(ledger, rules[ledger.tracker], now)
        if condition:
            found.append(condition)
    return found


# --- stored: raised, kept current, cleared ---------------------------------------------------------------------


def evaluate(now: dt.datetime | None = None) -> dict[str, int]:
    """Raise, update and clear the stored alerts to match the conditions; mail the new ones."""
    now = now or timezone.now()
    found = {(c.subject, c.kind): c for c in conditions(now)}
    stored = {(a.subject, a.kind): a for a in TrackerAlert.objects.open()}
    cleared = 0
    for key, alert in stored.items():
        if key in found:
            continue
        with transaction.atomic():
            if TrackerAlert.objects.filter(pk=alert.pk, cleared_at__isnull=True).update(cleared_at=now):
                cleared += 1
                _tell_job(alert.job_id, CLEARED, alert.kind, f"{alert.get_kind_display()}: cleared.")
    raised = 0
    for key, condition in found.items():
        alert = stored.get(key)
        if alert is None:
            raised += _raise(condition, now)
        elif alert.message != condition.message:
            TrackerAlert.objects.filter(pk=alert.pk).update(message=condition.message)
    return {"alerts_raised": raised, "alerts_cleared": cleared, "alerts_mailed": mail_pending(now)}


def _raise(condition: Condition, now: dt.datetime) -> int:
    try:
        with transaction.atomic():
            alert = TrackerAlert.objects.create(user_id=condition.user_id, job_id=condition.job_id,
                                                indexer_id=condition.indexer_id, subject=condition.subject,
                                                kind=condition.kind, message=condition.message[:500], raised_at=now)
            _tell_job(alert.job_id, RAISED, alert.kind, f"{alert.get_kind_display()}: {alert.message}")
    except IntegrityError:
        return 0  # another sweep raised it at the same moment: one open alert per (subject, kind)
    log.info("tracker alert raised", extra={"subject": condition.subject, "kind": condition.kind})
    return 1


def _tell_job(job_id: int | None, code: str, kind: str, text: str) -> None:
    """A job's alert raised or cleared: a message on the job's timeline, which its page also takes as the cue to
    redraw its alert panel (static/js/job_alerts.js). In the alert's transaction: both or neither."""
    job = Job.objects.filter(pk=job_id).only("pk", "user_id").first() if job_id else None
    if job is not None:
        events.emit(job, EventKind.MESSAGE, code, {"alert": kind, "text": text[:500]})


# --- mail ------------------------------------------------------------------------------------------------------


def mail_pending(now: dt.datetime) -> int:
    """Mail each open alert not yet mailed to its user (one mail per raise). Returns mails sent."""
    pending = (TrackerAlert.objects.open().filter(emailed_at__isnull=True, user__isnull=False, user__is_active=True)
               .exclude(Q(user__email="") | Q(user__email__isnull=True)).select_related("user"))
    sent = 0
    for alert in pending:
        if not TrackerAlert.objects.filter(pk=alert.pk, emailed_at__isnull=True).update(emailed_at=now):
            continue  # another sweep claimed it
        if _send(alert):
            sent += 1
        else:
            TrackerAlert.objects.filter(pk=alert.pk).update(emailed_at=None)  # the next sweep tries again
    return sent


def _send(alert: TrackerAlert) -> bool:
    site = settings.SITE_URL.rstrip("/")
    context = {"alert": alert, "kind": alert.get_kind_display(), "page_url": site + reverse("audiobooks:list"),
               "job_url": site + reverse("downloads:job_detail", args=[alert.job_id]) if alert.job_id else ""}
    subject = render_to_string("audiobooks/email/alert_subject.txt", context).strip()
    body = render_to_string("audiobooks/email/alert_body.txt", context)
    try:
        send_mail(subject, body, None, [alert.user.email])
    except (OSError, smtplib.SMTPException):
        log.exception("could not mail a tracker alert", extra={"alert": alert.pk, "user_id": alert.user_id})
        return False
    return True
