"""The tracker's cover of a grabbed book (MyAnonamouse's poster), for a download without one: fetched with the
user's indexer session from the tracker's own cover host only, read capped in bytes; the pipeline then checks
its pixel count from the header and decodes and re-encodes it (audiobooks/pipeline.py `_cover`)."""

from __future__ import annotations

from django.conf import settings

from audiobooks import trackers
from audiobooks.media import MediaError
from audiobooks.models import AudiobookJob
from indexers.clients import ClientError
from indexers.models import JobSource


def fetch_limit() -> int:
    """Bytes read at most: a scaled JPEG must end under AUDIOBOOK_COVER_MAX_BYTES; its source may be larger."""
    return settings.AUDIOBOOK_COVER_MAX_BYTES * 4


def from_tracker(book: AudiobookJob) -> bytes | None:
    """The bytes of the book's tracker cover (`cover_url`, from the grab), None when it has none; raises
    MediaError (the book goes on without a cover, with a warning) when the tracker does not hand it over."""
    if not book.cover_url:
        return None
    source = JobSource.objects.select_related("indexer").filter(job_id=book.job_id).first()
    if source is None or source.indexer is None or not source.indexer.enabled:
        raise MediaError("the indexer it was grabbed from is gone", code="cover_unavailable")

    def fetch(client, pace) -> bytes:
        if not hasattr(client, "cover"):
            raise ClientError(f"{source.indexer.kind} has no covers.", code="unsupported", permanent=True)
        pace()
        return client.cover(book.cover_url, max_bytes=fetch_limit())

    try:
        return trackers.call(source.indexer, fetch)
    except ClientError as exc:
        raise MediaError(f"the tracker's cover was not fetched ({exc.message})", code="cover_unavailable") from exc
