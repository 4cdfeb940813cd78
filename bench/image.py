#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Image pull/load benchmark: silo vs podman vs skopeo+umoci, in one run.

Builds a multi-layer Debian image offline from a debootstrap tree, serves it from Debian's
docker-registry on 127.0.0.1, and measures, interleaved, wall time and peak RSS of

  * pull + unpack to a runnable rootfs:  silo pull | podman pull | skopeo copy + umoci unpack
  * loading the same docker-archive:     silo load | podman load

Every run starts from an empty store. See bench/README.md ("Image pull and load").
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_DIR = os.environ.get("SILO_BUILD_DIR", "/work/main/build")
CACHE = "/var/tmp/silo-bench"

# How the tree is split into layers (the rest of the tree is the last layer).
LAYER_GROUPS = [
    ["usr/lib"],
    ["usr/share"],
    ["usr/bin", "usr/sbin", "usr/libexec", "usr/include", "usr/local", "usr/games", "usr/src"],
]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_rootfs(path):
    print(f"building {path} with debootstrap (needs the Debian mirror)...", file=sys.stderr)
    run(["debootstrap", "--variant=minbase", "--include=python3,perl,curl,git,openssl", "bookworm", path,
         "http://deb.debian.org/debian"], stdout=subprocess.DEVNULL)


