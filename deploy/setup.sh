#!/usr/bin/env bash
# Local bring-up of everything ponte needs on a Debian 12 machine (root): PostgreSQL, RabbitMQ,
# Firebird, the wasm toolchain, the transforms, the host binary, the demo databases and the
# migrations. Idempotent: a second run only checks, and prints the time of every step.
#   usage: deploy/setup.sh [--units N] [--services-only]
#     --units N         create N demo unit databases (default 50) and migrate units 1..N
#     --services-only   only install/start the servers, the wasm toolchain, promtool and chromium (what tests need)
# env: PONTE_FIREBIRD_PASSWORD (SYSDBA password, default masterkey; PONTE_FB_PASSWORD is the old name), PONTE_SERVICE_WAIT (seconds, 120)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNITS=50
SERVICES_ONLY=""
FB_PASSWORD="${PONTE_FIREBIRD_PASSWORD:-${PONTE_FB_PASSWORD:-masterkey}}"
SERVICE_WAIT="${PONTE_SERVICE_WAIT:-120}"
UNITS_DIR=/var/lib/ponte/units
PG_URL_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
PG_URL="postgres://postgres@127.0.0.1:5432/ponte"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --units) UNITS="${2:?--units needs a number}"; shift 2 ;;
    --units=*) UNITS="${1#--units=}"; shift ;;
    --services-only) SERVICES_ONLY=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$UNITS" =~ ^[1-9][0-9]*$ ]] || { echo "setup: --units must be a positive integer, got '$UNITS'" >&2; exit 2; }

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

T_START=$SECONDS
step() { # step "title" function args...
  local title="$1"; shift
  local t0=$SECONDS
  echo "==> $title"
  "$@"
  echo "    ok: $title ($((SECONDS - t0))s)"
}

