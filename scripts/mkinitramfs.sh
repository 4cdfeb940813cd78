#!/bin/sh
# Builds silo's utility-VM initramfs (docs/VM.md), offline, from the installed
# Debian cloud kernel's modules and the static silo-guest agent as /init:
#   mkinitramfs.sh --agent build/src/guest/silo-guest --output initramfs.img [--kernel-version V]
#                  [--vmlinux OUT]
# Only the modules the VM needs go in, with their dependencies, in load order
# (lib/modules/modules.order); builtin ones are skipped.
# --vmlinux also writes the kernel uncompressed (the ELF inside /boot/vmlinuz-V):
# QEMU boots it directly through its PVH entry, skipping the in-guest
# decompression (about 0.5 s of a TCG boot, docs/VM.md).
set -eu

kver=""
agent=""
output=""
vmlinux=""
while [ $# -gt 0 ]; do
        case "$1" in
        --kernel-version) kver="$2"; shift 2 ;;
        --agent) agent="$2"; shift 2 ;;
        --output) output="$2"; shift 2 ;;
        --vmlinux) vmlinux="$2"; shift 2 ;;
        *) echo "mkinitramfs.sh: unknown argument $1" >&2; exit 2 ;;
        esac
done
[ -n "$agent" ] && [ -n "$output" ] || { echo "usage: mkinitramfs.sh --agent PATH --output PATH [--kernel-version V]" >&2; exit 2; }
if [ -z "$kver" ]; then
        kver=$(ls /lib/modules 2>/dev/null | grep -- '-cloud-amd64$' | sort -V | tail -n 1 || true)
fi
[ -n "$kver" ] && [ -d "/lib/modules/$kver" ] || { echo "mkinitramfs.sh: no kernel modules for '$kver' (apt-get install linux-image-cloud-amd64)" >&2; exit 1; }

# virtio transport (microvm: virtio-mmio), the control/stdio ports, the rootfs
# disk and its filesystems (erofs on virtio-blk, or on a loop device for a
# utility VM's uploaded layers), the container's NIC (virtio_net, with
# failover and net_failover as its dependencies).
wanted="virtio_mmio virtio_console virtio_blk virtio_balloon virtio_net loop erofs overlay"
# Loaded by the agent only when a container has read-write mapped directories
# (FUSE, docs/VM.md): a loaded module costs guest memory.  Modules without
# dependencies only.
on_demand="fuse"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib/modules" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/run"
: > "$tmp/lib/modules/modules.order"
for m in $wanted; do
        # modprobe prints "insmod <path>" lines in dependency order.
        /sbin/modprobe -S "$kver" --show-depends "$m" | while read -r kind path _rest; do
                [ "$kind" = insmod ] || continue
                name=$(basename "$path")
                grep -qx "$name" "$tmp/lib/modules/modules.order" && continue
                case "$path" in
                *.ko) cp "$path" "$tmp/lib/modules/$name" ;;
                *.ko.xz) name=${name%.xz}; xz -dc "$path" > "$tmp/lib/modules/$name" ;;
                *.ko.zst) name=${name%.zst}; zstd -qdc "$path" > "$tmp/lib/modules/$name" ;;
                *) continue ;;
                esac
                echo "$name" >> "$tmp/lib/modules/modules.order"
        done
done
mkdir -p "$tmp/lib/modules/on-demand"
for m in $on_demand; do
        path=$(/sbin/modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { p = $2 } END { print p }')
        out="$tmp/lib/modules/on-demand/$m.ko"
        case "$path" in
        *.ko) cp "$path" "$out" ;;
        *.ko.xz) xz -dc "$path" > "$out" ;;
        *.ko.zst) zstd -qdc "$path" > "$out" ;;
        *) echo "mkinitramfs.sh: module $m not found for $kver" >&2; exit 1 ;;
        esac
done
install -m 0755 "$agent" "$tmp/init"

if [ -n "$vmlinux" ]; then
        bz="/boot/vmlinuz-$kver"
        [ -r "$bz" ] || { echo "mkinitramfs.sh: $bz not found" >&2; exit 1; }
        # The payload starts at its compressor's magic; try each the kernel may use.
        for fmt in "02214c18 lz4 -dc" "28b52ffd zstd -qdc" "fd377a585a00 xz -dc" "1f8b0800 gzip -dc"; do
                set -- $fmt
                magic=$1; shift
                command -v "$1" >/dev/null || continue
                off=$(od -An -v -tx1 -w1 "$bz" | tr -d ' \n' | grep -ob "$magic" | awk -F: '$1 % 2 == 0 { print $1; exit }')
                [ -n "$off" ] || continue
                tail -c +$((off / 2 + 1)) "$bz" | "$@" > "$tmp/vmlinux" 2>/dev/null || true
                # Trailing bytes after the payload make decompressors complain; the ELF is what counts.
                if [ "$(head -c 4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] &&
                   readelf -n "$tmp/vmlinux" 2>/dev/null | grep -q "Xen"; then
                        break
                fi
                rm -f "$tmp/vmlinux"
        done
        [ -s "$tmp/vmlinux" ] || { echo "mkinitramfs.sh: could not extract a PVH ELF kernel from $bz" >&2; exit 1; }
        mv "$tmp/vmlinux" "$vmlinux.tmp"
        mv "$vmlinux.tmp" "$vmlinux"
fi
# Reproducible: fixed timestamps and sorted names.
find "$tmp" -exec touch -h -d @0 {} +
(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$output.tmp"
mv "$output.tmp" "$output"
