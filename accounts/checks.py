"""System checks for the accounts settings: a rate limit that does not parse, or a bot check that cannot
work, fails at startup, not at the first sign-up."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from accounts.botcheck import MODES
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


@register()
def check_bot_check(app_configs, **kwargs):
    """BOT_CHECK must name a known check; Turnstile without its keys would refuse every sign-up."""
    mode = settings.BOT_CHECK
    if mode not in MODES:
        return [Error(f"BOT_CHECK: {mode!r} is not one of {', '.join(MODES)}.", id="accounts.E002")]
    if mode == "turnstile" and not (settings.TURNSTILE_SITE_KEY and settings.TURNSTILE_SECRET_KEY):
        return [Error("BOT_CHECK is 'turnstile' but TURNSTILE_SITE_KEY or TURNSTILE_SECRET_KEY is empty.",
                      hint="Set both keys from the Cloudflare dashboard, or use BOT_CHECK=altcha.",
                      id="accounts.E003")]
    if mode == "altcha" and settings.ALTCHA_COST < 1:
        return [Error(f"ALTCHA_COST must be at least 1 (it is {settings.ALTCHA_COST}).", id="accounts.E004")]
    return []
