"""django-q2 entry points of audiobooks (thin: they call services through the spine's runner wrapper)."""

from __future__ import annotations

from audiobooks import services
from downloads.tasks import task


@task
def process(job_id: int, holder: str | None = None) -> int:
    return services.process_completed(job_id, holder)


@task
def sweep() -> int:
    return services.sweep()
