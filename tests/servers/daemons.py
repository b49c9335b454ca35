"""Real torrent daemons on 127.0.0.1 for the servers tests and the poll benchmark.

transmission-daemon 3.00, rtorrent 0.9.8 (SCGI on a unix socket and on TCP) and qbittorrent-nox 4.5.2, each
started under its own directory with free ports, following ../shared/research/torrent_daemons.md §4 and §9:
- every daemon gets a fresh config dir (transmission and qBittorrent persist torrents, rtorrent has a lock);
- readiness is checked on the daemon's identity, not a port (a second transmission on taken ports keeps
  running and only logs the bind failure);
- qBittorrent's login ban is off (`MaxAuthenticationFailCount=0`): the wrong-password tests would trip it;
- rtorrent has no HTTP front of its own; `ScgiHttpBridge` plays the nginx/lighttpd `/RPC2` that real setups
  put before it (basic auth, then the XML-RPC body forwarded over SCGI), so the HTTP transport is tested
  against the real daemon.

A missing binary fails the test (never skips): `make debs-test` installs them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests import procs
from tests.procs import free_port

USERNAME = "flotilla"
PASSWORD = "s3cret-pass"  # a throwaway daemon's password


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `make debs-test` (apt-get install {name}).")
    return path


@dataclass
class Daemon:
    """One running daemon: its kind, where it listens, credentials, folders and process."""

    kind: str
    root: Path
    rpc_port: int = 0
    peer_port: int = 0
    username: str = USERNAME
    password: str = PASSWORD
    download_dir: Path = field(default_factory=Path)
    socket_path: str = ""
    proc: subprocess.Popen | None = None
    log: Path = field(default_factory=Path)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def server_fields(self, **extra) -> dict:
        """The TorrentServer fields that reach this daemon."""
        fields = {"type": self.kind, "host": "127.0.0.1", "port": self.rpc_port, "username": self.username,
                  "password": self.password}
        if self.kind == "rtorrent":
            fields.update(username="", password="", transport="scgi", host="", port=None,
                          socket_path=self.socket_path)
        fields.update(extra)
        return fields


# --- transmission-daemon -----------------------------------------------------------------------------------


def start_transmission(root: Path) -> Daemon:
    binary = require_binary("transmission-daemon")
    d = Daemon("transmission", root, rpc_port=free_port(), peer_port=free_port(), download_dir=root / "dl",
               log=root / "transmission.log")
    conf = root / "config"
    conf.mkdir(parents=True)
    d.download_dir.mkdir()
    settings = {
        "rpc-enabled": True, "rpc-bind-address": "127.0.0.1", "rpc-port": d.rpc_port,
        "rpc-authentication-required": True, "rpc-username": d.username, "rpc-password": d.password,
        "rpc-whitelist-enabled": False, "rpc-host-whitelist-enabled": False,
        "download-dir": str(d.download_dir), "incomplete-dir-enabled": False, "watch-dir-enabled": False,
        "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
        "peer-port": d.peer_port, "peer-port-random-on-start": False, "port-forwarding-enabled": False,
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
        "encryption": 1, "speed-limit-down-enabled": False, "speed-limit-up-enabled": False,
        "alt-speed-enabled": False, "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
        "start-added-torrents": True, "message-level": 2, "umask": 18,
        "download-queue-enabled": False, "seed-queue-enabled": False, "queue-stalled-enabled": False,
    }
    (conf / "settings.json").write_text(json.dumps(settings))
    with d.log.open("wb") as log:
        d.proc = subprocess.Popen([binary, "-f", "-g", str(conf)], stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    def ready() -> bool:
        import transmission_rpc

        client = transmission_rpc.Client(host="127.0.0.1", port=d.rpc_port, username=d.username,
                                         password=d.password, timeout=5)
        try:
            return Path(client.get_session().config_dir).resolve() == conf.resolve()
        finally:
            client._http_session.close()

    procs.wait_ready(ready, "transmission-daemon", d.proc, d.log)
    return d


# --- rtorrent ---------------------------------------------------------------------------------------------


def start_rtorrent(root: Path, *, scgi_port: int | None = None) -> Daemon:
    """rtorrent with SCGI on a unix socket (`socket_path`) and, when `scgi_port` is given, on 127.0.0.1 TCP
    instead (rtorrent opens one SCGI endpoint)."""
    binary = require_binary("rtorrent")
    d = Daemon("rtorrent", root, peer_port=free_port(), download_dir=root / "dl", log=root / "rtorrent.log",
               username="", password="")
    for sub in ("dl", "session"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    d.socket_path = str(root / "rpc.sock")
    scgi = (f"network.scgi.open_port = 127.0.0.1:{scgi_port}" if scgi_port
            else f"network.scgi.open_local = {d.socket_path}")
    d.rpc_port = scgi_port or 0
    rc = f"""
