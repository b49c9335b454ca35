"""The one module that talks to Seedr: seedrcc's `AsyncSeedr`, used from Flotilla's synchronous code.

Why a private event loop: an `AsyncSeedr` owns an httpx connection pool bound to one event loop, so the
per-user client cache (kept connections, one refresh state per account) needs a loop that outlives a
call. Each process runs one loop in a daemon thread (restarted after a fork) and keeps one client per
Seedr account on it, rebuilt when the stored token changed (another process refreshed, the user
reconnected).

Why work comes back to the caller's thread: the only database work inside a Seedr call (the per-account
refresh lock and persisting a refreshed token) runs through `on_caller()`, which hands it to the thread
that made the call and is blocked waiting for it. So it sees that thread's transaction, and no ORM call
ever runs on the loop (where Django forbids it).

Errors leave this module as `SeedrProblem`s with a stable code and whether retrying can help. seedrcc's
exception hierarchy has holes (bare KeyError/TypeError on odd bodies, a 413 whose reason hides in
`reason_phrase`), all mapped here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import seedrcc
from django.conf import settings
from seedrcc import AsyncSeedr, Token, _constants, models
from seedrcc.exceptions import APIError, AuthenticationError, NetworkError, SeedrError, ServerError, TokenError

from config.logging import mask_secrets

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMEOUT = 30.0
REFRESH_LOCK_SECONDS = 30.0


# --- errors -----------------------------------------------------------------------------------------


class SeedrProblem(Exception):
    """A Seedr call failed. `code` is stable; `permanent` says whether retrying can help."""

    code = "seedr_error"
    permanent = True

    def __init__(self, message: str, *, code: str | None = None, permanent: bool | None = None,
                 reason: str = ""):
        # Shown, stored on the job and logged; httpx quotes the URL, whose query holds the access token.
        message = mask_secrets(message)
        super().__init__(message)
        self.message, self.reason = message, reason
        if code:
            self.code = code
        if permanent is not None:
            self.permanent = permanent


class SeedrAuthExpired(SeedrProblem):
    """The token was refused and could not be refreshed: the user must connect again."""

    code = "seedr_auth_expired"


class SeedrUnavailable(SeedrProblem):
    """Network trouble, a 5xx, a rate limit: try again later."""

    code = "seedr_unavailable"
    permanent = False


# Seedr's refusal reasons (body `result`, or `reason_phrase` on a 4xx) → our code and sentence.
REFUSALS: dict[str, tuple[str, str]] = {
    "queue_full": ("seedr_queue_full", "Seedr's download queue is full: another torrent is running on your "
                   "Seedr account. Retry once it has finished."),
    "not_enough_space": ("seedr_quota_exceeded", "Your Seedr storage is full: this torrent does not fit. "
                         "Free space on Seedr or upgrade, then retry."),
    "out_of_bandwidth_memory": ("seedr_quota_exceeded", "Your Seedr bandwidth or storage allowance is used up."),
    "private_not_allowed": ("seedr_error", "Seedr accepts private torrents on premium accounts only."),
    "out_of_wishlist": ("seedr_quota_exceeded", "Your Seedr wishlist is full."),
    "parsing_error": ("seedr_error", "Seedr could not read this torrent."),
    "fetch_error": ("seedr_error", "Seedr could not fetch this torrent."),
    "no_torrent_passed": ("seedr_error", "Seedr received no torrent."),
}


def _reason_of(exc: APIError) -> str:
    """Seedr's machine reason: `result` in the body, or `reason_phrase` on newer 4xx answers (e.g. 413)."""
    if exc.error_type and isinstance(exc.error_type, str):
        return exc.error_type
    try:
        body = exc.response.json() if exc.response is not None else {}
    except ValueError:
        body = {}
    return str(body.get("reason_phrase") or body.get("error") or "") if isinstance(body, dict) else ""


