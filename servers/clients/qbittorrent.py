"""qBittorrent over its Web API, through the `qbittorrent-api` library.

The library logs in on the first request (a cookie session) and again when the session expires. Every
torrent comes from one `torrents/info` request; files are one `torrents/files` request per torrent (the
Web API has no bulk form), asked for only when a job finishes or a user opens one torrent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import qbittorrentapi
import requests
from qbittorrentapi import exceptions as qb_errors

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

ETA_INFINITE = 8640000  # qBittorrent's "never"
STATES = {
    "error": State.ERROR, "missingFiles": State.ERROR,
    "uploading": State.SEEDING, "stalledUP": State.SEEDING, "forcedUP": State.SEEDING, "queuedUP": State.QUEUED,
    "pausedUP": State.STOPPED, "stoppedUP": State.STOPPED, "pausedDL": State.STOPPED, "stoppedDL": State.STOPPED,
    "checkingUP": State.CHECKING, "checkingDL": State.CHECKING, "checkingResumeData": State.CHECKING,
    "moving": State.CHECKING, "metaDL": State.METADATA, "forcedMetaDL": State.METADATA, "queuedDL": State.QUEUED,
    "downloading": State.DOWNLOADING, "stalledDL": State.DOWNLOADING, "forcedDL": State.DOWNLOADING,
    "allocating": State.DOWNLOADING,
}


class QBittorrentClient(TorrentClient):
    kind = "qbittorrent"

    def __init__(self, *, host: str, port: int, tls: bool = False, path: str = "", username: str = "",
                 password: str = "", timeout: float = 10.0) -> None:
        super().__init__()
        base = f"{'https' if tls else 'http'}://{url_host(host)}:{port}{(path or '').rstrip('/')}"
        self._qb = _CountingClient(
            self, host=base, username=username, password=password, REQUESTS_ARGS={"timeout": timeout},
            # One retry is the library's own minimum; no second layer of retries in the HTTP adapter.
            HTTPADAPTER_ARGS={"max_retries": 0}, FORCE_SCHEME_FROM_HOST=True,
            DISABLE_LOGGING_DEBUG_OUTPUT=True, VERIFY_WEBUI_CERTIFICATE=True,
        )

    def _call(self, func):
        try:
            with unusable_settings():
                return func(self._qb)
        except qb_errors.LoginFailed as exc:
            raise ClientError("qBittorrent refused the username or password.", code="server_auth",
                              permanent=True) from exc
        except qb_errors.Forbidden403Error as exc:
            raise ClientError("qBittorrent refused access (wrong credentials, or this address is banned after "
                              "failed logins).", code="server_auth", permanent=True) from exc
        except qb_errors.NotFound404Error as exc:
            raise TorrentNotFound() from exc
        except qb_errors.HTTP4XXError as exc:
            raise ClientError(f"qBittorrent refused the request (HTTP {exc.http_status_code}).",
                              code="server_refused", permanent=True) from exc
        except qb_errors.HTTP5XXError as exc:
            raise ClientError("qBittorrent had an internal error.", code="server_error") from exc
        except qb_errors.APIConnectionError as exc:
            message = "qBittorrent did not answer in time." if "Timeout" in str(exc) else (
                "Cannot connect to qBittorrent (is it running, and is the address right?).")
            raise ClientError(message, code="server_unreachable") from exc
        except qb_errors.APIError as exc:
            raise ClientError(f"qBittorrent error: {str(exc)[:200]}", code="server_error") from exc

    # --- the interface --------------------------------------------------------------------------------------

    def list(self, hashes: Sequence[str] | None = None, *, with_files: bool = False) -> list[Torrent]:
        wanted = [normalize_hash(h) for h in hashes] if hashes is not None else None
        if wanted == []:
            return []
        rows = self._call(lambda qb: qb.torrents_info(torrent_hashes=wanted) if wanted else qb.torrents_info())
        torrents = [_torrent(row) for row in rows]
        if with_files:
            for torrent in torrents:
                if torrent.has_metadata:
                    files = self._call(lambda qb, h=torrent.hash: qb.torrents_files(torrent_hash=h))
                    torrent.files = [_file(i, f) for i, f in enumerate(files)]
        return torrents

    def _add(self, *, paused: bool, download_dir: str, **source) -> None:
        answer = self._call(lambda qb: qb.torrents_add(**source, save_path=download_dir or None,
                                                       is_paused=paused, is_stopped=paused))
        if answer != "Ok.":  # "Fails.": a duplicate, or a torrent qBittorrent could not read
            raise ClientError("qBittorrent did not add the torrent (already there, or not a valid torrent).",
                              code="server_refused", permanent=True)

    def add_torrent(self, data: bytes, *, download_dir: str = "", paused: bool = False) -> None:
        self._add(torrent_files=data, paused=paused, download_dir=download_dir)

    def add_magnet(self, magnet: str, *, download_dir: str = "", paused: bool = False) -> None:
        self._add(urls=magnet, paused=paused, download_dir=download_dir)

    def _added(self, info_hash: str, within: float = 15.0) -> str:
        """The hash once qBittorrent lists the torrent: its add answers "Ok." before the torrent exists, and
        per-torrent settings sent before then are silently dropped (seen on a loaded machine)."""
        deadline = time.monotonic() + within
        while True:
            try:
                return self._exists(info_hash)
            except TorrentNotFound:
                if time.monotonic() > deadline:
                    raise ClientError("qBittorrent accepted the torrent but does not list it.",
                                      code="server_busy") from None
                time.sleep(0.1)

    def _exists(self, info_hash: str) -> str:
        info_hash = normalize_hash(info_hash)
        if not self._call(lambda qb: qb.torrents_info(torrent_hashes=info_hash)):
            raise TorrentNotFound()  # qBittorrent ignores unknown hashes silently
        return info_hash

    def start(self, info_hash: str) -> None:
        info_hash = self._exists(info_hash)
        self._call(lambda qb: qb.torrents_start(torrent_hashes=info_hash))

    def stop(self, info_hash: str) -> None:
        info_hash = self._exists(info_hash)
        self._call(lambda qb: qb.torrents_stop(torrent_hashes=info_hash))

    def remove(self, info_hash: str, *, delete_data: bool) -> None:
        info_hash = self._exists(info_hash)
        self._call(lambda qb: qb.torrents_delete(delete_files=delete_data, torrent_hashes=info_hash))

    def keep_seeding(self, info_hash: str) -> None:
        info_hash = self._added(info_hash)
        # -1 = no limit for this torrent (-2 would follow the global limits); qBittorrent < 4.6 ignores the
        # inactive limit it does not know.
        self._call(lambda qb: qb.torrents_set_share_limits(ratio_limit=-1, seeding_time_limit=-1,
                                                           inactive_seeding_time_limit=-1,
                                                           torrent_hashes=info_hash))

    def piece_layout(self, info_hash: str) -> PieceLayout | None:
        info_hash = self._exists(info_hash)
        properties = self._call(lambda qb: qb.torrents_properties(torrent_hash=info_hash))
        rows = self._call(lambda qb: qb.torrents_files(torrent_hash=info_hash))
        files = sorted((_file(i, row) for i, row in enumerate(rows)), key=lambda f: f.index)
        piece_length = int(properties.get("piece_size") or 0)
        if piece_length <= 0 or not files:
            return None  # no metadata yet
        return PieceLayout(save_path=properties.get("save_path") or "", piece_length=piece_length, files=files)

    def piece_states(self, info_hash: str) -> list[bool]:
        info_hash = normalize_hash(info_hash)
        # torrents/pieceStates: 0 not downloaded, 1 downloading, 2 downloaded (hash checked). An unknown hash
        # is a 404, which the library raises as NotFound404Error.
        states = self._call(lambda qb: qb.torrents_piece_states(torrent_hash=info_hash))
        return [state == 2 for state in states]

    def piece_hashes(self, info_hash: str) -> list[bytes] | None:
        info_hash = normalize_hash(info_hash)
        hashes = self._call(lambda qb: qb.torrents_piece_hashes(torrent_hash=info_hash))
        try:
            return [bytes.fromhex(h) for h in hashes]
        except (TypeError, ValueError):
            return None

    def stream_first(self, info_hash: str, file_index: int) -> None:
        """Sequential download and first/last piece priority on, the file at the top priority (7). The two
        switches are toggles in the Web API: read first, toggle only what is off."""
        info_hash = self._exists(info_hash)
        row = self._call(lambda qb: qb.torrents_info(torrent_hashes=info_hash))[0]
        if not row.get("seq_dl"):
            self._call(lambda qb: qb.torrents_toggle_sequential_download(torrent_hashes=info_hash))
        if not row.get("f_l_piece_prio"):
            self._call(lambda qb: qb.torrents_toggle_first_last_piece_priority(torrent_hashes=info_hash))
        self._call(lambda qb: qb.torrents_file_priority(torrent_hash=info_hash, file_ids=file_index, priority=7))

    def check(self) -> ServerInfo:
        started = time.monotonic()
        self._call(lambda qb: qb.auth_log_in())
        version = self._call(lambda qb: qb.app_version())
        return ServerInfo(version=f"qBittorrent {version}", latency_ms=round((time.monotonic() - started) * 1000, 1))

    def close(self) -> None:
        self._qb._http_session and self._qb._http_session.close()


class _CountingClient(qbittorrentapi.Client):
    """Counts every HTTP request, logins included (the library replaces its session on login and retries)."""

    def __init__(self, owner: QBittorrentClient, **options) -> None:
        self._owner = owner
        super().__init__(**options)

    @property
    def _session(self):
        session = super()._session
        hooks = session.hooks["response"]
        if self._counted not in hooks:
            hooks.append(self._counted)
        return session

    def _counted(self, response: requests.Response, *args, **kwargs) -> None:
        self._owner.calls += 1


def _torrent(row) -> Torrent:
    state = STATES.get(row.get("state", ""), State.DOWNLOADING)
    has_metadata = state != State.METADATA
    size = int(row.get("size") or 0) if has_metadata else 0
    left = int(row.get("amount_left") or 0)
    return Torrent(
        hash=str(row["hash"]).lower(), name=row.get("name") or "", state=state,
        progress=float(row.get("progress") or 0) if has_metadata else 0.0, size=size,
        done=max(0, size - left) if has_metadata else 0, uploaded=int(row.get("uploaded") or 0),
        ratio=max(0.0, float(row.get("ratio") or 0)), download_rate=int(row.get("dlspeed") or 0),
        upload_rate=int(row.get("upspeed") or 0), eta=clamp_eta(row.get("eta"), infinite=ETA_INFINITE),
        peers=int(row.get("num_leechs") or 0) + int(row.get("num_seeds") or 0), seeds=int(row.get("num_seeds") or 0),
        seeding_time=int(row.get("seeding_time") or 0), save_path=row.get("save_path") or "",
        has_metadata=has_metadata, error="" if state != State.ERROR else row.get("state", ""),
        added_at=int(row.get("added_on") or 0) or None,
    )


def _file(position: int, row) -> TorrentFile:
    size = int(row.get("size") or 0)
    return TorrentFile(int(row.get("index", position)), row["name"], size,
                       min(size, int(size * float(row.get("progress") or 0))))
