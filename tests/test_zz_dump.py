import datetime as dt
import pytest
from django.utils import timezone
from downloads.models import ProcessHeartbeat, Status
from tests.downloads.factories import JobFactory, JobEventFactory

@pytest.mark.django_db
def test_dump(client, admin_user):
    client.force_login(admin_user)
    ProcessHeartbeat.objects.create(kind="engine", name="engine@h:1", last_seen=timezone.now()-dt.timedelta(seconds=300), info={"jobs": 3})
    ProcessHeartbeat.objects.create(kind="web", name="web@h:2", info={"cursor": 1, "last_lag_ms": 4.2})
    j = JobFactory(status=Status.FAILED, finished_at=timezone.now(), reason_code="x", reason="Tracker said no")
    JobEventFactory(job=j); JobEventFactory(job=j)
    open("/tmp/health.html","w").write(client.get("/admin/health/").content.decode())
    open("/tmp/job.html","w").write(client.get(f"/admin/downloads/job/{j.pk}/change/").content.decode())
    open("/tmp/jobs.html","w").write(client.get(f"/admin/downloads/job/").content.decode())
