"""Request id in and out, and one JSON access-log line per request (with download tokens masked)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from config.logging import client_ip_var, request_id_var

_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Signed download links carry their credential in the path: never log it.
_TOKEN_PATH = re.compile(r"^/d/([a-z])/[^/]+/")
_SHARE_PATH = re.compile(r"^/s/[^/]+(/|$)")  # public share links (streaming/shares.py)

access_log = logging.getLogger("flotilla.access")


def loggable_path(path: str) -> str:
    return _SHARE_PATH.sub(r"/s/[token]\1", _TOKEN_PATH.sub(r"/d/\1/[token]/", path))


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        # REMOTE_ADDR only: behind a proxy, daphne --proxy-headers puts the client address there.
        ip_token = client_ip_var.set(request.META.get("REMOTE_ADDR", ""))
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            access_log.info(
                "%s %s %s", request.method, loggable_path(request.path), response.status_code,
                extra={"status": response.status_code, "duration_ms": round((time.monotonic() - started) * 1000, 1),
                       "ip": client_ip_var.get(),
                       "user_id": getattr(getattr(request, "user", None), "pk", None)},
            )
        finally:
            request_id_var.reset(token)
            client_ip_var.reset(ip_token)
        return response
