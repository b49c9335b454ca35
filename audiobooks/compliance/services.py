"""Tracker compliance: which rules govern a job, whether it may start (approved client, unsatisfied limit,
ratio), the seeding ledger accrued from the clients' own counters, and the policy's release."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import record_audit
from audiobooks import services as books
from audiobooks import trackers
from downloads import bring_home, leases, runs
from downloads.backends import Refuse, Wait
from downloads.models import Job, JobConflict, ProcessHeartbeat, Status
from indexers import services as indexers
from indexers.clients import ClientError as IndexerError
from indexers.models import Indexer, JobSource
from servers import clients
from servers.backend import server_id_of
from servers.clients import ClientError
from servers.models import TorrentServer

from . import alerts
from .models import SeedingLedger, TrackerAccount, TrackerRules

log = logging.getLogger(__name__)

UNSAT_LIMIT = "tracker_unsatisfied_limit"
RATIO_GUARD = "tracker_ratio_guard"
CLIENT_NOT_APPROVED = "tracker_client_not_approved"
CLIENT_UNKNOWN = "tracker_client_unknown"
# Not started yet (or gone): these do not count as the account's unsatisfied torrents from Flotilla's side.
NOT_SNATCHED = {Status.QUEUED, Status.FAILED, Status.CANCELLED}
ENGINE = "engine"
# Satisfied by both clocks (a job without a ledger is not).
SATISFIED = Q(seeding_ledger__satisfied_at__isnull=False, seeding_ledger__tracker_satisfied_at__isnull=False)
TORRENT_ID = re.compile(r"/t/(\d{1,12})/?$")
SNATCH_PAGES = 20
FREE_FLAGS = {"freeleech", "vip", "personal_freeleech", "fl_vip"}


# --- which rules govern a job ----------------------------------------------------------------------------------


def source_of(job: Job) -> JobSource | None:
    return JobSource.objects.select_related("indexer", "result").filter(job_id=job.pk).first()


def rules_for(job: Job) -> tuple[TrackerRules, JobSource] | None:
    """The enabled rules of the tracker the job was grabbed from, with its source; None for any other job.
    Private trackers hand out private torrents: a public job costs no query (the guard runs every tick)."""
    if not job.is_private:
        return None
    source = source_of(job)
    if source is None or source.indexer is None:
        return None
    rules = TrackerRules.objects.filter(tracker=source.indexer.kind, enabled=True).first()
    return (rules, source) if rules else None


def update_rules(actor, rules: TrackerRules, **changes) -> TrackerRules:
    """The operator edits a tracker's rules (admin): validated, saved, audited."""
    for name, value in changes.items():
        setattr(rules, name, value)
    rules.full_clean()
    with transaction.atomic():
        rules.save()
        record_audit("tracker_rules.update", actor=actor, target=rules, fields=sorted(changes))
    return rules


# --- approved clients ------------------------------------------------------------------------------------------


def version_tuple(text: str) -> tuple[int, ...] | None:
    """'Transmission 3.00 (bb6b5a062e)' → (3, 0); 'qBittorrent v4.5.2' → (4, 5, 2); None when there is none."""
    found = re.search(r"(\d+(?:\.\d+)+|\d+)", text or "")
    return tuple(int(part) for part in found.group(1).split(".")) if found else None


def client_allowed(rules: TrackerRules, kind: str, version: str) -> str | None:
    """None when the tracker allows this client at this version; else a sentence saying why not."""
    allowed = rules.approved_clients.get(kind)
    if allowed is None:
        names = ", ".join(sorted(rules.approved_clients)) or "none"
        return f"{rules.name} does not approve {kind} (approved: {names})."
    spec = {"min": allowed} if isinstance(allowed, str) else allowed
    have = version_tuple(version)
    if have is None:
        return f"The version of this {kind} is unknown."
    if have in {version_tuple(v) for v in spec.get("exclude", [])}:
        return f"{rules.name} does not allow {kind} {'.'.join(map(str, have))}."
    least = version_tuple(spec.get("min", ""))
    if least and have < least:
        return f"{rules.name} needs {kind} {spec['min']} or later; this one is {'.'.join(map(str, have))}."
    return None


def _server_version(server: TorrentServer) -> str:
    """The version the server's last test read; asked once now when it was never tested."""
    if server.client_version:
        return server.client_version
    try:
        with clients.connect(server) as client:
            version = client.check().version
    except ClientError:
        return ""
    TorrentServer.objects.filter(pk=server.pk).update(client_version=version[:100])
    return version