[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
[[ $EUID -eq 0 ]] || die "run as root (it installs packages and starts servers)"
export DEBIAN_FRONTEND=noninteractive PGOPTIONS="-c client_min_messages=warning"
APT_UPDATED=""
apt_install() {
  if [[ -z "$APT_UPDATED" ]] && ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    apt-get update -q || die "apt-get update failed: check the network / apt sources"
    APT_UPDATED=1
  fi
  if ! apt-get install -y -q --no-install-recommends "$@"; then
    [[ -n "$APT_UPDATED" ]] || { say "apt-get install failed; running apt-get update once and retrying"; apt-get update -q; APT_UPDATED=1; }
    apt-get install -y -q --no-install-recommends "$@" || die "apt-get install $* failed: see the apt output above"
  fi
}
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

port_open() { timeout 2 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# --- build tools --------------------------------------------------------------------------------
tools() {
  local missing=() p
  for p in build-essential pkg-config ca-certificates curl; do have_pkg "$p" || missing+=("$p"); done
  if ((${#missing[@]})); then say "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
  command -v cargo >/dev/null || [[ -x "$HOME/.cargo/bin/cargo" ]] \
    || die "cargo not found: install rustup (toolchain from rust-toolchain.toml) and re-run"
  say "build tools present"
}

# --- PostgreSQL ---------------------------------------------------------------------------------
postgres() {
  if ! have_pkg postgresql; then say "installing postgresql"; apt_install postgresql postgresql-client; fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 -t 2; then
    local ver
    ver="$(ls /etc/postgresql | sort -V | tail -1)"
    [[ -n "$ver" ]] || die "no cluster under /etc/postgresql: run 'pg_createcluster 15 main' and re-run"
    say "starting PostgreSQL $ver/main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    local deadline=$((SECONDS + SERVICE_WAIT))
    until pg_isready -q -h 127.0.0.1 -p 5432 -t 2; do
      ((SECONDS < deadline)) || die "PostgreSQL not ready on 127.0.0.1:5432 after ${SERVICE_WAIT}s: see /var/log/postgresql/postgresql-$ver-main.log"
      sleep 0.5
    done
  fi
  # The local config uses postgres@127.0.0.1 without a password (trust on loopback, dev/CI only).
  if ! psql -w -X -q -d "$PG_URL_ADMIN" -Atc 'SELECT 1' >/dev/null 2>&1; then
    local ver hba
    ver="$(ls /etc/postgresql | sort -V | tail -1)"
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    say "postgres@127.0.0.1 needs a password: adding loopback trust to $hba (local dev/CI only)"
    sed -i '1i host all postgres 127.0.0.1/32 trust  # ponte deploy/setup.sh\nhost all postgres ::1/128 trust  # ponte deploy/setup.sh' "$hba"
    runuser -u postgres -- psql -X -q -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 1
    psql -w -X -q -d "$PG_URL_ADMIN" -Atc 'SELECT 1' >/dev/null \
      || die "cannot connect as $PG_URL_ADMIN: check $hba"
  fi
  say "PostgreSQL $(psql -w -X -d "$PG_URL_ADMIN" -Atc 'SHOW server_version') ready on 127.0.0.1:5432"
}

# --- RabbitMQ -----------------------------------------------------------------------------------
rabbitmq() {
  if ! have_pkg rabbitmq-server; then say "installing rabbitmq-server"; apt_install rabbitmq-server; fi
  if port_open 5672; then say "RabbitMQ listening on 127.0.0.1:5672"; return; fi
  if ! pgrep -u rabbitmq -x beam.smp >/dev/null; then
    say "starting RabbitMQ (rabbitmq-server -detached)"
    rabbitmq-server -detached || die "rabbitmq-server -detached failed: see /var/log/rabbitmq/"
  fi
  local deadline=$((SECONDS + SERVICE_WAIT))
  until rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "RabbitMQ did not start within ${SERVICE_WAIT}s: see /var/log/rabbitmq/ (try 'rabbitmqctl status')"
    sleep 1
  done
  deadline=$((SECONDS + 30))
  until port_open 5672; do
    ((SECONDS < deadline)) || die "RabbitMQ started but 127.0.0.1:5672 is closed: check /etc/rabbitmq/"
    sleep 0.5
  done
  say "RabbitMQ ready on 127.0.0.1:5672"
}

# --- Firebird -----------------------------------------------------------------------------------
firebird() {
  PONTE_FIREBIRD_PASSWORD="$FB_PASSWORD" "$REPO/deploy/firebird.sh" install
  PONTE_FIREBIRD_PASSWORD="$FB_PASSWORD" "$REPO/deploy/firebird.sh" start
}

# --- toolchain and builds -----------------------------------------------------------------------
wasm_toolchain() { say "wasm toolchain: $("$REPO/deploy/wasm-toolchain.sh")"; }

# The production transforms only: the test components (hostile/*, versioned/*, template) must
# never land in the directory a running ponte watches.
TRANSFORM_CRATES=(customers orders generic)
transforms() {
  local script="$REPO/deploy/build-transforms.sh"
  [[ -x "$script" ]] || die "$script missing or not executable: it builds the wasm transforms"
  (cd "$REPO" && "$script" var/transforms "${TRANSFORM_CRATES[@]}") \
    || die "building the transforms failed: see the output above"
  local f keep
  for f in "${TRANSFORM_CRATES[@]}"; do
    [[ -s "$REPO/var/transforms/$f.wasm" ]] || die "var/transforms/$f.wasm missing after the build"
  done
  # Anything else there (e.g. test components from a `build-transforms.sh var/transforms` without
  # a crate list) would be loaded by a running ponte: remove it.
  for f in "$REPO"/var/transforms/*.wasm; do
    keep=""
    for c in "${TRANSFORM_CRATES[@]}"; do [[ "$(basename "$f")" == "$c.wasm" ]] && keep=1; done
    [[ -n "$keep" ]] || { say "removing stray component ${f#"$REPO/"}"; rm -f "$f"; }
  done
  say "transforms in var/transforms: ${TRANSFORM_CRATES[*]}"
}

host_build() {
  (cd "$REPO" && cargo build --release -p ponte) || die "cargo build --release -p ponte failed: see the compiler output above"
}

# --- demo databases -----------------------------------------------------------------------------
pg_database() {
  if [[ "$(psql -w -X -d "$PG_URL_ADMIN" -Atc "SELECT 1 FROM pg_database WHERE datname = 'ponte'")" != 1 ]]; then
    psql -w -X -q -d "$PG_URL_ADMIN" -c 'CREATE DATABASE ponte' || die "CREATE DATABASE ponte failed"
    say "created database ponte"
  fi
  psql -w -X -q -v ON_ERROR_STOP=1 -d "$PG_URL" -f "$REPO/deploy/demo/postgres-app.sql" \
    || die "applying deploy/demo/postgres-app.sql to $PG_URL failed"
  say "database ponte has the demo application schema"
}

# Creates unit_{id}.fdb (WIN1252, page size 16384, legacy schema) for every id in 1..UNITS that has
# no file yet. isql-fb creates one template database (a database costs ~1 s of fsyncs to create),
# which is copied while detached; each copy is renamed into place when complete, so a file that
# exists is always a whole database.
fb_units() {
  install -d -o firebird -g firebird -m 0770 "$UNITS_DIR"
  local id missing=()
  for ((id = 1; id <= UNITS; id++)); do
    [[ -f "$UNITS_DIR/unit_$id.fdb" ]] || missing+=("$id")
  done
  if ((${#missing[@]} == 0)); then say "all $UNITS unit databases exist in $UNITS_DIR"; return; fi
  say "creating ${#missing[@]} unit database(s) in $UNITS_DIR"
  local template="$UNITS_DIR/.template.fdb.creating" pw="${FB_PASSWORD//\'/\'\'}"
  rm -f "$template"
  {
    echo "CREATE DATABASE '127.0.0.1:$template' USER 'SYSDBA' PASSWORD '$pw' PAGE_SIZE 16384 DEFAULT CHARACTER SET WIN1252;"
    cat "$REPO/deploy/demo/firebird-legacy.sql"
    echo "COMMIT;"
  } | isql-fb -q -b -user SYSDBA -password "$FB_PASSWORD" \
    || die "creating the template unit database failed (isql-fb output above); check '$REPO/deploy/firebird.sh check'"
  for id in "${missing[@]}"; do
    cp --sparse=always "$template" "$UNITS_DIR/unit_$id.fdb.creating"
    chown firebird:firebird "$UNITS_DIR/unit_$id.fdb.creating"
    chmod 0660 "$UNITS_DIR/unit_$id.fdb.creating"
    mv "$UNITS_DIR/unit_$id.fdb.creating" "$UNITS_DIR/unit_$id.fdb"
  done
  rm -f "$template"
  say "created unit database(s) ${missing[*]}"
}

# The ponte config for this many units: deploy/ponte.toml as is for the default 50 units, else a
# copy in var/ with [units] ids = "1-N".
# --- tools the tests call ----------------------------------------------------------------------
# promtool (Debian's prometheus package; its server is not started) checks the alert rules;
# headless Chromium (Debian's chromium) opens the status page.
test_tools() {
  if ! command -v promtool >/dev/null; then say "installing prometheus (for promtool)"; apt_install prometheus; fi
  if ! command -v chromium >/dev/null; then say "installing chromium (status page test)"; apt_install chromium; fi
  say "$(promtool --version 2>&1 | head -1); $(chromium --version 2>/dev/null | head -1)"
}

config_path() {
  if [[ "$UNITS" == 50 ]]; then echo "$REPO/deploy/ponte.toml"; return; fi
  mkdir -p "$REPO/var"
  sed -E "s|^ids[[:space:]]*=.*|ids = \"1-$UNITS\"|" "$REPO/deploy/ponte.toml" >"$REPO/var/ponte.toml"
  echo "$REPO/var/ponte.toml"
}

migrate() {
  local cfg
  cfg="$(config_path)"
  say "config: ${cfg#"$REPO/"}"
  (cd "$REPO" && target/release/ponte --log-format text --config "$cfg" migrate) \
    || die "ponte migrate failed (config $cfg): see the messages above"
}

step "build tools" tools
step "PostgreSQL" postgres
step "RabbitMQ" rabbitmq
step "Firebird" firebird
step "wasm toolchain" wasm_toolchain
step "test tools (promtool, chromium)" test_tools
if [[ -z "$SERVICES_ONLY" ]]; then
  step "transforms -> var/transforms" transforms
  step "host build (cargo build --release -p ponte)" host_build
  step "PostgreSQL database ponte" pg_database
  step "Firebird unit databases 1..$UNITS" fb_units
  step "migrations (ponte migrate)" migrate
fi
echo "setup: done in $((SECONDS - T_START))s"