def translate(exc: BaseException) -> SeedrProblem:
    """Map anything a seedrcc call raised to a SeedrProblem."""
    if isinstance(exc, SeedrProblem):
        return exc
    if isinstance(exc, AuthenticationError):
        reason = exc.error_type or ""
        return SeedrAuthExpired(f"Seedr refused the login ({reason or exc}). Connect your Seedr account again.",
                                reason=reason)
    if isinstance(exc, NetworkError | ServerError | httpx.HTTPError):
        return SeedrUnavailable(f"Seedr could not be reached ({exc}).")
    if isinstance(exc, APIError):
        status = exc.response.status_code if exc.response is not None else None
        reason = _reason_of(exc)
        if status == 429 or (status == 403 and "rate limit" in str(reason).lower()):
            return SeedrUnavailable("Seedr is rate limiting requests; retrying later.", code="seedr_rate_limited")
        for prefix, (code, message) in REFUSALS.items():
            if reason.startswith(prefix):
                return SeedrProblem(message, code=code, reason=reason)
        detail = str(exc) if str(exc) not in ("API request failed.", "API operation failed.") else reason
        return SeedrProblem(f"Seedr said: {detail or 'the request failed'} (HTTP {status}).", reason=reason,
                            permanent=status is not None and 400 <= status < 500 and status != 408)
    if isinstance(exc, KeyError | TypeError | ValueError | TokenError | SeedrError):
        # seedrcc raises bare KeyError/TypeError when Seedr's body lacks a field it expects.
        return SeedrUnavailable(f"Seedr answered something unexpected ({type(exc).__name__}: {exc}).",
                                code="seedr_bad_response")
    raise exc


# --- the loop, and running work back on the caller's thread ---------------------------------------

_caller: contextvars.ContextVar[queue.SimpleQueue | None] = contextvars.ContextVar("seedr_caller", default=None)


class _Runner:
    """One event loop per process in a daemon thread, and the per-account client cache living on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self.clients: dict[int, FlotillaSeedr] = {}

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked worker needs its own loop
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="seedr-loop", daemon=True).start()
                self._loop, self._pid, self.clients = loop, os.getpid(), {}
            return self._loop

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the loop; meanwhile execute its `on_caller` work here. Returns its result."""
        calls: queue.SimpleQueue = queue.SimpleQueue()

        async def wrapped() -> T:
            _caller.set(calls)
            return await make()

        future = asyncio.run_coroutine_threadsafe(wrapped(), self.loop())
        future.add_done_callback(lambda _: calls.put(None))
        while (item := calls.get()) is not None:
            fn, result = item
            try:
                result.set_result(fn())
            except BaseException as exc:  # handed back to the coroutine, which decides
                result.set_exception(exc)
        return future.result()


runner = _Runner()


async def on_caller(fn: Callable[[], T]) -> T:
    """Run a synchronous (database) function on the thread that is waiting for this coroutine."""
    calls = _caller.get()
    if calls is None:
        raise RuntimeError("on_caller() outside runner.run()")
    result: concurrent.futures.Future = concurrent.futures.Future()
    calls.put((fn, result))
    return await asyncio.wrap_future(result)


def apply_urls() -> None:
    """Point seedrcc at the configured Seedr (or the fake): it reads these module attributes per call."""
    _constants.RESOURCE_URL = f"{settings.SEEDR_OAUTH_URL}/resource.php"
    _constants.TOKEN_URL = f"{settings.SEEDR_OAUTH_URL}/token.php"
    _constants.DEVICE_CODE_URL = f"{settings.SEEDR_API_URL}/device/code"
    _constants.DEVICE_AUTHORIZE_URL = f"{settings.SEEDR_API_URL}/device/authorize"


def call(make: Callable[[], Awaitable[T]]) -> T:
    """Run one Seedr operation from synchronous code; every failure comes out as a SeedrProblem."""
    apply_urls()
    try:
        return runner.run(make)
    except SeedrProblem:
        raise
    except Exception as exc:
        raise translate(exc) from exc


