"""Job lifecycle: intake, status changes, progress, user actions. Every change goes through here.

Status changes are conditional updates (`WHERE status = <what we saw>`) written together with their
JobEvent in one transaction, so a web action and an engine tick can never overwrite each other silently.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.audit import record_audit
from accounts.services import check_can_create_jobs
from billing import services as billing
from config.crypto import keyed_hash
from config.errors import Conflict, DomainError
from config.tasks import enqueue
from downloads import backends, events, fetch, intake, metrics
from downloads.models import (
    ACTIVE,
    CANCELLABLE,
    PAUSABLE,
    RESUMABLE,
    RETRYABLE,
    RUNNING,
    TERMINAL,
    Batch,
    BlockedInfoHash,
    EventKind,
    IllegalTransition,
    Job,
    JobConflict,
    JobEvent,
    JobFile,
    StaleJob,
    Status,
)
from downloads.paths import safe_join

log = logging.getLogger(__name__)


class PolicyNotAccepted(DomainError):
    code = "policy_not_accepted"
    http_status = 403


# --- intake ---------------------------------------------------------------------------------------


def check_account_may_add(user, backend: str) -> None:
    """What holds for the account whatever the torrent: policy, verification, backend, plan and quota."""
    if not user.has_accepted_policy:
        raise PolicyNotAccepted("Accept the acceptable-use policy before adding downloads.")
    check_can_create_jobs(user)  # email verification, when the operator requires it
    if not _BACKEND_NAME.fullmatch(backend):
        raise DomainError(f"Unknown backend '{backend[:40]}'.", code="unknown_backend")
    if (runner := backends.get_backend(backend)) is not None:
        runner.validate_target(user, backend)  # e.g. "server:<id>" must be one of the user's own servers
    billing.check_new_job(user, backend, None)


def check_torrent_allowed(user, parsed: intake.ParsedTorrent) -> None:
    """What holds for this torrent: not blocked, not already running for the user, size within quota."""
    digest = keyed_hash(parsed.info_hash)
    if BlockedInfoHash.objects.filter(info_hash_hmac=digest).exists():
        raise DomainError("This torrent is blocked on this server.", code="blocked", http_status=403)
    if Job.objects.for_user(user).unfinished().filter(info_hash_hmac=digest).exists():
        raise Conflict("You already have this torrent in your downloads.", code="duplicate")
    if parsed.size is not None:
        billing.check_size(user, parsed.size)


def check_can_create(user, backend: str, parsed: intake.ParsedTorrent) -> None:
    """Everything that must hold before a job exists."""
    check_account_may_add(user, backend)
    check_torrent_allowed(user, parsed)


_BACKEND_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}(:[0-9]{1,12})?")


def _new_job(user, backend: str, parsed: intake.ParsedTorrent, *, magnet: str = "", torrent: bytes = b"",
             batch: Batch | None = None, position: int = 0, ephemeral: bool = False) -> Job:
    job = Job.objects.create(
        user=user,
        ephemeral=ephemeral,
        backend=backend,
        batch=batch,
        position=position,
        name=parsed.name or parsed.info_hash,
        info_hash=parsed.info_hash,
        info_hash_hmac=keyed_hash(parsed.info_hash),
        magnet=magnet,
        torrent=intake.encode_torrent(torrent) if torrent else "",
        is_private=parsed.is_private,
        size_bytes=parsed.size,
    )
    if parsed.files:
        register_files(job, [(f.path, f.size, i) for i, f in enumerate(parsed.files)], emit_event=False)
    events.emit(job, EventKind.CREATED, Status.QUEUED, {"name": job.name, "backend": backend,
                                                         "batch": batch.pk if batch else None})
    billing.record_usage(user.pk, jobs=1)
    return job


def _resolve_backend(backend: str | None) -> str:
    return (backend or settings.DEFAULT_BACKEND).strip().lower()


@transaction.atomic
def add_magnet(user, magnet: str, *, backend: str | None = None, ephemeral: bool = False) -> Job:
    """`ephemeral`: a "Play without downloading" job (streaming/ephemeral.py), same checks as any other."""
    return _add(user, intake.parse_magnet(magnet), backend, magnet=magnet.strip(), source="magnet",
                ephemeral=ephemeral)


@transaction.atomic
def add_torrent(user, data: bytes, *, backend: str | None = None, ephemeral: bool = False) -> Job:
    return _add(user, intake.parse_torrent(data), backend, torrent=data, source="torrent", ephemeral=ephemeral)


def add_url(user, url: str, *, backend: str | None = None) -> Job:
    """A job from an http(s) link to a .torrent (or a link that redirects to a magnet), fetched by Flotilla.

    The account is checked before anything is fetched: a user who may not add never makes Flotilla reach out.
    The fetch runs outside any transaction (no database transaction held open across network I/O); what it
    brings goes through the same intake as a pasted magnet or an uploaded file, and every check runs again
    (the fetch may have taken a while), so a failure at any step creates nothing.
    """
    backend = _resolve_backend(backend)
    check_account_may_add(user, backend)
    fetched = fetch.fetch_torrent(url.strip())
    host = _host(url)
    with transaction.atomic():
        if fetched.magnet:
            return _add(user, intake.parse_magnet(fetched.magnet), backend, magnet=fetched.magnet.strip(),
                        source="url", host=host)
        return _add(user, intake.parse_torrent(fetched.data), backend, torrent=fetched.data, source="url",
                    host=host)


def _host(url: str) -> str:
    """Only the host goes into the audit log: an indexer's link often carries the user's passkey."""
    try:
        return (urlsplit(url.strip()).hostname or "")[:200]
    except ValueError:
        return ""


def _add(user, parsed: intake.ParsedTorrent, backend: str | None, *, magnet: str = "", torrent: bytes = b"",
         source: str, ephemeral: bool = False, **audit) -> Job:
    """Check, create, audit and kick the dispatcher; the caller holds the transaction."""
    backend = _resolve_backend(backend)
    check_can_create(user, backend, parsed)
    job = _new_job(user, backend, parsed, magnet=magnet, torrent=torrent, ephemeral=ephemeral)
    if ephemeral:
        audit["ephemeral"] = True
    record_audit("job.create", actor=user, target=job, source=source, backend=backend, **audit)
    transaction.on_commit(_kick_dispatcher)
    return job


@dataclass
class BatchResult:
    batch: Batch | None
    jobs: list[Job]
    errors: list[dict]


def add_batch(user, text: str, *, backend: str | None = None, name: str = "") -> BatchResult:
    """Validate every line; queue the valid ones, in order, as one Batch; report per-line errors."""
    lines = intake.split_batch(text)
    backend = _resolve_backend(backend)
    check_account_may_add(user, backend)  # once for the batch; per line only what depends on the torrent
    parsed_lines, errors = [], []
    seen: set[str] = set()
    for number, line in lines:
        try:
            parsed = intake.parse_magnet(line)
            if parsed.info_hash in seen:
                raise Conflict("The same torrent appears earlier in this batch.", code="duplicate")
            check_torrent_allowed(user, parsed)
        except DomainError as exc:
            errors.append({"line": number, "code": exc.code, "detail": exc.detail})
            continue
        seen.add(parsed.info_hash)
        parsed_lines.append((line, parsed))
    if not parsed_lines:
        return BatchResult(None, [], errors)
    with transaction.atomic():
        batch = Batch.objects.create(user=user, backend=backend, name=name[:200])
        jobs = [
            _new_job(user, backend, parsed, magnet=line, batch=batch, position=position)
            for position, (line, parsed) in enumerate(parsed_lines, start=1)
        ]
        record_audit("batch.create", actor=user, target=batch, jobs=len(jobs), rejected=len(errors))
        transaction.on_commit(_kick_dispatcher)  # once for the whole batch
    return BatchResult(batch, jobs, errors)


def _kick_dispatcher() -> None:
    """Ask the worker to dispatch now instead of at its next scheduled tick (callers run it on commit)."""
    enqueue("downloads.tasks.dispatch", group="dispatch", on_commit=False)


# --- status and progress --------------------------------------------------------------------------


def change_status(job: Job, target: str, *, reason_code: str = "", reason: str = "", event_data: dict | None = None,
                  **fields) -> Job:
    """Move a job to `target` if the table allows it from the status we last saw; event in the same txn."""
    job.check_transition(target)
    now = timezone.now()
    changes = {"status": target, "reason_code": reason_code, "reason": reason[:500], "updated_at": now, **fields}
    if target in TERMINAL:
        changes.setdefault("finished_at", now)
        changes.update(download_rate=0, upload_rate=0, eta_seconds=None, peers=0, seeds=0)
    elif target in ACTIVE and job.started_at is None:
        changes.setdefault("started_at", now)
    if target in RUNNING and job.status not in RUNNING:
        changes.setdefault("progress_at", now)  # the stall clock starts when the job starts running
    if target == Status.QUEUED:
        changes.update(finished_at=None, claimed_by="", claimed_at=None)
    previous = job.status
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status=previous).update(**changes):
            job.refresh_from_db()
            raise StaleJob(f"The job changed meanwhile (it is now {job.get_status_display().lower()}).")
        for key, value in changes.items():
            setattr(job, key, value)
        events.emit_status(job, previous, extra=event_data)
    log.info("job status", extra={"job": job.pk, "from": previous, "to": target, "code": reason_code})
    metrics.observe_status(job, previous)  # duration and failure code once a job ends
    return job


def try_change_status(job: Job, target: str, **kwargs) -> bool:
    """`change_status` for background callers (pollers, the engine): a lost race is an answer, not an error.

    Returns False when the job moved meanwhile or the table forbids the move from where it now is."""
    try:
        change_status(job, target, **kwargs)
    except JobConflict as exc:
        log.info("status change skipped", extra={"job": job.pk, "to": target, "why": exc.detail})
        return False
    return True


def fail(job: Job, code: str, message: str, **event_data) -> Job:
    return change_status(job, Status.FAILED, reason_code=code, reason=message, event_data=event_data)


def set_size(job: Job, size: int) -> bool:
    """Record a size learned late (magnet metadata, a remote listing) and re-check the quota.

    Returns False when the job was refused: it is then failed with `quota_exceeded` naming the limit and its
    partial data is removed, so it never stalls half-way.
    """
    Job.objects.filter(pk=job.pk).update(size_bytes=size)
    job.size_bytes = size
    try:
        billing.check_size(job.user, size, exclude_job_id=job.pk)
    except billing.QuotaExceeded as exc:
        fail(job, exc.code, exc.detail, limit=exc.limit)
        remove_job_data(job, reason_code=exc.code, reason="Partial files removed: the download is over quota.")
        return False
    return True


def set_reason(job: Job, code: str, message: str) -> None:
    """Say why a job is waiting, without a status change; an event only when the reason changes."""
    if job.reason_code == code:
        return
    with transaction.atomic():
        # Conditional: two dispatchers seeing the same job at once must not both write the message.
        changed = Job.objects.filter(pk=job.pk, status=job.status).exclude(reason_code=code).update(
            reason_code=code, reason=message[:500]
        )
        job.reason_code, job.reason = code, message[:500]
        if changed:
            events.emit(job, EventKind.MESSAGE, code, {"status": job.status, "reason_code": code, "reason": message})


_PROGRESS_FIELDS = {"progress", "downloaded_bytes", "uploaded_bytes", "size_bytes", "download_rate",
                    "upload_rate", "eta_seconds", "peers", "seeds"}


def record_progress(job: Job, **fields) -> bool:
    """Store the latest numbers; write a progress event at most once per PROGRESS_EVENT_INTERVAL.

    Returns whether an event was written. Downloaded bytes are metered as usage here (the delta).
    """
    unknown = set(fields) - _PROGRESS_FIELDS
    if unknown:
        raise TypeError(f"not progress fields: {sorted(unknown)}")
    now = timezone.now()
    delta = max(0, fields.get("downloaded_bytes", job.downloaded_bytes) - job.downloaded_bytes)
    due = (
        job.last_progress_event_at is None
        or (now - job.last_progress_event_at).total_seconds() >= settings.PROGRESS_EVENT_INTERVAL
    )
    with transaction.atomic():
        updates = dict(fields, updated_at=now)
        if delta:
            updates["progress_at"] = now  # the stall check (downloads/failover.py) reads it
        if due:
            updates["last_progress_event_at"] = now
        Job.objects.filter(pk=job.pk).update(**updates)
        for key, value in updates.items():
            setattr(job, key, value)
        if due:
            events.emit(job, EventKind.PROGRESS, job.status, events.progress_snapshot(job))
        billing.record_usage(job.user_id, downloaded=delta)
    return due


def register_files(job: Job, files: Iterable[tuple[str, int, int]], *, emit_event: bool = True) -> list[JobFile]:
    """Record a job's files (relative path, size, index). Paths are checked to stay inside the job folder."""
    rows = []
    for path, size, index in files:
        safe_join(job.data_dir, path)  # raises UnsafePath for ../, absolute paths, NUL bytes
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        rows.append(JobFile(job=job, path=path, size_bytes=size, index=index, mime_type=mime))
    with transaction.atomic():
        created = JobFile.objects.bulk_create(rows, ignore_conflicts=True)
        if emit_event:
            events.emit(job, EventKind.FILES, "registered", {"count": len(rows)})
    return created


