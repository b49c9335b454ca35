#!/usr/bin/env bash
# Run the test suite (`make test`, README's test command) twice at the same time on this machine, as a second
# developer or CI job would: this tree and a throw-away copy of it (the working tree as it is, uncommitted
# changes included), each with its own var/ (DATA_DIR), test database, Redis namespace, tmp dirs and ports.
# Both must pass; a collision or a flake fails one. CI (.ci/run) runs it with the copy on PostgreSQL + Redis.
#
#   tests/run_concurrently.sh                 the whole suite, twice at once
#   tests/run_concurrently.sh -m e2e          the real-process tests only (any pytest arguments)
#   RUNS=5 tests/run_concurrently.sh          five rounds in a row; stops at the first failing round
#   B_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres B_REDIS_URL=redis://127.0.0.1:6379/15 \
#     tests/run_concurrently.sh               the copy on PostgreSQL + Redis, this tree on SQLite (as CI)
#
# The copy shares this tree's .venv (installed once, before both start). Logs: $LOG_DIR (default a new dir
# under /tmp). This tree's output is shown live; a failing side's summary is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
runs=${RUNS:-1}
copy=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-copy.XXXXXX")
logs=${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/flotilla-concurrent-logs.XXXXXX")}
trap 'rm -rf "$copy"' EXIT

make --no-print-directory venv-test debs-test
tar -C "$here" --exclude=./.venv --exclude=./var --exclude=./.git --exclude='__pycache__' \
  --exclude=./.pytest_cache --exclude=./.ruff_cache -cf - . | tar -C "$copy" -xf -
ln -s "$here/.venv" "$copy/.venv"
pytest_args="-p no:cacheprovider $*"

for round in $(seq "$runs"); do
  echo "== round $round/$runs: $here and $copy${B_DATABASE_URL:+ (copy: $B_DATABASE_URL)}, make test $*"
  start=$(date +%s)
  # DATABASE_URL / REDIS_URL, when set, are shared on purpose: each run has its own test database
  # (conftest.py) and its own Redis namespace (REDIS_KEY_PREFIX).
  # This tree's output is shown as it runs (tee); the copy's goes to its log, summed up at the end.
  (cd "$here" && REDIS_KEY_PREFIX="flotilla-test-$$-a" make --no-print-directory test PYTEST_ARGS="$pytest_args" \
    2>&1 | tee "$logs/round$round-a.log") & a=$!
  (cd "$copy" && env ${B_DATABASE_URL:+DATABASE_URL=$B_DATABASE_URL} ${B_REDIS_URL:+REDIS_URL=$B_REDIS_URL} \
    REDIS_KEY_PREFIX="flotilla-test-$$-b" make --no-print-directory test PYTEST_ARGS="$pytest_args" \
    >"$logs/round$round-b.log" 2>&1) & b=$!
  status_a=0 status_b=0
  wait $a || status_a=1
  wait $b || status_b=1
  for side in a b; do
    printf '  %s: %s\n' "$side" "$(grep -E '(passed|failed|error)' "$logs/round$round-$side.log" | tail -n 1)"
  done
  echo "   $(( $(date +%s) - start )) s; logs in $logs"
  for side in a b; do
    var=status_$side
    if [ "${!var}" != 0 ]; then
      echo "== side $side failed; its summary:"
      sed -n '/short test summary info/,$p' "$logs/round$round-$side.log" | tail -n 60
      grep -E '^(E  |FAILED|ERROR)' "$logs/round$round-$side.log" | head -n 60
    fi
  done
  [ "$status_a$status_b" = 00 ] || { echo "round $round failed"; exit 1; }
done
