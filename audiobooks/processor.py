"""The audiobook post-processor on the spine's finish line (registered in AudiobooksConfig.ready())."""

from __future__ import annotations

from audiobooks import services
from audiobooks.models import AudiobookJob
from downloads.models import Job
from downloads.postprocessors import PostProcessor, Report


class AudiobookProcessor(PostProcessor):
    """Takes a job marked as an audiobook (an AudiobookJob row) and publishes the merged, tagged M4B into the
    owner's library; a failure fails the job with `audiobook_<code>` and leaves its files as they were."""

    name = "audiobook"
    label = "Making the audiobook"

    def wants(self, job: Job) -> bool:
        return services.wants(job)

    def run(self, job: Job, report: Report) -> None:
        book = AudiobookJob.objects.select_related("job", "job__user").get(job_id=job.pk)
        if book.state == AudiobookJob.State.PUBLISHED:
            # The chain runs again from the start after a crash: a later post-processor's failure or a
            # killed worker must not publish the book twice (the second would fail on the existing folder).
            return
        services.make(book, lambda done, total, message: report.progress(done, total, message=message))
