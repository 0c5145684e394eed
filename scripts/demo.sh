#!/usr/bin/env bash
# `make run`: nginx with the module, a demo upstream and a stand-in X-Ray
# daemon (a UDP sink for the segments, and on the same port over TCP the two
# sampling calls the daemon proxies, answered from demo/sampling-rules.json),
# all in the foreground; Ctrl-C stops everything.
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
# the centralized sampling rules the stand-in serves: edit them while it runs
rules=${DEMO_SAMPLING_RULES:-$top/demo/sampling-rules.json}

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
"$python" -u "$top/t/lib/xray_sampling_api.py" --port "$sink_port" \
    --config "$rules" --record "$run/sampling-api.jsonl" \
    --log --rules-modified-at-mtime & pids+=($!)

# ready when something accepts connections on each port (10 s at most)
listening() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        sleep 0.1
    done
}
# nginx asks the daemon for the sampling rules as soon as it starts
listening "$upstream_port"
listening "$sink_port"
"$nginx" -p "$run" -c "$run/nginx.conf" & pids+=($!)
listening "$port"

root="Root=1-$(printf '%08x' "$(date +%s)")-abcdef0123456789abcdef01"
cat <<TXT

ngx_http_xray demo: nginx on http://127.0.0.1:$port, upstream on
$upstream_port, daemon stand-in on udp $sink_port (segments) and tcp
$sink_port (sampling rules from $rules).
In another terminal, try:

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

  # the module's counters, summed over both workers, and the sampling rules
  # held: source="centralized" once the stand-in's rules arrived
  curl -s http://127.0.0.1:$port/xray/status | grep sampling

  # change a rule in the service: edit $rules
  # (here: the healthz rule's "FixedRate" from 0 to 1) and save; within one
  # targets interval (5 s) the status page shows it and /healthz is sampled
  sed -i '0,/"FixedRate": 0,/s//"FixedRate": 1,/' $rules
  curl -s http://127.0.0.1:$port/xray/status | grep 'rule="healthz"'
  curl -s http://127.0.0.1:$port/healthz -H 'X-Amzn-Trace-Id: $root'

What the upstream receives, each segment the daemon sink receives and the
sampling calls the stand-in answers are printed below.
Ctrl-C stops the demo.

TXT
wait -n "${pids[@]}"
