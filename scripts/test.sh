#!/bin/sh
# One command for the whole test suite on a fresh Debian 12 machine (as root):
# installs dependencies, builds (with sanitizers), runs unit and integration tests.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup-debian.sh
./scripts/build.sh
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
meson test -C build-asan --suite unit --print-errorlogs
SILO_BUILD_DIR="$PWD/build-asan" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
