"""Fail-over between backends: a job its backend refused or gave up on moves to the next backend of its policy.

A policy — the user's own `BackendPolicy`, else their plan's (shape and trigger codes: `BackendPolicy`,
`FAILOVER_TRIGGERS`) — orders backends, e.g. seedr → server → engine, and names the triggers that move a
job on::

    dispatch._submit: BackendError ───────────┐
    bring_home: permanent / retries exhausted ┼─► after_error(job, exc) ─┐
    seedr: stalled at 0 %, too big ───────────┼──────────────────────────┼─► fail_over(job, code, message)
    sweep() (worker, every minute): stalled N ┘                          │
      minutes with no seeders; backend offline past the grace time ──────┘
    fail_over: the next backend of the policy after the job's own, never one it left, that takes the job
      (plan allows it, size within quota, backend.refuses() has nothing) ─► cancel + delete on the old one,
      `queued` on the new one with the same id (so the same place in line), event "Moved from A to B: why",
      audit row ─► True.  No such backend ─► a message event listing why each was skipped ─► False, and the
      caller fails the job as it did before.

`Job.failover_from` lists the backends a job left; a job never goes back to one, so it cannot loop.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import record_audit
from billing import services as billing
from config.errors import DomainError
from config.tasks import enqueue
from downloads import backends, events, retries, services
from downloads.models import FAILOVER_TRIGGERS, BackendPolicy, EventKind, Job, JobConflict, JobFile, Status

log = logging.getLogger(__name__)

FAILED_OVER = "failed_over"
NO_NEXT_BACKEND = "failover_none"
STALLED = "stalled"
OFFLINE = "backend_offline"
# Backend codes that mean one of the policy's triggers.
ALIASES = {"seedr_stalled": STALLED}
# What may move: not yet done downloading (seeding jobs are), or bringing files home (a dead letter there).
MOVABLE = frozenset({Status.QUEUED, Status.STARTING, Status.FETCHING_METADATA, Status.DOWNLOADING, Status.WAITING,
                     Status.PAUSED, Status.TRANSFERRING})
STALLABLE = (Status.FETCHING_METADATA, Status.DOWNLOADING)
# A paused job was paused on purpose; a transferring one has its data and retries bringing it home.
OFFLINE_MOVABLE = (Status.QUEUED, Status.STARTING, Status.FETCHING_METADATA, Status.DOWNLOADING, Status.WAITING)
SWEEP_LIMIT = 100


@dataclass(frozen=True)
class Policy:
    backends: tuple[str, ...]
    triggers: frozenset[str]
    stall_minutes: int
    offline_grace_minutes: int

    @classmethod
    def of(cls, row: BackendPolicy | None) -> Policy | None:
        if row is None or not row.backends:
            return None
        return cls(tuple(row.backends), frozenset(row.triggers), row.stall_minutes, row.offline_grace_minutes)


def policy_for(user) -> Policy | None:
    """The user's own policy if they set one (one without backends opts out of the plan's), else their plan's."""
    own = BackendPolicy.objects.filter(user=user).first()
    if own is not None:
        return Policy.of(own)
    return Policy.of(BackendPolicy.objects.filter(plan=billing.current_plan(user)).first())


# --- the user's policy --------------------------------------------------------------------------------

POLICY_FIELDS = ("backends", "triggers", "stall_minutes", "offline_grace_minutes")


def check_policy(user, row: BackendPolicy) -> None:
    """Validate a user's policy: its shape (`BackendPolicy.clean`), then every entry is a backend they may use."""
    try:
        row.full_clean(exclude=["user", "plan"])
    except ValidationError as exc:
        raise DomainError(" ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()),
                          code="invalid_policy") from exc
    plan = billing.current_plan(user)
    for name in row.backends:
        runner = backends.get_backend(name)
        if runner is None:
            raise DomainError(f"Unknown backend '{name}'.", code="unknown_backend")
        if ":" in name:
            runner.validate_target(user, name)  # e.g. one of the user's own servers
            if runner.kind in dict(runner.choices(user)):  # a kind without accounts ("engine:5" is no backend)
                raise DomainError(f"Unknown backend '{name}'.", code="unknown_backend")
        if not plan.allows_backend(name):
            raise billing.QuotaExceeded("allowed_backends", f"Your plan ({plan.name}) does not include the "
                                        f"'{name}' backend.")


