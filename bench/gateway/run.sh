#!/usr/bin/env bash
# bench/gateway/run.sh — issue 5's gateway figures in one run, on loopback:
#
#   (a) direct:  httpload -> upstream (the caller holds the upstream key)
#   (b) gateway: httpload -> keyward server --dev -> upstream, on keyward's
#                data-plane listener (--gateway-listen; keyward's own HTTP/1.1
#                server, internal/h1)
#                (the caller holds a keyward token allowed to proxy one
#                integration; keyward checks it, injects the key from its
#                secret store, streams the answer back and appends a durable
#                audit entry of the call)
#   (c) nginx:   httpload -> nginx (Debian's package) -> upstream, with
#                proxy_set_header Authorization "Bearer <key>"
#   (d) goproxy: httpload -> `gateway goproxy` -> upstream: a plain Go
#                reverse proxy (net/http server with keyward's timeouts,
#                httputil.ReverseProxy, a tuned http.Transport) that sets
#                the key and does nothing else: what a typical Go gateway
#                costs without auth and audit
#   (e) rawproxy: httpload -> `gateway rawproxy` -> upstream: the floor of a
#                Go proxy: a bare listener, a goroutine and one keep-alive
#                upstream connection per client connection, a minimal
#                HTTP/1.1 parser that replaces the Authorization header
#   (f) gateway-nethttp: the same gateway in a second keyward started with
#                --http-server net/http (Go's server): the engine's effect
#   (g) nginx-log: the same nginx on a second port that writes an access-log
#                line per call (the default combined format, unbuffered, as
#                Debian's default site does): the reference closest to the
#                gateway's own record of each call. The aim is measured
#                against (c), nginx without a log.
#   (h) rawproxy-audit: rawproxy (e) that also appends keyward's audit entry
#                of every call to an audit log (internal/audit on SQLite, as
#                the gateway does; rawproxy -audit): the floor of a Go proxy
#                that keeps keyward's record of each call. The report gives
#                the gateway's CPU a call against (e)'s and (h)'s. (h)
#                writes to SQLite even when STORAGE puts keyward on
#                PostgreSQL.
# (d) and (e) are references, to tell how much of the gateway's cost is Go's
# net/http and how much keyward's own work; they run with keyward's GOGC
# (400), and their callers send the keyward token, which the upstream
# refuses, so their 2xx prove the injection too.
#
# The upstream is bench/gateway's tiny Go API, which answers 401 to any
# request without the key, so every 2xx proves the injection worked.
# The targets are measured in ROUNDS interleaved rounds of DUR each
# at CONNS connections (and once at 1 connection for the unloaded latency);
# the report gives medians over rounds, and the CPU time per request of the
# process in the middle (keyward, nginx's master and workers, the goproxy or
# rawproxy process; the upstream for direct calls), which other load on the
# machine disturbs far less than throughput.
#
#   bash bench/gateway/run.sh                  # 3 rounds of 10 s
#   ROUNDS=5 DUR=5s bash bench/gateway/run.sh
#   ONLY1=1 bash bench/gateway/run.sh          # only the 1-connection runs
#   PROFILE=1 bash bench/gateway/run.sh        # CPU profile of keyward in round 1
#   STORAGE=postgres://... bash bench/gateway/run.sh  # keyward on PostgreSQL (an empty database)
#
# Every proxied call leaves an audit entry (about 340 bytes on disk) in the
# logs of the two keyward nodes and of rawproxy-audit: 3 rounds of 10 s
# need about 1 GB free in the temporary directory (TMPDIR), removed at exit.
#
# nginx is installed with apt-get when missing (it needs root then). It runs
# in the foreground from a temporary prefix with its own config; nothing
# outside a temporary directory is touched, and every process started here
# is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
PORT_UP=${PORT_UP:-19480}
PORT_KW=${PORT_KW:-19481}
PORT_DP=${PORT_DP:-19485} # keyward's data-plane listener (--gateway-listen)
PORT_STD=${PORT_STD:-19486} # a second keyward on net/http's server
PORT_NGINX=${PORT_NGINX:-19482}
PORT_GOPROXY=${PORT_GOPROXY:-19483}
PORT_RAW=${PORT_RAW:-19484}
PORT_NGINXLOG=${PORT_NGINXLOG:-19487} # nginx with an access log
PORT_RAWAUDIT=${PORT_RAWAUDIT:-19488} # rawproxy with keyward's audit log
KEY=bench-upstream-key-0123456789abcdef # keyward:allow (test fixture)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

