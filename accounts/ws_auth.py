"""Websocket auth by API key (headers `Authorization: Token …` / `X-Api-Key`) for non-browser clients.

Browsers authenticate with their session cookie (AuthMiddlewareStack runs first); a key, when present,
wins. Keys are not accepted in the query string: URLs end up in logs.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

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