# --- the client ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountHooks:
    """What a client needs from the database, run on the caller's thread (see seedr/services.py)."""

    account_id: int
    load_token: Callable[[], Token | None]
    save_token: Callable[[Token], None]
    claim_refresh: Callable[[str], bool]
    release_refresh: Callable[[str], None]


class FlotillaSeedr(AsyncSeedr):
    """AsyncSeedr whose token refresh is serialised per account, across threads and processes.

    seedrcc refreshes reactively (on `expired_token`) and has no lock, so two processes could refresh at
    once. Here a refresh first takes the account's lease; whoever gets it second finds the stored token
    already changed and adopts it instead of refreshing again. The refreshed token is persisted by
    seedrcc's `on_token_refresh` callback while the lease is held.
    """

    def __init__(self, token: Token, hooks: AccountHooks, **kwargs: Any) -> None:
        self._hooks = hooks
        self._local = asyncio.Lock()
        super().__init__(token, on_token_refresh=self._persist, timeout=TIMEOUT, **kwargs)

    async def _persist(self, token: Token) -> None:
        await on_caller(lambda: self._hooks.save_token(token))

    async def _refresh_access_token(self) -> models.RefreshTokenResult:
        stale = self._token.access_token
        async with self._local:
            if self._token.access_token != stale:  # a coroutine of this process refreshed meanwhile
                return _adopted(self._token)
            holder = f"{os.getpid()}:{id(self)}"
            for _ in range(int(REFRESH_LOCK_SECONDS / 0.1)):
                if await on_caller(lambda: self._hooks.claim_refresh(holder)):
                    break
                await asyncio.sleep(0.1)
            else:
                raise SeedrUnavailable("Another process is refreshing the Seedr login; retrying later.")
            try:
                stored = await on_caller(self._hooks.load_token)
                if stored is not None and stored.access_token != stale:  # another process refreshed
                    self._token = stored
                    return _adopted(stored)
                return await super()._refresh_access_token()
            finally:
                await on_caller(lambda: self._hooks.release_refresh(holder))

    async def _api_request(self, http_method: str, func: str, files: dict | None = None, **kwargs: Any) -> dict:
        data = await super()._api_request(http_method, func, files=files, **kwargs)
        if isinstance(data, dict) and data.get("error") == "expired_token":
            # seedrcc retries once after a refresh and would hand this body back as a success.
            raise SeedrUnavailable("Seedr still says the token expired right after a refresh; retrying later.")
        return data


def _adopted(token: Token) -> models.RefreshTokenResult:
    return models.RefreshTokenResult.from_dict({"access_token": token.access_token, "expires_in": 0,
                                                "token_type": "Bearer"})


async def client_for(hooks: AccountHooks, token: Token) -> FlotillaSeedr:
    """The cached client of an account; rebuilt when the stored token is not the one it holds."""
    cached = runner.clients.get(hooks.account_id)
    if cached is not None and cached.token == token:
        return cached
    if cached is not None:
        await cached.close()
    client = FlotillaSeedr(token, hooks)
    runner.clients[hooks.account_id] = client
    return client


def forget(account_id: int) -> None:
    """Drop an account's cached client (disconnect, revoke)."""

    async def close() -> None:
        client = runner.clients.pop(account_id, None)
        if client is not None:
            await client.close()

    runner.run(close)


# --- operations -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    torrent_id: int | None
    name: str
    info_hash: str


