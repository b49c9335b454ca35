"""Tracker alerts in pages other apps own (the job page, the admin health page), loaded by their templates so the
lower layers never import audiobooks."""

from __future__ import annotations

from django import template

from audiobooks.compliance import status

register = template.Library()


@register.simple_tag
def job_tracker_alerts(job) -> list:
    """The open alerts of a job the page already showed is the user's."""
    return status.job_alerts(job) if job is not None and getattr(job, "pk", None) else []


@register.simple_tag
def tracker_alert_counts() -> list[dict]:
    """Open alerts by kind, for the operator's health page."""
    return status.open_counts()
