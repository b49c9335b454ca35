"""The per-indexer rate limiter holds across processes: two processes claiming at once get start times at
least one interval apart, with the database limiter (no Redis) and with the cache limiter on Redis."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import uuid

import pytest

from indexers import ratelimit
from tests import procs
from tests.indexers.factories import IndexerFactory

INTERVAL = 0.25
CLAIMS = 6
SCRIPT = f"""
import json, sys, django
django.setup()
from indexers import ratelimit
sys.stdin.readline()  # both processes start claiming together
print(json.dumps([ratelimit.reserve(int(sys.argv[1]), {INTERVAL}) for _ in range({CLAIMS})]))
"""


def claims_from_two_processes(env: dict, indexer_id: int) -> list[float]:
    runs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(indexer_id)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate("go\n", timeout=60) for run in runs]
    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
    return sorted(t for out, _ in outputs for t in json.loads(out.strip().splitlines()[-1]))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("limiter", ["database", "cache"])
def test_two_processes_never_claim_closer_than_the_interval(tmp_path, limiter):
    indexer = IndexerFactory()
    extra = {"INDEXERS_RATE_LIMITER": limiter}
    if limiter == "cache":
        extra.update(REDIS_URL="redis://127.0.0.1:6379/0", REDIS_KEY_PREFIX=f"test-rl-{uuid.uuid4().hex}")
    times = claims_from_two_processes(procs.process_env(tmp_path, **extra), indexer.pk)
    assert len(times) == 2 * CLAIMS
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= INTERVAL - 1e-6, gaps


@pytest.mark.django_db
def test_no_interval_is_no_wait(settings):
    settings.INDEXERS_RATE_LIMITER = "database"
    assert ratelimit.reserve(1, 0, now=100.0) == 100.0


@pytest.mark.django_db
def test_database_claims_are_spaced_in_one_process(settings):
    settings.INDEXERS_RATE_LIMITER = "database"
    indexer = IndexerFactory()
    starts = [ratelimit.reserve(indexer.pk, 2.0, now=1000.0) for _ in range(3)]
    assert starts == [1000.0, 1002.0, 1004.0]