def set_user_policy(user, *, actor=None, **values) -> BackendPolicy:
    """Save the user's own policy (no backends: fail-over off for them, whatever their plan says). Values not
    given keep their current (or default) value."""
    row = BackendPolicy.objects.filter(user=user).first() or BackendPolicy(user=user)
    for key in POLICY_FIELDS:
        if key in values:
            setattr(row, key, values[key])
    check_policy(user, row)
    with transaction.atomic():
        row.save()
        record_audit("failover_policy.set", actor=actor or user, target=row, backends=row.backends,
                     triggers=row.triggers)
    return row


def clear_user_policy(user, *, actor=None) -> None:
    """Forget the user's own policy: their plan's applies again."""
    with transaction.atomic():
        if BackendPolicy.objects.filter(user=user).delete()[0]:
            record_audit("failover_policy.clear", actor=actor or user, target=user)


def effective_policy(user) -> tuple[str, BackendPolicy | None]:
    """What applies to the user and where it comes from ("user", "plan" or "none")."""
    own = BackendPolicy.objects.filter(user=user).first()
    if own is not None:
        return "user", own
    plan_row = BackendPolicy.objects.filter(plan=billing.current_plan(user)).first()
    return ("plan", plan_row) if plan_row is not None else ("none", None)


# --- moving a job ---------------------------------------------------------------------------------------


def after_error(job: Job, exc: backends.BackendError, attempts: int) -> bool:
    """A backend raised while taking or bringing home a job: fail it over if its policy names the error,
    the exhausted retries or the backend being offline past the grace time. True when the job moved."""
    policy = policy_for(job.user)
    if policy is None or job.status not in MOVABLE:
        return False
    codes = [exc.code]
    if not exc.permanent and retries.exhausted(attempts):
        codes.append(retries.RETRIES_EXHAUSTED)
    if OFFLINE in policy.triggers and _offline_past_grace(job, policy):
        codes.append(OFFLINE)
    code = next((c for c in codes if ALIASES.get(c, c) in policy.triggers), None)
    return code is not None and fail_over(job, code, exc.message, policy=policy)


def fail_over(job: Job, code: str, message: str, *, policy: Policy | None = None, announce: bool = True) -> bool:
    """Move the job to the next backend of its policy, if the policy names `code` and one takes the job.

    Returns True when the job moved (or changed meanwhile: that change stands); False when the policy does
    not apply or no backend is left, and the caller then fails the job as it would have (with `announce`,
    a message event first says why no backend took it)."""
    trigger = ALIASES.get(code, code)
    policy = policy or policy_for(job.user)
    if policy is None or trigger not in policy.triggers or job.status not in MOVABLE:
        return False
    target, skipped = _next_backend(job, policy)
    if target is None:
        if announce:  # the caller fails the job next: its history says why it did not move
            _say_none_left(job, code, skipped)
        return False
    try:
        _move(job, target, code, message, skipped)
    except JobConflict:
        log.info("fail-over skipped: the job changed meanwhile", extra={"job": job.pk})
    return True


def _chain(user, names: tuple[str, ...]) -> list[str]:
    """The policy's backend names, a bare kind expanded to the user's own accounts of it ("server" → each of
    their enabled servers, in their order)."""
    out: list[str] = []
    for name in names:
        runner = backends.get_backend(name)
        out += [name] if ":" in name or runner is None else [choice for choice, _ in runner.choices(user)]
    return list(dict.fromkeys(out))


def _next_backend(job: Job, policy: Policy) -> tuple[str | None, list[dict]]:
    """The first backend after the job's own in the chain (the whole chain if its own is not in it) that it
    never left and that takes it; and why the ones passed over did not."""
    chain = _chain(job.user, policy.backends)
    if job.backend in chain:
        chain = chain[chain.index(job.backend) + 1:]
    left = {job.backend, *job.failover_from}
    skipped = []
    for name in chain:
        if name in left:
            continue
        why = _refusal(job, name)
        if why is None:
            return name, skipped
        skipped.append({"backend": name, "reason": why[:200]})
    return None, skipped


def _refusal(job: Job, name: str) -> str | None:
    """Why `name` cannot take the job: not loaded, not the user's, not in their plan, over quota, or the
    backend's own refusal. The storage quota leaves this job's own committed size out (it only moves)."""
    runner = backends.get_backend(name)
    if runner is None:
        return "not running on this server"
    try:
        runner.validate_target(job.user, name)
        plan = billing.current_plan(job.user)
        if not plan.allows_backend(name):
            return f"your plan ({plan.name}) does not include it"
        if job.size_bytes:
            billing.check_size(job.user, job.size_bytes, plan=plan, exclude_job_id=job.pk)
    except DomainError as exc:
        return exc.detail
    return runner.refuses(job)


