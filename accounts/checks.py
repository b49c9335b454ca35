"""System checks for the accounts settings: a rate limit that does not parse fails at startup, not at the
first sign-up."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from accounts.throttle import parse_rate

RATE_SETTINGS = (
    "RATE_LIMIT_REGISTER_IP", "RATE_LIMIT_PASSWORD_RESET_EMAIL", "RATE_LIMIT_PASSWORD_RESET_IP",
    "RATE_LIMIT_VERIFY_RESEND_EMAIL", "RATE_LIMIT_VERIFY_RESEND_IP", "RATE_LIMIT_WS_CONNECT_IP",
    "RATE_LIMIT_WS_CONNECT_USER",
)


@register()
def check_rate_limits(app_configs, **kwargs):
    problems = []
    for name in RATE_SETTINGS:
        try:
            parse_rate(getattr(settings, name))
        except ValueError as exc:
            problems.append(Error(f"{name}: {exc}.", id="accounts.E001"))
    return problems
