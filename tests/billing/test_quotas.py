import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import AuditLog
from billing import services as billing
from billing.models import UsageDay
from downloads import services
from downloads.models import Job, JobEvent, Status
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory

MAGNET = "magnet:?xt=urn:btih:" + "b" * 40


@pytest.fixture
def plan(user):
    plan = PlanFactory(max_active_jobs=2, max_storage_bytes=10_000, max_job_size_bytes=6_000,
                       monthly_transfer_bytes=50_000, retention_days=3, allowed_backends=["engine"])
    PlanAssignmentFactory(user=user, plan=plan)
    return plan


@pytest.mark.django_db
class TestPlanResolution:
    def test_default_plan_for_new_users(self, user):
        assert billing.current_plan(user).name == "Free"

    def test_current_assignment_wins_and_expired_does_not(self, user):
        gold = PlanFactory(name="Gold")
        PlanAssignmentFactory(user=user, plan=gold, starts_at=timezone.now() - dt.timedelta(days=2),
                              expires_at=timezone.now() - dt.timedelta(days=1))
        assert billing.current_plan(user).name == "Free"
        billing.assign_plan(user, gold, note="upgrade")
        assert billing.current_plan(user).name == "Gold"
        assert AuditLog.objects.filter(action="plan.assign").exists()


@pytest.mark.django_db
class TestChecks:
    def test_backend_not_in_plan(self, user, plan):
        with pytest.raises(billing.QuotaExceeded) as exc:
            services.add_magnet(user, MAGNET, backend="seedr")
        assert exc.value.limit == "allowed_backends"
        assert not Job.objects.exists()

    def test_single_job_size(self, user, plan):
        with pytest.raises(billing.QuotaExceeded) as exc:
            billing.check_size(user, 6_001)
        assert exc.value.limit == "max_job_size_bytes"
        billing.check_size(user, 6_000)

    def test_remaining_storage_counts_unfinished_jobs_at_full_size(self, user, plan):
        JobFactory(user=user, status=Status.DOWNLOADING, size_bytes=5_000, downloaded_bytes=10)
        with pytest.raises(billing.QuotaExceeded) as exc:
            billing.check_size(user, 5_001)
        assert exc.value.limit == "max_storage_bytes"
        billing.check_size(user, 5_000)

    def test_deleted_data_frees_storage(self, user, plan):
        JobFactory(user=user, status=Status.COMPLETED, size_bytes=9_000, data_deleted_at=timezone.now())
        billing.check_size(user, 6_000)

    def test_full_storage_refuses_new_jobs(self, user, plan):
        JobFactory(user=user, status=Status.COMPLETED, size_bytes=10_000)
        with pytest.raises(billing.QuotaExceeded) as exc:
            services.add_magnet(user, MAGNET)
        assert exc.value.limit == "max_storage_bytes"

    def test_monthly_transfer(self, user, plan):
        billing.record_usage(user.pk, downloaded=30_000, delivered=20_000)
        with pytest.raises(billing.QuotaExceeded) as exc:
            services.add_magnet(user, MAGNET)
        assert exc.value.limit == "monthly_transfer_bytes"

    def test_check_transfer_before_a_transfer(self, user, plan):
        billing.record_usage(user.pk, delivered=45_000)
        billing.check_transfer(user, 5_000)
        with pytest.raises(billing.QuotaExceeded):
            billing.check_transfer(user, 5_001)

    def test_last_month_does_not_count(self, user, plan):
        UsageDay.objects.create(user=user, day=billing.month_start() - dt.timedelta(days=1), bytes_downloaded=10**9)
        billing.check_transfer(user, 50_000)

    def test_zero_means_unlimited(self, user):
        PlanAssignmentFactory(user=user, plan=PlanFactory(max_storage_bytes=0, max_job_size_bytes=0,
                                                          monthly_transfer_bytes=0, max_active_jobs=0))
        billing.check_size(user, 10**15)
        billing.check_transfer(user, 10**15)
        assert billing.has_free_slot(user)

    def test_active_slots(self, user, plan):
        JobFactory(user=user, status=Status.DOWNLOADING)
        assert billing.has_free_slot(user)
        JobFactory(user=user, status=Status.SEEDING)
        JobFactory(user=user, status=Status.PAUSED)  # paused holds no slot
        assert not billing.has_free_slot(user)


@pytest.mark.django_db
class TestMetering:
    def test_usage_days_add_up(self, user):
        billing.record_usage(user.pk, downloaded=10, jobs=1)
        billing.record_usage(user.pk, downloaded=5, delivered=7)
        row = UsageDay.objects.get(user=user)
        assert (row.bytes_downloaded, row.bytes_delivered, row.jobs_created) == (15, 7, 1)

    def test_progress_meters_downloaded_delta(self, user):
        job = JobFactory(user=user, status=Status.DOWNLOADING)
        services.record_progress(job, downloaded_bytes=100, progress=0.1)
        services.record_progress(job, downloaded_bytes=250, progress=0.25)
        assert UsageDay.objects.get(user=user).bytes_downloaded == 250

    def test_progress_events_are_coalesced(self, user, settings):
        settings.PROGRESS_EVENT_INTERVAL = 3600
        job = JobFactory(user=user, status=Status.DOWNLOADING)
        written = [services.record_progress(job, progress=p / 10, downloaded_bytes=p) for p in range(1, 6)]
        assert written == [True, False, False, False, False]
        assert JobEvent.objects.filter(job_id=job.pk, kind="progress").count() == 1
        assert Job.objects.get(pk=job.pk).progress == 0.5  # the row always has the latest numbers


@pytest.mark.django_db
class TestSizeKnownLate:
    def test_over_quota_job_fails_with_limit_and_loses_partial_data(self, user, plan):
        job = JobFactory(user=user, status=Status.FETCHING_METADATA, size_bytes=None)
        job.data_dir.mkdir(parents=True)
        (job.data_dir / "partial").write_bytes(b"x")
        assert services.set_size(job, 7_000) is False
        job.refresh_from_db()
        assert job.status == Status.FAILED and job.reason_code == "quota_exceeded"
        event = JobEvent.objects.get(job_id=job.pk, kind="status")
        assert event.data["limit"] == "max_job_size_bytes" and event.code == "failed"
        assert not job.data_dir.exists() and job.data_deleted_at is not None

    def test_within_quota_keeps_going(self, user, plan):
        job = JobFactory(user=user, status=Status.FETCHING_METADATA, size_bytes=None)
        assert services.set_size(job, 5_000) is True
        assert Job.objects.get(pk=job.pk).size_bytes == 5_000
