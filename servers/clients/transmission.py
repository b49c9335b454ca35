"""Transmission over its JSON RPC, through the `transmission-rpc` library.

The library's client asks for the session (`session-get`, after the 409 session-id handshake) when it is
built; it is built lazily on the first call so that a bad server fails inside our error mapping.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence

import requests
import transmission_rpc
from transmission_rpc.error import (
    TransmissionAuthError,
    TransmissionConnectError,
    TransmissionError,
    TransmissionTimeoutError,
)

from servers.clients.base import (
    ClientError,
    PieceLayout,
    ServerInfo,
    State,
    Torrent,
    TorrentClient,
    TorrentFile,
    TorrentNotFound,
    clamp_eta,
    normalize_hash,
    unusable_settings,
    url_host,
)

# transmission-rpc logs the request URL, credentials included, at DEBUG: its own logger, never below WARNING.
RPC_LOG = logging.getLogger("flotilla.servers.transmission_rpc")
RPC_LOG.setLevel(logging.WARNING)
FIELDS = ["hashString", "name", "status", "error", "errorString", "percentDone", "sizeWhenDone",
          "leftUntilDone", "uploadedEver", "uploadRatio", "rateDownload", "rateUpload", "eta", "peersConnected",
          "peersSendingToUs", "secondsSeeding", "downloadDir", "metadataPercentComplete", "addedDate"]
FILE_FIELDS = ["files"]
# Transmission status numbers (RPC spec): stopped, check wait, check, download wait, download, seed wait, seed.
STATES = {0: State.STOPPED, 1: State.CHECKING, 2: State.CHECKING, 3: State.QUEUED, 4: State.DOWNLOADING,
          5: State.QUEUED, 6: State.SEEDING}
SEQUENTIAL_RPC_VERSION = 18  # Transmission 4.1.0: torrent-set `sequential_download`
LOCAL_ERROR = 3  # error 1 and 2 are tracker warnings/errors: the torrent still runs


class TransmissionClient(TorrentClient):
    kind = "transmission"

    def __init__(self, *, host: str, port: int, tls: bool = False, path: str = "", username: str = "",
                 password: str = "", timeout: float = 10.0) -> None:
        super().__init__()
        self._options = {"protocol": "https" if tls else "http", "host": url_host(host), "port": port,
                         "path": path or "/transmission/rpc", "username": username or None,
                         "password": password or None, "timeout": timeout, "logger": RPC_LOG}
        self._client: transmission_rpc.Client | None = None

    # --- plumbing -------------------------------------------------------------------------------------------

    def _rpc(self) -> transmission_rpc.Client:
        if self._client is None:
            self._client = _CountingClient(self, **self._options)
        return self._client

    def _call(self, func, *args, **kwargs):
        try:
            with unusable_settings():
                return func(self._rpc(), *args, **kwargs)
        except TransmissionAuthError as exc:
            raise ClientError("Transmission refused the username or password.", code="server_auth",
                              permanent=True) from exc
        except TransmissionTimeoutError as exc:
            raise ClientError("Transmission did not answer in time.", code="server_timeout") from exc
        except TransmissionConnectError as exc:
            raise ClientError("Cannot connect to Transmission (is it running, and is the address right?).",
                              code="server_unreachable") from exc
        except TransmissionError as exc:
            refused = "Query failed with result" in str(exc)  # Transmission answered: it refused the request
            raise ClientError(f"Transmission refused the request: {str(exc)[:200]}",
                              code="server_refused" if refused else "server_error", permanent=refused) from exc
        except requests.RequestException as exc:
            raise ClientError(f"Transmission connection failed: {type(exc).__name__}.",
                              code="server_unreachable") from exc

    # --- the interface --------------------------------------------------------------------------------------

    def list(self, hashes: Sequence[str] | None = None, *, with_files: bool = False) -> list[Torrent]:
        ids = [normalize_hash(h) for h in hashes] if hashes is not None else None
        if ids == []:
            return []
        fields = FIELDS + (FILE_FIELDS if with_files else [])
        torrents = self._call(lambda c: c.get_torrents(ids=ids, arguments=fields))
        return [_torrent(t.fields, with_files) for t in torrents]

    def add_torrent(self, data: bytes, *, download_dir: str = "", paused: bool = False) -> None:
        self._call(lambda c: c.add_torrent(data, download_dir=download_dir or None, paused=paused))

    def add_magnet(self, magnet: str, *, download_dir: str = "", paused: bool = False) -> None:
        self._call(lambda c: c.add_torrent(magnet, download_dir=download_dir or None, paused=paused))

    def _exists(self, info_hash: str) -> str:
        info_hash = normalize_hash(info_hash)
        if not self._call(lambda c: c.get_torrents(ids=[info_hash], arguments=["id"])):
            raise TorrentNotFound()
        return info_hash

    def start(self, info_hash: str) -> None:
        info_hash = self._exists(info_hash)  # Transmission ignores unknown ids silently
        self._call(lambda c: c.start_torrent(info_hash))

    def stop(self, info_hash: str) -> None:
        info_hash = self._exists(info_hash)
        self._call(lambda c: c.stop_torrent(info_hash))

    def remove(self, info_hash: str, *, delete_data: bool) -> None:
        info_hash = self._exists(info_hash)
        self._call(lambda c: c.remove_torrent(info_hash, delete_data=delete_data))

    def keep_seeding(self, info_hash: str) -> None:
        info_hash = normalize_hash(info_hash)
        # Mode 2 = unlimited, whatever the session's seedRatioLimited / idle-seeding-limit say.
        self._call(lambda c: c.change_torrent(info_hash, seed_ratio_mode=2, seed_idle_mode=2))

    def piece_layout(self, info_hash: str) -> PieceLayout | None:
        info_hash = normalize_hash(info_hash)
        found = self._call(lambda c: c.get_torrents(ids=[info_hash], arguments=[
            "hashString", "pieceSize", "downloadDir", "files", "metadataPercentComplete"]))
        if not found:
            raise TorrentNotFound()
        f = found[0].fields
        files = [TorrentFile(i, x["name"], int(x["length"]), int(x["bytesCompleted"]))
                 for i, x in enumerate(f.get("files") or [])]
        if f.get("metadataPercentComplete", 1) < 1 or not files or int(f.get("pieceSize") or 0) <= 0:
            return None
        return PieceLayout(save_path=f.get("downloadDir") or "", piece_length=int(f["pieceSize"]), files=files)

    def piece_states(self, info_hash: str) -> list[bool]:
        info_hash = normalize_hash(info_hash)
        found = self._call(lambda c: c.get_torrents(ids=[info_hash], arguments=["hashString", "pieces",
                                                                                "pieceCount"]))
        if not found:
            raise TorrentNotFound()
        f = found[0].fields
        return pieces_of(f.get("pieces") or "", int(f.get("pieceCount") or 0))

    def stream_first(self, info_hash: str, file_index: int) -> None:
        """The file at high priority; sequential download too where the daemon has it (4.1+, RPC 18)."""
        info_hash = self._exists(info_hash)
        extra = {"sequential_download": True} if self._call(lambda c: c.rpc_version) >= SEQUENTIAL_RPC_VERSION else {}
        self._call(lambda c: c.change_torrent(info_hash, priority_high=[file_index], **extra))

    def check(self) -> ServerInfo:
        started = time.monotonic()
        session = self._call(lambda c: c.get_session())
        return ServerInfo(version=f"Transmission {session.version}",
                          latency_ms=round((time.monotonic() - started) * 1000, 1))

    def close(self) -> None:
        if self._client is not None:
            self._client._http_session.close()
            self._client = None


class _CountingClient(transmission_rpc.Client):
    """Counts every HTTP request (the session-id handshake and the constructor's session-get included)."""

    def __init__(self, owner: TransmissionClient, **options) -> None:
        self._owner = owner  # set before the base constructor: it already sends requests
        super().__init__(**options)

    def _http_query(self, query, timeout=None):
        hooks = self._http_session.hooks["response"]
        if self._counted not in hooks:
            hooks.append(self._counted)
        return super()._http_query(query, timeout)

    def _counted(self, response: requests.Response, *args, **kwargs) -> None:
        self._owner.calls += 1


def _torrent(f: dict, with_files: bool) -> Torrent:
    has_metadata = f.get("metadataPercentComplete", 1) >= 1
    size = int(f.get("sizeWhenDone") or 0) if has_metadata else 0
    left = int(f.get("leftUntilDone") or 0)
    state = STATES.get(f.get("status"), State.DOWNLOADING)
    if not has_metadata and state == State.DOWNLOADING:
        state = State.METADATA
    if f.get("error") == LOCAL_ERROR:
        state = State.ERROR
    files = None
    if with_files and has_metadata:
        files = [TorrentFile(i, x["name"], int(x["length"]), int(x["bytesCompleted"]))
                 for i, x in enumerate(f.get("files") or [])]
    return Torrent(
        hash=f["hashString"].lower(), name=f.get("name") or "", state=state,
        progress=float(f.get("percentDone") or 0) if has_metadata else 0.0, size=size,
        done=max(0, size - left) if has_metadata else 0, uploaded=int(f.get("uploadedEver") or 0),
        ratio=max(0.0, float(f.get("uploadRatio") or 0)), download_rate=int(f.get("rateDownload") or 0),
        upload_rate=int(f.get("rateUpload") or 0), eta=clamp_eta(f.get("eta")),
        peers=int(f.get("peersConnected") or 0), seeds=int(f.get("peersSendingToUs") or 0),
        seeding_time=int(f.get("secondsSeeding") or 0), save_path=f.get("downloadDir") or "",
        has_metadata=has_metadata, error=f.get("errorString") or "", added_at=f.get("addedDate") or None,
        files=files,
    )


def pieces_of(encoded: str, count: int) -> list[bool]:
    """Transmission's `pieces`: a base64 bitfield, the first piece in the high bit of the first byte."""
    try:
        bits = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ClientError("Transmission sent an unreadable piece bitfield.", code="server_error") from None
    return [len(bits) > i >> 3 and bool(bits[i >> 3] & (0x80 >> (i & 7))) for i in range(count)]


__all__ = ["TorrentNotFound", "TransmissionClient", "pieces_of"]
