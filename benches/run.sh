#!/usr/bin/env bash
# Installs what the benchmarks compare against, then runs them. Usage: benches/run.sh [ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v pgcopydb >/dev/null 2>&1 || need+=(pgcopydb)
[ -x /usr/bin/time ] || need+=(time)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi
cargo run --release -p migrate-benches --bin pg_to_pg -- "$@"
