#!/bin/sh
# Sets up silo on a fresh Debian 12 machine (as root) and runs a first
# container: a busybox rootfs built offline from Debian's busybox-static.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup-debian.sh
./scripts/build.sh
bundle=$(mktemp -d /tmp/silo-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
SILO_BUILD_DIR="$PWD/build" ./tests/lib/mkrootfs.sh "$bundle/rootfs" >/dev/null
cd "$bundle"
"$OLDPWD/build/src/runtime/silo-runtime" spec
# Not interactive: no terminal; print something from inside.
/usr/bin/python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from $(hostname), pid $$ in its own namespace; id; ls /"]
c["linux"]["cgroupsPath"] = "/silo-demo"
json.dump(c, open("config.json", "w"), indent=2)
PY
exec "$OLDPWD/build/src/runtime/silo-runtime" run demo-$$
