#!/bin/sh
# Build a minimal offline container rootfs for the integration tests:
#   mkrootfs.sh DIR [HELPER]
# DIR gets Debian's static busybox at /bin/busybox with one symlink per applet, /etc/passwd and
# /etc/group with root and an unprivileged user 1000, and the static silo-test-helper at
# /usr/bin/silo-test-helper. HELPER defaults to $SILO_BUILD_DIR/tests/helper/silo-test-helper
# (SILO_BUILD_DIR defaults to /work/main/build); if that does not exist the helper is compiled here
# with `cc -static`.
set -eu

die() { echo "mkrootfs.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: mkrootfs.sh DIR [HELPER]"
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
build_dir=${SILO_BUILD_DIR:-/work/main/build}
helper=${2:-$build_dir/tests/helper/silo-test-helper}
busybox=${BUSYBOX:-/bin/busybox}

[ -x "$busybox" ] || die "$busybox not found (apt-get install busybox-static)"
# A dynamically linked busybox would need the host's libc inside the rootfs.
if ! "$busybox" true 2>/dev/null || { command -v file >/dev/null && file -L "$busybox" | grep -q dynamic; }; then
        die "$busybox is not a working static busybox (apt-get install busybox-static)"
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
for d in bin sbin usr/bin usr/sbin etc root tmp proc sys dev home/user var/tmp run; do
        mkdir -p "$dir/$d"
done
chmod 1777 "$dir/tmp" "$dir/var/tmp"
chmod 0755 "$dir"
chown 1000:1000 "$dir/home/user"

cp "$busybox" "$dir/bin/busybox"
chmod 0755 "$dir/bin/busybox"
# `busybox --list-full` prints paths like usr/bin/env; link each to /bin/busybox.
"$busybox" --list-full | while read -r applet; do
        case "$applet" in
        ""|bin/busybox) continue ;;
        esac
        [ -e "$dir/$applet" ] || [ -L "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
done

if [ ! -x "$helper" ]; then
        src="$here/../helper/silo-test-helper.c"
        [ -f "$src" ] || die "helper $helper not found and no source at $src"
        helper="$dir/usr/bin/silo-test-helper"
        cc -O2 -static -D_GNU_SOURCE -o "$helper" "$src" || die "cannot compile $src"
else
        cp "$helper" "$dir/usr/bin/silo-test-helper"
fi
chmod 0755 "$dir/usr/bin/silo-test-helper"

cat > "$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$dir/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
user:x:1000:
extra:x:1001:user
nogroup:x:65534:
GROUP
echo "silo-test" > "$dir/etc/hostname"
: > "$dir/etc/hosts"
: > "$dir/etc/resolv.conf"
echo "silo test rootfs" > "$dir/etc/silo-release"
