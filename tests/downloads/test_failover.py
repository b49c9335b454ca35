"""Fail-over between backends (downloads/failover.py): every trigger, no loop, quota on the next backend, the
job's place in line, and the user's policy through the API.

Backends: the loopback service under three kinds ("first" refuses submits with a chosen code, "second" and
"third" run jobs), the live Seedr fake for Seedr's own refusals and stall, and a real server record on a
closed port for "offline past the grace time".
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog
from billing.services import QuotaExceeded
from config.errors import DomainError
from downloads import backends, bring_home, dispatch, failover, services
from downloads.backends import BackendError
from downloads.models import BackendPolicy, Job, JobEvent, JobFile, Status
from seedr import services as seedr
from seedr.models import SeedrTask
from servers.models import TorrentServer
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.downloads.runs import run_bring_home
from tests.fakes.loopback_backend import LoopbackBackend
from tests.seedr import conftest as seedr_fixtures
from tests.seedr.conftest import SEEDR_EMAIL, info_hash, magnet
from tests.servers.factories import TorrentServerFactory

# The live Seedr fake and a connected Seedr account, as the Seedr tests have them.
fake = seedr_fixtures.fake
connected = seedr_fixtures.connected

ALL_TRIGGERS = ["seedr_queue_full", "seedr_quota_exceeded", "seedr_size_limit", "stalled", "backend_offline",
                "retries_exhausted"]


class Refusing(LoopbackBackend):
    """The loopback service under another kind, refusing every submit with `code` while `code` is set."""

    def __init__(self, kind: str, state_dir, code: str = "", *, permanent: bool = True) -> None:
        super().__init__(state_dir=state_dir)
        self.kind, self.label = kind, kind.capitalize()
        self.code, self.permanent = code, permanent

    def submit(self, job: Job) -> None:
        if self.code:
            raise BackendError(f"{self.kind} refuses ({self.code}).", code=self.code, permanent=self.permanent)
        super().submit(job)


@pytest.fixture
def kinds(tmp_path, settings):
    """Three registered loopback kinds; the registry is restored afterwards."""
    settings.PROGRESS_EVENT_INTERVAL = 0
    made = {kind: backends.register(Refusing(kind, tmp_path / kind)) for kind in ("first", "second", "third")}
    yield made
    for kind in made:
        backends.unregister(kind)


@pytest.fixture
def plan(user):
    plan = PlanFactory(allowed_backends=["first", "second", "third", "seedr", "server"], max_active_jobs=5)
    BackendPolicy.objects.create(plan=plan, backends=["first", "second", "third"])  # every trigger by default
    PlanAssignmentFactory(user=user, plan=plan)
    return plan


def plan_policy(plan, **values) -> None:
    BackendPolicy.objects.filter(plan=plan).update(**values)


def refreshed(job: Job) -> Job:
    job.refresh_from_db()
    return job


def moves(job: Job) -> list[dict]:
    """The fail-over records in the job's history, oldest first."""
    rows = JobEvent.objects.filter(job_id=job.pk).order_by("id").values_list("data", flat=True)
    return [data["failover"] for data in rows if "failover" in data]


def add(user, n: int, backend: str = "first") -> Job:
    return services.add_magnet(user, f"magnet:?xt=urn:btih:{n:040x}&dn=Item+{n}", backend=backend)


