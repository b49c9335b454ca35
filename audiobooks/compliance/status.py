"""What the Audiobooks page and API show of tracker compliance: each book's seeding state (Flotilla's clock and the
tracker's), the user's tracker accounts (ratio, class, unsatisfied n / limit, session) and open alerts. Reads
only; every query is scoped to the user."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Prefetch
from django.utils import timezone

from audiobooks.models import AudiobookJob
from downloads.models import Job
from indexers.models import Indexer

from .alerts import session_state, tracker_account
from .models import SeedingLedger, TrackerAlert, TrackerRules


def enabled_rules() -> dict[str, TrackerRules]:
    return {r.tracker: r for r in TrackerRules.objects.filter(enabled=True)}


def books_of(user):
    """The user's books with what their tracker state needs, flat: ledger and source joined, open alerts in one
    more query."""
    return (AudiobookJob.objects.for_user(user)
            .select_related("job", "job__seeding_ledger", "job__indexer_source__indexer")
            .prefetch_related(open_alerts_prefetch("job__")).order_by("-id"))


def open_alerts_prefetch(prefix: str = "") -> Prefetch:
    """A job's open alerts as `job.open_tracker_alerts` (one query for a whole page)."""
    return Prefetch(f"{prefix}tracker_alerts", queryset=TrackerAlert.objects.open().order_by("-raised_at", "-id"),
                    to_attr="open_tracker_alerts")


def _ledger(job: Job) -> SeedingLedger | None:
    try:
        return job.seeding_ledger
    except SeedingLedger.DoesNotExist:
        return None


def book_state(job: Job, rules: dict[str, TrackerRules], now: dt.datetime | None = None) -> dict | None:
    """A tracker job's seeding state; None for a job no enabled tracker rules govern. Needs `job.seeding_ledger`
    and `job.indexer_source.indexer` loaded (select_related) to stay flat."""
    ledger = _ledger(job)
    source = getattr(job, "indexer_source", None)  # a missing reverse one-to-one is an AttributeError
    kind = ledger.tracker if ledger else (source.indexer.kind if source and source.indexer else "")
    tracker = rules.get(kind)
    if tracker is None:
        return None
    now = now or timezone.now()
    needed = int(tracker.min_seed_time.total_seconds())
    if ledger is None:
        return {"tracker": tracker.tracker, "tracker_name": tracker.name, "seeded_seconds": 0,
                "needed_seconds": needed, "window_ends_at": None, "ratio": None, "clock_satisfied_at": None,
                "tracker_satisfied_at": None, "satisfied": False, "hit_and_run": False, "inactive": False,
                "released_at": None, "checked_at": None}
    return {"tracker": tracker.tracker, "tracker_name": tracker.name, "seeded_seconds": ledger.seeded_seconds,
            "needed_seconds": needed, "window_ends_at": ledger.window_ends_at(tracker), "ratio": ledger.ratio,
            "clock_satisfied_at": ledger.satisfied_at, "tracker_satisfied_at": ledger.tracker_satisfied_at,
            "satisfied": ledger.satisfied, "hit_and_run": ledger.hit_and_run(tracker, now),
            "inactive": ledger.inactive(tracker, now), "released_at": ledger.released_at,
            "checked_at": ledger.checked_at}


def accounts(user) -> list[dict]:
    """The user's own indexers of trackers with rules, with what the tracker last said about the account. The
    operator's shared indexers are the operator's account: not shown to users. One query."""
    rules = enabled_rules()
    rows = []
    for indexer in (Indexer.objects.owned_by(user).filter(kind__in=list(rules))
                    .select_related("tracker_account").order_by("name", "id")):
        account, check = indexer.account_status or {}, tracker_account(indexer)
        rows.append({
            "indexer": indexer.pk, "name": indexer.name, "tracker_name": rules[indexer.kind].name,
            "enabled": indexer.enabled, "ratio": account.get("ratio"), "ratio_floor": rules[indexer.kind].ratio_floor,
            "class": account.get("class") or "", "unsatisfied": account.get("unsatisfied"),
            "unsatisfied_limit": account.get("unsatisfied_limit"),
            "session": session_state(indexer, check),
            "checked_at": check.checked_at if check else None})
    return rows


def user_alerts(user) -> list[TrackerAlert]:
    return list(TrackerAlert.objects.for_user(user).open())


def tracker_status(user) -> dict:
    """The Audiobooks page's tracker panel: accounts and open alerts."""
    return {"accounts": accounts(user), "alerts": user_alerts(user)}


def job_alerts(job: Job) -> list[TrackerAlert]:
    """Open alerts of one job (the job page: the view already checked the job is the user's)."""
    return list(TrackerAlert.objects.open().filter(job=job, user_id=job.user_id))


def open_counts() -> list[dict]:
    """Open alerts per kind, every kind listed (0 included): the health page. One query."""
    counts = dict(TrackerAlert.objects.open().values_list("kind").annotate(n=Count("id")).order_by())
    return [{"kind": kind, "label": label, "count": counts.get(kind, 0)} for kind, label in TrackerAlert.Kind.choices]
