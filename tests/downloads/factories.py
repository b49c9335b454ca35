import hashlib

import factory

from config.crypto import keyed_hash
from downloads.models import Batch, Job, JobEvent, JobFile, Status


def fake_hash(n: int) -> str:
    return hashlib.sha1(f"job-{n}".encode()).hexdigest()


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    user = factory.SubFactory("tests.accounts.factories.UserFactory")
    backend = "engine"


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    user = factory.SubFactory("tests.accounts.factories.UserFactory")
    backend = "engine"
    status = Status.QUEUED
    name = factory.Sequence(lambda n: f"Job {n}")
    info_hash = factory.Sequence(fake_hash)
    info_hash_hmac = factory.LazyAttribute(lambda o: keyed_hash(o.info_hash))
    magnet = factory.LazyAttribute(lambda o: f"magnet:?xt=urn:btih:{o.info_hash}&dn={o.name}")


class JobFileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobFile

    job = factory.SubFactory(JobFactory)
    path = factory.Sequence(lambda n: f"folder/file{n}.bin")
    size_bytes = 1024
    completed_bytes = 1024
    mime_type = "application/octet-stream"


class JobEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobEvent

    job = factory.SubFactory(JobFactory)
    user = factory.SelfAttribute("job.user")
    kind = "message"
    code = "test"
