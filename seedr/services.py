"""Seedr domain logic: connecting accounts (device code first, password as fallback), refresh persistence
under a per-account lease, revoking, account insights, the Seedr queue (batches) and its status.

Job status changes still go through downloads.services; this module only adds what is Seedr's own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import record_audit
from billing import services as billing
from config.errors import Conflict, DomainError
from config.formatting import human_bytes
from config.tasks import enqueue
from downloads import bring_home as road_home
from downloads import leases
from downloads import services as jobs
from downloads.models import ACTIVE, TERMINAL, Batch, IllegalTransition, Job, Status
from seedr import client
from seedr.models import SeedrAccount, SeedrDeviceLogin, SeedrTask

log = logging.getLogger(__name__)
KIND = "seedr"

NOT_CONNECTED = "seedr_not_connected"
AUTH_EXPIRED = "seedr_auth_expired"
WAITING_TURN = "seedr_waiting_turn"
HELD = "seedr_held"


class SeedrDisabled(DomainError):
    code = "seedr_disabled"
    http_status = 404


class SeedrLoginFailed(DomainError):
    code = "seedr_login_failed"
    http_status = 400


def check_enabled() -> None:
    if not settings.SEEDR_ENABLED:
        raise SeedrDisabled("Seedr is not enabled on this server.")


def seedr_jobs():
    return Job.objects.filter(backend=KIND)


# --- the account and its token -------------------------------------------------------------------------


def account_of(user) -> SeedrAccount:
    account, _ = SeedrAccount.objects.get_or_create(user=user)
    return account


def hooks(account: SeedrAccount) -> client.AccountHooks:
    """The database side of an account's client (token load/save, the refresh lease)."""
    lease = f"seedr.refresh.{account.pk}"
    return client.AccountHooks(
        account_id=account.pk,
        load_token=lambda: stored_token(account.pk),
        save_token=lambda token: save_refreshed_token(account.pk, token),
        claim_refresh=lambda holder: leases.claim(lease, holder, client.REFRESH_LOCK_SECONDS),
        release_refresh=lambda holder: leases.release(lease, holder),
    )


def stored_token(account_id: int) -> client.Token | None:
    raw = SeedrAccount.objects.filter(pk=account_id).values_list("token", flat=True).first()
    return client.Token.from_base64(raw) if raw else None


def save_refreshed_token(account_id: int, token: client.Token) -> None:
    """seedrcc's refresh callback: persist the new access token (the caller holds the refresh lease)."""
    SeedrAccount.objects.filter(pk=account_id).update(token=token.to_base64(), refreshed_at=timezone.now())
    log.info("seedr token refreshed", extra={"seedr_account": account_id})


def session(account: SeedrAccount) -> client.Session:
    """A Seedr session for a connected account; refuses (auth expired) when there is no usable token."""
    token = stored_token(account.pk) if account.pk else None
    if account.state != SeedrAccount.State.CONNECTED or token is None:
        raise client.SeedrAuthExpired("Your Seedr account is not connected.", code=NOT_CONNECTED)
    return client.Session(hooks(account), token)


def session_for_user(user_id: int) -> client.Session:
    account = SeedrAccount.objects.filter(user_id=user_id).first()
    if account is None:
        raise client.SeedrAuthExpired("Your Seedr account is not connected.", code=NOT_CONNECTED)
    return session(account)


def is_connected(user_id: int) -> bool:
    return SeedrAccount.objects.filter(user_id=user_id, state=SeedrAccount.State.CONNECTED,
                                       token__isnull=False).exists()


# --- connecting ---------------------------------------------------------------------------------------


def start_device_login(user) -> SeedrDeviceLogin:
    """Step 1 of the device flow: get a user code for the user to enter on Seedr."""
    check_enabled()
    try:
        codes = client.device_code()
    except client.SeedrProblem as exc:
        raise DomainError(exc.message, code="seedr_unavailable", http_status=502) from exc
    now = timezone.now()
    with transaction.atomic():
        SeedrDeviceLogin.objects.filter(user=user).delete()
        login = SeedrDeviceLogin.objects.create(
            user=user, device_code=codes.device_code, user_code=codes.user_code,
            verification_url=codes.verification_url, interval=max(1, int(codes.interval or 5)),
            expires_at=now + dt.timedelta(seconds=int(codes.expires_in or 600)), next_poll_at=now,
        )
        record_audit("seedr.device_start", actor=user, target=login)
    return login


