#!/usr/bin/env bash
# Builds ngx_http_xray_module.so against the nginx that Debian ships, with
# Debian's own configure flags, so that the stock /usr/sbin/nginx loads it.
# Used by the Makefile and by docker/Dockerfile alike.
#
#   scripts/build-module.sh [BUILD_DIR]      (default: ./build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "${1:-$top/build}" && cd "${1:-$top/build}" && pwd)
src=/usr/share/nginx/src

if [ ! -f "$src/conf_flags" ]; then
    echo "build-module: $src/conf_flags not found; install nginx-dev" >&2
    exit 1
fi

# configure writes a Makefile into its working directory: work on a copy of
# the (small, header-only) tree so the system one stays untouched
tree=$build/nginx-src
stamp=$build/configure.stamp
if [ ! -f "$stamp" ] || [ "$top/config" -nt "$stamp" ] \
   || [ "$src/conf_flags" -nt "$stamp" ] || [ "$0" -nt "$stamp" ]; then
    rm -rf "$tree" "$build/objs"
    cp -a "$src" "$tree"
    # shellcheck disable=SC1091
    . "$tree/conf_flags"
    # conf_flags leaves out the compiler options Debian builds nginx with
    # (-O2): without them configure compiles the module with -O only
    (cd "$tree" && ./configure --with-compat "${NGX_CONF_FLAGS[@]}" \
        --with-cc-opt=-O2 \
        --add-dynamic-module="$top" --builddir="$build/objs" \
        > "$build/configure.log" 2>&1) || {
        tail -n 30 "$build/configure.log" >&2
        exit 1
    }
    touch "$stamp"
fi

(cd "$tree" && make -s -f "$build/objs/Makefile" modules)
# a rename, not a copy over the old file: nginx processes running with the
# old module keep their mapping intact
cp "$build/objs/ngx_http_xray_module.so" "$build/ngx_http_xray_module.so.tmp"
mv -f "$build/ngx_http_xray_module.so.tmp" "$build/ngx_http_xray_module.so"
