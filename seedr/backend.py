"""Seedr.cc as a Flotilla backend (kind "seedr"), on the spine's interface.

A job's life here (SeedrTask.phase) and its statuses:

    queued ─dispatch─► starting ─add_torrent─► fetching_metadata/downloading   (phase remote, one list per sync)
      ─torrent became a folder─► transferring (phase transfer: the spine's bring-home runner calls
                                  `bring_home`, which streams it home, resumable)
      ─files moved into DATA_DIR─► (phase cleanup, still transferring: torrent/folder deleted on Seedr)
      ─Seedr clean─► finish (completed), and the dispatcher is kicked: the user's next Seedr item may start.

Only `SEEDR_BATCH_CONCURRENCY` Seedr jobs of a user are active at once (`may_start` asks, `submit` decides,
older jobs first), and a job holds its slot until Seedr is clean, so the next item never meets a full
Seedr account. A refused login makes the user's jobs wait (`seedr_auth_expired`) and resume where they
were after reconnecting. Transient trouble is retried with backoff (the spine's runner counts the attempts
of bringing files home); permanent refusals fail the job with a `seedr_*` code and free the Seedr side.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from billing import services as billing
from config.errors import Conflict
from config.tasks import enqueue
from downloads import bring_home as road_home
from downloads import failover, intake, runs
from downloads import services as jobs
from downloads.backends import Backend, BackendError, RemoteLink, Wait
from downloads.models import ACTIVE, IllegalTransition, Job, JobFile, Status
from downloads.paths import UnsafePath
from seedr import client, transfer
from seedr import services as seedr
from seedr.models import SeedrTask

log = logging.getLogger(__name__)

CLEANUP = "seedr_cleanup"
TRANSFER_RETRY = "seedr_transfer_retry"
TRANSFER_FAILED = "seedr_transfer_failed"
UNSAFE_ARCHIVE = "seedr_unsafe_archive"
MISSING_GRACE_SECONDS = 120
PROGRESS_WRITE_SECONDS = 0.5
Phase = SeedrTask.Phase


def _provider(job: Job) -> dict:
    return {"provider": seedr.provider_data(job)}


def temp_dir(job: Job) -> Path:
    return Path(settings.SEEDR_TEMP_DIR) / str(job.pk)


def size_limit() -> int:
    return settings.SEEDR_SIZE_LIMIT_MB * 1024 * 1024


class SeedrBackend(Backend):
    kind = "seedr"
    label = "Seedr.cc"

    def group_key(self, job: Job) -> tuple[str, int]:
        return (self.kind, job.user_id)  # one Seedr account per user: one listing per user per sync

    # --- starting ---------------------------------------------------------------------------------

    def refuses(self, job: Job) -> str | None:
        if not seedr.is_connected(job.user_id):
            return "no Seedr account is connected"
        if job.size_bytes and size_limit() and job.size_bytes > size_limit():
            return _size_message(job.size_bytes)
        return None

    def may_start(self, job: Job) -> Wait | None:
        if not seedr.is_connected(job.user_id):
            return Wait(seedr.NOT_CONNECTED, "Connect your Seedr account to start this download.")
        if _active(job.user_id).count() >= settings.SEEDR_BATCH_CONCURRENCY:
            return _turn_wait()
        return None

    def submit(self, job: Job) -> None:
        # Authoritative capacity check after the claim: established jobs, and starting ones that are older.
        ahead = _active(job.user_id).exclude(pk=job.pk).filter(~Q(status=Status.STARTING) | Q(pk__lt=job.pk))
        if ahead.count() >= settings.SEEDR_BATCH_CONCURRENCY:
            raise BackendError(_turn_wait().message, code=seedr.WAITING_TURN)
        if job.size_bytes and size_limit() and job.size_bytes > size_limit():
            raise BackendError(_size_message(job.size_bytes), code="seedr_size_limit", permanent=True)
        try:
            session = seedr.session_for_user(job.user_id)
            added = (session.add_torrent_file(intake.decode_torrent(job.torrent)) if job.torrent
                     else session.add_magnet(job.magnet))
        except client.SeedrAuthExpired as exc:
            self._login_needed(job, exc)
            return
        except client.SeedrProblem as exc:
            if exc.code in ("seedr_queue_full", "seedr_quota_exceeded"):
                _drop_wishlisted(job)  # Seedr parked the refused torrent in the wishlist: don't leave it there
            raise BackendError(exc.message, code=exc.code, permanent=exc.permanent) from exc
        task, _ = SeedrTask.objects.update_or_create(job=job, defaults={
            "phase": Phase.REMOTE, "torrent_id": added.torrent_id, "torrent_hash": added.info_hash or job.info_hash,
            "torrent_name": added.name or job.name, "folder_id": None, "submitted_at": timezone.now(),
            "moving_since": None, "missing_since": None, "cleared_at": None,
        })
        target = Status.DOWNLOADING if job.size_bytes else Status.FETCHING_METADATA
        jobs.change_status(job, target, reason_code="seedr_added", reason="Seedr is downloading the torrent.",
                           remote_id=f"seedr:{task.torrent_id or task.torrent_hash[:16]}", event_data=_provider(job))

    def _login_needed(self, job: Job, exc: client.SeedrProblem) -> None:
        if exc.code == seedr.NOT_CONNECTED:
            jobs.change_status(job, Status.WAITING, reason_code=seedr.NOT_CONNECTED,
                               reason="Connect your Seedr account to continue.", event_data=_provider(job))
        else:
            seedr.mark_expired(job.user_id, exc)  # holds this job (and the user's others) as waiting

    # --- syncing ----------------------------------------------------------------------------------

    def sync(self, group: Sequence[Job]) -> None:
        """ONE root listing for all of a user's Seedr jobs, then each job moves on from it."""
        user_id = group[0].user_id
        try:
            session = seedr.session_for_user(user_id)
        except client.SeedrAuthExpired:
            return  # nothing to ask Seedr; the jobs already wait for a login (or will at their next step)
        self._resume_logins(group)
        if not any(job.status in ACTIVE and seedr.task_of(job) for job in group):
            return
        try:
            root = session.list_contents(0)
        except client.SeedrAuthExpired as exc:
            seedr.mark_expired(user_id, exc)
            return
        except client.SeedrProblem as exc:
            log.info("seedr sync: listing failed, next sync retries", extra={"user": user_id, "code": exc.code})
            return
        tasks = {t.job_id: t for t in SeedrTask.objects.filter(job__in=group)}
        claimed_folders = set(SeedrTask.objects.filter(job__user_id=user_id, folder_id__isnull=False)
                              .values_list("folder_id", flat=True))
        for job in group:
            try:
                self._sync_one(session, root, job, tasks.get(job.pk), claimed_folders)
            except (jobs.StaleJob, IllegalTransition):
                log.info("seedr sync: job changed meanwhile", extra={"job": job.pk})
            except client.SeedrAuthExpired as exc:
                seedr.mark_expired(user_id, exc)
                return

    def _resume_logins(self, group: Sequence[Job]) -> None:
        for job in group:
            if job.status == Status.WAITING and job.reason_code in (seedr.AUTH_EXPIRED, seedr.NOT_CONNECTED):
                try:
                    seedr.resume_after_login(job)
                except (jobs.StaleJob, IllegalTransition):
                    continue

    def _sync_one(self, session: client.Session, root, job: Job, task: SeedrTask | None, claimed: set) -> None:
        if task is None or job.status not in ACTIVE:
            return
        if task.phase == Phase.REMOTE and job.status != Status.WAITING:
            self._sync_remote(session, root, job, task, claimed)
        elif job.status == Status.TRANSFERRING:
            road_home.nudge(job)  # a retry that is due, or a run whose worker died
        elif task.phase == Phase.CLEANUP and job.status == Status.WAITING and job.reason_code == CLEANUP:
            # Left waiting for cleanup by an earlier version: cleanup is the runner's last step now.
            road_home.data_complete(job, reason_code=CLEANUP, reason="Files are home; cleaning up Seedr.")

    def _sync_remote(self, session: client.Session, root, job: Job, task: SeedrTask, claimed: set) -> None:
        torrent = next((t for t in root.torrents if (task.torrent_id and t.id == task.torrent_id)
                        or (not task.torrent_id and task.torrent_hash and t.hash.lower() == task.torrent_hash.lower())),
                       None)
        if torrent is not None:
            if task.missing_since is not None:
                SeedrTask.objects.filter(pk=task.pk).update(missing_since=None)
            self._on_progress(session, job, task, torrent)
            return
        folder = _finished_folder(root, task, claimed)
        if folder is None:
            # Seedr may list neither for a moment while it turns a finished torrent into its folder.
            now = timezone.now()
            if task.missing_since is None:
                SeedrTask.objects.filter(pk=task.pk).update(missing_since=now)
            elif (now - task.missing_since).total_seconds() > MISSING_GRACE_SECONDS:
                _fail(session, job, task, "seedr_error", "The torrent is no longer on Seedr (deleted there?).")
            return
        claimed.add(folder.id)
        SeedrTask.objects.filter(pk=task.pk).update(folder_id=folder.id, phase=Phase.TRANSFER)
        task.folder_id, task.phase = folder.id, Phase.TRANSFER
        size = folder.size or job.size_bytes or 0
        if job.status != Status.DOWNLOADING:
            jobs.change_status(job, Status.DOWNLOADING, event_data=_provider(job))
        jobs.record_progress(job, progress=1.0, downloaded_bytes=size, size_bytes=size, download_rate=0,
                             eta_seconds=0)
        road_home.data_complete(job, reason_code="seedr_transferring",
                                reason="Seedr finished; bringing the files home.", event_data=_provider(job))

    def _on_progress(self, session: client.Session, job: Job, task: SeedrTask, torrent) -> None:
        try:
            percent = float(torrent.progress or 0)
        except ValueError:
            percent = 0.0
        size = int(torrent.size or 0)
        if size and size != job.size_bytes:
            if size_limit() and size > size_limit():
                _fail(session, job, task, "seedr_size_limit", _size_message(size))
                return
            if not jobs.set_size(job, size):  # over the plan's quota: failed with quota_exceeded
                _discard_remote(session, task)
                return
        if percent <= 0:
            waited = (timezone.now() - task.submitted_at).total_seconds()
            if waited > settings.SEEDR_STALL_TIMEOUT:
                _fail(session, job, task, "seedr_stalled", f"The torrent stayed at 0 % on Seedr for "
                      f"{int(waited // 60)} minutes (no seeders?); it was removed from Seedr.")
                return
        elif task.moving_since is None:
            SeedrTask.objects.filter(pk=task.pk).update(moving_since=timezone.now())
        if job.status != Status.DOWNLOADING and (percent > 0 or size):
            jobs.change_status(job, Status.DOWNLOADING, reason_code="seedr_downloading",
                               reason="Seedr is downloading the torrent.", event_data=_provider(job))
        rate = int(torrent.download_rate or 0)
        remaining = size * (1 - percent / 100) if size else 0
        jobs.record_progress(job, progress=min(1.0, percent / 100), downloaded_bytes=int(size * percent / 100),
                             size_bytes=size or job.size_bytes, download_rate=rate,
                             eta_seconds=int(remaining / rate) if rate else None,
                             peers=int(torrent.connected_to or 0), seeds=int(torrent.seeders or 0))

    # --- user actions -------------------------------------------------------------------------------

    def pause(self, job: Job) -> None:
        if seedr.task_of(job) is not None:
            raise Conflict("A download running on Seedr cannot be paused; cancel it instead.",
                           code="seedr_pause_unsupported")

    def resume(self, job: Job) -> None:
        return None  # only never-submitted (held) Seedr jobs can be paused; resuming just queues them

    def cancel(self, job: Job, *, delete_data: bool) -> None:
        task = seedr.task_of(job)
        if task is not None and task.phase != Phase.DONE:
            try:
                _discard_remote(seedr.session_for_user(job.user_id), task)
            except client.SeedrProblem as exc:
                log.info("seedr cancel: remote left as is", extra={"job": job.pk, "code": exc.code})
        shutil.rmtree(temp_dir(job), ignore_errors=True)

    def bring_home(self, job: Job) -> None:
        """Stream the finished folder home (resuming what an earlier attempt left), move it into the job's
        folder, register files, then delete it on Seedr. Each step is skipped when an earlier attempt did it
        (`SeedrTask.phase`); the spine's runner counts attempts and backs off."""
        task = seedr.task_of(job)
        if task is None:
            raise BackendError("This job has no Seedr state.", code="seedr_error", permanent=True)
        try:
            session = seedr.session_for_user(job.user_id)
            if task.phase == Phase.TRANSFER:
                Transfer(job, task).run(session)
            if task.phase == Phase.CLEANUP:
                _clean_seedr(session, job, task)
        except client.SeedrAuthExpired as exc:
            seedr.mark_expired(job.user_id, exc)  # the job waits for a login; reconnecting resumes it here
            raise runs.JobMoved("seedr login expired") from exc
        except _AlreadyFailed:
            _discard_remote_quietly(job)
            raise runs.JobMoved("failed by a quota check") from None
        except (transfer.UnsafeArchive, UnsafePath) as exc:
            raise BackendError(f"Refused the download: {exc}", code=UNSAFE_ARCHIVE, permanent=True) from exc
        except client.SeedrProblem as exc:
            raise BackendError(exc.message, code=TRANSFER_FAILED if exc.permanent else TRANSFER_RETRY,
                               permanent=exc.permanent) from exc
        except (transfer.TransferError, OSError) as exc:
            raise BackendError(str(exc), code=TRANSFER_RETRY) from exc

    def stream_source(self, job: Job, jobfile: JobFile) -> RemoteLink | None:
        """Once Seedr has the finished files and until they are home: a fresh file link for this playback
        request (Seedr's file server answers Range; it allows two reads per link, so links are not shared)."""
        task = seedr.task_of(job)
        if task is None or task.phase != Phase.TRANSFER or not task.folder_id:
            return None
        try:
            session = seedr.session_for_user(job.user_id)
            file_id = _remote_file_ids(session, job, task).get(jobfile.path)
            if file_id is None:  # a listing kept from before may be stale: look once more
                file_id = _remote_file_ids(session, job, task, fresh=True).get(jobfile.path)
            return RemoteLink(session.fetch_file(file_id)) if file_id is not None else None
        except client.SeedrProblem as exc:
            raise BackendError(exc.message, code=exc.code or "seedr_error", permanent=bool(exc.permanent)) from exc
        except (transfer.TransferError, transfer.UnsafeArchive) as exc:
            raise BackendError(str(exc), code="seedr_error") from exc

    def abandon(self, job: Job) -> None:
        """Bringing it home failed for good: free Seedr (the user's next item needs the space) and the disk."""
        _discard_remote_quietly(job)
        shutil.rmtree(temp_dir(job), ignore_errors=True)