def update_file_progress(job: Job, completed_by_index: dict[int, int]) -> None:
    files = {f.index: f for f in job.files.all()}
    changed = []
    for index, done in completed_by_index.items():
        f = files.get(index)
        if f is not None and f.completed_bytes != done:
            f.completed_bytes = done
            changed.append(f)
    if changed:
        JobFile.objects.bulk_update(changed, ["completed_bytes"])


# --- user actions ---------------------------------------------------------------------------------


def _backend_call(job: Job, action: str, **kwargs) -> None:
    backend = backends.get_backend(job.backend)
    if backend is None or (job.status == Status.QUEUED and not job.remote_id):
        return  # nothing was handed to a backend yet: the status change is all there is to do
    try:
        getattr(backend, action)(job, **kwargs)
    except backends.BackendError as exc:
        raise DomainError(exc.message, code=exc.code, http_status=502) from exc


def _refused(job: Job, target: str, sentence: str) -> IllegalTransition:
    return IllegalTransition(job.pk, job.status, target, detail=sentence)


def pause_job(user, job: Job) -> Job:
    if job.status not in PAUSABLE:
        raise _refused(job, Status.PAUSED, f"A {job.get_status_display().lower()} job cannot be paused.")
    _backend_call(job, "pause")
    change_status(job, Status.PAUSED, reason_code="paused_by_user", reason="Paused.")
    record_audit("job.pause", actor=user, target=job)
    return job


def resume_job(user, job: Job) -> Job:
    if job.status not in RESUMABLE:
        raise _refused(job, Status.QUEUED, "Only a paused job can be resumed.")
    _backend_call(job, "resume")
    # Back to the queue: the backend (or the engine's claim) takes it from there, respecting slots.
    target = Status.QUEUED if not job.remote_id and not job.claimed_by else Status.STARTING
    change_status(job, target, reason_code="resumed", reason="Resumed.")
    record_audit("job.resume", actor=user, target=job)
    transaction.on_commit(_kick_dispatcher)
    return job


def cancel_job(user, job: Job, *, delete_data: bool = False) -> Job:
    if job.status not in CANCELLABLE:
        raise _refused(job, Status.CANCELLED, f"The job is already {job.get_status_display().lower()}.")
    _backend_call(job, "cancel", delete_data=delete_data)
    change_status(job, Status.CANCELLED, reason_code="cancelled_by_user", reason="Cancelled.")
    if delete_data:
        remove_job_data(job, reason_code="cancelled", reason="Files removed with the cancellation.", actor=user)
    record_audit("job.cancel", actor=user, target=job, delete_data=delete_data)
    return job


def retry_job(user, job: Job) -> Job:
    if job.status not in RETRYABLE:
        raise _refused(job, Status.QUEUED, "Only a failed or cancelled job can be retried.")
    billing.check_new_job(job.user, job.backend, job.size_bytes if job.data_deleted_at else None)
    change_status(job, Status.QUEUED, reason_code="retried", reason="Queued again.", remote_id="", attempts=0,
                  next_attempt_at=None,
                  data_deleted_at=None, progress=0.0 if job.data_deleted_at else job.progress)
    record_audit("job.retry", actor=user, target=job)
    transaction.on_commit(_kick_dispatcher)
    return job