def poll_device_login(user) -> SeedrAccount | SeedrDeviceLogin:
    """Step 2: ask Seedr whether the code was approved (at most once per `interval`). Returns the connected
    account once approved, else the pending login (poll again after its interval)."""
    check_enabled()
    login = SeedrDeviceLogin.objects.filter(user=user).first()
    if login is None:
        raise Conflict("No device login is in progress; start one first.", code="seedr_no_device_login")
    now = timezone.now()
    if now >= login.expires_at:
        login.delete()
        raise SeedrLoginFailed("The code expired before it was approved; start again.", code="seedr_device_expired")
    if now < login.next_poll_at:
        return login  # Seedr asks clients to wait `interval` seconds between polls
    SeedrDeviceLogin.objects.filter(pk=login.pk).update(next_poll_at=now + dt.timedelta(seconds=login.interval))
    try:
        token = client.authorize_device(login.device_code)
    except client.SeedrAuthExpired as exc:
        login.delete()
        raise SeedrLoginFailed(f"Seedr refused the device code ({exc.reason or 'denied'}); start again.",
                               code="seedr_device_refused") from exc
    except client.SeedrProblem as exc:
        raise DomainError(exc.message, code="seedr_unavailable", http_status=502) from exc
    if token is None:
        return login
    account = _connect(user, token, SeedrAccount.Method.DEVICE)
    login.delete()
    return account


def password_login(user, username: str, password: str) -> SeedrAccount:
    """The fallback: Seedr's password grant. The password is sent once and never stored."""
    check_enabled()
    try:
        token = client.password_login(username, password)
    except client.SeedrAuthExpired as exc:
        record_audit("seedr.login_failed", actor=user, target_type="seedr.seedraccount", reason=exc.reason)
        raise SeedrLoginFailed("Seedr did not accept that email and password.") from exc
    except client.SeedrProblem as exc:
        raise DomainError(exc.message, code="seedr_unavailable", http_status=502) from exc
    return _connect(user, token, SeedrAccount.Method.PASSWORD, fallback_name=username)


def _connect(user, token: client.Token, method: str, fallback_name: str = "") -> SeedrAccount:
    try:
        name = client.account_email(token)
    except client.SeedrProblem:
        name = fallback_name  # the panel can live without the name; the login itself worked
    now = timezone.now()
    with transaction.atomic():
        account = account_of(user)
        SeedrAccount.objects.filter(pk=account.pk).update(
            state=SeedrAccount.State.CONNECTED, method=method, token=token.to_base64(), account_name=name[:200],
            connected_at=now, refreshed_at=now, expired_at=None, last_error="",
        )
        account.refresh_from_db()
        record_audit("seedr.connect", actor=user, target=account, method=method)
        transaction.on_commit(lambda: _after_connect(user.pk))
    return account


def _after_connect(user_id: int) -> None:
    resume_waiting_jobs(user_id)
    enqueue("downloads.tasks.dispatch", group="dispatch")
    enqueue("seedr.tasks.refresh_insights", user_id, group="seedr")


def resume_waiting_jobs(user_id: int) -> int:
    """After a (re)connection: jobs that waited for a login go back to where they were."""
    waiting = seedr_jobs().filter(user_id=user_id, status=Status.WAITING,
                                  reason_code__in=[AUTH_EXPIRED, NOT_CONNECTED])
    resumed = 0
    for job in waiting.select_related("user"):
        try:
            resume_after_login(job)
            resumed += 1
        except jobs.StaleJob:
            continue
    return resumed


def resume_after_login(job: Job) -> None:
    """A job that waited for a login goes back to its phase: Seedr progress, transfer, cleanup or the queue."""
    task = task_of(job)
    if task is None:
        jobs.change_status(job, Status.QUEUED, reason_code="seedr_reconnected", reason="Seedr is connected again.")
    elif task.phase == SeedrTask.Phase.REMOTE:
        jobs.change_status(job, Status.DOWNLOADING, reason_code="seedr_reconnected",
                           reason="Seedr is connected again.", event_data={"provider": provider_data(job)})
    else:  # transfer or cleanup: the spine's runner takes the job home from where it stopped
        road_home.data_complete(job, reason_code="seedr_reconnected",
                                reason="Seedr is connected again; resuming the transfer.",
                                event_data={"provider": provider_data(job)})


def task_of(job: Job) -> SeedrTask | None:
    """The Seedr side of a job (its phase, torrent and folder ids), None before it reached Seedr."""
    return SeedrTask.objects.filter(job_id=job.pk).first()


# --- disconnecting, expiry, revocation ----------------------------------------------------------------


def disconnect(user) -> SeedrAccount:
    """The user disconnects: tokens forgotten here (Seedr's V1 API has no revoke call)."""
    account = account_of(user)
    _forget(account, actor=user, action="seedr.disconnect", state=SeedrAccount.State.DISCONNECTED)
    return account


