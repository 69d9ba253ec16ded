# bench/gateway/lib.sh — what run.sh and ab.sh share; sourced, not run.

# ensure_nginx sets NGINX to Debian's nginx, installing it when missing
# (apt-get: root needed then).
ensure_nginx() {
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "# installing nginx (Debian package)"
    apt-get install -y nginx >/dev/null
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# wait_http URL waits up to 10 s for URL to answer; the script ends if not.
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# setup_keyward KEYWARD ADDR DATA KEY UPSTREAM WORK: gives the dev node at
# ADDR (data directory DATA) the secret KEY, an integration "up" to
# UPSTREAM injecting it, and a policy allowing only to proxy it; prints a
# token of that policy. WORK is a scratch directory.
setup_keyward() {
  local kw=$1 addr=$2 data=$3 key=$4 upstream=$5 work=$6
  cat >"$work/policy.yaml" <<'YAML'
name: bench-app
rules:
  - resources: ["integrations/up"]
    allow: [proxy]
YAML
  for _ in $(seq 50); do [ -s "$data/root-token" ] && break; sleep 0.1; done
  KEYWARD_ADDR=$addr KEYWARD_TOKEN=$(cat "$data/root-token") bash -c '
    set -e
    "$0" project create bench >/dev/null
    printf %s "$1" | "$0" secret set bench/prod/upstream-key >/dev/null
    "$0" integration create up --upstream "$2" --secret bench/prod/upstream-key \
      --inject "header:Authorization=Bearer {{secret}}" --allow-private >/dev/null
    "$0" policy apply -f "$3" >/dev/null
    "$0" token create --policy bench-app --ttl 1h -o json' "$kw" "$key" "$upstream" "$work/policy.yaml" |
    sed -n 's/.*"token": *"\([^"]*\)".*/\1/p'
}

# write_nginx_conf DIR KEY UPSTREAM-PORT PORT [LOG-PORT]: an nginx config in
# DIR/nginx.conf (foreground, everything under DIR) proxying PORT to the
# upstream with keep-alive and "Authorization: Bearer KEY" set, no access
# log; with LOG-PORT, a second server there writing an access-log line per
# call to DIR/logs/access.log.
write_nginx_conf() {
  local dir=$1 key=$2 up=$3 port=$4 logport=${5:-}
  mkdir -p "$dir/logs"
  local loc="
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Authorization \"Bearer $key\";
    }"
  local logserver=""
  if [ -n "$logport" ]; then
    logserver="
  server {
    listen 127.0.0.1:$logport;
    access_log $dir/logs/access.log;$loc
  }"
  fi
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
user root;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream up { server 127.0.0.1:$up; keepalive 128; }
  server {
    listen 127.0.0.1:$port;$loc
  }$logserver
}
EOF
}
