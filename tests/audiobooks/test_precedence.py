"""Post-processors form a chain: every one that wants a job runs, in its `order`. With CHECKSUM_MANIFEST on, a
job marked as an audiobook gets both its manifest and its book (before, the first registered post-processor
that wanted the job took it alone and no audiobook was ever made)."""

from __future__ import annotations

import pytest

from audiobooks import services
from audiobooks.models import AudiobookJob
from downloads import finish, postprocessors
from downloads.models import EventKind, JobEvent, Status
from downloads.postprocessors import manifest_path
from tests.audiobooks import books
from tests.audiobooks.test_processor import job_with_book, library_of
from tests.downloads.runs import run_postprocess


class Failing(postprocessors.PostProcessor):
    name, label, order = "zz_failing", "Failing step", 90

    def wants(self, job):
        return True

    def run(self, job, report):
        raise postprocessors.PostProcessError("Refused on purpose.", code="refused")


def test_the_chain_is_ordered_by_order_then_name_not_by_registration():
    class Early(Failing):
        name, order = "early", 1

    chain_of = [p.name for p in sorted([Failing(), Early(), *postprocessors.registered().values()],
                                       key=lambda p: (p.order, p.name))]
    assert chain_of.index("early") < chain_of.index("checksum_manifest") < chain_of.index("audiobook") < (
        chain_of.index("zz_failing"))


@pytest.mark.django_db
def test_checksum_manifest_on_does_not_hide_the_audiobook(user, tmp_path, settings):
    settings.CHECKSUM_MANIFEST = True
    settings.PROGRESS_EVENT_INTERVAL = 0
    src = tmp_path / "dl" / "Two Tones"
    books.tone(src / "01.mp3", 1.0)
    books.tone(src / "02.mp3", 1.0, freq=700)
    job = job_with_book(user, src)
    services.mark(user, job, title="Two Tones", authors=["Ann Author"])
    finish.finish(job)
    entered = JobEvent.objects.get(job_id=job.pk, kind=EventKind.STATUS, code=Status.PROCESSING)
    assert entered.data["postprocessors"] == ["checksum_manifest", "audiobook"]

    assert run_postprocess(job.pk) == 1
    job.refresh_from_db()
    assert (job.status, job.reason) == (
        Status.COMPLETED, "Download complete; checksum manifest, making the audiobook done.")
    assert "Two Tones/01.mp3" in manifest_path(job).read_text()
    book = AudiobookJob.objects.get(job=job)
    assert (book.state, book.chapters) == ("published", 2)
    assert (library_of(user) / "Ann Author" / "Two Tones" / "Two Tones.m4b").is_file()
    ran = list(JobEvent.objects.filter(job_id=job.pk, kind=EventKind.PROGRESS).order_by("id")
               .values_list("data__postprocessor", flat=True))
    assert ran.index("audiobook") > ran.index("checksum_manifest") and ran[-1] == "audiobook"


@pytest.mark.django_db
def test_a_later_failure_fails_the_job_and_a_retry_does_not_publish_twice(user, tmp_path):
    src = tmp_path / "dl" / "One Tone"
    books.tone(src / "01.mp3", 1.0)
    job = job_with_book(user, src)
    services.mark(user, job, title="One Tone", authors=["Ann Author"])
    failing = postprocessors.register(Failing())
    try:
        finish.finish(job)
        run_postprocess(job.pk)
        job.refresh_from_db()
        assert (job.status, job.reason_code) == (Status.FAILED, "refused")
        assert AudiobookJob.objects.get(job=job).state == "published"  # it ran first, its book stands
    finally:
        postprocessors.unregister(failing.name)
    finish.retry_postprocess(user, job)
    assert run_postprocess(job.pk) == 1  # the book is not made again over its own folder
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert [p.name for p in (library_of(user) / "Ann Author").iterdir()] == ["One Tone"]
