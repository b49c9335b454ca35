"""The sidebar's plan badge (templates/partials/sidebar.html)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.services import current_plan


def plan_badge(request: HttpRequest) -> dict:
    """Lazy: pages that already show the plan (the usage panel) never run its queries (sidebar.html)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"plan_badge": SimpleLazyObject(lambda: current_plan(user).name)}