@pytest.mark.django_db
class TestRefusalAtSubmit:
    def test_a_named_refusal_moves_the_job_to_the_next_backend_with_an_event(self, kinds, user, plan):
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 1)
        assert dispatch.dispatch_queued() == 1  # submitted on its new backend in the same turn
        job = refreshed(job)
        assert (job.backend, job.status, job.failover_from) == ("second", Status.DOWNLOADING, ["first"])
        moved = JobEvent.objects.get(job_id=job.pk, kind="status", code="queued", data__reason_code="failed_over")
        assert moved.data["reason"] == "Moved from First to Second: Seedr queue full."
        assert moved.data["failover"] == {"from": "first", "to": "second", "code": "seedr_queue_full",
                                          "detail": "first refuses (seedr_queue_full).", "skipped": []}
        audit = AuditLog.objects.get(action="job.failover")
        assert audit.metadata == {"code": "seedr_queue_full", "from": "first", "to": "second"}
        assert kinds["second"].calls() == {"submit": 1}

    def test_a_refusal_the_policy_does_not_name_fails_as_before(self, kinds, user, plan):
        plan_policy(plan, backends=["first", "second"], triggers=["stalled"])
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 2)
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.backend, job.status, job.reason_code) == ("first", Status.FAILED, "seedr_queue_full")
        assert moves(job) == [] and kinds["second"].calls() == {}

    def test_without_any_policy_nothing_changes(self, kinds, user, plan):
        BackendPolicy.objects.filter(plan=plan).delete()
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 3)
        dispatch.dispatch_queued()
        assert (refreshed(job).status, job.backend) == (Status.FAILED, "first")

    def test_a_users_own_policy_wins_over_the_plans(self, kinds, user, plan):
        failover.set_user_policy(user, backends=["first", "third"], triggers=["seedr_queue_full"])
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 4)
        dispatch.dispatch_queued()
        assert (refreshed(job).backend, job.status) == ("third", Status.DOWNLOADING)

    def test_an_empty_own_policy_opts_out_of_the_plans(self, kinds, user, plan):
        failover.set_user_policy(user, backends=[])
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 5)
        dispatch.dispatch_queued()
        assert (refreshed(job).backend, job.status) == ("first", Status.FAILED)

    def test_exhausted_transient_retries_move_the_job_when_named(self, kinds, user, plan, settings):
        settings.JOB_MAX_ATTEMPTS = 2
        kinds["first"].code, kinds["first"].permanent = "remote_busy", False
        job = add(user, 6)
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.backend, job.status, job.attempts) == ("first", Status.QUEUED, 1)  # backing off
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.backend, job.status, job.attempts) == ("second", Status.DOWNLOADING, 0)
        assert moves(job)[0]["code"] == "retries_exhausted"


@pytest.mark.django_db
class TestNoLoop:
    def test_a_job_never_goes_back_to_a_backend_it_left(self, kinds, user, plan):
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 10)
        dispatch.dispatch_queued()
        assert refreshed(job).backend == "second"
        # The user reorders their policy so "first" now comes after "second"; "second" refuses too.
        failover.set_user_policy(user, backends=["second", "first"], triggers=["seedr_quota_exceeded"])
        assert failover.fail_over(job, "seedr_quota_exceeded", "Seedr is full.") is False
        job = refreshed(job)
        assert (job.backend, job.failover_from) == ("second", ["first"])
        none_left = JobEvent.objects.get(job_id=job.pk, code="failover_none")
        assert none_left.data["reason"] == "Every backend of your fail-over policy was tried."

    def test_a_chain_runs_out_and_the_job_fails_with_the_last_refusal(self, kinds, user, plan):
        for kind in kinds.values():
            kind.code = "seedr_queue_full"
        job = add(user, 11)
        for _ in range(3):
            dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.status, job.backend, job.reason_code) == (Status.FAILED, "third", "seedr_queue_full")
        assert job.failover_from == ["first", "second"]
        assert [(m["from"], m["to"]) for m in moves(job)] == [("first", "second"), ("second", "third")]
        assert all(kind.calls().get("submit", 0) == 0 for kind in kinds.values())  # refused before any state


@pytest.mark.django_db
class TestNextBackendsChecks:
    def test_a_backend_the_plan_does_not_allow_is_skipped_with_the_reason(self, kinds, user, plan):
        # The plan lost "second" after the user saved a policy naming it.
        BackendPolicy.objects.create(user=user, backends=["first", "second", "third"], triggers=["seedr_queue_full"])
        plan.allowed_backends = ["first", "third"]
        plan.save()
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 20)
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.backend, job.status) == ("third", Status.DOWNLOADING)
        assert moves(job)[0]["skipped"] == [{"backend": "second",
                                             "reason": f"your plan ({plan.name}) does not include it"}]

    def test_no_backend_within_quota_fails_the_job_saying_why(self, kinds, user, plan):
        plan.max_job_size_bytes = 1000
        plan.save()
        kinds["first"].code = "seedr_queue_full"
        job = add(user, 21)
        Job.objects.filter(pk=job.pk).update(size_bytes=5000)  # learnt since; a new backend must take it
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.status, job.backend, job.reason_code) == (Status.FAILED, "first", "seedr_queue_full")
        none_left = JobEvent.objects.get(job_id=job.pk, code="failover_none")
        assert [s["backend"] for s in none_left.data["skipped"]] == ["second", "third"]
        assert "your plan allows 1000" in none_left.data["reason"].replace("\u00a0", " ").replace(" bytes", "")

    def test_an_unavailable_backend_is_skipped(self, kinds, user, plan):
        backends.unregister("second")
        kinds["first"].code = "seedr_quota_exceeded"
        job = add(user, 22)
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert job.backend == "third"
        assert moves(job)[0]["skipped"] == [{"backend": "second", "reason": "not running on this server"}]


