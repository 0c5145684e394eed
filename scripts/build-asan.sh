#!/usr/bin/env bash
# Builds an nginx 1.22.1 with ngx_http_xray compiled in (static, not a
# dynamic module) under AddressSanitizer + UndefinedBehaviorSanitizer, for
# `make test-asan`.
#
#   scripts/build-asan.sh [BUILD_DIR]      (default: ./build/asan)
#   scripts/build-asan.sh --check-reports REPORT_DIR
#
# The first form builds and prints the path of the binary
# (BUILD_DIR/objs/nginx) on its last line.  It also splits t/asan.supp into
# BUILD_DIR/lsan.supp and BUILD_DIR/ubsan.supp (see that file).
#
# The second form is the gate of `make test-asan`: the suite runs with
# ASAN_OPTIONS=log_path=REPORT_DIR/san and the same log_path in
# UBSAN_OPTIONS, so every nginx process that has something to say writes
# REPORT_DIR/san.<pid>.  A file that holds nothing but LSan's "Suppressions
# used:" table (leaks that t/asan.supp covers) is fine; anything else (an ASan
# error, a UBSan runtime error, a leak no entry covers) is a failure: it prints
# those reports, the ones with a frame of the module first, and exits 1.
#
# Sources: Debian's source package of nginx (upstream 1.22.1 + Debian's
# patches), fetched with `apt-get source`.  A deb-src entry for bookworm is
# added in /etc/apt/sources.list.d/xray-deb-src.sources only when the system
# has none.  The installed version is tried first; when the archive no longer
# serves its .dsc (the security pocket drops superseded uploads), the other
# versions `apt-cache showsrc nginx` knows of are tried, newest first: any
# 1.22.1 upload will do, the Debian patches matter less than the upstream
# version.
#
# Configure flags: Debian's own (read from the package's debian/rules), minus
# --with-compat (nothing is loaded dynamically), minus the dynamic modules
# that need extra libraries (geoip, image_filter, perl, xslt, stream_geoip);
# mail and stream, which need none, are compiled in.  Compiler flags:
#   -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1
#   -DNGX_DEBUG_PALLOC=1   every ngx_palloc() is its own malloc(), so that
#                          ASan sees overflows of pool allocations too (nginx's
#                          pools otherwise carve many objects out of one
#                          block and an overflow lands in a neighbour).
# and -static-libasan -static-libubsan at link time: with GCC's shared
# libasan + libubsan, UBSan's reports ignore log_path and go to stderr (which
# nginx points at its error log once running, and which the test runner
# recreates for every block); linked statically, ASan, LSan and UBSan share
# one report file per process.
#
# Everything lives in BUILD_DIR (downloads in dl/, the patched tree in
# nginx-src/, objects in objs/); the system's files are not touched.
# Cached: the download and extraction happen once; configure runs again
# only when its arguments or the module's `config` file change; make then
# rebuilds only what changed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "build-asan: $*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------------------
# --check-reports REPORT_DIR
# ---------------------------------------------------------------------------

# a report file without its "Suppressions used:" table (LSan prints one, with
# the counts of what t/asan.supp hid, even when it hid every leak)
unsuppressed() {
    awk '/^-+$/ { next }
         /^Suppressions used:/ { table = 1; next }
         table && /^ *(count|[0-9]+ +[0-9]+ )/ { next }
         { table = 0 }
         NF { print }' "$1"
}