# --- the transfer --------------------------------------------------------------------------------------


@dataclass
class RemoteFile:
    path: str
    size: int
    folder_file_id: int


def remote_files(session: client.Session, folder_id: int | None) -> list[RemoteFile]:
    """Every file under a job's Seedr folder, with paths relative to it (checked to stay inside)."""
    out: list[RemoteFile] = []
    pending = [(folder_id, "")]
    while pending:
        folder_id, prefix = pending.pop(0)
        listing = session.list_contents(folder_id)
        for f in listing.files:
            out.append(RemoteFile(str(transfer.clean_relative(f"{prefix}{f.name}")), int(f.size),
                                  int(f.folder_file_id)))
        pending += [(sub.id, f"{prefix}{sub.name}/") for sub in listing.folders]
        if len(out) > settings.TORRENT_MAX_FILES:
            raise transfer.UnsafeArchive("The Seedr folder holds more files than allowed.")
    if not out:
        raise transfer.TransferError("The Seedr folder is empty (still being prepared?).")
    return out


class Transfer:
    """One attempt at bringing a job's Seedr folder home (inside the spine's bring-home run and its lease)."""

    def __init__(self, job: Job, task: SeedrTask) -> None:
        self.job = job
        self.task = task
        self.staging = temp_dir(job)
        self.done_before = 0
        self.total = 0
        self._last_write = time.monotonic()
        self._last_done: int | None = None

    def run(self, session: client.Session) -> None:
        files = self._listing(session)
        self.total = sum(f.size for f in files)
        self._check_limits(session)
        archive = settings.SEEDR_MULTIFILE_MODE == "archive" and len(files) > 1
        ordered = sorted(files, key=lambda f: f.path) if archive else files
        # Registered before the bytes move, so the files can be played from Seedr meanwhile (stream_source).
        if not self.job.files.exists():
            jobs.register_files(self.job, [(f.path, f.size, index) for index, f in enumerate(ordered)])
        self._prepare_staging()
        with transfer.http_client() as http:
            if archive:
                self._via_archive(session, http, files)
            else:
                self._file_by_file(session, http, files)
        transfer.move_into_place(self.staging / "files", self.job.data_dir)
        shutil.rmtree(self.staging, ignore_errors=True)
        jobs.update_file_progress(self.job, {index: f.size for index, f in enumerate(ordered)})
        jobs.record_progress(self.job, progress=1.0, download_rate=0, eta_seconds=0)
        SeedrTask.objects.filter(pk=self.task.pk).update(phase=Phase.CLEANUP)
        self.task.phase = Phase.CLEANUP
        jobs.set_reason(self.job, CLEANUP, "Files are home; cleaning up Seedr.")

    def _listing(self, session: client.Session) -> list[RemoteFile]:
        return remote_files(session, self.task.folder_id)

    def _check_limits(self, session: client.Session) -> None:
        """Before any byte moves: the Seedr size limit, the plan's storage/per-job quota and monthly transfer."""
        if size_limit() and self.total > size_limit():
            raise BackendError(_size_message(self.total), code="seedr_size_limit", permanent=True)
        if self.total != self.job.size_bytes and not jobs.set_size(self.job, self.total):
            raise _AlreadyFailed()
        try:
            billing.check_transfer(self.job.user, self.total)
        except billing.QuotaExceeded as exc:
            raise BackendError(exc.detail, code=exc.code, permanent=True) from exc

    def _prepare_staging(self) -> None:
        """Cleaned before each new transfer; kept (partial files and all) when resuming the same one."""
        marker = self.staging / ".seedr-folder"
        if not (marker.exists() and marker.read_text() == str(self.task.folder_id)):
            shutil.rmtree(self.staging, ignore_errors=True)
            (self.staging / "files").mkdir(parents=True)
            marker.write_text(str(self.task.folder_id))

    def _file_by_file(self, session: client.Session, http, files: list[RemoteFile]) -> list[tuple[str, int]]:
        placed = []
        for f in files:
            dest = transfer.safe_join(self.staging / "files", f.path)
            part = dest.with_name(dest.name + ".part")
            if not (dest.exists() and dest.stat().st_size == f.size):
                url = session.fetch_file(f.folder_file_id)  # a fresh signed link per file and attempt
                transfer.stream_file(http, url, part, f.size, self._progress)
                part.replace(dest)
            self.done_before += f.size
            placed.append((f.path, f.size))
        return placed

    def _via_archive(self, session: client.Session, http, files: list[RemoteFile]) -> list[tuple[str, int]]:
        url = session.create_archive(self.task.folder_id)
        archive = self.staging / "archive.zip"
        transfer.stream_file(http, url, archive, None, self._progress)
        shutil.rmtree(self.staging / "files", ignore_errors=True)
        placed = transfer.safe_extract(archive, self.staging / "files", max_bytes=self.total,
                                       max_files=settings.TORRENT_MAX_FILES * 2 + 16,
                                       strip=self.task.torrent_name or self.job.name)
        archive.unlink()
        expected = {(f.path, f.size) for f in files}
        if set(placed) != expected:
            raise transfer.UnsafeArchive("The archive's files differ from the Seedr folder's listing.")
        return sorted(placed)

    def _progress(self, position: int) -> None:
        """Called as bytes arrive: progress at most every 0.5 s; the run's lease renewal and cancel check
        (`runs.keep_alive`, which stops a cancelled job's transfer with JobMoved) every few seconds."""
        now = time.monotonic()
        done = self.done_before + position
        runs.keep_alive()
        if self._last_done is None:
            self._last_done = done  # a resumed file starts with what was already on disk: not a rate
        if now - self._last_write >= PROGRESS_WRITE_SECONDS and self.total:
            rate = int(max(0, done - self._last_done) / max(0.001, now - self._last_write))
            self._last_write, self._last_done = now, done
            jobs.record_progress(self.job, progress=min(1.0, done / self.total), download_rate=rate,
                                 eta_seconds=int((self.total - done) / rate) if rate else None)


# Seedr folder listings by (job, folder): a player's burst of Range requests costs one fetch_file each, not a
# walk of the folder each. Per process, short-lived; the file ids of a finished folder do not change.
_LISTING_SECONDS = 60
_listings: dict[tuple[int, int], tuple[float, dict[str, int]]] = {}


def _remote_file_ids(session: client.Session, job: Job, task: SeedrTask, *, fresh: bool = False) -> dict[str, int]:
    key, now = (job.pk, int(task.folder_id)), time.monotonic()
    cached = _listings.get(key)
    if fresh or cached is None or now - cached[0] > _LISTING_SECONDS:
        for stale in [k for k, (at, _) in _listings.items() if now - at > _LISTING_SECONDS]:
            _listings.pop(stale, None)
        cached = (now, {f.path: f.folder_file_id for f in remote_files(session, task.folder_id)})
        _listings[key] = cached
    return cached[1]


class _AlreadyFailed(Exception):
    """A service already failed the job with its own reason (set_size over quota)."""


# --- cleanup, failure -------------------------------------------------------------------------------------


def _clean_seedr(session: client.Session, job: Job, task: SeedrTask) -> None:
    """Delete the job's folder (and torrent, if any) on Seedr; only then may the job finish (it holds its
    Seedr slot until then, so the user's next item never meets a full account). A failure is transient."""
    try:
        _discard_remote(session, task, strict=True)
    except client.SeedrAuthExpired:
        raise
    except client.SeedrProblem as exc:
        raise BackendError(f"Files are home; Seedr cleanup failed ({exc.message}).", code=CLEANUP) from exc
    SeedrTask.objects.filter(pk=task.pk).update(phase=Phase.DONE)
    task.phase = Phase.DONE


