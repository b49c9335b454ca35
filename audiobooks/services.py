"""Audiobooks: marking a job as a book, making the book (as the spine's post-processor, or on its own for a
job that already completed), retrying, the user's library and Audiobookshelf settings.

Two roads into `make()`, one pipeline:
- a job marked before its download finished: the spine's finish line hands it to `AudiobookProcessor`
  (job `processing` → `completed`, or `failed` with `audiobook_<code>`; retried by the admin or the page);
- a job already `completed` ("process as audiobook"): the task `audiobooks.tasks.process` runs it under the
  job's `audiobook.<id>` lease; the job stays completed, the audiobook row says how it went.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import record_audit
from audiobooks import abs as audiobookshelf
from audiobooks import covers, library, pipeline
from audiobooks.merge import BookError
from audiobooks.models import AudiobookJob, AudiobookSettings
from config.errors import Conflict, DomainError
from config.tasks import enqueue
from downloads import backends, finish, leases, runs
from downloads.models import TERMINAL, Job, Status
from downloads.postprocessors import PostProcessError

log = logging.getLogger(__name__)

LEASE = "audiobook"  # lease kind of a standalone run: audiobook.<job id>
LIBRARY_CLAIMS = "audiobooks.library_claims"  # leases.serialize: one library-folder check-and-save at a time
TASK = "audiobooks.tasks.process"
META_FIELDS = ("title", "authors", "narrators", "series", "sequence", "year", "genre", "description", "asin",
               "isbn", "cover_url")
ROW_WRITE_SECONDS = 1.0


# --- marking and retrying ------------------------------------------------------------------------------


def mark_job(user, job_id: int, **options) -> AudiobookJob:
    """`mark` for the API and pages: the job is looked up among the user's own (another's is a 404)."""
    job = Job.objects.for_user(user).filter(pk=job_id).first()
    if job is None:
        raise DomainError("No such job.", code="not_found", http_status=404)
    return mark(user, job, **options)


def mark(user, job: Job, *, accept_damaged: bool = False, keep_both: bool = False, **meta) -> AudiobookJob:
    """Make `job` an audiobook: processed when it finishes, or now if it already completed."""
    if job.user_id != user.pk:
        raise DomainError("No such job.", code="not_found", http_status=404)
    if AudiobookJob.objects.filter(job=job).exists():
        raise Conflict("This job is already an audiobook.", code="already_audiobook")
    if job.status in TERMINAL and job.status != Status.COMPLETED:
        raise Conflict("Only a running or completed download can become an audiobook.", code="illegal_transition")
    if job.status == Status.COMPLETED and job.data_deleted_at is not None:
        raise Conflict("The download's files were deleted.", code="files_missing")
    fields = {k: v for k, v in meta.items() if k in META_FIELDS}
    with transaction.atomic():
        book = AudiobookJob.objects.create(job=job, accept_damaged=accept_damaged, keep_both=keep_both, **fields)
        record_audit("audiobook.mark", actor=user, target=book, job=job.pk, fields=sorted(fields))
        if job.status == Status.COMPLETED or builds_while_seeding(job):
            _enqueue(book)
    return book


def builds_while_seeding(job: Job) -> bool:
    """A job still seeding with its backend under a tracker's rules (the built-in engine) takes the finish line
    only when that seeding ends — never, while the rules keep it seeding — so its book is made from the
    seeding files meanwhile (they are only read); the finish line then finds it published. A server's job
    takes the finish line once its files are home, whatever the server goes on seeding."""
    return job.status == Status.SEEDING and job.data_deleted_at is None and backends.keeps_seeding(job)


def _ready(job: Job) -> bool:
    """The job's files are there to make its book from, outside the finish line."""
    return (job.status == Status.COMPLETED and job.data_deleted_at is None) or builds_while_seeding(job)


AUDIOBOOK_CATEGORY = 3030  # Newznab Audio/Audiobook


def adopt_grab(job: Job, source) -> AudiobookJob | None:
    """A grab listener (indexers.services.on_grab): an audiobook result grabbed by a user who asked for it
    (`process_grabs`) becomes a book, with the indexer's metadata (MyAnonamouse's authors, narrators, series).
    Runs in the grab's transaction; any other grab is left alone."""
    result = source.result
    if result is None or AUDIOBOOK_CATEGORY not in (result.categories or []) or not settings.AUDIOBOOK_LIBRARY_ROOT:
        return None
    if not AudiobookSettings.objects.filter(user_id=job.user_id, process_grabs=True).exists():
        return None
    book = AudiobookJob.objects.create(job=job, **grab_metadata(result.extra or {}))
    record_audit("audiobook.mark", actor=job.user, target=book, job=job.pk, grab=source.pk)
    return book


