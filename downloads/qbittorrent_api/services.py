"""qBittorrent Web API logic over the job spine: sessions and bans, adding, removing and steering torrents,
categories, tags and share limits. Every job change goes through `downloads.services` (quotas, blocklist,
the acceptable-use gate, audit); the views only parse and render.

Errors are `QbtError(status, body)`: qBittorrent answers in plain text with exact bodies, and its clients
match on them (Sonarr reads "Fails." and the status codes), so they never take Flotilla's JSON error shape.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import ApiKey, hash_api_key
from accounts.throttle import client_key
from billing.services import current_plan
from config.crypto import keyed_hash
from config.errors import DomainError
from downloads import backends, intake
from downloads import services as spine
from downloads.models import CANCELLABLE, PAUSABLE, RESUMABLE, RETRYABLE, Job, JobConflict, Status
from downloads.qbittorrent_api.models import NO_LIMIT, USE_GLOBAL, QbtCategory, QbtSession, QbtTag, QbtTorrent

log = logging.getLogger(__name__)

BANNED = "Your IP address has been banned after too many failed authentication attempts."


class QbtError(Exception):
    """A refusal the way qBittorrent words it: an HTTP status and a plain-text body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status, self.body = status, body


def bad_request() -> QbtError:
    return QbtError(400, "Bad Request")


# --- sessions and the login ban ----------------------------------------------------------------------


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _fail_key(ip: str) -> str:
    return "qbt:fails:" + hashlib.sha256(client_key(ip).encode()).hexdigest()[:32]


def is_banned(ip: str) -> bool:
    limit = settings.QBITTORRENT_MAX_AUTH_FAILS
    return bool(limit) and (cache.get(_fail_key(ip)) or 0) >= limit


def _count_failure(ip: str) -> None:
    """One more failed login from this client; at the limit the count (and so the ban) lasts BAN_SECONDS."""
    key = _fail_key(ip)
    try:
        cache.incr(key)
    except ValueError:  # no count yet (incr on a missing key)
        cache.set(key, 1, settings.QBITTORRENT_BAN_SECONDS)
        return
    if (cache.get(key) or 0) >= settings.QBITTORRENT_MAX_AUTH_FAILS:
        cache.touch(key, settings.QBITTORRENT_BAN_SECONDS)  # the ban runs from the last failure


def _key_for(username: str, password: str) -> ApiKey | None:
    """The active API key `password` of the active user whose email is `username`."""
    if not username or not password or len(password) > 200:
        return None
    return (ApiKey.objects.active().select_related("user")
            .filter(key_hash=hash_api_key(password), user__email__iexact=username.strip()).first())


def login(username: str, password: str, ip: str) -> str | None:
    """A new SID for the user whose email and API key these are; None for wrong credentials ("Fails.").

    The password is a Flotilla API key, never the account password: a key can be revoked on its own, and the
    *arr apps store it in clear. A banned client is refused before its credentials are even looked at."""
    if is_banned(ip):
        raise QbtError(403, BANNED)
    api_key = _key_for(username, password)
    if api_key is None:
        if settings.QBITTORRENT_MAX_AUTH_FAILS:
            _count_failure(ip)
        log.warning("qbittorrent api login failed", extra={"ip": ip})
        return None
    cache.delete(_fail_key(ip))
    sid = secrets.token_urlsafe(24)  # 32 characters, like qBittorrent's SID
    expires = timezone.now() + dt.timedelta(seconds=settings.QBITTORRENT_SESSION_SECONDS)
    with transaction.atomic():
        QbtSession.objects.create(sid_hash=_sid_hash(sid), user=api_key.user, api_key=api_key, ip=ip or None,
                                  expires_at=expires)
        record_audit("qbittorrent.login", actor=api_key.user, target=api_key.user, key_prefix=api_key.prefix)
    return sid


def session_user(sid: str | None):
    """The user a live SID belongs to (its key unrevoked, the user active), sliding its expiry; else None."""
    if not sid or len(sid) > 128:
        return None
    now = timezone.now()
    session = (QbtSession.objects.select_related("user", "api_key")
               .filter(sid_hash=_sid_hash(sid), expires_at__gt=now, api_key__revoked_at__isnull=True,
                       user__is_active=True).first())
    if session is None:
        return None
    lifetime = dt.timedelta(seconds=settings.QBITTORRENT_SESSION_SECONDS)
    if session.expires_at - now < lifetime - dt.timedelta(minutes=1):  # at most one write a minute
        QbtSession.objects.filter(pk=session.pk).update(expires_at=now + lifetime)
    return session.user


