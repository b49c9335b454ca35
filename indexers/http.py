"""Outbound HTTP for indexers: bounded in time and size, checked addresses, redirects by hand.

Address rules: the same checks as adding a .torrent by URL (`downloads.fetch.check_target`): every address a
host resolves to is checked and the connection goes to the checked address (no DNS rebinding). Whether an
indexer may live on an internal address (Jackett on 192.168.x, a feed on loopback) is the operator's choice:
`INDEXERS_ALLOW_INTERNAL` (on by default, like SERVERS_ALLOW_INTERNAL: your own Jackett is usually on your own
network; turn it off on a shared instance) for users' indexers, and always for the operator's shared ones;
`TORRENT_URL_ALLOWED_NETWORKS` is honoured either way. Download links a feed hands out are fetched under the
same rule as the feed itself (Jackett's links point back at Jackett).

Limits: the whole exchange (connect, redirects, every read) ends by `deadline` (a slow-drip server cannot
stall a search); the body is capped at INDEXERS_MAX_RESPONSE_BYTES; at most TORRENT_URL_MAX_REDIRECTS
redirects, and credentials (Cookie, API-key headers) are dropped when a redirect leaves the original host.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

from django.conf import settings

from downloads.fetch import FetchRefused, check_target
from indexers.errors import ClientError

USER_AGENT = "Flotilla (+indexer search)"
SECRET_HEADERS = {"cookie", "authorization", "x-api-key"}
CHUNK = 64 * 1024


@dataclass
class Response:
    status: int
    body: bytes
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    magnet: str = ""  # the request was redirected to a magnet link

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), "")

    def all_headers(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def content_type(self) -> str:
        return self.header("Content-Type").split(";", 1)[0].strip().lower()


class _Pinned(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = self.keep = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self.keep = self._context.wrap_socket(sock, server_hostname=self.host)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ClientError("The indexer did not answer in time.", code="timeout")
    return left


def get(url: str, *, params: dict | list | None = None, headers: dict[str, str] | None = None, deadline: float,
        allow_internal: bool, max_bytes: int | None = None) -> Response:
    """GET `url` (with `params` as its query) under the rules above; never raises anything but ClientError."""
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(params, doseq=True)}"
    headers = {"User-Agent": USER_AGENT, **(headers or {})}
    origin = (urlsplit(url).hostname or "").lower()
    limit = max_bytes or settings.INDEXERS_MAX_RESPONSE_BYTES
    for _ in range(settings.TORRENT_URL_MAX_REDIRECTS + 1):
        if url.lower().startswith("magnet:"):
            return Response(status=200, body=b"", url="", magnet=url)
        parts = urlsplit(url)
        if (parts.hostname or "").lower() != origin:  # never hand a tracker's cookie or key to another host
            headers = {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}
        response = _once(parts, headers, deadline=deadline, allow_internal=allow_internal, limit=limit)
        if response.status in (301, 302, 303, 307, 308) and response.header("Location"):
            url = urljoin(url, response.header("Location"))
            continue
        response.url = url
        return response
    raise ClientError("The indexer redirects too many times.", code="redirect_loop")


def _once(parts, headers: dict[str, str], *, deadline: float, allow_internal: bool, limit: int) -> Response:
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ClientError("Only http and https links can be used.", code="url_invalid", permanent=True)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        address = check_target(parts.hostname, port, allow_internal=allow_internal, what="The indexer's address")
    except FetchRefused as exc:
        raise ClientError(exc.detail, code=exc.code, permanent=exc.code == "url_internal") from exc
    except ValueError as exc:
        raise ClientError("The indexer's URL is not valid.", code="url_invalid", permanent=True) from exc
    cls = _PinnedTLS if scheme == "https" else _Pinned
    conn = cls(parts.hostname, port, str(address), _remaining(deadline))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers=headers)
        conn.keep.settimeout(_remaining(deadline))
        raw = conn.getresponse()
        length = raw.getheader("Content-Length") or ""
        if length.isdigit() and int(length) > limit:
            raise ClientError(f"The indexer's answer is larger than {limit} bytes.", code="too_large")
        body = _read(conn, raw, deadline, limit)
        return Response(status=raw.status, body=body, url="", headers=raw.getheaders())
    except ClientError:
        raise
    except TimeoutError as exc:
        raise ClientError("The indexer did not answer in time.", code="timeout") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ClientError(f"The indexer could not be reached ({type(exc).__name__}).", code="unreachable") from exc
    finally:
        conn.close()


def _read(conn, raw: http.client.HTTPResponse, deadline: float, limit: int) -> bytes:
    """Read in chunks, checking the deadline between them (a server dripping a byte a second ends on time)."""
    chunks, total = [], 0
    while True:
        conn.keep.settimeout(_remaining(deadline))  # kept: http.client drops conn.sock on Connection: close
        chunk = raw.read1(CHUNK) if hasattr(raw, "read1") else raw.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ClientError(f"The indexer's answer is larger than {limit} bytes.", code="too_large")
        chunks.append(chunk)
