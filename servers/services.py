"""The user's torrent servers: registering them, testing them, their status, and the aggregated torrents view.

Every change goes through here (audited). Torrents that Flotilla runs as jobs are changed through the job
spine (`downloads.services`), so a stop on the torrents page is a pause of the job; torrents Flotilla did not
add ("external") are acted on directly. Servers are asked concurrently, and a server that fails is reported
beside the others' results, never instead of them.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.audit import record_audit
from config.crypto import keyed_hash
from config.errors import Conflict, DomainError, ValidationFailed
from downloads import dispatch, intake
from downloads import services as jobs
from downloads.models import PAUSABLE, TERMINAL, Job, Status
from downloads.retries import retry_delay
from servers import clients
from servers.clients import ClientError, Torrent, TorrentNotFound
from servers.models import TorrentServer

log = logging.getLogger(__name__)

CONNECTION_FIELDS = {"type", "transport", "host", "port", "use_tls", "rpc_path", "socket_path", "username",
                     "password"}
EDITABLE_FIELDS = CONNECTION_FIELDS | {"name", "download_dir", "remote_path", "local_path", "enabled"}
STATUS_REFRESH_SECONDS = 30  # a healthy server's row is rewritten at most this often by the poller


class ServerUnavailable(DomainError):
    code = "server_unavailable"
    http_status = 502


# --- registering ---------------------------------------------------------------------------------------------


def _apply(server: TorrentServer, data: dict) -> None:
    unknown = set(data) - EDITABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.")
    for name, value in data.items():
        setattr(server, name, value)
    try:
        server.full_clean(exclude=["owner"])
    except ValidationError as exc:
        raise ValidationFailed("The server settings are not valid.", errors=exc.message_dict) from exc


@transaction.atomic
def create_server(user, **data) -> TorrentServer:
    """Register a server for `user` (nothing is contacted yet: `test_server` does that)."""
    server = TorrentServer(owner=user)
    _apply(server, data)
    if TorrentServer.objects.filter(owner=user, name=server.name).exists():
        raise Conflict("You already have a server with this name.", code="duplicate")
    server.save()
    record_audit("server.create", actor=user, target=server, type=server.type, address=server.address)
    return server


@transaction.atomic
def update_server(user, server: TorrentServer, **data) -> TorrentServer:
    """Change a server; a blank or missing password keeps the stored one. New connection settings reset the
    status (the next test or poll says whether they work)."""
    if not data.get("password"):
        data.pop("password", None)
    changed_connection = any(getattr(server, k) != v for k, v in data.items() if k in CONNECTION_FIELDS)
    _apply(server, data)
    if TorrentServer.objects.filter(owner=server.owner, name=server.name).exclude(pk=server.pk).exists():
        raise Conflict("You already have a server with this name.", code="duplicate")
    if changed_connection:
        server.status, server.status_message, server.status_code = TorrentServer.Status.UNKNOWN, "", ""
        server.failures, server.retry_at = 0, None
    server.save()
    record_audit("server.update", actor=user, target=server, fields=sorted(k for k in data if k != "password"),
                 password_changed="password" in data)
    transaction.on_commit(lambda: clients.forget(server.pk))
    return server


def delete_server(user, server: TorrentServer) -> None:
    """Forget a server. Its unfinished jobs fail (`server_deleted`); the torrents stay on the server."""
    server_id, name = server.pk, server.name
    unfinished = Job.objects.filter(backend=server.backend_name).exclude(status__in=TERMINAL)
    with transaction.atomic():
        for job in unfinished:
            try:
                jobs.fail(job, "server_deleted", f"The server '{name}' was removed from Flotilla.")
            except jobs.StaleJob:
                continue
        record_audit("server.delete", actor=user, target=server, name=name)
        server.delete()
    clients.forget(server_id)


# --- status --------------------------------------------------------------------------------------------------


def record_success(server: TorrentServer, *, latency_ms: float | None = None, version: str = "") -> None:
    """The server answered: connected, backoff cleared. Rewritten only on a change or every 30 s."""
    now = timezone.now()
    fresh = server.checked_at and (now - server.checked_at).total_seconds() < STATUS_REFRESH_SECONDS
    if server.status == TorrentServer.Status.CONNECTED and not server.failures and fresh and not version:
        return
    changes = {"status": TorrentServer.Status.CONNECTED, "status_message": "", "status_code": "", "failures": 0,
               "retry_at": None, "checked_at": now, "error_since": None}
    if latency_ms is not None:
        changes["latency_ms"] = latency_ms
    if version:
        changes["client_version"] = version[:100]
    TorrentServer.objects.filter(pk=server.pk).update(**changes)
    for key, value in changes.items():
        setattr(server, key, value)


def record_failure(server: TorrentServer, exc: ClientError) -> None:
    """The server failed: error status with the reason, and exponential backoff before the next poll."""
    failures = server.failures + 1
    changes = {"status": TorrentServer.Status.ERROR, "status_message": exc.message[:300],
               "status_code": exc.code[:64], "failures": failures, "checked_at": timezone.now(),
               "retry_at": timezone.now() + retry_delay(failures),
               # Fail-over moves a server's jobs once it has been offline past the policy's grace time.
               "error_since": server.error_since or timezone.now()}
    TorrentServer.objects.filter(pk=server.pk).update(**changes)
    for key, value in changes.items():
        setattr(server, key, value)
    log.info("server unreachable", extra={"server": server.pk, "code": exc.code, "failures": failures})


def unexpected(server: TorrentServer, exc: Exception) -> ClientError:
    """A failure no client mapped (a bug, or a library surprised by a server's answer): logged with its
    traceback, and reported like any other failure of that one server, never as a 500 of the whole view."""
    log.error("server call failed unexpectedly", extra={"server": server.pk, "error": type(exc).__name__},
              exc_info=exc)
    return ClientError(f"Talking to this server failed unexpectedly ({type(exc).__name__}).",
                       code="server_failure")


def _talk(server: TorrentServer, ask):
    """`ask(client)` on this server: its answer, or the ClientError saying why not (never another error)."""
    try:
        with clients.connect(server) as client:
            return ask(client), None
    except ClientError as exc:
        return None, exc
    except Exception as exc:  # one server must not sink the others (see unexpected())
        return None, unexpected(server, exc)


def in_backoff(server: TorrentServer) -> bool:
    return server.status == TorrentServer.Status.ERROR and bool(server.retry_at and server.retry_at > timezone.now())


def test_server(user, server: TorrentServer) -> TorrentServer:
    """Connect now (log in, ask the version): the status says whether it works, and why not."""
    info, error = _talk(server, lambda client: client.check())
    if error is not None:
        record_failure(server, error)
    else:
        record_success(server, latency_ms=info.latency_ms, version=info.version)
    record_audit("server.test", actor=user, target=server, status=server.status, code=server.status_code)
    return server


# --- the aggregated torrents view ----------------------------------------------------------------------------


@dataclass
class Listing:
    results: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def _servers(user, server_id: int | None, *, owned: bool = False):
    servers = TorrentServer.objects.owned_by(user) if owned else TorrentServer.objects.for_user(user)
    servers = servers.select_related("owner")
    if server_id is not None:
        server = servers.filter(pk=server_id).first()
        if server is None:
            raise Http404("No such server.")
        return [server]
    return list(servers.enabled())


def _ask_all(servers: list[TorrentServer], ask) -> list[tuple[TorrentServer, object, ClientError | None]]:
    """Run `ask(client)` on every server at once; each answer or error, in the servers' order."""
    def one(server: TorrentServer):
        return server, *_talk(server, ask)

    if len(servers) <= 1:
        outcomes = [one(s) for s in servers]
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(len(servers), settings.SERVERS_LIST_CONCURRENCY))) as pool:
            outcomes = list(pool.map(one, servers))
    for server, _answer, error in outcomes:  # status writes stay on this thread (its database connection)
        if error is None:
            record_success(server)
        elif not isinstance(error, TorrentNotFound):
            record_failure(server, error)
    return outcomes


