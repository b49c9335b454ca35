"""Tracker alerts on the job page (templates/audiobooks/_job_alerts.html, included by downloads' template), loaded
by the template so downloads never imports audiobooks."""

from __future__ import annotations

from django import template

from audiobooks.compliance import status

register = template.Library()


@register.simple_tag
def job_tracker_alerts(job) -> list:
    """The open alerts of a job the page already showed is the user's."""
    return status.job_alerts(job) if job is not None and getattr(job, "pk", None) else []
