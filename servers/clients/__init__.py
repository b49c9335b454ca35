"""Clients for the user's torrent servers: one module per type, one factory, one error type.

`connect(server)` hands out a client for a `TorrentServer`, reused within the process (a qBittorrent login
or a Transmission session handshake is not repeated every poll) and used by one thread at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator

from django.conf import settings

from servers.clients.base import (
    ClientError,
    ServerInfo,
    State,
    Torrent,
    TorrentClient,
    TorrentFile,
    TorrentNotFound,
    normalize_hash,
    unusable_settings,
)

__all__ = ["ClientError", "ServerInfo", "State", "Torrent", "TorrentClient", "TorrentFile", "TorrentNotFound",
           "build", "connect", "forget", "normalize_hash", "unusable_settings"]

_cache: dict[int, tuple[str, TorrentClient, threading.Lock]] = {}
_cache_lock = threading.Lock()


def build(server) -> TorrentClient:
    """A new client for `server` (a TorrentServer), after checking its address is allowed."""
    from servers.models import ServerType

    timeout = settings.SERVERS_TIMEOUT
    common = {"host": server.host, "port": server.port, "tls": server.use_tls, "path": server.rpc_path,
              "username": server.username, "password": server.password or "", "timeout": timeout}
    if server.type == ServerType.TRANSMISSION:
        from servers.clients.transmission import TransmissionClient

        return TransmissionClient(**common)
    if server.type == ServerType.QBITTORRENT:
        from servers.clients.qbittorrent import QBittorrentClient

        return QBittorrentClient(**common)
    if server.type == ServerType.RTORRENT:
        from servers.clients.rtorrent import RTorrentClient

        return RTorrentClient(transport=server.transport, socket_path=server.socket_path, **common)
    raise ClientError(f"Unknown server type {server.type!r}.", code="server_type", permanent=True)


def _fingerprint(server) -> str:
    parts = [server.type, server.transport, server.host, str(server.port), str(server.use_tls), server.rpc_path,
             server.socket_path, server.username, server.password or ""]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@contextlib.contextmanager
def connect(server) -> Iterator[TorrentClient]:
    """The process's client for this server (rebuilt when its connection settings changed), locked for the
    duration of the block. The address is checked every time (a name may resolve elsewhere tomorrow)."""
    from servers.addresses import check_server_address

    with unusable_settings():
        check_server_address(server)
    key = _fingerprint(server)
    with _cache_lock:
        entry = _cache.get(server.pk)
        if entry is None or entry[0] != key:
            if entry is not None:
                with contextlib.suppress(Exception):
                    entry[1].close()
            with unusable_settings():
                entry = (key, build(server), threading.Lock())
            _cache[server.pk] = entry
    _, client, lock = entry
    with lock:
        yield client


def forget(server_id: int) -> None:
    """Drop a cached client (the server was deleted)."""
    with _cache_lock:
        entry = _cache.pop(server_id, None)
    if entry is not None:
        with contextlib.suppress(Exception):
            entry[1].close()