def bearer_user(header: str):
    """qBittorrent 5.2's API-key header (`Authorization: Bearer <key>`), with a Flotilla key."""
    if header[:7].lower() != "bearer ":
        return None
    key = ApiKey.objects.active().select_related("user").filter(key_hash=hash_api_key(header[7:].strip())).first()
    return key.user if key else None


def logout(sid: str | None) -> None:
    if sid:
        QbtSession.objects.filter(sid_hash=_sid_hash(sid)).delete()


def purge_expired_sessions() -> int:
    return QbtSession.objects.filter(expires_at__lte=timezone.now()).delete()[0]


# --- finding the user's torrents ----------------------------------------------------------------------

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


def visible_jobs(user):
    """The user's jobs as qBittorrent clients see them: all of them but those a client removed."""
    return Job.objects.for_user(user).exclude(qbt__removed_at__isnull=False)


def parse_hashes(value: str | None) -> list[str] | None:
    """`hashes` as qBittorrent reads it: "all" (None), or hashes separated by "|"; anything else is skipped."""
    if value is None:
        raise bad_request()
    if value.strip().lower() == "all":
        return None
    return [h.lower() for h in value.split("|") if _HEX40.fullmatch(h.strip())]


def jobs_for(user, hashes: list[str] | None):
    """The user's visible jobs with these hashes (None: all). Another user's hash is simply not there."""
    jobs = visible_jobs(user)
    if hashes is None:
        return jobs
    return jobs.filter(info_hash_hmac__in=[keyed_hash(h.strip()) for h in hashes])


def job_for(user, hash_: str | None) -> Job:
    """One torrent by `hash`: 400 without one, 404 when the user has no such torrent (as qBittorrent)."""
    if not hash_:
        raise bad_request()
    if not _HEX40.fullmatch(hash_.strip()):
        raise QbtError(404, "Not Found")
    job = jobs_for(user, [hash_.strip().lower()]).order_by("-id").first()
    if job is None:
        raise QbtError(404, "Not Found")
    return job


def meta(job: Job) -> QbtTorrent:
    return QbtTorrent.objects.get_or_create(job=job)[0]


# --- adding ------------------------------------------------------------------------------------------


@dataclass
class AddOptions:
    category: str = ""
    tags: list[str] = field(default_factory=list)
    paused: bool = False
    sequential: bool = False
    first_last_piece: bool = False
    ratio_limit: float = USE_GLOBAL
    seeding_time_limit: int = USE_GLOBAL


@dataclass
class Upload:
    name: str
    data: bytes


def add(user, urls: Iterable[str], uploads: list[Upload], options: AddOptions) -> bool:
    """Add every link and file; True when at least one became a job (qBittorrent's "Ok." vs "Fails.").

    Links first, then files, as qBittorrent does; a file that is not a torrent stops there with 415 (what was
    added before stays). A refusal (quota, blocklist, acceptable-use policy, duplicate) is logged and counted
    as a failure: qBittorrent's answer carries no reason."""
    category = ensure_category(user, options.category) if options.category else None
    backend = (category.backend or None) if category else None
    added = 0
    for url in urls:
        added += _add_one(user, options, category, lambda u=url: _add_link(user, u, backend))
    for upload in uploads:
        try:
            intake.parse_torrent(upload.data)
        except DomainError:
            raise QbtError(415, f"Error: '{upload.name[:200]}' is not a valid torrent file.") from None
        added += _add_one(user, options, category, lambda d=upload.data: spine.add_torrent(user, d, backend=backend))
    return added > 0


def _add_link(user, url: str, backend: str | None) -> Job:
    if _HEX40.fullmatch(url):  # qBittorrent takes a bare info-hash as a magnet
        url = f"magnet:?xt=urn:btih:{url.lower()}"
    if url.lower().startswith(("http://", "https://")):
        return spine.add_url(user, url, backend=backend)
    return spine.add_magnet(user, url, backend=backend)


def _add_one(user, options: AddOptions, category: QbtCategory | None, create) -> int:
    try:
        with transaction.atomic():  # the job, its qBittorrent settings and a pause commit together
            job = create()
            QbtTorrent.objects.create(job=job, category=category, tags=sorted(set(options.tags)),
                                      ratio_limit=options.ratio_limit, seeding_time_limit=options.seeding_time_limit,
                                      sequential=options.sequential, first_last_piece=options.first_last_piece)
            _ensure_tags(user, options.tags)
            if options.paused:
                spine.pause_job(user, job)
    except DomainError as exc:
        log.info("qbittorrent api add refused", extra={"code": exc.code, "user": user.pk})
        return 0
    return 1


