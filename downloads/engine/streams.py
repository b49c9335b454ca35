"""Streaming while downloading: the engine's side of the web ↔ engine stream channel.

The web process never imports libtorrent, so it asks the engine holding a job, over a socket the engine
listens on (ENGINE_STREAM_LISTEN, loopback by default; its address is published in the engine's heartbeat
row), to fetch a byte window of one file first and to say how many bytes from an offset are verified.
The protocol is JSON lines, one connection per reader (one HTTP response being sent):

    → {"op": "open", "key": <shared key>, "job": 12, "path": "movie/movie.mp4"}
    ← {"ok": true, "size": 123456, "piece_length": 262144}
    → {"op": "read", "offset": 5000000, "wait": 30.0}
    ← {"ok": true, "available": 786432}          (0: the piece did not arrive within `wait`)
    ← {"ok": false, "code": "not_here" | "no_metadata" | "no_file" | "denied" | "bad_request"}

Preload (streaming/preload.py, from the worker; one request per connection, no reader held open):

    → {"op": "preload", "key": <shared key>, "job": 12, "path": "movie/movie.mp4", "cancel": false}
    ← {"ok": true, "missing": 3}        (head and tail pieces of the file not yet on disk; 0: done, dropped)

A preload is a reader with no position: deadlines on the file's head and tail pieces only. It lives until its
pieces are on disk, until cancelled, or PRELOAD_TTL after the last request for it (the worker repeats it while
it wants it), so a dead worker leaves no deadlines behind for long.

Why a socket and not the job row: the row is polled every ENGINE_POLL_INTERVAL and a seek must move the
window within milliseconds. Why one connection per reader: its end (a player cancelling a request, a web
process dying) is the "reader gone" signal, with no lease to expire.

Piece picking follows libtorrent's maintainer (research §4.5): deadlines (`set_piece_deadline`) on a
byte-budgeted window ahead of each reader (STREAM_WINDOW_BYTES), staggered STREAM_DEADLINE_STEP_MS apart,
plus the file's head and tail pieces (MP4 `moov` at the end, Matroska cues), never `sequential_download`.
A seek moves the reader's window (pieces that left every window lose their deadline); the last reader of a
torrent leaving clears its deadlines.

"Verified" means on disk, not only hashed: libtorrent 2.x may hash a piece from its store buffer before the
bytes reach the file (tests/swarm.py saw it), so a piece counts once `have_piece` is true *and* the bytes
read back from the files match its SHA-1 (v1 torrents; v2-only ones rely on `have_piece`). Confirmed pieces
are remembered per torrent, so each is read back once.

The engine's main thread may take a torrent out of the session at any moment (the job completed, failed or
left this engine), and libtorrent invalidates the handle asynchronously, so a handle that was valid one call
ago raises on the next ("invalid torrent handle used"). Every entry point turns that into `not_here`, the
answer that sends the web back to the job row (on disk by then), never into an engine error.

An answer to `read` comes within its `wait`: the wait for the first piece, taking the lock and scanning the
verified pieces after it all share that one deadline (the web's STREAM_TIMEOUT).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from downloads import playable

if TYPE_CHECKING:
    from downloads.engine.runner import Engine, Torrent

log = logging.getLogger(__name__)

POLL = 0.02  # seconds between two looks at a missing piece: far below a player's patience
MAX_LINE = 4096
HEAD_TAIL_BYTES = 1 << 20  # the file's first and last MiB: container headers and indexes
MAX_AVAILABLE_SCAN = 64  # pieces looked at per answer: the web asks again when it has sent them
# Verified bytes counted per answer, whatever the piece size: 64 pieces of 16 MiB would be 1 GiB read back.
MAX_AVAILABLE_BYTES = 16 << 20
PRELOAD_TTL = 30.0  # seconds a preload stays without being asked again


def channel_key() -> str:
    """The shared secret a web process proves it holds (both sides derive it from SECRET_KEY)."""
    return hmac.new(settings.SECRET_KEY.encode(), b"flotilla.engine-stream", hashlib.sha256).hexdigest()


@dataclass
class FileGeometry:
    """Where a file's bytes sit among the torrent's pieces."""

    index: int
    path: str
    size: int
    offset: int  # of the file inside the torrent's byte stream
    piece_length: int
    num_pieces: int

    def piece_at(self, position: int) -> int:
        return (self.offset + position) // self.piece_length

    def piece_end(self, piece: int) -> int:
        """The file position just past `piece` (clamped to the file)."""
        return min(self.size, (piece + 1) * self.piece_length - self.offset)

    def pieces(self, start: int, length: int) -> range:
        if self.size == 0 or length <= 0:
            return range(0)
        last = min(self.size, start + length) - 1
        return range(self.piece_at(start), self.piece_at(last) + 1)


@dataclass
class Reader:
    geometry: FileGeometry
    position: int = 0
    preload: bool = False  # only the head and tail pieces, for a player that has not started yet


@dataclass
class TorrentStreams:
    """The readers of one torrent and the pieces that carry a deadline for them."""

    readers: dict[int, Reader] = field(default_factory=dict)
    deadlined: set[int] = field(default_factory=set)
    confirmed: set[int] = field(default_factory=set)


class Streams:
    """Deadline windows and verified-byte answers for every torrent being read. Thread-safe: each
    connection runs on its own thread, and libtorrent's handle calls are safe from any thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._by_job: dict[int, TorrentStreams] = {}
        self._next_reader = 0
        self._preloads: dict[tuple[int, str], tuple[int, float]] = {}  # (job, path) → (reader id, expiry)

    # --- readers ---------------------------------------------------------------------------------------

    def torrent(self, job_id: int) -> Torrent | None:
        torrent = self.engine.torrents.get(job_id)
        return torrent if torrent is not None and torrent.handle.is_valid() else None

    @contextlib.contextmanager
    def _held(self, job_id: int) -> Iterator[None]:
        """libtorrent raising because the torrent left the session between our look and the call: `not_here`."""
        try:
            yield
        except RuntimeError:
            if self.torrent(job_id) is None:
                raise StreamRefused("not_here") from None
            raise

    def open(self, job_id: int, path: str) -> tuple[int, FileGeometry]:
        self._expire_preloads()
        torrent = self.torrent(job_id)
        if torrent is None:
            raise StreamRefused("not_here")
        with self._held(job_id):
            info = torrent.handle.torrent_file()
            if info is None:
                raise StreamRefused("not_here" if self.torrent(job_id) is None else "no_metadata")
            geometry = _geometry(info, path)
            with self._lock:
                self._next_reader += 1
                reader_id = self._next_reader
                self._by_job.setdefault(job_id, TorrentStreams()).readers[reader_id] = Reader(geometry)
                try:
                    self._apply(job_id, torrent)
                except BaseException:
                    self._forget_reader(job_id, reader_id)
                    raise
        # A player reads the head, then the tail, then the head again, each on a request of its own: head and tail
        # keep their deadlines between those requests (a preload), not only while one is open.
        with contextlib.suppress(StreamRefused, RuntimeError):  # the torrent left: the next read says not_here
            self.preload(job_id, path)
        return reader_id, geometry

    def play_first(self, job_id: int) -> str | None:
        """Head and tail of the torrent's primary playable file first (a preload), for a job about to be played
        (an ephemeral one) as soon as its metadata is known: the first frame then waits one round of pieces,
        not head, tail and head again. The file played, or None (nothing playable, or no metadata)."""
        torrent = self.torrent(job_id)
        info = torrent.handle.torrent_file() if torrent is not None else None
        path = _primary_path(info) if info is not None else None
        if path is not None:
            with contextlib.suppress(StreamRefused, RuntimeError):
                self.preload(job_id, path)
        return path

    def _forget_reader(self, job_id: int, reader_id: int) -> None:
        streams = self._by_job.get(job_id)
        if streams is not None:
            streams.readers.pop(reader_id, None)
            if not streams.readers:
                self._by_job.pop(job_id, None)

    def close(self, job_id: int, reader_id: int) -> None:
        with self._lock, contextlib.suppress(StreamRefused), self._held(job_id):
            streams = self._by_job.get(job_id)
            if streams is None:
                return
            self._forget_reader(job_id, reader_id)
            torrent = self.torrent(job_id)
            if not streams.readers:
                if torrent is not None:
                    for piece in streams.deadlined:
                        torrent.handle.reset_piece_deadline(piece)
            elif torrent is not None:
                self._apply(job_id, torrent)

    def seek(self, job_id: int, reader_id: int, position: int, *, timeout: float = -1) -> bool:
        """Move the reader's window to `position`; False when the lock was not free within `timeout`."""
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            streams = self._by_job.get(job_id)
            reader = streams.readers.get(reader_id) if streams else None
            torrent = self.torrent(job_id)
            if reader is None or torrent is None:
                raise StreamRefused("not_here")
            moved = reader.geometry.piece_at(position) != reader.geometry.piece_at(reader.position)
            reader.position = position
            if moved or not streams.deadlined:
                with self._held(job_id):
                    self._apply(job_id, torrent)
            return True
        finally:
            self._lock.release()

    def _apply(self, job_id: int, torrent: Torrent) -> None:
        """Give every piece in some reader's window a deadline, nearest first; take it from those that left.

        libtorrent fetched the deadline set *last* first (#3599), so far pieces are set before near ones.
        """
        streams = self._by_job[job_id]
        handle = torrent.handle
        wanted: dict[int, int] = {}
        for reader in streams.readers.values():
            for rank, piece in enumerate(_window(reader)):
                wanted[piece] = min(rank, wanted.get(piece, rank))
        wanted = {p: r for p, r in wanted.items() if not handle.have_piece(p)}
        for piece in streams.deadlined - set(wanted):
            handle.reset_piece_deadline(piece)
        step = settings.STREAM_DEADLINE_STEP_MS
        for piece, rank in sorted(wanted.items(), key=lambda item: -item[1]):
            handle.set_piece_deadline(piece, rank * step)
        streams.deadlined = set(wanted)

    # --- preload ---------------------------------------------------------------------------------------

    def preload(self, job_id: int, path: str, *, cancel: bool = False) -> int:
        """Fetch the file's head and tail pieces first (or stop, with `cancel`); how many are not on disk yet."""
        self._expire_preloads()
        if cancel:
            self._drop_preload((job_id, path))
            return 0
        torrent = self.torrent(job_id)
        if torrent is None:
            raise StreamRefused("not_here")
        info = torrent.handle.torrent_file()
        if info is None:
            raise StreamRefused("no_metadata")  # the engine is fetching it: ask again shortly
        geometry = _geometry(info, path)
        with self._lock:
            streams = self._by_job.setdefault(job_id, TorrentStreams())
            reader_id = self._preloads.get((job_id, path), (None, 0.0))[0]
            if reader_id not in streams.readers:
                self._next_reader += 1
                reader_id = self._next_reader
                streams.readers[reader_id] = Reader(geometry, preload=True)
                self._apply(job_id, torrent)
            self._preloads[(job_id, path)] = (reader_id, time.monotonic() + PRELOAD_TTL)
        with self._held(job_id):
            missing = sum(not self._on_disk(job_id, piece) for piece in _head_tail(geometry))
        if not missing:
            self._drop_preload((job_id, path))
        return missing

    def _drop_preload(self, key: tuple[int, str]) -> None:
        with self._lock:
            entry = self._preloads.pop(key, None)
        if entry is not None:
            self.close(key[0], entry[0])

    def _expire_preloads(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [key for key, (_, expiry) in self._preloads.items() if expiry < now]
        for key in expired:
            self._drop_preload(key)

    # --- verified bytes --------------------------------------------------------------------------------

    def available(self, job_id: int, reader_id: int, offset: int, wait: float) -> int:
        """Verified bytes of the reader's file from `offset` on (0 if its first piece does not arrive within
        `wait` seconds). The reader's window moves to `offset` first. Answers within `wait`, whatever else
        is slow: a busy lock counts as the piece not arriving, and the scan past the first piece stops at the
        deadline."""
        deadline = time.monotonic() + wait
        if not self.seek(job_id, reader_id, offset, timeout=wait):
            return 0
        streams = self._by_job.get(job_id)
        reader = streams.readers.get(reader_id) if streams else None
        if reader is None:
            raise StreamRefused("not_here")
        geometry = reader.geometry
        if offset >= geometry.size:
            return 0
        with self._held(job_id):
            while not self._on_disk(job_id, geometry.piece_at(offset)):
                if time.monotonic() >= deadline:
                    return 0
                time.sleep(POLL)
            first = geometry.piece_at(offset)
            end = geometry.piece_end(first)
            for piece in range(first + 1, min(first + MAX_AVAILABLE_SCAN, geometry.num_pieces)):
                if (end >= geometry.size or end - offset >= MAX_AVAILABLE_BYTES or time.monotonic() >= deadline
                        or not self._on_disk(job_id, piece)):
                    break
                end = geometry.piece_end(piece)
        return end - offset

    def _on_disk(self, job_id: int, piece: int) -> bool:
        torrent = self.torrent(job_id)
        if torrent is None:
            raise StreamRefused("not_here")
        streams = self._by_job.get(job_id)
        if streams is not None and piece in streams.confirmed:
            return True
        if not torrent.handle.have_piece(piece):
            return False
        if not _piece_matches(torrent, piece):
            return False  # hashed in memory, not in the file yet: look again shortly
        if streams is not None:
            streams.confirmed.add(piece)
        return True


class StreamRefused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _geometry(info: Any, path: str) -> FileGeometry:
    storage = info.layout()
    for index in range(storage.num_files()):
        if storage.file_path(index) == path and not storage.file_flags(index) & storage.flag_pad_file:
            return FileGeometry(index, path, storage.file_size(index), storage.file_offset(index),
                                info.piece_length(), info.num_pieces())
    raise StreamRefused("no_file")


def _primary_path(info: Any) -> str | None:
    """The file a player plays when none is named (streaming/stream.py's rule): the largest video, else the
    largest audio file."""
    storage = info.layout()
    files = [(storage.file_size(i), storage.file_path(i)) for i in range(storage.num_files())
             if not storage.file_flags(i) & storage.flag_pad_file]
    for wanted in (playable.is_video, playable.is_audio):
        sized = [(size, path) for size, path in files if wanted(path, None)]
        if sized:
            return min(sized, key=lambda item: (-item[0], item[1]))[1]
    return None


def _window(reader: Reader) -> list[int]:
    """The pieces a reader wants soon, most urgent first: where it reads, then the file's head and tail,
    then the rest of the window (STREAM_WINDOW_BYTES ahead)."""
    geometry = reader.geometry
    if reader.preload:
        return _head_tail(geometry)
    ahead = list(geometry.pieces(reader.position, settings.STREAM_WINDOW_BYTES))
    order: list[int] = []
    for piece in ahead[:2] + _head_tail(geometry) + ahead[2:]:
        if piece not in order:
            order.append(piece)
    return order


def _head_tail(geometry: FileGeometry) -> list[int]:
    """The pieces holding the file's first and last HEAD_TAIL_BYTES, taken in turn from both ends (first, last,
    second, second to last...): a player's first frame needs the very start (header, first samples) and the
    very end (MP4 `moov`, Matroska cues) long before the middle of either MiB."""
    head = list(geometry.pieces(0, HEAD_TAIL_BYTES))
    tail = list(reversed(geometry.pieces(max(0, geometry.size - HEAD_TAIL_BYTES), HEAD_TAIL_BYTES)))
    order: list[int] = []
    for pair in itertools.zip_longest(head, tail):
        order.extend(piece for piece in pair if piece is not None and piece not in order)
    return order


def _piece_matches(torrent: Torrent, piece: int) -> bool:
    info = torrent.handle.torrent_file()
    if info is None:
        raise RuntimeError("invalid torrent handle used")  # the torrent left the session: see Streams._held
    if not info.info_hashes().has_v1():
        return True  # v2-only: no flat SHA-1 to compare with; have_piece is all there is
    digest = hashlib.sha1(usedforsecurity=False)  # BitTorrent v1 piece hashes are SHA-1
    save_path = Path(torrent.job.data_dir)
    storage = info.layout()
    for part in info.map_block(piece, 0, info.piece_size(piece)):
        if storage.file_flags(part.file_index) & storage.flag_pad_file:
            digest.update(bytes(part.size))
            continue
        try:
            with open(save_path / storage.file_path(part.file_index), "rb") as fh:
                data = os.pread(fh.fileno(), part.size, part.offset)
        except OSError:
            return False
        if len(data) != part.size:
            return False
        digest.update(data)
    return digest.digest() == bytes(info.hash_for_piece(piece))  # the binding returns the 20 bytes


# --- the socket --------------------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    server: StreamServer

    def handle(self) -> None:
        streams = self.server.streams
        opened: tuple[int, int] | None = None
        try:
            while True:
                line = self.rfile.readline(MAX_LINE)
                if not line:
                    return
                try:
                    request = json.loads(line)
                    reply, opened = self._answer(streams, request, opened)
                except StreamRefused as exc:
                    reply = {"ok": False, "code": exc.code}
                except (ValueError, KeyError, TypeError):
                    reply = {"ok": False, "code": "bad_request"}
                except Exception:  # a bug or a torrent removed mid-call: this reader ends, the engine goes on
                    log.exception("stream request failed")
                    reply = {"ok": False, "code": "engine_error"}
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                if not reply.get("ok") and opened is None:
                    return
        except OSError:
            return  # the web side went away: the reader is gone
        finally:
            if opened is not None:
                streams.close(*opened)

    def _answer(self, streams: Streams, request: dict, opened: tuple[int, int] | None) -> tuple[dict, Any]:
        op = request["op"]
        if op == "open" and opened is None:
            if not hmac.compare_digest(str(request.get("key", "")), channel_key()):
                raise StreamRefused("denied")
            job_id = int(request["job"])
            reader_id, geometry = streams.open(job_id, str(request["path"]))
            return {"ok": True, "size": geometry.size, "piece_length": geometry.piece_length}, (job_id, reader_id)
        if op == "preload" and opened is None:
            if not hmac.compare_digest(str(request.get("key", "")), channel_key()):
                raise StreamRefused("denied")
            job_id, path, cancel = int(request["job"]), str(request["path"]), bool(request.get("cancel"))
            return {"ok": True, "missing": streams.preload(job_id, path, cancel=cancel)}, None
        if op == "read" and opened is not None:
            offset, wait = int(request["offset"]), min(float(request["wait"]), 600.0)
            if offset < 0 or wait < 0:
                raise ValueError("negative")
            return {"ok": True, "available": streams.available(*opened, offset, wait)}, opened
        raise StreamRefused("bad_request")


class StreamServer(socketserver.ThreadingTCPServer):
    """Listens on ENGINE_STREAM_LISTEN ("host:port", port 0 = any free one) in the engine process."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, engine: Engine, listen: str | None = None) -> None:
        host, _, port = (listen or settings.ENGINE_STREAM_LISTEN).rpartition(":")
        self.streams = Streams(engine)
        super().__init__((host.strip("[]") or "127.0.0.1", int(port)), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """The address web processes dial: a wildcard bind is published under this host's name."""
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::"):  # noqa: S104 - reading the bind address, not binding
            host = socket.gethostname()
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> StreamServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="engine-streams", daemon=True)
        self._thread.start()
        log.info("stream channel listening", extra={"address": self.address})
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


# IPv6 listen addresses ("[::1]:0") need the matching family.
class StreamServer6(StreamServer):
    address_family = socket.AF_INET6


def start_server(engine: Engine) -> StreamServer | None:
    """The engine's stream channel, or None when ENGINE_STREAM_LISTEN is empty (streaming while downloading
    off: completed files are still streamed from disk)."""
    listen = settings.ENGINE_STREAM_LISTEN
    if not listen:
        return None
    kind = StreamServer6 if listen.startswith("[") else StreamServer
    try:
        return kind(engine, listen).start()
    except OSError:
        log.exception("stream channel could not listen", extra={"address": listen})
        return None
