#!/bin/sh
# Builds silo twice: build/ (release-ish, what users run) and build-asan/
# (ASan + UBSan, what the tests run).
set -eu
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan
