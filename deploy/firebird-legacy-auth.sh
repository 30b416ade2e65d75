#!/usr/bin/env bash
# A second, private Firebird 3.0 server that speaks only what a real Firebird 2.5 site speaks:
# AuthServer = Legacy_Auth (no SRP), Legacy_UserManager, no wire encryption. It has its own root
# directory (firebird.conf, databases.conf, security database, lock directory) and its own port,
# so the shared server on 3050 is never reconfigured or restarted. Idempotent; every wait bounded.
# Root only (the server runs as user firebird, like the shared one).
#   usage: deploy/firebird-legacy-auth.sh {start|stop|status|check|dir}
#     start   build the root directory once, start the server, wait for 127.0.0.1:$PORT
#     stop    stop this instance only (by its pidfile and binary)
#     status  exit 0 when running and listening, 3 when stopped
#     check   SYSDBA logs in through Legacy_Auth; a client offering only Srp is refused
#     dir     print the directory its databases go in (writable by user firebird)
# env: PONTE_FB25_DIR (default /tmp/ponte-fb25), PONTE_FB25_PORT (default 3055),
#      PONTE_FIREBIRD_PASSWORD (SYSDBA password, default masterkey), PONTE_FB_WAIT (seconds, 30)
set -euo pipefail

DIR="${PONTE_FB25_DIR:-/tmp/ponte-fb25}"
PORT="${PONTE_FB25_PORT:-3055}"
FB_PASSWORD="${PONTE_FIREBIRD_PASSWORD:-${PONTE_FB_PASSWORD:-masterkey}}"
FB_WAIT="${PONTE_FB_WAIT:-30}"
FB_LIB=/usr/lib/x86_64-linux-gnu/firebird/3.0
SERVER=/usr/sbin/firebird
PIDFILE="$DIR/firebird.pid"
SECURITY_DB="$DIR/security2.fdb"
# The schema of a legacy security database (PLG$USERS), as Firebird ships it.
SECURITY_SQL=/usr/share/firebird/3.0/security.sql

