#!/usr/bin/env bash
# Installs, configures and runs the local Firebird 3.0 server that stands in for the units' 2.5
# servers (Debian ships no 2.5). Idempotent; every wait is bounded. Root only.
#   usage: deploy/firebird.sh {install|start|stop|restart|status|wait|check}
#     install  apt packages (SYSDBA password preseeded), firebird.conf (Srp + Legacy_Auth, WireCrypt
#              Enabled, 127.0.0.1 only), SYSDBA in both user managers
#     start    start fbguard -> firebird as user firebird, wait for 127.0.0.1:3050
#     stop     stop fbguard first (it respawns firebird), then firebird; by pidfile / exact binary
#     status   exit 0 when running and listening, 3 when stopped
#     wait     wait (PONTE_FB_WAIT seconds, default 30) for 127.0.0.1:3050
#     check    log in as SYSDBA through Srp AND through Legacy_Auth (what a real 2.5 site speaks)
# The fault tests use `stop` / `start` to take the whole server down and bring it back.
# env: PONTE_FIREBIRD_PASSWORD (SYSDBA password, default masterkey; PONTE_FB_PASSWORD is the old name), PONTE_FB_WAIT (seconds, default 30)
set -euo pipefail

FB_PASSWORD="${PONTE_FIREBIRD_PASSWORD:-${PONTE_FB_PASSWORD:-masterkey}}"
FB_WAIT="${PONTE_FB_WAIT:-30}"
FB_CONF=/etc/firebird/3.0/firebird.conf
FB_ROOT=/usr/lib/x86_64-linux-gnu/firebird/3.0
FB_SECURITY_DB=/var/lib/firebird/3.0/system/security3.fdb
RUN_DIR=/run/firebird3.0
PIDFILE="$RUN_DIR/firebird.pid"
GUARD=/usr/sbin/fbguard
PACKAGES=(firebird3.0-server firebird3.0-utils libfbclient2 firebird-dev)

say() { echo "firebird: $*"; }
die() { echo "firebird: ERROR: $*" >&2; exit 1; }

need_root() { [[ $EUID -eq 0 ]] || die "run as root (it installs packages and starts the server as user firebird)"; }

# --- install ------------------------------------------------------------------------------------

packages_missing() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]}"
}

install_packages() {
  local missing
  missing="$(packages_missing)"
  if [[ -z "$missing" ]]; then say "packages already installed"; return; fi
  say "installing: $missing"
  echo "firebird3.0-server shared/firebird/sysdba_password/first_install password $FB_PASSWORD" \
    | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  if ! apt-get install -y -q --no-install-recommends $missing; then
    say "apt-get install failed; running apt-get update once and retrying"
    apt-get update -q || die "apt-get update failed: check the network / apt sources"
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing \
      || die "apt-get install $missing failed: see the apt output above"
  fi
  # The package may try to start a server through init scripts; we run it ourselves.
  stop_server quiet
}

# Sets `key = value` in firebird.conf, replacing an active setting; prints "changed" if it did.
conf_set() {
  local key="$1" value="$2"
  if grep -qE "^[[:space:]]*${key}[[:space:]]*=[[:space:]]*${value//,/,}[[:space:]]*$" "$FB_CONF" \
     && [[ "$(grep -cE "^[[:space:]]*${key}[[:space:]]*=" "$FB_CONF")" -eq 1 ]]; then
    return
  fi
  sed -i -E "/^[[:space:]]*${key}[[:space:]]*=/d" "$FB_CONF"
  [[ -z "$(tail -c1 "$FB_CONF")" ]] || echo >>"$FB_CONF"
  printf '%s = %s\n' "$key" "$value" >>"$FB_CONF"
  echo changed
}

configure() {
  [[ -f "$FB_CONF" ]] || die "$FB_CONF missing: run '$0 install' (package firebird3.0-common)"
  local changed=""
  changed+="$(conf_set AuthServer 'Srp256, Srp, Legacy_Auth')"
  changed+="$(conf_set UserManager 'Srp, Legacy_UserManager')"
  changed+="$(conf_set WireCrypt 'Enabled')"
  changed+="$(conf_set RemoteBindAddress '127.0.0.1')"
  if [[ -n "$changed" ]]; then
    say "configured $FB_CONF (AuthServer Srp256,Srp,Legacy_Auth; UserManager Srp,Legacy_UserManager; WireCrypt Enabled; 127.0.0.1)"
    if is_running; then say "configuration changed: restarting"; stop_server; start_server; fi
  else
    say "$FB_CONF already configured"
  fi
}

ensure_users() {
  local was_running=""
  if is_running; then
    was_running=1
    if check_login srp >/dev/null 2>&1 && check_login legacy >/dev/null 2>&1; then
      say "SYSDBA logs in through Srp and Legacy_Auth"
      return
    fi
    # The security database refuses remote user management: fix it embedded, server stopped.
    say "SYSDBA cannot log in through both Srp and Legacy_Auth: setting it (server stopped briefly)"
    stop_server quiet
  fi
  ensure_users_sql
  start_server >/dev/null
  check_login srp >/dev/null || die "SYSDBA login through Srp fails after setting the password: see $FB_ROOT/firebird.log"
  check_login legacy >/dev/null || die "SYSDBA login through Legacy_Auth fails: check AuthServer/UserManager in $FB_CONF"
  [[ -n "$was_running" ]] || stop_server quiet
  say "SYSDBA set in the Srp and Legacy_UserManager user managers (password from PONTE_FIREBIRD_PASSWORD)"
}