def _discard_remote(session: client.Session, task: SeedrTask, *, strict: bool = False) -> None:
    """Delete the job's torrent or folder on Seedr. Best effort unless `strict` (cleanup): then an error is
    checked against a listing (the item may be gone anyway) and raised if it is still there."""
    # A finished torrent became its folder: delete that; before that, the running torrent.
    kind, item_id = ("folder", task.folder_id) if task.folder_id else ("torrent", task.torrent_id)
    if not item_id:
        return
    try:
        session.delete(kind, item_id)
        return
    except client.SeedrAuthExpired:
        raise
    except client.SeedrProblem as exc:
        if not strict:  # best effort (failing, cancelling): the job's outcome does not depend on it
            log.info("seedr: could not free the Seedr side", extra={"task": task.pk, "code": exc.code})
            return
        problems = [exc]
    root = session.list_contents(0)  # a delete answered with an error may still have happened (or was done)
    listed = root.folders if kind == "folder" else root.torrents
    if any(item.id == item_id for item in listed):
        raise problems[0]


def _discard_remote_quietly(job: Job) -> None:
    task = seedr.task_of(job)
    if task is None:
        return
    try:
        _discard_remote(seedr.session_for_user(job.user_id), task)
    except client.SeedrProblem as exc:
        log.info("seedr: could not free the Seedr side", extra={"job": job.pk, "code": exc.code})


