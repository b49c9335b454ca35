"""Event latency: from a JobEvent INSERT in another process to its receipt by many websocket clients.

    .venv/bin/python bench/event_latency.py [--clients 200] [--users 20] [--events 200] [--rate 20]

Starts daphne on a throwaway database, connects `--clients` websocket clients (API-key auth, spread
round-robin over `--users` users), then a separate process inserts `--events` JobEvent rows (round-robin
over the users, at about `--rate` per second), each carrying `time.time()` at insert in its data. Each
client records `receipt time - insert time` for every event it gets. Prints p50/p95/p99/max over all
receipts and how many were expected and received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import PY, cpu_seconds, daphne, describe_ms, environment, setup_django


def create_people(users: int) -> list[tuple[int, int, str]]:
    """(user id, job id, raw API key) per user."""
    from accounts.models import ApiKey, User, hash_api_key
    from downloads.models import Job

    people = []
    for n in range(users):
        user = User.objects.create_user(f"bench{n}@example.com", "correct horse battery staple",
                                        email_verified=True, accepted_policy_version=1)
        raw = f"flt_bench{n:04d}" + "x" * 36
        ApiKey.objects.create(user=user, name="bench", prefix=raw[:8], key_hash=hash_api_key(raw))
        job = Job.objects.create(user=user, backend="engine", name=f"bench job {n}", status="downloading")
        people.append((user.pk, job.pk, raw))
    return people


def insert_events(people: list[tuple[int, int, str]], events: int, rate: float) -> None:
    """The producer process: one INSERT per event, paced at `rate` per second."""
    from downloads.models import JobEvent

    start = time.monotonic()
    for i in range(events):
        user_id, job_id, _ = people[i % len(people)]
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        JobEvent.objects.create(user_id=user_id, job_id=job_id, kind="progress", code="bench",
                                data={"t": time.time(), "n": i})


class Client:
    def __init__(self, url: str, key: str, origin: str, expected: int) -> None:
        self.url, self.key, self.origin, self.expected = url, key, origin, expected
        self.latencies: list[float] = []
        self.done = asyncio.Event()

    async def run(self, connected: asyncio.Event, counter: list[int], total: int, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        headers = {"Authorization": f"Token {self.key}"}
        async with connect(self.url, additional_headers=headers, origin=self.origin, open_timeout=60,
                           max_queue=None) as ws:
            hello = json.loads(await ws.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello}")
            counter[0] += 1
            if counter[0] == total:
                connected.set()
            while len(self.latencies) < self.expected and not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.time()
                message = json.loads(raw)
                if message.get("code") == "bench":
                    self.latencies.append(now - message["data"]["t"])
        self.done.set()


async def measure(base_url: str, people, args, env: dict[str, str]) -> list[Client]:
    url = base_url.replace("http://", "ws://") + "/ws/events/"
    per_user = {i: len(range(i, args.events, len(people))) for i in range(len(people))}
    clients = [Client(url, people[c % len(people)][2], base_url, per_user[c % len(people)])
               for c in range(args.clients)]
    connected, stop, counter = asyncio.Event(), asyncio.Event(), [0]
    tasks = []
    t0 = time.monotonic()
    for client in clients:  # staggered a little: a burst of 200 handshakes is a different benchmark
        tasks.append(asyncio.create_task(client.run(connected, counter, len(clients), stop)))
        await asyncio.sleep(0.005)
    await asyncio.wait_for(connected.wait(), timeout=120)
    print(f"# {len(clients)} clients connected in {time.monotonic() - t0:.1f} s", flush=True)

    producer = await asyncio.create_subprocess_exec(
        PY, __file__, "--produce", "--users", str(args.users), "--events", str(args.events),
        "--rate", str(args.rate), env=env,
    )
    await producer.wait()
    if producer.returncode:
        raise RuntimeError(f"producer failed with {producer.returncode}")
    try:  # the last inserts still have to travel
        await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in clients)), timeout=30)
    except TimeoutError:
        print("# some clients did not receive everything within 30 s of the last insert", flush=True)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return clients


def report(clients: list[Client], args) -> None:
    latencies = [v for c in clients for v in c.latencies]
    expected = sum(c.expected for c in clients)
    shape = "all on one user" if args.users == 1 else f"spread over {args.users} users"
    print(f"clients: {len(clients)} ({shape}); events inserted: {args.events} at ~{args.rate}/s "
          f"by another process")
    print(f"receipts: {len(latencies)} of {expected} expected")
    if latencies:
        print(f"insert -> receipt latency: {describe_ms(latencies)}")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--produce", action="store_true", help=argparse.SUPPRESS)  # the producer subprocess
    args = parser.parse_args()

    if args.produce:
        setup_django()
        from accounts.models import User

        people = [(u.pk, u.jobs.get().pk, "") for u in User.objects.filter(email__startswith="bench").order_by("id")]
        insert_events(people, args.events, args.rate)
        return

    with environment() as env:
        setup_django()
        from django.conf import settings

        people = create_people(args.users)
        print(f"# EVENT_RELAY_INTERVAL {settings.EVENT_RELAY_INTERVAL} s, {os.cpu_count()} CPUs", flush=True)
        with daphne(env) as server:
            server_cpu, own_cpu = cpu_seconds(server.pid), _own_cpu()
            clients = asyncio.run(measure(server.url, people, args, env))
            server_cpu = (cpu_seconds(server.pid) or 0) - (server_cpu or 0)
            own_cpu = _own_cpu() - own_cpu
        report(clients, args)
        print(f"CPU during the run: daphne {server_cpu:.1f} s, the {args.clients} clients (this process) "
              f"{own_cpu:.1f} s")


if __name__ == "__main__":
    main()