# Embedded (no server, as user firebird, no password needed): how Firebird 3 initialises SYSDBA.
ensure_users_sql() {
  install -d -o firebird -g firebird -m 0770 "$RUN_DIR" /tmp/firebird
  local pw="${FB_PASSWORD//\'/\'\'}"
  runuser -u firebird -- isql-fb -q -b -user SYSDBA "$FB_SECURITY_DB" <<SQL \
    || die "could not set SYSDBA in the security database $FB_SECURITY_DB (embedded, as user firebird)"
CREATE OR ALTER USER SYSDBA PASSWORD '$pw' USING PLUGIN Srp;
CREATE OR ALTER USER SYSDBA PASSWORD '$pw' USING PLUGIN Legacy_UserManager;
COMMIT;
SQL
  # Debian's maintenance scripts read the password from here.
  printf '# Password for firebird SYSDBA user (managed by ponte deploy/firebird.sh)\nISC_USER=sysdba\nISC_PASSWORD="%s"\n' \
    "$FB_PASSWORD" >/etc/firebird/3.0/SYSDBA.password
  chmod 600 /etc/firebird/3.0/SYSDBA.password
}

# Logs in as SYSDBA (service manager) with only one client auth plugin: srp | legacy.
# The client reads AuthClient from firebird.conf in $FIREBIRD, so a private root selects the plugin.
check_login() {
  local mode="$1" root
  root="$(mktemp -d /tmp/ponte-fbclient.XXXXXX)"
  local f
  for f in "$FB_ROOT"/*; do [[ "$(basename "$f")" == firebird.conf ]] || ln -s "$f" "$root/"; done
  case "$mode" in
    srp) printf 'AuthClient = Srp256, Srp\nWireCrypt = Enabled\n' >"$root/firebird.conf" ;;
    legacy) printf 'AuthClient = Legacy_Auth\nWireCrypt = Enabled\n' >"$root/firebird.conf" ;;
  esac
  local out rc=0
  # The service manager needs no database (remote access to security3.fdb is refused by design).
  out="$(FIREBIRD="$root" timeout 20 fbsvcmgr 127.0.0.1:service_mgr -user SYSDBA \
    -password "$FB_PASSWORD" info_server_version 2>&1)" || rc=$?
  rm -rf "$root"
  if [[ $rc -eq 0 && "$out" == *"Server version"* ]]; then echo "SYSDBA login through $mode: ok"; return 0; fi
  echo "SYSDBA login through $mode failed: $out" >&2
  return 1
}

# --- run ----------------------------------------------------------------------------------------

guard_pids() { pgrep -x fbguard -u firebird 2>/dev/null || true; }
# The server binary is /usr/sbin/firebird; only processes of that name run by user firebird.
server_pids() { pgrep -x firebird -u firebird 2>/dev/null || true; }

is_running() { [[ -n "$(server_pids)" ]] && port_open; }

port_open() { timeout 2 bash -c '</dev/tcp/127.0.0.1/3050' 2>/dev/null; }

wait_port() {
  local deadline=$((SECONDS + FB_WAIT))
  until port_open; do
    if ((SECONDS >= deadline)); then
      die "127.0.0.1:3050 not listening after ${FB_WAIT}s: see $FB_ROOT/firebird.log (and /var/log/firebird/ if present)"
    fi
    sleep 0.2
  done
}

start_server() {
  [[ -x "$GUARD" ]] || die "$GUARD missing: run '$0 install'"
  if [[ -n "$(guard_pids)" ]]; then
    wait_port
    say "already running (fbguard pid $(guard_pids | tr '\n' ' '| sed 's/ $//'))"
    return
  fi
  # A firebird left without its guardian (e.g. guardian killed): stop it so we own the pair.
  if [[ -n "$(server_pids)" ]]; then say "firebird running without fbguard: stopping it first"; stop_server quiet; fi
  install -d -o firebird -g firebird -m 0770 "$RUN_DIR" /tmp/firebird
  rm -f "$PIDFILE"
  local t0=$SECONDS
  start-stop-daemon --start --quiet --chuid firebird:firebird --exec "$GUARD" -- \
    -daemon -forever -pidfile "$PIDFILE" \
    || die "start-stop-daemon could not start $GUARD"
  wait_port
  say "started, listening on 127.0.0.1:3050 ($((SECONDS - t0))s)"
}

# Stops the guardian first (SIGTERM; it would respawn a killed server), then the server.
stop_server() {
  local quiet="${1:-}" pids deadline
  pids="$(guard_pids)"
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [[ -n "$(guard_pids)" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    pids="$(guard_pids)"
    # shellcheck disable=SC2086
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
  fi
  pids="$(server_pids)"
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while [[ -n "$(server_pids)" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    pids="$(server_pids)"
    if [[ -n "$pids" ]]; then
      say "firebird did not exit within 15s of SIGTERM: killing it"
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$PIDFILE"
  deadline=$((SECONDS + 10))
  while port_open && ((SECONDS < deadline)); do sleep 0.1; done
  [[ -n "$quiet" ]] || say "stopped"
}

status() {
  if is_running; then
    say "running: fbguard pid $(guard_pids | xargs), firebird pid $(server_pids | xargs), 127.0.0.1:3050 open"
    return 0
  fi
  if [[ -n "$(server_pids)" ]]; then say "firebird process present but 127.0.0.1:3050 closed"; return 1; fi
  say "stopped"
  return 3
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    install) need_root; install_packages; configure; ensure_users ;;
    start) need_root; start_server ;;
    stop) need_root; stop_server ;;
    restart) need_root; stop_server; start_server ;;
    status) status ;;
    wait) wait_port; say "127.0.0.1:3050 is listening" ;;
    check) is_running || die "server not running: run '$0 start'"; check_login srp; check_login legacy ;;
    *) echo "usage: $0 {install|start|stop|restart|status|wait|check}" >&2; exit 2 ;;
  esac
}

main "$@"
