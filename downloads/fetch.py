"""Fetching a .torrent by URL for a user, without letting the URL reach what the user must not reach.

Flotilla fetches the URL itself and hands the bytes (or the magnet) to the job's backend, whatever it is (so
a private tracker's link works even when a remote server or Seedr could not reach it). The URL is the
user's, so it is treated as hostile (SSRF):
- only http and https;
- the host is resolved here and every address it resolves to is checked: loopback, private, link-local
  (cloud metadata at 169.254.169.254), unique-local, multicast, reserved and unspecified addresses are
  refused unless the operator allows them (`TORRENT_URL_ALLOW_INTERNAL`, or named networks in
  `TORRENT_URL_ALLOWED_NETWORKS`);
- the connection goes to the address that was checked (no second lookup a DNS rebinding could answer
  differently), with the original host name for the Host header and TLS (SNI and certificate check);
- redirects are followed by hand, at most `TORRENT_URL_MAX_REDIRECTS`, each target checked the same way;
  a redirect to a `magnet:` link is the answer itself (some indexers do that);
- the body is capped at `TORRENT_MAX_BYTES` (Content-Length first, then while reading);
- `TORRENT_URL_TIMEOUT` bounds each connection and read.

Used by every way of adding by URL (the jobs API and dialog through `downloads.services.add_url`, the
servers' torrents API). The servers' own addresses follow the same rules (`servers.addresses`, which imports
`check_target` from here; the spine never imports the servers app).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from config.errors import DomainError

ALLOWED_SCHEMES = {"http", "https"}
USER_AGENT = "Flotilla (+torrent fetch)"


class FetchRefused(DomainError):
    """A URL Flotilla will not fetch, or whose answer it will not use."""

    code = "url_refused"


@dataclass(frozen=True)
class Fetched:
    data: bytes = b""
    magnet: str = ""
    url: str = ""


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.TORRENT_URL_ALLOWED_NETWORKS]


def is_internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything that is not a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchRefused(f"The host '{host[:100]}' does not resolve.", code="url_unresolvable") from exc
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def check_target(host: str, port: int, *, allow_internal: bool, what: str = "This address"):
    """Resolve `host` and refuse it if any of its addresses is internal (unless allowed); returns the first."""
    addresses = resolve(host, port)
    if not addresses:
        raise FetchRefused(f"The host '{host[:100]}' does not resolve.", code="url_unresolvable")
    if not allow_internal:
        networks = _allowed_networks()
        for address in addresses:
            if is_internal(address) and not any(address in net for net in networks):
                raise FetchRefused(f"{what} points to an internal address ({address}); this server does not allow "
                                   "that.", code="url_internal", http_status=400)
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # SNI + certificate for the name


def fetch_torrent(url: str) -> Fetched:
    """GET a .torrent (or the magnet an indexer redirects to) under the rules above."""
    allow_internal = settings.TORRENT_URL_ALLOW_INTERNAL
    for _ in range(settings.TORRENT_URL_MAX_REDIRECTS + 1):
        if url.lower().startswith("magnet:"):
            return Fetched(magnet=url, url=url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise FetchRefused("Only http and https links can be fetched.", code="url_scheme")
        if not parts.hostname:
            raise FetchRefused("The link has no host.", code="url_invalid")
        if parts.username or parts.password:
            raise FetchRefused("Links with credentials in them are not fetched.", code="url_invalid")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise FetchRefused("The link's port is not valid.", code="url_invalid") from exc
        address = check_target(parts.hostname, port, allow_internal=allow_internal, what="The link")
        status, location, body = _get(scheme, parts.hostname, port, str(address), _target(parts))
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        if status != 200:
            raise FetchRefused(f"The link answered HTTP {status}.", code="url_http_error", http_status=502)
        return Fetched(data=body, url=url)
    raise FetchRefused("The link redirects too many times.", code="url_redirects")


def _target(parts) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def _get(scheme: str, host: str, port: int, address: str, target: str) -> tuple[int, str, bytes]:
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, address, settings.TORRENT_URL_TIMEOUT)
    limit = settings.TORRENT_MAX_BYTES
    try:
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "application/x-bittorrent, */*"})
        response = conn.getresponse()
        if response.status in (301, 302, 303, 307, 308):
            return response.status, response.getheader("Location", ""), b""
        length = response.getheader("Content-Length")
        # isascii: str.isdigit() also accepts "²", which int() refuses; a lying header is capped while reading.
        if length and length.isascii() and length.isdigit() and int(length) > limit:
            raise FetchRefused(f"The file is larger than {limit} bytes.", code="url_too_large")
        body = response.read(limit + 1)
        if len(body) > limit:
            raise FetchRefused(f"The file is larger than {limit} bytes.", code="url_too_large")
        return response.status, "", body
    except (OSError, http.client.HTTPException) as exc:
        raise FetchRefused(f"The link could not be fetched ({type(exc).__name__}).", code="url_unreachable",
                           http_status=502) from exc
    finally:
        conn.close()
