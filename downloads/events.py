"""Writing JobEvents: the append-only history that is also the websocket outbox.

Producers (web, worker, engine) only write rows; the web process relays them (downloads/relay.py).
Message payloads are typed here so the browser and API clients can rely on their shape.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from downloads.models import EventKind, Job, JobEvent


class ProgressData(TypedDict, total=False):
    status: str
    progress: float
    downloaded_bytes: int
    uploaded_bytes: int
    size_bytes: int | None
    download_rate: int
    upload_rate: int
    eta_seconds: int | None
    peers: int
    seeds: int


class StatusData(TypedDict, total=False):
    status: str
    previous: str
    reason_code: str
    reason: str


class EventMessage(TypedDict):
    id: int
    ts: str
    job: int | None
    kind: Literal["created", "status", "progress", "files", "message", "deleted"]
    code: str
    data: dict


def emit(job: Job, kind: str, code: str = "", data: dict | None = None) -> JobEvent:
    return JobEvent.objects.create(user_id=job.user_id, job_id=job.pk, kind=kind, code=code, data=data or {})


def progress_snapshot(job: Job) -> ProgressData:
    return ProgressData(
        status=job.status,
        progress=round(job.progress, 4),
        downloaded_bytes=job.downloaded_bytes,
        uploaded_bytes=job.uploaded_bytes,
        size_bytes=job.size_bytes,
        download_rate=job.download_rate,
        upload_rate=job.upload_rate,
        eta_seconds=job.eta_seconds,
        peers=job.peers,
        seeds=job.seeds,
    )


def emit_status(job: Job, previous: str, *, extra: dict | None = None) -> JobEvent:
    data = StatusData(status=job.status, previous=previous, reason_code=job.reason_code, reason=job.reason)
    data.update(progress_snapshot(job))
    data.update(extra or {})
    return emit(job, EventKind.STATUS, job.status, data)
