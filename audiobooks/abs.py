"""Audiobookshelf's API, the one call we make: ask a library to scan after a book was published.

`POST /api/libraries/:id/scan` with the user's API token (Bearer); 200 starts a scan in the background, 401 a
bad token, 403 a token of a non-admin user, 404 an unknown library (advplyr/audiobookshelf ApiRouter and
LibraryController). The watcher usually sees the rename anyway; the scan is for NFS/SMB mounts it misses.
"""

from __future__ import annotations

import httpx
from django.conf import settings

ANSWERS = {401: "the API token was refused", 403: "the token's user is not an admin",
           404: "no such library"}


class AbsError(Exception):
    pass


def request_scan(base_url: str, token: str, library_id: str) -> str:
    """Start a scan; returns a short status for the page, raises AbsError with why it did not."""
    url = f"{base_url.rstrip('/')}/api/libraries/{library_id}/scan"
    try:
        response = httpx.post(url, headers={"Authorization": f"Bearer {token}"},
                              timeout=settings.AUDIOBOOK_ABS_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise AbsError(f"Audiobookshelf unreachable: {exc.__class__.__name__}") from exc
    if response.status_code == 200:
        return "scan requested"
    raise AbsError(f"Audiobookshelf answered {response.status_code}: "
                   f"{ANSWERS.get(response.status_code, response.text[:100])}")