def label(user, name: str) -> str:
    """'Seedr.cc', "server 'home (Transmission)'": what the job's event calls a backend."""
    runner = backends.get_backend(name)
    if runner is None:
        return name
    if ":" not in name:
        return runner.label or name
    return f"{runner.kind} '{dict(runner.choices(user)).get(name, name)}'"


def _move(job: Job, target: str, code: str, message: str, skipped: list[dict]) -> None:
    old = job.backend
    trigger = ALIASES.get(code, code)
    if trigger != OFFLINE:  # an offline backend cannot be asked (and would hold the worker for its timeout)
        _cancel_on_old(job)
    services.remove_tree(job.data_dir)
    sentence = f"Moved from {label(job.user, old)} to {label(job.user, target)}: {FAILOVER_TRIGGERS[trigger]}."
    data = {"failover": {"from": old, "to": target, "code": code, "detail": message[:300], "skipped": skipped}}
    fields = {"backend": target, "remote_id": "", "attempts": 0, "next_attempt_at": None, "progress": 0.0,
              "downloaded_bytes": 0, "download_rate": 0, "eta_seconds": None, "peers": 0, "seeds": 0,
              "progress_at": None, "failover_from": [*job.failover_from, old], "data_deleted_at": None}
    with transaction.atomic():
        if job.status == Status.QUEUED:
            _requeue_queued(job, sentence, data, fields)
        else:
            services.change_status(job, Status.QUEUED, reason_code=FAILED_OVER, reason=sentence, event_data=data,
                                   **fields)
        # Each backend registers the files it has (paths differ between them): none is carried over.
        JobFile.objects.filter(job=job).delete()
        record_audit("job.failover", target=job, code=code, **{"from": old, "to": target})
        enqueue("downloads.tasks.dispatch", group="dispatch")
    log.info("job failed over", extra={"job": job.pk, "from": old, "to": target, "code": code})


def _requeue_queued(job: Job, sentence: str, data: dict, fields: dict) -> None:
    """A queued job (waiting for an offline server) moves without a status change: the table has no
    queued → queued, so it is the same conditional write `change_status` makes, with its event."""
    changes = {**fields, "reason_code": FAILED_OVER, "reason": sentence[:500], "updated_at": timezone.now()}
    if not Job.objects.filter(pk=job.pk, status=Status.QUEUED, backend=job.backend).update(**changes):
        raise services.StaleJob("The job changed meanwhile.")
    for key, value in changes.items():
        setattr(job, key, value)
    events.emit(job, EventKind.MESSAGE, FAILED_OVER, {"status": job.status, "reason_code": FAILED_OVER,
                                                      "reason": job.reason, **data})


def _cancel_on_old(job: Job) -> None:
    """Remove the job and its partial data from the backend it leaves (best effort: it moves anyway)."""
    runner = backends.get_backend(job.backend)
    if runner is None or (job.status == Status.QUEUED and not job.remote_id):
        return
    try:
        runner.cancel(job, delete_data=True)
    except Exception:  # a refusal or a bug on the old side must not keep the job there
        log.warning("fail-over: cancel on the old backend failed", exc_info=True,
                    extra={"job": job.pk, "backend": job.backend})


def _say_none_left(job: Job, code: str, skipped: list[dict]) -> None:
    if skipped:
        why = "; ".join(f"{label(job.user, s['backend'])}: {s['reason']}" for s in skipped)
        reason = f"No backend of your fail-over policy can take it ({why})."
    else:
        reason = "Every backend of your fail-over policy was tried."
    events.emit(job, EventKind.MESSAGE, NO_NEXT_BACKEND, {"status": job.status, "reason_code": NO_NEXT_BACKEND,
                                                          "reason": reason[:500], "code": code,
                                                          "skipped": skipped})


# --- the periodic check: stalled jobs, offline backends -----------------------------------------------------


def sweep(now: dt.datetime | None = None) -> int:
    """The worker's per-minute check. Returns the jobs moved. Costs one query (the policies) when no policy
    names `stalled` or `backend_offline`; otherwise one query per trigger for the candidates, plus the
    policy of each candidate's user (cached for the sweep)."""
    now = now or timezone.now()
    policies = _Policies()
    return _sweep_stalled(now, policies) + _sweep_offline(now, policies)


