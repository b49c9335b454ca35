"""Which addresses a user's torrent server may have.

The same address rules as adding by URL (`downloads.fetch.check_target`), governed by
`SERVERS_ALLOW_INTERNAL` (on by default: your own servers are usually on your own network).
"""

from __future__ import annotations

from django.conf import settings

from downloads.fetch import FetchRefused, check_target
from servers.clients.base import ClientError


def check_server_address(server) -> None:
    """The servers' own rule: internal addresses and unix sockets only when the operator allows them."""
    if settings.SERVERS_ALLOW_INTERNAL:
        return
    if server.uses_socket:
        raise ClientError("Unix sockets are not allowed for servers on this Flotilla.", code="server_address",
                          permanent=True)
    try:
        check_target(server.host, server.port or 80, allow_internal=False, what="The server's address")
    except FetchRefused as exc:
        raise ClientError(exc.detail, code="server_address", permanent=True) from exc