. bench/gateway/lib.sh
ensure_nginx

go build -o "$work/keyward" ./cmd/keyward
go build -o "$work/httpload" ./bench/httpload
go build -o "$work/gw" ./bench/gateway
kw="$work/keyward"
srv=${KEYWARD_BIN:-$kw} # another build of the server to compare (diagnostics)

echo "# machine: $(nproc) cores, $(uname -sm), $(go version | cut -d' ' -f3), $("$NGINX" -v 2>&1 | cut -d' ' -f3); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

"$work/gw" upstream -addr "127.0.0.1:$PORT_UP" -key "$KEY" 2>"$work/upstream.log" &
uppid=$!
pids+=($uppid)
wait_http "http://127.0.0.1:$PORT_UP/healthz"

# keyward: dev server, the key in the secret store, an integration, and a
# token that may only proxy it (setup_keyward, lib.sh).
if [ "${PROFILE:-}" = 1 ]; then
  # A dev node with net/http/pprof on the next port (bench/apikeys/profserver);
  # the first gateway round is profiled.
  go build -o "$work/profserver" ./bench/apikeys/profserver
  "$work/profserver" -data "$work/data" -listen "127.0.0.1:$PORT_KW" -gateway-listen "127.0.0.1:$PORT_DP" -pprof "127.0.0.1:$((PORT_KW + 10))" >"$work/keyward.log" 2>&1 &
else
  "$srv" server --dev --data "$work/data" --listen "127.0.0.1:$PORT_KW" --gateway-listen "127.0.0.1:$PORT_DP" ${STORAGE:+--storage "$STORAGE"} --log-level error >"$work/keyward.log" 2>&1 &
fi
kwpid=$!
pids+=($kwpid)
wait_http "http://127.0.0.1:$PORT_KW/v1/sys/health"
tok=$(setup_keyward "$kw" "http://127.0.0.1:$PORT_KW" "$work/data" "$KEY" "http://127.0.0.1:$PORT_UP" "$work")
[ -n "$tok" ] || { echo "keyward setup failed" >&2; exit 1; }
# The same gateway on Go's net/http server (--http-server net/http), in a
# second node with its own data directory, for the engine's effect.
"$srv" server --dev --data "$work/data-std" --listen "127.0.0.1:$PORT_STD" --http-server net/http --log-level error >"$work/keyward-std.log" 2>&1 &
stdpid=$!
pids+=($stdpid)
wait_http "http://127.0.0.1:$PORT_STD/v1/sys/health"
tokstd=$(setup_keyward "$kw" "http://127.0.0.1:$PORT_STD" "$work/data-std" "$KEY" "http://127.0.0.1:$PORT_UP" "$work")
[ -n "$tokstd" ] || { echo "keyward (net/http) setup failed" >&2; exit 1; }

# nginx: foreground, temporary prefix, keep-alive to the upstream.
write_nginx_conf "$work/nginx" "$KEY" "$PORT_UP" "$PORT_NGINX" "$PORT_NGINXLOG"
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
ngpid=$!
pids+=($ngpid)
wait_http "http://127.0.0.1:$PORT_NGINX/healthz"
wait_http "http://127.0.0.1:$PORT_NGINXLOG/healthz"
ngpids="$ngpid,$(pgrep -P "$ngpid" | paste -sd, -)"

# The two reference proxies, with keyward's default GOGC (internal/server).
GOGC=400 "$work/gw" goproxy -addr "127.0.0.1:$PORT_GOPROXY" -upstream "http://127.0.0.1:$PORT_UP" -key "$KEY" 2>"$work/goproxy.log" &
gppid=$!
pids+=($gppid)
GOGC=400 "$work/gw" rawproxy -addr "127.0.0.1:$PORT_RAW" -upstream "http://127.0.0.1:$PORT_UP" -key "$KEY" 2>"$work/rawproxy.log" &
rppid=$!
pids+=($rppid)
mkdir -p "$work/rawaudit"
GOGC=400 "$work/gw" rawproxy -addr "127.0.0.1:$PORT_RAWAUDIT" -upstream "http://127.0.0.1:$PORT_UP" -key "$KEY" -audit "$work/rawaudit" 2>"$work/rawproxy-audit.log" &
rapid=$!
pids+=($rapid)
wait_http "http://127.0.0.1:$PORT_GOPROXY/healthz"
wait_http "http://127.0.0.1:$PORT_RAW/healthz"
wait_http "http://127.0.0.1:$PORT_RAWAUDIT/healthz"

