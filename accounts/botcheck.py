"""The bot check on registration: ALTCHA (self-hosted proof of work, the default) or Cloudflare Turnstile.

`BOT_CHECK` picks one ("altcha", "turnstile", "off"); `check()` is the one entry point, called before an
account is created, and raises BotCheckFailed (a form error; nothing is created).

ALTCHA (protocol v2, the `altcha` library with the vendored widget, static/vendor/altcha/): the server hands
out a challenge signed with an HMAC key (`ALTCHA_HMAC_KEY`, else derived from SECRET_KEY) that expires after
`ALTCHA_EXPIRY` seconds; the browser searches for a counter whose PBKDF2 key (`ALTCHA_COST` iterations)
starts with a byte 0x00 (256 tries on average). Verifying costs one derivation. A challenge is stateless, so
a solved one could be replayed until it expires: its signature is remembered in the cache until then and a
second use is refused. With several processes, the cache must be shared (Redis) for that to hold.

Turnstile: the widget's token is verified with Cloudflare's siteverify API (POST form `secret`, `response`,
`remoteip`, `idempotency_key`; JSON answer `success`, `error-codes`, `challenge_ts`, `hostname`, `action`,
`cdata`). A token is valid once, for 300 s. A network failure or an unreadable answer is a failed check
with its own message, never a 500; it is retried once with the same idempotency key, which Cloudflare
documents as the safe way to retry a validation.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import altcha
import httpx
from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac

from config.errors import DomainError

logger = logging.getLogger(__name__)

MODES = ("altcha", "turnstile", "off")
ALTCHA_FIELD = "altcha"  # the widget's hidden input
ALTCHA_ALGORITHM = "PBKDF2/SHA-256"  # native in browsers (WebCrypto), the widget's default
ALTCHA_KEY_PREFIX = "00"  # one zero byte: 256 derivations on average
ALTCHA_PAYLOAD_MAX = 4096  # a real payload is ~700 characters; anything far bigger is not worth decoding
TURNSTILE_FIELD = "cf-turnstile-response"  # the widget's hidden input
TURNSTILE_ACTION = "register"  # data-action on the widget, checked in the answer
TURNSTILE_TOKEN_MAX = 2048  # Cloudflare's documented maximum token length
TURNSTILE_TIMEOUT = 10.0
TURNSTILE_ATTEMPTS = 2


class BotCheckFailed(DomainError):
    code = "bot_check_failed"
    http_status = 400


def mode() -> str:
    return settings.BOT_CHECK


def widget_context() -> dict[str, str]:
    """What the registration template needs to render the configured widget."""
    return {"mode": mode(), "turnstile_site_key": settings.TURNSTILE_SITE_KEY, "turnstile_action": TURNSTILE_ACTION}


def check(data: Mapping[str, Any], *, remote_ip: str = "") -> None:
    """Verify the bot check answer in a submitted form (`data` is request.POST); BotCheckFailed if not."""
    current = mode()
    if current == "altcha":
        verify_altcha(str(data.get(ALTCHA_FIELD, "") or ""))
    elif current == "turnstile":
        verify_turnstile(str(data.get(TURNSTILE_FIELD, "") or ""), remote_ip=remote_ip)


# --- ALTCHA -----------------------------------------------------------------------------------------


def altcha_hmac_key() -> str:
    """The configured key, or one derived from SECRET_KEY (rotating SECRET_KEY only voids open challenges)."""
    return settings.ALTCHA_HMAC_KEY or salted_hmac("flotilla.accounts.botcheck", "altcha-hmac-key").hexdigest()


def new_challenge(*, expires_at: int | None = None) -> dict[str, Any]:
    """A signed challenge as the widget fetches it (JSON: `parameters` and `signature`)."""
    if expires_at is None:
        expires_at = int(time.time()) + settings.ALTCHA_EXPIRY
    challenge = altcha.create_challenge(
        ALTCHA_ALGORITHM,
        settings.ALTCHA_COST,
        key_prefix=ALTCHA_KEY_PREFIX,
        expires_at=expires_at,
        hmac_secret=altcha_hmac_key(),
    )
    return challenge.to_dict()


def verify_altcha(payload: str) -> None:
    if not payload:
        raise BotCheckFailed("Please let the bot check finish before creating the account (it needs JavaScript).")
    if len(payload) > ALTCHA_PAYLOAD_MAX:
        raise BotCheckFailed("The bot check answer is not valid. Please try again.")
    try:
        result = altcha.verify_solution(payload, altcha_hmac_key())
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        # Well-formed base64 JSON of the wrong shape can fail past the library's own parsing guard.
        result = None
    if result is not None and result.expired:
        raise BotCheckFailed("The bot check expired. Please submit the form again.")
    if result is None or not result.verified:
        raise BotCheckFailed("The bot check answer is not valid. Please try again.")
    _refuse_replay(payload)


def _refuse_replay(payload: str) -> None:
    """Remember the challenge's signature until it expires; `cache.add` is atomic, so of two concurrent
    submissions of one solution exactly one wins."""
    challenge = altcha.Payload.from_base64(payload).challenge  # verified above, so it parses
    remaining = int(challenge.parameters.expires_at or 0) - int(time.time())
    if not cache.add(f"botcheck:altcha:used:{challenge.signature}", 1, timeout=max(remaining, 0) + 1):
        raise BotCheckFailed("This bot check answer was already used. Please submit the form again.")


# --- Cloudflare Turnstile ------------------------------------------------------------------------------


def verify_turnstile(token: str, *, remote_ip: str = "") -> None:
    if not token:
        raise BotCheckFailed("Please complete the bot check before creating the account (it needs JavaScript).")
    if len(token) > TURNSTILE_TOKEN_MAX:
        raise BotCheckFailed("The bot check answer is not valid. Please try again.")
    form = {"secret": settings.TURNSTILE_SECRET_KEY, "response": token, "idempotency_key": str(uuid.uuid4())}
    if remote_ip:
        form["remoteip"] = remote_ip
    outcome = _siteverify(form)
    if not outcome.get("success"):
        raise BotCheckFailed(_turnstile_failure(outcome.get("error-codes") or []))
    action = outcome.get("action")
    if action and action != TURNSTILE_ACTION:  # a token solved on another page or form of this site key
        raise BotCheckFailed("The bot check answer is not valid. Please try again.")


def _siteverify(form: dict[str, str]) -> dict[str, Any]:
    """POST to siteverify; one retry (same idempotency key) on a transport error or a 5xx."""
    problem = ""
    for _attempt in range(TURNSTILE_ATTEMPTS):
        try:
            response = httpx.post(settings.TURNSTILE_VERIFY_URL, data=form, timeout=TURNSTILE_TIMEOUT)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code >= 500:
            problem = f"HTTP {response.status_code}"
            continue
        try:
            outcome = response.json()
        except ValueError:
            outcome = None
        if isinstance(outcome, dict):
            return outcome
        problem = f"HTTP {response.status_code}, not a JSON object"
        break
    logger.warning("Turnstile siteverify failed (%s); the sign-up is refused", problem)
    raise BotCheckFailed("The bot check could not be verified just now (Cloudflare did not answer). "
                         "Please try again in a moment.")


def _turnstile_failure(codes: list[str]) -> str:
    if {"missing-input-secret", "invalid-input-secret"} & set(codes):
        logger.error("Turnstile refused the secret key (%s): check TURNSTILE_SECRET_KEY", ", ".join(codes))
        return "The bot check is misconfigured on this server. Please tell its operator."
    if "timeout-or-duplicate" in codes:
        return "The bot check expired or was already used. Please complete it again."
    return "The bot check failed. Please try again."

