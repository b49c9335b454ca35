"""The worker's part of the spine's runs, in-process: run the bring-home or post-processing run that was
reserved (enqueued) for a job, with the lease holder the enqueue took, as the task would."""

from __future__ import annotations

from downloads import bring_home, finish
from downloads.models import Job, Lease, Status


def _holder(kind: str, job_id: int) -> str | None:
    lease = Lease.objects.filter(name=f"{kind}.{job_id}").first()
    return lease.holder if lease else None


def run_bring_home(job_id: int) -> int:
    return bring_home.run(job_id, _holder(bring_home.BRING_HOME, job_id))


def run_postprocess(job_id: int) -> int:
    return finish.run_postprocess(job_id, _holder(finish.POSTPROCESS, job_id))


def run_due(**filters) -> int:
    """Every transferring, then every processing job matching `filters`, once (what the queue would run)."""
    done = 0
    for job_id in Job.objects.filter(status=Status.TRANSFERRING, **filters).values_list("pk", flat=True):
        done += run_bring_home(job_id)
    for job_id in Job.objects.filter(status=Status.PROCESSING, **filters).values_list("pk", flat=True):
        done += run_postprocess(job_id)
    return done
