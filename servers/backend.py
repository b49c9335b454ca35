"""The user's torrent servers as a Flotilla backend (kind "server", jobs named "server:<id>").

A job's life on a server:

    queued ─dispatch─► starting ─added on the server─► fetching_metadata / downloading   (synced by the poller)
      ─every byte there─► transferring (a path mapping is set: the spine's bring-home runner calls
                           `bring_home`, which links or copies the files into DATA_DIR) ─► finish
      ─every byte there, no mapping─► finish (the files stay on the server; JobFiles still list them)

`sync` is ONE listing per server per cycle, whatever the number of jobs (`group_key` = the server); a job
that finishes costs one more request for its file list (rTorrent folds it into the same multicall). A
stop or start made on the server itself is mirrored (paused / downloading). A server that fails is marked
in error with exponential backoff (`servers.services.record_failure`): its jobs say why they wait, the
other servers and the poller carry on, and queued jobs for it stay queued until it answers again.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import bencode2
from django.utils import timezone

from billing import services as billing
from config.crypto import keyed_hash
from config.errors import DomainError
from downloads import bring_home as road_home
from downloads import finish, intake, runs
from downloads import services as jobs
from downloads.backends import Backend, BackendError, PieceSource, Wait, keeps_seeding
from downloads.models import ACTIVE, EventKind, IllegalTransition, Job, JobEvent, JobFile, Status
from downloads.paths import UnsafePath, safe_join
from servers import clients
from servers import services as servers
from servers.clients import ClientError, Torrent, TorrentNotFound
from servers.clients.base import State
from servers.models import TorrentServer

log = logging.getLogger(__name__)

UNREACHABLE = "server_unreachable"
DISABLED = "server_disabled"
MISSING = "server_missing"
ADD_GRACE_SECONDS = 30  # a torrent missing from the listing this soon after the submit is not missing yet
# A torrent absent from one listing is not gone yet: rTorrent drops a magnet's download once it has the
# metadata and loads the real torrent a moment later (5 of 5 tight polls of rTorrent 0.9.8 saw the gap). It
# fails its job once it has been absent this long.
UNLISTED, LISTED_AGAIN = "server_torrent_unlisted", "server_torrent_listed"
MISSING_GRACE_SECONDS = 30
# Reasons for a passing server condition: replaced by what the job is doing once the condition has passed.
PASSING = {UNLISTED, LISTED_AGAIN, "server_checking"}
# Errors about the server as a whole: the job waits and retries; anything else is about this torrent.
SERVER_LEVEL = {"server_unreachable", "server_timeout", "server_auth", "server_error", "server_address",
                "server_not_found", "server_type"}


def server_id_of(backend_name: str) -> int | None:
    kind, _, rest = backend_name.partition(":")
    return int(rest) if kind == "server" and rest.isdigit() else None


def _server(job: Job) -> TorrentServer | None:
    server_id = server_id_of(job.backend)
    return TorrentServer.objects.filter(pk=server_id, owner_id=job.user_id).first() if server_id else None


def _provider(server: TorrentServer) -> dict:
    return {"provider": {"server": server.pk, "name": server.name, "type": server.type}}


class ServerBackend(Backend):
    kind = "server"
    label = "Your torrent servers"

    # --- what users may pick -----------------------------------------------------------------------------

    def choices(self, user) -> list[tuple[str, str]]:
        return [(s.backend_name, f"{s.name} ({s.get_type_display()})")
                for s in TorrentServer.objects.owned_by(user).enabled().only("id", "name", "type")]

    def validate_target(self, user, backend_name: str) -> None:
        server_id = server_id_of(backend_name)
        if server_id is None or not TorrentServer.objects.owned_by(user).filter(pk=server_id).exists():
            raise DomainError("No such server among yours (use 'server:<id>' of one of your servers).",
                              code="unknown_server")

    # --- starting ----------------------------------------------------------------------------------------

    def refuses(self, job: Job) -> str | None:
        server = _server(job)
        if server is None or not server.enabled:
            return "the server is missing or disabled"
        return f"'{server.name}' does not answer" if servers.in_backoff(server) else None

    def offline(self) -> dict[str, datetime]:
        return {f"{self.kind}:{pk}": since for pk, since in TorrentServer.objects.filter(
            status=TorrentServer.Status.ERROR, error_since__isnull=False).values_list("pk", "error_since")}

    def may_start(self, job: Job) -> Wait | None:
        server = _server(job)
        if server is None:
            return None  # submit fails it with a clear reason
        if not server.enabled:
            return Wait(DISABLED, f"The server '{server.name}' is disabled; enable it to start this download.")
        if servers.in_backoff(server):
            return Wait(UNREACHABLE, f"The server '{server.name}' does not answer ({server.status_message}); "
                        "the download starts when it does.")
        return None

    def submit(self, job: Job) -> None:
        server = self._server_or_fail(job)
        if len(job.info_hash) != 40:
            raise BackendError("Torrent servers take v1 (or hybrid) torrents; this one is v2-only.",
                               code="server_v2_unsupported", permanent=True)
        try:
            with clients.connect(server) as client:
                if not client.list([job.info_hash]):  # already there (a retry): take it over as it is
                    if job.torrent:
                        client.add_torrent(servers.job_torrent_bytes(job), download_dir=server.download_dir)
                    else:
                        client.add_magnet(servers.magnet_for(job), download_dir=server.download_dir)
                if keeps_seeding(job):  # a private tracker's rules decide when it stops, not the server
                    client.keep_seeding(job.info_hash)
        except ClientError as exc:
            if exc.code in SERVER_LEVEL:
                servers.record_failure(server, exc)
            raise BackendError(f"{server.name}: {exc.message}", code=exc.code,
                               permanent=exc.permanent and exc.code not in SERVER_LEVEL) from exc
        servers.record_success(server)
        target = Status.DOWNLOADING if job.size_bytes else Status.FETCHING_METADATA
        jobs.change_status(job, target, reason_code="server_added", reason=f"Added to {server.name}.",
                           remote_id=servers.remote_id(server, job.info_hash), event_data=_provider(server))

    def _server_or_fail(self, job: Job) -> TorrentServer:
        server = _server(job)
        if server is None:
            raise BackendError("The server of this download no longer exists.", code=MISSING, permanent=True)
        if not server.enabled:
            raise BackendError(f"The server '{server.name}' is disabled.", code=DISABLED)
        return server

    # --- syncing -----------------------------------------------------------------------------------------

    def sync(self, group: Sequence[Job]) -> None:
        """ONE listing of the server for all of its jobs, then each job moves on from it."""
        server = _server(group[0])
        if server is None:
            for job in group:
                _quietly(jobs.fail, job, MISSING, "The server of this download no longer exists.")
            return
        if not server.enabled:
            for job in group:
                if job.status in ACTIVE:
                    jobs.set_reason(job, DISABLED, f"The server '{server.name}' is disabled.")
            return
        if servers.in_backoff(server):
            return
        try:
            with clients.connect(server) as client:
                torrents = client.list()
        except ClientError as exc:
            servers.record_failure(server, exc)
            for job in group:
                if job.status in ACTIVE and job.status != Status.TRANSFERRING:
                    jobs.set_reason(job, UNREACHABLE, f"{server.name} does not answer: {exc.message}")
            return
        servers.record_success(server)
        by_hmac = {keyed_hash(t.hash): t for t in torrents}
        finished: list[tuple[Job, Torrent]] = []
        for job in group:
            try:
                self._sync_one(server, job, by_hmac.get(job.info_hash_hmac), finished)
            except (jobs.StaleJob, IllegalTransition):
                log.info("server sync: job changed meanwhile", extra={"job": job.pk})
        if finished:
            self._finish(server, finished)

    def _sync_one(self, server: TorrentServer, job: Job, torrent: Torrent | None, finished: list) -> None:
        if job.status == Status.TRANSFERRING:
            road_home.nudge(job)  # a retry that is due, or a run whose worker died
            return
        if job.status not in ACTIVE | {Status.PAUSED} or not job.remote_id:
            return
        if torrent is None:
            self._unlisted(server, job)
            return
        if job.reason_code == UNLISTED:  # back: a later absence is counted from its own start
            jobs.set_reason(job, LISTED_AGAIN, f"{server.name} lists this torrent again.")
        if job.status == Status.PAUSED:
            if torrent.state in (State.DOWNLOADING, State.METADATA, State.QUEUED) and not torrent.complete:
                jobs.change_status(job, Status.DOWNLOADING if torrent.has_metadata else Status.FETCHING_METADATA,
                                   reason_code="resumed_on_server", reason=f"Started on {server.name}.")
            return
        if torrent.state == State.STOPPED and not torrent.complete:
            jobs.change_status(job, Status.PAUSED, reason_code="paused_on_server", reason=f"Stopped on {server.name}.")
            return
        if not torrent.has_metadata:
            if job.status != Status.FETCHING_METADATA:
                jobs.change_status(job, Status.FETCHING_METADATA, reason_code="server_metadata",
                                   reason="The server is fetching the torrent's metadata.")
            _progress(job, torrent)
            return
        if torrent.size and torrent.size != job.size_bytes and not jobs.set_size(job, torrent.size):
            _stop_quietly(server, torrent)  # over quota: failed by the spine; stop it on the server too
            return
        if torrent.complete:
            finished.append((job, torrent))
            return
        if job.status != Status.DOWNLOADING:
            _register_files_early(server, job)
            jobs.change_status(job, Status.DOWNLOADING, reason_code="server_downloading",
                               reason=f"Downloading on {server.name}.")
        if torrent.state == State.ERROR:
            jobs.set_reason(job, "server_torrent_error", torrent.error or f"{server.name} reports an error.")
        elif torrent.state == State.CHECKING:
            jobs.set_reason(job, "server_checking", f"{server.name} is checking the downloaded data.")
        elif job.reason_code in PASSING:
            jobs.set_reason(job, "server_downloading", f"Downloading on {server.name}.")
        _progress(job, torrent)

    def _unlisted(self, server: TorrentServer, job: Job) -> None:
        """Absent from the listing: failed once it has been absent for MISSING_GRACE_SECONDS, counted from the
        listing that first missed it (the time of the reason's event)."""
        now = timezone.now()
        if job.started_at and (now - job.started_at).total_seconds() < ADD_GRACE_SECONDS:
            return  # just added: a server may list it a moment later (rTorrent loads in the background)
        if job.reason_code != UNLISTED:
            jobs.set_reason(job, UNLISTED, f"{server.name} does not list this torrent at the moment.")
            return
        since = (JobEvent.objects.filter(job=job, kind=EventKind.MESSAGE, code=UNLISTED)
                 .order_by("-id").values_list("created_at", flat=True).first())
        if since is not None and (now - since).total_seconds() < MISSING_GRACE_SECONDS:
            return
        jobs.fail(job, "server_torrent_missing", f"The torrent is no longer on {server.name} (removed there?).",
                  **_provider(server))

    def _finish(self, server: TorrentServer, finished: list[tuple[Job, Torrent]]) -> None:
        """Jobs whose torrent is complete: their file lists (one request), JobFiles, then deliver or complete."""
        try:
            with clients.connect(server) as client:
                detailed = {t.hash: t for t in client.list([t.hash for _, t in finished], with_files=True)}
        except ClientError as exc:
            log.info("server sync: file lists failed, next sync retries", extra={"server": server.pk,
                                                                               "code": exc.code})
            return
        for job, torrent in finished:
            current = detailed.get(torrent.hash, torrent)
            if not current.complete:
                continue  # a check began between the two listings (a forced recheck): finished when it passes
            try:
                complete_job(server, job, current)
            except (jobs.StaleJob, IllegalTransition):
                log.info("server sync: job changed meanwhile", extra={"job": job.pk})

    # --- user actions ------------------------------------------------------------------------------------

    def _act(self, job: Job, action, *, missing_ok: bool = False) -> None:
        server = _server(job)
        if server is None:
            if missing_ok:
                return
            raise BackendError("The server of this download no longer exists.", code=MISSING, permanent=True)
        try:
            with clients.connect(server) as client:
                action(client, job.info_hash)
        except TorrentNotFound as exc:
            if not missing_ok:
                raise BackendError(f"The torrent is no longer on {server.name}.", code="server_torrent_missing",
                                   permanent=True) from exc
        except ClientError as exc:
            raise BackendError(f"{server.name}: {exc.message}", code=exc.code, permanent=exc.permanent) from exc

    def pause(self, job: Job) -> None:
        self._act(job, lambda client, h: client.stop(h))

    def resume(self, job: Job) -> None:
        self._act(job, lambda client, h: client.start(h))

    def cancel(self, job: Job, *, delete_data: bool) -> None:
        self._act(job, lambda client, h: client.remove(h, delete_data=delete_data), missing_ok=True)

    def stream_source(self, job: Job, jobfile: JobFile) -> PieceSource | None:
        """A file on the mapped disk: read piece by piece as the server verifies them (qBittorrent, Transmission),
        with the server asked to fetch it first and in order; a completed file only on a server that reports
        no piece state (rTorrent). None without a path mapping."""
        server = _server(job)
        if server is None or not server.local_path or not job.info_hash:
            return None
        try:
            with clients.connect(server) as client:
                layout = client.piece_layout(job.info_hash)
                if layout is not None:
                    try:
                        client.stream_first(job.info_hash, jobfile.index)
                    except ClientError as exc:  # playing still works, only slower to start
                        log.info("server stream: priority not set", extra={"job": job.pk, "code": exc.code})
                    hashes = _piece_hashes(client, job)
                if layout is None or hashes is None:
                    return _completed_source(server, client, job, jobfile)
        except TorrentNotFound:
            return None
        except ClientError as exc:
            raise BackendError(f"{server.name}: {exc.message}", code=exc.code, permanent=exc.permanent) from exc
        remote = next((f for f in layout.files if f.index == jobfile.index), None)
        local = server.map_path(layout.save_path)
        if remote is None or remote.path != jobfile.path or remote.size != jobfile.size_bytes or local is None:
            return None
        try:
            path = _mapped_path(Path(server.local_path), Path(local), jobfile.path)
            every = [(_mapped_path(Path(server.local_path), Path(local), f.path), f.size) for f in layout.files]
        except UnsafePath:
            return None
        offset = sum(f.size for f in layout.files if f.index < remote.index)
        info_hash = job.info_hash

        def pieces() -> list[bool]:
            try:
                with clients.connect(server) as client:
                    return client.piece_states(info_hash)
            except ClientError as exc:
                raise BackendError(f"{server.name}: {exc.message}", code=exc.code) from exc

        return PieceSource(path, remote.size, offset, layout.piece_length, pieces, hashes=hashes, files=every)

    def bring_home(self, job: Job) -> None:
        """Bring the finished files home through the server's path mapping (hard link, else copy).

        The save path is asked from the server now (one request), so a torrent moved there is still found.
        Files already home (a retried attempt) are not copied again."""
        server = self._server_or_fail(job)
        try:
            with clients.connect(server) as client:
                torrent = client.get(job.info_hash, with_files=False)
        except TorrentNotFound as exc:
            raise BackendError(f"The torrent is no longer on {server.name}.", code="server_torrent_missing",
                               permanent=True) from exc
        except ClientError as exc:
            raise BackendError(f"{server.name}: {exc.message}", code=exc.code,
                               permanent=exc.permanent and exc.code not in SERVER_LEVEL) from exc
        local = server.map_path(torrent.save_path)
        if local is None:
            raise BackendError(f"{torrent.save_path} on {server.name} is outside the path mapping.",
                               code="server_path_unmapped", permanent=True)
        files = list(job.files.all().order_by("index"))
        total = sum(f.size_bytes for f in files)
        try:
            billing.check_transfer(job.user, total)
        except billing.QuotaExceeded as exc:
            raise BackendError(exc.detail, code=exc.code, permanent=True) from exc
        delivered = {}
        try:
            for f in files:
                runs.keep_alive()
                source = _mapped_source(Path(server.local_path), Path(local), f.path)
                target = safe_join(job.data_dir, f.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not (target.exists() and target.stat().st_size == f.size_bytes):
                    _link_or_copy(source, target)
                delivered[f.index] = f.size_bytes
        except (UnsafePath, OSError) as exc:
            # A file outside the mapping, or not on the mapped disk: another attempt would find the same.
            raise BackendError(f"Bringing the files home failed: {exc}", code="server_delivery_failed",
                               permanent=True) from exc
        jobs.update_file_progress(job, delivered)
        billing.record_usage(job.user_id, delivered=total)


# --- finishing and delivering --------------------------------------------------------------------------------


def _progress(job: Job, torrent: Torrent) -> None:
    numbers = {"progress": round(torrent.progress, 4), "downloaded_bytes": torrent.done,
               "uploaded_bytes": torrent.uploaded, "download_rate": torrent.download_rate,
               "upload_rate": torrent.upload_rate, "eta_seconds": torrent.eta, "peers": torrent.peers,
               "seeds": torrent.seeds}
    if all(getattr(job, k) == v for k, v in numbers.items()):
        return  # nothing moved (a stalled or seeding torrent): no write at all
    jobs.record_progress(job, **numbers)


def complete_job(server: TorrentServer, job: Job, torrent: Torrent) -> None:
    """Register the files; deliver through the mapping (transferring → task) or complete in place."""
    if torrent.files:
        try:
            jobs.register_files(job, [(f.path, f.size, f.index) for f in torrent.files])
        except UnsafePath:
            jobs.fail(job, "server_unsafe_path", "The server reports file names that leave the download folder.")
            return
        jobs.update_file_progress(job, {f.index: f.done for f in torrent.files})
    if job.status != Status.DOWNLOADING:
        jobs.change_status(job, Status.DOWNLOADING, reason_code="server_downloading",
                           reason=f"Downloading on {server.name}.")
    jobs.record_progress(job, progress=1.0, downloaded_bytes=torrent.done, uploaded_bytes=torrent.uploaded,
                         download_rate=0, upload_rate=torrent.upload_rate, eta_seconds=0, peers=torrent.peers,
                         seeds=torrent.seeds)
    local = server.map_path(torrent.save_path)
    if local is None:
        reason = (f"Finished on {server.name}; the files stay on the server." if not server.local_path else
                  f"Finished on {server.name}, in {torrent.save_path}, outside the path mapping: the files stay "
                  "on the server.")
        finish.finish(job, reason_code="done_on_server", reason=reason, event_data=_provider(server))
        return
    road_home.data_complete(job, reason_code="server_delivering",
                            reason=f"Finished on {server.name}; bringing the files home.", event_data=_provider(server))


def _mapped_source(root: Path, save_path: Path, relative: str) -> Path:
    """The local copy of a file on the mapped disk; refused if it (or a symlink in it) leaves the mapping."""
    source = safe_join(save_path, relative)
    resolved = source.resolve()
    if root.resolve() not in resolved.parents:
        raise UnsafePath(f"{relative} resolves outside the mapped folder.")
    if not resolved.is_file():
        raise FileNotFoundError(f"{source} is not on the mapped disk.")
    return resolved


def _mapped_path(root: Path, save_path: Path, relative: str) -> Path:
    """Where a file being downloaded will be on the mapped disk (it may not exist yet); refused if its folder
    leaves the mapping."""
    source = safe_join(save_path, relative)
    if root.resolve() not in source.parent.resolve().parents and source.parent.resolve() != root.resolve():
        raise UnsafePath(f"{relative} resolves outside the mapped folder.")
    return source


def _completed_source(server: TorrentServer, client, job: Job, jobfile: JobFile) -> PieceSource | None:
    """A server without piece state: the file once the server has all of it, as one verified "piece"."""
    torrent = client.get(job.info_hash, with_files=True)
    remote = next((f for f in torrent.files or [] if f.index == jobfile.index and f.path == jobfile.path), None)
    local = server.map_path(torrent.save_path)
    if remote is None or local is None or remote.done < remote.size or remote.size != jobfile.size_bytes:
        return None
    try:
        path = _mapped_source(Path(server.local_path), Path(local), jobfile.path)
    except (UnsafePath, OSError):
        return None
    return PieceSource(path, remote.size, 0, max(1, remote.size), lambda: [True])


def _piece_hashes(client, job: Job) -> list[bytes] | None:
    """Every piece's SHA-1: from the server (qBittorrent), else from the job's .torrent; None for a magnet on a
    server that does not hand them out (Transmission): then only completed files play."""
    hashes = client.piece_hashes(job.info_hash)
    if hashes is None and job.torrent:
        try:
            pieces = bencode2.bdecode(intake.decode_torrent(job.torrent))[b"info"][b"pieces"]
            hashes = [pieces[i:i + 20] for i in range(0, len(pieces), 20)]
        except (bencode2.BencodeDecodeError, KeyError, TypeError, ValueError):
            return None
    return hashes


def _register_files_early(server: TorrentServer, job: Job) -> None:
    """The file list as soon as the metadata is known (one request, once per job), so a file can be played
    while the server downloads it; only with a path mapping (nothing can read it otherwise)."""
    if not server.local_path or job.files.exists():
        return
    try:
        with clients.connect(server) as client:
            torrent = client.get(job.info_hash, with_files=True)
        if torrent.files:
            jobs.register_files(job, [(f.path, f.size, f.index) for f in torrent.files])
    except (ClientError, UnsafePath) as exc:  # the completion path registers them (or refuses) later
        log.info("server sync: early file list skipped", extra={"job": job.pk, "error": type(exc).__name__})


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link costs nothing when the mapped disk is DATA_DIR's filesystem; otherwise a streamed copy."""
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    partial.replace(target)


def _quietly(action, job: Job, *args, **kwargs) -> None:
    """A status change that may lose a race with the user (or another worker): the other change stands."""
    try:
        action(job, *args, **kwargs)
    except (jobs.StaleJob, IllegalTransition):
        log.info("server backend: job changed meanwhile", extra={"job": job.pk})


def _stop_quietly(server: TorrentServer, torrent: Torrent) -> None:
    try:
        with clients.connect(server) as client:
            client.stop(torrent.hash)
    except ClientError as exc:
        log.info("server backend: could not stop a refused torrent", extra={"server": server.pk, "code": exc.code})
