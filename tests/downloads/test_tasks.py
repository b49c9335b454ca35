import datetime as dt

import pytest
from django.utils import timezone
from django_q.models import Schedule

from downloads import heartbeats, tasks
from downloads.models import JobEvent, ProcessHeartbeat
from downloads.schedules import SCHEDULES, ensure_schedules
from tests.downloads.factories import JobEventFactory, JobFactory


@pytest.mark.django_db
def test_prune_removes_only_old_progress_ticks(settings):
    settings.PROGRESS_EVENT_RETENTION_HOURS = 24
    job = JobFactory()
    old = timezone.now() - dt.timedelta(hours=25)
    old_tick = JobEventFactory(job=job, kind="progress", created_at=old)
    old_status = JobEventFactory(job=job, kind="status", code="downloading", created_at=old)
    new_tick = JobEventFactory(job=job, kind="progress")
    assert tasks.prune_progress_events() == 1
    assert set(JobEvent.objects.values_list("id", flat=True)) == {old_status.pk, new_tick.pk}
    assert not JobEvent.objects.filter(pk=old_tick.pk).exists()


@pytest.mark.django_db
def test_schedules_exist_after_migrate_and_are_idempotent():
    ensure_schedules()
    ensure_schedules()
    assert set(Schedule.objects.values_list("name", flat=True)) >= set(SCHEDULES)
    assert Schedule.objects.filter(name="flotilla.dispatch").count() == 1


@pytest.mark.django_db
def test_dispatch_task_beats_as_worker_and_stale_heartbeats_are_forgotten():
    tasks.dispatch()
    beat = ProcessHeartbeat.objects.get(kind="worker")
    ProcessHeartbeat.objects.filter(pk=beat.pk).update(last_seen=timezone.now() - dt.timedelta(days=2))
    heartbeats.beat("engine", name="engine@fresh")
    assert tasks.forget_stale_heartbeats() == 1
    assert list(ProcessHeartbeat.objects.values_list("name", flat=True)) == ["engine@fresh"]


@pytest.mark.django_db
def test_tasks_log_with_the_enqueuing_request_id(caplog):
    from config.logging import request_id_var

    with caplog.at_level("DEBUG", logger="downloads.tasks"):
        tasks.dispatch(request_id="req-abc")
        tasks.prune_progress_events()
    done = [r for r in caplog.records if r.getMessage() == "task done"]
    # The filter that stamps ids runs on the handler; read the id the task set while it ran.
    assert [r.task for r in done] == ["dispatch", "prune_progress_events"]
    assert request_id_var.get() == "-"  # restored after each task


def test_task_runs_under_the_given_request_id():
    from config.logging import request_id_var

    @tasks.task
    def probe() -> int:
        return len(request_id_var.get())

    assert probe(request_id="req-abc") == len("req-abc")
    assert probe() == len("task-") + 16


def test_task_failures_propagate_and_are_logged(caplog):
    @tasks.task
    def broken() -> int:
        raise RuntimeError("boom")

    with caplog.at_level("ERROR"), pytest.raises(RuntimeError):
        broken()
    assert "task failed" in caplog.text