load() { # label url auth conns dur pids
  "$work/httpload" -json -label "$1" -url "$2" -H "Authorization: Bearer $3" -c "$4" -d "$5" -pids "$6" >>"$work/results.json" || {
    echo "httpload $1 failed" >&2; tail -1 "$work/results.json" >&2; exit 1; }
}
direct="http://127.0.0.1:$PORT_UP/v1/ping"
gateway="http://127.0.0.1:$PORT_DP/v1/gateway/up/v1/ping"
gateway_std="http://127.0.0.1:$PORT_STD/v1/gateway/up/v1/ping" # the same gateway on net/http's server
nginx="http://127.0.0.1:$PORT_NGINX/v1/ping"
nginxlog="http://127.0.0.1:$PORT_NGINXLOG/v1/ping"
goproxy="http://127.0.0.1:$PORT_GOPROXY/v1/ping"
rawproxy="http://127.0.0.1:$PORT_RAW/v1/ping"
rawaudit="http://127.0.0.1:$PORT_RAWAUDIT/v1/ping"
[ -n "${ONLY1:-}" ] && ROUNDS=0
for r in $(seq "$ROUNDS"); do
  echo "# round $r/$ROUNDS at $CONNS connections, load $(cut -d' ' -f1-3 /proc/loadavg)"
  load direct "$direct" "$KEY" "$CONNS" "$DUR" "$uppid"
  if [ "${PROFILE:-}" = 1 ] && [ "$r" = 1 ]; then
    curl -s -o "$work/cpu.prof" "http://127.0.0.1:$((PORT_KW + 10))/debug/pprof/profile?seconds=${DUR%s}" &
    prof=$!
  fi
  load gateway "$gateway" "$tok" "$CONNS" "$DUR" "$kwpid"
  if [ "${PROFILE:-}" = 1 ] && [ "$r" = 1 ]; then
    wait "$prof"
    out=${PROFILE_OUT:-/tmp/keyward-gateway.prof}
    cp "$work/cpu.prof" "$out"; cp "$work/profserver" "$out.bin"
    echo "# CPU profile of the first gateway round: go tool pprof $out.bin $out"
  fi
  load gateway-nethttp "$gateway_std" "$tokstd" "$CONNS" "$DUR" "$stdpid"
  load nginx "$nginx" "$KEY" "$CONNS" "$DUR" "$ngpids"
  load nginx-log "$nginxlog" "$KEY" "$CONNS" "$DUR" "$ngpids"
  : >"$work/nginx/logs/access.log" # nginx keeps appending to the emptied file
  load goproxy "$goproxy" "$tok" "$CONNS" "$DUR" "$gppid"
  load rawproxy "$rawproxy" "$tok" "$CONNS" "$DUR" "$rppid"
  load rawproxy-audit "$rawaudit" "$tok" "$CONNS" "$DUR" "$rapid"
done
echo "# 1 connection"
load direct "$direct" "$KEY" 1 "$DUR" "$uppid"
load gateway "$gateway" "$tok" 1 "$DUR" "$kwpid"
load nginx "$nginx" "$KEY" 1 "$DUR" "$ngpids"
load goproxy "$goproxy" "$tok" 1 "$DUR" "$gppid"
load rawproxy "$rawproxy" "$tok" 1 "$DUR" "$rppid"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$work/gw" report "$work/results.json"
if [ -s "$work/upstream.log" ]; then echo; echo "upstream complaints:"; cat "$work/upstream.log"; fi
for p in goproxy rawproxy rawproxy-audit; do
  if [ -s "$work/$p.log" ]; then echo; echo "$p's log:"; cat "$work/$p.log"; fi
done
