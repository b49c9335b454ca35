"""A user's torrent server may sit on an internal address only when the operator allows it
(`SERVERS_ALLOW_INTERNAL`); the address rules themselves are the URL fetcher's (tests/downloads/test_fetch.py)."""

from __future__ import annotations

import pytest

from servers.addresses import check_server_address
from servers.clients.base import ClientError
from servers.models import TorrentServer


def test_servers_on_internal_addresses_follow_the_operator_setting(settings):
    settings.SERVERS_ALLOW_INTERNAL = False
    for server in (TorrentServer(type="transmission", host="127.0.0.1", port=9091),
                   TorrentServer(type="rtorrent", transport="scgi", socket_path="/run/rtorrent.sock")):
        with pytest.raises(ClientError) as refused:
            check_server_address(server)
        assert refused.value.permanent and refused.value.code == "server_address"


def test_servers_on_internal_addresses_pass_when_the_operator_allows_them(settings):
    settings.SERVERS_ALLOW_INTERNAL = True
    check_server_address(TorrentServer(type="transmission", host="127.0.0.1", port=9091))
