"""Through the spine: a job marked as an audiobook goes processing → completed with the book in the owner's
library (progress on the job's events), fails with `audiobook_<code>` keeping its files, and is retried; a job
that already completed is processed on its own road and stays completed, and so is an engine job seeding under a
tracker's rules (its finish line may never come), which then finds its book made."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings

from audiobooks import services
from audiobooks.models import AudiobookJob, AudiobookSettings
from downloads import finish, postprocessors
from downloads.models import EventKind, Job, JobEvent, Lease, Status
from indexers.models import JobSource
from tests.audiobooks import books
from tests.audiobooks.presets import ensure_mam_rules
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.downloads.runs import run_postprocess
from tests.fakes.audiobookshelf_fake import FakeAudiobookshelf
from tests.indexers.factories import IndexerFactory


def job_with_book(user, source: Path, *, status=Status.TRANSFERRING):
    job = JobFactory(user=user, status=status, backend="seedr", name=source.name)
    shutil.copytree(source, job.data_dir / source.name)
    for path in sorted(p for p in (job.data_dir).rglob("*") if p.is_file()):
        JobFileFactory(job=job, path=path.relative_to(job.data_dir).as_posix(), size_bytes=path.stat().st_size)
    return job


def library_of(user) -> Path:
    return Path(settings.AUDIOBOOK_LIBRARY_ROOT) / str(user.pk)


def test_the_post_processor_is_registered():
    assert "audiobook" in postprocessors.registered()


@pytest.mark.django_db
def test_a_marked_job_reaches_completed_through_processing_and_the_book_is_published(user, odd_book, settings):
    settings.PROGRESS_EVENT_INTERVAL = 0
    job = job_with_book(user, odd_book)
    services.mark(user, job, title="The Tones", authors=["Ann Author"], narrators=["Ned"], series="Sounds",
                  sequence="1", year=1999, description="Beeps.")
    before = books.tree_digest(job.data_dir)
    finish.finish(job)
    job.refresh_from_db()
    assert (job.status, job.reason) == (Status.PROCESSING, "Making the audiobook…")

    assert run_postprocess(job.pk) == 1
    job.refresh_from_db()
    assert (job.status, job.reason) == (Status.COMPLETED, "Download complete; making the audiobook done.")
    book = AudiobookJob.objects.get(job=job)
    folder = library_of(user) / "Ann Author" / "Sounds" / "Vol. 1 - 1999 - The Tones {Ned}"
    assert (book.state, book.published_path, book.chapters) == ("published", str(folder), 3)
    assert (folder / "The Tones.m4b").is_file() and (folder / "desc.txt").read_text() == "Beeps."
    assert abs(book.duration_seconds - 4.7527) < 0.001
    assert books.tree_digest(job.data_dir) == before  # the seeding files: same bytes, inodes, links

    messages = [e.data["message"] for e in JobEvent.objects.filter(job=job, kind=EventKind.PROGRESS)
                .order_by("id")]
    assert messages[0] == "checking 0/3" and "merging 2/3" in messages and messages[-1] == "publishing"
    assert [e.data["postprocessor"] for e in JobEvent.objects.filter(job=job, kind=EventKind.PROGRESS)] == (
        ["audiobook"] * len(messages))


@pytest.mark.django_db
def test_a_failing_book_fails_the_job_keeps_the_files_and_is_retried(user, tmp_path):
    src = tmp_path / "dl" / "Broken"
    books.tone(src / "01.mp3", 1.0)
    (src / "02.mp3").write_bytes(b"not audio at all" * 100)
    job = job_with_book(user, src)
    services.mark(user, job)
    finish.finish(job)
    run_postprocess(job.pk)
    job.refresh_from_db()
    book = AudiobookJob.objects.get(job=job)
    assert (job.status, job.reason_code) == (Status.FAILED, "audiobook_bad_file")
    assert job.reason.startswith("Broken/02.mp3: not readable audio")
    assert (book.state, book.error_code) == ("failed", "audiobook_bad_file")
    assert (job.data_dir / "Broken" / "02.mp3").exists()
    assert list(library_of(user).iterdir()) == []

    AudiobookJob.objects.filter(pk=book.pk).update(accept_damaged=True)
    book.refresh_from_db()
    services.retry(user, book)
    job.refresh_from_db()
    assert job.status == Status.PROCESSING
    assert run_postprocess(job.pk) == 1
    job.refresh_from_db()
    book.refresh_from_db()
    assert (job.status, book.state) == (Status.COMPLETED, "published")
    assert book.warnings == ["left out Broken/02.mp3: not readable audio: "
                             + book.warnings[0].split("not readable audio: ", 1)[1]]


@pytest.mark.django_db
def test_a_completed_job_is_processed_on_its_own_and_audiobookshelf_is_asked_to_scan(user, odd_book):
    job = job_with_book(user, odd_book, status=Status.COMPLETED)
    with FakeAudiobookshelf(libraries={"lib1": library_of(user)}, tokens={"tok": True}) as abs_server:
        services.update_settings(user, abs_url=abs_server.url, abs_token="tok", abs_library_id="lib1")
        book = services.mark(user, job, title="Tones", authors=["Jane Doe"], narrators=["Nar Rator"])
        assert book.state == "processing"
        holder = Lease.objects.get(name=f"audiobook.{job.pk}").holder
        assert services.process_completed(job.pk, holder) == 1
        book.refresh_from_db()
        job.refresh_from_db()
        assert (job.status, book.state, book.scan_status) == (Status.COMPLETED, "published", "scan requested")
        assert abs_server.scans == ["lib1"]
        [item] = abs_server.items["lib1"]
        assert item["media"]["metadata"] == {"title": "Tones", "subtitle": None, "authorName": "Jane Doe",
                                             "narratorName": "Nar Rator", "seriesName": "",
                                             "publishedYear": "2001"}
    assert AudiobookSettings.objects.get(user=user).abs_token == "tok"  # stored encrypted, read back


@pytest.mark.django_db
def test_marking_checks_owner_state_and_duplicates(user, other_user, odd_book):
    from config.errors import DomainError

    job = job_with_book(user, odd_book, status=Status.DOWNLOADING)
    with pytest.raises(DomainError) as foreign:
        services.mark(other_user, job)
    assert foreign.value.code == "not_found"
    assert services.mark(user, job).state == "waiting"
    with pytest.raises(DomainError) as twice:
        services.mark(user, job)
    assert twice.value.code == "already_audiobook"
    failed = JobFactory(user=user, status=Status.CANCELLED)
    with pytest.raises(DomainError) as cancelled:
        services.mark(user, failed)
    assert cancelled.value.code == "illegal_transition"


def tracker_seeding_job(user, source: Path, *, kind: str = "myanonamouse"):
    """A job grabbed from `kind`'s indexer, on the built-in engine, still downloading."""
    ensure_mam_rules()
    job = job_with_book(user, source, status=Status.DOWNLOADING)
    Job.objects.filter(pk=job.pk).update(backend="engine", is_private=True)  # a private tracker's torrent
    indexer = IndexerFactory(owner=user, kind=kind)
    JobSource.objects.create(job=job, indexer=indexer, indexer_name=indexer.name, title=source.name,
                             guid="https://www.myanonamouse.net/t/1")
    job.refresh_from_db()
    return job


