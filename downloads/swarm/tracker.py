"""A small open BitTorrent HTTP tracker (BEP 3/23/48 subset) for swarms on 127.0.0.1.

Why not opentracker: Debian's build is whitelist-only, and it hands each announcer its own address,
which makes clients that keep one peer per IP (rtorrent, transmission) dial themselves. This one is open,
never returns the requester to itself, answers compact and non-compact peer lists, `/scrape`, and
`GET /` for readiness. State lives in memory for the life of the object.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

READY_BODY = b"flotilla loopback tracker ok\n"
EVENTS = {"", "started", "completed", "stopped", "paused"}
MAX_NUMWANT = 200


def bencode(value: object) -> bytes:
    if isinstance(value, bool):  # bool is an int subclass; bencode has no booleans
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


class AnnounceError(ValueError):
    """A request the tracker refuses; the message goes back as the bencoded `failure reason`."""


@dataclass
class Peer:
    ip: str
    port: int
    peer_id: bytes
    left: int
    seen: float

    @property
    def is_seed(self) -> bool:
        return self.left == 0


@dataclass(frozen=True)
class Announce:
    info_hash: bytes
    peer_id: bytes
    port: int
    left: int
    event: str
    compact: bool
    no_peer_id: bool
    numwant: int

    @classmethod
    def parse(cls, query: dict[str, list[str]]) -> Announce:
        return cls(
            info_hash=_twenty_bytes(query, "info_hash"), peer_id=_twenty_bytes(query, "peer_id"),
            port=_integer(query, "port", low=1, high=65535), left=_integer(query, "left", default=0),
            event=_event(query), compact=_first(query, "compact", "1") == "1",
            no_peer_id=_first(query, "no_peer_id", "0") == "1",
            numwant=min(_integer(query, "numwant", default=50), MAX_NUMWANT),
        )


def _first(query: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = query.get(key)
    return values[0] if values else default


def _twenty_bytes(query: dict[str, list[str]], key: str) -> bytes:
    value = _first(query, key)
    if value is None:
        raise AnnounceError(f"missing {key}")
    raw = value.encode("latin-1")  # the query was decoded as latin-1, so this gives back the raw bytes
    if len(raw) != 20:
        raise AnnounceError(f"{key} must be 20 bytes, got {len(raw)}")
    return raw


def _integer(query: dict[str, list[str]], key: str, *, default: int | None = None, low: int = 0,
             high: int = 2**63 - 1) -> int:
    value = _first(query, key)
    if value is None:
        if default is None:
            raise AnnounceError(f"missing {key}")
        return default
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:  # "²".isdigit() is True
        raise AnnounceError(f"invalid {key}")
    return int(value)


def _event(query: dict[str, list[str]]) -> str:
    event = _first(query, "event", "")
    if event not in EVENTS:
        raise AnnounceError("invalid event")
    return event


class TrackerState:
    """Swarms by info-hash: who announced from where, how much they still miss, and completions."""

    def __init__(self, peer_ttl: float) -> None:
        self.peer_ttl = peer_ttl
        self._lock = threading.Lock()
        self._swarms: dict[bytes, dict[tuple[str, int], Peer]] = {}
        self._completed: dict[bytes, int] = {}
        self.announces = 0

    def announce(self, ip: str, request: Announce) -> tuple[list[Peer], int, int]:
        """Record the announce; return (other peers, seeds, leechers). Never includes the requester."""
        now = time.monotonic()
        me = (ip, request.port)
        with self._lock:
            self.announces += 1
            swarm = self._swarms.setdefault(request.info_hash, {})
            for key in [k for k, p in swarm.items() if now - p.seen > self.peer_ttl]:
                del swarm[key]
            if request.event == "stopped":
                swarm.pop(me, None)
            else:
                swarm[me] = Peer(ip, request.port, request.peer_id, request.left, now)
            if request.event == "completed":
                self._completed[request.info_hash] = self._completed.get(request.info_hash, 0) + 1
            # Same address or same peer id: a client that re-announced from a new port is still itself.
            others = [p for key, p in swarm.items() if key != me and p.peer_id != request.peer_id]
            seeds = sum(p.is_seed for p in swarm.values())
            return others[: request.numwant], seeds, len(swarm) - seeds

    def scrape(self, info_hashes: list[bytes]) -> dict[bytes, dict[str, int]]:
        with self._lock:
            wanted = info_hashes or list(self._swarms)
            files = {}
            for info_hash in wanted:
                swarm = self._swarms.get(info_hash, {})
                seeds = sum(p.is_seed for p in swarm.values())
                files[info_hash] = {"complete": seeds, "incomplete": len(swarm) - seeds,
                                    "downloaded": self._completed.get(info_hash, 0)}
            return files

    def peers(self, info_hash: bytes) -> list[Peer]:
        with self._lock:
            return list(self._swarms.get(info_hash, {}).values())


def peer_list(peers: list[Peer], *, compact: bool, no_peer_id: bool) -> dict[str, object]:
    if not compact:
        return {"peers": [{"ip": p.ip, "port": p.port} | ({} if no_peer_id else {"peer id": p.peer_id})
                          for p in peers]}
    v4 = [p for p in peers if ":" not in p.ip]
    v6 = [p for p in peers if ":" in p.ip]
    body: dict[str, object] = {
        "peers": b"".join(socket.inet_aton(p.ip) + struct.pack(">H", p.port) for p in v4)}
    if v6:  # BEP 7
        body["peers6"] = b"".join(socket.inet_pton(socket.AF_INET6, p.ip) + struct.pack(">H", p.port) for p in v6)
    return body


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests and the demo command print what matters themselves

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        # latin-1 maps each %XX escape to one code point, so binary info-hashes survive intact.
        query = parse_qs(url.query, keep_blank_values=True, encoding="latin-1")
        if url.path == "/announce":
            self._send(self._announce(query))
        elif url.path == "/scrape":
            hashes = [v.encode("latin-1") for v in query.get("info_hash", [])]
            self._send(bencode({"files": self.server.state.scrape(hashes)}))
        elif url.path == "/":
            self._send(READY_BODY)
        else:
            self._send(b"not found\n", status=404)

    def _announce(self, query: dict[str, list[str]]) -> bytes:
        try:
            request = Announce.parse(query)
        except AnnounceError as exc:
            return bencode({"failure reason": str(exc)})
        peers, seeds, leechers = self.server.state.announce(self.client_address[0], request)
        interval = self.server.interval
        return bencode({"interval": interval, "min interval": min(5, interval), "complete": seeds,
                        "incomplete": leechers,
                        **peer_list(peers, compact=request.compact, no_peer_id=request.no_peer_id)})

    def _send(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: TrackerState, interval: int) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.interval = interval

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hung up before the answer (e.g. a session shutting down): not our error
        super().handle_error(request, client_address)


class Tracker:
    """The tracker in a background thread. `with Tracker() as t:` … `t.announce_url`.

    Binds 127.0.0.1 on a free port unless told otherwise. `interval` is what clients are told to wait
    between announces; peers silent for 3 intervals are dropped.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, interval: int = 60) -> None:
        self.host, self.requested_port, self.interval = host, port, interval
        self.state = TrackerState(peer_ttl=3 * interval)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Tracker:
        if self._server is None:
            self._server = _Server((self.host, self.requested_port), self.state, self.interval)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"tracker-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("tracker is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def announce_url(self) -> str:
        return f"{self.url}/announce"

    @property
    def scrape_url(self) -> str:
        return f"{self.url}/scrape"

    def peers(self, info_hash: str | bytes) -> list[Peer]:
        """Peers currently known for a torrent (hex or raw info-hash)."""
        raw = bytes.fromhex(info_hash) if isinstance(info_hash, str) else info_hash
        return self.state.peers(raw)
