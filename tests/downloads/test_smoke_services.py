import pytest

from downloads import services
from downloads.models import JobEvent, Status

MAGNET = "magnet:?xt=urn:btih:" + "a" * 40 + "&dn=Sample&tr=http%3A%2F%2F127.0.0.1%3A6970%2Fannounce"


@pytest.mark.django_db(transaction=True)
def test_add_magnet_creates_queued_job_with_created_event(user):
    job = services.add_magnet(user, MAGNET)
    assert job.status == Status.QUEUED
    assert job.name == "Sample"
    assert list(JobEvent.objects.filter(job_id=job.pk).values_list("kind", flat=True)) == ["created"]