def split_tags(value: str | None) -> list[str]:
    return [t.strip()[:100] for t in (value or "").split(",") if t.strip()]


def parse_limit(value: str | None, *, integer: bool) -> float | int:
    """A share limit form value: a number >= -2 (-2 global, -1 none); 400 otherwise."""
    try:
        number = int(value) if integer else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise bad_request() from None
    if number < USE_GLOBAL or number != number or number > 1e9:  # NaN, absurd
        raise bad_request()
    return number


# --- actions -----------------------------------------------------------------------------------------


def delete(user, hashes: list[str] | None, *, delete_files: bool) -> None:
    """Remove torrents. With their files: the job and its files go (`delete_job`). Without: the job is stopped
    (cancelled, files kept) and leaves the qBittorrent view, as a torrent qBittorrent forgot."""
    for job in jobs_for(user, hashes):
        try:
            if delete_files:
                spine.delete_job(user, job)
                continue
            if job.status in CANCELLABLE:
                spine.cancel_job(user, job, delete_data=False)
            QbtTorrent.objects.update_or_create(job=job, defaults={"removed_at": timezone.now()})
        except DomainError as exc:
            log.info("qbittorrent api delete refused", extra={"job": job.pk, "code": exc.code})


def pause(user, hashes: list[str] | None) -> None:
    for job in jobs_for(user, hashes).filter(status__in=PAUSABLE):
        _quietly(spine.pause_job, user, job)


def resume(user, hashes: list[str] | None) -> None:
    """Resume paused torrents; a failed or cancelled one starts again (qBittorrent restarts an errored torrent)."""
    for job in jobs_for(user, hashes).filter(status__in=RESUMABLE | RETRYABLE):
        _quietly(spine.resume_job if job.status in RESUMABLE else spine.retry_job, user, job)


def _quietly(action, user, job: Job) -> None:
    """qBittorrent answers 200 to a pause or resume it could not apply; a lost race or quota is logged."""
    try:
        action(user, job)
    except (JobConflict, DomainError) as exc:
        log.info("qbittorrent api action refused", extra={"job": job.pk, "code": exc.code})


def set_category(user, hashes: list[str] | None, name: str) -> None:
    category = None
    if name:
        category = QbtCategory.objects.filter(user=user, name=name).first()
        if category is None:
            raise QbtError(409, "Incorrect category name")
    with transaction.atomic():
        for job in jobs_for(user, hashes):
            QbtTorrent.objects.update_or_create(job=job, defaults={"category": category})
        record_audit("qbittorrent.set_category", actor=user, category=name, hashes=_count(hashes))


def add_tags(user, hashes: list[str] | None, tags: list[str]) -> None:
    with transaction.atomic():
        _ensure_tags(user, tags)
        for job in jobs_for(user, hashes):
            m = meta(job)
            m.tags = sorted(set(m.tags) | set(tags))
            m.save(update_fields=["tags"])


def remove_tags(user, hashes: list[str] | None, tags: list[str]) -> None:
    with transaction.atomic():
        for job in jobs_for(user, hashes):
            m = meta(job)
            m.tags = sorted(set(m.tags) - set(tags)) if tags else []  # no tags given: all of them go
            m.save(update_fields=["tags"])


def create_tags(user, tags: list[str]) -> None:
    _ensure_tags(user, tags)


def delete_tags(user, tags: list[str]) -> None:
    with transaction.atomic():
        QbtTag.objects.filter(user=user, name__in=tags).delete()
        for m in QbtTorrent.objects.filter(job__user=user).exclude(tags=[]):
            if set(m.tags) & set(tags):
                m.tags = sorted(set(m.tags) - set(tags))
                m.save(update_fields=["tags"])


def _ensure_tags(user, tags: Iterable[str]) -> None:
    existing = set(QbtTag.objects.filter(user=user).values_list("name", flat=True))
    QbtTag.objects.bulk_create([QbtTag(user=user, name=t) for t in set(tags) - existing], ignore_conflicts=True)


def all_tags(user) -> list[str]:
    return list(QbtTag.objects.filter(user=user).values_list("name", flat=True))


def set_share_limits(user, hashes: list[str] | None, ratio: float, minutes: int) -> None:
    """Store the limits a client asks for; the engine seeds to the tighter of them and the plan's."""
    with transaction.atomic():
        for job in jobs_for(user, hashes):
            QbtTorrent.objects.update_or_create(job=job, defaults={"ratio_limit": ratio, "seeding_time_limit": minutes})
        record_audit("qbittorrent.set_share_limits", actor=user, ratio=ratio, minutes=minutes, hashes=_count(hashes))


