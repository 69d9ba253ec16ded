#!/usr/bin/env bash
# bench/apikeys/run.sh — issue 5's client API key figures: POST /v1/keys/verify
# over loopback at 64 connections on SQLite, for a key with a rate limit (served
# from memory) and for a key with a quota (one storage write per verification),
# plus the in-process verification benchmark.
#
#   bash bench/apikeys/run.sh            # 10 s per measurement
#   DUR=5s CONNS=64 bash bench/apikeys/run.sh
#   PROFILE=1 bash bench/apikeys/run.sh  # also a 10 s CPU profile of the server
#
# Every request goes the whole way: the caller's token from the cache, the
# policy decision, the key's format, HMAC and cache lookup, the read check on
# the key, its rate limiter (and quota), and a durable audit entry of the
# request (group commit). Nothing outside a temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10s}
CONNS=${CONNS:-64}
PORT=${PORT:-18381}
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/keyward" ./cmd/keyward
go build -o "$work/httpload" ./bench/httpload
go build -o "$work/profserver" ./bench/apikeys/profserver
kw="$work/keyward"

echo "# machine: $(nproc) cores, $(uname -sm), $(go version | cut -d' ' -f3); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## in-process verification of a cached key"
go test -run '^$' -bench 'VerifyCached' -benchmem -count 3 ./internal/apikey/ | grep Benchmark

data="$work/data"
if [ "${PROFILE:-}" = 1 ]; then
  "$work/profserver" -data "$data" -listen "127.0.0.1:$PORT" -pprof "127.0.0.1:$((PORT + 1))" >"$work/server.log" 2>&1 &
else
  "$kw" server --dev --data "$data" --listen "127.0.0.1:$PORT" --log-level error >"$work/server.log" 2>&1 &
fi
pid=$!
export KEYWARD_ADDR="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fs "$KEYWARD_ADDR/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.1; done
export KEYWARD_TOKEN; KEYWARD_TOKEN=$(cat "$data/root-token")
"$kw" project create bench >/dev/null
cat >"$work/policy.yaml" <<'YAML'
name: verifier
rules:
  - resources: ["projects/bench/envs/prod/keys/**"]
    allow: [read]
YAML
"$kw" policy apply -f "$work/policy.yaml" >/dev/null
tok=$("$kw" token create --policy verifier --ttl 1h -o json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
key() { "$kw" key create -p bench -e prod --name bench --scope integrations/maps "$@" -o json | sed -n 's/.*"key": *"\([^"]*\)".*/\1/p'; }
rated=$(key --rate 1000000000/sec)
quota=$(key --quota 100000000)

for kind in rated quota; do
  k=${!kind}
  body="{\"key\":\"$k\"}"
  check=$(curl -s -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d "$body" "$KEYWARD_ADDR/v1/keys/verify")
  case $check in *'"code":"VALID"'*) ;; *) echo "verify of the $kind key is not VALID: $check" >&2; exit 1 ;; esac
  echo "## POST /v1/keys/verify, $kind key, $CONNS connections, $DUR"
  if [ "${PROFILE:-}" = 1 ] && [ "$kind" = rated ]; then
    curl -s -o "$work/cpu.prof" "http://127.0.0.1:$((PORT + 1))/debug/pprof/profile?seconds=10" &
    prof=$!
  fi
  "$work/httpload" -pids "$pid" -method POST -body "$body" -url "$KEYWARD_ADDR/v1/keys/verify" \
    -H "Authorization: Bearer $tok" -H "Content-Type: application/json" -c "$CONNS" -d "$DUR"
  if [ "${PROFILE:-}" = 1 ] && [ "$kind" = rated ]; then
    wait "$prof"
    go tool pprof -top -nodecount 40 "$work/profserver" "$work/cpu.prof" 2>/dev/null | head -50
    cp "$work/cpu.prof" "${PROFILE_OUT:-/tmp/keyward-verify.prof}"; cp "$work/profserver" "${PROFILE_OUT:-/tmp/keyward-verify.prof}.bin"
  fi
done
echo "## reference: GET /v1/auth/token/lookup-self (token check + audit, no key), $CONNS connections, $DUR"
"$work/httpload" -pids "$pid" -url "$KEYWARD_ADDR/v1/auth/token/lookup-self" -H "Authorization: Bearer $tok" -c "$CONNS" -d "$DUR"
echo "# server peak RSS: $(grep VmHWM /proc/$pid/status | tr -s ' ' | cut -d' ' -f2-)"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
