"""An in-process libtorrent session that seeds on 127.0.0.1 (see research: torrent_daemons.md §4.1)."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import libtorrent as lt

# Why each setting: loopback peers all share 127.0.0.1, so without allow_multiple_connections_per_ip only
# one of them is kept; min_reconnect_time's default (60 s) stalls a second dial to a peer that left;
# outgoing uTP stays off because a seeder dialling over TCP avoids stale uTP sockets after a crash.
BASE_SETTINGS = {
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
    "min_reconnect_time": 1,
    "enable_outgoing_utp": False,
    "user_agent": "Flotilla-swarm/1.0",
}
ALERT_MASK = lt.alert_category.error | lt.alert_category.status | lt.alert_category.tracker | lt.alert_category.peer


class SeederError(RuntimeError):
    pass


def quiesce_session(session: lt.session, *, grace: float = 0.1) -> None:
    """Remove every torrent and give their `stopped` announces a moment, before the session is dropped.

    Why: the session's destructor holds the GIL while it waits (up to `stop_tracker_timeout`, 5 s by default)
    for pending tracker requests. A tracker served by a thread of the same process (`Tracker`) then cannot
    answer, so every teardown would stall for 5 s. Sleeping releases the GIL; the lowered timeout bounds any
    announce still in flight when the session goes.
    """
    for handle in session.get_torrents():
        session.remove_torrent(handle)
    session.apply_settings({"stop_tracker_timeout": 1})
    time.sleep(grace)  # also covers torrents removed earlier whose announce is still on its way


class Seeder:
    """Seeds torrents from folders that already hold their data (`seed_mode`: no full recheck at start).

    A seeding libtorrent never re-dials a peer it once marked as a seed, so tests use a fresh Seeder each
    (start ≈0.1 s). Alerts are drained by a background thread so a long-running seeder stays flat.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, settings: dict | None = None,
                 keep_alerts: int = 200) -> None:
        self._session = lt.session({**BASE_SETTINGS, "listen_interfaces": f"{host}:{port}",
                                    "alert_mask": ALERT_MASK, **(settings or {})})
        self.host = host
        self._handles: dict[str, lt.torrent_handle] = {}
        self._announced: dict[str, threading.Event] = {}
        self.alerts: collections.deque[str] = collections.deque(maxlen=keep_alerts)
        # Transport of each accepted peer connection ("tcp", "utp"), oldest first.
        self.incoming: collections.deque[str] = collections.deque(maxlen=keep_alerts)
        self._stop = threading.Event()
        self._pump = threading.Thread(target=self._pump_alerts, name="seeder-alerts", daemon=True)
        self._pump.start()
        self._wait(self._session.is_listening, 10, "seeder is not listening")

    # --- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop seeding: torrents leave (a `stopped` announce each), then the session shuts down."""
        if self._session is None:
            return
        quiesce_session(self._session)
        self._handles.clear()
        self._stop.set()
        self._pump.join(timeout=5)
        self._session = None  # the last reference: the destructor runs here

    @property
    def closed(self) -> bool:
        return self._session is None

    def __enter__(self) -> Seeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pump_alerts(self) -> None:
        while not self._stop.is_set():
            session = self._session
            if session is None or session.wait_for_alert(100) is None:
                continue
            for alert in session.pop_alerts():
                if isinstance(alert, lt.tracker_reply_alert):
                    self._mark_announced(alert.handle)
                elif isinstance(alert, lt.incoming_connection_alert):
                    # 2.1.1 reports an accepted uTP connection as socket type "udp": uTP is the only peer
                    # protocol over UDP, so call it by its name.
                    kind = str(alert.socket_type).rsplit(".", 1)[-1]
                    self.incoming.append("utp" if kind == "udp" else kind)
                elif alert.category() & lt.alert_category.error:
                    self.alerts.append(f"{type(alert).__name__}: {alert.message()}")

    def _mark_announced(self, handle: lt.torrent_handle) -> None:
        try:
            info_hash = str(handle.info_hashes().v1)
        except RuntimeError:  # the torrent was removed in the meantime
            return
        if event := self._announced.get(info_hash):
            event.set()

    # --- torrents ----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        # libtorrent silently moves to the next port when the asked one is taken: always read it back.
        return self._session.listen_port()

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    def add(self, torrent_bytes: bytes, save_path: Path | str, upload_limit: int | None = None, *,
            timeout: float = 10.0) -> str:
        """Seed a torrent whose files are already under `save_path`; return its v1 info-hash (hex).

        Returns once libtorrent reports it seeding and, if the torrent names trackers, once a tracker has
        answered its first announce: a downloader that announces right after is then told about this seed
        (otherwise it could get an empty list and wait a whole announce interval).
        """
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent_bytes)
        announced = self._announced[str(params.ti.info_hashes().v1)] = threading.Event()
        params.save_path = str(save_path)
        params.flags |= lt.torrent_flags.seed_mode
        # Not auto-managed: the queue would otherwise pause every seed past active_seeds (5).
        params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        if upload_limit:
            params.upload_limit = int(upload_limit)
        handle = self._session.add_torrent(params)
        info_hash = str(handle.info_hashes().v1)
        self._handles[info_hash] = handle
        self._wait(lambda: handle.status().is_seeding, timeout, f"torrent {info_hash} did not start seeding")
        if handle.trackers() and not announced.wait(timeout):
            raise SeederError(f"no tracker answered the announce of {info_hash}: {list(self.alerts)[-3:]}")
        return info_hash

    def remove(self, info_hash: str) -> None:
        self._session.remove_torrent(self._handle(info_hash))
        del self._handles[info_hash.lower()]
        self._announced.pop(info_hash.lower(), None)

    def handle(self, info_hash: str) -> lt.torrent_handle:
        return self._handle(info_hash)

    def uploaded_bytes(self, info_hash: str) -> int:
        """Payload bytes this seeder has uploaded for the torrent since it was added."""
        return self._handle(info_hash).status().total_payload_upload

    def set_upload_limit(self, info_hash: str, bytes_per_s: int | None) -> None:
        """Throttle one torrent (None/0 = unlimited). Per torrent on purpose: loopback peers are in
        libtorrent's unlimited local peer class, so a session-wide limit would not apply to them."""
        self._handle(info_hash).set_upload_limit(int(bytes_per_s) if bytes_per_s else -1)

    def connect(self, info_hash: str, endpoint: tuple[str, int]) -> None:
        """Dial a peer directly (e.g. a client that never dials 127.x peers itself)."""
        self._handle(info_hash).connect_peer(endpoint)

    def force_reannounce(self) -> None:
        for handle in self._handles.values():
            handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)

    def info_hashes(self) -> list[str]:
        return list(self._handles)

    def _handle(self, info_hash: str) -> lt.torrent_handle:
        try:
            return self._handles[info_hash.lower()]
        except KeyError:
            raise SeederError(f"not seeding {info_hash}") from None

    @staticmethod
    def _wait(predicate, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SeederError(message)
            time.sleep(0.02)
