"""Plans, quotas and usage: which plan applies, what a user may still do, and what they used.

Quota checks run at job creation, again when a job's size becomes known, and before any transfer.
A refusal raises `QuotaExceeded` naming the limit, so the caller can fail the job with a clear event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery, Sum, Value
from django.db.models.expressions import Expression
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.audit import record_audit
from billing.models import Plan, PlanAssignment, UpgradeRequest, UsageDay
from config.errors import Conflict, DomainError
from config.formatting import human_bytes


class QuotaExceeded(DomainError):
    code = "quota_exceeded"
    http_status = 403

    def __init__(self, limit: str, detail: str):
        super().__init__(detail, limit=limit)
        self.limit = limit


def default_plan() -> Plan:
    plan = Plan.objects.filter(is_default=True).order_by("id").first()
    if plan is None:  # an operator removed the default: fall back to a safe built-in one
        plan, _ = Plan.objects.get_or_create(name="Default", defaults={"is_default": True})
    return plan


def current_plan(user) -> Plan:
    assignment = PlanAssignment.objects.current().filter(user=user).select_related("plan").first()
    return assignment.plan if assignment else default_plan()


@transaction.atomic
def assign_plan(user, plan: Plan, *, actor=None, starts_at=None, expires_at=None, note: str = "") -> PlanAssignment:
    assignment = PlanAssignment(user=user, plan=plan, starts_at=starts_at or timezone.now(), expires_at=expires_at,
                                note=note)
    assignment.full_clean()
    assignment.save()
    record_audit("plan.assign", actor=actor, target=user, plan=plan.name,
                 expires_at=expires_at.isoformat() if expires_at else None)
    return assignment


# --- what is in use ---------------------------------------------------------------------------------


# The spine measures what a user's jobs use and registers itself here in DownloadsConfig.ready()
# (downloads/usage.py): billing sits below the spine, which checks quotas through it, so it never reads jobs.


class JobUsage(Protocol):
    def storage_committed(self, user, *, exclude_job_id: int | None = None) -> int: ...

    def active_jobs(self, user) -> int: ...


_job_usage: JobUsage | None = None


def register_job_usage(source: JobUsage) -> None:
    global _job_usage
    _job_usage = source


def _usage() -> JobUsage:
    if _job_usage is None:
        raise ImproperlyConfigured("No job usage source: the downloads app registers one in its ready().")
    return _job_usage


def storage_committed(user, *, exclude_job_id: int | None = None) -> int:
    """Bytes the user's jobs hold or will hold on disk (full size of unfinished jobs: they will grow)."""
    return _usage().storage_committed(user, exclude_job_id=exclude_job_id)


def active_job_count(user) -> int:
    return _usage().active_jobs(user)


def month_start(today: dt.date | None = None) -> dt.date:
    return (today or timezone.localdate()).replace(day=1)


def transfer_this_month(user) -> int:
    totals = UsageDay.objects.filter(user=user, day__gte=month_start()).aggregate(
        down=Coalesce(Sum("bytes_downloaded"), 0), out=Coalesce(Sum("bytes_delivered"), 0)
    )
    return totals["down"] + totals["out"]


# --- checks -----------------------------------------------------------------------------------------


def check_new_job(user, backend: str, size: int | None) -> Plan:
    """Refuse a job the plan does not allow. Active-job slots are not checked here: extra jobs queue."""
    plan = current_plan(user)
    if not plan.allows_backend(backend):
        raise QuotaExceeded("allowed_backends", f"Your plan ({plan.name}) does not include the '{backend}' backend.")
    if plan.monthly_transfer_bytes and transfer_this_month(user) >= plan.monthly_transfer_bytes:
        raise QuotaExceeded(
            "monthly_transfer_bytes",
            f"You used this month's transfer allowance ({human_bytes(plan.monthly_transfer_bytes)}).",
        )
    used = storage_committed(user) if plan.max_storage_bytes else 0
    if plan.max_storage_bytes and used >= plan.max_storage_bytes:
        raise QuotaExceeded("max_storage_bytes", f"Your storage is full ({human_bytes(plan.max_storage_bytes)}).")
    if size is not None:
        check_size(user, size, plan=plan, used=used)
    return plan


def check_size(user, size: int, *, plan: Plan | None = None, exclude_job_id: int | None = None,
               used: int | None = None) -> None:
    """Refuse a job whose size is over the single-job limit or the storage the user has left.

    `used` may be passed when the caller already summed the storage (one aggregate, not two)."""
    plan = plan or current_plan(user)
    if plan.max_job_size_bytes and size > plan.max_job_size_bytes:
        raise QuotaExceeded(
            "max_job_size_bytes",
            f"This download is {human_bytes(size)}; your plan allows {human_bytes(plan.max_job_size_bytes)} per job.",
        )
    if plan.max_storage_bytes:
        if used is None:
            used = storage_committed(user, exclude_job_id=exclude_job_id)
        free = plan.max_storage_bytes - used
        if size > free:
            raise QuotaExceeded(
                "max_storage_bytes",
                f"This download is {human_bytes(size)}; you have {human_bytes(max(free, 0))} of storage left.",
            )


