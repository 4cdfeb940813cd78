# SPDX-License-Identifier: Apache-2.0
"""Container root filesystems: overlay mounts of image layers plus a scratch layer, whiteouts across
layers, commit (scratch layer -> new layer with whiteouts -> new image), export, and OCI bundles run
by the runtime ($SILO_RUNTIME, else the build's silo-runtime, else runc)."""

import io
import json
import os
import subprocess
import tarfile

import pytest

from image_support import (  # noqa: F401  (fixtures)
    BUILD_DIR, Image, Layer, Silo, busybox_image, rootfs, sha256, silo, silo_binary, store_snapshot, workdir,
    write_oci_archive)


def runtime():
    r = os.environ.get("SILO_RUNTIME") or os.path.join(BUILD_DIR, "src/runtime/silo-runtime")
    return r if os.access(r, os.X_OK) else "/usr/sbin/runc"


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def run_bundle(workdir, bundle, cid):
    state = os.path.join(workdir, "rtstate")
    p = subprocess.run([runtime(), "--root", state, "run", "-b", bundle, cid], capture_output=True, text=True,
                       timeout=120)
    subprocess.run([runtime(), "--root", state, "delete", "-f", cid], capture_output=True, timeout=60)
    return p


def test_mount_write_unmount(silo, busybox_image):
    silo.run("rootfs", "create", "c1", busybox_image)
    err = silo.fail("rootfs", "create", "c1", busybox_image)
    assert "already exists" in err
    path = silo.run("rootfs", "mount", "c1").out.strip()
    assert path == os.path.join(silo.root, "containers/c1/merged")
    assert path in mounts_under(silo.root)
    # idempotent
    assert silo.run("rootfs", "mount", "c1").out.strip() == path
    with open(os.path.join(path, "new"), "w") as f:
        f.write("scratch")
    os.unlink(os.path.join(path, "bin/ls"))
    silo.run("rootfs", "umount", "c1")
    assert mounts_under(silo.root) == []
    # the scratch layer persists; the image layer is untouched
    path = silo.run("rootfs", "mount", "c1").out.strip()
    assert open(os.path.join(path, "new")).read() == "scratch"
    assert not os.path.lexists(os.path.join(path, "bin/ls"))
    diff = silo.inspect(busybox_image)["RootFS"]["Layers"][0].split(":")[1]
    assert os.path.lexists(os.path.join(silo.root, "layers", diff, "diff/bin/ls"))
    ls = silo.run("rootfs", "ls").out
    assert "c1" in ls and path in ls
    silo.run("rootfs", "rm", "c1")
    assert mounts_under(silo.root) == []
    assert store_snapshot(silo.root)["containers"] == []


def test_invalid_container_ids(silo, busybox_image):
    for bad in ("../x", ".hidden", "a/b", "x" * 200):
        err = silo.fail("rootfs", "create", bad, busybox_image)
        assert "invalid container id" in err
    err = silo.fail("rootfs", "mount", "nosuch")
    assert "does not exist" in err


def test_whiteouts_across_layers(silo, workdir):
    base = Layer().dir("etc/").file("etc/a", "a").file("etc/b", "b").dir("cache/").file("cache/old", "o").bytes()
    top = Layer().file("etc/.wh.a", "").dir("cache/").file("cache/.wh..wh..opq", "").file("cache/new", "n").bytes()
    img = Image([base, top])
    silo.run("load", "-i", write_oci_archive(os.path.join(workdir, "w.tar"), [img], ["wh/img:1"]))
    silo.run("rootfs", "create", "w", "wh/img:1")
    path = silo.run("rootfs", "mount", "w").out.strip()
    assert sorted(os.listdir(os.path.join(path, "etc"))) == ["b"]
    assert sorted(os.listdir(os.path.join(path, "cache"))) == ["new"]
    silo.run("rootfs", "rm", "w")


def test_commit(silo, busybox_image, workdir):
    silo.run("rootfs", "create", "c", busybox_image)
    path = silo.run("rootfs", "mount", "c").out.strip()
    with open(os.path.join(path, "hello"), "w") as f:
        f.write("world")
    os.unlink(os.path.join(path, "bin/cat"))
    # replace a directory: becomes opaque in the upper layer
    subprocess.run(["rm", "-rf", os.path.join(path, "etc")], check=True)
    os.mkdir(os.path.join(path, "etc"))
    with open(os.path.join(path, "etc/passwd"), "w") as f:
        f.write("root:x:0:0::/:/bin/sh\n")
    os.link(os.path.join(path, "hello"), os.path.join(path, "hello2"))
    out = silo.run("commit", "-m", "my change", "-a", "tester", "-c", "ENV COMMITTED=1", "c", "committed:1").out
    image_id = out.strip()
    info = silo.inspect("committed:1")
    assert info["Id"] == image_id
    assert len(info["RootFS"]["Layers"]) == 2
    assert info["Config"]["Cmd"] == ["/bin/sh"]      # inherited
    assert "COMMITTED=1" in info["Config"]["Env"]
    assert info["Author"] == "tester"
    # the new layer is an OCI layer with whiteouts
    layer_blob = info["ManifestLayers"][-1]["digest"].split(":")[1]
    with tarfile.open(os.path.join(silo.root, "blobs/sha256", layer_blob)) as t:
        names = t.getnames()
        assert "bin/.wh.cat" in names and "etc/.wh..wh..opq" in names and "hello" in names
        assert t.getmember("hello2").islnk()
    assert "my change" in silo.run("history", "committed:1").out
    # a container of the new image sees the changes
    silo.run("rootfs", "create", "c2", "committed:1")
    p2 = silo.run("rootfs", "mount", "c2").out.strip()
    assert open(os.path.join(p2, "hello")).read() == "world"
    assert not os.path.lexists(os.path.join(p2, "bin/cat"))
    assert os.listdir(os.path.join(p2, "etc")) == ["passwd"]
    for c in ("c", "c2"):
        silo.run("rootfs", "rm", c)