def build_image(rootfs, out):
    """OCI layout with gzip layers + an uncompressed docker-archive of the same image."""
    layout = os.path.join(out, "layout")
    if os.path.exists(os.path.join(out, "done")):
        return layout, os.path.join(out, "docker-archive.tar")
    shutil.rmtree(out, ignore_errors=True)
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    tars = os.path.join(out, "tars")
    os.makedirs(tars)

    grouped = [p for g in LAYER_GROUPS for p in g]
    rest = [e for e in sorted(os.listdir(rootfs)) if e != "usr"]
    rest += ["usr/" + e for e in sorted(os.listdir(os.path.join(rootfs, "usr"))) if "usr/" + e not in grouped]
    groups = [[p for p in g if os.path.lexists(os.path.join(rootfs, p))] for g in LAYER_GROUPS] + [rest]

    layers, diff_ids, raw = [], [], []
    for i, paths in enumerate(groups):
        tar = os.path.join(tars, f"layer{i}.tar")
        run(["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C", rootfs, "-cf", tar] + paths)
        raw.append(tar)
        diff_ids.append(sha256_file(tar))
        gz = tar + ".gz"
        with open(gz, "wb") as f:
            run(["gzip", "-6", "-n", "-c", tar], stdout=f)
        d = sha256_file(gz)
        os.rename(gz, os.path.join(blobs, d[7:]))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d,
                       "size": os.path.getsize(os.path.join(blobs, d[7:]))})
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/bash"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}).encode()
    cdig = "sha256:" + hashlib.sha256(config).hexdigest()
    with open(os.path.join(blobs, cdig[7:]), "wb") as f:
        f.write(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig,
                                      "size": len(config)},
                           "layers": layers}).encode()
    mdig = "sha256:" + hashlib.sha256(manifest).hexdigest()
    with open(os.path.join(blobs, mdig[7:]), "wb") as f:
        f.write(manifest)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                      "digest": mdig, "size": len(manifest),
                                                      "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')

    # docker-archive: what `docker save` / `podman save` write (uncompressed layers)
    stage = os.path.join(out, "archive")
    os.makedirs(stage)
    with open(os.path.join(stage, cdig[7:] + ".json"), "wb") as f:
        f.write(config)
    paths = []
    for i, tar in enumerate(raw):
        d = f"l{i}"
        os.makedirs(os.path.join(stage, d))
        os.rename(tar, os.path.join(stage, d, "layer.tar"))
        paths.append(f"{d}/layer.tar")
    with open(os.path.join(stage, "manifest.json"), "w") as f:
        json.dump([{"Config": cdig[7:] + ".json", "RepoTags": ["localhost/bench/debian:1"], "Layers": paths}], f)
    run(["tar", "-C", stage, "-cf", os.path.join(out, "docker-archive.tar"), "."])
    shutil.rmtree(stage)
    shutil.rmtree(tars)
    open(os.path.join(out, "done"), "w").close()
    return layout, os.path.join(out, "docker-archive.tar")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(work):
    port = free_port()
    conf = os.path.join(work, "registry.yml")
    with open(conf, "w") as f:
        json.dump({"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                   "storage": {"filesystem": {"rootdirectory": os.path.join(work, "registry")}},
                   "http": {"addr": f"127.0.0.1:{port}"}}, f)
    proc = subprocess.Popen(["docker-registry", "serve", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def measure(cmds, env=None):
    """Runs commands one after the other; returns (wall seconds, max peak RSS KiB)."""
    start = time.monotonic()
    peak = 0
    for cmd in cmds:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        if status != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
        peak = max(peak, ru.ru_maxrss)
    return time.monotonic() - start, peak


def wipe(path):
    """rm -rf that first unmounts anything podman left below path."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for mp in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", path], capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rootfs", default=os.path.join(CACHE, "debian"), help="debootstrap tree (built if missing)")
    ap.add_argument("-n", "--runs", type=int, default=5)
    ap.add_argument("--silo", default=os.environ.get("SILO_BIN") or os.path.join(BUILD_DIR, "src/cli/silo"))
    ap.add_argument("--tools", default="silo,podman,skopeo+umoci")
    ap.add_argument("--json", help="write raw numbers here")
    args = ap.parse_args()

    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not os.path.isdir(os.path.join(args.rootfs, "usr")):
        build_rootfs(args.rootfs)
    layout, archive = build_image(args.rootfs, os.path.join(CACHE, "image"))
    size = sum(os.path.getsize(os.path.join(layout, "blobs/sha256", b)) for b in os.listdir(os.path.join(layout, "blobs/sha256")))
    unpacked = int(subprocess.run(["du", "-sb", args.rootfs], capture_output=True, text=True).stdout.split()[0])

    work = tempfile.mkdtemp(prefix="run-", dir=CACHE)
    reg, port = start_registry(work)
    ref = f"127.0.0.1:{port}/bench/debian:1"
    try:
        run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{ref}"])
        tools = args.tools.split(",")
        env = dict(os.environ, HOME=work)
        cases = []
        if "silo" in tools:
            cases.append(("pull", "silo pull", lambda d: [[args.silo, "--root", d, "--quiet", "pull", ref]]))
            cases.append(("load", "silo load", lambda d: [[args.silo, "--root", d, "--quiet", "load", "-i", archive]]))
        pod = lambda d: ["podman", "--root", d + "/root", "--runroot", d + "/run", "--storage-driver", "overlay",
                         "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
        if "podman" in tools:
            cases.append(("pull", "podman pull", lambda d: [pod(d) + ["pull", "-q", "--tls-verify=false", ref]]))
            cases.append(("load", "podman load", lambda d: [pod(d) + ["load", "-q", "-i", archive]]))
        if "skopeo+umoci" in tools:
            cases.append(("pull", "skopeo copy + umoci unpack",
                          lambda d: [["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                                      f"oci:{d}/oci:bench"],
                                     ["umoci", "unpack", "--image", f"{d}/oci:bench", f"{d}/bundle"]]))
        results = {name: [] for _, name, _ in cases}
        # Stores are kept until the end: ext4 makes inode allocation slow for a
        # while after many deletions (recently_deleted()), which would charge one
        # tool for cleaning up after the previous one.
        for _, name, cmds in cases:     # warm-up (caches, registry), not counted
            measure(cmds(tempfile.mkdtemp(prefix="w", dir=work)), env)
        subprocess.run(["sync"])
        for i in range(args.runs):
            order = cases[i % len(cases):] + cases[:i % len(cases)]
            for _, name, cmds in order:
                results[name].append(measure(cmds(tempfile.mkdtemp(prefix="r", dir=work)), env))
                subprocess.run(["sync"])
    finally:
        reg.terminate()
        reg.wait()
        wipe(work)

    print(f"image: {len(os.listdir(os.path.join(layout, 'blobs/sha256'))) - 2} layers, "
          f"{size / 1e6:.0f} MB compressed, {unpacked / 1e6:.0f} MB unpacked; {args.runs} runs each, median (min)")
    print(f"{'':32} {'wall s':>14} {'peak RSS MiB':>14}")
    for kind in ("pull", "load"):
        for k, name, _ in cases:
            if k != kind:
                continue
            walls = [w for w, _ in results[name]]
            rss = max(r for _, r in results[name]) / 1024
            print(f"{name:32} {statistics.median(walls):7.2f} ({min(walls):5.2f}) {rss:14.1f}")
    for kind, a, b in (("pull", "silo pull", "podman pull"), ("pull", "silo pull", "skopeo copy + umoci unpack"),
                       ("load", "silo load", "podman load")):
        if a in results and b in results:
            ra = statistics.median(w for w, _ in results[a])
            rb = statistics.median(w for w, _ in results[b])
            print(f"{a} vs {b}: {rb / ra:.2f}x faster")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "compressed": size, "unpacked": unpacked, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