def check_transfer(user, nbytes: int) -> None:
    """Refuse a transfer (delivery or cloud transfer) that would pass the monthly allowance."""
    plan = current_plan(user)
    if plan.monthly_transfer_bytes and transfer_this_month(user) + nbytes > plan.monthly_transfer_bytes:
        raise QuotaExceeded(
            "monthly_transfer_bytes",
            f"This transfer of {human_bytes(nbytes)} would pass your monthly allowance "
            f"({human_bytes(plan.monthly_transfer_bytes)}).",
        )


def slot_limit_sql(default_limit: int, user_ref: OuterRef | None = None) -> Expression:
    """The `max_active_jobs` of a user's current plan as an SQL expression (0 = unlimited), so a caller can
    filter many users' rows in one query (the dispatcher) with the same rule as `current_plan`.
    `default_limit` is the default plan's, read once by the caller."""
    current = (PlanAssignment.objects.current().filter(user=user_ref or OuterRef("user"))
               .order_by("-starts_at", "-id").values("plan__max_active_jobs")[:1])
    return Coalesce(Subquery(current), Value(default_limit))


def has_free_slot(user) -> bool:
    plan = current_plan(user)
    return not plan.max_active_jobs or active_job_count(user) < plan.max_active_jobs


# --- metering ---------------------------------------------------------------------------------------


def record_usage(user_id: int, *, downloaded: int = 0, delivered: int = 0, jobs: int = 0) -> None:
    if not (downloaded or delivered or jobs):
        return
    day = timezone.localdate()
    changes = {"bytes_downloaded": F("bytes_downloaded") + downloaded,
               "bytes_delivered": F("bytes_delivered") + delivered,
               "jobs_created": F("jobs_created") + jobs}
    with transaction.atomic():
        if not UsageDay.objects.filter(user_id=user_id, day=day).update(**changes):
            _, created = UsageDay.objects.get_or_create(
                user_id=user_id, day=day,
                defaults={"bytes_downloaded": downloaded, "bytes_delivered": delivered, "jobs_created": jobs},
            )
            if not created:  # another writer created the row between our update and insert
                UsageDay.objects.filter(user_id=user_id, day=day).update(**changes)


@dataclass(frozen=True)
class UsageSummary:
    plan: str
    storage_used: int
    storage_limit: int
    transfer_this_month: int
    transfer_limit: int
    active_jobs: int
    active_jobs_limit: int
    max_job_size: int
    retention_days: int
    allowed_backends: list[str]

    @property
    def storage_percent(self) -> float:
        return min(100.0, 100.0 * self.storage_used / self.storage_limit) if self.storage_limit else 0.0

    @property
    def transfer_percent(self) -> float:
        return min(100.0, 100.0 * self.transfer_this_month / self.transfer_limit) if self.transfer_limit else 0.0


def usage_summary(user) -> UsageSummary:
    plan = current_plan(user)
    return UsageSummary(
        plan=plan.name,
        storage_used=storage_committed(user),
        storage_limit=plan.max_storage_bytes,
        transfer_this_month=transfer_this_month(user),
        transfer_limit=plan.monthly_transfer_bytes,
        active_jobs=active_job_count(user),
        active_jobs_limit=plan.max_active_jobs,
        max_job_size=plan.max_job_size_bytes,
        retention_days=plan.retention_days,
        allowed_backends=list(plan.allowed_backends),
    )


# --- upgrade requests (the Plans page's "upgrade" button; an operator answers in the admin) -------------


class UpgradePending(Conflict):
    code = "upgrade_pending"


class UpgradeNotNeeded(Conflict):
    code = "upgrade_not_needed"


@transaction.atomic
def request_upgrade(user, plan: Plan) -> UpgradeRequest:
    """Ask the operators for `plan`; audited. One open request per plan; asking for your own plan is refused."""
    current = current_plan(user)
    if current.pk == plan.pk:
        raise UpgradeNotNeeded(f"You are already on the {plan.name} plan.")
    try:
        with transaction.atomic():  # the open-request constraint decides between two clicks at once
            upgrade = UpgradeRequest.objects.create(user=user, plan=plan, from_plan=current.name)
    except IntegrityError:
        raise UpgradePending(f"You already asked for the {plan.name} plan; an operator will answer soon.") from None
    record_audit("plan.upgrade_request", actor=user, target=upgrade, plan=plan.name, from_plan=current.name)
    return upgrade


@transaction.atomic
def answer_upgrade(actor, upgrade: UpgradeRequest, *, assign: bool) -> bool:
    """Operator: assign the requested plan (from now on, no expiry) or decline. False if already answered."""
    updated = UpgradeRequest.objects.filter(pk=upgrade.pk, status=UpgradeRequest.Status.OPEN).update(
        status=UpgradeRequest.Status.ASSIGNED if assign else UpgradeRequest.Status.DECLINED,
        handled_at=timezone.now(), handled_by=actor)
    if not updated:
        return False
    if assign:
        assign_plan(upgrade.user, upgrade.plan, actor=actor, note=f"Upgrade request #{upgrade.pk}")
    record_audit("plan.upgrade_assigned" if assign else "plan.upgrade_declined", actor=actor, target=upgrade,
                 plan=upgrade.plan.name, user=upgrade.user.email)
    return True
