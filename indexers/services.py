"""Indexers: registering and testing them, their health, the fan-out search, stored results, and grabs.

Every change goes through here (audited; credentials never in an audit row, a log line or a response).
A search asks the chosen indexers at once, each within its own timeout and rate limit, and answers with
what arrived plus one error entry per indexer that failed, was backed off or was too slow: one dead
indexer never blocks the others or the answer. Results are normalized, merged across indexers by
info-hash, ranked (see `rank`), stored per user with an expiry, and grabbed into a job on any backend by
Flotilla itself (the .torrent is fetched with the indexer's credentials; links never reach the browser).

Threads only talk HTTP: every database read (indexers, credentials, rate-limit claims) happens before the
fan-out and every write (health, rotated cookies, results) after it, on the calling thread (its database
connection and transaction; SQLite allows one writer).
"""

from __future__ import annotations

import logging
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.audit import record_audit
from config.crypto import keyed_hash
from config.errors import Conflict, DomainError, ValidationFailed
from downloads import services as jobs
from downloads.models import Job
from downloads.retries import retry_delay
from indexers import clients, quality, ratelimit
from indexers.clients import Capabilities, ClientError, Query, Release
from indexers.models import Indexer, JobSource, SearchResult, guid_digest

log = logging.getLogger(__name__)

EDITABLE_FIELDS = {"name", "kind", "url", "enabled", "priority", "categories", "timeout", "request_interval",
                   "privacy"}
CONNECTION_FIELDS = {"kind", "url"}
BACKOFF_AFTER = 2  # consecutive failures before an indexer is skipped for a while
MAX_LIMIT = 1000
TOKEN_RE = re.compile(r"\{(\w+):([^{}]*)\}")
TOKEN_FIELDS = {"author", "title", "publisher", "year", "genre", "artist", "album", "label", "track", "season", "ep",
                "imdbid", "tmdbid", "tvdbid"}


class IndexerUnavailable(DomainError):
    code = "indexer_unavailable"
    http_status = 502


# --- registering ---------------------------------------------------------------------------------------------


def _apply(indexer: Indexer, data: dict, credentials: dict | None) -> None:
    unknown = set(data) - EDITABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.")
    for name, value in data.items():
        setattr(indexer, name, value)
    kind = clients.KINDS.get(indexer.kind)
    if kind is not None and not indexer.url:
        indexer.url = kind.default_url
    if credentials is not None:
        allowed = set(kind.secret_names) if kind else set()
        extra = set(credentials) - allowed
        if extra:
            raise ValidationFailed(f"This kind of indexer takes no {', '.join(sorted(extra))}.",
                                   code="invalid_credentials")
        indexer.set_secrets({**indexer.secrets, **{k: v for k, v in credentials.items() if v}})
    try:
        indexer.full_clean(exclude=["owner", "shared_with_plan"])
    except ValidationError as exc:
        raise ValidationFailed("The indexer settings are not valid.", errors=exc.message_dict) from exc


def defaults_for(kind: str) -> dict:
    cls = clients.KINDS[kind]
    return {"url": cls.default_url, "privacy": cls.default_privacy, "request_interval": cls.default_interval}


@transaction.atomic
def create_indexer(user, *, credentials: dict | None = None, shared: bool = False, plan=None, **data) -> Indexer:
    """A new indexer for `user` (or, `shared` by an operator, for everyone or one plan's users)."""
    kind = data.get("kind")
    if kind not in clients.KINDS:
        raise ValidationFailed("Unknown indexer kind.", code="indexer_kind")
    data = {**{k: v for k, v in defaults_for(kind).items() if k not in data}, **data}
    indexer = Indexer(owner=None if shared else user, shared_with_plan=plan if shared else None)
    _apply(indexer, data, credentials or {})
    if Indexer.objects.filter(owner=indexer.owner, name=indexer.name).exists():
        raise Conflict("An indexer with this name exists already.", code="duplicate")
    indexer.save()
    record_audit("indexer.create", actor=user, target=indexer, kind=indexer.kind, shared=shared,
                 host=_host(indexer.url))
    return indexer


