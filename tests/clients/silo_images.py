"""Offline busybox images for the real-client tests and the benchmark.

Everything is built from the host's static busybox (Debian busybox-static);
nothing is ever pulled.  Three artefacts:

  build_busybox_rootfs(dir)            a plain rootfs directory
  write_rootfs_tar(rootfs, path)       that rootfs as a tar (for `podman import`)
  write_oci_archive(rootfs, path, ref) an OCI image-layout tar (for `ctr images import`)
"""

import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import tarfile

BUSYBOX_CANDIDATES = ("/usr/bin/busybox", "/bin/busybox")

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"


def _is_static_elf(path):
    """True when the ELF file has no PT_INTERP program header."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if len(hdr) < 64 or hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", hdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
        if phnum > 256:
            return False
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", table, i * phentsize)
        if p_type == 3:         # PT_INTERP
            return False
    return True


def find_static_busybox():
    env = os.environ.get("SILO_BUSYBOX")
    for cand in ([env] if env else []) + list(BUSYBOX_CANDIDATES):
        if os.path.isfile(cand) and _is_static_elf(cand):
            return cand
    raise RuntimeError("no static busybox found (install Debian busybox-static "
                       "or set SILO_BUSYBOX)")


def build_busybox_rootfs(dest):
    """Populate an empty directory DEST with a minimal busybox rootfs."""
    busybox = find_static_busybox()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev",
              "root", "home/user", "var/tmp", "run"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.makedirs(os.path.join(dest, "tmp"), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    os.chmod(os.path.join(dest, "var/tmp"), 0o1777)
    os.chown(os.path.join(dest, "home/user"), 1000, 1000)

    with open(busybox, "rb") as src, open(os.path.join(dest, "bin/busybox"), "wb") as dst:
        dst.write(src.read())
    os.chmod(os.path.join(dest, "bin/busybox"), 0o755)

    applets = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                             text=True, timeout=30).stdout.split()
    for rel in applets:
        if rel == "bin/busybox" or ".." in rel.split("/"):
            continue
        link = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink("/bin/busybox", link)

    with open(os.path.join(dest, "etc/passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(dest, "etc/group"), "w") as f:
        f.write(GROUP)
    for name in ("hostname", "hosts", "resolv.conf"):
        open(os.path.join(dest, "etc", name), "a").close()
    return dest


def _tar_filter(ti):
    ti.uname = ""
    ti.gname = ""
    ti.mtime = 0
    return ti


def _rootfs_tar_bytes(rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs + files):
                full = os.path.join(top, name)
                arc = os.path.relpath(full, rootfs)
                tar.add(full, arcname=arc, recursive=False, filter=_tar_filter)
    return buf.getvalue()


def write_rootfs_tar(rootfs, path):
    with open(path, "wb") as f:
        f.write(_rootfs_tar_bytes(rootfs))
    return path


def _blob(layout_tar, data):
    digest = hashlib.sha256(data).hexdigest()
    ti = tarfile.TarInfo("blobs/sha256/" + digest)
    ti.size = len(data)
    ti.mode = 0o644
    layout_tar.addfile(ti, io.BytesIO(data))
    return "sha256:" + digest


def write_oci_archive(rootfs, path, ref, cmd=("/bin/sh",)):
    """Write an OCI image-layout tar holding one linux/amd64 image named REF.

    The index carries both io.containerd.image.name (full name, used by
    `ctr images import`) and org.opencontainers.image.ref.name.
    """
    layer = _rootfs_tar_bytes(rootfs)
    layer_gz = gzip.compress(layer, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": list(cmd),
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "silo tests: busybox-static rootfs"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    with tarfile.open(path, "w") as out:
        cfg_digest = _blob(out, config_bytes)
        layer_digest = _blob(out, layer_gz)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cfg_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": len(layer_gz)}],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        man_digest = _blob(out, manifest_bytes)
        tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": man_digest, "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": ref,
                                "org.opencontainers.image.ref.name": tag},
            }],
        }
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(index, sort_keys=True).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            out.addfile(ti, io.BytesIO(data))
    return path
