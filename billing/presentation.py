"""The usage panel's bars and facts, formatted for the dashboard and the usage page."""

from __future__ import annotations

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