def delete_job(user, job: Job) -> None:
    """Delete a job, its files on disk and its row. Running jobs are cancelled on their backend first."""
    if not job.is_terminal:
        _backend_call(job, "cancel", delete_data=True)
    job_id = job.pk
    with transaction.atomic():
        events.emit(job, EventKind.DELETED, "deleted", {"name": job.name})
        record_audit("job.delete", actor=user, target=job)
        job.delete()
    remove_tree(settings.DOWNLOADS_DIR / str(job.user_id) / str(job_id))


def remove_job_data(job: Job, *, reason_code: str, reason: str, actor=None) -> None:
    """Delete a job's files from disk and record it (retention, cancellation with data)."""
    remove_tree(job.data_dir)
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(data_deleted_at=timezone.now())
        JobFile.objects.filter(job=job).update(completed_bytes=0)
        job.data_deleted_at = timezone.now()
        events.emit(job, EventKind.MESSAGE, "data_removed", {"reason_code": reason_code, "reason": reason})
        record_audit("job.data_removed", actor=actor, target=job, reason=reason_code)


def remove_tree(path) -> None:
    """Delete a folder under DOWNLOADS_DIR (anything outside it is left alone)."""
    root = settings.DOWNLOADS_DIR.resolve()
    path = path.resolve() if path.exists() else path
    if path.exists() and root in path.parents:
        shutil.rmtree(path, ignore_errors=True)


