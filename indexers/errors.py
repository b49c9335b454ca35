"""The one error type of indexer clients (below the clients and the HTTP layer, so both can raise it)."""

from __future__ import annotations

from config.logging import mask_secrets


class ClientError(Exception):
    """An indexer could not do what was asked. `permanent`: retrying will not help (bad credentials, an expired
    session, an address this Flotilla refuses); otherwise transient (timeout, 5xx, garbage). `message` is meant
    for the user and never carries a secret (masked like every log line)."""

    def __init__(self, message: str, *, code: str = "indexer_error", permanent: bool = False):
        message = mask_secrets(message)
        super().__init__(message)
        self.message, self.code, self.permanent = message, code, permanent