directory.default.set = {d.download_dir}
session.path.set = {root / 'session'}
network.bind_address.set = 127.0.0.1
network.local_address.set = 127.0.0.1
network.port_range.set = {d.peer_port}-{d.peer_port}
network.port_random.set = no
{scgi}
network.xmlrpc.size_limit.set = 16M
dht.mode.set = disable
protocol.pex.set = no
trackers.use_udp.set = no
protocol.encryption.set = allow_incoming,try_outgoing,enable_retry
throttle.min_peers.normal.set = 1
throttle.max_uploads.set = 100
system.daemon.set = true
log.open_file = "main", {root / 'rtorrent-main.log'}
log.add_output = "info", "main"
"""
    (root / "rtorrent.rc").write_text(rc)
    with d.log.open("wb") as log:
        d.proc = subprocess.Popen([binary, "-n", "-o", f"import={root / 'rtorrent.rc'}"], cwd=root,
                                  env={**os.environ, "HOME": str(root)}, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    def ready() -> bool:
        from servers.clients.rtorrent import ScgiTransport, rpc_proxy

        transport = ScgiTransport(("127.0.0.1", scgi_port) if scgi_port else d.socket_path, timeout=5)
        return bool(rpc_proxy(transport).directory.default() == str(d.download_dir))

    procs.wait_ready(ready, "rtorrent", d.proc, d.log)
    return d


class ScgiHttpBridge:
    """An HTTP `/RPC2` endpoint with basic auth that forwards XML-RPC bodies to rtorrent over SCGI — what a
    web server's SCGI module does in front of a real rtorrent."""

    def __init__(self, rtorrent: Daemon, username: str = USERNAME, password: str = PASSWORD) -> None:
        from servers.clients.rtorrent import scgi_request

        expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        target = rtorrent.socket_path or ("127.0.0.1", rtorrent.rpc_port)
        self.requests = 0

        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                bridge.requests += 1
                if self.path != "/RPC2" or self.headers.get("Authorization") != expected:
                    self.send_response(401 if self.path == "/RPC2" else 404)
                    self.send_header("WWW-Authenticate", 'Basic realm="rtorrent"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = scgi_request(target, body, timeout=30)
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.username, self.password = username, password
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def server_fields(self, **extra) -> dict:
        return {"type": "rtorrent", "transport": "http", "host": "127.0.0.1", "port": self.port,
                "rpc_path": "/RPC2", "username": self.username, "password": self.password, **extra}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- qbittorrent-nox --------------------------------------------------------------------------------------


def qbittorrent_password_line(password: str) -> str:
    """The PBKDF2 entry qBittorrent 4.2+ keeps for its WebUI password (verified to log in, research §4.4)."""
    salt = os.urandom(16)
    derived = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 100000, 64)
    pair = f"{base64.b64encode(salt).decode()}:{base64.b64encode(derived).decode()}"
    return f'WebUI\\Password_PBKDF2="@ByteArray({pair})"'


def start_qbittorrent(root: Path) -> Daemon:
    binary = require_binary("qbittorrent-nox")
    d = Daemon("qbittorrent", root, rpc_port=free_port(), peer_port=free_port(), download_dir=root / "dl",
               log=root / "qbittorrent.log")
    conf = root / "profile" / "qBittorrent" / "config"
    conf.mkdir(parents=True)
    d.download_dir.mkdir()
    (conf / "qBittorrent.conf").write_text(f"""[LegalNotice]
Accepted=true

[BitTorrent]
Session\\Port={d.peer_port}
Session\\InterfaceAddress=127.0.0.1
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\DefaultSavePath={d.download_dir}
Session\\TempPathEnabled=false
Session\\MultiConnectionsPerIp=true
Session\\QueueingSystemEnabled=false
Session\\AnonymousModeEnabled=false

[Preferences]
Connection\\UPnP=false
General\\Locale=en
WebUI\\Enabled=true
WebUI\\Address=127.0.0.1
WebUI\\Port={d.rpc_port}
WebUI\\LocalHostAuth=true
WebUI\\MaxAuthenticationFailCount=0
WebUI\\CSRFProtection=true
WebUI\\HostHeaderValidation=false
WebUI\\Username={d.username}
{qbittorrent_password_line(d.password)}
""")
    with d.log.open("wb") as log:
        d.proc = subprocess.Popen([binary, f"--profile={root / 'profile'}", f"--webui-port={d.rpc_port}"],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "HOME": str(root)}, start_new_session=True)

    def ready() -> bool:
        with httpx.Client(base_url=f"http://127.0.0.1:{d.rpc_port}", timeout=5) as http:
            answer = http.post("/api/v2/auth/login", data={"username": d.username, "password": d.password})
            if answer.text != "Ok.":
                return False
            prefs = http.get("/api/v2/app/preferences").json()
            return Path(prefs["save_path"]).resolve() == d.download_dir.resolve()

    procs.wait_ready(ready, "qbittorrent-nox", d.proc, d.log)
    return d


STARTERS = {"transmission": start_transmission, "rtorrent": start_rtorrent, "qbittorrent": start_qbittorrent}


@contextlib.contextmanager
def running(kind: str, root: Path, **kwargs):
    daemon = STARTERS[kind](root, **kwargs)
    try:
        yield daemon
    finally:
        daemon.stop()


def module_fixture(kind: str):
    """A module-scoped pytest fixture named `kind` that runs one daemon of that kind: tests/servers and
    tests/browser declare theirs with it (`transmission = daemons.module_fixture("transmission")`). Starting a
    daemon per test would dominate the run."""
    import pytest  # here, not at the top: the poll benchmark imports this module without pytest

    @pytest.fixture(scope="module", name=kind)
    def daemon_fixture(tmp_path_factory):
        with running(kind, tmp_path_factory.mktemp(kind)) as daemon:
            yield daemon

    return daemon_fixture


def wait_until(condition, what: str, timeout: float = 60.0, interval: float = 0.2, describe=None):
    """Poll `condition()` until truthy (a deadline for slow daemons, not a timing assertion). On timeout,
    `describe()` (when given) says what the daemon showed instead."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    seen = describe() if describe else last
    raise AssertionError(f"timed out waiting for {what} (last: {seen!r})")
