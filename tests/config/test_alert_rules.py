"""The alert rules in docs/prometheus/: promtool accepts them, their unit tests pass, and every metric they
name is one /metrics really serves (so a renamed metric cannot silently disarm an alert)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from downloads import services
from downloads.models import ProcessHeartbeat, Status
from tests.accounts.factories import ApiKeyFactory
from tests.downloads.factories import JobEventFactory, JobFactory

RULES_DIR = Path(__file__).resolve().parents[2] / "docs" / "prometheus"
RULES = RULES_DIR / "flotilla-alerts.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make debs-test` installs Debian's prometheus package"
    return subprocess.run([binary, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_unit_tests_pass():
    result = promtool("test", "rules", "flotilla-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_every_metric_the_rules_name_is_served(client, admin_user, user, settings, django_capture_on_commit_callbacks):
    # Something of everything, so that label-less families and in-process series all appear.
    now = timezone.now()
    for kind, name, info in (("worker", "worker@a:1", {}), ("engine", "engine@a", {"torrents": 1}),
                             ("web", "web@a:2", {"cursor": 0, "last_lag_ms": 1.0})):
        ProcessHeartbeat.objects.create(kind=kind, name=name, last_seen=now, started_at=now, info=info)
    JobEventFactory(job=JobFactory(user=user, status=Status.WAITING, backend="seedr", reason_code="seedr_auth_expired"))
    job = JobFactory(user=user, status=Status.DOWNLOADING)
    with django_capture_on_commit_callbacks(execute=True):
        services.change_status(job, Status.FAILED, reason_code="retries_exhausted", reason="gave up")
    assert client.get("/healthz").status_code == 200  # one observed request
    ApiKeyFactory(user=admin_user, raw="flt_rules_admin_key")
    body = client.get("/metrics", HTTP_X_API_KEY="flt_rules_admin_key").content.decode()
    served = {sample.name for family in text_string_to_metric_families(body) for sample in family.samples}
    named = set(re.findall(r"\bflotilla_[a-z_]+", RULES.read_text()))
    assert len(named) >= 15
    assert named - served == set()