def toggle(user, hashes: list[str] | None, flag: str) -> None:
    for job in jobs_for(user, hashes):
        m = meta(job)
        setattr(m, flag, not getattr(m, flag))
        m.save(update_fields=[flag])


def _count(hashes: list[str] | None) -> int | str:
    return "all" if hashes is None else len(hashes)


# --- categories --------------------------------------------------------------------------------------

_BAD_CATEGORY = re.compile(r"(^/|/$|//|^\s|\s$|[\\\x00-\x1f])")


def check_category_name(name: str) -> str:
    """qBittorrent's rule: not empty; no leading, trailing or doubled slash (a path of sub-categories)."""
    if not name:
        raise QbtError(400, "Category cannot be empty")
    if len(name) > 100 or _BAD_CATEGORY.search(name):
        raise QbtError(400, "Incorrect category name")
    return name


def create_category(user, name: str, save_path: str) -> QbtCategory:
    check_category_name(name)
    try:
        with transaction.atomic():
            category = QbtCategory.objects.create(user=user, name=name, save_path=save_path[:1024])
            record_audit("qbittorrent.create_category", actor=user, target=category, name=name)
    except IntegrityError:
        raise QbtError(409, "Unable to create category") from None
    return category


def ensure_category(user, name: str) -> QbtCategory:
    """The category a new torrent names; created on the fly as qBittorrent does."""
    check_category_name(name)
    category = QbtCategory.objects.filter(user=user, name=name).first()
    return category or QbtCategory.objects.get_or_create(user=user, name=name)[0]


def edit_category(user, name: str, save_path: str) -> None:
    check_category_name(name)
    if not QbtCategory.objects.filter(user=user, name=name).update(save_path=save_path[:1024]):
        raise QbtError(409, "Unable to edit category")


def remove_categories(user, names: list[str]) -> None:
    with transaction.atomic():
        QbtCategory.objects.filter(user=user, name__in=names).delete()
        record_audit("qbittorrent.remove_categories", actor=user, names=names[:50])


def set_category_backend(user, name: str, backend: str) -> QbtCategory:
    """Which backend new torrents of a category run on ("" = the default), checked like any intake target."""
    category = QbtCategory.objects.filter(user=user, name=name).first()
    if category is None:
        raise DomainError("No such category.", code="not_found", http_status=404)
    backend = backend.strip().lower()
    if backend:
        runner = backends.get_backend(backend)
        if runner is None:
            raise DomainError(f"Unknown backend '{backend[:40]}'.", code="unknown_backend")
        runner.validate_target(user, backend)
    with transaction.atomic():
        category.backend = backend
        category.save(update_fields=["backend"])
        record_audit("qbittorrent.category_backend", actor=user, target=category, backend=backend)
    return category


# --- share limits within the plan --------------------------------------------------------------------


def effective_limits(job: Job, plan=None) -> tuple[float, int]:
    """(ratio, minutes) the job seeds to: its own limits where a client set them, never beyond the plan's.

    The plan's 0 means no limit; the result's -1 means none."""
    plan = plan or current_plan(job.user)
    m = getattr(job, "qbt", None) if _has_meta(job) else None
    ratio = _tighter(m.ratio_limit if m else USE_GLOBAL, plan.seed_ratio_limit)
    minutes = _tighter(m.seeding_time_limit if m else USE_GLOBAL, plan.seed_time_limit_minutes)
    return float(ratio), int(minutes)


def _tighter(own: float, plan_limit: float) -> float:
    if own < 0:  # -2 (the plan's) and -1 (none) cannot go past the plan
        return plan_limit if plan_limit else NO_LIMIT
    return min(own, plan_limit) if plan_limit else own


def _has_meta(job: Job) -> bool:
    try:
        job.qbt  # noqa: B018 — a reverse one-to-one raises when absent
    except QbtTorrent.DoesNotExist:
        return False
    return True


def is_stopped(job: Job) -> bool:
    return job.status in (Status.PAUSED, Status.COMPLETED, Status.CANCELLED)


def seeding_limits(job: Job, plan) -> tuple[float, int]:
    """`effective_limits` in the plan's convention (0 = no limit), for the engine's seeding rule."""
    ratio, minutes = effective_limits(job, plan)
    return max(ratio, 0.0), max(minutes, 0)