def _server_ref(server: TorrentServer) -> dict:
    return {"id": server.pk, "name": server.name, "type": server.type}


def _error_entry(server: TorrentServer, exc: ClientError) -> dict:
    return {"server": _server_ref(server), "code": exc.code, "detail": exc.message}


def _tracking_jobs(servers: list[TorrentServer], hashes: list[str]) -> dict[tuple[str, str], Job]:
    """(backend, hmac) → the newest job that tracks that torrent on that server."""
    found = Job.objects.filter(backend__in=[s.backend_name for s in servers],
                               info_hash_hmac__in=[keyed_hash(h) for h in hashes]).only(
        "id", "user_id", "backend", "info_hash_hmac", "status").order_by("id")
    return {(job.backend, job.info_hash_hmac): job for job in found}


def _entry(server: TorrentServer, torrent: Torrent, tracked: dict) -> dict:
    job = tracked.get((server.backend_name, keyed_hash(torrent.hash)))
    return {**torrent.as_dict(), "server": _server_ref(server), "job": job.pk if job else None,
            "job_status": job.status if job else None, "external": job is None}


def list_torrents(user, server_id: int | None = None) -> Listing:
    """Every torrent on the user's enabled servers (or one server), asked concurrently; errors beside them."""
    servers = _servers(user, server_id)
    outcomes = _ask_all(servers, lambda client: client.list())
    listing = Listing()
    hashes = [t.hash for _, torrents, _ in outcomes if torrents for t in torrents]
    tracked = _tracking_jobs(servers, hashes) if hashes else {}
    for server, torrents, error in outcomes:
        if error is not None:
            listing.errors.append(_error_entry(server, error))
            continue
        listing.results.extend(_entry(server, t, tracked) for t in torrents)
    listing.results.sort(key=lambda t: (-(t["added_at"] or 0), t["name"]))
    return listing


