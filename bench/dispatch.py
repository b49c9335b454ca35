"""One dispatch tick with many queued jobs: time and query count, fair dispatch against the one it replaced.

    .venv/bin/python bench/dispatch.py [--jobs 10000] [--users 100] [-n 5] [--before 61e5e9f]

Builds, in a throwaway database, `--jobs` queued jobs spread over `--users` users and three backends: the
built-in engine (pulling; no engine runs, so its jobs only need their reason) and two pushing services (the
loopback test service under two kinds). 90 % of the users are at their plan's slot limit, so they cannot start
anything, and one more user queues a single job after everyone else. Every tick runs inside a
transaction that is rolled back, so each sample sees the same state, with
every job's "why am I waiting" already written (the steady state of a busy install).

Prints, for the current `dispatch_queued` and for the version at `--before` (loaded from git, the reference
measured in the same run): p50 time per tick, queries per tick, jobs submitted, and whether a job queued last
by a user with a free slot was submitted. Then the same at a tenth of the jobs: the current tick's cost must
not grow with the queued jobs of users who cannot start.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, environment, percentile, setup_django

KINDS = ("engine", "push-a", "push-b")


class Rollback(Exception):
    pass


def previous_dispatch(commit: str) -> ModuleType:
    source = subprocess.run(["git", "show", f"{commit}:downloads/dispatch.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("dispatch_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{commit}:downloads/dispatch.py", "exec"), module.__dict__)
    return module


def register_services(state_dir: Path) -> None:
    from downloads import backends
    from tests.fakes.loopback_backend import LoopbackBackend

    for kind in KINDS[1:]:
        service = type(f"Bench{kind}", (LoopbackBackend,), {"kind": kind})(state_dir=state_dir)
        backends.register(service)


def populate(jobs: int, users: int) -> int:
    """Queued jobs round the users and backends; returns the id of the last one of a user with free slots."""
    from accounts.models import User
    from billing.models import Plan, PlanAssignment
    from config.crypto import keyed_hash
    from downloads.models import Job, Status

    plan = Plan.objects.create(name="bench", max_active_jobs=2, allowed_backends=list(KINDS))
    User.objects.bulk_create(User(email=f"u{n}@example.com", password="!", email_verified=True,
                                  accepted_policy_version=1) for n in range(users + 1))
    people = list(User.objects.order_by("id"))
    late_user = people.pop()  # adds one job after everybody else's queue
    PlanAssignment.objects.bulk_create(PlanAssignment(user=u, plan=plan) for u in [*people, late_user])
    full = people[: users * 9 // 10]
    rows = [Job(user=u, backend="push-a", status=Status.DOWNLOADING, name="running") for u in full for _ in range(2)]
    per_user = jobs // users
    for n in range(per_user * users):
        user, kind = people[n % users], KINDS[n % 3]
        # The steady state of a busy install: every job that cannot start already says why.
        reason = "no_backend" if kind == "engine" else "waiting_for_slot" if user in full else ""
        rows.append(Job(user=user, backend=kind, status=Status.QUEUED, name=f"queued {n}", reason_code=reason,
                        info_hash=_hash(n), info_hash_hmac=keyed_hash(_hash(n))))
    Job.objects.bulk_create(rows, batch_size=1000)
    return Job.objects.create(user=late_user, backend="push-b", status=Status.QUEUED, name="late",
                              info_hash=_hash(-1), info_hash_hmac=keyed_hash(_hash(-1))).pk


def _hash(n: int) -> str:
    return hashlib.sha1(f"bench-{n}".encode()).hexdigest()


def tick(dispatch_queued) -> tuple[float, int, int]:
    from django.db import connection, transaction

    result = {"queries": 0}

    def count(execute, sql, params, many, context):
        result["queries"] += 1
        return execute(sql, params, many, context)

    try:
        with transaction.atomic(), connection.execute_wrapper(count):
            start = time.perf_counter()
            result["submitted"] = dispatch_queued()
            result["seconds"] = time.perf_counter() - start
            raise Rollback
    except Rollback:
        pass
    return result["seconds"], result["queries"], result["submitted"]


def measure(label: str, dispatch_queued, n: int, last_free_job: int) -> float:
    from downloads.models import Job, Status

    samples, queries, submitted = [], 0, 0
    for _ in range(n):
        seconds, queries, submitted = tick(dispatch_queued)
        samples.append(seconds)
    # Whether the job queued last, by a user with free slots, gets out on the first tick.
    started = False
    try:
        from django.db import transaction

        with transaction.atomic():
            dispatch_queued()
            started = Job.objects.filter(pk=last_free_job).exclude(status=Status.QUEUED).exists()
            raise Rollback
    except Rollback:
        pass
    p50 = percentile(samples, 50)
    print(f"{label:<34} p50 {p50 * 1000:8.1f} ms  {queries:5d} queries  {submitted:3d} submitted  "
          f"the last queued job (a free user's) started: {'yes' if started else 'no'}")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--before", default="61e5e9f", help="git commit of the dispatcher to compare with")
    args = parser.parse_args()

    with environment():
        setup_django()
        from django.conf import settings

        from accounts.models import User
        from billing.models import Plan
        from downloads import dispatch

        before = previous_dispatch(args.before)
        register_services(Path(settings.DATA_DIR) / "loopback")
        results = {}
        for jobs in (args.jobs, args.jobs // 10):
            User.objects.all().delete()
            Plan.objects.filter(name="bench").delete()
            start = time.perf_counter()
            last_free = populate(jobs, args.users)
            print(f"# {jobs} queued jobs over {args.users} users and {len(KINDS)} backends "
                  f"({time.perf_counter() - start:.1f} s to create)")
            results[("after", jobs)] = measure("fair dispatch (this tree)", dispatch.dispatch_queued, args.n,
                                               last_free)
            results[("before", jobs)] = measure(f"previous dispatch ({args.before})", before.dispatch_queued,
                                                args.n, last_free)
        big, small = args.jobs, args.jobs // 10
        ratio = results[("after", big)] / results[("before", big)]
        print(f"this tree vs previous at {big} jobs: {ratio:.2f}x the time")
        print(f"this tree, {big} vs {small} jobs: {results[('after', big)] / results[('after', small)]:.2f}x the time "
              f"(10x the queued jobs)")


if __name__ == "__main__":
    main()