def backend_refusal(rules: TrackerRules, job: Job) -> Refuse | Wait | None:
    """A job of this tracker only runs where the tracker allows the client: a server of an approved type and
    version, or the built-in engine when the operator marked it allowed."""
    kind = job.backend.split(":", 1)[0]
    if kind == "engine":
        if rules.engine_allowed:
            return None
        return Refuse(CLIENT_NOT_APPROVED, f"{rules.name} does not allow Flotilla's built-in engine: pick one of "
                      "your torrent servers running an approved client (an operator may allow the engine).")
    server_id = server_id_of(job.backend)
    if server_id is None:
        return Refuse(CLIENT_NOT_APPROVED, f"{rules.name} torrents must run in a torrent client the tracker "
                      f"approves; '{kind}' is not one.")
    server = TorrentServer.objects.filter(pk=server_id, owner_id=job.user_id).first()
    if server is None:
        return None  # the backend fails it with its own reason
    version = _server_version(server)
    if not version:
        return Wait(CLIENT_UNKNOWN, f"Waiting to read the version of '{server.name}' ({rules.name} approves "
                    "clients by version); the download starts once it answers.")
    why = client_allowed(rules, server.type, version)
    return Refuse(CLIENT_NOT_APPROVED, f"'{server.name}' runs {version}: {why}") if why else None


# --- throttling: the unsatisfied limit and the ratio -----------------------------------------------------------


def local_unsatisfied(user_id: int, indexer_id: int) -> int:
    """This user's jobs from this indexer that the tracker counts as snatched and Flotilla's clock has not
    yet seen satisfied (started, not failed/cancelled, no satisfied ledger)."""
    started = Job.objects.filter(user_id=user_id, indexer_source__indexer_id=indexer_id).exclude(
        status__in=NOT_SNATCHED)
    return started.exclude(SATISFIED).count()


def unsatisfied_wait(rules: TrackerRules, job: Job, indexer: Indexer) -> Wait | None:
    account = indexer.account_status or {}
    limit = account.get("unsatisfied_limit")
    if limit is None:
        return Wait(UNSAT_LIMIT, f"Waiting to read your {rules.name} account's unsatisfied limit (test the "
                    "indexer, or wait for the next account check).")
    # The tracker's count lags behind grabs it has not seen announced; Flotilla's own count lags behind
    # torrents satisfied elsewhere. The larger of the two is the safe one.
    count = max(account.get("unsatisfied") or 0, local_unsatisfied(job.user_id, indexer.pk))
    if count + 1 > limit:
        return Wait(UNSAT_LIMIT, f"{rules.name}: {count} of your {limit} unsatisfied torrents are in use; this "
                    "download starts by itself when one is satisfied.")
    return None


def ratio_wait(rules: TrackerRules, job: Job, source: JobSource) -> Wait | None:
    """Would downloading this torrent take the account's ratio below the floor (keeping the buffer)? Freeleech
    and VIP torrents do not count against the ratio."""
    flags = {str(f).lower() for f in (source.result.flags if source.result else [])}
    if flags & FREE_FLAGS or not rules.ratio_floor:
        return None
    account = (source.indexer.account_status or {}) if source.indexer else {}
    uploaded, downloaded = account.get("uploaded_bytes"), account.get("downloaded_bytes")
    if uploaded is None or downloaded is None:
        return None  # the tracker did not say; its own ratio enforcement stands
    size = job.size_bytes or (source.result.size if source.result else 0)
    credit = uploaded - rules.ratio_floor * (downloaded + size)
    if credit < rules.upload_buffer_bytes:
        ratio_after = uploaded / max(1, downloaded + size)
        return Wait(RATIO_GUARD, f"{rules.name}: this download would take your ratio to {ratio_after:.2f}, below "
                    f"{rules.ratio_floor:.2f} (keeping {rules.upload_buffer_bytes} bytes in reserve); it starts "
                    "by itself once your upload allows it.")
    return None


def start_verdict(job: Job) -> Wait | Refuse | None:
    """The start guard (registered with the spine): refuse a client the tracker does not approve, then wait at
    the unsatisfied limit or the ratio floor. None for jobs no tracker rules govern."""
    found = rules_for(job)
    if found is None:
        return None
    rules, source = found
    return (backend_refusal(rules, job) or unsatisfied_wait(rules, job, source.indexer)
            or ratio_wait(rules, job, source))