class Session:
    """Synchronous Seedr operations for one account (one cached AsyncSeedr behind them)."""

    def __init__(self, hooks: AccountHooks, token: Token) -> None:
        self.hooks, self.token = hooks, token

    def _do(self, op: Callable[[FlotillaSeedr], Awaitable[T]]) -> T:
        async def run() -> T:
            return await op(await client_for(self.hooks, self.token))

        return call(run)

    def list_contents(self, folder_id: int | str = 0) -> models.ListContentsResult:
        return self._do(lambda c: c.list_contents(str(folder_id)))

    def add_magnet(self, magnet: str) -> Added:
        """seedrcc's `add_torrent`; on the 404 reported since Seedr's V2 change (seedrcc #16) the same call
        again with the field `magnet`, which Seedr still accepts."""

        async def op(client: FlotillaSeedr) -> dict:
            try:
                return (await client.add_torrent(magnet_link=magnet)).get_raw()
            except APIError as exc:
                if exc.response is None or exc.response.status_code != 404:
                    raise
                log.info("seedr add_torrent: torrent_magnet refused with 404, retrying with the field 'magnet'")
                return await client._api_request("post", "add_torrent", data={"folder_id": "0", "magnet": magnet})

        return _added(self._do(op))

    def add_torrent_file(self, data: bytes) -> Added:
        # seedrcc's add_torrent takes a path or URL; the bytes go in the same multipart part it would send.
        return _added(self._do(lambda c: c._api_request(
            "post", "add_torrent", data={"folder_id": "0"}, files={"torrent_file": ("upload", data,
                                                                                     "application/octet-stream")})))

    def fetch_file(self, folder_file_id: int) -> str:
        return self._do(lambda c: c.fetch_file(str(folder_file_id))).url

    def create_archive(self, folder_id: int) -> str:
        return self._do(lambda c: c.create_archive(str(folder_id))).archive_url

    def delete(self, kind: str, item_id: int) -> None:
        deleters = {"torrent": "delete_torrent", "folder": "delete_folder", "file": "delete_file"}
        self._do(lambda c: getattr(c, deleters[kind])(str(item_id)))

    def memory_bandwidth(self) -> models.MemoryBandwidth:
        return self._do(lambda c: c.get_memory_bandwidth())

    def settings(self) -> models.UserSettings:
        return self._do(lambda c: c.get_settings())

    def devices(self) -> list[models.Device]:
        return self._do(lambda c: c.get_devices())

    def drop_wishlisted(self, info_hash: str) -> int:
        """Remove what Seedr parked in the wishlist for this hash (a refused add); returns how many."""

        async def op(client: FlotillaSeedr) -> int:
            wishlist = (await client.get_settings()).account.wishlist or []
            removed = 0
            for item in wishlist:
                if isinstance(item, dict) and str(item.get("hash", "")).lower() == info_hash.lower():
                    await client.delete_wishlist(str(item.get("id")))
                    removed += 1
            return removed

        return self._do(op)


def _added(raw: dict) -> Added:
    return Added(torrent_id=raw.get("user_torrent_id"), name=str(raw.get("title") or ""),
                 info_hash=str(raw.get("torrent_hash") or ""))


# --- logins (no account yet) ------------------------------------------------------------------------


def device_code() -> models.DeviceCode:
    return call(AsyncSeedr.get_device_code)


def authorize_device(code: str) -> Token | None:
    """The token once the user approved the code on Seedr; None while authorization is pending."""

    async def op() -> Token | None:
        try:
            client = await AsyncSeedr.from_device_code(code, timeout=TIMEOUT)
        except AuthenticationError as exc:
            if exc.error_type == "authorization_pending":
                return None
            raise
        await client.close()
        return client.token

    return call(op)


def password_login(username: str, password: str) -> Token:
    async def op() -> Token:
        client = await AsyncSeedr.from_password(username, password, timeout=TIMEOUT)
        await client.close()
        return client.token

    return call(op)


def account_email(token: Token) -> str:
    """Who the token belongs to (for the panel); a throwaway client, nothing cached or refreshed."""

    async def op() -> str:
        async with AsyncSeedr(token, timeout=TIMEOUT) as client:
            account = (await client.get_settings()).account
            return account.email or account.username

    return call(op)


__all__ = [
    "AccountHooks",
    "Added",
    "SeedrAuthExpired",
    "SeedrProblem",
    "SeedrUnavailable",
    "Session",
    "Token",
    "seedrcc",
]
