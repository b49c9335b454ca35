"""The usage page: the user's plan, limits, seeding rules and what they used, with the last 30 days of
metering."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import policy_required
from billing.models import UsageDay
from billing.presentation import seeding_rules, usage_meters
from billing.services import current_plan, usage_summary
from config.formatting import human_bytes

HISTORY_DAYS = 30


@policy_required
def usage(request: HttpRequest) -> HttpResponse:
    days = UsageDay.objects.filter(user=request.user).order_by("-day")[:HISTORY_DAYS]
    rows = [
        {
            "day": day.day,
            "downloaded": human_bytes(day.bytes_downloaded),
            "delivered": human_bytes(day.bytes_delivered),
            "jobs": day.jobs_created,
        }
        for day in days
    ]
    return render(request, "billing/usage.html", {
        "nav": "usage",
        "usage": usage_meters(usage_summary(request.user)),
        "days": rows,
        "seeding_rules": seeding_rules(current_plan(request.user), idle_minutes=settings.SEED_IDLE_MINUTES),
    })
