"""A faithful fake of Seedr.cc's V1 API, as seedrcc 2.1.2 speaks it, over real HTTP on 127.0.0.1.

Seedr cannot be reached from here, so Flotilla's Seedr backend is tested against this server. It answers
the requests seedrcc really sends (paths, query strings, urlencoded and multipart bodies, client ids) with
the bodies the real service returns (see ../shared/research/seedr_streaming_anchors.md, sections 1.4 to 1.10):

- OAuth: `POST /oauth_test/token.php` (password grant for `seedr_chrome`, refresh grant) and the device
  flow `GET /api/device/code` + `GET /api/device/authorize` (`authorization_pending` until someone approves
  the user code on `/devices`, then an access token; authorizing again later is how a device refreshes).
- Resources: `/oauth_test/resource.php?access_token=…&func=…` for list_contents, add_torrent, fetch_file,
  create_empty_archive, delete, remove_wishlist, get_settings, get_memory_bandwidth, get_devices.
  An expired access token answers `{"error": "expired_token"}` (seedrcc refreshes and retries once); an
  unknown one 401 `access_denied`.
- Torrents progress by `progress_step` percent each time the owner lists the root folder (a deterministic
  clock for tests); a finished torrent becomes a folder named after it, holding its files. Dead torrents
  stay at 0 % with no seeders, forever, like real dead magnets.
- Limits of a free account: `max_active` running torrents (a second one is answered 413
  `queue_full_added_to_wishlist` and wishlisted), `space_max` bytes (`not_enough_space_added_to_wishlist`).
- `fetch_file` returns a signed, expiring `ff_get` link serving the file's real bytes with HTTP Range
  (206/416) and HEAD, at most two simultaneous reads per link (a third gets 429). `create_empty_archive` returns a
  `/zip/` link serving a stored zip of the folder (no Range: Seedr's zips are not resumable).
- Faults on demand: `fail_next(func, status, body)`, `cut_next_download(after_bytes)`, `expire_tokens()`,
  `revoke_refresh_tokens()`, `evil_archive_entries`, `drift_magnet_field` (the 404 on `torrent_magnet`
  reported in seedrcc #16, where the field `magnet` still works).

File bytes are deterministic (`file_bytes`/`file_sha256`), so a test can check what landed on disk.

Start it by hand for a demo::

    python -m tests.fakes.seedr_fake --port 8765 --user demo@example.com --password demo

then point Flotilla at it with `SEEDR_API_URL=http://127.0.0.1:8765/api` and
`SEEDR_OAUTH_URL=http://127.0.0.1:8765/oauth_test`; approve device codes on http://127.0.0.1:8765/devices.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import hashlib
import hmac
import html
import io
import itertools
import json
import random
import re
import secrets
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import bencodepy

DEVICE_CLIENT_ID = "seedr_xbmc"
PASSWORD_CLIENT_ID = "seedr_chrome"
PATTERN_LEN = 1_048_583  # a prime: an offset error in a Range resume cannot hide behind a repeat
DEFAULT_FILE_SIZE = 300_000
CHUNK = 256 * 1024
_patterns: dict[str, bytes] = {}
_patterns_lock = threading.Lock()


# --- deterministic content ------------------------------------------------------------------------


def _pattern(seed: str) -> bytes:
    """PATTERN_LEN random bytes for a seed, twice over, so any window of up to PATTERN_LEN is one slice."""
    with _patterns_lock:
        if seed not in _patterns:
            if len(_patterns) > 64:
                _patterns.clear()
            block = random.Random(seed).randbytes(PATTERN_LEN)
            _patterns[seed] = block + block
        return _patterns[seed]


def content_seed(info_hash: str, path: str) -> str:
    return f"{info_hash.lower()}/{path}"


def iter_bytes(seed: str, start: int, end: int, chunk: int = CHUNK) -> Iterator[memoryview]:
    """Bytes [start, end) of the file with this seed, in chunks (never the whole file in memory)."""
    pattern = memoryview(_pattern(seed))
    position = start
    while position < end:
        offset = position % PATTERN_LEN
        n = min(chunk, end - position, PATTERN_LEN)
        yield pattern[offset:offset + n]
        position += n


def file_bytes(info_hash: str, path: str, size: int) -> bytes:
    return b"".join(bytes(part) for part in iter_bytes(content_seed(info_hash, path), 0, size))


def file_sha256(info_hash: str, path: str, size: int) -> str:
    digest = hashlib.sha256()
    for part in iter_bytes(content_seed(info_hash, path), 0, size, chunk=1024 * 1024):
        digest.update(part)
    return digest.hexdigest()


# --- the service's state --------------------------------------------------------------------------


@dataclass
class Spec:
    """What a torrent turns out to be once Seedr fetched its metadata: a name and its files (paths relative
    to the torrent's folder, as in a .torrent's file list; sizes)."""

    name: str
    files: list[tuple[str, int]]
    dead: bool = False

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files)


@dataclass
class Torrent:
    id: int
    hash: str
    spec: Spec
    progress: float = 0.0
    added_at: float = field(default_factory=time.time)


@dataclass
class File:
    folder_file_id: int
    name: str
    size: int
    folder_id: int
    seed: str

    @property
    def file_id(self) -> int:  # a different number on purpose: fetch_file wants folder_file_id
        return self.folder_file_id + 500_000


@dataclass
class Folder:
    id: int
    name: str
    parent: int
    created_at: float = field(default_factory=time.time)


@dataclass
class Account:
    user_id: int
    username: str
    password: str
    space_max: int = 5 * 1024**3
    bandwidth_max: int = 0
    bandwidth_used: int = 0
    premium: int = 0
    max_active: int = 1
    torrents: dict[int, Torrent] = field(default_factory=dict)
    folders: dict[int, Folder] = field(default_factory=dict)
    files: dict[int, File] = field(default_factory=dict)
    wishlist: list[dict] = field(default_factory=list)

    def space_used(self) -> int:
        return sum(f.size for f in self.files.values()) + sum(t.spec.size for t in self.torrents.values())

    def is_empty(self) -> bool:
        return not (self.torrents or self.folders or self.files)


@dataclass
class DeviceGrant:
    device_code: str
    user_code: str
    expires_at: float
    account: Account | None = None
    revoked: bool = False


class FakeSeedr:
    """The service: accounts, tokens, torrents and files, behind one lock; `serve()` runs it over HTTP."""

    def __init__(self, *, progress_step: float = 50.0, device_interval: int = 5, token_ttl: int = 2_592_000):
        self.lock = threading.RLock()
        self.progress_step = progress_step
        self.device_interval = device_interval
        self.token_ttl = token_ttl
        self.secret = secrets.token_bytes(16)
        self.base_url = ""
        self.accounts: dict[str, Account] = {}
        self.catalogue: dict[str, Spec] = {}
        self.access_tokens: dict[str, dict] = {}  # token -> {"account", "expired", "client_id"}
        self.refresh_tokens: dict[str, Account] = {}
        self.devices: dict[str, DeviceGrant] = {}
        self.archives: dict[int, tuple[Account, int]] = {}
        self.evil_archive_entries: list[tuple[str, bytes, bool]] = []  # (name, data, is_symlink)
        self.drift_magnet_field = False
        self.requests: list[dict] = []  # every request: method, path, func, form keys, range
        self.stats = {"max_active_seen": 0, "bytes_served": 0}
        self._faults: dict[str, list[tuple[int, dict]]] = {}
        self._cuts: list[int] = []
        self._holds: list[int] = []
        self.held = threading.Event()  # set while a download is held (see hold_next_download)
        self._release = threading.Event()
        self._reads: dict[str, int] = {}
        self._ids = itertools.count(1001)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control (tests and the demo) -------------------------------------------------------------

    def add_account(self, username: str, password: str, **limits) -> Account:
        with self.lock:
            account = Account(user_id=next(self._ids), username=username, password=password, **limits)
            self.accounts[username] = account
            return account

    def account(self, username: str) -> Account:
        return self.accounts[username]

    def define(self, info_hash: str, name: str, files: list[tuple[str, int]] | None = None, *,
               dead: bool = False) -> Spec:
        """What a magnet with this info-hash resolves to (default: one file `<name>.bin`)."""
        spec = Spec(name=name, files=files or [(f"{name}.bin", DEFAULT_FILE_SIZE)], dead=dead)
        with self.lock:
            self.catalogue[info_hash.lower()] = spec
        return spec

    def approve(self, user_code: str, username: str) -> None:
        with self.lock:
            grant = next(g for g in self.devices.values() if g.user_code == user_code.upper())
            grant.account = self.accounts[username]

    def fail_next(self, func: str, status: int, body: dict, times: int = 1, headers: dict | None = None) -> None:
        """The next `times` calls of `func` (a resource func, "token", "device_code", "ff_get") answer this
        (with `headers`, e.g. the `Retry-After: 5` some of Seedr's file hosts send with a 404)."""
        with self.lock:
            self._faults.setdefault(func, []).extend([(status, body, headers or {})] * times)

    def cut_next_download(self, after_bytes: int) -> None:
        """The next file download sends its headers, `after_bytes` of body, then drops the connection."""
        with self.lock:
            self._cuts.append(after_bytes)

    def hold_next_download(self, after_bytes: int) -> None:
        """The next file download sends `after_bytes` of body and then stalls (the connection stays open)
        until `release_downloads()`: a transfer caught mid-way, deterministically."""
        with self.lock:
            self._holds.append(after_bytes)
            self._release.clear()

    def release_downloads(self) -> None:
        self._release.set()

    def expire_tokens(self, username: str | None = None) -> None:
        """Every access token (of one account) expires now: the next call answers `expired_token`."""
        with self.lock:
            for info in self.access_tokens.values():
                if username is None or info["account"].username == username:
                    info["expired"] = True

    def revoke_refresh_tokens(self, username: str | None = None) -> None:
        """Refresh tokens and device grants stop working: a refresh then fails with `invalid_grant`."""
        with self.lock:
            for token, account in list(self.refresh_tokens.items()):
                if username is None or account.username == username:
                    del self.refresh_tokens[token]
            for grant in self.devices.values():
                if grant.account and (username is None or grant.account.username == username):
                    grant.revoked = True

    def calls(self, func: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.get("func") == func)

    def snapshot(self, username: str) -> dict:
        with self.lock:
            account = self.accounts[username]
            return {
                "torrents": [{"id": t.id, "name": t.spec.name, "progress": t.progress}
                             for t in account.torrents.values()],
                "folders": [{"id": f.id, "name": f.name} for f in account.folders.values()],
                "files": [{"id": f.folder_file_id, "name": f.name} for f in account.files.values()],
                "wishlist": list(account.wishlist),
                "space_used": account.space_used(),
            }

    # --- running -----------------------------------------------------------------------------------

    def serve(self, port: int = 0, host: str = "127.0.0.1") -> FakeSeedr:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="seedr-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def oauth_url(self) -> str:
        return f"{self.base_url}/oauth_test"

    # --- tokens ------------------------------------------------------------------------------------

    def _issue(self, account: Account, client_id: str) -> str:
        token = secrets.token_hex(20)
        self.access_tokens[token] = {"account": account, "expired": False, "client_id": client_id}
        return token

    def token_grant(self, form: dict) -> tuple[int, dict]:
        grant, client_id = form.get("grant_type"), form.get("client_id")
        if client_id != PASSWORD_CLIENT_ID:
            return 401, {"error": "invalid_client", "error_description": "The client credentials are invalid"}
        if grant == "password":
            account = self.accounts.get(form.get("username", ""))
            if account is None or account.password != form.get("password") or form.get("type") != "login":
                return 401, {"error": "invalid_grant", "error_description": "Invalid username and password combination"}
            refresh = secrets.token_hex(20)
            self.refresh_tokens[refresh] = account
            return 200, {"access_token": self._issue(account, client_id), "expires_in": self.token_ttl,
                         "token_type": "Bearer", "scope": None, "refresh_token": refresh}
        if grant == "refresh_token":
            account = self.refresh_tokens.get(form.get("refresh_token", ""))
            if account is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            # V1 does not rotate refresh tokens: only a new access token comes back.
            return 200, {"access_token": self._issue(account, client_id), "expires_in": self.token_ttl,
                         "token_type": "Bearer", "scope": None}
        return 400, {"error": "unsupported_grant_type", "error_description": "The grant type was not recognized"}

    def device_code(self, query: dict) -> tuple[int, dict]:
        if query.get("client_id") != DEVICE_CLIENT_ID:
            return 400, {"error": "invalid_client"}
        grant = DeviceGrant(
            device_code=secrets.token_hex(20),
            user_code=f"{secrets.token_hex(2).upper()}-{secrets.randbelow(10_000):04d}",
            expires_at=time.time() + 1800,
        )
        self.devices[grant.device_code] = grant
        return 200, {"expires_in": 1800, "interval": self.device_interval, "device_code": grant.device_code,
                     "user_code": grant.user_code, "verification_url": f"{self.base_url}/devices"}

    def device_authorize(self, query: dict) -> tuple[int, dict]:
        grant = self.devices.get(query.get("device_code", ""))
        if query.get("client_id") != DEVICE_CLIENT_ID or grant is None or grant.revoked:
            return 400, {"error": "invalid_grant", "error_description": "The device code is not valid"}
        if grant.account is None:
            if time.time() > grant.expires_at:
                return 400, {"error": "expired_token", "error_description": "The device code has expired"}
            return 200, {"error": "authorization_pending"}
        # Authorizing again after approval is how a device refreshes: a fresh access token each time.
        return 200, {"access_token": self._issue(grant.account, DEVICE_CLIENT_ID), "expires_in": self.token_ttl,
                     "token_type": "Bearer", "scope": None}

    def authenticate(self, token: str) -> tuple[Account | None, tuple[int, dict] | None]:
        info = self.access_tokens.get(token)
        if info is None:
            return None, (401, {"result": False, "error": "access_denied"})
        if info["expired"]:
            return None, (200, {"error": "expired_token", "error_description": "The access token provided has expired"})
        return info["account"], None

    # --- resources ---------------------------------------------------------------------------------

    def resource(self, func: str, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        handler = getattr(self, f"r_{func}", None)
        if handler is None:
            return 404, {"result": False, "error": f"Unknown function {func}"}
        return handler(account, form, files)

    def _advance(self, account: Account) -> None:
        """The fake's clock: each root listing moves every live torrent on by `progress_step` percent."""
        for torrent in list(account.torrents.values()):
            if torrent.spec.dead:
                continue
            torrent.progress = min(100.0, torrent.progress + self.progress_step)
            if torrent.progress >= 100:
                self._complete(account, torrent)

    def _complete(self, account: Account, torrent: Torrent) -> None:
        del account.torrents[torrent.id]
        root = Folder(id=next(self._ids), name=torrent.spec.name, parent=0)
        account.folders[root.id] = root
        for path, size in torrent.spec.files:
            parent = root
            *dirs, name = path.split("/")
            for part in dirs:
                existing = next((f for f in account.folders.values() if f.parent == parent.id and f.name == part), None)
                if existing is None:
                    existing = Folder(id=next(self._ids), name=part, parent=parent.id)
                    account.folders[existing.id] = existing
                parent = existing
            f = File(folder_file_id=next(self._ids), name=name, size=size, folder_id=parent.id,
                     seed=content_seed(torrent.hash, path))
            account.files[f.folder_file_id] = f

    def _folder_size(self, account: Account, folder_id: int) -> int:
        size = sum(f.size for f in account.files.values() if f.folder_id == folder_id)
        return size + sum(self._folder_size(account, sub.id) for sub in account.folders.values()
                          if sub.parent == folder_id)

    def _folder_json(self, account: Account, folder: Folder) -> dict:
        return {"id": folder.id, "name": folder.name, "fullname": folder.name,
                "size": self._folder_size(account, folder.id), "last_update": _stamp(folder.created_at),
                "is_shared": False, "play_audio": False, "play_video": False}

    def _file_json(self, f: File) -> dict:
        return {"file_id": f.file_id, "folder_file_id": f.folder_file_id, "name": f.name, "size": f.size,
                "folder_id": f.folder_id, "hash": hashlib.md5(f.seed.encode()).hexdigest(),
                "last_update": _stamp(time.time()), "play_audio": False, "play_video": f.name.endswith(".mkv"),
                "video_progress": None, "is_lost": 0, "thumb": None}

    def _torrent_json(self, t: Torrent) -> dict:
        live = not t.spec.dead
        return {"id": t.id, "name": t.spec.name, "folder": "0", "size": t.spec.size, "hash": t.hash,
                "progress": f"{t.progress:g}", "last_update": _stamp(time.time()),
                "download_rate": 1_500_000 if live else 0, "upload_rate": 0, "torrent_quality": 3 if live else 0,
                "connected_to": 8 if live else 0, "downloading_from": 5 if live else 0, "uploading_to": 0,
                "seeders": 12 if live else 0, "leechers": 3 if live else 0, "warnings": "[]", "stopped": 0,
                "progress_url": f"{self.base_url}/progress/{t.id}?callback=cb"}

    def r_list_contents(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        folder_id = _int(form.get("content_id", "0"))
        if folder_id == 0:
            self._advance(account)
            body = {"folder_id": 0, "fullname": "root", "name": "root", "parent": -1, "timestamp": _stamp(time.time()),
                    "torrents": [self._torrent_json(t) for t in account.torrents.values()]}
        elif folder_id in account.folders:
            folder = account.folders[folder_id]
            body = {"folder_id": folder.id, "fullname": folder.name, "name": folder.name, "parent": folder.parent,
                    "timestamp": _stamp(folder.created_at), "torrents": []}
        else:
            return 200, {"result": False, "code": 404, "error": "Folder not found"}
        body.update(
            space_used=account.space_used(), space_max=account.space_max, saw_walkthrough=1, type="folder",
            t=[_stamp(time.time())], indexes=[],
            folders=[self._folder_json(account, f) for f in account.folders.values() if f.parent == folder_id],
            files=[self._file_json(f) for f in account.files.values() if f.folder_id == folder_id],
        )
        return 200, body

    def r_add_torrent(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        if self.drift_magnet_field and form.get("torrent_magnet"):
            return 404, {"status_code": 404, "reason_phrase": "not_found"}
        magnet = form.get("magnet") or form.get("torrent_magnet") or ""
        if "torrent_file" in files:
            parsed = _parse_torrent(files["torrent_file"])
            if parsed is None:
                return 200, {"result": "parsing_error", "code": 400}
            info_hash, spec = parsed
        elif magnet.startswith("magnet:?"):
            info_hash, name = _parse_magnet(magnet)
            spec = self.catalogue.get(info_hash) or Spec(name=name, files=[(f"{name}.bin", DEFAULT_FILE_SIZE)])
        else:
            return 200, {"result": False, "error": "no_torrent_passed", "code": 400}
        if any(t.hash == info_hash for t in account.torrents.values()):
            return 200, {"result": True, "code": 200}  # already downloading: no user_torrent_id
        wish = {"id": next(self._ids), "title": spec.name, "size": spec.size, "hash": info_hash,
                "added": _stamp(time.time())}
        if len(account.torrents) >= account.max_active:
            account.wishlist.append(wish)
            return 413, {"status_code": 413, "reason_phrase": "queue_full_added_to_wishlist"}
        if spec.size > account.space_max - account.space_used():
            account.wishlist.append(wish)
            return 200, {"result": "not_enough_space_added_to_wishlist", "code": 413, "wt": wish}
        torrent = Torrent(id=next(self._ids), hash=info_hash, spec=spec)
        account.torrents[torrent.id] = torrent
        self.stats["max_active_seen"] = max(self.stats["max_active_seen"], len(account.torrents))
        return 200, {"result": True, "user_torrent_id": torrent.id, "title": spec.name, "torrent_hash": info_hash,
                     "code": 200}

    def r_fetch_file(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        f = account.files.get(_int(form.get("folder_file_id")))
        if f is None:
            return 200, {"result": False, "code": 404, "error": "File not found"}
        expires = int(time.time()) + 86_400
        path = f"/ff_get/{account.user_id}/{f.folder_file_id}/{quote(f.name)}"
        return 200, {"result": True, "url": f"{self.base_url}{path}?st={self._sign(path, expires)}&e={expires}",
                     "name": f.name}

    def r_create_empty_archive(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        try:
            items = json.loads(form.get("archive_arr", ""))
            folder_id = int(items[0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            return 200, {"result": False, "code": 400, "error": "Bad archive_arr"}
        if folder_id not in account.folders:
            return 200, {"result": False, "code": 404, "error": "Folder not found"}
        archive_id = next(self._ids)
        self.archives[archive_id] = (account, folder_id)
        expires = int(time.time()) + 86_400
        path = f"/zip/{archive_id}"
        return 200, {"result": True, "archive_id": archive_id, "code": 200,
                     "archive_url": f"{self.base_url}{path}?st={self._sign(path, expires)}&e={expires}"}

    def r_delete(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        try:
            items = json.loads(form.get("delete_arr", ""))
        except ValueError:
            return 200, {"result": False, "code": 400, "error": "Bad delete_arr"}
        for item in items:
            kind, item_id = item.get("type"), _int(item.get("id"))
            if kind == "torrent" and item_id in account.torrents:
                del account.torrents[item_id]
            elif kind == "folder" and item_id in account.folders:
                self._delete_folder(account, item_id)
            elif kind == "file" and item_id in account.files:
                del account.files[item_id]
            else:
                return 200, {"result": False, "code": 404, "error": f"No such {kind}"}
        return 200, {"result": True, "code": 200}

    def _delete_folder(self, account: Account, folder_id: int) -> None:
        for sub in [f.id for f in account.folders.values() if f.parent == folder_id]:
            self._delete_folder(account, sub)
        for file_id in [f.folder_file_id for f in account.files.values() if f.folder_id == folder_id]:
            del account.files[file_id]
        del account.folders[folder_id]

    def r_remove_wishlist(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        before = len(account.wishlist)
        account.wishlist = [w for w in account.wishlist if str(w["id"]) != form.get("id")]
        return 200, {"result": len(account.wishlist) < before, "code": 200}

    def r_get_memory_bandwidth(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        return 200, {"bandwidth_used": account.bandwidth_used, "bandwidth_max": account.bandwidth_max,
                     "space_used": account.space_used(), "space_max": account.space_max,
                     "is_premium": account.premium}

    def r_get_settings(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        return 200, {
            "result": True, "code": 200, "country": "NL",
            "settings": {"allow_remote_access": True, "site_language": "en", "subtitles_language": "en",
                         "email_announcements": False, "email_newsletter": False},
            "account": {"username": account.username.split("@")[0], "user_id": account.user_id,
                        "premium": account.premium, "package_id": 11 if account.premium else 0,
                        "package_name": "Pro" if account.premium else "NON-PREMIUM",
                        "space_used": account.space_used(), "space_max": account.space_max,
                        "bandwidth_used": account.bandwidth_used, "email": account.username,
                        "wishlist": list(account.wishlist), "invites": 0, "invites_accepted": 0,
                        "max_invites": 5},
        }

    def r_get_devices(self, account: Account, form: dict, files: dict) -> tuple[int, dict]:
        devices = [{"client_id": DEVICE_CLIENT_ID, "client_name": "Kodi", "device_code": g.device_code[:8],
                    "tk": g.user_code} for g in self.devices.values() if g.account is account and not g.revoked]
        return 200, {"result": True, "devices": devices}

    # --- file links --------------------------------------------------------------------------------

    def _sign(self, path: str, expires: int) -> str:
        return hmac.new(self.secret, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()[:24]

    def check_link(self, path: str, query: dict) -> bool:
        expires = _int(query.get("e"))
        return expires > time.time() and hmac.compare_digest(query.get("st", ""), self._sign(path, expires))

    def take_fault(self, func: str) -> tuple[int, dict, dict] | None:
        with self.lock:
            queue = self._faults.get(func)
            return queue.pop(0) if queue else None

    def take_cut(self) -> int | None:
        with self.lock:
            return self._cuts.pop(0) if self._cuts else None

    def take_hold(self) -> int | None:
        with self.lock:
            return self._holds.pop(0) if self._holds else None

    def hold(self) -> None:
        """Stall the calling download until released (bounded, so a forgotten release cannot hang a test)."""
        self.held.set()
        self._release.wait(timeout=300)
        self.held.clear()

    def begin_read(self, link: str) -> bool:
        with self.lock:
            if self._reads.get(link, 0) >= 2:
                return False  # Seedr's CDN allows two simultaneous reads per signed URL
            self._reads[link] = self._reads.get(link, 0) + 1
            return True

    def end_read(self, link: str, sent: int, account: Account) -> None:
        with self.lock:
            self._reads[link] -= 1
            self.stats["bytes_served"] += sent
            account.bandwidth_used += sent

    def archive_bytes(self, account: Account, folder_id: int) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for path, f in self._walk(account, folder_id, account.folders[folder_id].name):
                archive.writestr(path, b"".join(bytes(p) for p in iter_bytes(f.seed, 0, f.size)))
            for name, data, is_symlink in self.evil_archive_entries:
                info = zipfile.ZipInfo(name)
                if is_symlink:
                    info.external_attr = (0o120777 << 16)
                archive.writestr(info, data)
        return out.getvalue()

    def _walk(self, account: Account, folder_id: int, prefix: str) -> Iterator[tuple[str, File]]:
        for f in account.files.values():
            if f.folder_id == folder_id:
                yield f"{prefix}/{f.name}", f
        for sub in account.folders.values():
            if sub.parent == folder_id:
                yield from self._walk(account, sub.id, f"{prefix}/{sub.name}")


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _parse_magnet(magnet: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(magnet).query)
    xt = next((v for v in query.get("xt", []) if v.startswith("urn:btih:")), "urn:btih:")
    info_hash = xt.split(":")[-1].lower()
    name = query.get("dn", [info_hash[:12]])[0]
    return info_hash, re.sub(r"[^\w.\- ]+", "_", name).strip() or info_hash[:12]


def _parse_torrent(data: bytes) -> tuple[str, Spec] | None:
    try:
        meta = bencodepy.decode(data)
        info = meta[b"info"]
        name = info[b"name"].decode()
        if b"files" in info:
            files = [("/".join(p.decode() for p in f[b"path"]), int(f[b"length"])) for f in info[b"files"]]
        else:
            files = [(name, int(info[b"length"]))]
    except Exception:
        return None
    return hashlib.sha1(bencodepy.encode(info)).hexdigest(), Spec(name=name, files=files)


# --- HTTP ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSeedr
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def log_message(self, format, *args):  # quiet: tests read fake.requests instead
        pass

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_HEAD(self):
        """Seedr's file hosts answer HEAD on a file link like GET, without the body (a player probes with it)."""
        if urlsplit(self.path).path.startswith("/ff_get/"):
            self._route("HEAD")
        else:
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        form, files = self._body()
        path = url.path
        record = {"method": method, "path": path, "func": query.get("func"), "form": sorted(form),
                  "files": sorted(files), "range": self.headers.get("Range")}
        fake = self.fake
        with fake.lock:
            fake.requests.append(record)
        try:
            if path == "/oauth_test/token.php" and method == "POST":
                record["func"] = "token"
                self._json(*(fake.take_fault("token") or self._locked(fake.token_grant, form)))
            elif path == "/api/device/code":
                record["func"] = "device_code"
                self._json(*(fake.take_fault("device_code") or self._locked(fake.device_code, query)))
            elif path == "/api/device/authorize":
                record["func"] = "device_authorize"
                self._json(*self._locked(fake.device_authorize, query))
            elif path == "/oauth_test/resource.php":
                self._resource(query, form, files)
            elif path.startswith("/ff_get/"):
                record["func"] = "ff_get"
                self._ff_get(url.path, query)
            elif path.startswith("/zip/"):
                record["func"] = "zip"
                self._zip(url.path, query)
            elif path == "/devices":
                self._devices_page(method, form)
            elif path == "/_fake/state":
                with fake.lock:
                    state = {name: fake.snapshot(name) for name in fake.accounts}
                self._json(200, state)
            else:
                self._json(404, {"status_code": 404, "reason_phrase": "not_found"})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _locked(self, fn, *args):
        with self.fake.lock:
            return fn(*args)

    def _body(self) -> tuple[dict, dict]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + raw
            )
            form, files = {}, {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if part.get_filename() is not None:
                    files[name] = payload
                else:
                    form[name] = payload.decode()
            return form, files
        return {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}, {}

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _resource(self, query: dict, form: dict, files: dict) -> None:
        fake, func = self.fake, query.get("func", "")
        with fake.lock:
            account, refusal = fake.authenticate(query.get("access_token", ""))
            if refusal:
                return self._json(*refusal)
            fault = fake.take_fault(func)
            if fault:
                return self._json(*fault)
            status, body = fake.resource(func, account, form, files)
        self._json(status, body)

    def _ff_get(self, path: str, query: dict) -> None:
        fake = self.fake
        fault = fake.take_fault("ff_get")
        if fault:
            return self._json(*fault)
        parts = path.split("/")
        with fake.lock:
            account = next((a for a in fake.accounts.values() if str(a.user_id) == parts[2]), None)
            f = account.files.get(_int(parts[3])) if account else None
        if f is None or not fake.check_link(path, query):
            return self._json(403 if f else 404, {"status_code": 403, "reason_phrase": "forbidden"})
        link = self.path
        if not fake.begin_read(link):
            return self._json(429, {"status_code": 429, "reason_phrase": "too_many_requests"})
        sent = 0
        try:
            sent = self._send_range(f, unquote(parts[4]))
        finally:
            fake.end_read(link, sent, account)

    def _send_range(self, f: File, name: str) -> int:
        start, end, status = 0, f.size, 200
        header = self.headers.get("Range", "")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(f.size, int(last) + 1) if last else f.size
            else:
                start, end = max(0, f.size - int(last)), f.size
            if start >= f.size or start >= end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return 0
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f'attachment; filename="{quote(name)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        self.end_headers()
        if self.command == "HEAD":
            return 0
        cut = self.fake.take_cut()
        hold = self.fake.take_hold()
        sent = 0
        for part in iter_bytes(f.seed, start, end):
            if hold is not None and sent + len(part) > hold:
                self.wfile.write(part[: max(0, hold - sent)])
                self.wfile.flush()
                part, sent = part[max(0, hold - sent):], hold
                hold = None
                self.fake.hold()
            if cut is not None and sent + len(part) > cut:
                self.wfile.write(part[: max(0, cut - sent)])
                self.wfile.flush()
                sent = cut
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)  # the connection drops mid-body, as a flaky CDN does
                return sent
            try:
                self.wfile.write(part)
            except OSError:  # the client went away (killed mid-transfer): what it got is what was sent
                return sent
            sent += len(part)
        return sent

    def _zip(self, path: str, query: dict) -> None:
        fake = self.fake
        with fake.lock:
            entry = fake.archives.get(_int(path.split("/")[2]))
            if entry is None or not fake.check_link(path, query):
                return self._json(404, {"status_code": 404, "reason_phrase": "not_found"})
            account, folder_id = entry
            if folder_id not in account.folders:
                return self._json(404, {"status_code": 404, "reason_phrase": "not_found"})
            data = fake.archive_bytes(account, folder_id)
        self.send_response(200)  # Range is ignored on purpose: Seedr's zip links are not resumable
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with fake.lock:
            account.bandwidth_used += len(data)

    def _devices_page(self, method: str, form: dict) -> None:
        """Where a person types the user code (the demo's stand-in for seedr.cc/devices)."""
        fake, note = self.fake, ""
        if method == "POST":
            try:
                fake.approve(form.get("user_code", "").strip(), form.get("account") or next(iter(fake.accounts)))
                note = "Device approved. Go back to Flotilla."
            except (StopIteration, KeyError):
                note = "Unknown code or account."
        options = "".join(f"<option>{html.escape(name)}</option>" for name in fake.accounts)
        page = (f"<!doctype html><title>Fake Seedr devices</title><h1>Connect a device</h1><p>{html.escape(note)}</p>"
                f'<form method="post"><label>Code <input name="user_code" autofocus></label> '
                f'<label>Account <select name="account">{options}</select></label> <button>Approve</button></form>')
        data = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Seedr service (for demos and manual tests).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default="demo@example.com")
    parser.add_argument("--password", default="demo")
    parser.add_argument("--space-mb", type=int, default=2048, help="storage of the account")
    parser.add_argument("--progress-step", type=float, default=10.0, help="percent per root listing")
    parser.add_argument("--device-interval", type=int, default=3)
    args = parser.parse_args(argv)
    fake = FakeSeedr(progress_step=args.progress_step, device_interval=args.device_interval)
    fake.add_account(args.user, args.password, space_max=args.space_mb * 1024 * 1024)
    fake.serve(args.port, args.host)
    print(f"Fake Seedr on {fake.base_url}  (account {args.user} / {args.password})")
    print(f"  SEEDR_API_URL={fake.api_url} SEEDR_OAUTH_URL={fake.oauth_url}")
    print(f"  approve device codes on {fake.base_url}/devices; state on {fake.base_url}/_fake/state")
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    fake.stop()


if __name__ == "__main__":
    main()