def _locate(user, info_hash: str, server_id: int | None, *, owned: bool = False,
            with_files: bool = False) -> tuple[TorrentServer, Torrent]:
    """The server that holds this torrent (asking every candidate at once); 404 when none does."""
    info_hash = _valid_hash(info_hash)
    servers = _servers(user, server_id, owned=owned)
    outcomes = _ask_all(servers, lambda client: client.list([info_hash], with_files=with_files))
    for server, torrents, _error in outcomes:
        if torrents:
            return server, torrents[0]
    failed = [(s, e) for s, _, e in outcomes if e is not None and not isinstance(e, TorrentNotFound)]
    if failed:  # it may be on a server that did not answer: say so rather than "not found"
        names = ", ".join(s.name for s, _ in failed)
        raise ServerUnavailable(f"Not found on the servers that answered; these did not: {names}.",
                                errors=[_error_entry(s, e) for s, e in failed])
    raise Http404("No such torrent on your servers.")


def _valid_hash(value: str) -> str:
    try:
        return clients.normalize_hash(value)
    except ClientError as exc:
        raise Http404("No such torrent.") from exc


def torrent_detail(user, info_hash: str, server_id: int | None = None) -> dict:
    server, torrent = _locate(user, info_hash, server_id, with_files=True)
    return _entry(server, torrent, _tracking_jobs([server], [torrent.hash]))


def _job_for(server: TorrentServer, torrent: Torrent) -> Job | None:
    return _tracking_jobs([server], [torrent.hash]).get((server.backend_name, keyed_hash(torrent.hash)))


