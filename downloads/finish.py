"""The finish line: the only place a job becomes COMPLETED.

`finish(job)` is called once a job's files are home (by the bring-home runner, or by a backend whose files
never move: the engine after seeding, a server without a path mapping). It asks the post-processor
registry which post-processors want the job: if none does the job completes now; otherwise the job is
`processing` and `run_postprocess` (a worker task, under the job's `postprocess.<id>` lease) runs each in
its `order`, then completes the job, or fails it at the first that fails. A worker killed mid-run stops
renewing the lease; `sweep_processing` (scheduled) enqueues the run again once it expired. A failed
post-processing can be retried from the admin.
"""

from __future__ import annotations

import logging

from accounts.audit import record_audit
from config.errors import Conflict
from config.tasks import enqueue
from downloads import backends, leases, postprocessors, runs
from downloads import services as jobs
from downloads.models import EventKind, IllegalTransition, Job, JobEvent, Status

log = logging.getLogger(__name__)

POSTPROCESS = "postprocess"  # lease kind: postprocess.<job id>
TASK = "downloads.tasks.postprocess"
POSTPROCESS_CRASHED = "postprocess_crashed"


def finish(job: Job, *, reason_code: str = "done", reason: str = "Download complete.",
           event_data: dict | None = None, **fields) -> Job:
    """The files are home: complete the job, or hand it to the post-processors that want it."""
    processors = postprocessors.chain(job)
    if not processors:
        return complete(job, reason_code=reason_code, reason=reason, event_data=event_data, **fields)
    # The job leaves its backend's hands (an engine must not take a processing job back into its session).
    jobs.change_status(job, Status.PROCESSING, reason_code="processing", reason=f"{processors[0].label}…",
                       event_data={**(event_data or {}), **_names(processors)}, claimed_by="",
                       claimed_at=None, **fields)
    _enqueue(job.pk)
    return job


def complete(job: Job, *, reason_code: str = "done", reason: str = "Download complete.",
             event_data: dict | None = None, **fields) -> Job:
    """The one write of COMPLETED in the code base (a test greps for others)."""
    fields.setdefault("progress", 1.0)
    jobs.change_status(job, Status.COMPLETED, reason_code=reason_code, reason=reason, event_data=event_data,
                       **fields)
    backend = backends.get_backend(job.backend)
    if backend is not None and not backend.pulls_jobs:
        # A slot is free: the user's next queued job may start now rather than at the next tick.
        enqueue("downloads.tasks.dispatch", group="dispatch")
    return job


def _names(processors: list[postprocessors.PostProcessor]) -> dict:
    """Event data naming the chain: `postprocessor` the first (as before chains), `postprocessors` all."""
    return {"postprocessor": processors[0].name, "postprocessors": [p.name for p in processors]}


def _labels(processors: list[postprocessors.PostProcessor]) -> str:
    return ", ".join(p.label.lower() for p in processors)


def _enqueue(job_id: int) -> bool:
    holder = runs.reserve(POSTPROCESS, job_id)
    if holder is None:
        return False  # a run holds the job
    enqueue(TASK, job_id, holder, group=POSTPROCESS)
    return True


def run_postprocess(job_id: int, holder: str | None = None) -> int:
    """The `downloads.tasks.postprocess` task: one run under the job's lease. Returns 1 when completed."""
    job = Job.objects.select_related("user").filter(pk=job_id).first()
    if job is None or job.status != Status.PROCESSING:
        return 0
    with runs.holding(POSTPROCESS, job, holder or leases.new_holder()) as held:
        if not held:
            return 0  # another worker runs it
        processors = postprocessors.chain(job)
        if not processors:  # turned off meanwhile: nothing left to do
            return _ended(complete, job)
        for processor in processors:
            try:
                processor.run(job, postprocessors.Report(job, processor))
            except runs.JobMoved:
                log.info("post-processing stopped: the job changed", extra={"job": job.pk})
                return 0
            except postprocessors.PostProcessError as exc:
                return _ended(jobs.fail, job, exc.code, exc.message, postprocessor=processor.name) and 0
            except Exception:
                log.exception("post-processor crashed", extra={"job": job.pk, "postprocessor": processor.name})
                return _ended(jobs.fail, job, POSTPROCESS_CRASHED, f"{processor.label} failed unexpectedly; "
                              "retry it from the admin.", postprocessor=processor.name) and 0
        return _ended(complete, job, reason=f"Download complete; {_labels(processors)} done.",
                      event_data=_names(processors))


def _ended(action, job: Job, *args, **kwargs) -> int:
    """A final status change that may lose a race with the user (a cancel): the other change stands."""
    try:
        action(job, *args, **kwargs)
    except (jobs.StaleJob, IllegalTransition):
        log.info("post-processing: job changed meanwhile", extra={"job": job.pk})
        return 0
    return 1


def sweep_processing() -> int:
    """Enqueue the post-processing of jobs nobody runs (a killed worker's lease expired). Returns enqueued."""
    ids = Job.objects.filter(status=Status.PROCESSING).values_list("pk", flat=True)
    return sum(_enqueue(job_id) for job_id in ids)


def failed_in_processing(job: Job) -> bool:
    """Whether the job's last status change was a post-processor failing it."""
    last = (JobEvent.objects.filter(job_id=job.pk, kind=EventKind.STATUS).order_by("-id")
            .values_list("data", flat=True).first())
    return job.status == Status.FAILED and bool(last) and last.get("previous") == Status.PROCESSING


def retry_postprocess(actor, job: Job) -> Job:
    """Admin: run the post-processing of a job it failed again (the files are still home)."""
    if not failed_in_processing(job) or job.data_deleted_at is not None:
        raise Conflict("Only a job whose post-processing failed (files kept) can be post-processed again.",
                       code="illegal_transition")
    processors = postprocessors.chain(job)
    label = processors[0].label if processors else "Post-processing"
    jobs.change_status(job, Status.PROCESSING, reason_code="postprocess_retried", reason=f"{label} (retried)…",
                       finished_at=None, event_data=_names(processors) if processors else {"postprocessor": ""})
    record_audit("job.postprocess_retry", actor=actor, target=job)
    _enqueue(job.pk)
    return job