def revoke(actor, account: SeedrAccount) -> SeedrAccount:
    """An admin revokes a user's Seedr session (admin console action)."""
    _forget(account, actor=actor, action="seedr.revoke", state=SeedrAccount.State.DISCONNECTED)
    return account


def purge_tokens(*, user=None) -> dict[str, int]:
    """`manage.py purge_seedr_tokens`: forget every stored Seedr token (or one user's). Returns a summary."""
    accounts = SeedrAccount.objects.filter(token__isnull=False).select_related("user")
    if user is not None:
        accounts = accounts.filter(user=user)
    summary = {"accounts": 0, "jobs_waiting": 0, "device_logins": 0}
    for account in accounts:
        summary["jobs_waiting"] += _forget(account, actor=None, action="seedr.purge",
                                           state=SeedrAccount.State.DISCONNECTED)
        summary["accounts"] += 1
    logins = SeedrDeviceLogin.objects.all() if user is None else SeedrDeviceLogin.objects.filter(user=user)
    summary["device_logins"], _ = logins.delete()
    return summary


def _forget(account: SeedrAccount, *, actor, action: str, state: str) -> int:
    with transaction.atomic():
        SeedrAccount.objects.filter(pk=account.pk).update(token=None, state=state, expired_at=timezone.now())
        account.refresh_from_db()
        record_audit(action, actor=actor, target=account, user=account.user_id)
        waiting = _hold_running_jobs(account.user_id, NOT_CONNECTED,
                                     "Seedr is disconnected: connect your Seedr account again to continue.")
    _drop_cached_client(account.pk)
    return waiting


def mark_expired(user_id: int, problem: client.SeedrProblem) -> None:
    """A refresh failed for good: the account needs a new login; its jobs wait and the user is told once."""
    with transaction.atomic():
        changed = SeedrAccount.objects.filter(user_id=user_id, state=SeedrAccount.State.CONNECTED).update(
            state=SeedrAccount.State.EXPIRED, expired_at=timezone.now(), last_error=problem.message[:300]
        )
        _hold_running_jobs(user_id, AUTH_EXPIRED, "Your Seedr login expired: connect your Seedr account again; "
                           "the download continues where it stopped.")
        if changed:
            account = SeedrAccount.objects.select_related("user").get(user_id=user_id)
            record_audit("seedr.expired", target=account, reason=problem.reason or problem.code)
            transaction.on_commit(lambda: _notify_expired(account))


def _notify_expired(account: SeedrAccount) -> None:
    try:
        send_mail("Your Seedr login expired",
                  "Flotilla can no longer reach your Seedr account. Connect it again on the Seedr page; "
                  "waiting downloads continue where they stopped.\n\n" + f"{settings.SITE_URL}/seedr/",
                  None, [account.user.email], fail_silently=True)
    except Exception:  # a broken mail setup must not break the worker
        log.warning("could not send the Seedr expiry email", exc_info=True)


def _hold_running_jobs(user_id: int, code: str, message: str) -> int:
    """Active Seedr jobs of the user wait (with the reason) until the account works again."""
    held = 0
    for job in seedr_jobs().filter(user_id=user_id, status__in=ACTIVE):
        if job.status == Status.WAITING and job.reason_code in (code, AUTH_EXPIRED, NOT_CONNECTED):
            continue
        try:
            jobs.change_status(job, Status.WAITING, reason_code=code, reason=message,
                               event_data={"provider": provider_data(job)})
            held += 1
        except (jobs.StaleJob, IllegalTransition) as exc:  # changed meanwhile, or past the point of waiting
            log.info("seedr: could not hold job", extra={"job": job.pk, "error": str(exc)})
    return held


def _drop_cached_client(account_id: int) -> None:
    try:
        client.forget(account_id)
    except Exception:  # only a cache; the next call rebuilds from the database
        log.debug("seedr: could not drop a cached client", exc_info=True)


# --- queue operations ------------------------------------------------------------------------------------


def set_auto_start(user, enabled: bool) -> SeedrAccount:
    account = account_of(user)
    SeedrAccount.objects.filter(pk=account.pk).update(auto_start=enabled)
    account.auto_start = enabled
    record_audit("seedr.auto_start", actor=user, target=account, enabled=enabled)
    return account


def add(user, *, magnet: str = "", torrent: bytes = b"") -> Job:
    """One magnet or .torrent for Seedr: a job of backend `seedr` (the spine validates and queues it)."""
    check_enabled()
    job = jobs.add_magnet(user, magnet, backend=KIND) if magnet else jobs.add_torrent(user, torrent, backend=KIND)
    return job


