"""Websocket auth by API key (headers `Authorization: Token …` / `X-Api-Key`) for non-browser clients.

Browsers authenticate with their session cookie (AuthMiddlewareStack runs first); a key, when present,
wins. Keys are not accepted in the query string: URLs end up in logs. `browser_origin_validator` checks
the Origin of browser connections and lets header-authenticated clients without one through.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings

from accounts import throttle
from accounts.authentication import key_from_headers, user_for_key


class _Headers(dict):
    def get(self, key, default=""):
        return super().get(key.lower(), default)


class ApiKeyWebsocketMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = _Headers({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])})
        raw = key_from_headers(headers)
        if raw:
            user = await database_sync_to_async(user_for_key)(raw)
            if user is not None:
                scope = dict(scope, user=user)
        return await self.app(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Check the Origin of browser websockets against ALLOWED_HOSTS; let clients that send none through.

    Origin checks stop cross-site websocket hijacking, which rides on the browser's session cookie, and
    browsers always send Origin. Non-browser clients (scripts with an API key) usually send no Origin and
    carry no ambient credentials, so channels' AllowedHostsOriginValidator — which refuses a missing
    Origin — would lock them out for no gain.
    """

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


def browser_origin_validator(app):
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(app, allowed)


async def connect_throttled(scope, user) -> int:
    """Count a websocket connect per client address (every connect, before auth) and per signed-in user
    (RATE_LIMIT_WS_CONNECT_*). Returns 0 when allowed, else the seconds to wait; the consumer then closes
    with 4429. A reconnect storm from a buggy client or a script costs a cache hit, not a relay backlog."""
    client = scope.get("client") or ("",)
    waits = [await throttle.ahit("ws-ip", throttle.client_key(str(client[0] or "")),
                                 throttle.rate("RATE_LIMIT_WS_CONNECT_IP"))]
    if user is not None and user.is_authenticated:
        waits.append(await throttle.ahit("ws-user", str(user.pk), throttle.rate("RATE_LIMIT_WS_CONNECT_USER")))
    return max(waits)
