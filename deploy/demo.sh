#!/usr/bin/env bash
# The end-to-end demo (README command #1): brings everything up, starts `ponte run`, writes a
# stream of business changes to PostgreSQL as an application would, waits until every change has
# reached the units' Firebird databases, compares them row by row and stops ponte with SIGTERM.
# Exits non-zero if any unit does not match, any outbox row is dead, or a wait times out.
#   usage: deploy/demo.sh [--units N] [--changes N] [--concurrency N] [--seed N] [--timeout SECONDS]
#                         [--fresh]
#     defaults: 50 units, 3000 business transactions, 4 writers, seed 42, 600 s drain timeout
#     --fresh: start from nothing: drop the database ponte, delete the demo unit databases and the
#              pax.* queues (the demo's own state only) before the setup
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNITS=50
CHANGES=3000
CONCURRENCY=4
SEED=42
TIMEOUT=600
FRESH=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --units) UNITS="${2:?}"; shift 2 ;;
    --changes) CHANGES="${2:?}"; shift 2 ;;
    --concurrency) CONCURRENCY="${2:?}"; shift 2 ;;
    --seed) SEED="${2:?}"; shift 2 ;;
    --timeout) TIMEOUT="${2:?}"; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

cd "$REPO"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
PONTE="$REPO/target/release/ponte"
# setup.sh uses deploy/ponte.toml for the default 50 units, else writes var/ponte.toml.
if [[ "$UNITS" == 50 ]]; then CONFIG="$REPO/deploy/ponte.toml"; else CONFIG="$REPO/var/ponte.toml"; fi
LOG="$REPO/var/ponte.log"
PG_URL="${PONTE_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/ponte}"
HTTP="http://127.0.0.1:9187"
PONTE_PID=""
T_START=$SECONDS

say() { echo "demo: $*"; }
die() { echo "demo: ERROR: $*" >&2; exit 1; }
phase() { echo; echo "=== $* ==="; PHASE_T0=$SECONDS; }
phase_done() { say "phase done in $((SECONDS - PHASE_T0))s"; }

# Stops ponte (SIGTERM, then SIGKILL after 15 s) if this script started it and it still runs.
# Sets PONTE_EXIT to its exit status and PONTE_STOP_SECS to the time it took.
PONTE_EXIT=""
PONTE_STOP_SECS=""
stop_ponte() {
  [[ -n "$PONTE_PID" ]] || return 0
  local t0=$SECONDS rc=0
  if kill -0 "$PONTE_PID" 2>/dev/null; then
    kill -TERM "$PONTE_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$PONTE_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$PONTE_PID" 2>/dev/null; then
      say "ponte (pid $PONTE_PID) still running 15s after SIGTERM: killing it"
      kill -KILL "$PONTE_PID" 2>/dev/null || true
    fi
  fi
  wait "$PONTE_PID" 2>/dev/null || rc=$?
  PONTE_EXIT=$rc
  PONTE_STOP_SECS=$((SECONDS - t0))
  say "ponte (pid $PONTE_PID) exited with status $rc, ${PONTE_STOP_SECS}s after SIGTERM"
  PONTE_PID=""
}
trap stop_ponte EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

psql_q() { psql -w -X -q -At -d "$PG_URL" -c "$1"; }

# "pending=.. processing=.. sent=.. dead=.." for the whole outbox.
backlog() {
  psql_q "SELECT string_agg(s || '=' || coalesce(c, 0), ' ' ORDER BY o)
          FROM (VALUES (1, 'pending'), (2, 'processing'), (3, 'sent'), (4, 'dead')) AS v(o, s)
          LEFT JOIN (SELECT status, count(*) AS c FROM pg_sync_outbox GROUP BY status) b
          ON b.status = v.s"
}

# Messages still in the unit queues (ready + unacked); rabbitmqctl lags a little for quorum queues.
queued() {
  timeout 20 rabbitmqctl -q list_queues name messages 2>/dev/null \
    | awk '$1 ~ /^pax\.unit\.[0-9]+$/ { n += $2 } END { print n + 0 }' || echo "?"
}

ponte_alive() { [[ -n "$PONTE_PID" ]] && kill -0 "$PONTE_PID" 2>/dev/null; }
log_tail() { say "last lines of ${LOG#"$REPO/"}:"; tail -n 20 "$LOG" >&2 || true; }

# The demo's own state: database ponte, /var/lib/ponte/units/unit_*.fdb and the pax.* queues.
fresh() {
  if pgrep -f "^$PONTE .*run" >/dev/null; then
    die "--fresh: a 'ponte run' is running (pids $(pgrep -f "^$PONTE .*run" | xargs)); stop it first"
  fi
  psql -w -X -q -d "postgres://postgres@127.0.0.1:5432/postgres" \
    -c 'DROP DATABASE IF EXISTS ponte WITH (FORCE)' || die "--fresh: cannot drop database ponte"
  rm -f /var/lib/ponte/units/unit_*.fdb
  local q n=0
  for q in $(timeout 30 rabbitmqctl -q list_queues name 2>/dev/null | grep -E '^pax\.(unit\.[0-9]+|dead|upstream)$' || true); do
    timeout 30 rabbitmqctl -q delete_queue "$q" >/dev/null && n=$((n + 1))
  done
  say "dropped database ponte, removed the unit databases, deleted $n pax.* queues"
}

# Customers and products go to every unit of the run that wrote them, so a demo state built for
# one number of units cannot be verified against another: remember it, refuse to mix.
STATE="$REPO/var/demo.units"
if [[ -n "$FRESH" ]]; then
  phase "0/5 fresh start"
  fresh
  rm -f "$STATE"
  phase_done