def add_batch(user, text: str, *, name: str = "", auto_start: bool | None = None) -> jobs.BatchResult:
    """Multiline magnets → one Batch of Seedr jobs, run in order. Without auto-start the items are held
    (paused) until `start`."""
    check_enabled()
    start = account_of(user).auto_start if auto_start is None else auto_start
    with transaction.atomic():  # held items are paused before the dispatcher's on-commit kick can see them
        result = jobs.add_batch(user, text, backend=KIND, name=name)
        if result.batch is not None and not start:
            for job in result.jobs:
                jobs.change_status(job, Status.PAUSED, reason_code=HELD, reason="Held: press Start to run it.")
    return result


def _own_jobs(user, ids: Iterable[int] | None, batch_id: int | None):
    """The user's Seedr jobs named by ids and/or batch; a name that is not theirs is a 404 (never a hint)."""
    queryset = seedr_jobs().for_user(user).select_related("user")
    if batch_id is not None:
        if not Batch.objects.filter(pk=batch_id, user=user, backend=KIND).exists():
            raise DomainError("No such batch.", code="not_found", http_status=404)
        queryset = queryset.filter(batch_id=batch_id)
    if ids is not None:
        wanted = set(ids)
        queryset = queryset.filter(pk__in=wanted)
        if queryset.count() != len(wanted):
            raise DomainError("No such Seedr item.", code="not_found", http_status=404)
    return queryset


def start(user, *, ids: Iterable[int] | None = None, batch_id: int | None = None) -> list[Job]:
    """Start held (paused) items: they join the queue in batch order."""
    started = []
    for job in _own_jobs(user, ids, batch_id).filter(status=Status.PAUSED).order_by("batch_id", "position", "id"):
        started.append(jobs.resume_job(user, job))
    return started


def cancel(user, *, ids: Iterable[int] | None = None, batch_id: int | None = None,
           delete_data: bool = False) -> list[Job]:
    """Cancel unfinished items (removing their torrent/folder on Seedr)."""
    return [jobs.cancel_job(user, job, delete_data=delete_data)
            for job in _own_jobs(user, ids, batch_id).exclude(status__in=TERMINAL).order_by("id")]


def retry(user, *, ids: Iterable[int] | None = None, batch_id: int | None = None) -> list[Job]:
    out = []
    for job in _own_jobs(user, ids, batch_id).filter(status__in=[Status.FAILED, Status.CANCELLED]).order_by("id"):
        SeedrTask.objects.filter(job=job).delete()  # a retry starts on Seedr from scratch
        out.append(jobs.retry_job(user, job))
    return out


def clear(user, *, ids: Iterable[int] | None = None, batch_id: int | None = None) -> int:
    """Hide finished items from the Seedr queue (their jobs and files stay in Downloads)."""
    finished = _own_jobs(user, ids, batch_id).filter(status__in=TERMINAL)
    now = timezone.now()
    with transaction.atomic():
        for job in finished.filter(seedr__isnull=True):
            SeedrTask.objects.get_or_create(job=job)
        count = SeedrTask.objects.filter(job__in=finished, cleared_at__isnull=True).update(cleared_at=now)
        record_audit("seedr.clear", actor=user, target_type="seedr.queue", target_id=user.pk, count=count)
    return count


# --- status and metadata ---------------------------------------------------------------------------------


def batch_summary(batch: Batch) -> dict:
    """total, current (the running item's position), remaining, done, failed."""
    rows = list(batch.jobs.order_by("position", "id").values_list("position", "status"))
    running = [position for position, status in rows if status in ACTIVE]
    return {
        "id": batch.pk, "name": batch.name, "total": len(rows),
        "current": running[0] if running else None,
        "remaining": sum(status not in TERMINAL for _, status in rows),
        "done": sum(status == Status.COMPLETED for _, status in rows),
        "failed": sum(status == Status.FAILED for _, status in rows),
        "cancelled": sum(status == Status.CANCELLED for _, status in rows),
    }


def provider_data(job: Job) -> dict:
    """Provider metadata carried by a Seedr job's events: Seedr ids and its place in its batch."""
    task = SeedrTask.objects.filter(job_id=job.pk).first()
    data: dict = {"name": "seedr"}
    if task is not None:
        data.update(torrent_id=task.torrent_id, folder_id=task.folder_id, phase=task.phase)
    if job.batch_id:
        summary = batch_summary(job.batch)
        data["batch"] = {"id": job.batch_id, "index": job.position, "total": summary["total"],
                         "remaining": summary["remaining"]}
    return data


