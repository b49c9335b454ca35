#!/usr/bin/env bash
# Run the test suite twice at the same time on this machine, as a second developer or CI job would: this tree
# and a throw-away copy of it (the working tree as it is, uncommitted changes included), each with its own
# var/ (DATA_DIR), test database, Redis namespace, tmp dirs and ports. Both must pass; a collision or a flake
# fails one.
#
#   tests/run_concurrently.sh                 the whole suite, twice at once
#   tests/run_concurrently.sh -m e2e          the real-process tests only
#   RUNS=5 tests/run_concurrently.sh          five rounds in a row; stops at the first failing round
#   B_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres B_REDIS_URL=redis://127.0.0.1:6379/15 \
#     tests/run_concurrently.sh               the copy on PostgreSQL + Redis, this tree on SQLite (as CI)
#
# The copy shares this tree's .venv (read-only use). Logs: $LOG_DIR (default a new dir under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
runs=${RUNS:-1}
copy=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-copy.XXXXXX")
logs=${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/flotilla-concurrent-logs.XXXXXX")}
trap 'rm -rf "$copy"' EXIT

rsync -a --exclude .venv --exclude var --exclude .git --exclude __pycache__ --exclude .pytest_cache \
  --exclude .ruff_cache ./ "$copy/"
ln -s "$here/.venv" "$copy/.venv"

for round in $(seq "$runs"); do
  echo "== round $round/$runs: $here and $copy, pytest $*"
  start=$(date +%s)
  # DATABASE_URL / REDIS_URL, when set, are shared on purpose: each run has its own test database
  # (conftest.py) and its own Redis namespace (REDIS_KEY_PREFIX, as `make test` sets it).
  (cd "$here" && REDIS_KEY_PREFIX="flotilla-test-$$-a" .venv/bin/pytest -p no:cacheprovider "$@" \
    >"$logs/round$round-a.log" 2>&1) & a=$!
  (cd "$copy" && env ${B_DATABASE_URL:+DATABASE_URL=$B_DATABASE_URL} ${B_REDIS_URL:+REDIS_URL=$B_REDIS_URL} \
    REDIS_KEY_PREFIX="flotilla-test-$$-b" .venv/bin/pytest -p no:cacheprovider "$@" \
    >"$logs/round$round-b.log" 2>&1) & b=$!
  status=0
  wait $a || status=1
  wait $b || status=1
  for side in a b; do
    printf '  %s: %s\n' "$side" "$(tail -n 1 "$logs/round$round-$side.log")"
  done
  echo "   $(( $(date +%s) - start )) s; logs in $logs"
  [ "$status" = 0 ] || { echo "round $round failed"; exit 1; }
done