@pytest.mark.django_db
class TestPlaceInLine:
    def test_a_moved_job_starts_before_newer_jobs_waiting_on_its_new_backend(self, kinds, user, plan):
        plan.max_active_jobs = 1
        plan.save()
        kinds["first"].code = "seedr_queue_full"
        older = add(user, 30)
        newer = [add(user, n, backend="second") for n in (31, 32)]
        assert dispatch.dispatch_queued() == 1
        assert (refreshed(older).backend, older.status) == ("second", Status.DOWNLOADING)
        assert [refreshed(j).status for j in newer] == [Status.QUEUED, Status.QUEUED]

    def test_a_moved_queued_job_keeps_its_id_so_the_dispatcher_takes_it_first(self, kinds, user, plan):
        plan.max_active_jobs = 1
        plan.save()
        busy = add(user, 33, backend="third")
        dispatch.dispatch_queued()  # takes the one slot
        older = add(user, 34)
        newer = add(user, 35, backend="second")
        assert failover.fail_over(older, "seedr_queue_full", "Seedr is full.") is True
        assert (refreshed(older).backend, older.status) == ("second", Status.QUEUED)
        services.cancel_job(user, refreshed(busy))
        dispatch.dispatch_queued()
        assert (refreshed(older).status, refreshed(newer).status) == (Status.DOWNLOADING, Status.QUEUED)


@pytest.mark.django_db
class TestStalled:
    def _running(self, user, n: int) -> Job:
        job = add(user, n)
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.backend, job.status) == ("first", Status.DOWNLOADING)
        return job

    def test_no_seeders_and_no_progress_for_the_policys_minutes_moves_the_job(self, kinds, user, plan):
        job = self._running(user, 40)
        services.record_progress(job, downloaded_bytes=100, seeds=0, peers=0)
        partial = job.data_dir / "partial.bin"
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"x" * 100)
        JobFile.objects.create(job=job, path="partial.bin", size_bytes=200, completed_bytes=100)
        assert failover.sweep(timezone.now() + dt.timedelta(minutes=29)) == 0  # the default is 30 minutes
        assert failover.sweep(timezone.now() + dt.timedelta(minutes=31)) == 1
        job = refreshed(job)
        assert (job.backend, job.status, job.progress, job.downloaded_bytes) == ("second", Status.QUEUED, 0.0, 0)
        assert moves(job)[0]["code"] == "stalled"
        assert job.reason == "Moved from First to Second: stalled with no seeders."
        assert not partial.exists() and not job.files.exists()
        assert kinds["first"].snapshot()["cancelled"] == [{"job": job.pk, "delete_data": True}]
        dispatch.dispatch_queued()
        assert refreshed(job).status == Status.DOWNLOADING

    def test_seeders_or_new_bytes_keep_the_job_where_it_is(self, kinds, user, plan):
        with_seeds = self._running(user, 41)
        services.record_progress(with_seeds, seeds=2)
        moving = self._running(user, 42)
        Job.objects.filter(pk=moving.pk).update(progress_at=timezone.now() - dt.timedelta(hours=2))
        services.record_progress(refreshed(moving), downloaded_bytes=5000, seeds=0)  # a byte came: clock reset
        assert failover.sweep(timezone.now() + dt.timedelta(minutes=20)) == 0
        assert refreshed(with_seeds).backend == "first" and refreshed(moving).backend == "first"

    def test_the_users_stall_minutes_apply(self, kinds, user, plan):
        failover.set_user_policy(user, backends=["first", "second"], triggers=["stalled"], stall_minutes=5)
        job = self._running(user, 43)
        assert failover.sweep(timezone.now() + dt.timedelta(minutes=4)) == 0
        assert failover.sweep(timezone.now() + dt.timedelta(minutes=6)) == 1
        assert refreshed(job).backend == "second"

    def test_a_stalled_job_at_the_end_of_its_chain_stays_quietly(self, kinds, user, plan):
        job = add(user, 44, backend="third")
        dispatch.dispatch_queued()
        later = timezone.now() + dt.timedelta(hours=1)
        assert failover.sweep(later) == 0 and failover.sweep(later) == 0
        job = refreshed(job)
        assert (job.backend, job.status) == ("third", Status.DOWNLOADING)
        assert not JobEvent.objects.filter(job_id=job.pk, code="failover_none").exists()

    def test_the_sweep_reads_no_job_when_no_policy_names_the_trigger(self, kinds, user, plan,
                                                                     django_assert_num_queries):
        plan_policy(plan, backends=["first", "second"], triggers=["seedr_queue_full"])
        self._running(user, 45)
        with django_assert_num_queries(1):  # the policies, nothing else
            assert failover.sweep(timezone.now() + dt.timedelta(days=1)) == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db