def torrent_action(user, info_hash: str, action: str, *, server_id: int | None = None,
                   delete_data: bool = False) -> dict | None:
    """start / stop / delete a torrent wherever it is. A torrent Flotilla runs as a job goes through the job
    (resume / pause / cancel); an external one is changed on its server directly."""
    server, torrent = _locate(user, info_hash, server_id)
    job = _job_for(server, torrent)
    if job is not None and job.status not in TERMINAL:
        job = Job.objects.get(pk=job.pk)
        if action == "delete":
            jobs.cancel_job(user, job, delete_data=delete_data)
            return None
        if action == "stop" and job.status in PAUSABLE:
            jobs.pause_job(user, job)
            return torrent_detail(user, torrent.hash, server.pk)
        if action == "start" and job.status == Status.PAUSED:
            jobs.resume_job(user, job)
            return torrent_detail(user, torrent.hash, server.pk)
        # Otherwise the job's status already says so (the torrent differs on the server): act on the server.
    def act(client) -> None:
        if action == "delete":
            client.remove(torrent.hash, delete_data=delete_data)
        else:
            getattr(client, action)(torrent.hash)

    _done, error = _talk(server, act)
    if isinstance(error, TorrentNotFound):
        raise Http404("The torrent is no longer on the server.") from error
    if error is not None:
        raise ServerUnavailable(error.message, code=error.code) from error
    record_audit(f"torrent.{action}", actor=user, target=server, name=torrent.name[:200],
                 **({"delete_data": delete_data} if action == "delete" else {}))
    return None if action == "delete" else torrent_detail(user, torrent.hash, server.pk)


# --- adding -----------------------------------------------------------------------------------------------


def add_to_server(user, server_id: int, *, magnet: str = "", torrent: bytes = b"", url: str = "") -> Job:
    """A new job on one of the user's own servers: by magnet, .torrent bytes or a URL Flotilla fetches."""
    server = _servers(user, server_id, owned=True)[0]
    if url:
        return jobs.add_url(user, url, backend=server.backend_name)  # checks the account before fetching
    if magnet:
        return jobs.add_magnet(user, magnet, backend=server.backend_name)
    return jobs.add_torrent(user, torrent, backend=server.backend_name)


def adopt(user, info_hash: str, server_id: int | None = None) -> Job:
    """Make a torrent Flotilla did not add (external) a job of the user, as it is on the server now."""
    server, torrent = _locate(user, info_hash, server_id, owned=True)
    if _job_for(server, torrent) is not None:
        raise Conflict("Flotilla already tracks this torrent.", code="already_tracked")
    magnet = f"magnet:?xt=urn:btih:{torrent.hash}&dn={quote(torrent.name[:200])}"
    with transaction.atomic():
        job = jobs.add_magnet(user, magnet, backend=server.backend_name)
        # Already on the server: mark it handed over, so the dispatcher never submits it again.
        target = Status.FETCHING_METADATA if not torrent.has_metadata else Status.DOWNLOADING
        jobs.change_status(job, target, reason_code="adopted", reason=f"Adopted from {server.name}.",
                           remote_id=remote_id(server, torrent.hash))
        record_audit("torrent.adopt", actor=user, target=job, server=server.pk)
        transaction.on_commit(dispatch.start_poller)
    return job


def remote_id(server: TorrentServer, info_hash: str) -> str:
    """What a job stores as its remote id: the server and a keyed hash (the info-hash itself stays encrypted)."""
    return f"server:{server.pk}:{keyed_hash(info_hash)[:16]}"


def magnet_for(job: Job) -> str:
    """A stored magnet, or one built from the info-hash."""
    return job.magnet or f"magnet:?xt=urn:btih:{job.info_hash}"


def job_torrent_bytes(job: Job) -> bytes:
    return intake.decode_torrent(job.torrent) if job.torrent else b""


def server_error_badges(user) -> list[dict]:
    """The user's servers in error, for the dashboard's badges."""
    return [{"id": s.pk, "name": s.name, "message": s.status_message}
            for s in TorrentServer.objects.owned_by(user).enabled().filter(status=TorrentServer.Status.ERROR)
            .only("id", "name", "status_message")]

