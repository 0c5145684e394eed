#!/usr/bin/env bash
# `make bench`: what ngx_http_xray costs, against the same nginx without it.
#
#   bench/run.sh [module.so]
#
# 1. throughput (wrk) of one nginx worker proxying to a fast upstream, in five
#    configurations, in interleaved rounds:
#      A  module not loaded
#      B  module loaded, xray off
#      C  xray on, nothing sampled (rate 0, fixed_target 0)
#      D  xray on, every request sampled and its segment sent to a UDP sink
#      E  xray on, production mix: 1 a second, then 5% (X-Ray's default)
#    and, in every round, the floor: the time sendmmsg() takes per datagram
#    of the module's typical segment size, in batches as the emitter sends
# 2. instructions per request (callgrind) of A, B, C, D and E
# 3. the emitter: segments D's worker sent vs datagrams the sink received
# 4. memory per open SSE stream, with and without the module
#
# The upstream is a separate nginx (return 200), its worker pinned with wrk,
# the sink and the SSE peers to CPU 1; the proxy's worker alone has CPU 0,
# so that its cost, not theirs, sets the throughput.  See bench/README.md.
#
# The report goes to stdout and build/bench/report.txt; its last lines are
# the ratios.  Progress goes to stderr.  Everything listens on 127.0.0.1,
# ports 3000-3099; the whole run is bounded (BENCH_TIME_LIMIT seconds).
#
# Knobs (environment): BENCH_ROUNDS (9), BENCH_SECS (3), BENCH_CONNS (128),
# BENCH_CG_REQUESTS (5000), BENCH_SSE_STREAMS (2000), BENCH_TIME_LIMIT (900),
# BENCH_QUIET (15), BENCH_THROUGHPUT_SECS (220), BENCH_NICE (-10, as root),
# NGINX (/usr/sbin/nginx).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bench=$top/bench
module=$(realpath "${1:-$top/build/ngx_http_xray_module.so}")
nginx=${NGINX:-/usr/sbin/nginx}
out=$top/build/bench
report=$out/report.txt
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

rounds=${BENCH_ROUNDS:-9}
secs=${BENCH_SECS:-3}
conns=${BENCH_CONNS:-128}
cg_requests=${BENCH_CG_REQUESTS:-5000}
sse_streams=${BENCH_SSE_STREAMS:-2000}
time_limit=${BENCH_TIME_LIMIT:-900}
# rounds disturbed by other work (more than BENCH_QUIET % of one CPU) are
# repeated, up to 2 x BENCH_ROUNDS rounds while BENCH_THROUGHPUT_SECS last
quiet=${BENCH_QUIET:-15}
max_rounds=$(( rounds * 2 ))
throughput_budget=${BENCH_THROUGHPUT_SECS:-220}
# the benchmark's processes run at this nice value (root only) so that other
# work on a shared machine disturbs the rounds less
priority=${BENCH_NICE:--10}
[ "$(id -u)" -eq 0 ] || priority=0

# ports (3000-3099)
declare -A port=([A]=3001 [B]=3002 [C]=3003 [D]=3004 [E]=3005)
declare -A sse_port=([A]=3041 [C]=3043 [D]=3044)
declare -A status_port=([A]=3051 [B]=3052 [C]=3053 [D]=3054 [E]=3055)
upstream_port=3010
sse_upstream_port=3011
sink_port=3020
floor_sink_port=3021
cg_port=3030

configs=(A B C D E)
declare -A title=(
    [A]="module not loaded"
    [B]="loaded, xray off"
    [C]="xray on, none sampled"
    [D]="xray on, all sampled+sent"
    [E]="xray on, 1/s + 5% sampled"
)

# the floor: datagrams per sendmmsg() (the emitter's default batch) and
# datagrams timed in each round, sent at about floor_rate a second
floor_batch=64
floor_count=${BENCH_FLOOR_DATAGRAMS:-12800}
floor_rate=100000

# a valid trace header, sent by every client in every configuration
trace="Root=1-$(printf '%08x' "$(date +%s)")-abcdef0123456789abcdef01"
trace+=";Parent=53995c3f42cd8ad8;Sampled=1"

for tool in wrk valgrind callgrind_annotate taskset pgrep cc; do
    command -v "$tool" >/dev/null \
        || { echo "bench: $tool is missing" >&2; exit 1; }