class TestServerOffline:
    def test_a_server_offline_past_the_grace_time_hands_its_queued_job_on(self, kinds, user, plan):
        server = TorrentServerFactory(owner=user, name="home", port=closed_port())
        failover.set_user_policy(user, backends=[server.backend_name, "second"], triggers=["backend_offline"],
                                 offline_grace_minutes=10)
        job = add(user, 50, backend=server.backend_name)
        dispatch.dispatch_queued()  # refused connection: the server is marked in error, the job backs off
        server.refresh_from_db()
        job = refreshed(job)
        assert (server.status, job.status, job.backend) == (TorrentServer.Status.ERROR, Status.QUEUED,
                                                            server.backend_name)
        assert server.error_since is not None
        assert failover.sweep(server.error_since + dt.timedelta(minutes=9)) == 0  # within the grace time
        assert failover.sweep(server.error_since + dt.timedelta(minutes=11)) == 1
        job = refreshed(job)
        assert (job.backend, job.status, job.failover_from) == ("second", Status.QUEUED, [server.backend_name])
        event = JobEvent.objects.get(job_id=job.pk, code="failed_over")
        assert event.data["reason"] == "Moved from server 'home (Transmission)' to Second: backend offline past " \
                                       "the grace time."
        assert event.data["failover"]["detail"] == "server 'home (Transmission)' has not answered for 11 minutes."
        dispatch.dispatch_queued()
        assert refreshed(job).status == Status.DOWNLOADING

    def test_a_submit_error_past_the_grace_time_moves_the_job_at_once(self, kinds, user, plan):
        server = TorrentServerFactory(owner=user, name="attic", port=closed_port(), status="error",
                                      error_since=timezone.now() - dt.timedelta(minutes=30))
        job = add(user, 51, backend=server.backend_name)
        failover.set_user_policy(user, backends=[server.backend_name, "third"], triggers=["backend_offline"],
                                 offline_grace_minutes=15)
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.backend, job.status) == ("third", Status.DOWNLOADING)
        assert moves(job)[0]["code"] == "backend_offline"

    def test_an_answer_ends_the_offline_streak(self, user):
        from servers import services as servers

        server = TorrentServerFactory(owner=user, status="error", error_since=timezone.now())
        servers.record_success(server)
        server.refresh_from_db()
        assert (server.status, server.error_since) == (TorrentServer.Status.CONNECTED, None)


@pytest.mark.django_db
class TestBringHome:
    def test_a_dead_letter_while_bringing_home_moves_the_job_when_named(self, kinds, user, plan, settings):
        settings.JOB_MAX_ATTEMPTS = 1
        job = add(user, 60)
        dispatch.dispatch_queued()
        kinds["first"].bring_home_errors.append(BackendError("Disk on fire.", code="remote_busy"))
        bring_home.data_complete(refreshed(job))
        assert run_bring_home(job.pk) == 0
        job = refreshed(job)
        assert (job.backend, job.status, job.failover_from) == ("second", Status.QUEUED, ["first"])
        assert moves(job)[0] == {"from": "first", "to": "second", "code": "retries_exhausted",
                                 "detail": "Disk on fire.", "skipped": []}