@transaction.atomic
def update_indexer(user, indexer: Indexer, *, credentials: dict | None = None, **data) -> Indexer:
    """Change an indexer; absent or blank credentials keep the stored ones. New connection settings or
    credentials clear its health (the next search or test says whether they work)."""
    changed = any(getattr(indexer, k) != v for k, v in data.items() if k in CONNECTION_FIELDS)
    credentials = {k: v for k, v in (credentials or {}).items() if v}
    _apply(indexer, data, credentials)
    if Indexer.objects.filter(owner=indexer.owner, name=indexer.name).exclude(pk=indexer.pk).exists():
        raise Conflict("An indexer with this name exists already.", code="duplicate")
    if changed or credentials:
        indexer.consecutive_failures, indexer.backoff_until = 0, None
        indexer.last_error = indexer.last_error_code = ""
        indexer.caps, indexer.caps_at = {}, None
    indexer.save()
    record_audit("indexer.update", actor=user, target=indexer, fields=sorted(data),
                 credentials_changed=sorted(credentials))
    return indexer


def delete_indexer(user, indexer: Indexer) -> None:
    """Forget an indexer and its stored results (jobs grabbed from it keep their JobSource copy)."""
    with transaction.atomic():
        record_audit("indexer.delete", actor=user, target=indexer, name=indexer.name)
        indexer.delete()


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).hostname or "")[:200]
    except ValueError:
        return ""


# --- health --------------------------------------------------------------------------------------------------


def record_success(indexer: Indexer, latency_ms: float) -> None:
    """It answered: moving averages updated, backoff cleared."""
    avg = latency_ms if indexer.avg_response_ms is None else 0.8 * indexer.avg_response_ms + 0.2 * latency_ms
    _save_health(indexer, avg_response_ms=round(avg, 1), success_rate=round(0.8 * indexer.success_rate + 0.2, 4),
                 consecutive_failures=0, backoff_until=None, last_success_at=timezone.now())


def record_failure(indexer: Indexer, exc: ClientError) -> None:
    """It failed: the reason kept; after BACKOFF_AFTER failures in a row (or one permanent failure, such as an
    expired session) it is skipped until `backoff_until` (10 s, 20 s … 15 min), then tried again by itself."""
    failures = indexer.consecutive_failures + 1
    backoff = None
    if exc.permanent or failures >= BACKOFF_AFTER:
        backoff = timezone.now() + retry_delay(max(1, failures - BACKOFF_AFTER + 1))
    _save_health(indexer, success_rate=round(0.8 * indexer.success_rate, 4), consecutive_failures=failures,
                 backoff_until=backoff, last_error=exc.message[:300], last_error_code=exc.code[:64],
                 last_failure_at=timezone.now())
    log.info("indexer failed", extra={"indexer": indexer.pk, "code": exc.code, "failures": failures})


def _save_health(indexer: Indexer, **changes) -> None:
    Indexer.objects.filter(pk=indexer.pk).update(**changes)
    for key, value in changes.items():
        setattr(indexer, key, value)


def health_message(indexer: Indexer) -> str:
    """What the indexers page and the health page say about it."""
    if indexer.last_error_code == "session_expired":
        return f"Session expired: {indexer.last_error}"
    if indexer.in_backoff():
        return (f"Backed off after {indexer.consecutive_failures} failure(s) until "
                f"{indexer.backoff_until:%Y-%m-%d %H:%M:%S} UTC: {indexer.last_error}")
    if indexer.consecutive_failures:
        return f"Last attempt failed: {indexer.last_error}"
    return ""


def _persist_secrets(indexer: Indexer, client) -> None:
    """MyAnonamouse rotates its cookie: the newest value replaces the stored one (encrypted)."""
    if client.updated_secrets:
        indexer.set_secrets(client.updated_secrets)
        Indexer.objects.filter(pk=indexer.pk).update(credentials=indexer.credentials)


