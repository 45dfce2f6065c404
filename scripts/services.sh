#!/usr/bin/env bash
# Provisioning helpers sourced by scripts/test (and by bench scripts): PostgreSQL, and the two
# emulators (bqemulator for BigQuery, fakesnow for Snowflake) in pinned venvs inside the repo.
# Everything listens on loopback only. Functions print what they do on stderr.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VENV_DIR="${MIGRATE_VENV_DIR:-$ROOT/.venv}"   # git-ignored by default
PYTHON=${PYTHON:-python3}

# Pinned versions, measured to work together on this machine (see README "Testing").
FAKESNOW_PKGS=("fakesnow[server]==0.12.1" "snowflake-connector-python==4.8.1")
BQEMU_PKGS=("bqemulator==1.4.0" "duckdb==1.5.5" "duckdb-extension-spatial==1.5.5"
            "duckdb-extension-avro==1.5.5" "numpy==2.4.6")

log() { printf '[services] %s\n' "$*" >&2; }

# Prints a free loopback TCP port.
free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -d "$1" >/dev/null 2>&1
  else
    "$PYTHON" - "$1" <<'PY' >/dev/null 2>&1
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), 2).close()
PY
  fi
}

# Exports MIGRATE_TEST_PG_URL, starting or installing PostgreSQL when nothing answers.
ensure_postgres() {
  local default="postgres://postgres@127.0.0.1:5432/postgres"
  if [ -n "${MIGRATE_TEST_PG_URL:-}" ]; then
    log "PostgreSQL: using MIGRATE_TEST_PG_URL"
    return 0
  fi
  if ! command -v psql >/dev/null 2>&1; then
    log "psql missing; installing Debian's postgresql-client"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql-client >&2
  fi
  if pg_answers "$default"; then
    export MIGRATE_TEST_PG_URL="$default"; log "PostgreSQL: answering at 127.0.0.1:5432"; return 0
  fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "PostgreSQL: not installed; installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  local ver; ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Trust auth on loopback, as the test URL has no password.
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  log "PostgreSQL: starting cluster $ver/main"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || true
  for _ in $(seq 1 60); do pg_answers "$default" && break; sleep 0.5; done
  pg_answers "$default" || { log "PostgreSQL did not come up"; return 1; }
  export MIGRATE_TEST_PG_URL="$default"
}

# Creates (once) a venv under .venv/NAME with the given pinned packages. A stamp file records
# the exact pin list so that a changed pin rebuilds the venv.
ensure_venv() {
  local name=$1; shift
  local dir="$VENV_DIR/$name" stamp want
  want=$(printf '%s\n' "$@")
  stamp="$dir/.migrate-pins"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "venv $name: installing $*"
  rm -rf "$dir"
  if ! "$PYTHON" -m venv "$dir" >&2; then
    log "python venv module missing; installing Debian's python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
    rm -rf "$dir"; "$PYTHON" -m venv "$dir" >&2
  fi
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
  printf '%s' "$want" > "$stamp"
}

wait_http() { # url seconds
  local url=$1 secs=$2 i
  for i in $(seq 1 $((secs * 4))); do
    if "$PYTHON" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

wait_tcp() { # port seconds
  local port=$1 secs=$2 i
  for i in $(seq 1 $((secs * 4))); do
    if "$PYTHON" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$port" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

# Starts fakesnow on a free loopback port; exports MIGRATE_TEST_SNOWFLAKE_URL.
start_fakesnow() {
  local run_dir=$1 port
  ensure_venv fakesnow "${FAKESNOW_PKGS[@]}"
  port=$(free_port)
  mkdir -p "$run_dir/fakesnow-tmp"
  TMPDIR="$run_dir/fakesnow-tmp" "$VENV_DIR/fakesnow/bin/fakesnow" -s --host 127.0.0.1 -p "$port" \
    >"$run_dir/fakesnow.log" 2>&1 &
  echo $! >"$run_dir/fakesnow.pid"
  if ! wait_tcp "$port" 30; then log "fakesnow did not start; log:"; tail -n 30 "$run_dir/fakesnow.log" >&2; return 1; fi
  export MIGRATE_TEST_SNOWFLAKE_URL="http://127.0.0.1:$port"
  log "fakesnow: $MIGRATE_TEST_SNOWFLAKE_URL"
}

# Starts bqemulator (REST + gRPC) on free loopback ports with DuckDB's extensions preinstalled
# in a private HOME (offline it would try to download them); exports MIGRATE_TEST_BIGQUERY_URL
# and MIGRATE_TEST_BIGQUERY_GRPC.
start_bqemulator() {
  local run_dir=$1 rest grpc home ext_dir site
  ensure_venv bqemulator "${BQEMU_PKGS[@]}"
  home="$run_dir/bq-home"
  ext_dir="$home/.duckdb/extensions/v1.5.5/linux_amd64"
  mkdir -p "$ext_dir" "$run_dir/bq-tmp"
  site=$("$VENV_DIR/bqemulator/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  find "$site/duckdb_extension_spatial" "$site/duckdb_extension_avro" -name '*.duckdb_extension*' \
    -exec cp {} "$ext_dir/" \; 2>/dev/null
  rest=$(free_port); grpc=$(free_port)
  HOME="$home" TMPDIR="$run_dir/bq-tmp" "$VENV_DIR/bqemulator/bin/bqemulator" start \
    --rest-host 127.0.0.1 --rest-port "$rest" --grpc-host 127.0.0.1 --grpc-port "$grpc" \
    --project test-project --ephemeral >"$run_dir/bqemulator.log" 2>&1 &
  echo $! >"$run_dir/bqemulator.pid"
  if ! wait_http "http://127.0.0.1:$rest/readyz" 60; then
    log "bqemulator did not start; log:"; tail -n 30 "$run_dir/bqemulator.log" >&2; return 1
  fi
  export MIGRATE_TEST_BIGQUERY_URL="http://127.0.0.1:$rest"
  export MIGRATE_TEST_BIGQUERY_GRPC="http://127.0.0.1:$grpc"
  export MIGRATE_TEST_BIGQUERY_PROJECT="test-project"
  log "bqemulator: $MIGRATE_TEST_BIGQUERY_URL (gRPC $MIGRATE_TEST_BIGQUERY_GRPC)"
}

# Stops whatever start_* left a pid file for in RUN_DIR.
stop_services() {
  local run_dir=$1 f
  for f in "$run_dir"/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}
