# SPDX-License-Identifier: Apache-2.0
"""The silo image verbs against a private store: import, images, inspect, history, tag, rmi, prune,
load and save (docker-archive and OCI archive, and archives made by podman and skopeo), GC, and
concurrency."""

import json
import os
import subprocess
import tarfile
import threading

import pytest

from image_support import (  # noqa: F401  (fixtures)
    Image, Layer, Silo, assert_nothing_left, busybox_image, compress, make_busybox_rootfs, rootfs, sha256,
    silo, silo_binary, store_snapshot, workdir, write_docker_archive, write_oci_archive)


def layer_dirs(silo):
    return sorted(os.listdir(os.path.join(silo.root, "layers")))


def test_import_directory_from_scratch(silo, rootfs):
    p = silo.run("import", "-c", 'CMD ["/bin/sh", "-c", "echo hi"]', "-c", "ENV A=b", "-c", "WORKDIR /tmp",
                 "-m", "first", rootfs, "myimg:1")
    image_id = p.out.strip()
    assert image_id.startswith("sha256:")
    info = silo.inspect("myimg:1")
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["docker.io/library/myimg:1"]
    assert info["Config"]["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert info["Config"]["Env"] == ["A=b"]
    assert info["Config"]["WorkingDir"] == "/tmp"
    assert len(info["RootFS"]["Layers"]) == 1
    assert info["ManifestLayers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    # The layer is unpacked once, under its diff_id, with the tree intact.
    diff = info["RootFS"]["Layers"][0].split(":")[1]
    assert layer_dirs(silo) == [diff]
    unpacked = os.path.join(silo.root, "layers", diff, "diff")
    assert os.path.islink(os.path.join(unpacked, "bin/sh"))
    with open(os.path.join(unpacked, "etc/passwd")) as f:
        assert f.read().startswith("root:")
    # history shows the import with its comment
    h = silo.run("history", "myimg:1").out
    assert "silo import" in h and "first" in h


@pytest.mark.parametrize("how", ["none", "gzip", "zstd"])
def test_import_tarball(silo, rootfs, workdir, how):
    tar = Layer().tree(rootfs).bytes()
    path = os.path.join(workdir, "rootfs.tar")
    with open(path, "wb") as f:
        f.write(compress(tar, how))
    silo.run("import", path, f"t-{how}")
    info = silo.inspect(f"t-{how}")
    # diff_id is the digest of the uncompressed tar, whatever the input compression
    assert info["RootFS"]["Layers"] == [sha256(tar)]


def test_import_from_stdin(silo, rootfs):
    tar = Layer().tree(rootfs).bytes()
    silo.run("import", "-", "fromstdin", input=compress(tar, "gzip"))
    assert "docker.io/library/fromstdin:latest" in silo.names()


def test_images_listing_and_lookup(silo, busybox_image):
    out = silo.run("images").out
    assert "REPOSITORY" in out and "docker.io/library/busybox" in out and "test" in out
    image_id = silo.images()[0]["Id"]
    assert silo.run("images", "-q").out.strip() == image_id.split(":")[1][:12]
    # lookups by name, full ID, short ID, manifest digest
    digest = silo.images()[0]["Digest"]
    for ref in ("busybox:test", "docker.io/library/busybox:test", image_id, image_id.split(":")[1][:12],
                digest, f"busybox@{digest}"):
        assert silo.inspect(ref)["Id"] == image_id, ref
    err = silo.fail("image", "inspect", "nosuch:image")
    assert "image 'nosuch:image' not found" in err


def test_tag_and_rmi(silo, busybox_image):
    before_layers = layer_dirs(silo)
    silo.run("tag", "busybox:test", "localhost:5000/team/app:v1")
    assert silo.names() == ["docker.io/library/busybox:test", "localhost:5000/team/app:v1"]
    err = silo.fail("tag", "busybox:test", "Bad/Name")
    assert "invalid repository name" in err
    # removing one of two names only untags
    assert "Untagged" in silo.run("rmi", "localhost:5000/team/app:v1").out
    assert silo.names() == ["docker.io/library/busybox:test"]
    assert layer_dirs(silo) == before_layers
    # by ID with several names: refused without -f
    silo.run("tag", "busybox:test", "other:1")
    image_id = silo.images()[0]["Id"]
    err = silo.fail("rmi", image_id)
    assert "has 2 names" in err
    silo.run("rmi", "-f", image_id)
    assert silo.images() == []
    # the last reference went: blobs and unpacked layers are collected
    snap = store_snapshot(silo.root)
    assert snap["blobs/sha256"] == [] and snap["layers"] == [] and snap["tmp"] == []
    err = silo.fail("rmi", "busybox:test")
    assert "not found" in err


def test_shared_layers_unpacked_once_and_kept_while_used(silo, rootfs, workdir):
    base = Layer().tree(rootfs).bytes()
    top1 = Layer().file("one", "1").bytes()
    top2 = Layer().file("two", "2").bytes()
    a = Image([base, top1], cmd=["/bin/sh"])
    b = Image([base, top2], cmd=["/bin/sh"])
    silo.run("load", "-i", write_oci_archive(os.path.join(workdir, "a.tar"), [a], ["a.example/x:1"]))
    silo.run("load", "-i", write_oci_archive(os.path.join(workdir, "b.tar"), [b], ["b.example/y:1"]))
    assert len(layer_dirs(silo)) == 3      # base once, two tops
    silo.run("rmi", "a.example/x:1")
    assert sha256(base).split(":")[1] in layer_dirs(silo)
    assert sha256(top1).split(":")[1] not in layer_dirs(silo)
    assert a.digest.split(":")[1] not in store_snapshot(silo.root)["blobs/sha256"]
    silo.run("rmi", "b.example/y:1")
    assert layer_dirs(silo) == []


def test_rmi_refuses_image_in_use_by_a_container(silo, busybox_image):
    silo.run("rootfs", "create", "c1", busybox_image)
    err = silo.fail("rmi", busybox_image)
    assert "used by container c1" in err
    # forced: the name goes, the container keeps its layers
    silo.run("rmi", "-f", busybox_image)
    assert silo.images() == []
    assert len(layer_dirs(silo)) == 1
    path = silo.run("rootfs", "mount", "c1").out.strip()
    assert os.path.exists(os.path.join(path, "bin/busybox"))
    silo.run("rootfs", "rm", "c1")
    silo.run("image", "prune")
    assert layer_dirs(silo) == []


def test_prune_dangling_and_all(silo, rootfs):
    silo.run("import", rootfs)          # unnamed: dangling
    silo.run("import", rootfs, "named:1")
    assert len(silo.images()) == 2
    out = silo.run("image", "prune").out
    assert "Deleted 1 image(s)" in out
    assert silo.names() == ["docker.io/library/named:1"]
    silo.run("image", "prune", "-a")
    assert silo.images() == []
    snap = store_snapshot(silo.root)
    assert snap["blobs/sha256"] == [] and snap["layers"] == []


def test_prune_collects_leftovers_of_a_crash(silo, busybox_image):
    # what a killed process would leave: a temp blob, a half-unpacked layer, a lock
    open(os.path.join(silo.root, "tmp", "blob-0123"), "w").close()
    os.makedirs(os.path.join(silo.root, "layers", ".tmp-abc-def", "diff", "x"))
    orphan = b"orphan blob"
    with open(os.path.join(silo.root, "blobs/sha256", sha256(orphan).split(":")[1]), "wb") as f:
        f.write(orphan)
    silo.run("image", "prune")
    snap = store_snapshot(silo.root)
    assert snap["tmp"] == [] and ".tmp-abc-def" not in snap["layers"]
    assert sha256(orphan).split(":")[1] not in snap["blobs/sha256"]
    assert silo.names() == ["docker.io/library/busybox:test"]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_load_roundtrip(silo, busybox_image, workdir, fmt):
    silo.run("tag", busybox_image, "second:2")
    path = os.path.join(workdir, "out.tar")
    silo.run("save", "--format", fmt, "-o", path, busybox_image, "second:2")
    with tarfile.open(path) as t:
        names = t.getnames()
    assert "index.json" in names and "oci-layout" in names
    assert ("manifest.json" in names) == (fmt == "docker-archive")
    other = Silo(os.path.join(workdir, "store2"))
    out = other.run("load", "-i", path).out
    assert "Loaded image: docker.io/library/busybox:test" in out
    assert other.names() == ["docker.io/library/busybox:test", "docker.io/library/second:2"]
    # byte-identical manifest: same digest on both sides
    assert other.inspect("busybox:test")["Digest"] == silo.inspect("busybox:test")["Digest"]


def test_save_refuses_terminal_and_unknown(silo, busybox_image, workdir):
    err = silo.fail("save", "-o", os.path.join(workdir, "x.tar"), "nosuch:1")
    assert "not found" in err
    assert not os.path.exists(os.path.join(workdir, "x.tar"))
    assert not [f for f in os.listdir(workdir) if "silo-tmp" in f]
    err = silo.fail("save", "--format", "zip", "-o", os.path.join(workdir, "x.tar"), busybox_image)
    assert "unknown archive format 'zip'" in err


def test_load_classic_docker_archive(silo, rootfs, workdir):
    tars = [Layer().tree(rootfs).bytes(), Layer().file("etc/motd", "hello\n").bytes()]
    img = Image(tars, compression="none", cmd=["/bin/sh"])
    path = write_docker_archive(os.path.join(workdir, "d.tar"), [(img, tars)], tags=[["myrepo/app:1.0"]])
    out = silo.run("load", "-i", path).out
    assert "docker.io/myrepo/app:1.0" in out
    info = silo.inspect("myrepo/app:1.0")
    assert info["Id"] == img.id
    assert info["RootFS"]["Layers"] == [sha256(t) for t in tars]


def test_load_from_stdin_compressed(silo, rootfs, workdir):
    tars = [Layer().tree(rootfs).bytes()]
    img = Image(tars, compression="none")
    path = write_docker_archive(os.path.join(workdir, "d.tar"), [(img, tars)], tags=[["stdin:1"]])
    data = compress(open(path, "rb").read(), "gzip")
    silo.run("load", input=data)
    assert silo.names() == ["docker.io/library/stdin:1"]


def test_load_unnamed_oci_archive_with_name(silo, rootfs, workdir):
    img = Image([Layer().tree(rootfs).bytes()], compression="zstd")
    path = write_oci_archive(os.path.join(workdir, "o.tar"), [img], ["latest"])  # a bare tag names nothing
    out = silo.run("load", "-i", path).out
    assert img.id in out
    assert silo.images()[0]["Names"] == []
    silo.run("load", "--name", "given:1", "-i", path)
    assert silo.names() == ["docker.io/library/given:1"]


def test_podman_and_skopeo_interop(silo, busybox_image, workdir):
    """Our archives load in podman; podman's and skopeo's load in silo."""
    pod = ["podman", "--root", os.path.join(workdir, "podroot"), "--runroot", os.path.join(workdir, "podrun"),
           "--storage-driver", "vfs"]
    path = os.path.join(workdir, "ours.tar")
    silo.run("save", "-o", path, busybox_image)
    p = subprocess.run(pod + ["load", "-i", path], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "docker.io/library/busybox:test" in p.stdout
    theirs = os.path.join(workdir, "theirs.tar")
    p = subprocess.run(pod + ["save", "-o", theirs, "docker.io/library/busybox:test"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    other = Silo(os.path.join(workdir, "store2"))
    other.run("load", "-i", theirs)
    assert other.inspect("busybox:test")["Id"] == silo.inspect(busybox_image)["Id"]
    # skopeo: OCI archive
    oci = os.path.join(workdir, "skopeo-oci.tar")
    p = subprocess.run(["skopeo", "copy", f"docker-archive:{path}", f"oci-archive:{oci}:sk/opeo:3"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    third = Silo(os.path.join(workdir, "store3"))
    third.run("load", "-i", oci)
    # skopeo rewrites the config for OCI (new ID); the filesystem is the same
    loaded = third.inspect(third.images()[0]["Id"])
    assert loaded["RootFS"]["Layers"] == silo.inspect(busybox_image)["RootFS"]["Layers"]
    subprocess.run(pod + ["rmi", "-a", "-f"], capture_output=True, timeout=120)
    subprocess.run(["umount", "-l", os.path.join(workdir, "podroot")], capture_output=True)


def test_concurrent_loads_of_the_same_archive(silo, rootfs, workdir):
    tars = [Layer().tree(rootfs).bytes(), Layer().file("x", "y" * 100000).bytes()]
    img = Image(tars)
    path = write_oci_archive(os.path.join(workdir, "o.tar"), [img], ["conc/img:1"])
    results = []

    def load():
        results.append(silo.run("load", "-i", path, check=False))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.returncode == 0 for p in results), [p.err for p in results]
    assert silo.names() == ["docker.io/conc/img:1"]
    assert len(layer_dirs(silo)) == 2
    snap = store_snapshot(silo.root)
    assert snap["tmp"] == [] and not [d for d in snap["layers"] if d.startswith(".")]


def test_store_location_and_permissions(silo_binary, workdir, rootfs):
    root = os.path.join(workdir, "envroot")
    s = Silo(root)
    s.env["SILO_ROOT"] = root
    p = subprocess.run([silo_binary, "import", rootfs, "x:1"], capture_output=True, env=s.env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(os.path.join(root, "images.json"))
    assert os.stat(os.path.join(root, "layers")).st_mode & 0o077 == 0
    assert os.stat(os.path.join(root, "blobs")).st_mode & 0o077 == 0


def test_usage_errors(silo):
    p = silo.run("frobnicate", check=False)
    assert p.returncode == 2 and "unknown command" in p.err
    p = silo.run("tag", "onlyone", check=False)
    assert p.returncode == 2 and "usage: silo tag" in p.err
    p = silo.run("--help")
    assert "pull" in p.out and "load" in p.out


def test_oci_layout_directory(silo, busybox_image, workdir):
    layout = os.path.join(workdir, "layout")
    silo.run("save", "--format", "oci-dir", "-o", layout, busybox_image)
    assert sorted(os.listdir(layout)) == ["blobs", "index.json", "oci-layout"]
    other = Silo(os.path.join(workdir, "store2"))
    other.run("load", "-i", layout)
    assert other.inspect("busybox:test")["Digest"] == silo.inspect(busybox_image)["Digest"]
    # umoci understands it (ref.name is the tag)
    p = subprocess.run(["umoci", "unpack", "--image", f"{layout}:test", os.path.join(workdir, "bundle")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(os.path.join(workdir, "bundle/rootfs/bin/busybox"))
    # an existing target is not overwritten; a failed save leaves no directory
    err = silo.fail("save", "--format", "oci-dir", "-o", layout, busybox_image)
    assert "File exists" in err
    err = silo.fail("save", "--format", "oci-dir", "-o", os.path.join(workdir, "l2"), "nosuch:1")
    assert not os.path.exists(os.path.join(workdir, "l2"))
    # a symlinked blob in a layout is refused, not followed
    blobs = os.path.join(layout, "blobs/sha256")
    victim = sorted(os.listdir(blobs))[0]
    os.rename(os.path.join(blobs, victim), os.path.join(workdir, "moved"))
    os.symlink(os.path.join(workdir, "moved"), os.path.join(blobs, victim))
    third = Silo(os.path.join(workdir, "store3"))
    err = third.fail("load", "-i", layout)
    assert f"blobs/sha256/{victim}" in err
