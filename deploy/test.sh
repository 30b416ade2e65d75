#!/usr/bin/env bash
# The test command (README): makes sure PostgreSQL, RabbitMQ and Firebird run and the wasm
# toolchain exists (deploy/setup.sh --services-only), then runs every test of the workspace in
# release mode against those real servers. Tests never skip: a missing server fails them.
# Exits non-zero if any test fails.
#   usage: deploy/test.sh [extra cargo test arguments, e.g. a test name filter]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
cd "$REPO"

t0=$SECONDS
echo "==> services (deploy/setup.sh --services-only)"
"$REPO/deploy/setup.sh" --services-only

echo "==> tests (cargo test --workspace --release)"
t1=$SECONDS
rc=0
# cargo test runs the test binaries one after another: the fault tests stop the broker and
# restart PostgreSQL, which must never overlap another suite (nextest would run them in parallel).
cargo test --workspace --release --no-fail-fast "$@" 2>&1 || rc=$?
echo "test: tests took $((SECONDS - t1))s, total $((SECONDS - t0))s"
if ((rc != 0)); then
  echo "test: FAILED (exit $rc): see the failing tests above" >&2
  exit "$rc"
fi
echo "test: all tests passed"
