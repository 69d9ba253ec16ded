#!/usr/bin/env bash
# bench/secrets/run.sh — issue 4's figures in one run: secret reads and
# writes over loopback HTTP at 64 connections on SQLite and on PostgreSQL
# (when one answers on 127.0.0.1:5432), and the cost of `keyward run`.
#
#   bash bench/secrets/run.sh            # 10 s per measurement
#   DUR=5s CONNS=64 bash bench/secrets/run.sh
#
# Every request goes through the whole path: token check, policy decision,
# decryption (reads) or encryption plus a version row (writes), and a
# durable audit entry. The token is a child of the root token bound to one
# policy, as a workload would hold. Nothing outside a temporary directory
# and a temporary PostgreSQL database is touched; both are removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10s}
CONNS=${CONNS:-64}
PGURL_BASE=${PGURL_BASE:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d)
pids=()
pgdb=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$pgdb" ]; then psql -q "$PGURL_BASE/postgres" -c "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/keyward" ./cmd/keyward
go build -o "$work/httpload" ./bench/httpload
go build -o "$work/runcost" ./bench/runcost
kw="$work/keyward"

echo "# machine: $(nproc) cores, $(uname -sm), $(go version | cut -d' ' -f3); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

bench_backend() { # name storage port
  local name=$1 storage=$2 port=$3 data="$work/data-$1"
  "$kw" server --dev --data "$data" --storage "$storage" --listen "127.0.0.1:$port" --log-level error >"$work/$name.log" 2>&1 &
  pids+=($!)
  export KEYWARD_ADDR="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -fs "$KEYWARD_ADDR/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.1; done
  export KEYWARD_TOKEN; KEYWARD_TOKEN=$(cat "$data/root-token")
  "$kw" project create bench >/dev/null
  printf %s 'bench-value-0123456789abcdef' | "$kw" secret set bench/staging/db/password >/dev/null # keyward:allow (bench value)
  printf %s 'second' | "$kw" secret set bench/staging/db/user >/dev/null
  cat >"$work/policy.yaml" <<'YAML'
name: bench
rules:
  - resources: ["projects/bench/envs/staging/secrets/**"]
    allow: [read, list, write]
YAML
  "$kw" policy apply -f "$work/policy.yaml" >/dev/null
  local tok
  tok=$("$kw" token create --policy bench --ttl 1h -o json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  local url="$KEYWARD_ADDR/v1/projects/bench/envs/staging/secrets/db/password"
  echo "## $name: read $url, $CONNS connections, $DUR"
  "$work/httpload" -url "$url" -H "Authorization: Bearer $tok" -c "$CONNS" -d "$DUR"
  echo "## $name: write (PUT, a new version each), $CONNS connections, $DUR"
  "$work/httpload" -method PUT -body '{"value":"bench-written-value-0123456789"}' -url "$url" \
    -H "Authorization: Bearer $tok" -H "Content-Type: application/json" -c "$CONNS" -d "$DUR"
  if [ "$name" = sqlite ]; then
    echo "## keyward run -p bench -e staging -- true, against plain true"
    KEYWARD_TOKEN=$tok "$work/runcost" -bin "$kw" -p bench -e staging -n 40
  fi
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_backend sqlite sqlite 18371
if psql -q "$PGURL_BASE/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
  pgdb="keyward_bench_$$"
  psql -q "$PGURL_BASE/postgres" -c "CREATE DATABASE $pgdb" >/dev/null
  bench_backend postgres "$PGURL_BASE/$pgdb?sslmode=disable" 18372
else
  echo "## postgres: no server on 127.0.0.1:5432, skipped"
fi