say() { echo "firebird-legacy-auth: $*"; }
die() { echo "firebird-legacy-auth: ERROR: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (the server runs as user firebird)"
[[ -x "$SERVER" ]] || die "$SERVER missing: run deploy/firebird.sh install first"

# Tools run against this instance's root: its own conf, plugins, lock directory.
with_root() { FIREBIRD="$DIR" FIREBIRD_LOCK="$DIR/lock" "$@"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running() {
  [[ -f "$PIDFILE" ]] && start-stop-daemon --status --pidfile "$PIDFILE" --exec "$SERVER"
}

build_root() {
  install -d -o firebird -g firebird "$DIR" "$DIR/lock" "$DIR/db"
  local item
  for item in plugins UDF lib firebird.msg; do
    [[ -e "$DIR/$item" ]] || ln -s "$FB_LIB/$item" "$DIR/$item"
  done
  # The character sets (WIN1252, ISO8859_1 ...): a real directory, the server does not load
  # fbintl through a symlinked one ("CHARACTER SET WIN1252 is not installed").
  if [[ ! -f "$DIR/intl/libfbintl.so" ]]; then
    install -d -o firebird -g firebird "$DIR/intl"
    cp "$FB_LIB/intl/libfbintl.so" "$DIR/intl/"
    cp -L "$FB_LIB/intl/fbintl.conf" "$DIR/intl/"
  fi
  [[ -f "$DIR/plugins.conf" ]] || cp /etc/firebird/3.0/plugins.conf "$DIR/plugins.conf"
  touch "$DIR/fbtrace.conf"
  # What a 2.5 server offers a client: the old authentication only, no wire encryption.
  cat >"$DIR/firebird.conf" <<EOF
RemoteServicePort = $PORT
RemoteBindAddress = 127.0.0.1
AuthServer = Legacy_Auth
AuthClient = Legacy_Auth
UserManager = Legacy_UserManager
WireCrypt = Disabled
ServerMode = Super
IpcName = PONTE_FB25_$PORT
UdfAccess = None
# Its own users: without this the instance would open the shared server's security3.fdb (the
# compiled-in default) and lock the shared server out of it.
SecurityDatabase = $SECURITY_DB
EOF
  printf 'security.db = %s\n' "$SECURITY_DB" >"$DIR/databases.conf"
  chown firebird:firebird "$DIR"/*.conf
  if [[ ! -f "$SECURITY_DB" ]]; then
    say "creating the security database $SECURITY_DB (SYSDBA through Legacy_UserManager)"
    [[ -f "$SECURITY_SQL" ]] || die "$SECURITY_SQL missing (package firebird3.0-common)"
    (cd "$DIR" && printf "CREATE DATABASE '%s';\nINPUT '%s';\nCREATE OR ALTER USER SYSDBA PASSWORD '%s' USING PLUGIN Legacy_UserManager;\nCOMMIT;\n" \
        "$SECURITY_DB" "$SECURITY_SQL" "$FB_PASSWORD" \
      | with_root timeout 60 runuser -u firebird -- isql-fb -q -bail -user SYSDBA) \
      || { rm -f "$SECURITY_DB"; die "could not create $SECURITY_DB"; }
  fi
}

start() {
  if running && listening; then say "already running on 127.0.0.1:$PORT"; return; fi
  build_root
  if listening; then die "port $PORT is taken by another process; set PONTE_FB25_PORT"; fi
  with_root start-stop-daemon --start --background --make-pidfile --pidfile "$PIDFILE" \
    --chuid firebird:firebird --chdir "$DIR" --exec "$SERVER" -- -e "$DIR" -el "$DIR/lock"
  local waited=0
  until listening; do
    # The pidfile is written by the forked child: give it a moment before asking.
    (( waited < 5 )) || running || die "the server exited at start (see $DIR/firebird.log)"
    (( waited++ < FB_WAIT * 5 )) || die "not listening on 127.0.0.1:$PORT after ${FB_WAIT}s"
    sleep 0.2
  done
  say "running on 127.0.0.1:$PORT (Legacy_Auth only), root $DIR"
}

stop() {
  if ! running; then say "not running"; rm -f "$PIDFILE"; return; fi
  start-stop-daemon --stop --pidfile "$PIDFILE" --exec "$SERVER" --retry "TERM/10/KILL/5" >/dev/null
  rm -f "$PIDFILE"
  say "stopped"
}

check() {
  running && listening || die "not running: $0 start"
  local db="127.0.0.1/$PORT:$DIR/db/check.fdb" out
  rm -f "$DIR/db/check.fdb"
  out="$(printf "CREATE DATABASE '%s' USER 'SYSDBA' PASSWORD '%s';\nSELECT 'auth=' || TRIM(MON\$AUTH_METHOD) FROM MON\$ATTACHMENTS WHERE MON\$ATTACHMENT_ID = CURRENT_CONNECTION;\n" \
    "$db" "$FB_PASSWORD" | timeout 30 isql-fb -q 2>&1)" || die "Legacy_Auth login failed: $out"
  grep -q "auth=Legacy_Auth" <<<"$out" || die "the login did not use Legacy_Auth: $out"
  say "SYSDBA logs in through Legacy_Auth"
  # A client that offers only SRP (what the pure-Rust client does) must be refused.
  local client="$DIR/srp-client" item refused=""
  install -d "$client"
  printf 'AuthClient = Srp256, Srp\n' >"$client/firebird.conf"
  for item in plugins intl lib firebird.msg; do
    [[ -e "$client/$item" ]] || ln -s "$FB_LIB/$item" "$client/$item"
  done
  out="$(printf "CONNECT '%s' USER 'SYSDBA' PASSWORD '%s';\nSELECT 'srp-in' FROM RDB\$DATABASE;\n" \
    "$db" "$FB_PASSWORD" | FIREBIRD="$client" timeout 30 isql-fb -q 2>&1)" || true
  grep -q "srp-in" <<<"$out" || refused=yes
  printf "CONNECT '%s' USER 'SYSDBA' PASSWORD '%s';\nDROP DATABASE;\n" "$db" "$FB_PASSWORD" \
    | timeout 30 isql-fb -q >/dev/null 2>&1 || say "could not drop $db"
  [[ -n "$refused" ]] || die "a Srp-only client logged in: the server is not Legacy_Auth only"
  grep -q "Error occurred during login" <<<"$out" || die "unexpected refusal: $out"
  say "a Srp-only client is refused"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running && listening; then say "running on $PORT"; else say "stopped"; exit 3; fi ;;
  check) check ;;
  dir) echo "$DIR/db" ;;
  *) die "usage: $0 {start|stop|status|check|dir}" ;;
esac