# --- admin --------------------------------------------------------------------------------------


def block_info_hash(actor, info_hash: str, reason: str = "") -> BlockedInfoHash:
    info_hash = info_hash.strip().lower()
    parsed = intake.parse_magnet(f"magnet:?xt=urn:btih:{info_hash}") if len(info_hash) in (32, 40) else None
    if parsed is None:
        raise DomainError("Give a 40-character hex (or 32-character base32) info-hash.", code="invalid")
    with transaction.atomic():
        blocked, _ = BlockedInfoHash.objects.get_or_create(
            info_hash_hmac=keyed_hash(parsed.info_hash),
            defaults={"info_hash": parsed.info_hash, "reason": reason, "created_by": actor},
        )
        record_audit("blocklist.add", actor=actor, target=blocked, reason=reason)
    return blocked


def terminate_job(actor, job: Job) -> Job:
    """Admin: stop a job of any user now (cancel, data kept)."""
    return cancel_job(actor, job, delete_data=False)


def recent_events(job: Job, limit: int = 50, *, include_progress: bool = False) -> list[JobEvent]:
    """The job's latest history, oldest first; progress ticks left out unless asked for (they're pruned anyway)."""
    events = JobEvent.objects.filter(job_id=job.pk)
    if not include_progress:
        events = events.exclude(kind=EventKind.PROGRESS)
    return list(reversed(events.order_by("-id")[:limit]))