# --- the seeding ledger ----------------------------------------------------------------------------------------


def accrue(ledger: SeedingLedger, reported: int, incarnation: str) -> int:
    """Add the client's seeding seconds since the last sight to the ledger. Returns seconds added.

    Same incarnation (the client restarted, the torrent is the one it had): only growth counts — a counter
    that went back (a client killed before it saved) is a new base, never a loss. A new incarnation (the
    torrent was added again, or to another client) started at 0: everything it reports is new."""
    reported = max(0, int(reported))
    same = incarnation == ledger.incarnation
    added = max(0, reported - ledger.reported_seconds) if same else reported
    ledger.seeded_seconds += added
    ledger.reported_seconds, ledger.incarnation = reported, incarnation
    return added


def _observe(rules: TrackerRules, ledger: SeedingLedger, *, complete: bool, reported: int, incarnation: str,
             now: dt.datetime, ratio: float | None = None) -> None:
    if complete and ledger.completed_at is None:
        ledger.completed_at = now
    if accrue(ledger, reported, incarnation):
        ledger.seeding_seen_at = now  # what the inactive alert watches
    if ratio is not None:
        ledger.ratio = round(float(ratio), 4)
    if ledger.satisfied_at is None and ledger.seeded_seconds >= rules.min_seed_time.total_seconds():
        ledger.satisfied_at = now
    ledger.checked_at = now
    ledger.save()


def tracker_agrees(rules: TrackerRules, ledger: SeedingLedger) -> bool:
    """Both clocks agree (`check_snatches` asked the tracker once Flotilla's clock and the margin passed)."""
    return ledger.satisfied


def ready_to_ask(rules: TrackerRules, ledger: SeedingLedger) -> bool:
    """The tracker counts seeding time it saw through announces, not the client's seconds: it is asked about a
    torrent only once the margin has passed beyond Flotilla's satisfied clock (a torrent it has not yet seen
    announced is not on its unsatisfied list either)."""
    need = (rules.min_seed_time + rules.satisfied_margin).total_seconds()
    return ledger.satisfied_at is not None and ledger.seeded_seconds >= need


def ledger_jobs():
    """Tracker jobs on torrent servers or the built-in engine still in a client (not released, not failed or
    cancelled)."""
    trackers = list(TrackerRules.objects.filter(enabled=True).values_list("tracker", flat=True))
    on_a_client = Q(backend__startswith="server:") | Q(backend=ENGINE)
    return (Job.objects.filter(on_a_client, indexer_source__indexer__kind__in=trackers)
            .exclude(status__in=NOT_SNATCHED).exclude(seeding_ledger__released_at__isnull=False)
            .select_related("indexer_source__indexer"))


def sync_ledgers(now: dt.datetime | None = None) -> int:
    """ONE listing per server of its tracker torrents (and two queries for the engine's): seeding seconds into
    the ledgers, satisfied when the rules' time is reached, released when the policy says so and both clocks
    agree. Returns ledgers seen."""
    now = now or timezone.now()
    rules = {r.tracker: r for r in TrackerRules.objects.filter(enabled=True)}
    by_server: dict[int, list[Job]] = defaultdict(list)
    on_engine: list[Job] = []
    for job in ledger_jobs():
        if job.backend == ENGINE:
            on_engine.append(job)
        else:
            by_server[server_id_of(job.backend)].append(job)
    seen = _sync_engine(on_engine, rules, now)
    for server in TorrentServer.objects.filter(pk__in=list(by_server), enabled=True):
        seen += _sync_server(server, by_server[server.pk], rules, now)
    return seen


def _sync_server(server: TorrentServer, jobs: list[Job], rules: dict, now: dt.datetime) -> int:
    try:
        with clients.connect(server) as client:
            torrents = {t.hash: t for t in client.list([job.info_hash.lower() for job in jobs if job.info_hash])}
    except ClientError as exc:
        log.info("compliance: server listing failed", extra={"server": server.pk, "code": exc.code})
        return 0
    seen = 0
    for job in jobs:
        torrent = torrents.get((job.info_hash or "").lower())
        tracker_rules = rules.get(job.indexer_source.indexer.kind)
        if torrent is None or tracker_rules is None:
            continue
        ledger, _ = SeedingLedger.objects.get_or_create(job=job, defaults={"tracker": tracker_rules.tracker})
        _observe(tracker_rules, ledger, complete=torrent.complete, reported=torrent.seeding_time or 0,
                 incarnation=f"{job.backend}@{torrent.added_at or ''}", now=now, ratio=torrent.ratio)
        _release_if_allowed(server, tracker_rules, ledger, job, now)
        seen += 1
    return seen


