import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.models import AuditLog
from config.logging import JsonFormatter, RequestIdFilter

ROOT = Path(__file__).resolve().parents[2]


def run_manage(args, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY",
                                                             "FIELD_ENCRYPTION_KEY", "LOOKUP_HASH_KEY"}}
    env.update(DATA_DIR=str(tmp_path / "data"), **env_extra)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_first_run_generates_keys_loudly_and_reuses_them(tmp_path):
    first = run_manage(["check"], {}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "BACK THIS FILE UP" in first.stderr and "FIELD_ENCRYPTION_KEY" in first.stderr
    key_file = tmp_path / "data" / "field_encryption.key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    key = key_file.read_text()
    second = run_manage(["check"], {}, tmp_path)
    assert "BACK THIS FILE UP" not in second.stderr
    assert key_file.read_text() == key


def test_deploy_check_is_clean_behind_https(tmp_path):
    result = run_manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {"HTTPS": "1", "ALLOWED_HOSTS": "flotilla.example.com", "SITE_URL": "https://flotilla.example.com",
         "SECRET_KEY": "x" * 60 + "-a-long-random-secret-key-value"},
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_is_not_debug_and_cookies_are_safe(settings):
    from django.conf import settings as s

    assert s.DEBUG is False
    assert s.SESSION_COOKIE_HTTPONLY and s.SESSION_COOKIE_SAMESITE == "Lax" and s.CSRF_COOKIE_SAMESITE == "Lax"


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.job = 7
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "hello world" and line["job"] == 7 and "request_id" in line


@pytest.mark.django_db
def test_request_id_in_and_out_and_in_the_audit_log(api_client):
    magnet = "magnet:?xt=urn:btih:" + "d" * 40
    response = api_client.post("/api/v1/jobs/", {"magnet": magnet}, format="json", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-ID"] == "req-123"
    audit = AuditLog.objects.get(action="job.create")
    assert audit.request_id == "req-123" and audit.ip == "127.0.0.1"
    assert "btih" not in json.dumps(audit.metadata)
    generated = api_client.get("/api/v1/jobs/", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32


@pytest.mark.django_db
def test_secrets_never_reach_logs(api_client, caplog):
    magnet = "magnet:?xt=urn:btih:" + "e" * 40 + "&dn=secretname"
    with caplog.at_level(logging.DEBUG):
        api_client.post("/api/v1/jobs/", {"magnet": magnet}, format="json")
    assert "e" * 40 not in caplog.text


@pytest.mark.django_db
def test_audit_log_is_append_only(user):
    from accounts.audit import record_audit

    row = record_audit("test.action", actor=user, target=user, password="hunter2")
    assert row.metadata == {"password": "[redacted]"}
    with pytest.raises(TypeError):
        row.save()
    with pytest.raises(TypeError):
        row.delete()
    with pytest.raises(TypeError):
        AuditLog.objects.all().delete()
    with pytest.raises(TypeError):
        AuditLog.objects.update(action="x")


@pytest.mark.django_db
def test_access_log_line_masks_download_tokens(client, caplog):
    with caplog.at_level(logging.INFO, logger="flotilla.access"):
        client.get("/d/f/SECRETTOKEN123/file.bin", HTTP_X_REQUEST_ID="acc-1")
    records = [r for r in caplog.records if r.name == "flotilla.access"]
    assert records and "SECRETTOKEN123" not in caplog.text
    assert records[0].getMessage() == f"GET /d/f/[token]/file.bin {records[0].status}"


def test_key_file_written_by_a_concurrent_process_is_read_not_overwritten(tmp_path, monkeypatch):
    from config import keys

    path = tmp_path / "k"
    real_open = keys.os.open

    def racing_open(p, flags, mode=0o777):
        Path(p).write_text("theirs\n")  # the other process wins between our exists() and open()
        return real_open(p, flags, mode)

    monkeypatch.setattr(keys.os, "open", racing_open)
    assert keys.load_or_create_key(path, "K") == "theirs"