def refresh_account(indexer: Indexer) -> dict:
    """Ask the tracker for the account's standing now (tracker compliance polls this; no audit row: nobody
    acted). Stored in `account_status`; raises ClientError (recorded in the indexer's health) when it fails."""
    ratelimit.wait_until(ratelimit.reserve(indexer.pk, indexer.request_interval), time.time() + indexer.timeout)
    client = clients.build(indexer, deadline=time.monotonic() + indexer.timeout)
    try:
        account = client.account()
    except ClientError as exc:
        record_failure(indexer, exc)
        raise
    finally:
        _persist_secrets(indexer, client)
    _save_health(indexer, account_status=account)
    return account


# --- capabilities and test ---------------------------------------------------------------------------------


def _caps_fresh(indexer: Indexer) -> bool:
    max_age = timedelta(hours=settings.INDEXERS_CAPS_MAX_AGE_HOURS)
    return bool(indexer.caps and indexer.caps_at and timezone.now() - indexer.caps_at < max_age)


def capabilities(indexer: Indexer) -> Capabilities:
    """Cached capabilities (Torznab: from the last t=caps), or the kind's fixed ones."""
    cls = clients.KINDS.get(indexer.kind)
    if indexer.kind != "torznab" and cls is not None:
        return cls.static_capabilities()
    return Capabilities.from_dict(indexer.caps)


@dataclass
class TestReport:
    ok: bool
    latency_ms: float | None
    capabilities: dict
    account: dict
    code: str = ""
    detail: str = ""


def test_indexer(user, indexer: Indexer) -> TestReport:
    """Ask the indexer now: its capabilities (t=caps), the account's standing where there is one, latency."""
    deadline = time.monotonic() + indexer.timeout
    started = time.monotonic()
    try:
        ratelimit.wait_until(ratelimit.reserve(indexer.pk, indexer.request_interval), time.time() + indexer.timeout)
        client = clients.build(indexer, deadline=deadline)
        try:
            caps = client.capabilities()
            account = client.account()
        finally:
            _persist_secrets(indexer, client)
        latency = (time.monotonic() - started) * 1000
    except ClientError as exc:
        record_failure(indexer, exc)
        report = TestReport(False, None, capabilities(indexer).as_dict(), indexer.account_status, exc.code,
                            exc.message)
    except Exception as exc:  # a bug or a surprise must be this indexer's failure, never a 500
        error = _unexpected(indexer, exc)
        record_failure(indexer, error)
        report = TestReport(False, None, {}, {}, error.code, error.message)
    else:
        record_success(indexer, latency)
        _save_health(indexer, caps=caps.as_dict(), caps_at=timezone.now(), account_status=account)
        report = TestReport(True, round(latency, 1), caps.as_dict(), account)
    record_audit("indexer.test", actor=user, target=indexer, ok=report.ok, code=report.code)
    return report


def _unexpected(indexer: Indexer, exc: Exception) -> ClientError:
    log.error("indexer call failed unexpectedly", extra={"indexer": indexer.pk, "error": type(exc).__name__},
              exc_info=exc)
    return ClientError(f"Talking to this indexer failed unexpectedly ({type(exc).__name__}).",
                       code="indexer_failure")


# --- search --------------------------------------------------------------------------------------------------


def parse_query(text: str, kind: str = "search") -> Query:
    """Prowlarr's structured tokens (`{author:Andy Weir}{title:Project Hail Mary}`) become fields; the rest is
    free text."""
    fields = {}
    for name, value in TOKEN_RE.findall(text or ""):
        if name.lower() in TOKEN_FIELDS and value.strip():
            fields[name.lower()] = " ".join(value.split())[:200]
    free = " ".join(TOKEN_RE.sub(" ", text or "").split())[:300]
    return Query(text=free, kind=kind if kind in clients.base.SEARCH_KINDS else "search", fields=fields)


@dataclass
class Filters:
    min_seeders: int = 0
    min_size: int = 0
    max_size: int = 0
    freeleech_only: bool = False
    qualities: list[str] = field(default_factory=list)  # any of: "1080p", "webdl", "m4b", …
    published_after: object = None
    published_before: object = None

    def keep(self, release: Release, found_quality: dict) -> bool:
        if release.seeders < self.min_seeders or release.size < self.min_size:
            return False
        if self.max_size and release.size > self.max_size:
            return False
        if self.freeleech_only and "freeleech" not in release.flags:
            return False
        if self.qualities and not set(self.qualities) & set(found_quality.values()):
            return False
        if self.published_after and (not release.published_at or release.published_at < self.published_after):
            return False
        return not (self.published_before and release.published_at and release.published_at > self.published_before)


