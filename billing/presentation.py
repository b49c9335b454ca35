"""The usage panel's bars and facts, formatted for the dashboard and the usage page."""

from __future__ import annotations

from billing.models import Plan
from billing.services import UsageSummary
from config.formatting import human_bytes


def _meter(label: str, used: int, limit: int, *, as_bytes: bool = True) -> dict:
    fmt = human_bytes if as_bytes else str
    return {
        "label": label,
        "used": fmt(used),
        "limit": fmt(limit) if limit else "Unlimited",
        "percent": round(min(100.0, 100.0 * used / limit)) if limit else 0,
        "unlimited": not limit,
    }


def usage_meters(summary: UsageSummary) -> dict:
    """The usage panel's bars and facts, formatted; used by the dashboard and the usage page."""
    return {
        "plan": summary.plan,
        "meters": [
            {"key": "storage", **_meter("Storage", summary.storage_used, summary.storage_limit)},
            {"key": "transfer", **_meter("Transfer this month", summary.transfer_this_month, summary.transfer_limit)},
            {"key": "active", **_meter("Active jobs", summary.active_jobs, summary.active_jobs_limit, as_bytes=False)},
        ],
        "max_job_size": human_bytes(summary.max_job_size) if summary.max_job_size else "Unlimited",
        "retention_days": summary.retention_days,
        "allowed_backends": summary.allowed_backends,
    }


def _minutes(minutes: float) -> str:
    whole = int(minutes)
    if minutes != whole:
        return f"{minutes:g} minutes"
    if whole and whole % 60 == 0:
        hours = whole // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{whole} minute{'s' if whole != 1 else ''}"


def seeding_rules(plan: Plan, *, idle_minutes: float) -> list[str]:
    """The plan's seeding rules as sentences (the engine applies them: downloads/engine/config.py)."""
    if not plan.seed_ratio_limit and not plan.seed_time_limit_minutes:
        return ["Your plan does not seed: a download completes as soon as its files are complete."]
    limits = []
    if plan.seed_ratio_limit:
        limits.append(f"its share ratio (uploaded / size) reaches {plan.seed_ratio_limit:g}")
    if plan.seed_time_limit_minutes:
        limits.append(f"it has seeded for {_minutes(plan.seed_time_limit_minutes)}")
    rules = ["After downloading, a torrent seeds (shares with other peers) until " + " or ".join(limits)
             + ", whichever comes first."]
    if idle_minutes:
        rules.append(f"Seeding also ends when no peer has wanted data for {_minutes(idle_minutes)} "
                     "(except for private torrents, whose trackers count seeding time).")
    rules.append("The download shows Completed when seeding ends; its files are available all along.")
    return rules


def plan_card(plan: Plan, *, current: bool) -> dict:
    """One plan on the Plans page: its limits as words (zero means unlimited)."""
    def size(value: int) -> str:
        return human_bytes(value) if value else "Unlimited"

    return {
        "id": plan.pk,
        "name": plan.name,
        "current": current,
        "limits": [
            ("Downloads at once", str(plan.max_active_jobs) if plan.max_active_jobs else "Unlimited"),
            ("Storage", size(plan.max_storage_bytes)),
            ("Largest download", size(plan.max_job_size_bytes)),
            ("Transfer per month", size(plan.monthly_transfer_bytes)),
            ("Files kept", f"{plan.retention_days} days" if plan.retention_days else "Forever"),
            ("Backends", ", ".join(plan.allowed_backends) or "None"),
        ],
    }