check_reports() {
    local dir=$1 f n=0 shown=0 module=() other=() bad
    [ -d "$dir" ] || die "no report directory $dir"
    bad=$(mktemp -d)
    for f in "$dir"/san.*; do
        [ -s "$f" ] || continue
        n=$((n + 1))
        unsuppressed "$f" > "$bad/${f##*/}"
        if [ ! -s "$bad/${f##*/}" ]; then
            rm -f "$bad/${f##*/}"
        # a frame of the module: one of its functions, or one of its files
        elif grep -Eq " in (ngx_http_xray|xray_)[A-Za-z0-9_]*( |$)|$top/(ngx_http_xray_module\.c|src/)" "$f"; then
            module+=("$f")
        else
            other+=("$f")
        fi
    done
    echo "sanitizers: $n nginx process(es) wrote a report in $dir"
    # what t/asan.supp hid, summed over the processes (none may have
    # written anything: cat then fails, and pipefail would end the script)
    [ "$n" -eq 0 ] || cat "$dir"/san.* | awk '
        /^Suppressions used:/ { table = 1; next }
        table && $1 ~ /^[0-9]+$/ { n[$3] += $1; b[$3] += $2; p[$3]++; next }
        table && $1 != "count" { table = 0 }
        END { for (t in n) printf "  suppressed leak:%s  %d object(s), %d bytes, in %d process(es)\n", t, n[t], b[t], p[t] }'
    if [ $((${#module[@]} + ${#other[@]})) -eq 0 ]; then
        echo "sanitizers: OK, nothing but suppressed nginx core leaks"
        rm -rf "$bad"
        return 0
    fi
    echo "sanitizers: FAILED: $((${#module[@]} + ${#other[@]})) report(s) left:" \
         "${#module[@]} with a frame of the module, ${#other[@]} without;" \
         "$(cat "$bad"/* | grep -c 'runtime error:') UBSan runtime error(s)," \
         "$(cat "$bad"/* | grep -Ec 'ERROR: AddressSanitizer') ASan error(s)," \
         "$(cat "$bad"/* | grep -Ec '^(Direct|Indirect) leak') unsuppressed leak(s)"
    for f in "${module[@]}" "${other[@]}"; do
        if [ "$shown" -ge "${ASAN_SHOW_MAX:-20}" ]; then
            echo "---- $f (not shown: ASAN_SHOW_MAX=${ASAN_SHOW_MAX:-20})"
            continue
        fi
        shown=$((shown + 1))
        echo "==== $f"
        cat "$f"
    done
    rm -rf "$bad"
    return 1
}

if [ "${1:-}" = --check-reports ]; then
    [ $# -eq 2 ] || die "usage: $0 --check-reports REPORT_DIR"
    check_reports "$2"
    exit
fi

build=$(mkdir -p "${1:-$top/build/asan}" && cd "${1:-$top/build/asan}" && pwd)
upstream=1.22.1
dl=$build/dl
tree=$build/nginx-src
objs=$build/objs

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo

# what the build needs; dpkg-dev for dpkg-source
"$top/scripts/install-deps.sh" dpkg-dev gcc make libpcre2-dev libssl-dev \
    zlib1g-dev libcjson-dev

# ---------------------------------------------------------------------------
# 1. sources
# ---------------------------------------------------------------------------

have_deb_src() {
    # one-line style (sources.list, *.list) or deb822 style (*.sources)
    grep -Eqs '^[[:space:]]*deb-src[[:space:]].*[[:space:]]bookworm([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list && return 0
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # a stanza with Types: ... deb-src ... and Suites: ... bookworm ...
        awk 'BEGIN { RS = "" }
             /(^|\n)Types:[^\n]*deb-src/ &&
             /(^|\n)Suites:[^\n]*bookworm([ \t\n]|$)/ &&
             !/(^|\n)Enabled:[ \t]*no/ { found = 1 }
             END { exit !found }' "$f" && return 0
    done
    return 1
}

fetch_sources() {
    if ! have_deb_src; then
        say "adding a deb-src entry: /etc/apt/sources.list.d/xray-deb-src.sources"
        $sudo tee /etc/apt/sources.list.d/xray-deb-src.sources >/dev/null <<'EOF'
# Added by ngx_http_xray's scripts/build-asan.sh: nginx's source package for
# the sanitizer build (`apt-get source nginx`).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        $sudo apt-get update -qq
    elif ! apt-cache showsrc nginx >/dev/null 2>&1 \
         || [ -z "$(apt-cache showsrc nginx 2>/dev/null)" ]; then
        $sudo apt-get update -qq
    fi

    # candidate versions: the installed one first, then every 1.22.1 upload
    # that the source indexes list, newest first
    local installed versions v
    installed=$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)
    versions=$( { [ -n "$installed" ] && echo "$installed"
                  apt-cache showsrc nginx 2>/dev/null \
                      | sed -n 's/^Version: //p' | sort -r -V; } \
                | awk -v up="$upstream" 'index($0, up "-") == 1 && !seen[$0]++')
    [ -n "$versions" ] || die "no nginx $upstream source package is known to apt (apt-cache showsrc nginx)"

    mkdir -p "$dl"
    for v in $versions; do
        say "apt-get source nginx=$v"
        # apt-get keeps files already in $dl whose checksums match
        if (cd "$dl" && apt-get source --download-only -qq "nginx=$v" \
                > "$build/apt-source.log" 2>&1); then
            rm -rf "$tree"
            (cd "$dl" && dpkg-source --no-copy -x "nginx_${v#*:}.dsc" "$tree" \
                >> "$build/apt-source.log" 2>&1) \
                || die "dpkg-source -x failed, see $build/apt-source.log"
            echo "$v" > "$build/source.stamp"
            return 0
        fi
        say "  not available: $(grep -m1 -E '^(E:|W: .*404)' "$build/apt-source.log" || true)"
    done
    die "could not download any nginx $upstream source package, see $build/apt-source.log"
}

if [ ! -f "$build/source.stamp" ] || [ ! -x "$tree/configure" ]; then
    fetch_sources
fi
grep -q "define NGINX_VERSION *\"$upstream\"" "$tree/src/core/nginx.h" \
    || die "$tree is not nginx $upstream"
say "sources: nginx $(cat "$build/source.stamp") in $tree"

# ---------------------------------------------------------------------------
# 2. configure
# ---------------------------------------------------------------------------

# Debian's flags for the nginx binary, as debian/rules spells them
# (basic_configure_flags plus what bin_configure_flags adds to them)
# (a make of its own: nothing inherited from a calling make's MAKEFLAGS)
read -r -a debian_flags < <(cd "$tree" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    make -s --no-print-directory -f debian/rules \
    --eval 'xray-flags: ; @echo $(basic_configure_flags) $(filter-out $(common_configure_flags),$(bin_configure_flags))' \
    xray-flags)
[ ${#debian_flags[@]} -gt 10 ] || die "could not read the configure flags from debian/rules"

flags=()
for f in "${debian_flags[@]}"; do
    case $f in
        --with-compat) ;;                          # nothing loads dynamically
        --with-mail=dynamic|--with-stream=dynamic) # no extra library: built in
            flags+=("${f%=dynamic}") ;;
        --with-*=dynamic) ;;                       # geoip, gd, perl, xslt
        *) flags+=("$f") ;;
    esac
done

san='-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1'
args=(--with-cc-opt="$san -DNGX_DEBUG_PALLOC=1"
      --with-ld-opt="$san -static-libasan -static-libubsan"
      "${flags[@]}" --add-module="$top" --builddir="$objs")

want=$(printf '%s\n' "${args[@]}")
if [ ! -f "$objs/Makefile" ] || [ ! -f "$build/configure.args" ] \
   || [ "$want" != "$(cat "$build/configure.args")" ] \
   || [ "$top/config" -nt "$objs/Makefile" ]; then
    say "configure (log: $build/configure.log)"
    rm -f "$build/configure.args"
    (cd "$tree" && ./configure "${args[@]}" > "$build/configure.log" 2>&1) || {
        tail -n 30 "$build/configure.log" >&2
        die "configure failed"
    }
    echo "$want" > "$build/configure.args"
fi

# ---------------------------------------------------------------------------
# 3. suppressions: t/asan.supp split by runtime (given a file with the other
#    runtime's types, each says "failed to parse suppressions" and stops)
# ---------------------------------------------------------------------------

supp=$top/t/asan.supp
grep -E '^leak:' "$supp" > "$build/lsan.supp" || true
grep -E '^[a-z-]+:' "$supp" | grep -Ev '^leak:' > "$build/ubsan.supp" || true
if grep -Eh '(ngx_http_xray|xray_)' "$build/lsan.supp" "$build/ubsan.supp"; then
    die "$supp must not suppress the module's own frames"
fi

# ---------------------------------------------------------------------------
# 4. build
# ---------------------------------------------------------------------------

say "make (log: $build/make.log)"
(cd "$tree" && make -j"$(nproc)" -f "$objs/Makefile" binary > "$build/make.log" 2>&1) || {
    grep -E -m 40 -B2 -A6 '(error|warning):|\*\*\*' "$build/make.log" >&2 || tail -n 40 "$build/make.log" >&2
    die "make failed"
}

"$objs/nginx" -v    # "nginx version: ...", on stderr
echo "$objs/nginx"