def grab_metadata(extra: dict) -> dict:
    """The book's fields from a result's `extra` (indexers.clients.myanonamouse); a series number that is not
    one position ("01-16, 13.5") is left out."""
    series = next((s for s in extra.get("series") or [] if isinstance(s, dict) and s.get("name")), {})
    number = str(series.get("number") or "").strip()
    names = lambda key: [str(n)[:200] for n in extra.get(key) or [] if n][:10]  # noqa: E731
    return {"title": str(extra.get("book_title") or "")[:500], "authors": names("authors"),
            "narrators": names("narrators"), "series": str(series.get("name") or "")[:300],
            "sequence": number if re.fullmatch(r"\d{1,4}(\.\d{1,2})?", number) else "",
            "cover_url": _http_url(extra.get("cover_url"))}


def _http_url(value) -> str:
    text = str(value or "")
    return text if len(text) <= 1000 and text.startswith(("https://", "http://")) else ""


def retry(user, book: AudiobookJob) -> AudiobookJob:
    """Run a failed book again (the download's files are still there)."""
    job = book.job
    if book.state != AudiobookJob.State.FAILED:
        raise Conflict("Only a book that failed can be retried.", code="illegal_transition")
    if job.status == Status.FAILED and finish.failed_in_processing(job):
        finish.retry_postprocess(user, job)
    elif _ready(job):
        _enqueue(book)
    else:
        raise Conflict("The download's files are no longer there to retry from.", code="illegal_transition")
    _save(book, state=AudiobookJob.State.PROCESSING, error_code="", error="", step="", step_done=0, step_total=0)
    record_audit("audiobook.retry", actor=user, target=book, job=job.pk)
    return book


def _enqueue(book: AudiobookJob) -> bool:
    _save(book, state=AudiobookJob.State.PROCESSING)
    holder = runs.reserve(LEASE, book.job_id)
    if holder is None:
        return False
    enqueue(TASK, book.job_id, holder, group=LEASE)
    return True


def process_completed(job_id: int, holder: str | None = None) -> int:
    """The `audiobooks.tasks.process` task: make the book of a job outside its finish line (marked after it
    completed, or seeding under a tracker's rules: `builds_while_seeding`)."""
    book = AudiobookJob.objects.select_related("job", "job__user").filter(job_id=job_id).first()
    if book is None or not _ready(book.job) or book.state != AudiobookJob.State.PROCESSING:
        return 0
    with runs.holding(LEASE, book.job, holder or leases.new_holder()) as held:
        if not held:
            return 0
        try:
            make(book, lambda done, total, message: runs.keep_alive())
        except runs.JobMoved:
            return 0
        except PostProcessError:
            return 0
    return 1


def sweep() -> int:
    """Enqueue standalone books nobody runs (a killed worker: their lease expired), and the books of jobs that
    seed under a tracker's rules once their download is complete (`builds_while_seeding`)."""
    stalled = AudiobookJob.objects.filter(state=AudiobookJob.State.PROCESSING, job__status=Status.COMPLETED)
    seeding = [book for book in AudiobookJob.objects.filter(
        state__in=(AudiobookJob.State.WAITING, AudiobookJob.State.PROCESSING), job__status=Status.SEEDING,
    ).select_related("job") if builds_while_seeding(book.job)]
    return sum(_enqueue(book) for book in [*stalled, *seeding])


# --- making the book -------------------------------------------------------------------------------------


def make(book: AudiobookJob, progress: Callable[[int, int, str], None]) -> AudiobookJob:
    """Run the pipeline for `book`, recording each step on its row; raises PostProcessError on failure."""
    _save(book, state=AudiobookJob.State.PROCESSING, error_code="", error="", warnings=[])
    last_write = [0.0, ""]

    def tell(step: str, done: int, total: int, overall: int, overall_total: int) -> None:
        message = f"{step} {done}/{total}" if step in ("checking", "merging") else step
        now = time.monotonic()
        if step != last_write[1] or done >= total or now - last_write[0] >= ROW_WRITE_SECONDS:
            last_write[:] = [now, step]
            _save(book, step=step, step_done=done, step_total=total)
        progress(overall, overall_total, message)

    try:
        root = library.user_library(library_dir(book.job.user))
        outcome = pipeline.make_book(
            source=book.job.data_dir, library_root=root, job_id=book.job_id,
            meta={k: getattr(book, k) for k in META_FIELDS}, steps=pipeline.Steps(tell), tick=runs.keep_alive,
            accept_damaged=book.accept_damaged, keep_both=book.keep_both,
            tracker_cover=lambda: covers.from_tracker(book))
    except (BookError, library.LibraryError) as exc:
        code = f"audiobook_{exc.code}"
        _save(book, state=AudiobookJob.State.FAILED, error_code=code, error=exc.message[:500])
        raise PostProcessError(exc.message[:500], code=code) from exc
    except runs.JobMoved:
        _save(book, state=AudiobookJob.State.FAILED, error_code="audiobook_stopped", error="The job was stopped.")
        raise
    except Exception:
        _save(book, state=AudiobookJob.State.FAILED, error_code="audiobook_crashed",
              error="Making the book failed unexpectedly; retry it.")
        raise
    _save(book, state=AudiobookJob.State.PUBLISHED, published_path=str(outcome.folder),
          published_at=timezone.now(), duration_seconds=outcome.book.samples / outcome.book.rate,
          chapters=len(outcome.book.chapters), warnings=outcome.warnings[:50], step="published",
          scan_status=_scan(book.job.user))
    return book


