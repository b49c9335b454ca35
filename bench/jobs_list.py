"""GET /api/v1/jobs/ on a user with many jobs: time per request, queries per request, against a bare ORM read.

    .venv/bin/python bench/jobs_list.py [--jobs 10000] [-n 200] [--torrent-share 0.0] [--torrent-kib 40]

Creates `--jobs` jobs for one user (bulk_create) in a throwaway database, then, in this process with
Django's test Client and an API key, times `-n` requests of the first page and of a deep cursor page
(`--depth` pages in). Prints p50/p95 and the queries one request runs. As a reference in the same run it
times a bare ORM read of 50 job rows (the page size), with and without the encrypted columns, and prints
the ratio. `--torrent-share` gives that fraction of jobs a stored .torrent of `--torrent-kib` KiB.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import environment, percentile, setup_django

RAW_KEY = "flt_benchlist" + "k" * 36


def create_jobs(count: int, torrent_share: float, torrent_kib: int):
    from accounts.models import ApiKey, User, hash_api_key
    from config.crypto import keyed_hash
    from downloads.models import Job, Status

    user = User.objects.create_user("lister@example.com", "correct horse battery staple", email_verified=True,
                                    accepted_policy_version=1)
    ApiKey.objects.create(user=user, name="bench", prefix=RAW_KEY[:8], key_hash=hash_api_key(RAW_KEY))
    torrent = base64.b64encode(b"d" * (torrent_kib * 1024)).decode()
    every = round(1 / torrent_share) if torrent_share else 0
    statuses = [Status.COMPLETED] * 8 + [Status.DOWNLOADING, Status.QUEUED]
    batch = []
    for n in range(count):
        info_hash = hashlib.sha1(f"bench-{n}".encode()).hexdigest()
        batch.append(Job(
            user=user, backend="engine", status=statuses[n % len(statuses)], name=f"Some.Linux.ISO.{n}.x86_64",
            info_hash=info_hash, info_hash_hmac=keyed_hash(info_hash),
            magnet=f"magnet:?xt=urn:btih:{info_hash}&dn=Some.Linux.ISO.{n}&tr=udp%3A%2F%2Ftracker.example%3A1337",
            torrent=torrent if every and n % every == 0 else "", size_bytes=4 * 1024**3,
            downloaded_bytes=4 * 1024**3, progress=1.0,
        ))
        if len(batch) == 1000:
            Job.objects.bulk_create(batch)
            batch = []
    Job.objects.bulk_create(batch)
    return user


def timed(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm caches and connections; not counted
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def queries_of(fn: Callable[[], object]) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        fn()
    return [q["sql"] for q in captured.captured_queries]


def line(label: str, samples: list[float], reference: float | None = None) -> str:
    p50, p95 = percentile(samples, 50) * 1000, percentile(samples, 95) * 1000
    ratio = f"  = {p50 / reference:.1f}x the bare read" if reference else ""
    return f"{label:<44} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms{ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--depth", type=int, default=100, help="pages to follow for the deep page")
    parser.add_argument("--torrent-share", type=float, default=0.0)
    parser.add_argument("--torrent-kib", type=int, default=40)
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args()

    with environment():
        setup_django()
        from django.test import Client

        from downloads.models import Job

        start = time.perf_counter()
        user = create_jobs(args.jobs, args.torrent_share, args.torrent_kib)
        print(f"# {args.jobs} jobs created in {time.perf_counter() - start:.1f} s "
              f"({args.torrent_share:.0%} with a {args.torrent_kib} KiB .torrent stored)")

        client = Client(headers={"authorization": f"Token {RAW_KEY}"})
        first_url = "/api/v1/jobs/"
        url = first_url
        for _ in range(args.depth):
            url = client.get(url).json()["next"]
        deep_url = url

        def get(path: str) -> Callable[[], object]:
            def call():
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: {response.status_code} {response.content[:200]!r}")
                return response
            return call

        def bare(*, defer: bool) -> Callable[[], object]:
            def call():
                rows = Job.objects.filter(user=user).order_by("-id")
                if defer:
                    rows = rows.defer("info_hash", "magnet", "torrent")
                return list(rows[:50])
            return call

        results = {
            "bare": timed(bare(defer=False), args.n),
            "bare_deferred": timed(bare(defer=True), args.n),
            "first": timed(get(first_url), args.n),
            "deep": timed(get(deep_url), args.n),
        }
        reference = percentile(results["bare"], 50) * 1000
        print(f"requests: {args.n} each, in-process (django.test.Client, API-key auth), page size 50")
        print(line("ORM: 50 job rows (reference)", results["bare"]))
        print(line("ORM: 50 job rows, encrypted columns deferred", results["bare_deferred"], reference))
        print(line("GET /api/v1/jobs/ (first page)", results["first"], reference))
        print(line(f"GET /api/v1/jobs/ (page {args.depth + 1}, cursor)", results["deep"], reference))
        for label, path in (("first page", first_url), ("deep page", deep_url)):
            sql = queries_of(get(path))
            print(f"queries per request ({label}): {len(sql)}")
            if args.show_sql:
                for statement in sql:
                    print(f"    {statement[:300]}")


if __name__ == "__main__":
    main()