elif [[ -f "$STATE" && "$(cat "$STATE")" != "$UNITS" ]]; then
  die "the demo data was written for $(cat "$STATE") units, this run is for $UNITS: run 'deploy/demo.sh --fresh --units $UNITS' (drops the demo database, unit databases and pax.* queues)"
fi

phase "1/5 setup (deploy/setup.sh --units $UNITS)"
"$REPO/deploy/setup.sh" --units "$UNITS" || die "setup failed (see above)"
[[ -x "$PONTE" ]] || die "$PONTE missing after setup"
[[ -f "$CONFIG" ]] || die "config $CONFIG missing"
echo "$UNITS" >"$STATE"
phase_done

phase "2/5 start ponte run (log: var/ponte.log)"
mkdir -p "$REPO/var"
if pgrep -f "^$PONTE .*run" >/dev/null; then
  say "WARNING: another 'ponte run' is already running (pids $(pgrep -f "^$PONTE .*run" | xargs)); it will share the work"
fi
"$PONTE" --config "$CONFIG" run >"$LOG" 2>&1 &
PONTE_PID=$!
say "ponte run started (pid $PONTE_PID, config ${CONFIG#"$REPO/"})"
deadline=$((SECONDS + 90))
until curl -fsS -m 2 "$HTTP/readyz" >/dev/null 2>&1; do
  ponte_alive || { log_tail; die "ponte run exited during start-up: see var/ponte.log"; }
  if ((SECONDS >= deadline)); then
    log_tail
    die "ponte not ready within 90s ($HTTP/readyz): see var/ponte.log"
  fi
  sleep 1
done
say "ready ($HTTP/readyz)"
phase_done

phase "3/5 load: $CHANGES business transactions, $CONCURRENCY writers, seed $SEED"
say "outbox before: $(backlog)"
dead_before="$(psql_q "SELECT count(*) FROM pg_sync_outbox WHERE status = 'dead'")"
dlq() { timeout 20 rabbitmqctl -q list_queues name messages 2>/dev/null | awk '$1 == "pax.dead" { n = $2 } END { print n + 0 }' || echo 0; }
dlq_before="$(dlq)"
"$PONTE" --config "$CONFIG" demo load --changes "$CHANGES" --concurrency "$CONCURRENCY" --seed "$SEED" \
  || die "demo load failed (see above)"
phase_done

phase "4/5 wait until every change reached the units (timeout ${TIMEOUT}s)"
deadline=$((SECONDS + TIMEOUT))
quiet=0
while :; do
  ponte_alive || { log_tail; die "ponte run exited while draining: see var/ponte.log"; }
  b="$(backlog)"
  q="$(queued)"
  say "$(printf '%4ss' $((SECONDS - PHASE_T0)))  outbox: $b  queued: $q"
  pending="$(sed -E 's/.*pending=([0-9]+).*/\1/' <<<"$b")"
  processing="$(sed -E 's/.*processing=([0-9]+).*/\1/' <<<"$b")"
  if [[ "$pending" == 0 && "$processing" == 0 && "$q" == 0 ]]; then
    quiet=$((quiet + 1))
    ((quiet >= 2)) && break # twice in a row: quorum queue counts lag a little
  else
    quiet=0
  fi
  if ((SECONDS >= deadline)); then
    log_tail
    die "not drained after ${TIMEOUT}s (outbox: $b, queued: $q): is ponte applying? see var/ponte.log and 'ponte status'"
  fi
  sleep 3
done
dead=$(( $(psql_q "SELECT count(*) FROM pg_sync_outbox WHERE status = 'dead'") - dead_before ))
dead_letters=$(( $(dlq) - dlq_before ))
say "drained; new dead outbox rows: $dead; new messages in pax.dead: $dead_letters"
phase_done

phase "5/5 verify every unit row by row"
ok=""
for attempt in 1 2 3; do
  if "$PONTE" --config "$CONFIG" demo verify >"$REPO/var/verify.txt" 2>&1; then ok=1; break; fi
  ((attempt < 3)) && { say "attempt $attempt: differences (the last changes may still be committing); retrying in 5s"; sleep 5; }
done
cat "$REPO/var/verify.txt"
phase_done

echo
say "stopping ponte (SIGTERM)"
stop_ponte
rc=0
if [[ -z "$ok" ]]; then say "FAILED: some units do not match PostgreSQL (details above, also in var/verify.txt)"; rc=1; fi
if ((dead > 0 || dead_letters > 0)); then
  say "FAILED: $dead new dead outbox rows / $dead_letters new dead letters: inspect them with 'ponte status'"
  rc=1
fi
if [[ "$PONTE_EXIT" != 0 ]]; then
  how="status $PONTE_EXIT"
  ((PONTE_EXIT > 128)) && how="signal $((PONTE_EXIT - 128)) ($(kill -l $((PONTE_EXIT - 128)) 2>/dev/null || echo ?))"
  say "FAILED: ponte ended with $how on SIGTERM instead of draining and exiting 0: see var/ponte.log"
  rc=1
elif ((PONTE_STOP_SECS > 5)); then
  say "FAILED: ponte took ${PONTE_STOP_SECS}s to drain on SIGTERM (the limit is 5s)"
  rc=1
fi
((rc == 0)) && say "SUCCESS: $UNITS units match PostgreSQL row by row"
say "total time $((SECONDS - T_START))s"
exit "$rc"