def _scan(user) -> str:
    """Ask the user's Audiobookshelf to scan; its failure never fails the book (it is published)."""
    prefs = AudiobookSettings.objects.filter(user=user).first()
    if prefs is None or not (prefs.abs_url and prefs.abs_token and prefs.abs_library_id):
        return ""
    try:
        return audiobookshelf.request_scan(prefs.abs_url, prefs.abs_token, prefs.abs_library_id)
    except audiobookshelf.AbsError as exc:
        log.warning("audiobookshelf scan failed", extra={"user": user.pk, "error": str(exc)})
        return str(exc)[:200]


def _save(book: AudiobookJob, **fields) -> None:
    for name, value in fields.items():
        setattr(book, name, value)
    AudiobookJob.objects.filter(pk=book.pk).update(updated_at=timezone.now(), **fields)


# --- settings --------------------------------------------------------------------------------------------


def library_dir(user) -> str:
    prefs = AudiobookSettings.objects.filter(user=user).first()
    return (prefs.library_dir if prefs and prefs.library_dir else str(user.pk))


def get_settings(user) -> AudiobookSettings:
    """The user's settings (an unsaved default row when they never saved any: reading writes nothing)."""
    return AudiobookSettings.objects.filter(user=user).first() or AudiobookSettings(user=user)


def update_settings(user, **fields) -> AudiobookSettings:
    """Save the user's library folder (checked to stay inside AUDIOBOOK_LIBRARY_ROOT) and ABS server. A blank
    or absent token keeps the stored one (it is write-only: a form cannot show it back)."""
    if not fields.get("abs_token"):
        fields.pop("abs_token", None)
    with transaction.atomic():
        if "library_dir" in fields:
            # Two users claiming overlapping folders at once must not both pass the check before either saves.
            leases.serialize(LIBRARY_CLAIMS)
            fields["library_dir"] = _check_library_dir(user, (fields["library_dir"] or "").strip().strip("/"))
        prefs, _ = AudiobookSettings.objects.select_for_update().get_or_create(user=user)
        for name, value in fields.items():
            setattr(prefs, name, value)
        prefs.save()
        record_audit("audiobook.settings", actor=user, target=prefs, fields=sorted(fields))
    return prefs


def _check_library_dir(user, relative: str) -> str:
    """The folder a user asks for, normalised (relative to the root, symlinks resolved; "" for their default):
    inside the operator's root (400 `library_outside_root`), not the root itself nor a top-level folder named
    by a number, kept for users' default libraries (400 `library_reserved`), and neither inside, nor holding,
    nor the same as another user's library (409 `library_taken`). Created when free."""
    try:
        path = library.resolve_library(relative or str(user.pk))
        root = library.allowed_root()
    except library.LibraryError as exc:
        raise DomainError(exc.message, code=exc.code) from exc
    if path == root:
        raise DomainError("The library root itself holds every user's library; pick a folder inside it.",
                          code="library_reserved")
    normal = path.relative_to(root).as_posix()
    top = normal.split("/", 1)[0]
    if top.isdigit() and top != str(user.pk):
        raise DomainError("Top-level folders named by a number are kept for users' own default libraries.",
                          code="library_reserved")
    if _taken(user, normal):
        raise Conflict("This folder is, holds or is inside another user's audiobook library; pick another.",
                       code="library_taken")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a name the filesystem refuses (too long, a file in the way, read-only)
        raise DomainError(f"The library folder cannot be created: {exc.strerror}.",
                          code="library_unusable") from exc
    return "" if normal == str(user.pk) else normal


def _taken(user, normal: str) -> bool:
    """Another user's chosen library (stored normalised) is `normal`, an ancestor of it, or inside it. Their
    default folders (their ids, at the top) are refused as reserved before this."""
    parts = normal.split("/")
    ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return AudiobookSettings.objects.exclude(user=user).filter(
        Q(library_dir=normal) | Q(library_dir__startswith=normal + "/") | Q(library_dir__in=ancestors)).exists()


def wants(job: Job) -> bool:
    return settings.AUDIOBOOK_LIBRARY_ROOT != "" and AudiobookJob.objects.filter(job_id=job.pk).exists()