@dataclass
class SearchOutcome:
    results: list[SearchResult] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    timings: list[dict] = field(default_factory=list)  # per indexer: id, name, ms, count


@dataclass
class _Answer:
    indexer: Indexer
    client: object = None
    releases: list[Release] | None = None
    caps: Capabilities | None = None
    error: ClientError | None = None
    ms: float = 0.0


def usable_indexers(user, indexer_ids: list[int] | None = None):
    indexers = Indexer.objects.for_user(user).enabled().select_related("owner")
    if indexer_ids:
        indexers = indexers.filter(pk__in=indexer_ids)
    return list(indexers)


def search(user, query: str | Query, *, indexer_ids: list[int] | None = None, categories: list[int] | None = None,
           kind: str | None = None, limit: int = 100, offset: int = 0, filters: Filters | None = None
           ) -> SearchOutcome:
    """Fan out to the user's enabled indexers (or `indexer_ids`), at once, each within its timeout; answer with
    what arrived, ranked, and one entry per indexer that failed. Ids the user cannot use are ignored; if ids
    were given and none is usable, a 400 `no_indexers` (as Prowlarr)."""
    q = query if isinstance(query, Query) else parse_query(query, kind or "search")
    q.categories = [int(c) for c in (categories or q.categories or [])]
    q.limit, q.offset = max(1, min(limit, MAX_LIMIT)), max(0, offset)
    indexers = usable_indexers(user, indexer_ids)
    if indexer_ids and not indexers:
        raise DomainError("None of the chosen indexers is available to you.", code="no_indexers")
    outcome = SearchOutcome()
    now = timezone.now()
    live = []
    for indexer in indexers:
        if indexer.in_backoff(now):
            outcome.errors.append(_error_entry(indexer, "backoff", health_message(indexer)))
        elif q.categories and not _serves(indexer, q.categories):
            continue  # not an error: this indexer has none of these categories
        else:
            live.append(indexer)
    answers = _fan_out(live, q)
    releases: list[tuple[Indexer, Release]] = []
    for answer in answers:
        indexer = answer.indexer
        if answer.client is not None:
            _persist_secrets(indexer, answer.client)
        if answer.error is not None:
            if answer.error.code != "rate_limit_wait":
                record_failure(indexer, answer.error)
            outcome.errors.append(_error_entry(indexer, answer.error.code, answer.error.message))
            continue
        record_success(indexer, answer.ms)
        if answer.caps is not None:
            _save_health(indexer, caps=answer.caps.as_dict(), caps_at=timezone.now())
        outcome.timings.append({"indexer": indexer.pk, "name": indexer.name, "ms": round(answer.ms, 1),
                                "count": len(answer.releases or [])})
        releases.extend((indexer, r) for r in answer.releases or [])
    # The best `limit` overall are kept and stored (each indexer was asked for `limit` from `offset`): storing
    # every parsed row (encrypted columns) would cost more than the search itself.
    outcome.results = _store(user, rank(merge(_filter(releases, q, filters or Filters())))[:q.limit])
    purge_expired_now_and_then()
    return outcome


def _serves(indexer: Indexer, wanted: list[int]) -> bool:
    """Whether the indexer has any of these categories (a parent matches its children); unknown caps: yes."""
    caps = capabilities(indexer)
    ids = caps.category_ids()
    if not ids:
        return True
    parents = {c - c % 1000 for c in wanted if c < 100000}
    return bool(ids & (set(wanted) | parents) or {i - i % 1000 for i in ids if i < 100000} & parents)


def _error_entry(indexer: Indexer, code: str, detail: str) -> dict:
    return {"indexer": indexer.pk, "name": indexer.name, "code": code, "detail": detail}