class _Policies:
    """The policies naming a trigger, read once per sweep (one row per plan and per user who set one), and
    each user's policy, cached for the sweep."""

    def __init__(self) -> None:
        rows = list(BackendPolicy.objects.all())
        self.plans = [p for p in (Policy.of(r) for r in rows if r.plan_id) if p]
        self.own = {r.user_id: Policy.of(r) for r in rows if r.user_id}
        self._users: dict[int, Policy | None] = {}

    def floor(self, trigger: str, minutes: str) -> int | None:
        """The fewest minutes any policy naming `trigger` waits; None when none names it."""
        values = [getattr(p, minutes) for p in [*self.plans, *self.own.values()] if p and trigger in p.triggers]
        return min(values) if values else None

    def users_without(self, trigger: str) -> list[int]:
        """Users whose own policy overrides their plan's and does not name `trigger`."""
        return [user_id for user_id, p in self.own.items() if p is None or trigger not in p.triggers]

    def plans_name(self, trigger: str) -> bool:
        return any(trigger in p.triggers for p in self.plans)

    def of(self, job: Job) -> Policy | None:
        if job.user_id not in self._users:
            self._users[job.user_id] = self.own[job.user_id] if job.user_id in self.own else policy_for(job.user)
        return self._users[job.user_id]


def _scope(jobs, policies: _Policies, trigger: str):
    """Only jobs of users a policy naming `trigger` can apply to."""
    if policies.plans_name(trigger):
        return jobs.exclude(user_id__in=policies.users_without(trigger))
    return jobs.filter(user_id__in=[u for u, p in policies.own.items() if p and trigger in p.triggers])


def _sweep_stalled(now: dt.datetime, policies: _Policies) -> int:
    """Jobs fetching metadata or downloading with no seeder and no new byte for the policy's minutes."""
    floor = policies.floor(STALLED, "stall_minutes")
    if floor is None:
        return 0
    cutoff = now - dt.timedelta(minutes=floor)
    still = Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, started_at__lt=cutoff)
    jobs = _scope(Job.objects.filter(still, status__in=STALLABLE, seeds=0), policies, STALLED)
    moved = 0
    for job in jobs.select_related("user").order_by("id")[:SWEEP_LIMIT]:
        policy = policies.of(job)
        since = job.progress_at or job.started_at
        if policy is None or STALLED not in policy.triggers or now - since < dt.timedelta(
                minutes=policy.stall_minutes):
            continue
        minutes = int((now - since).total_seconds() // 60)
        moved += _guarded(job, STALLED, f"No seeders and no progress for {minutes} minutes.", policy)
    return moved


def _sweep_offline(now: dt.datetime, policies: _Policies) -> int:
    """Jobs waiting for, or running on, a backend that has not answered for the policy's grace time."""
    floor = policies.floor(OFFLINE, "offline_grace_minutes")
    if floor is None:
        return 0
    offline = {name: since for runner in backends.registered().values() for name, since in runner.offline().items()
               if now - since >= dt.timedelta(minutes=floor)}
    if not offline:
        return 0
    jobs = _scope(Job.objects.filter(backend__in=list(offline), status__in=OFFLINE_MOVABLE), policies, OFFLINE)
    moved = 0
    for job in jobs.select_related("user").order_by("id")[:SWEEP_LIMIT]:
        policy, since = policies.of(job), offline[job.backend]
        if policy is None or OFFLINE not in policy.triggers or now - since < dt.timedelta(
                minutes=policy.offline_grace_minutes):
            continue
        minutes = int((now - since).total_seconds() // 60)
        moved += _guarded(job, OFFLINE, f"{label(job.user, job.backend)} has not answered for {minutes} minutes.",
                          policy)
    return moved


def _guarded(job: Job, code: str, message: str, policy: Policy) -> int:
    """One job's fail-over inside the sweep: a failure is logged and the sweep goes on with the others."""
    try:
        # Nothing left to move to: the job stays where it is (a stalled torrent may still find a seeder, a
        # server may come back), and the sweep says nothing, so it does not repeat itself every minute.
        return int(fail_over(job, code, message, policy=policy, announce=False))
    except Exception:
        log.exception("fail-over sweep: job skipped", extra={"job": job.pk})
    return 0


def _offline_past_grace(job: Job, policy: Policy) -> bool:
    runner = backends.get_backend(job.backend)
    since = runner.offline().get(job.backend) if runner else None
    return since is not None and timezone.now() - since >= dt.timedelta(minutes=policy.offline_grace_minutes)
