"""A schema-driven fuzz of the whole OpenAPI (/api/schema/), in the suite: every operation, a fixed seed, a
bounded number of examples each (FUZZ_EXAMPLES, default 6; `make fuzz` runs many more), authenticated with an
API key, throttling off. It fails on any 5xx and on any response the schema does not describe (status code,
content type, body, headers) — where the schema is wrong, fix the schema (config/openapi.py, extend_schema).

The requests go through Django's full stack (middleware, URL resolver, DRF) in-process (WSGI), on the test's
database; each operation starts from the same rows (a savepoint per operation, rolled back). Outbound calls stay
on this machine: Seedr is the faithful fake (tests/fakes), torrent servers and links the fuzz invents get short
timeouts, and internal server addresses are refused (no poking at local daemons)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from rest_framework.views import APIView
from schemathesis import GenerationMode
from schemathesis.core.failures import ServerError
from schemathesis.generation import overrides
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.authentication import user_for_key
from accounts.models import ApiKey, hash_api_key
from accounts.services import create_api_key
from seedr import client as seedr_client
from seedr import services as seedr_services
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.factories import JobFactory
from tests.fakes.seedr_fake import FakeSeedr
from tests.servers.factories import TorrentServerFactory

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("FUZZ_SEED", "20261110"))
COVERAGE_CAP = int(os.environ.get("FUZZ_COVERAGE_CAP", "60"))  # coverage cases per operation at most
ONLY = os.environ.get("FUZZ_ONLY", "")  # e.g. "/seedr/" or "POST /api/v1/jobs/": only matching operations
SEEDR_EMAIL, SEEDR_PASSWORD = "fuzz@seedr.test", "fuzz-seedr-password"
UPSTREAM_FAILURE = 502  # a torrent server, link or Seedr failed: documented (config/openapi.py), not our error


@schemathesis.check
def no_server_error(ctx, response, case) -> bool | None:
    """Any 5xx fails, except a documented 502 naming an upstream's failure in the error shape (the fuzz invents
    servers and links that cannot answer; the schema conformance checks still apply to it)."""
    if response.status_code >= 500 and response.status_code != UPSTREAM_FAILURE:
        raise ServerError(operation=case.operation.label, status_code=response.status_code)
    return None


CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
CONFIG = schemathesis.Config.from_dict({"generation": {"database": "none"}})
STATS: Counter = Counter()
TIMES: Counter = Counter()


@pytest.fixture
def _keep_the_test_connection():
    """Django closes the database connection when a request ends; the test's transaction lives on it (Django's
    test client does the same around its requests)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seedr(settings, tmp_path) -> Iterator[FakeSeedr]:
    """The faithful Seedr fake (tests/fakes), so the Seedr operations answer as they do in life."""
    fake = FakeSeedr(progress_step=50, device_interval=1).serve()
    fake.add_account(SEEDR_EMAIL, SEEDR_PASSWORD, space_max=50_000_000)
    settings.SEEDR_API_URL, settings.SEEDR_OAUTH_URL = fake.api_url, fake.oauth_url
    settings.SEEDR_TEMP_DIR = tmp_path / "seedr-tmp"
    yield fake
    fake.stop()
    for account_id in list(seedr_client.runner.clients):
        seedr_client.forget(account_id)


@pytest.fixture
def api_schema(db, _keep_the_test_connection, seedr, settings, monkeypatch, user):
    monkeypatch.setattr(APIView, "get_throttles", lambda self: [])  # throttling off (rates are bound at import)
    settings.SERVERS_ALLOW_INTERNAL = False
    settings.SERVERS_TIMEOUT = settings.TORRENT_URL_TIMEOUT = 2.0
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=1000))
    # Something for the path ids to find (schemathesis tends to try small ids first).
    TorrentServerFactory(owner=user)
    JobFactory(user=user)
    seedr_services.password_login(user, SEEDR_EMAIL, SEEDR_PASSWORD)
    return schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), config=CONFIG)


@pytest.fixture
def api_key(user) -> str:
    return create_api_key(user, "fuzz")[1]


def _keep_key_alive(headers: dict) -> None:
    """The fuzz may revoke its own key (DELETE /api-keys/{id}/): then it signs in with a new one, or every
    later case would only see 401."""
    raw = headers["Authorization"].removeprefix("Token ")
    if user_for_key(raw) is None:
        owner = ApiKey.objects.get(key_hash=hash_api_key(raw)).user
        headers["Authorization"] = f"Token {create_api_key(owner, 'fuzz')[1]}"