def engine_counters(jobs: list[Job]) -> dict[int, int]:
    """The built-in engine's seeding seconds per tracker job, as its heartbeat reports them (libtorrent's
    seeding_duration, kept in the resume data: it survives a restart of the engine and a move to another).
    A dead engine's figures stop growing with its heartbeat. {job id: seconds}; one query."""
    names = {job.claimed_by for job in jobs if job.claimed_by}
    if not names:
        return {}
    reported = {name: (info or {}).get("seeding_seconds") or {} for name, info in ProcessHeartbeat.objects.filter(
        kind=ProcessHeartbeat.Kind.ENGINE, name__in=names).values_list("name", "info")}
    counters = {}
    for job in jobs:
        seconds = reported.get(job.claimed_by, {}).get(str(job.pk)) if job.claimed_by else None
        if isinstance(seconds, int) and not isinstance(seconds, bool):
            counters[job.pk] = seconds
    return counters


def _sync_engine(jobs: list[Job], rules: dict, now: dt.datetime) -> int:
    by_id, seen = {job.pk: job for job in jobs}, 0
    for job_id, seconds in engine_counters(jobs).items():
        job = by_id[job_id]
        tracker_rules = rules.get(job.indexer_source.indexer.kind)
        if tracker_rules is None:
            continue
        ledger, _ = SeedingLedger.objects.get_or_create(job=job, defaults={"tracker": tracker_rules.tracker})
        # One incarnation: the counter survives restarts; one that went back (resume data lost) is a new base.
        _observe(tracker_rules, ledger, complete=True, reported=seconds, incarnation=ENGINE, now=now)
        _release_engine_job_if_allowed(tracker_rules, ledger, job, now)
        seen += 1
    return seen


def _release_engine_job_if_allowed(rules: TrackerRules, ledger: SeedingLedger, job: Job, now: dt.datetime) -> None:
    """The engine's side of the same policy: its job's seeding ends through the finish line (the files checked
    in place and kept; post-processors run then, a book made while it seeded is skipped), and the engine takes
    the torrent out of its session once the job left it. A job that is not seeding now (paused, or moved
    meanwhile) is looked at again by the next sweep."""
    if rules.keep_seeding or ledger.released_at or not tracker_agrees(rules, ledger) or job.status != Status.SEEDING:
        return
    if leases.is_held(runs.lease_name(books.LEASE, job.pk)):
        return  # its book is being made from the seeding files (books.builds_while_seeding): after that
    try:
        job = bring_home.complete_in_place(job, reason_code="tracker_released",
                                           reason=f"Complete: {rules.name or rules.tracker}'s seeding rules are met.")
    except JobConflict as exc:
        log.info("compliance: engine release skipped", extra={"job": job.pk, "why": exc.detail})
        return
    if job.status == Status.FAILED:  # its files were not all there: the job says why
        return
    SeedingLedger.objects.filter(pk=ledger.pk).update(released_at=now)
    record_audit("tracker.release", target=job, tracker=rules.tracker, seeded_seconds=ledger.seeded_seconds)


def _release_if_allowed(server: TorrentServer, rules: TrackerRules, ledger: SeedingLedger, job: Job,
                        now: dt.datetime) -> None:
    """A torrent leaves its client only if the policy says so AND Flotilla's clock and the tracker agree."""
    if rules.keep_seeding or ledger.released_at or not tracker_agrees(rules, ledger):
        return
    try:
        with clients.connect(server) as client:
            client.remove(job.info_hash, delete_data=False)
    except ClientError as exc:
        log.info("compliance: release failed, next sync retries", extra={"job": job.pk, "code": exc.code})
        return
    SeedingLedger.objects.filter(pk=ledger.pk).update(released_at=now)
    record_audit("tracker.release", target=job, tracker=rules.tracker, seeded_seconds=ledger.seeded_seconds)