@pytest.mark.django_db
class TestSeedr:
    @pytest.fixture
    def seedr_first(self, kinds, user, plan):
        plan_policy(plan, backends=["seedr", "second"])

    def test_seedr_queue_full_moves_the_job_and_leaves_seedr_clean(self, fake, user, connected, seedr_first,
                                                                  kinds):
        fake.account(SEEDR_EMAIL).max_active = 0  # something else runs on the Seedr account
        job = seedr.add(user, magnet=magnet(70))
        dispatch.dispatch_queued()
        job = refreshed(job)
        assert (job.backend, job.status) == ("second", Status.DOWNLOADING)
        assert job.reason_code == "" and moves(job)[0]["code"] == "seedr_queue_full"
        assert "queue is full" in moves(job)[0]["detail"]
        assert fake.snapshot(SEEDR_EMAIL)["wishlist"] == [] and fake.account(SEEDR_EMAIL).is_empty()

    def test_seedr_quota_exceeded_moves_the_job(self, fake, user, connected, seedr_first, kinds):
        fake.define(info_hash(71), "TooBig", [("huge.bin", 60_000_000)])  # the account holds 50 MB
        job = seedr.add(user, magnet=magnet(71, "TooBig"))
        dispatch.dispatch_queued()
        dispatch.sync_running()
        job = refreshed(job)
        assert job.backend == "second" and moves(job)[0]["code"] == "seedr_quota_exceeded"
        assert fake.account(SEEDR_EMAIL).is_empty()

    def test_a_magnet_stalled_on_seedr_moves_and_is_removed_from_seedr(self, fake, user, connected, seedr_first,
                                                                      kinds, settings):
        fake.define(info_hash(72), "Dead", dead=True)
        job = seedr.add(user, magnet=magnet(72, "Dead"))
        dispatch.dispatch_queued()
        dispatch.sync_running()
        assert refreshed(job).backend == "seedr"
        SeedrTask.objects.filter(job=job).update(submitted_at=timezone.now() - dt.timedelta(
            seconds=settings.SEEDR_STALL_TIMEOUT + 1))
        dispatch.sync_running()
        job = refreshed(job)
        assert (job.backend, job.status) == ("second", Status.QUEUED)
        assert moves(job)[0]["code"] == "seedr_stalled"
        assert job.reason == "Moved from Seedr.cc to Second: stalled with no seeders."
        assert fake.account(SEEDR_EMAIL).is_empty()


@pytest.mark.django_db
class TestPolicyRules:
    def test_duplicates_and_unknown_triggers_are_refused(self, kinds, user, plan):
        with pytest.raises(DomainError, match="only once"):
            failover.set_user_policy(user, backends=["first", "second", "first"])
        with pytest.raises(DomainError, match="Some of"):
            failover.set_user_policy(user, backends=["first", "second"], triggers=["whenever"])
        with pytest.raises(DomainError, match="at least two"):
            failover.set_user_policy(user, backends=["first"])
        with pytest.raises(DomainError, match="stall_minutes"):
            failover.set_user_policy(user, backends=["first", "second"], stall_minutes=0)
        assert not BackendPolicy.objects.filter(user=user).exists()

    def test_another_users_server_is_refused(self, kinds, user, other_user, plan):
        theirs = TorrentServerFactory(owner=other_user)
        with pytest.raises(DomainError) as refused:
            failover.set_user_policy(user, backends=["first", theirs.backend_name])
        assert refused.value.code == "unknown_server"

    def test_a_backend_outside_the_plan_is_refused(self, kinds, user, plan):
        plan.allowed_backends = ["first", "second"]
        plan.save()
        with pytest.raises(QuotaExceeded):
            failover.set_user_policy(user, backends=["first", "third"])

    def test_a_plans_policy_stays_within_the_plans_backends(self):
        plan = PlanFactory(allowed_backends=["engine", "seedr"])
        with pytest.raises(ValidationError, match="Not among the plan's backends: server"):
            BackendPolicy(plan=plan, backends=["seedr", "server"]).full_clean()
        BackendPolicy(plan=plan, backends=["seedr", "engine"]).full_clean()

    def test_a_policy_belongs_to_a_user_or_a_plan(self, user):
        with pytest.raises(ValidationError, match="one user or to one plan"):
            BackendPolicy(backends=["seedr", "engine"]).full_clean()
        with pytest.raises(IntegrityError):
            BackendPolicy.objects.create(user=user, plan=PlanFactory(), backends=["seedr", "engine"])

    def test_a_kind_stands_for_each_of_the_users_servers(self, kinds, user, plan):
        home = TorrentServerFactory(owner=user, name="a-home")
        TorrentServerFactory(owner=user, name="b-attic", enabled=False)
        office = TorrentServerFactory(owner=user, name="c-office")
        assert failover._chain(user, ("first", "server", "second")) == [
            "first", home.backend_name, office.backend_name, "second"]


