"""The usage page: the user's plan, limits, seeding rules and what they used, with the last 30 days of
metering."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import policy_required
from billing.models import Plan, UpgradeRequest, UsageDay
from billing.presentation import plan_card, seeding_rules, usage_meters
from billing.services import current_plan, request_upgrade, usage_summary
from config.errors import DomainError
from config.formatting import human_bytes

HISTORY_DAYS = 30


def transfer_by_day(user, today: dt.date) -> dict[str, list]:
    """Every day of this month so far (missing days are zero): the usage page's transfer chart."""
    first = today.replace(day=1)
    rows = {d.day: d for d in UsageDay.objects.filter(user=user, day__gte=first, day__lte=today)}
    days = [first + dt.timedelta(days=i) for i in range((today - first).days + 1)]
    return {
        "t": [int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) for d in days],
        "downloaded": [rows[d].bytes_downloaded if d in rows else 0 for d in days],
        "delivered": [rows[d].bytes_delivered if d in rows else 0 for d in days],
    }


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
        "transfer_chart": transfer_by_day(request.user, timezone.localdate()),
    })


@policy_required
def plans(request: HttpRequest) -> HttpResponse:
    """Every plan with its limits; the user's own is marked, the others offer an upgrade request."""
    current = current_plan(request.user)
    pending = set(UpgradeRequest.objects.filter(user=request.user, status=UpgradeRequest.Status.OPEN)
                  .values_list("plan_id", flat=True))
    return render(request, "billing/plans.html", {
        "nav": "plans",
        "plans": [{**plan_card(plan, current=plan.pk == current.pk), "pending": plan.pk in pending}
                  for plan in Plan.objects.order_by("id")],
    })


@policy_required
@require_POST
def upgrade(request: HttpRequest, pk: int) -> HttpResponse:
    """The Plans page's "Request" button: the answer shows as a toast (Django messages) on the Plans page."""
    plan = get_object_or_404(Plan, pk=pk)
    try:
        request_upgrade(request.user, plan)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Request sent: an operator will move you to the {plan.name} plan.")
    return redirect("billing:plans")
