#!/usr/bin/env bash
# bench/gateway/ab.sh — compare two builds of keyward's gateway in the same
# run: CPU a call and throughput of each, round by round, against nginx and
# rawproxy-audit measured in the same rounds.
#
#   bash bench/gateway/ab.sh BASE [CAND]   # git revisions; CAND defaults to
#                                          # the working tree
#   ROUNDS=6 DUR=5s bash bench/gateway/ab.sh HEAD~3
#
# run.sh gives the figures of record (every reference target, medians,
# latency at one connection); this script is for telling whether a change
# to the gateway's path helps, which run.sh's round-to-round swing hides:
# the two builds run side by side as two dev nodes, and each round
# measures nginx, the base, the candidate and rawproxy-audit one after the
# other for DUR each at CONNS connections. CPU a call (from /proc, the
# process in the middle) moves much less with other load than throughput
# does; read both.
#
# Setup as run.sh's (bench/gateway's upstream, which answers 401 without
# the key; an integration and a token allowed only to proxy it; nginx with
# the key in proxy_set_header; rawproxy-audit), on ports 19580-19598.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 BASE-REVISION [CANDIDATE-REVISION]" >&2; exit 2; }
DUR=${DUR:-5s}
ROUNDS=${ROUNDS:-4}
CONNS=${CONNS:-64}
KEY=bench-upstream-key-0123456789abcdef # keyward:allow (test fixture)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  git worktree remove --force "$work/src" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

. bench/gateway/lib.sh
ensure_nginx

# build REV OUT: keyward at a git revision ("" for the working tree)
build() {
  if [ -z "$1" ]; then
    go build -o "$2" ./cmd/keyward
    return
  fi
  git worktree add -q --detach "$work/src" "$1"
  (cd "$work/src" && go build -o "$2" ./cmd/keyward)
  git worktree remove --force "$work/src"
}
build "$1" "$work/kw-base"
build "${2:-}" "$work/kw-cand"
go build -o "$work/httpload" ./bench/httpload
go build -o "$work/gw" ./bench/gateway
echo "# base $(git rev-parse --short "$1"), candidate ${2:+$(git rev-parse --short "$2")}${2:-working tree}"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

"$work/gw" upstream -addr 127.0.0.1:19580 -key "$KEY" 2>"$work/upstream.log" &
pids+=($!)
wait_http http://127.0.0.1:19580/healthz
# node BIN DATA API-PORT DATA-PLANE-PORT: starts a dev node and sets it
# up; NODE_PID and NODE_TOK are its process and a token that may proxy
node() {
  "$1" server --dev --data "$2" --listen "127.0.0.1:$3" --gateway-listen "127.0.0.1:$4" --log-level error >"$2.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_http "http://127.0.0.1:$3/v1/sys/health"
  for _ in $(seq 50); do [ -s "$2/root-token" ] && break; sleep 0.1; done
  local tok
  tok=$(setup_keyward "$1" "http://127.0.0.1:$3" "$2" "$KEY" http://127.0.0.1:19580 "$work")
  [ -n "$tok" ] || { echo "setup of $1 failed" >&2; exit 1; }
  NODE_PID=$pid NODE_TOK=$tok
}
node "$work/kw-base" "$work/data-base" 19581 19585
bpid=$NODE_PID btok=$NODE_TOK
node "$work/kw-cand" "$work/data-cand" 19591 19595
cpid=$NODE_PID ctok=$NODE_TOK

write_nginx_conf "$work/nginx" "$KEY" 19580 19582
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
ngpid=$!
pids+=($ngpid)
wait_http http://127.0.0.1:19582/healthz
ngpids="$ngpid,$(pgrep -P "$ngpid" | paste -sd, -)"
mkdir -p "$work/rawaudit"
GOGC=400 "$work/gw" rawproxy -addr 127.0.0.1:19588 -upstream http://127.0.0.1:19580 -key "$KEY" -audit "$work/rawaudit" 2>"$work/rawaudit.log" &
rapid=$!
pids+=($rapid)
wait_http http://127.0.0.1:19588/healthz

load() { # label url token pids
  "$work/httpload" -json -label "$1" -url "$2" -H "Authorization: Bearer $3" -c "$CONNS" -d "$DUR" -pids "$4" >>"$work/results.json" || {
    echo "httpload $1 failed" >&2; tail -1 "$work/results.json" >&2; exit 1; }
}
: >"$work/results.json"
for r in $(seq "$ROUNDS"); do
  echo "# round $r/$ROUNDS at $CONNS connections, load $(cut -d' ' -f1-3 /proc/loadavg)"
  load nginx http://127.0.0.1:19582/v1/ping "$KEY" "$ngpids"
  load base http://127.0.0.1:19585/v1/gateway/up/v1/ping "$btok" "$bpid"
  load candidate http://127.0.0.1:19595/v1/gateway/up/v1/ping "$ctok" "$cpid"
  load rawproxy-audit http://127.0.0.1:19588/v1/ping "$btok" "$rapid"
done
"$work/gw" abreport "$work/results.json"