def _fan_out(indexers: list[Indexer], q: Query) -> list[_Answer]:
    """Every indexer at once in threads; the answer waits for the slowest live one, never past its timeout."""
    if not indexers:
        return []
    overall = min(settings.INDEXERS_SEARCH_TIMEOUT, max(i.timeout for i in indexers))
    started = time.monotonic()
    plans = []
    for indexer in indexers:  # database work here, on this thread: clients (credentials) and rate-limit claims
        deadline = started + min(indexer.timeout, overall)
        try:
            client = clients.build(indexer, deadline=deadline)
            start_at = ratelimit.reserve(indexer.pk, indexer.request_interval)
        except ClientError as exc:
            plans.append((_Answer(indexer, error=exc), None, 0.0, 0.0))
            continue
        refresh = indexer.kind == "torznab" and not _caps_fresh(indexer)
        plans.append((_Answer(indexer, client=client), refresh, start_at, deadline))
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(plans), settings.INDEXERS_SEARCH_CONCURRENCY)),
                              thread_name_prefix="indexer-search")
    futures = {}
    for answer, refresh, start_at, deadline in plans:
        if answer.error is None:
            futures[pool.submit(_ask, answer, q, refresh, start_at, deadline)] = answer
    wait_futures(futures, timeout=overall + 0.05)
    pool.shutdown(wait=False, cancel_futures=True)  # a thread still stuck ends at its own deadline, unwaited
    for future, answer in futures.items():
        if not future.done():
            answer.error = ClientError("The indexer did not answer in time.", code="timeout")
            answer.releases = None
    return [plan[0] for plan in plans]


def _ask(answer: _Answer, q: Query, refresh_caps: bool, start_at: float, deadline: float) -> None:
    """One indexer's search, in a worker thread: HTTP only, no database."""
    indexer, client = answer.indexer, answer.client
    wall_deadline = time.time() + (deadline - time.monotonic())
    if not ratelimit.wait_until(start_at, wall_deadline):
        answer.error = ClientError("Waiting for this indexer's rate limit would pass its timeout.",
                                   code="rate_limit_wait")
        return
    began = time.monotonic()
    try:
        caps = client.capabilities() if refresh_caps else capabilities(indexer)
        answer.caps = caps if refresh_caps else None
        answer.releases = client.search(q, caps)
    except ClientError as exc:
        answer.error = exc
    except Exception as exc:  # a parser surprise is this indexer's error, never the whole search's
        log.error("indexer search failed unexpectedly", extra={"indexer": indexer.pk}, exc_info=exc)
        answer.error = ClientError(f"This indexer's answer could not be used ({type(exc).__name__}).",
                                   code="indexer_failure")
    answer.ms = (time.monotonic() - began) * 1000


def _filter(releases: list[tuple[Indexer, Release]], q: Query, filters: Filters) -> list[tuple[Indexer, Release, dict]]:
    """Like Prowlarr: a result whose categories miss every asked one is dropped; one with none is kept."""
    wanted = set(q.categories)
    kept = []
    for indexer, release in releases:
        cats = set(release.categories)
        if wanted and cats and not (cats & wanted or {c - c % 1000 for c in cats if c < 100000} & wanted):
            continue  # (asking for 3000 Audio keeps 3030 Audio/Audiobook)
        found = quality.parse(release.title)
        if filters.keep(release, found):
            kept.append((indexer, release, found))
    return kept


def merge(items: list[tuple[Indexer, Release, dict]]) -> list[tuple[Indexer, Release, dict]]:
    """The same torrent (info-hash) from several indexers is one result: the best-seeded copy, with every
    indexer's flags and the others listed in extra['also_on']."""
    by_hash: dict[str, tuple[Indexer, Release, dict]] = {}
    merged = []
    for item in items:
        indexer, release, _found = item
        if not release.info_hash:
            merged.append(item)
            continue
        kept = by_hash.get(release.info_hash)
        if kept is None:
            by_hash[release.info_hash] = item
            merged.append(item)
            continue
        best, other = (item, kept) if (release.seeders, -indexer.priority) > (kept[1].seeders,
                                                                              -kept[0].priority) else (kept, item)
        best[1].flags = sorted(set(best[1].flags) | set(other[1].flags))
        best[1].extra["also_on"] = sorted({*best[1].extra.get("also_on", []), other[0].name})
        if best is item:
            merged[merged.index(kept)] = item
            by_hash[release.info_hash] = item
    return merged


