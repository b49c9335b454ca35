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


# --- secrets masked in every log line ---------------------------------------------------------------------

PASSKEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("raw, masked", [
    (f"tracker_error_alert: t (http://127.0.0.1:6969/announce?passkey={PASSKEY}&uploaded=0)[127.0.0.1:6881] 404",
     "tracker_error_alert: t (http://127.0.0.1:6969/announce?passkey=***&uploaded=***"),
    (f"http://tracker.example.org/announce/{PASSKEY} failed", "http://tracker.example.org/announce/*** failed"),
    ("https://t.example.org/a1B2c3D4e5F6g7H8i9J0k1L2/announce", "https://t.example.org/***/announce"),
    ("GET https://bob:hunter2@nas.local:9091/transmission/rpc", "GET https://***@nas.local:9091/transmission/rpc"),
    (f"magnet:?xt=urn:btih:{'a' * 40}&tr=http%3A%2F%2Ft.example%2Fannounce%3Fpasskey%3D{PASSKEY}",
     "magnet:?xt=***&tr=***"),
    (f"next=http%3A%2F%2Fbob%40t.example%2Fannounce%3Fpk%3D{PASSKEY}&x=1",
     "next=http%3A%2F%2F***%40t.example%2F***&x=1"),
    ("<ProtocolError for flotilla:s3cret-pass@127.0.0.1:9000/RPC2: 401 Unauthorized>",
     "<ProtocolError for ***@127.0.0.1:9000/RPC2: 401 Unauthorized>"),
])
def test_urls_lose_their_query_userinfo_and_passkey_segments(raw, masked):
    from config.logging import mask_secrets

    assert mask_secrets(raw).startswith(masked)
    assert mask_secrets(mask_secrets(raw)) == mask_secrets(raw), "masking twice changes nothing"


@pytest.mark.parametrize("text", [
    "udp://tracker.opentrackr.org:1337/announce",
    "http://127.0.0.1:8000/api/v1/jobs/12/files/",
    'at 12:30 the task failed: File "/srv/flotilla/downloads/tasks.py", line 3',
    "job 7 moved from queued to starting",
])
def test_text_without_secrets_is_left_alone(text):
    from config.logging import mask_secrets

    assert mask_secrets(text) == text


@pytest.fixture
def console_lines():
    """Lines written by the console handler settings.LOGGING installs on the root logger (every process)."""
    import io

    handler = next(h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter))
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        handler.setStream(previous)


def test_every_part_of_a_log_line_is_masked_by_the_installed_filter(console_lines):
    announce = f"http://127.0.0.1:6969/announce?passkey={PASSKEY}"
    log = logging.getLogger("downloads.engine.runner")
    log.warning("tracker %s failed", announce, extra={
        "detail": f"tracker_error_alert: ({announce}) 404",
        "nested": {"urls": [announce, f"https://u:hunter2@h.example/{PASSKEY}/announce"]},
        "count": 3,
    })
    try:
        raise RuntimeError(f"could not reach {announce}")
    except RuntimeError:
        log.exception("step failed", extra={"alert": "tracker_error_alert"})
    logging.getLogger("some.library").error("bare %r", {"url": announce}, stack_info=True)

    lines = console_lines()
    text = "\n".join(json.dumps(line) for line in lines)
    assert PASSKEY not in text and "hunter2" not in text
    first, second, third = lines
    assert first["msg"] == "tracker http://127.0.0.1:6969/announce?passkey=*** failed"
    assert first["nested"]["urls"][1] == "https://***@h.example/***/announce" and first["count"] == 3
    assert "RuntimeError: could not reach http://127.0.0.1:6969/announce?passkey=***" in second["exc"]
    assert third["msg"] == "bare {'url': 'http://127.0.0.1:6969/announce?passkey=***'}" and "stack" in third


def test_the_mask_is_installed_in_every_process(tmp_path):
    """runengine, qcluster and daphne all configure logging from settings.LOGGING; so does this command."""
    code = f"import logging; logging.getLogger('libtorrent').error('announce http://t.example/{PASSKEY}/announce')"
    result = run_manage(["shell", "-c", code], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "http://t.example/***/announce" in result.stderr and PASSKEY not in result.stderr
