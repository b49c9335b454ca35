"""The interface every torrent-server client implements, the one torrent shape they return, one error type.

A client talks to one server. Each method is one remote request where the server's API allows it (a
listing of every torrent is always one request: Transmission `torrent-get`, rTorrent `d.multicall2`,
qBittorrent `torrents/info`); `calls` counts the requests actually sent, logins and handshakes included.
"""

from __future__ import annotations

import contextlib
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from config.logging import mask_secrets

HASH_RE = re.compile(r"[0-9a-f]{40}")
log = logging.getLogger(__name__)


class State(StrEnum):
    """A torrent's state, the same words for every server type."""

    METADATA = "metadata"  # a magnet still fetching its metadata
    CHECKING = "checking"
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    SEEDING = "seeding"
    STOPPED = "stopped"
    ERROR = "error"


class ClientError(Exception):
    """A server could not do what was asked. `permanent`: retrying will not help (bad credentials, a torrent
    the server refuses); otherwise transient (timeout, server down). `message` is meant for the user."""

    def __init__(self, message: str, *, code: str = "server_error", permanent: bool = False):
        # The message is shown, stored and logged: a library's text quoted in it may hold a URL's secrets.
        message = mask_secrets(message)
        super().__init__(message)
        self.message, self.code, self.permanent = message, code, permanent


class TorrentNotFound(ClientError):
    def __init__(self, message: str = "The server has no torrent with this hash."):
        super().__init__(message, code="torrent_not_found", permanent=True)


@dataclass(frozen=True)
class TorrentFile:
    index: int
    path: str  # relative to the torrent's save path ("<name>/<sub path>" for a folder torrent)
    size: int
    done: int


@dataclass
class Torrent:
    """One torrent on a server, normalised. Sizes and counters in bytes, rates in bytes/s, times in seconds."""

    hash: str  # v1 info-hash, lowercase hex
    name: str
    state: State
    progress: float  # 0.0 to 1.0 of the wanted size
    size: int  # wanted bytes (0 while the metadata is unknown)
    done: int  # wanted bytes downloaded and verified
    uploaded: int
    ratio: float
    download_rate: int
    upload_rate: int
    eta: int | None
    peers: int
    seeds: int
    seeding_time: int | None
    save_path: str
    has_metadata: bool = True
    error: str = ""
    added_at: int | None = None  # unix time
    files: list[TorrentFile] | None = field(default=None)

    @property
    def complete(self) -> bool:
        """Every wanted byte is there and verified (whatever the state: a finished torrent may be stopped).
        Not while the server checks the data: rTorrent re-hashes a torrent once it completes, and its byte
        count starts over meanwhile."""
        return self.has_metadata and self.size > 0 and self.done >= self.size and self.state != State.CHECKING

    def as_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "files"}
        data["state"] = str(self.state)
        data["complete"] = self.complete
        if self.files is not None:
            data["files"] = [vars(f) for f in self.files]
        return data


@dataclass(frozen=True)
class PieceLayout:
    """Where a torrent's files lie in its byte stream, for reading verified pieces of one file while the
    server downloads it: every file in torrent order (unwanted ones too: they still take their bytes)."""

    save_path: str
    piece_length: int
    files: list[TorrentFile]


@dataclass(frozen=True)
class ServerInfo:
    version: str
    latency_ms: float


def url_host(host: str) -> str:
    """The host as it goes into a URL: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def normalize_hash(value: str) -> str:
    value = (value or "").strip().lower()
    if not HASH_RE.fullmatch(value):
        raise ClientError(f"Not a v1 info-hash: {value[:50]!r}.", code="invalid_hash", permanent=True)
    return value


@contextlib.contextmanager
def unusable_settings() -> Iterator[None]:
    """Settings saved before they were validated (an older row, the admin) can make a library raise something
    other than its connection errors (a host label of 252 characters, credentials outside Latin-1): a
    permanent ClientError, so a caller reports this server and goes on with the others."""
    try:
        yield
    except ClientError:
        raise
    except (ValueError, UnicodeError, TypeError) as exc:
        log.warning("server settings unusable", extra={"error": type(exc).__name__}, exc_info=True)
        raise ClientError(f"The server's connection settings cannot be used ({type(exc).__name__}): check the "
                          "host, port and credentials.", code="server_settings", permanent=True) from exc


def clamp_eta(seconds: int | float | None, *, infinite: int | None = None) -> int | None:
    """None for 'unknown'/'never' (each server has its own sentinel), else whole seconds."""
    if seconds is None or seconds < 0 or (infinite is not None and seconds >= infinite):
        return None
    return int(seconds)


class TorrentClient(ABC):
    """One server's torrents. Not thread-safe: one client per thread (servers.clients.connect hands them out)."""

    kind: str = ""

    def __init__(self) -> None:
        self.calls = 0

    @abstractmethod
    def list(self, hashes: Sequence[str] | None = None, *, with_files: bool = False) -> list[Torrent]:
        """Every torrent (or those of `hashes`), in ONE request; files only when asked (may cost a request
        per torrent on servers whose listing has no files)."""

    def get(self, info_hash: str, *, with_files: bool = True) -> Torrent:
        found = self.list([normalize_hash(info_hash)], with_files=with_files)
        if not found:
            raise TorrentNotFound()
        return found[0]

    @abstractmethod
    def add_torrent(self, data: bytes, *, download_dir: str = "", paused: bool = False) -> None:
        """Add a .torrent (its bytes). Adding a torrent the server already has is not an error."""

    @abstractmethod
    def add_magnet(self, magnet: str, *, download_dir: str = "", paused: bool = False) -> None: ...

    def add_url(self, url: str, *, download_dir: str = "", paused: bool = False) -> None:
        """Flotilla fetches the URL itself (SSRF rules in downloads.fetch) and sends the bytes or the magnet."""
        from downloads import fetch

        fetched = fetch.fetch_torrent(url)
        if fetched.magnet:
            self.add_magnet(fetched.magnet, download_dir=download_dir, paused=paused)
        else:
            self.add_torrent(fetched.data, download_dir=download_dir, paused=paused)

    @abstractmethod
    def start(self, info_hash: str) -> None: ...

    @abstractmethod
    def stop(self, info_hash: str) -> None: ...

    @abstractmethod
    def remove(self, info_hash: str, *, delete_data: bool) -> None:
        """Remove the torrent from the server, with or without its downloaded files."""

    def keep_seeding(self, info_hash: str) -> None:  # noqa: B027 - rTorrent has no per-torrent stop limits
        """Turn the server's own stop limits (seed ratio, idle time, seeding time) off for this torrent, so it
        never stops itself: a private tracker's rules decide when it may stop, not the server's defaults."""

    def piece_layout(self, info_hash: str) -> PieceLayout | None:
        """The torrent's piece size and files, if this server reports piece state (else None: streaming
        then plays completed files only)."""
        return None

    def piece_states(self, info_hash: str) -> list[bool]:
        """Which of the torrent's pieces are downloaded and verified (one request)."""
        raise ClientError("This server does not report piece state.", code="server_unsupported", permanent=True)

    def piece_hashes(self, info_hash: str) -> list[bytes] | None:
        """Every piece's SHA-1, if the server hands them out (qBittorrent); None otherwise."""
        return None

    def stream_first(self, info_hash: str, file_index: int) -> None:  # noqa: B027 - optional
        """Ask the server to fetch this file first and in playing order (best effort)."""

    @abstractmethod
    def check(self) -> ServerInfo:
        """Log in if needed and ask for the server's version; raises ClientError when that fails."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