def queue_status(user) -> dict:
    """The Seedr panel's snapshot: account, queue (unfinished), done (finished, not cleared), batches, quota."""
    account = account_of(user)
    visible = seedr_jobs().for_user(user).filter(Q(seedr__isnull=True) | Q(seedr__cleared_at__isnull=True))
    visible = visible.select_related("seedr").defer("magnet", "torrent", "info_hash")
    queue = list(visible.exclude(status__in=TERMINAL).order_by("id"))  # the dispatcher's order: the run order
    done = list(visible.filter(status__in=TERMINAL).order_by("-finished_at", "-id")[:100])
    batch_ids = {job.batch_id for job in queue + done if job.batch_id}
    batches = [batch_summary(b) for b in Batch.objects.filter(pk__in=batch_ids, user=user).order_by("id")]
    return {"account": account_state(account), "queue": queue, "done": done, "batches": batches,
            "quota": quota(user, account)}


def account_state(account: SeedrAccount) -> dict:
    return {
        "enabled": settings.SEEDR_ENABLED,
        "state": account.state, "connected": account.is_connected, "method": account.method,
        "account_name": account.account_name, "connected_at": account.connected_at,
        "expired_at": account.expired_at, "auto_start": account.auto_start,
        "batch_concurrency": settings.SEEDR_BATCH_CONCURRENCY,
    }


def quota(user, account: SeedrAccount) -> dict:
    """What is left: the plan's storage and Seedr's own space (from the cached insights)."""
    plan = billing.current_plan(user)
    used = billing.storage_committed(user) if plan.max_storage_bytes else 0
    memory = (account.insights or {}).get("memory") or {}
    seedr_left = (memory.get("space_max", 0) - memory.get("space_used", 0)) if memory else None
    plan_left = max(0, plan.max_storage_bytes - used) if plan.max_storage_bytes else None
    return {
        "plan_storage_left": plan_left,
        "plan_storage_left_display": human_bytes(plan_left) if plan_left is not None else "unlimited",
        "seedr_space_left": seedr_left,
        "seedr_space_left_display": human_bytes(seedr_left) if seedr_left is not None else "unknown",
        "size_limit_bytes": settings.SEEDR_SIZE_LIMIT_MB * 1024 * 1024 or None,
    }


# --- account insights --------------------------------------------------------------------------------------


def refresh_insights(account: SeedrAccount) -> dict:
    """Memory/bandwidth, settings and devices from Seedr, cached on the account (scheduled and on demand)."""
    seedr = session(account)
    try:
        memory = seedr.memory_bandwidth()
        info = seedr.settings()
        devices = seedr.devices()
    except client.SeedrAuthExpired as exc:
        mark_expired(account.user_id, exc)
        raise
    insights = {
        "memory": {"space_used": memory.space_used, "space_max": memory.space_max,
                   "bandwidth_used": memory.bandwidth_used, "bandwidth_max": memory.bandwidth_max,
                   "is_premium": bool(memory.is_premium)},
        "account": {"username": info.account.username, "email": info.account.email,
                    "package_name": info.account.package_name, "premium": bool(info.account.premium),
                    "wishlist": len(info.account.wishlist or []), "country": info.country},
        "settings": {"site_language": info.settings.site_language,
                     "subtitles_language": info.settings.subtitles_language,
                     "allow_remote_access": info.settings.allow_remote_access},
        "devices": [{"client_id": d.client_id, "client_name": d.client_name} for d in devices],
    }
    SeedrAccount.objects.filter(pk=account.pk).update(insights=insights, insights_at=timezone.now())
    account.insights, account.insights_at = insights, timezone.now()
    return insights


def refresh_insights_now(account: SeedrAccount) -> dict:
    """The manual refresh (API, panel button): Seedr's errors as domain errors."""
    check_enabled()
    try:
        return refresh_insights(account)
    except client.SeedrAuthExpired as exc:
        raise Conflict(exc.message, code=exc.code) from exc
    except client.SeedrProblem as exc:
        raise DomainError(exc.message, code=exc.code, http_status=502) from exc


def refresh_all_insights() -> int:
    """The scheduled refresh: every connected account; one failing never stops the others."""
    refreshed = 0
    for account in SeedrAccount.objects.filter(state=SeedrAccount.State.CONNECTED, token__isnull=False):
        try:
            refresh_insights(account)
            refreshed += 1
        except client.SeedrProblem as exc:
            log.info("seedr insights refresh failed", extra={"seedr_account": account.pk, "code": exc.code})
    return refreshed