def score(indexer: Indexer, release: Release, found: dict, now=None) -> float:
    """The ranking, explainable: 10·log2(1+seeders) + quality points + 5 for freeleech + 5·(indexer's success
    rate) - priority/5 - age in months (at most 5)."""
    now = now or timezone.now()
    age_months = ((now - release.published_at).days / 30) if release.published_at else 3
    return round(10 * math.log2(1 + release.seeders) + quality.points(found)
                 + (5 if "freeleech" in release.flags else 0) + 5 * indexer.success_rate
                 - indexer.priority / 5 - min(max(age_months, 0), 5), 2)


def rank(items: list[tuple[Indexer, Release, dict]]) -> list[tuple[Indexer, Release, dict, float]]:
    now = timezone.now()
    scored = [(i, r, f, score(i, r, f, now)) for i, r, f in items]
    return sorted(scored, key=lambda x: (-x[3], -x[1].seeders, x[1].title))


def _store(user, ranked: list[tuple[Indexer, Release, dict, float]]) -> list[SearchResult]:
    """Upsert per (user, indexer, guid): a result keeps its id across searches; the expiry moves forward."""
    if not ranked:
        return []
    now = timezone.now()
    expires = now + timedelta(days=settings.SEARCH_RESULT_TTL_DAYS)
    rows = []
    for indexer, release, found, points in ranked:
        extra = {k: v for k, v in release.extra.items() if k != "mam_id"} | (
            {"mam_id": release.extra["mam_id"]} if "mam_id" in release.extra else {})
        rows.append(SearchResult(
            user=user, indexer=indexer, guid=release.guid, guid_hash=guid_digest(release.guid),
            title=release.title[:500], size=release.size, seeders=release.seeders, leechers=release.leechers,
            grabs=release.grabs, files=release.files, published_at=release.published_at,
            categories=release.categories, flags=release.flags, info_hash=release.info_hash,
            info_hash_hmac=keyed_hash(release.info_hash) if release.info_hash else "",
            info_url=release.info_url[:1000], download_url=release.download_url, magnet=release.magnet,
            quality=found, extra=extra, score=points, created_at=now, expires_at=expires))
    update = ["title", "size", "seeders", "leechers", "grabs", "files", "published_at", "categories", "flags",
              "info_hash", "info_hash_hmac", "info_url", "download_url", "magnet", "quality", "extra", "score",
              "expires_at"]
    with transaction.atomic():
        SearchResult.objects.bulk_create(rows, batch_size=500, update_conflicts=True,
                                         unique_fields=["user", "indexer", "guid_hash"], update_fields=update)
    ids = {(r.indexer_id, r.guid_hash): r.pk for r in SearchResult.objects.filter(
        user=user, guid_hash__in=[r.guid_hash for r in rows]).only("id", "indexer_id", "guid_hash")}
    for row in rows:
        row.pk = row.id = ids.get((row.indexer_id, row.guid_hash))
    return [r for r in rows if r.pk]


def purge_expired() -> int:
    """Delete results past their expiry (jobs grabbed from them keep their JobSource)."""
    return SearchResult.objects.filter(expires_at__lte=timezone.now()).delete()[0]


def purge_expired_now_and_then() -> None:
    if cache.add("indexers:purge", 1, timeout=3600):  # at most hourly per cache, whoever searches
        purge_expired()


# --- results and grabs ---------------------------------------------------------------------------------------


def get_result(user, result_id: int) -> SearchResult:
    result = SearchResult.objects.for_user(user).live().select_related("indexer").filter(pk=result_id).first()
    if result is None or not Indexer.objects.for_user(user).filter(pk=result.indexer_id).exists():
        raise Http404("No such search result (it may have expired: search again).")
    return result


