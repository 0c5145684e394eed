#!/usr/bin/env bash
# `make run`: nginx with the module, a demo upstream and a daemon sink, all in
# the foreground; Ctrl-C stops everything.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# an empty module path: the module is compiled into the nginx binary
module=${1-$top/build/ngx_http_xray_module.so}
run=${DEMO_RUN:-$top/build/demo}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
# nginx takes an NGINX variable for sockets inherited on binary upgrade
unset NGINX
python=$(command -v python3)
port=${DEMO_PORT:-8080}
upstream_port=${DEMO_UPSTREAM_PORT:-8081}
sink_port=${DEMO_SINK_PORT:-2000}

mkdir -p "$run/tmp"
# nginx would look for a relative path under its prefix
[ -z "$module" ] || module=$(realpath "$module")
load="load_module $module;"
[ -n "$module" ] || load="# the module is compiled in"
sed -e "s|@TOP@|$top|g" -e "s|@LOAD_MODULE@|$load|g" -e "s|@RUN@|$run|g" \
    -e "s|@PORT@|$port|g" -e "s|@UPSTREAM_PORT@|$upstream_port|g" \
    -e "s|@SINK_PORT@|$sink_port|g" \
    "$top/demo/nginx.conf" > "$run/nginx.conf"

"$nginx" -t -q -p "$run" -c "$run/nginx.conf"

pids=()
cleanup() {
    trap - EXIT INT TERM
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$python" -u "$top/demo/upstream.py" "$upstream_port" & pids+=($!)
"$python" -u "$top/demo/sink.py" "$sink_port" & pids+=($!)
"$nginx" -p "$run" -c "$run/nginx.conf" & pids+=($!)

# ready when nginx and the upstream accept connections (10 s at most)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$upstream_port") 2>/dev/null \
        && break
    sleep 0.1
done

root="Root=1-$(printf '%08x' "$(date +%s)")-abcdef0123456789abcdef01"
cat <<TXT

ngx_http_xray demo: nginx on http://127.0.0.1:$port, upstream on
$upstream_port, daemon sink on udp $sink_port.  In another terminal, try:

  # a browser's trace context: same Root, the proxy's own Parent, its own
  # sampling decision (the first request each second is sampled)
  curl -s http://127.0.0.1:$port/api -H 'X-Amzn-Trace-Id: $root;Parent=53995c3f42cd8ad8;Sampled=1'

  # a client's Sampled=1 cannot force tracing: /healthz is never sampled
  curl -s http://127.0.0.1:$port/healthz -H 'X-Amzn-Trace-Id: $root;Sampled=1'

  # no trace header: none is invented (the Lambda runtime starts the trace)
  curl -s http://127.0.0.1:$port/api

  # unless origination is switched on for the location
  curl -s http://127.0.0.1:$port/originate/api

  # Sampled=? asks the proxy to decide; the answer comes back in the response
  curl -si http://127.0.0.1:$port/api -H 'X-Amzn-Trace-Id: $root;Sampled=?'

  # a Server-Sent Events stream, resumed after event 3
  curl -sN http://127.0.0.1:$port/sse -H 'Last-Event-ID: 3' -H 'X-Amzn-Trace-Id: $root'

  # the module's counters, summed over both workers
  curl -s http://127.0.0.1:$port/xray/status

What the upstream receives and each segment the daemon sink receives are
printed below.  Ctrl-C stops the demo.

TXT
wait -n "${pids[@]}"