def _fuzz(operation, mode: GenerationMode, headers: dict) -> None:
    """EXAMPLES cases of one operation in one mode (data that fits the schema, or that does not)."""

    @hypothesis.seed(SEED)
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=False,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])  # no shrinking: speed
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        _call(case, headers)

    started = time.monotonic()
    try:
        run()
    finally:
        TIMES[operation.label] += time.monotonic() - started


def _coverage(operation, headers: dict) -> None:
    """Schemathesis's coverage cases: each documented boundary (min, max, length, enum, required) met and then
    crossed by one, one field at a time. Deterministic, and the cheapest way to reach the edges (an id one past
    the bigint range) that random examples rarely draw."""
    generator = CoverageGenerator(
        operation=operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=operation.schema.config.generation_for(operation=operation, phase="coverage"),
        auth_storage=None, override=overrides.with_config_headers(operation.schema.config, operation=operation),
        feedback=FeedbackSources())
    failures = []
    started = time.monotonic()
    for count, case in enumerate(generator):
        if count >= COVERAGE_CAP:
            break
        try:
            _call(case, headers)
        except BaseExceptionGroup as exc:
            failures.append(exc)
    TIMES[operation.label] += time.monotonic() - started
    if failures:
        raise BaseExceptionGroup(f"{len(failures)} coverage cases failed", failures)


def _call(case, headers: dict) -> None:
    response = case.call(headers=headers)
    if case.method == "DELETE" and case.path.startswith("/api/v1/api-keys/"):
        _keep_key_alive(headers)
    STATS["requests"] += 1
    STATS[str(response.status_code)] += 1
    # Every case is signed in: a 401 means the fuzz lost its key and would go on testing nothing but that.
    assert response.status_code != 401, f"{case.method} {case.path}: 401 {response.text[:200]}"
    case.validate_response(response, checks=CHECKS)


def _describe(exc: BaseException) -> str:
    """The failure and its first sub-failures (a group's own message only counts them)."""
    parts = [str(exc)[:3000]]
    for inner in getattr(exc, "exceptions", ())[:3]:
        parts.append(f"  - {type(inner).__name__}: {_describe(inner)[:1500]}")
    return "\n".join(parts)


def _operation(operation, headers: dict, failures: dict) -> None:
    # Negative cases need something to break: a body, a path or a query parameter.
    negative = len(operation.body) > 0 or any(
        p.location.value in ("path", "query") for p in operation.iter_parameters())
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if negative else 1]:
        try:
            _fuzz(operation, mode, headers)
        except (Exception, BaseExceptionGroup) as exc:  # failing checks (a group), or an error raised
            failures[f"{operation.label} ({mode})"] = _describe(exc)
    try:
        _coverage(operation, headers)
    except BaseExceptionGroup as exc:
        failures[f"{operation.label} (coverage)"] = _describe(exc)


def test_every_operation_answers_as_its_schema_says(api_schema, api_key):
    """Every operation: random cases in both modes, then the coverage cases; all failures are reported
    together (one line each, then the details with a curl command to replay each)."""
    headers = {"Authorization": f"Token {api_key}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40  # the whole API is in the schema
    for operation in [op for op in operations if ONLY in op.label]:
        with transaction.atomic():  # each operation starts from the fixtures' state (a savepoint, rolled back)
            _operation(operation, headers, failures)
            transaction.set_rollback(True)
        headers["Authorization"] = f"Token {api_key}"  # a key made meanwhile is gone; the first is back
    assert not failures, f"{len(failures)} failing:\n" + "\n".join(failures) + "\n\n" + "\n\n".join(
        f"=== {label}\n{detail}" for label, detail in failures.items())


def teardown_module(module):
    fives = sum(n for code, n in STATS.items() if code.startswith("5"))
    print(f"\nAPI fuzz: seed {SEED}, {EXAMPLES} examples per operation and mode: {STATS.pop('requests', 0)} "
          f"requests, {fives} x 5xx (502 = an upstream failed), by status: "
          + ", ".join(f"{key} {value}" for key, value in sorted(STATS.items())))
    print("slowest:", ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.most_common(8)))