@pytest.mark.django_db
def test_a_job_seeding_under_a_trackers_rules_is_made_into_a_book_while_it_seeds(user, odd_book):
    job = tracker_seeding_job(user, odd_book)
    book = services.mark(user, job, title="Tones", authors=["Jane Doe"])
    assert book.state == "waiting" and services.sweep() == 0  # still downloading

    # The engine has the whole download and seeds on for the tracker (maybe for ever: keep_seeding).
    Job.objects.filter(pk=job.pk).update(status=Status.SEEDING)
    before = books.tree_digest(job.data_dir)
    assert services.sweep() == 1 and services.sweep() == 0  # enqueued once (its lease is reserved)
    holder = Lease.objects.get(name=f"audiobook.{job.pk}").holder
    assert services.process_completed(job.pk, holder) == 1
    book.refresh_from_db()
    job.refresh_from_db()
    assert (book.state, job.status) == ("published", Status.SEEDING)
    assert books.tree_digest(job.data_dir) == before  # the seeding files: only read
    published = book.published_path

    # Its seeding ends one day (a release by policy): the finish line finds the book made.
    finish.finish(job)
    assert run_postprocess(job.pk) == 1
    job.refresh_from_db()
    book.refresh_from_db()
    assert (job.status, book.state, book.published_path) == (Status.COMPLETED, "published", published)
    assert [p.name for p in Path(published).parent.iterdir()] == [Path(published).name], "one book, not two"


@pytest.mark.django_db
def test_a_seeding_job_without_tracker_rules_waits_for_its_finish_line(user, odd_book):
    job = tracker_seeding_job(user, odd_book, kind="torznab")  # its seeding ends on the plan's limits
    services.mark(user, job)
    Job.objects.filter(pk=job.pk).update(status=Status.SEEDING)
    assert services.sweep() == 0
    assert AudiobookJob.objects.get(job=job).state == "waiting"
