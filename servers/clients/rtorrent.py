"""rTorrent over XML-RPC: SCGI on a unix socket or TCP (its own endpoint), or HTTP(S) `/RPC2` behind a web
server (basic auth). Standard-library `xmlrpc.client` with a small SCGI transport.

All torrents come from ONE `d.multicall2` request; with files, the per-torrent `f.multicall`s ride in the
same `system.multicall`. Hashes come back uppercase; 64-bit numbers as `<i8>`.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
import xmlrpc.client
from collections.abc import Sequence
from pathlib import PurePosixPath

from servers.clients.base import (
    ClientError,
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

FIELDS = ["d.hash=", "d.name=", "d.state=", "d.is_active=", "d.complete=", "d.completed_bytes=", "d.size_bytes=",
          "d.left_bytes=", "d.up.total=", "d.ratio=", "d.down.rate=", "d.up.rate=", "d.peers_connected=",
          "d.peers_complete=", "d.directory_base=", "d.is_meta=", "d.message=", "d.hashing=",
          "d.timestamp.finished=", "d.load_date=", "d.is_multi_file=", "d.directory="]
FILE_FIELDS = ["f.path=", "f.size_bytes=", "f.completed_chunks=", "f.size_chunks="]
SCGI_HEADERS = b"CONTENT_LENGTH\x00%d\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/RPC2\x00"
MAX_RESPONSE = 256 * 1024 * 1024
NOT_FOUND_FAULT = -501  # "Could not find info-hash."


def scgi_request(address: str | tuple[str, int], body: bytes, *, timeout: float) -> bytes:
    """One SCGI request (netstring headers + body); returns the XML body without the CGI header block."""
    headers = SCGI_HEADERS % len(body)
    with _scgi_socket(address, timeout) as sock:
        sock.sendall(b"%d:%s," % (len(headers), headers) + body)
        chunks, size = [], 0
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_RESPONSE:
                raise ClientError("rTorrent's answer is too large.", code="server_error")
    response = b"".join(chunks)
    head, sep, xml = response.partition(b"\r\n\r\n")
    if not sep:
        head, sep, xml = response.partition(b"\n\n")
    if not sep:
        raise ClientError("rTorrent sent an answer that is not SCGI.", code="server_error")
    status = next((line for line in head.split(b"\n") if line.lower().startswith(b"status:")), b"")
    if status and not status.split(b":", 1)[1].strip().startswith(b"200"):
        raise ClientError(f"rTorrent answered {status.decode(errors='replace')[:60]}.", code="server_error")
    return xml


def _scgi_socket(address: str | tuple[str, int], timeout: float) -> socket.socket:
    """A connected socket: a unix socket path, or a host and port (IPv4 or IPv6, as the name resolves)."""
    if not isinstance(address, str):
        return socket.create_connection(address, timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


class ScgiTransport(xmlrpc.client.Transport):
    """xmlrpc.client transport speaking SCGI: `address` is a unix socket path or a (host, port) pair."""

    def __init__(self, address: str | tuple[str, int], timeout: float = 10.0, on_request=None) -> None:
        super().__init__()
        self.address, self.timeout, self.on_request = address, timeout, on_request

    def request(self, host, handler, request_body, verbose=False):
        if self.on_request:
            self.on_request()
        xml = scgi_request(self.address, request_body, timeout=self.timeout)
        parser, unmarshaller = self.getparser()
        parser.feed(xml)
        parser.close()
        return unmarshaller.close()


class _HttpTransport(xmlrpc.client.SafeTransport):
    """HTTP(S) with a timeout and a request counter (xmlrpc's own transports have neither), and basic auth
    sent as a header: credentials in the URL would be quoted in xmlrpc's ProtocolError (`user:pass@host`)."""

    def __init__(self, *, tls: bool, timeout: float, on_request=None, username: str = "", password: str = "") -> None:
        super().__init__(context=ssl.create_default_context() if tls else None)
        self.tls, self.timeout, self.on_request = tls, timeout, on_request
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorization = [("Authorization", f"Basic {token}")] if username else []

    def make_connection(self, host):
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        chost, self._extra_headers, _x509 = self.get_host_info(host)
        self._extra_headers = [*self._extra_headers, *self.authorization]
        if self.tls:
            conn = http.client.HTTPSConnection(chost, timeout=self.timeout, context=self.context)
        else:
            conn = http.client.HTTPConnection(chost, timeout=self.timeout)
        self._connection = host, conn
        return conn

    def single_request(self, host, handler, request_body, verbose=False):
        if self.on_request:
            self.on_request()
        return super().single_request(host, handler, request_body, verbose)


def rpc_proxy(transport: xmlrpc.client.Transport, uri: str = "http://rtorrent/RPC2") -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(uri, transport=transport, use_builtin_types=True)


class RTorrentClient(TorrentClient):
    kind = "rtorrent"

    def __init__(self, *, transport: str = "scgi", host: str = "", port: int | None = None, tls: bool = False,
                 path: str = "", socket_path: str = "", username: str = "", password: str = "",
                 timeout: float = 10.0) -> None:
        super().__init__()
        if transport == "http":
            uri = f"{'https' if tls else 'http'}://{url_host(host)}:{port}{path or '/RPC2'}"
            self._rpc = rpc_proxy(_HttpTransport(tls=tls, timeout=timeout, on_request=self._count,
                                                 username=username, password=password), uri)
        else:
            address = socket_path or (host, int(port or 0))
            self._rpc = rpc_proxy(ScgiTransport(address, timeout, on_request=self._count))

    def _count(self) -> None:
        self.calls += 1

    def _call(self, func):
        try:
            with unusable_settings():
                return func(self._rpc)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode == NOT_FOUND_FAULT:
                raise TorrentNotFound() from exc
            raise ClientError(f"rTorrent refused the request: {exc.faultString[:200]}", code="server_refused",
                              permanent=True) from exc
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode in (401, 403):
                raise ClientError("rTorrent's web server refused the username or password.", code="server_auth",
                                  permanent=True) from exc
            if exc.errcode == 404:
                raise ClientError("No XML-RPC endpoint at this path (check the RPC path).", code="server_not_found",
                                  permanent=True) from exc
            raise ClientError(f"rTorrent's web server answered HTTP {exc.errcode}.", code="server_error") from exc
        except TimeoutError as exc:
            raise ClientError("rTorrent did not answer in time.", code="server_timeout") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError("Cannot connect to rTorrent (is it running, and is the address or socket right?).",
                              code="server_unreachable") from exc
        except xmlrpc.client.ResponseError as exc:
            raise ClientError("rTorrent sent an answer that is not XML-RPC.", code="server_error") from exc

    # --- the interface --------------------------------------------------------------------------------------

    def list(self, hashes: Sequence[str] | None = None, *, with_files: bool = False) -> list[Torrent]:
        wanted = {normalize_hash(h) for h in hashes} if hashes is not None else None
        if wanted == set():
            return []
        if not with_files:
            rows = self._call(lambda rpc: rpc.d.multicall2("", "main", *FIELDS))
            return [t for t in _unique(map(_torrent, rows)) if wanted is None or t.hash in wanted]
        if wanted is None:
            # Files of every torrent: the listing first, then one system.multicall of every f.multicall.
            rows = self._call(lambda rpc: rpc.d.multicall2("", "main", *FIELDS))
            wanted = {row[0].lower() for row in rows}
        # ONE request: the listing plus each wanted torrent's files.
        calls = [{"methodName": "d.multicall2", "params": ["", "main", *FIELDS]}]
        order = sorted(wanted)
        calls += [{"methodName": "f.multicall", "params": [h.upper(), "", *FILE_FIELDS]} for h in order]
        results = self._call(lambda rpc: rpc.system.multicall(calls))
        files_by_hash = {}
        for info_hash, result in zip(order, results[1:], strict=True):
            if isinstance(result, list) and result:  # a fault (unknown hash) comes back as a dict
                files_by_hash[info_hash] = result[0]
        torrents = []
        for row in _unwrap(results[0]):
            torrent = _torrent(row)
            if torrent.hash not in wanted:
                continue
            if torrent.hash in files_by_hash and torrent.has_metadata:
                torrent.files = _files(torrent, row, files_by_hash[torrent.hash])
            torrents.append(torrent)
        return _unique(torrents)

    def add_torrent(self, data: bytes, *, download_dir: str = "", paused: bool = False) -> None:
        method = "load.raw" if paused else "load.raw_start"
        self._call(lambda rpc: getattr(rpc, method)("", xmlrpc.client.Binary(data), *_dir_commands(download_dir)))

    def add_magnet(self, magnet: str, *, download_dir: str = "", paused: bool = False) -> None:
        method = "load.normal" if paused else "load.start"
        self._call(lambda rpc: getattr(rpc, method)("", magnet, *_dir_commands(download_dir)))

    def start(self, info_hash: str) -> None:
        key = normalize_hash(info_hash).upper()
        results = self._call(lambda rpc: rpc.system.multicall([{"methodName": "d.open", "params": [key]},
                                                               {"methodName": "d.start", "params": [key]}]))
        for result in results:
            _unwrap(result)

    def stop(self, info_hash: str) -> None:
        key = normalize_hash(info_hash).upper()
        self._call(lambda rpc: rpc.d.stop(key))

    def remove(self, info_hash: str, *, delete_data: bool) -> None:
        key = normalize_hash(info_hash).upper()
        if not delete_data:
            self._call(lambda rpc: rpc.d.erase(key))
            return
        # rTorrent never deletes data itself; clients (ruTorrent, Flood) erase, then remove the payload on the
        # server host. The path comes from rTorrent itself, so it is the torrent's own data and nothing else.
        base = self._call(lambda rpc: rpc.d.multicall2(
            "", "main", "d.hash=", "d.directory=", "d.directory_base=", "d.name=", "d.is_multi_file=", "d.is_meta="))
        row = next((r for r in base if r[0].upper() == key), None)
        if row is None:
            raise TorrentNotFound()
        _, directory, _base, name, multi, is_meta = row
        # d.directory is the folder itself for a folder torrent, the folder holding the file otherwise.
        target = directory if multi else f"{directory.rstrip('/')}/{name}"
        self._call(lambda rpc: rpc.d.erase(key))
        if not is_meta and name and target and target.rstrip("/") not in ("", "/"):
            self._call(lambda rpc: rpc.execute.throw("", "rm", "-rf", "--", target))

    def check(self) -> ServerInfo:
        started = time.monotonic()
        version = self._call(lambda rpc: rpc.system.client_version())
        return ServerInfo(version=f"rTorrent {version}", latency_ms=round((time.monotonic() - started) * 1000, 1))


def _unique(torrents) -> list[Torrent]:
    """One entry per hash. While a magnet's metadata arrives, rTorrent replaces its `<hash>.meta` download by
    the real one (same hash), and a listing can catch both: the real one wins."""
    by_hash: dict[str, Torrent] = {}
    for torrent in torrents:
        known = by_hash.get(torrent.hash)
        if known is None or (torrent.has_metadata and not known.has_metadata):
            by_hash[torrent.hash] = torrent
    return list(by_hash.values())


def _dir_commands(download_dir: str) -> list[str]:
    # d.directory.set puts a folder torrent in <dir>/<name>, like the other servers' save paths.
    return [f'd.directory.set="{download_dir}"'] if download_dir else []


def _unwrap(result):
    """A system.multicall result is [value] per call, or a fault dict (faults are not raised there)."""
    if isinstance(result, dict):
        if result.get("faultCode") == NOT_FOUND_FAULT:
            raise TorrentNotFound()
        raise ClientError(f"rTorrent refused the request: {result.get('faultString', '')[:200]}",
                          code="server_refused", permanent=True)
    return result[0]


def _torrent(row: list) -> Torrent:
    (info_hash, name, state, active, complete, done, size, left, uploaded, ratio, down, up, peers, seeds,
     _directory_base, is_meta, message, hashing, finished, loaded, multi, directory) = row
    has_metadata = not is_meta
    # d.state 0 is a stop (ours, or any UI's); inactive while started is rTorrent's hash queue or a "pause".
    if hashing:
        status = State.CHECKING
    elif not state:
        status = State.STOPPED
    elif not active:
        status = State.QUEUED
    elif is_meta:
        status = State.METADATA
    elif complete:
        status = State.SEEDING
    else:
        status = State.DOWNLOADING
    down = int(down)
    return Torrent(
        hash=info_hash.lower(), name=name, state=status, progress=(done / size) if size and has_metadata else 0.0,
        size=int(size) if has_metadata else 0, done=int(done) if has_metadata else 0, uploaded=int(uploaded),
        ratio=int(ratio) / 1000, download_rate=down, upload_rate=int(up),
        eta=clamp_eta(left / down) if down and left else (0 if complete else None), peers=int(peers),
        seeds=int(seeds), seeding_time=int(time.time() - finished) if complete and finished else None,
        # Like the other servers: the folder that holds the torrent's content (for a folder torrent
        # d.directory is <save path>/<name>).
        save_path=str(PurePosixPath(directory).parent) if multi and directory else directory,
        has_metadata=has_metadata, error=message or "", added_at=int(loaded) or None,
    )


def _files(torrent: Torrent, row: list, rows: list) -> list[TorrentFile]:
    multi = row[20]
    prefix = f"{torrent.name}/" if multi else ""
    files = []
    for index, (path, size, done_chunks, chunks) in enumerate(rows):
        done = size if chunks and done_chunks >= chunks else int(size * done_chunks / chunks) if chunks else 0
        files.append(TorrentFile(index, f"{prefix}{path}" if multi else torrent.name, int(size), int(done)))
    return files
