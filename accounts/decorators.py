"""View decorators for pages that need a signed-in user who accepted the current policy."""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse


def policy_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in and the current acceptable-use policy accepted, else off to the policy page."""

    @functools.wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_accepted_policy:
            return redirect(f"{reverse('accounts:policy')}?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return wrapper
