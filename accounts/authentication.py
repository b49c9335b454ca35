"""API-key authentication for DRF and websockets: `Authorization: Token <key>` or `X-Api-Key: <key>`."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiKey, hash_api_key

# Writing last_used_at on every request would turn reads into writes; once a minute is plenty.
_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def key_from_headers(headers) -> str | None:
    """The raw key from a request's headers (a Django HttpHeaders-like mapping), or None."""
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "token ":
        return auth[6:].strip() or None
    return headers.get("X-Api-Key", "").strip() or None


def user_for_key(raw: str):
    """The active user owning an unrevoked key, or None. Touches last_used_at."""
    api_key = ApiKey.objects.active().select_related("user").filter(key_hash=hash_api_key(raw)).first()
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key.user


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        raw = key_from_headers(request.headers)
        if raw is None:
            return None
        user = user_for_key(raw)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return (user, None)

    def authenticate_header(self, request):
        return self.keyword