@pytest.mark.django_db
class TestAdmin:
    def test_an_operator_sets_a_plans_default_policy_checked_against_the_plan(self, client, admin_user):
        client.force_login(admin_user)
        plan = PlanFactory(allowed_backends=["engine", "seedr"])
        url = reverse("admin:downloads_backendpolicy_add")
        form = {"plan": plan.pk, "triggers": '["seedr_queue_full", "stalled"]', "stall_minutes": 20,
                "offline_grace_minutes": 15}
        refused = client.post(url, {**form, "backends": '["seedr", "server"]'})
        assert refused.status_code == 200 and "Not among the plan&#x27;s backends: server" in refused.content.decode()
        assert client.post(url, {**form, "backends": '["seedr", "engine"]'}).status_code == 302
        row = BackendPolicy.objects.get(plan=plan)
        assert (row.backends, row.triggers, row.stall_minutes) == (["seedr", "engine"], ["seedr_queue_full",
                                                                                       "stalled"], 20)
        assert AuditLog.objects.filter(action="admin.add", actor=admin_user).exists()
        assert client.get(reverse("admin:downloads_backendpolicy_changelist")).status_code == 200


@pytest.mark.django_db
class TestApiAndPage:
    URL = "/api/v1/failover-policy/"

    def test_the_api_shows_the_plans_policy_then_the_users_own_until_deleted(self, kinds, api_client, user, plan):
        assert api_client.get(self.URL).json() == {
            "source": "plan", "backends": ["first", "second", "third"], "triggers": ALL_TRIGGERS,
            "stall_minutes": 30, "offline_grace_minutes": 15}
        saved = api_client.put(self.URL, {"backends": ["third", "first"], "triggers": ["stalled"],
                                          "stall_minutes": 10}, format="json")
        assert saved.status_code == 200
        assert saved.json() == {"source": "user", "backends": ["third", "first"], "triggers": ["stalled"],
                                "stall_minutes": 10, "offline_grace_minutes": 15}
        assert AuditLog.objects.filter(action="failover_policy.set", actor=user).exists()
        assert api_client.delete(self.URL).status_code == 204
        assert api_client.get(self.URL).json()["source"] == "plan"

    def test_without_any_policy_the_api_shows_the_defaults_with_no_backends(self, kinds, api_client, plan):
        BackendPolicy.objects.filter(plan=plan).delete()
        assert api_client.get(self.URL).json() == {"source": "none", "backends": [], "triggers": ALL_TRIGGERS,
                                                   "stall_minutes": 30, "offline_grace_minutes": 15}

    def test_the_api_refuses_a_bad_policy_with_code_and_detail(self, kinds, api_client, user, other_user, plan):
        theirs = TorrentServerFactory(owner=other_user)
        for body, code in (({"backends": ["first", "first"]}, "invalid_policy"),
                           ({"backends": ["first", theirs.backend_name]}, "unknown_server"),
                           ({"backends": ["first", "second:4"]}, "unknown_backend"),
                           ({"backends": ["first", "second"], "triggers": ["whenever"]}, "invalid")):
            refused = api_client.put(self.URL, body, format="json")
            assert refused.status_code == 400, refused.content
            assert refused.json()["code"] == code and refused.json()["detail"]
        assert api_client.get(self.URL).json()["source"] == "plan"

    def test_the_settings_page_saves_and_resets_the_policy(self, kinds, client, user, plan):
        client.force_login(user)
        page = client.get("/failover/")
        assert page.status_code == 200 and "Your plan's default applies" in page.content.decode()
        saved = client.post("/failover/", {"backends": "second, first", "triggers": ["seedr_queue_full"],
                                           "stall_minutes": 30, "offline_grace_minutes": 15, "save": ""})
        assert saved.status_code == 302
        row = BackendPolicy.objects.get(user=user)
        assert (row.backends, row.triggers) == (["second", "first"], ["seedr_queue_full"])
        refused = client.post("/failover/", {"backends": "second, second", "stall_minutes": 30,
                                             "offline_grace_minutes": 15, "triggers": ["stalled"]})
        assert refused.status_code == 200 and "only once" in refused.content.decode()
        assert client.post("/failover/", {"reset": ""}).status_code == 302
        assert not BackendPolicy.objects.filter(user=user).exists()