def _fail(session: client.Session, job: Job, task: SeedrTask, code: str, message: str) -> None:
    """Fail the job and free Seedr (so the user's next item finds the space and the slot), unless the user's
    fail-over policy moves it to their next backend (which frees Seedr the same way, through `cancel`)."""
    if failover.fail_over(job, code, message):
        return
    jobs.fail(job, code, message, **_provider(job))
    try:
        _discard_remote(session, task)
    except client.SeedrProblem as exc:
        log.info("seedr: could not free the Seedr side", extra={"job": job.pk, "code": exc.code})
    shutil.rmtree(temp_dir(job), ignore_errors=True)
    _kick_dispatcher_on_commit()


# --- helpers ---------------------------------------------------------------------------------------------


def _active(user_id: int):
    return seedr.seedr_jobs().filter(user_id=user_id, status__in=ACTIVE)


def _turn_wait() -> Wait:
    n = settings.SEEDR_BATCH_CONCURRENCY
    return Wait(seedr.WAITING_TURN, f"Waiting for your earlier Seedr download to finish and be cleaned up "
                f"(Seedr runs {n} at a time).")


def _size_message(size: int) -> str:
    return (f"This download is {size // (1024 * 1024)} MiB; this server brings Seedr downloads of at most "
            f"{settings.SEEDR_SIZE_LIMIT_MB} MiB home.")


def _finished_folder(root, task: SeedrTask, claimed: set):
    """A finished torrent becomes a root folder named after it; the newest one no other job took."""
    names = {task.torrent_name}
    candidates = [f for f in root.folders if f.name in names and f.id not in claimed]
    return max(candidates, key=lambda f: f.id) if candidates else None


def _drop_wishlisted(job: Job) -> None:
    try:
        seedr.session_for_user(job.user_id).drop_wishlisted(job.info_hash)
    except client.SeedrProblem as exc:
        log.info("seedr: wishlist entry left", extra={"job": job.pk, "code": exc.code})


def _kick_dispatcher_on_commit() -> None:
    enqueue("downloads.tasks.dispatch", group="dispatch")