def refresh_accounts(now: dt.datetime | None = None) -> int:
    """Read the account of every indexer with tracker rules that has jobs waiting or unsatisfied (the
    unsatisfied count and the ratio the guard reads; the outcome, session included, in its TrackerAccount).
    Returns accounts read."""
    now = now or timezone.now()
    trackers = list(TrackerRules.objects.filter(enabled=True).values_list("tracker", flat=True))
    busy = Job.objects.filter(indexer_source__indexer__kind__in=trackers).exclude(
        status__in={Status.FAILED, Status.CANCELLED}).exclude(SATISFIED)
    read = 0
    for indexer in Indexer.objects.filter(pk__in=busy.values("indexer_source__indexer"), enabled=True):
        if indexer.in_backoff():
            continue
        try:
            indexers.refresh_account(indexer)
            read += 1
        except IndexerError as exc:
            log.info("compliance: account check failed", extra={"indexer": indexer.pk, "code": exc.code})
            TrackerAccount.objects.update_or_create(indexer=indexer, defaults={
                "checked_at": now, "error_code": exc.code[:64]})
        else:
            TrackerAccount.objects.update_or_create(indexer=indexer, defaults={
                "checked_at": now, "ok_at": now, "error_code": ""})
    return read


# --- the tracker's side: its snatch list -------------------------------------------------------------------


def tracker_torrent_id(source: JobSource) -> int | None:
    """The tracker's id of the grabbed torrent, from its guid or info URL (MyAnonamouse: …/t/<id>)."""
    for url in (source.guid, source.info_url):
        found = TORRENT_ID.search(url or "")
        if found:
            return int(found.group(1))
    return None


def awaiting_tracker():
    """Ledgers Flotilla's clock has satisfied (margin included) that the tracker has not yet confirmed."""
    return (SeedingLedger.objects.filter(satisfied_at__isnull=False, tracker_satisfied_at__isnull=True,
                                         released_at__isnull=True)
            .select_related("job__indexer_source__indexer"))


def check_snatches(now: dt.datetime | None = None) -> int:
    """Per indexer, ONE read of the account's unsatisfied snatch list (paged), only when a ledger waits for the
    tracker: a torrent Flotilla's clock satisfied that the list no longer has is satisfied by both. A failed
    read changes nothing (the next sweep asks again). Returns ledgers confirmed."""
    now = now or timezone.now()
    rules = {r.tracker: r for r in TrackerRules.objects.filter(enabled=True)}
    waiting: dict[int, list[SeedingLedger]] = defaultdict(list)
    for ledger in awaiting_tracker():
        source = ledger.job.indexer_source
        tracker_rules = rules.get(source.indexer.kind) if source.indexer else None
        if tracker_rules and ready_to_ask(tracker_rules, ledger) and tracker_torrent_id(source):
            waiting[source.indexer_id].append(ledger)
    confirmed = 0
    for indexer in Indexer.objects.filter(pk__in=list(waiting), enabled=True):
        try:
            listed = unsatisfied_ids(indexer)
        except IndexerError as exc:
            log.info("compliance: snatch list failed", extra={"indexer": indexer.pk, "code": exc.code})
            continue
        done = [ledger.pk for ledger in waiting[indexer.pk]
                if tracker_torrent_id(ledger.job.indexer_source) not in listed]
        confirmed += SeedingLedger.objects.filter(pk__in=done).update(tracker_satisfied_at=now)
    return confirmed


def unsatisfied_ids(indexer: Indexer) -> set[int]:
    """The torrent ids on the account's `unsat` snatch list, page by page (each request spaced by the
    indexer's interval, MAM asks 2 s) until an empty page or one that repeats the last."""
    uid = (indexer.account_status or {}).get("uid") or indexers.refresh_account(indexer).get("uid")
    if not uid:
        raise IndexerError("The tracker did not say which account this is.", code="bad_response")

    def read(client, pace) -> set[int]:
        if not hasattr(client, "snatch_page"):
            raise IndexerError(f"{indexer.kind} has no snatch list.", code="unsupported", permanent=True)
        ids: set[int] = set()
        previous: list[int] | None = None
        for page in range(SNATCH_PAGES):
            pace()
            rows = [row["id"] for row in client.snatch_page(uid, "unsat", page)]
            if not rows or rows == previous:
                break
            ids.update(rows)
            previous = rows
        return ids

    return trackers.call(indexer, read, requests=SNATCH_PAGES)


def sweep() -> dict[str, int]:
    """The worker's compliance round: ledgers first (a torrent just satisfied frees a place), then accounts,
    then the tracker's word on torrents Flotilla's clock satisfied; last, the alerts on what they found."""
    now = timezone.now()
    done = {"ledgers": sync_ledgers(now), "accounts": refresh_accounts(now), "tracker": check_snatches(now)}
    return {**done, **alerts.evaluate(now)}
