#!/bin/sh
# Installs what silo needs to build and test on Debian 12 (run as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
packages="meson ninja-build pkg-config gcc libc6-dev
 libjansson-dev libseccomp-dev libcap-dev libarchive-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev libgnutls28-dev libsqlite3-dev
 libzstd-dev zlib1g-dev libmnl-dev libnftables-dev nftables
 libcmocka-dev python3-pytest busybox-static procps iproute2 util-linux strace e2fsprogs
 qemu-system-x86 linux-image-cloud-amd64 erofs-utils cpio kmod lz4"
# Real clients and comparison runtimes the integration tests drive; a local
# registry (with htpasswd and a token server needing python3-jwt) for pull/push.
clients="runc crun podman containerd skopeo umoci docker-registry apache2-utils openssl python3-jwt python3-bcrypt iperf3"
missing=""
for p in $packages $clients; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# The daemon tests drive the real docker CLI (client only; Debian's docker.io if none is there).
command -v docker >/dev/null 2>&1 || missing="$missing docker.io"
if [ -n "$missing" ]; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