done
[ -f "$module" ] || { echo "bench: no module at $module" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
: > "$report"

# nginx runs a private copy: a concurrent `make module` rewrites the build's
# .so in place, and a worker whose mapped module changes under it crashes
cp "$module" "$out/ngx_http_xray_module.so"
built_module=$module
module=$out/ngx_http_xray_module.so

# the module's own counters (xray_status), when this build has them
has_status=no
grep -q xray_status "$module" && has_status=yes

# progress goes to the script's stderr even where a command's is redirected
exec 9>&2
log() { echo "bench: $*" >&9; }
say() { printf '%s\n' "$*" | tee -a "$report"; }

# Two CPUs: the proxy's worker alone on CPU 0; wrk, the upstream, the sink
# and the SSE peers on CPU 1.  One CPU: no pinning.
if [ "$(nproc)" -ge 2 ]; then
    proxy_affinity="worker_cpu_affinity 01;"
    other_affinity="worker_cpu_affinity 10;"
    on_proxy_cpu=(nice -n "$priority" taskset -c 0)
    on_other_cpu=(nice -n "$priority" taskset -c 1)
else
    proxy_affinity=""
    other_affinity=""
    on_proxy_cpu=(nice -n "$priority")
    on_other_cpu=(nice -n "$priority")
fi

# ---------------------------------------------------------------- processes

pids=()
watchdog=

cleanup() {
    local pid i

    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for i in $(seq 50); do
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && break
            pid=
        done
        [ -z "$pid" ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# the whole run is bounded: past the limit the script is stopped, and the
# EXIT trap stops everything it started
( trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$time_limit" & sleeper=$!
  wait "$sleeper" || exit 0
  echo "bench: over ${time_limit}s, stopping" >&9
  kill -TERM $$ ) 2>/dev/null &
watchdog=$!

# waits (at most $2 seconds) until something accepts on 127.0.0.1:$1
wait_port() {
    local i

    for i in $(seq $(( $2 * 10 ))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "nothing listens on 127.0.0.1:$1 after $2 s"
    return 1
}

# stops one process we started: $2 is the signal; waits at most $3 seconds
stop_pid() {
    local pid=$1 sig=${2:-TERM} secs=${3:-10} i

    kill "-$sig" "$pid" 2>/dev/null || return 0
    for i in $(seq $(( secs * 10 ))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# render <template> <run dir> <port> <load_module line> <http xray>
#        <server xray> <master_process> <affinity line> [status server]
render() {
    mkdir -p "$2/tmp"
    sed -e "s|@RUN@|$2|g" \
        -e "s|@PORT@|$3|g" \
        -e "s|@LOAD_MODULE@|$4|g" \
        -e "s|@XRAY_HTTP@|$5|g" \
        -e "s|@XRAY_SERVER@|$6|g" \
        -e "s|@MASTER@|$7|g" \
        -e "s|@AFFINITY@|$8|g" \
        -e "s|@PRIORITY@|$priority|g" \
        -e "s|@STATUS_SERVER@|${9:-}|g" \
        -e "s|@UPSTREAM_PORT@|$upstream_port|g" \
        -e "s|@SSE_PORT@|$sse_upstream_port|g" \
        "$1" > "$2/nginx.conf"
}

# proxy_conf <config A-E> <run dir> <port> <master on|off> <affinity line>
#            [status port]
proxy_conf() {
    local load="load_module $module;" http="" server="" status="" metrics=""
    local daemon="xray_daemon 127.0.0.1:$sink_port;"

    # the requests the worker served (stub_status) and the module's counters
    if [ -n "${6:-}" ]; then
        if [ "$1" != A ] && [ "$has_status" = yes ]; then
            metrics="location = /metrics { xray_status; }"
        fi
        status="server { listen 127.0.0.1:$6; location = /stub { stub_status; } $metrics }"
    fi

    case $1 in
    A) load="" ;;
    B) http="$daemon"; server="xray off;" ;;
    C) http="xray_sampling_rules $bench/conf/rules-none.json; $daemon"
       server="xray on;" ;;
    D) http="xray_sampling_rules $bench/conf/rules-all.json; $daemon"
       server="xray on;" ;;
    E) http="xray_sampling_rules $bench/conf/rules-mix.json; $daemon"
       server="xray on;" ;;
    esac
    render "$bench/conf/proxy.conf.in" "$2" "$3" "$load" "$http" "$server" \
        "$4" "$5" "$status"
}

# start_nginx <run dir> <port>: sets $master
start_nginx() {
    "$nginx" -t -q -p "$1" -c "$1/nginx.conf" -e "$1/error.log"
    "$nginx" -p "$1" -c "$1/nginx.conf" -e "$1/error.log" \
        >>"$1/stderr.log" 2>&1 &
    master=$!
    pids+=("$master")
    wait_port "$2" 10
    kill -0 "$master" 2>/dev/null \
        || { log "nginx in $1 did not start: $(tail -3 "$1/error.log")"; exit 1; }
}

worker_of() {
    local i w

    for i in $(seq 50); do
        w=$(pgrep -P "$1" | head -1) && [ -n "$w" ] && { echo "$w"; return; }
        sleep 0.1
    done
    log "no worker under nginx $1"
    return 1
}

# user and system CPU ticks of a process
cpu_ticks() {
    awk '{ print $14, $15 }' "/proc/$1/stat"
}

# served <config>: the requests its nginx has served so far (stub_status)
served() {
    local body

    body=$(exec 3<>"/dev/tcp/127.0.0.1/${status_port[$1]}" \
           && printf 'GET /stub HTTP/1.0\r\nHost: bench\r\n\r\n' >&3 \
           && timeout 5 cat <&3) || { echo 0; return; }
    printf '%s\n' "$body" | tr -d '\r' \
        | awk 'f { print $3; exit } /^server accepts handled requests/ { f = 1 }'
}

# CPU time of a process so far, in nanoseconds (scheduler's accounting: on
# this kernel it includes the softirq work done in the process's context)
cpu_ns() {
    awk '{ print $1 }' "/proc/$1/schedstat"
}

# metric <config> <name with labels>: a counter from the module's status
# page (xray_status), or "-" without one
metric() {
    local body

    if [ "$has_status" != yes ] || [ "$1" = A ] || [ -z "${status_port[$1]:-}" ]; then
        echo -
        return
    fi
    body=$(exec 3<>"/dev/tcp/127.0.0.1/${status_port[$1]}" \
           && printf 'GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n' >&3 \
           && timeout 5 cat <&3) || { echo -; return; }
    # "name*" adds up every series whose name and labels start with name
    printf '%s\n' "$body" | tr -d '\r' \
        | awk -v m="$2" '
            m ~ /\*$/ && index($1, substr(m, 1, length(m) - 1)) == 1 { v += $2 }
            $1 == m { v = $2 }
            END { print v + 0 }'
}

counters=(
    'nginx_xray_requests_total{outcome="sampled"}'
    'nginx_xray_requests_total{outcome="not_sampled"}'
    'nginx_xray_requests_total{outcome="no_context"}'
    'nginx_xray_documents_queued_total'
    'nginx_xray_documents_sent_total'
    'nginx_xray_documents_dropped_total*'
)

# counters_snapshot <array name>: the counters of B, C, D and E
counters_snapshot() {
    local -n snap=$1
    local c m

    for c in B C D E; do
        for m in "${counters[@]}"; do
            snap[$c,$m]=$(metric "$c" "$m")
        done
    done
}

# counter_delta <config> <name>
counter_delta() {
    local a=${m_before[$1,$2]:--} b=${m_after[$1,$2]:--}

    if [ "$a" = - ] || [ "$b" = - ]; then
        echo -
    else
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%d", b - a }'
    fi
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# sink_field <field> [floor]: what the sink (or the floor's sink) has
# counted so far (it prints a line on SIGUSR1)
sink_field() {
    local before after i pid=$sink f=$out/sink.out

    if [ -n "${2:-}" ]; then
        pid=$floor_sink
        f=$out/floor-sink.out
    fi

    before=$(wc -l < "$f")
    kill -USR1 "$pid"
    for i in $(seq 50); do
        after=$(wc -l < "$f")
        [ "$after" -gt "$before" ] && break
        sleep 0.05
    done
    tail -1 "$f" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print 0;
              else if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# quartiles: the first quartile, the median and the third of the numbers on
# stdin, one a line (linear interpolation between ranks)
quartiles() {
    sort -g | awk '{ v[NR] = $1 }
        function q(f,   x, i) { x = 1 + (NR - 1) * f; i = int(x)
                                return v[i] + (x - i) * (v[i + 1] - v[i]) }
        END { if (NR == 0) print 0, 0, 0
              else printf "%.3f %.3f %.3f\n", q(0.25), q(0.5), q(0.75) }'
}

# ------------------------------------------------------------------- set-up

for p in "${port[@]}" "${sse_port[@]}" "$upstream_port" "$sse_upstream_port" \
         "$cg_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        log "127.0.0.1:$p is in use: another benchmark running?"
        exit 1
    fi
done

ulimit -n "$(ulimit -Hn)"

cc -O2 -Wall -Wextra -o "$out/udpsink" "$bench/udpsink.c"
cc -O2 -Wall -Wextra -o "$out/dgramfloor" "$bench/dgramfloor.c"

"${on_other_cpu[@]}" "$out/udpsink" "$sink_port" "$time_limit" \
    > "$out/sink.out" 2> "$out/sink.err" &
sink=$!
pids+=("$sink")

# the floor's datagrams go to a sink of their own, so that they are not
# counted as the emitter's
"${on_other_cpu[@]}" "$out/udpsink" "$floor_sink_port" "$time_limit" \
    > "$out/floor-sink.out" 2> "$out/floor-sink.err" &
floor_sink=$!
pids+=("$floor_sink")

render "$bench/conf/upstream.conf.in" "$out/upstream" "$upstream_port" \
    "" "" "" on "$other_affinity"
start_nginx "$out/upstream" "$upstream_port"
upstream_worker=$(worker_of "$master")

"${on_other_cpu[@]}" "$python" -u "$bench/sse.py" server "$sse_upstream_port" \
    > "$out/sse-upstream.log" 2>&1 &
pids+=("$!")

declare -A master_of worker
for c in "${configs[@]}"; do
    proxy_conf "$c" "$out/proxy-$c" "${port[$c]}" on "$proxy_affinity" \
        "${status_port[$c]:-}"
    start_nginx "$out/proxy-$c" "${port[$c]}"
    master_of[$c]=$master
    worker[$c]=$(worker_of "$master")
done
wait_port "$sse_upstream_port" 10

say "ngx_http_xray benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "nginx: $("$nginx" -v 2>&1 | sed 's/^nginx version: //'), module: $built_module"
say "  (git $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'), copied to $module)"
say "machine: $(nproc) CPUs, $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "pinning: proxy worker on CPU 0 alone; wrk, upstream nginx (return 200), UDP sink, SSE peers on CPU 1;"
say "  all at nice $priority"
say ""

# ----------------------------------------------------------- 1. throughput

# run_wrk <config> <seconds>: one wrk run; sets rps, requests, bad, and
# wrk_cpu (its own user+system CPU seconds)
run_wrk() {
    local f=$out/wrk-$1.txt TIMEFORMAT='%3U %3S' u k

    { time "${on_other_cpu[@]}" wrk -t1 -c"$conns" -d"$2"s \
          -H "X-Amzn-Trace-Id: $trace" "http://127.0.0.1:${port[$1]}/" \
          > "$f" 2>&1 ; } 2> "$out/wrk.time" || true
    read -r u k < "$out/wrk.time" || true
    wrk_cpu=$(awk -v u="${u:-0}" -v k="${k:-0}" 'BEGIN { print u + k }')
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
    requests=$(awk '/requests in/ { print $1 }' "$f")
    bad=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { n += 1 }
               END { print n + 0 }' "$f")
    rps=${rps:-0}
    requests=${requests:-0}
}

# CPU ticks all processes have used so far (user, nice, system; both CPUs)
tasks_ticks() {
    awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat
}

log "throughput: warm-up"
for c in "${configs[@]}"; do
    run_wrk "$c" 1
done
sleep 0.3    # the emitter's flush timer (100 ms)

# the module's typical datagram: the mean size of what the warm-up's
# sampled requests (D, E) sent, the daemon's header line included
warm_datagrams=$(sink_field datagrams)
warm_bytes=$(sink_field bytes)
floor_size=1000
[ "${warm_datagrams:-0}" -gt 0 ] && floor_size=$(( warm_bytes / warm_datagrams ))

# floor_run: one measurement of the floor, on the proxy's CPU while the
# proxies are idle; sets floor_us (CPU microseconds per datagram)
floor_run() {
    "${on_proxy_cpu[@]}" "$out/dgramfloor" "$floor_sink_port" "$floor_size" \
        "$floor_batch" "$floor_count" "$floor_rate" >> "$out/floor.txt" 2>&1 \
        || log "the floor measurement failed: $(tail -1 "$out/floor.txt")"
    floor_us=$(tail -1 "$out/floor.txt" | tr ' ' '\n' \
               | awk -F= '$1 == "cpu_us" { print $2 }')
    floor_us=${floor_us:-0}
}

# A round runs A, B, C and D once each, in rotating order.  Other work on
# the machine (CPU time of processes outside the benchmark) is measured
# during each run; a round where it exceeded $quiet% of one CPU is
# repeated, as long as the time allotted to throughput lasts, and left out
# when enough quiet rounds were measured.
declare -A rps_of cpu_of usr_of sys_of cpureq_of other_of floor_of
declare -A m_before m_after
counters_snapshot m_before
round_ok=()
sent_total=0
received_total=0
overflow_before=$(sink_field overflow)
hz=$(getconf CLK_TCK)
anomalies=0
attempts=0
quiet_rounds=0
t_start=$SECONDS

while [ "$quiet_rounds" -lt "$rounds" ] && [ "$attempts" -lt "$max_rounds" ] \
      && { [ "$attempts" -lt "$rounds" ] \
           || [ $(( SECONDS - t_start )) -lt "$throughput_budget" ]; }
do
    attempts=$((attempts + 1))
    r=$attempts
    # the order rotates (ABCD, BCDA, ...) so that no configuration always
    # follows the same one
    shift=$(( (r - 1) % ${#configs[@]} ))
    order=("${configs[@]:shift}" "${configs[@]:0:shift}")
    round_order[$r]=$(printf '%s' "${order[@]}")
    other_max=0
    for c in "${order[@]}"; do
        log "throughput: round $r ($quiet_rounds of $rounds quiet so far), $c"
        n0=$(served "$c")
        ns0=$(cpu_ns "${worker[$c]}")
        read -r u0 k0 < <(cpu_ticks "${worker[$c]}")
        read -r uu0 uk0 < <(cpu_ticks "$upstream_worker")
        read -r su0 sk0 < <(cpu_ticks "$sink")
        all0=$(tasks_ticks)
        [ "$c" = D ] && s0=$(sink_field datagrams)
        run_wrk "$c" "$secs"
        all1=$(tasks_ticks)
        read -r u1 k1 < <(cpu_ticks "${worker[$c]}")
        read -r uu1 uk1 < <(cpu_ticks "$upstream_worker")
        read -r su1 sk1 < <(cpu_ticks "$sink")
        ns1=$(cpu_ns "${worker[$c]}")
        n1=$(served "$c")
        # the worker's CPU time per request it served (the second status
        # request is not in the window; requests in flight when wrk stops
        # are)
        cpureq_of[$c,$r]=$(awk -v t=$((ns1 - ns0)) -v n=$((n1 - n0 - 1)) \
                              'BEGIN { if (n > 0) printf "%.3f", t / 1e3 / n; else print 0 }')
        rps_of[$c,$r]=$rps
        cpu_of[$c,$r]=$(( (u1 - u0 + k1 - k0) * 100 / (hz * secs) ))
        usr_of[$c,$r]=$(awk -v t=$((u1 - u0)) -v hz="$hz" -v n="$requests" \
                           'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n }')
        sys_of[$c,$r]=$(awk -v t=$((k1 - k0)) -v hz="$hz" -v n="$requests" \
                           'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n }')
        other=$(awk -v all=$((all1 - all0)) \
                    -v ours=$((u1 - u0 + k1 - k0 + uu1 - uu0 + uk1 - uk0 + su1 - su0 + sk1 - sk0)) \
                    -v w="$wrk_cpu" -v hz="$hz" -v s="$secs" \
                    'BEGIN { o = ((all - ours) / hz - w) * 100 / s
                             if (o < 0) o = 0; printf "%d", o }')
        [ "$other" -gt "$other_max" ] && other_max=$other
        if [ "$bad" -ne 0 ] || [ "$requests" -eq 0 ]; then
            anomalies=$((anomalies + 1))
            cp "$out/wrk-$c.txt" "$out/wrk-$c-round$r-errors.txt"
        fi
        if [ "$c" = D ] || [ "$c" = E ]; then
            sleep 0.3    # the emitter's flush timer (100 ms)
        fi
        if [ "$c" = D ]; then
            s1=$(sink_field datagrams)
            sent_total=$((sent_total + requests))
            received_total=$((received_total + s1 - s0))
        fi
    done
    log "throughput: round $r, floor ($floor_count datagrams of $floor_size bytes)"
    floor_run
    floor_of[$r]=$floor_us
    other_of[$r]=$other_max
    if [ "$other_max" -le "$quiet" ]; then
        quiet_rounds=$((quiet_rounds + 1))
    fi
done
overflow_after=$(sink_field overflow)
throughput_secs=$(( SECONDS - t_start ))
counters_snapshot m_after

# the rounds the medians are taken over: the quiet ones when there are at
# least 5 (or all that were asked for), else all of them
used=()
for r in $(seq "$attempts"); do
    if [ "$quiet_rounds" -ge 5 ] || [ "$quiet_rounds" -ge "$rounds" ]; then
        [ "${other_of[$r]}" -le "$quiet" ] && used+=("$r")
    else
        used+=("$r")
    fi
done

say "1. Throughput: wrk -t1 -c$conns, rounds of ${secs}s per configuration, requests/s"
say "   (every request carries a valid X-Amzn-Trace-Id; 1 proxy worker, access_log off,"
say "   proxy_pass with keepalive to a separate 1-worker nginx answering return 200)"
say ""
say "$(printf '   %5s %5s %8s %8s %8s %8s %8s %6s %6s %4s' round order A B C D E \
       'floor' other used)"
for r in $(seq "$attempts"); do
    u=no
    for x in "${used[@]}"; do [ "$x" = "$r" ] && u=yes; done
    say "$(printf '   %5d %5s %8.0f %8.0f %8.0f %8.0f %8.0f %6.3f %5d%% %4s' "$r" \
           "${round_order[$r]}" "${rps_of[A,$r]}" "${rps_of[B,$r]}" \
           "${rps_of[C,$r]}" "${rps_of[D,$r]}" "${rps_of[E,$r]}" \
           "${floor_of[$r]}" "${other_of[$r]}" "$u")"
done
say "   (other: CPU time of processes outside the benchmark during the round, in %"
say "   of one CPU, the most of its ${#configs[@]} runs; a round above $quiet% is repeated while"
say "   time allows (${throughput_budget}s), and left out when 5 or more quiet rounds exist."
say "   floor: microseconds per datagram, see below)"
say ""
say "$(printf '   %-28s %9s %6s %7s %7s %8s' "over the ${#used[@]} rounds used" 'median' 'cpu' \
       'usr us' 'sys us' 'cpu us')"
declare -A med cpu_med cpureq
for c in "${configs[@]}"; do
    med[$c]=$(for r in "${used[@]}"; do echo "${rps_of[$c,$r]}"; done | median)
    cpu=$(for r in "${used[@]}"; do echo "${cpu_of[$c,$r]}"; done | median)
    usr=$(for r in "${used[@]}"; do echo "${usr_of[$c,$r]:-0}"; done | median)
    sys=$(for r in "${used[@]}"; do echo "${sys_of[$c,$r]:-0}"; done | median)
    cpureq[$c]=$(for r in "${used[@]}"; do echo "${cpureq_of[$c,$r]:-0}"; done | median)
    cpu_med[$c]=$cpu
    say "$(printf '   %-28s %9.0f %5.0f%% %7.2f %7.2f %8.3f' "$c ${title[$c]}" \
           "${med[$c]}" "$cpu" "$usr" "$sys" "${cpureq[$c]}")"
done
say "   (cpu: the proxy worker's CPU time during a run; near 100% the proxy, not"
say "   wrk or the upstream on the other CPU, was the bottleneck.  usr, sys: its CPU"
say "   microseconds per request in user space and in the kernel (clock ticks, over"
say "   wrk's count); cpu us: its CPU microseconds per request it served, from the"
say "   scheduler's nanoseconds (/proc/PID/schedstat) over stub_status's count.  The"
say "   kernel does no separate IRQ time accounting: the softirq work of loopback"
say "   done in the worker's context is in its CPU time)"
# Paired, round by round: a round's configurations ran within seconds of
# each other, while the machine's speed drifts between rounds (other work,
# frequency, the host); the median of the per-round ratios does not mix
# rounds, a ratio of medians does.  The quartiles show the spread.
declare -A pr_q1 pr_med pr_q3 pc_q1 pc_med pc_q3
for c in B C D E; do
    read -r pr_q1[$c] pr_med[$c] pr_q3[$c] < <(
        for r in "${used[@]}"; do
            awk -v x="${rps_of[$c,$r]}" -v a="${rps_of[A,$r]}" \
                'BEGIN { if (a > 0) printf "%.4f\n", x / a }'
        done | quartiles)
    read -r pc_q1[$c] pc_med[$c] pc_q3[$c] < <(
        for r in "${used[@]}"; do
            awk -v x="${cpureq_of[$c,$r]:-0}" -v a="${cpureq_of[A,$r]:-0}" \
                'BEGIN { if (x > 0) printf "%.4f\n", a / x }'
        done | quartiles)
    say "$(printf '   %s/A, per-round ratios: requests/s median %.3f (quartiles %.3f-%.3f), CPU per request %.3f (%.3f-%.3f)' \
           "$c" "${pr_med[$c]}" "${pr_q1[$c]}" "${pr_q3[$c]}" \
           "${pc_med[$c]}" "${pc_q1[$c]}" "${pc_q3[$c]}")"
done
# on a busy machine the worker waits for the CPU and requests/s fall with
# whatever else runs; its CPU time per request does not wait
declare -A cpu_ratio
for c in B C D E; do
    cpu_ratio[$c]=$(awk -v a="${cpureq[A]}" -v x="${cpureq[$c]}" \
                        'BEGIN { if (x > 0) printf "%.3f", a / x; else print 0 }')
    say "$(printf '   %s/A from CPU time per request (cpu us of A / of %s): %.3f' \
           "$c" "$c" "${cpu_ratio[$c]}")"
done
busy=$(for c in "${configs[@]}"; do echo "${cpu_med[$c]}"; done | sort -n | head -1)
if [ "$quiet_rounds" -lt 5 ] && [ "$quiet_rounds" -lt "$rounds" ]; then
    say "   WARNING: only $quiet_rounds quiet round(s) in ${throughput_secs}s: other work on the"
    say "   machine disturbed the measurement; the requests/s ratios are unreliable"
elif [ "$busy" -lt 85 ]; then
    say "   WARNING: the proxy worker had the CPU only ${busy}% of the time in some"
    say "   configuration: it was not the bottleneck; the ratios understate its cost"
fi
[ "$anomalies" -gt 0 ] \
    && say "   WARNING: $anomalies run(s) had errors or non-2xx answers, see $out/wrk-*-errors.txt"
say ""

# the floor: with every request sampled, each request also sends one
# datagram; t_plain is the worker's CPU time for a plain request (A),
# t_datagram the CPU time the kernel takes to send one datagram
floor_med=$(for r in "${used[@]}"; do echo "${floor_of[$r]}"; done | median)
t_plain=${cpureq[A]}
ceiling=$(awk -v p="$t_plain" -v d="$floor_med" \
              'BEGIN { if (p + d > 0) printf "%.3f", p / (p + d); else print 0 }')
floor_overflow=$(sink_field overflow floor)
say "   the floor: sendmmsg() of $floor_size-byte datagrams (the mean size of D's and E's, header"
say "   line included), $floor_batch a call as the emitter sends them, $floor_count a round at"
say "   $floor_rate a second, from one process on the proxy's CPU (bench/dgramfloor.c):"
say "$(printf '   t_datagram %.3f CPU us per datagram (the median over the rounds used of' "$floor_med")"
say "$(printf '   each round'"'"'s CPU time of its sendmmsg() calls over its datagrams); t_plain %.3f' "$t_plain")"
say "   CPU us per request of A (cpu us above): ceiling for D = t_plain / (t_plain +"
say "   t_datagram) = ${ceiling}x.  The floor's sink dropped $floor_overflow datagrams (SO_RXQ_OVFL)"
say ""

# ------------------------------------------------------ 2. instructions

# callgrind_run <config> <requests>: sets cg_ir, the Ir of nginx
# (master_process off) from start to exit, serving that many requests on one
# keep-alive connection
callgrind_run() {
    local dir=$out/cg-$1-$2 vg f

    local i ok=yes

    proxy_conf "$1" "$dir" "$cg_port" off ""
    f=$dir/callgrind.out
    # nice and taskset exec: $! is valgrind's own pid, which passes signals
    # on to nginx (the whole run is bounded by the watchdog)
    "${on_proxy_cpu[@]}" valgrind --tool=callgrind \
        --callgrind-out-file="$f" \
        "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        > "$dir/valgrind.log" 2>&1 &
    vg=$!
    pids+=("$vg")
    cg_d0=$(sink_field datagrams)
    # on a busy machine nginx under valgrind takes a while to start
    if ! wait_port "$cg_port" 240 || ! kill -0 "$vg" 2>/dev/null; then
        ok=no
    elif [ "$2" -gt 0 ]; then
        "${on_other_cpu[@]}" timeout 300 "$python" "$bench/requests.py" \
            "$cg_port" "$2" "$trace" > "$dir/client.txt" 2>&1 \
            || { log "callgrind $1: the client failed: $(cat "$dir/client.txt")"
                 ok=no; }
    fi
    sleep 0.3
    stop_pid "$vg" QUIT 180
    # the datagrams (segments) the sink received from this run
    cg_dgrams=$(( $(sink_field datagrams) - cg_d0 ))
    # the next run listens on the same port
    for i in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$cg_port") 2>/dev/null || break
        sleep 0.1
    done
    cg_ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f" 2>/dev/null)
    if [ "$ok" = no ] || [ -z "$cg_ir" ]; then
        log "callgrind $1, $2 requests: the run failed, see $dir"
        cg_failed="$cg_failed $1/$2"
        cg_ir=0
    fi
}
cg_failed=

declare -A ir dgrams
cg_configs=(A B C D E)
for c in "${cg_configs[@]}"; do
    for n in 0 "$cg_requests"; do
        log "callgrind: $c, $n requests"
        callgrind_run "$c" "$n"
        ir[$c,$n]=${cg_ir:-0}
        dgrams[$c,$n]=$cg_dgrams
    done
done

say "2. Instructions per request: callgrind (user-space instructions), nginx master_process off, $cg_requests requests"
say "   on one keep-alive connection; (Ir(N) - Ir(0)) / N, N = $cg_requests"
say ""
[ -n "$cg_failed" ] \
    && say "   WARNING: callgrind run(s)$cg_failed failed: their figures are meaningless"
declare -A per_req
for c in "${cg_configs[@]}"; do
    per_req[$c]=$(( (${ir[$c,$cg_requests]} - ${ir[$c,0]}) / cg_requests ))
    say "$(printf '   %-28s Ir(0) %12d  Ir(N) %12d  per request %7d  segments %5d' \
           "$c ${title[$c]}" "${ir[$c,0]}" "${ir[$c,$cg_requests]}" \
           "${per_req[$c]}" "${dgrams[$c,$cg_requests]}")"
done
say "   (segments: the datagrams the sink received from the run of N requests;"
say "   E's share of sampled requests depends on how long the run took: 1 a"
say "   second under valgrind's pace, then 5% of the rest)"
for c in B C D E; do
    added=$(( ${per_req[$c]} - ${per_req[A]} ))
    say "$(printf '   added by the module per request, %s - A: %6d instructions (%+.1f%%)' \
           "$c" "$added" \
           "$(awk -v a="$added" -v b="${per_req[A]}" 'BEGIN { print 100 * a / b }')")"
done
# E is C for most requests and D for the sampled ones: what it costs beyond
# that is the decision (the reservoir, the 5% draw) and the emitter's timer
e_over=$(awk -v e="${per_req[E]}" -v c="${per_req[C]}" -v d="${per_req[D]}" \
             -v s="${dgrams[E,$cg_requests]}" -v n="$cg_requests" \
             'BEGIN { f = n > 0 ? s / n : 0
                      printf "%d", e - c - f * (d - c) }')
say "   E beyond C and its sampled share of D - C (${dgrams[E,$cg_requests]} of $cg_requests): $e_over instructions"
say "   a request (the reservoir and the 5% draw; at callgrind's pace also the"
say "   emitter's flush timer in nginx's timer tree, see bench/README.md)"
say ""
say "   where D's extra instructions go, per request: exclusive Ir of each function,"
say "   ((D(N) - D(0)) - (A(N) - A(0))) / N from callgrind_annotate; user space only,"
say "   the kernel's side of syscalls is not counted:"
for c in "${cg_configs[@]}"; do
    for n in 0 "$cg_requests"; do
        callgrind_annotate --inclusive=no --threshold=100 --auto=no \
            "$out/cg-$c-$n/callgrind.out" > "$out/cg-$c-$n.self" 2>/dev/null
    done
done
# cgdiff_of <config> <lines>: where <config>'s extra instructions go
cgdiff_of() {
    "$python" "$bench/cgdiff.py" diff --src "$top" \
        "$out/cg-A-0.self" "$out/cg-A-$cg_requests.self" \
        "$out/cg-$1-0.self" "$out/cg-$1-$cg_requests.self" "$cg_requests" \
        "$2" > "$out/cgdiff-$1.txt"
    while IFS= read -r l; do say "   $l"; done < "$out/cgdiff-$1.txt"
}
# the module's own code per request: the object line of cgdiff_of
own_of() {
    sed -n 's/.*ngx_http_xray_module\.so +\{0,1\}\(-\{0,1\}[0-9]*\).*/\1/p' \
        "$out/cgdiff-$1.txt" | head -1
}
cgdiff_of D 20
say ""
say "   the same for C (unsampled), C minus A:"
cgdiff_of C 12
say ""
say "   the same for E (production mix: 1 a second, then 5%), E minus A:"
cgdiff_of E 12
say ""
say "   the same for B (loaded, xray off), B minus A: what loading alone moves,"
say "   mostly the state of malloc's heap (the module's start-up allocations),"
say "   which changes what malloc() and free() cost per request, either way:"
cgdiff_of B 6
say ""
say "   calls per request of a few library functions:"
"$python" "$bench/cgdiff.py" calls "$cg_requests" \
    $(for c in "${cg_configs[@]}"; do
          printf '%s:%s:%s ' "$c" "$out/cg-$c-0/callgrind.out" \
              "$out/cg-$c-$cg_requests/callgrind.out"
      done) -- \
    malloc=malloc 'posix_memalign (pool blocks)=posix_memalign' free=free \
    memcpy='.*memcpy.*|.*memmove.*' 'sendmmsg (syscall)=sendmmsg' \
    gettimeofday='.*gettimeofday.*' clock_gettime='.*clock_gettime.*' \
    | while IFS= read -r l; do say "   $l"; done
say "   (listings: $out/cg-*.self; callgrind_annotate $out/cg-D-$cg_requests/callgrind.out)"
say ""

# --------------------------------------------------------- 3. emitter

errlog_drops=$(grep -c 'not sent to the daemon' "$out/proxy-D/error.log" || true)
say "3. Emitter: D's worker over all its $attempts rounds ($(( attempts * secs )) s of wrk -c$conns)"
say ""
say "   responses wrk completed:                    $sent_total"
say "   segments queued (module's counters):        $(counter_delta D nginx_xray_documents_queued_total)"
say "   segments the kernel accepted (sent):        $(counter_delta D nginx_xray_documents_sent_total)"
say "   segments dropped by the emitter:            $(counter_delta D 'nginx_xray_documents_dropped_total*')"
say "   datagrams the sink received:                $received_total"
say "   segments per second delivered:              $(( received_total / (attempts * secs) ))"
say "   kernel drops at the sink's socket:          $(( overflow_after - overflow_before )) (SO_RXQ_OVFL; receive buffer $(sink_field rcvbuf) bytes)"
say "   emitter warnings in D's error log:          $errlog_drops"
say "   (wrk does not count the requests in flight when it stops, up to $conns a run;"
say "   nginx completes and records them: queued >= completed)"
say ""
say "   the module's request counters over the same rounds (B, C, D, E):"
for c in B C D E; do
    say "$(printf '   %-28s sampled %9s  not sampled %9s  no context %6s' "$c ${title[$c]}" \
           "$(counter_delta "$c" 'nginx_xray_requests_total{outcome="sampled"}')" \
           "$(counter_delta "$c" 'nginx_xray_requests_total{outcome="not_sampled"}')" \
           "$(counter_delta "$c" 'nginx_xray_requests_total{outcome="no_context"}')")"
done
say ""

# ------------------------------------------------------------ 4. SSE

# sse_run <config>: sets sse_result
sse_run() {
    local c=$1 dir=$out/sse-$c p=${sse_port[$1]} w client ready i
    local rss0 rss1 rss2 d0 d1 d2 got

    proxy_conf "$c" "$dir" "$p" on "$proxy_affinity"
    start_nginx "$dir" "$p"
    w=$(worker_of "$master")

    # warm-up: a few streams opened and closed, so that code pages and the
    # first allocations are not counted as per-stream memory
    "${on_other_cpu[@]}" "$python" "$bench/sse.py" client "$p" 20 \
        "$dir/warm.ready" 15 "$trace" > "$dir/client.log" 2>&1 &
    client=$!
    pids+=("$client")
    for i in $(seq 150); do [ -f "$dir/warm.ready" ] && break; sleep 0.1; done
    stop_pid "$client" TERM 10
    sleep 1.2

    rss0=$(rss_kib "$w")
    d0=$(sink_field datagrams)
    "${on_other_cpu[@]}" "$python" "$bench/sse.py" client "$p" "$sse_streams" \
        "$dir/ready" 60 "$trace" >> "$dir/client.log" 2>&1 &
    client=$!
    pids+=("$client")
    for i in $(seq 600); do [ -f "$dir/ready" ] && break; sleep 0.1; done
    got=$(cat "$dir/ready" 2>/dev/null || echo 0)
    sleep 2.5    # two more events on every stream
    rss1=$(rss_kib "$w")
    d1=$(sink_field datagrams)
    stop_pid "$client" TERM 10
    sleep 1.5    # nginx sees the streams close, the log phase runs
    rss2=$(rss_kib "$w")
    d2=$(sink_field datagrams)
    stop_pid "$master" QUIT 10

    sse_result=$(printf '   %-28s %7d %9d %9d %9d %11.2f %6d %7d' \
        "$c ${title[$c]}" "$got" "$rss0" "$rss1" "$rss2" \
        "$(awk -v a="$rss0" -v b="$rss1" -v n="$got" \
               'BEGIN { print n ? (b - a) / n : 0 }')" \
        "$(( d1 - d0 ))" "$(( d2 - d1 ))")
    sse_per[$c]=$(awk -v a="$rss0" -v b="$rss1" -v n="$got" \
                      'BEGIN { print n ? (b - a) / n : 0 }')
}

declare -A sse_per
sse_lines=()
for c in A C D; do
    log "SSE: $c, $sse_streams streams"
    sse_run "$c"
    sse_lines+=("$sse_result")
done

say "4. SSE: $sse_streams concurrent streams through one worker (proxy_buffering off),"
say "   one event a second each; the worker's VmRSS in KiB"
say ""
say "$(printf '   %-28s %7s %9s %9s %9s %11s %6s %7s' config streams before open closed \
       'KiB/stream' 'docs' 'docs')"
say "$(printf '   %-28s %7s %9s %9s %9s %11s %6s %7s' '' '' '' '' '' '' 'open' 'closed')"
for l in "${sse_lines[@]}"; do say "$l"; done
say "$(printf '   the module per stream: C - A %.2f KiB, D - A %.2f KiB' \
       "$(awk -v a="${sse_per[C]}" -v b="${sse_per[A]}" 'BEGIN { print a - b }')" \
       "$(awk -v a="${sse_per[D]}" -v b="${sse_per[A]}" 'BEGIN { print a - b }')")"
say "   (docs open: datagrams the sink got while the streams opened, one"
say "   in_progress document each for D; docs closed: one complete segment each)"
say ""

# ------------------------------------------------------------- ratios

crashes=$(cat "$out"/*/error.log | grep -c 'exited on signal' || true)
if [ "$crashes" -gt 0 ]; then
    say "WARNING: $crashes nginx worker(s) crashed during the run:"
    grep -l 'exited on signal' "$out"/*/error.log | sed 's/^/   /' | tee -a "$report"
    say ""
fi

ratio() {
    awk -v x="$1" -v a="$2" 'BEGIN { r = 0; if (a > 0) r = x / a
                                     printf "%.3f", r }'
}
# verdict <value> <target> [le]: met when value >= target (<= with le)
verdict() {
    awk -v r="$1" -v t="$2" -v le="${3:-}" \
        'BEGIN { ok = le ? r + 0 <= t + 0 : r + 0 >= t + 0
                 print ok ? "met" : "MISSED" }'
}

# the verdicts go by the paired ratios (see the throughput section); the
# quartiles say how far a verdict is from noise
rb=${pr_med[B]}; rc=${pr_med[C]}; re=${pr_med[E]}; rd=${pr_med[D]}
cb=${pc_med[B]}; cc=${pc_med[C]}; ce=${pc_med[E]}; cd=${pc_med[D]}
# "sampled within 3% of the ceiling"
rd_target=$(awk -v c="$ceiling" 'BEGIN { printf "%.3f", 0.97 * c }')
added_b=$(( ${per_req[B]} - ${per_req[A]} ))
added_c=$(( ${per_req[C]} - ${per_req[A]} ))
added_d=$(( ${per_req[D]} - ${per_req[A]} ))
added_e=$(( ${per_req[E]} - ${per_req[A]} ))
sse_c=$(awk -v a="${sse_per[C]}" -v b="${sse_per[A]}" 'BEGIN { printf "%.2f", a - b }')
sse_d=$(awk -v a="${sse_per[D]}" -v b="${sse_per[A]}" 'BEGIN { printf "%.2f", a - b }')
spread() {
    printf 'quartiles %.3f-%.3f, %.3f-%.3f' "${pr_q1[$1]}" "${pr_q3[$1]}" \
        "${pc_q1[$1]}" "${pc_q3[$1]}"
}
say "ratios to plain nginx (A), ${#used[@]} rounds: medians of the per-round ratios of requests/s"
say "and of CPU time per request (A's over the configuration's; the one to trust when the"
say "machine is busy), their quartiles, and instructions:"
say "ratio loaded-off/plain: ${rb}x requests/s, ${cb}x CPU ($(spread B); B only returns early: the spread is noise)"
say "ratio unsampled/plain: ${rc}x requests/s, ${cc}x CPU (target >= 0.99: $(verdict "$rc" 0.99), $(verdict "$cc" 0.99); $(spread C))"
say "ratio production-mix/plain: ${re}x requests/s, ${ce}x CPU (target >= 0.985: $(verdict "$re" 0.985), $(verdict "$ce" 0.985); $(spread E))"
say "ratio sampled/plain: ${rd}x requests/s, ${cd}x CPU (target within 3% of the ceiling ${ceiling}x, >= ${rd_target}: $(verdict "$rd" "$rd_target"), $(verdict "$cd" "$rd_target"); $(spread D))"
say "floor: $(printf '%.3f' "$floor_med") CPU us per $floor_size-byte datagram, plain request $t_plain CPU us: ceiling ${ceiling}x"
say "instructions added per request, loaded-off: $added_b (the module's own code: $(own_of B); the rest is heap state, see 2.)"
say "instructions added per request, unsampled: $added_c (target <= 500, $(verdict "$added_c" 500 le))"
say "instructions added per request, sampled: $added_d (target <= 4000, $(verdict "$added_d" 4000 le))"
say "instructions added per request, production mix: $added_e (${dgrams[E,$cg_requests]} of $cg_requests sampled)"
say "instructions per request in the module's own code: unsampled $(own_of C), production mix $(own_of E), sampled $(own_of D)"
say "SSE memory per stream added by the module: ${sse_c} KiB unsampled, ${sse_d} KiB sampled"
