"""Fan-out search over 20 indexers with set latencies, one of them dead (it never answers).

    .venv/bin/python bench/search_fanout.py [--items 100] [--rounds 5] [--dead-timeout 2]

Twenty Torznab fakes (tests/fakes/torznab_fake.py, real HTTP on 127.0.0.1) answer after 50, 100, … 950 ms
(the 20th hangs); each holds `--items` results. Checks and prints:
- with the dead one: the answer arrives within the dead one's timeout (+ slack), never later;
- without it: within the slowest live indexer's latency + 100 ms;
- parsing throughput: the same 19 feeds with no latency, results parsed, merged, ranked and stored per second.
The rate limiter runs (database backend, interval 0) as in production; caps are fetched once (first round).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import environment, setup_django

LATENCIES = [0.05 * i for i in range(1, 20)]  # 19 live indexers: 50 ms … 950 ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dead-timeout", type=float, default=2.0)
    args = parser.parse_args()
    with environment(INDEXERS_RATE_LIMITER="database"):
        setup_django()
        run(args)


def run(args) -> None:
    import json

    from accounts.models import User
    from indexers import services
    from indexers.models import Indexer
    user = User.objects.create_user(email="bench@example.com", password="x" * 12)
    feeds, control, child = start_fakes(args.items)
    for i, (url, key) in enumerate(feeds):
        Indexer.objects.create(owner=user, name=f"ix{i}", kind="torznab", url=url,
                               credentials=json.dumps({"apikey": key}), timeout=args.dead_timeout,
                               request_interval=0)
    dead_id = Indexer.objects.get(name="ix19").pk
    live_ids = list(Indexer.objects.exclude(pk=dead_id).values_list("pk", flat=True))

    services.search(user, "book", indexer_ids=live_ids)  # caps fetched and cached (one t=caps per feed)
    with_dead, without_dead, late = [], [], []
    for _ in range(args.rounds):
        Indexer.objects.filter(pk=dead_id).update(consecutive_failures=0, backoff_until=None)
        started = time.monotonic()
        outcome = services.search(user, "book")
        with_dead.append(time.monotonic() - started)
        late.extend(e["name"] for e in outcome.errors if e["name"] != "ix19")
        started = time.monotonic()
        outcome = services.search(user, "book", indexer_ids=live_ids)
        without_dead.append(time.monotonic() - started)
        late.extend(e["name"] for e in outcome.errors)
    slowest = max(LATENCIES)
    if late:
        print(f"  live indexers that missed their {args.dead_timeout} s timeout: {late} (a loaded machine)")
    print(f"20 indexers (19 live at 50-950 ms, {args.items} results each; 1 dead, timeout {args.dead_timeout} s), "
          f"{args.rounds} rounds")
    print(f"  live only: median {statistics.median(without_dead) * 1000:.0f} ms, max "
          f"{max(without_dead) * 1000:.0f} ms (slowest live {slowest * 1000:.0f} ms; budget +100 ms: "
          f"{'OK' if max(without_dead) <= slowest + 0.1 else 'OVER'})")
    print(f"  with the dead one: median {statistics.median(with_dead) * 1000:.0f} ms, max "
          f"{max(with_dead) * 1000:.0f} ms (its timeout {args.dead_timeout * 1000:.0f} ms: "
          f"{'OK' if max(with_dead) <= args.dead_timeout + 0.1 else 'OVER'})")

    control.send("no-delay")
    control.recv()
    times = []
    for _ in range(args.rounds):
        started = time.monotonic()
        outcome = services.search(user, "book", indexer_ids=live_ids)
        times.append(time.monotonic() - started)
    count = sum(t["count"] for t in outcome.timings)
    best = min(times)
    print(f"  parsing: {count} results from 19 feeds in {best * 1000:.0f} ms (best of {args.rounds}) = "
          f"{count / best:,.0f} results/s parsed, merged and ranked ({len(outcome.results)} best stored)")
    control.send("stop")
    child.join(10)


def start_fakes(items: int):
    """The 20 fakes run in a child process, so their XML building does not share this process's GIL."""
    import multiprocessing

    parent, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_serve_fakes, args=(child_end, items), daemon=True)
    child.start()
    return parent.recv(), parent, child


def _serve_fakes(pipe, items: int) -> None:
    from tests.fakes.torznab_fake import FakeTorznab

    fakes = []
    for i, latency in enumerate(LATENCIES):
        fake = FakeTorznab(flavour="jackett").serve()
        for n in range(items):
            fake.add(f"Indexer {i} Book {n} 1080p WEB-DL x264 m4b", info_hash=f"{i:02d}{n:038d}", seeders=n)
        fake.delay = latency
        fakes.append(fake)
    dead = FakeTorznab(flavour="jackett").serve()
    dead.hostile = "hang"
    pipe.send([(f.feed_url, f.apikey) for f in [*fakes, dead]])
    while (message := pipe.recv()) != "stop":
        if message == "no-delay":
            for fake in fakes:
                fake.delay = 0
            pipe.send("ok")
    for fake in [*fakes, dead]:
        fake.stop()


if __name__ == "__main__":
    main()