def _release_of(result: SearchResult) -> Release:
    return Release(guid=result.guid, title=result.title, size=result.size, info_hash=result.info_hash,
                   info_url=result.info_url, download_url=result.download_url, magnet=result.magnet,
                   extra=result.extra)


def _download(result: SearchResult) -> tuple[bytes, str]:
    """The .torrent (or magnet) of a result, fetched by Flotilla with the indexer's credentials."""
    indexer = Indexer.objects.get(pk=result.indexer_id)  # with its (decrypted) credentials
    if result.magnet and indexer.privacy == "public" and not result.download_url:
        return b"", result.magnet
    ratelimit.wait_until(ratelimit.reserve(indexer.pk, indexer.request_interval), time.time() + indexer.timeout)
    try:
        client = clients.build(indexer, deadline=time.monotonic() + max(indexer.timeout, 15.0))
        try:
            return client.download(_release_of(result))
        finally:
            _persist_secrets(indexer, client)
    except ClientError as exc:
        if result.magnet and indexer.privacy == "public":
            return b"", result.magnet  # a public tracker's magnet does as well as its .torrent
        record_failure(indexer, exc)
        raise IndexerUnavailable(f"The indexer did not hand over the torrent: {exc.message}",
                                 code="indexer_download_failed") from exc


def fetch_torrent(user, result_id: int) -> bytes:
    """The .torrent bytes of one of the user's results (for download proxies: Prowlarr's, Torznab's)."""
    result = get_result(user, result_id)
    data, magnet = _download(result)
    if not data:
        raise DomainError("This result is a magnet link, not a .torrent file.", code="magnet_only", magnet=magnet)
    return data


# Apps above indexers act on a grab in its transaction (audiobooks makes an audiobook grab a book): each
# registers `listener(job, source)` in its AppConfig.ready(), as backends and post-processors do.
_grab_listeners: list = []


def on_grab(listener) -> None:
    if listener not in _grab_listeners:
        _grab_listeners.append(listener)


def grab(user, result_id: int, backend: str | None = None, *, ephemeral: bool = False) -> Job:
    """A result becomes a job on `backend` (or the default): Flotilla fetches the .torrent with the indexer's
    credentials (outside any transaction), then the spine's intake checks and creates the job. `ephemeral`: a
    "Play without downloading" job (streaming/ephemeral.py reaches this through downloads.play_sources)."""
    result = get_result(user, result_id)
    jobs.check_account_may_add(user, jobs._resolve_backend(backend))  # before reaching out to the tracker
    data, magnet = _download(result)
    with transaction.atomic():
        job = (jobs.add_torrent(user, data, backend=backend, ephemeral=ephemeral) if data
               else jobs.add_magnet(user, magnet, backend=backend, ephemeral=ephemeral))
        source = JobSource.objects.create(job=job, indexer=result.indexer, result=result,
                                          indexer_name=result.indexer.name, guid=result.guid, title=result.title,
                                          info_url=result.info_url)
        record_audit("search.grab", actor=user, target=job, indexer=result.indexer_id, result=result.pk,
                     **({"ephemeral": True} if ephemeral else {}))
        for listener in _grab_listeners:
            listener(job, source)
    return job


def find_result(user, indexer_id: int, guid: str) -> int:
    """The id of the user's live stored result for (indexer, guid), Prowlarr's grab key; Http404 when there is
    none (never searched, expired, or an indexer the user may no longer use)."""
    result_id = (SearchResult.objects.for_user(user).live()
                 .filter(indexer_id=indexer_id, guid_hash=guid_digest(guid)).values_list("id", flat=True).first())
    if result_id is None or not Indexer.objects.for_user(user).filter(pk=indexer_id).exists():
        raise Http404("No such search result (it may have expired: search again).")
    return result_id


def play_result(user, result_id: int) -> Job:
    """A result as an ephemeral job on the built-in engine, for playing without downloading (404 when it is not
    one of the user's live results)."""
    return grab(user, _play_result_id(result_id), "engine", ephemeral=True)


def _play_result_id(value) -> int:
    if type(value) is not int or not 0 < value <= 2**63 - 1:
        raise Http404("No such search result.")
    return value
