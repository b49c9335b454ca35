"""Pytest fixtures for a real BitTorrent swarm on 127.0.0.1 (loaded as a plugin from the root conftest).

- `tracker`: one open HTTP tracker for the whole session (`tracker.announce_url`).
- `seeder`: a fresh libtorrent seeding session per test (a long-lived one stops re-dialling peers it has
  marked as seeds; a fresh one starts in ~0.1 s).
- `swarm`: `Swarm` over both, payloads under the test's tmp_path (generated once per session and
  hard-linked): `swarm.publish("album", {"a.bin": 1 << 20})` → record with magnet, .torrent, sha256s.
- `leecher`: a plain libtorrent downloader (an independent client to check what the swarm serves);
  `leecher.wait_complete(handle)` returns once every piece is verified and written to disk;
  `leecher.offer_part(...)` makes it a peer holding only some pieces (a download that cannot finish).
- `withhold("film.bin", 8 << 20, keep=0.5)`: a torrent the swarm holds only half of until `.release()`.

Any libtorrent session created in a test should be shut down with `downloads.swarm.seeder.quiesce_session`
before it is dropped: see its docstring (the in-process tracker and the GIL).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import libtorrent as lt
import pytest

from downloads.swarm import Seeder, Swarm, Tracker, make_torrent, torrent_meta
from downloads.swarm.seeder import quiesce_session

LEECHER_SETTINGS = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    # uTP over a busy loopback swings from 0.8 s to 11 s for 64 MiB (LEDBAT backing off), TCP stays ~0.8 s;
    # a session that had uTP peers also takes 0.1 s longer to shut down. Leecher(enable_outgoing_utp=True)
    # for the libtorrent default.
    "enable_outgoing_utp": False,
    "alert_mask": lt.alert_category.error | lt.alert_category.storage,
}


class Leecher:
    """A downloading libtorrent session on 127.0.0.1: libtorrent's defaults except no DHT/LSD/UPnP/NAT-PMP
    and outgoing TCP (see LEECHER_SETTINGS); one connection per IP, like a stock client."""

    def __init__(self, **settings: object) -> None:
        self.session = lt.session({**LEECHER_SETTINGS, **settings})
        self.errors: list[str] = []
        self._flushed: set[str] = set()

    @property
    def port(self) -> int:
        return self.session.listen_port()

    def add(self, source: bytes | str, save_path: Path | str, *, upload_limit: int | None = None,
            upload_only: bool = False) -> lt.torrent_handle:
        """Add by .torrent bytes or by magnet URI; `upload_only`: never download (libtorrent's upload mode)."""
        if isinstance(source, bytes):
            params = lt.add_torrent_params()
            params.ti = lt.torrent_info(source)
        else:
            params = lt.parse_magnet_uri(source)
        params.save_path = str(save_path)
        if upload_limit:
            params.upload_limit = upload_limit
        if upload_only:
            params.flags |= lt.torrent_flags.upload_mode
        return self.session.add_torrent(params)

    def offer_part(self, torrent: bytes, data: bytes, save_path: Path, name: str, piece_size: int,
                   held, *, upload_limit: int | None = None, upload_only: bool = False) -> lt.torrent_handle:
        """Join the swarm holding only the pieces numbered in `held` of a single-file torrent of `data`: the rest
        of the copy is zeros, which libtorrent's check rejects. What this peer lacks is nowhere in the swarm
        until a seeder comes, so a test can rely on a download not finishing, however slow the machine.
        `upload_only`: the peer never fetches the rest itself (once a seeder came, it would otherwise)."""
        held = list(held)
        copy = bytearray(len(data))
        for piece in held:
            copy[piece * piece_size:(piece + 1) * piece_size] = data[piece * piece_size:(piece + 1) * piece_size]
        Path(save_path).mkdir(parents=True, exist_ok=True)
        (Path(save_path) / name).write_bytes(copy)
        handle = self.add(torrent, save_path, upload_limit=upload_limit, upload_only=upload_only)
        self.wait(handle, lambda st: st.num_pieces == len(held) and st.state == st.states.downloading, 60,
                  "its copy checked")
        return handle

    def pump(self) -> None:
        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.cache_flushed_alert):
                self._flushed.add(str(alert.handle.info_hashes().v1))
            elif alert.category() & lt.alert_category.error:
                self.errors.append(f"{type(alert).__name__}: {alert.message()}")

    def wait(self, handle: lt.torrent_handle, predicate, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate(handle.status()):
            self.pump()
            if time.monotonic() > deadline:
                st = handle.status()
                raise AssertionError(
                    f"{what} not reached in {timeout}s: state={st.state} progress={st.progress:.3f} "
                    f"peers={st.num_peers} tracker={st.current_tracker!r} errors={self.errors[-5:]}")
            time.sleep(0.05)

    def wait_complete(self, handle: lt.torrent_handle, timeout: float = 60.0) -> None:
        """Every piece verified AND written: libtorrent 2.x hashes blocks from its store buffer, so
        `is_seeding` can be true while the last blocks are not in the files yet (seen here: a sha256 of the
        file read right after `is_seeding` mismatched in 2 of 4 runs). `flush_cache` settles it."""
        self.wait(handle, lambda st: st.is_seeding, timeout, "download complete")
        info_hash = str(handle.info_hashes().v1)
        self._flushed.discard(info_hash)
        handle.flush_cache()
        deadline = time.monotonic() + timeout
        while info_hash not in self._flushed:
            assert time.monotonic() < deadline, f"no cache_flushed_alert in {timeout}s"
            self.session.wait_for_alert(100)
            self.pump()

    def close(self) -> None:
        """Leave the swarm (a test may do so early: the fixture's own close is then a no-op)."""
        if self.session is not None:
            quiesce_session(self.session)
            self.session = None


class Withheld:
    """A single-file torrent of random bytes whose swarm holds only its first `keep` share of pieces until
    `release()`: at first its only peer is a partial copy in upload mode, then a full seeder joins. A client
    under test cannot finish it before the test says so, however slow the machine (where a rate-limited
    seeder races the test's next step). Nobody else downloads it, so `uploaded()` is what the client got."""

    def __init__(self, directory: Path, tracker: Tracker, seeder: Seeder, leecher: Leecher, name: str, size: int,
                 *, keep: float, piece_size: int = 64 * 1024, trackers: list[str] | None = None) -> None:
        self.name, self.size, self.data = name, size, os.urandom(size)
        self.full = directory / "full"
        self.full.mkdir(parents=True)
        (self.full / name).write_bytes(self.data)
        self.torrent_bytes = make_torrent(self.full / name, trackers or [tracker.announce_url], piece_size)
        meta = torrent_meta(self.torrent_bytes)
        self.info_hash, self.magnet = meta.info_hash, meta.magnet
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.held = int(meta.num_pieces * keep)
        assert 0 < self.held < meta.num_pieces, "keep some pieces and withhold some"
        self.seeder, self.leecher = seeder, leecher
        self.part = leecher.offer_part(self.torrent_bytes, self.data, directory / "part", name, piece_size,
                                       range(self.held), upload_only=True)
        self.released = False

    def connect(self, endpoint: tuple[str, int]) -> None:
        """The partial peer dials a client directly (Transmission never dials 127.x peers itself)."""
        self.part.connect_peer(endpoint)

    def release(self, upload_limit: int | None = None) -> None:
        """The missing pieces enter the swarm: a full seeder joins."""
        self.seeder.add(self.torrent_bytes, self.full, upload_limit=upload_limit)
        self.released = True

    def uploaded(self) -> int:
        """Payload bytes both peers have sent."""
        sent = self.part.status().total_payload_upload
        return sent + (self.seeder.uploaded_bytes(self.info_hash) if self.released else 0)


@pytest.fixture
def withhold(tmp_path, tracker, seeder, leecher):
    """`withhold(name, size, keep=0.5)` → a `Withheld` torrent under the test's tmp_path."""
    def make(name: str, size: int, *, keep: float = 0.5, **kwargs) -> Withheld:
        return Withheld(tmp_path / "withheld" / name, tracker, seeder, leecher, name, size, keep=keep, **kwargs)
    return make


@pytest.fixture(scope="session")
def tracker():
    with Tracker() as running:
        yield running


@pytest.fixture
def seeder():
    with Seeder() as running:
        yield running


@pytest.fixture(scope="session")
def swarm_payload_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("swarm-payloads")


@pytest.fixture
def swarm(tracker, seeder, tmp_path, swarm_payload_cache):
    with Swarm(tmp_path / "swarm", tracker=tracker, seeder=seeder, payload_cache=swarm_payload_cache) as running:
        yield running


@pytest.fixture
def leecher():
    client = Leecher()
    yield client
    client.close()