def test_export(silo, busybox_image, workdir):
    silo.run("rootfs", "create", "e", busybox_image)
    path = silo.run("rootfs", "mount", "e").out.strip()
    with open(os.path.join(path, "added"), "w") as f:
        f.write("x")
    os.unlink(os.path.join(path, "bin/echo"))
    silo.run("rootfs", "umount", "e")
    out = os.path.join(workdir, "e.tar")
    silo.run("export", "-o", out, "e")
    with tarfile.open(out) as t:
        names = set(t.getnames())
    assert "added" in names and "bin/busybox" in names and "bin/echo" not in names
    assert not any(".wh." in n for n in names)
    assert mounts_under(silo.root) == []        # the temporary mount is gone
    out2 = os.path.join(workdir, "img.tar")
    silo.run("export", "--image", "-o", out2, busybox_image)
    with tarfile.open(out2) as t:
        assert "bin/echo" in t.getnames()
    assert store_snapshot(silo.root)["containers"] == ["e"]
    silo.run("rootfs", "rm", "e")


def test_many_layers(silo, workdir):
    """More layers than a mount option string can name (lowerdir+ one at a time)."""
    layers = [Layer().file(f"f{i}", str(i)).bytes() for i in range(80)]
    img = Image(layers, compression="none")
    silo.run("load", "-i", write_oci_archive(os.path.join(workdir, "m.tar"), [img], ["many/layers:1"]))
    silo.run("rootfs", "create", "m", "many/layers:1")
    path = silo.run("rootfs", "mount", "m").out.strip()
    assert len(os.listdir(path)) == 80
    silo.run("rootfs", "rm", "m")


def test_bundle_runs(silo, rootfs, workdir):
    silo.run("import", "-c", 'ENTRYPOINT ["/bin/sh", "-c"]', "-c", 'CMD ["echo default"]', "-c", "ENV FOO=image",
             "-c", "WORKDIR /etc", "-c", "USER alice", "-c", "EXPOSE 8080", "-c", "LABEL org.example=1",
             "-c", "VOLUME /data", rootfs, "app:1")
    bundle = os.path.join(workdir, "bundle")
    silo.run("bundle", "--id", "b1", "app:1", bundle)
    spec = json.load(open(os.path.join(bundle, "config.json")))
    assert spec["process"]["args"] == ["/bin/sh", "-c", "echo default"]
    assert spec["process"]["cwd"] == "/etc"
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [100, 10]}
    assert "FOO=image" in spec["process"]["env"]
    assert any(e.startswith("PATH=") for e in spec["process"]["env"])
    assert spec["annotations"]["org.opencontainers.image.exposedPorts"] == "8080/tcp"
    assert spec["annotations"]["org.example"] == "1"
    vol = [m for m in spec["mounts"] if m["destination"] == "/data"]
    assert vol and vol[0]["type"] == "bind" and os.path.isdir(vol[0]["source"])
    assert spec["root"]["path"] == "rootfs"
    assert os.path.join(bundle, "rootfs") in mounts_under(bundle)
    p = run_bundle(workdir, bundle, "silo-img-b1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "default"
    silo.run("bundle", "rm", "b1", bundle)
    assert mounts_under(bundle) == []
    assert not os.path.exists(os.path.join(bundle, "config.json"))
    assert store_snapshot(silo.root)["containers"] == []

    # a command, env and user given at bundle time
    silo.run("bundle", "--id", "b2", "-e", "FOO=given", "-u", "0:0", "-w", "/", "app:1", bundle,
             "id -u; echo $FOO; pwd; test -d /data && echo vol")
    p = run_bundle(workdir, bundle, "silo-img-b2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "given", "/", "vol"]
    silo.run("bundle", "rm", "b2", bundle)


def test_bundle_errors(silo, rootfs, workdir):
    silo.run("import", rootfs, "nocmd:1")
    before = store_snapshot(silo.root)
    err = silo.fail("bundle", "--id", "x", "nocmd:1", os.path.join(workdir, "b"))
    assert "no Entrypoint or Cmd" in err
    assert store_snapshot(silo.root) == before
    err = silo.fail("bundle", "--id", "x", "-u", "mallory", "nocmd:1", os.path.join(workdir, "b"), "/bin/sh")
    assert "User: 'mallory' not found in the image's /etc/passwd" in err
    assert store_snapshot(silo.root) == before
    assert mounts_under(workdir) == []
