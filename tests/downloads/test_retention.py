"""Retention: the spine removes the files of finished jobs that outlived their owner's plan (billing's policy)."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import AuditLog
from downloads import retention
from downloads.models import JobEvent, Status
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory


@pytest.fixture
def plan(user):
    plan = PlanFactory(retention_days=3)
    PlanAssignmentFactory(user=user, plan=plan)
    return plan


@pytest.mark.django_db
class TestRetention:
    def test_expired_files_removed_and_recorded(self, user, plan):
        old = JobFactory(user=user, status=Status.COMPLETED, finished_at=timezone.now() - dt.timedelta(days=4))
        fresh = JobFactory(user=user, status=Status.COMPLETED, finished_at=timezone.now() - dt.timedelta(days=1))
        running = JobFactory(user=user, status=Status.DOWNLOADING)
        for job in (old, fresh, running):
            job.data_dir.mkdir(parents=True)
            (job.data_dir / "f").write_bytes(b"data")
        assert retention.apply_retention() == 1
        assert not old.data_dir.exists() and fresh.data_dir.exists() and running.data_dir.exists()
        old.refresh_from_db()
        assert old.data_deleted_at is not None
        assert JobEvent.objects.filter(job_id=old.pk, code="data_removed", data__reason_code="retention").exists()
        assert AuditLog.objects.filter(action="job.data_removed", target_id=str(old.pk)).exists()
        assert retention.apply_retention() == 0  # idempotent

    def test_zero_retention_keeps_forever(self, user):
        PlanAssignmentFactory(user=user, plan=PlanFactory(retention_days=0))
        JobFactory(user=user, status=Status.COMPLETED, finished_at=timezone.now() - dt.timedelta(days=999))
        assert retention.apply_retention() == 0
