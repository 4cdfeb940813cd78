# SPDX-License-Identifier: Apache-2.0
"""Hostile images through the real binary. For each attack: a clear error naming the cause (or a
deliberate, documented neutralisation), nothing outside the store touched, no partial image visible,
nothing left in the store, and a retry with good input succeeds."""

import json
import os
import subprocess
import tarfile

import pytest

from image_support import (  # noqa: F401  (fixtures)
    MT_OCI_CONFIG, MT_OCI_MANIFEST, Image, Layer, Silo, assert_nothing_left, compress, image_config, rootfs,
    sha256, silo, silo_binary, store_snapshot, workdir, write_docker_archive, write_oci_archive)


@pytest.fixture
def canary(workdir):
    """A directory outside the store that no layer may touch."""
    d = os.path.join(workdir, "outside")
    os.makedirs(d)
    with open(os.path.join(d, "victim"), "w") as f:
        f.write("original")
    return d


def assert_canary(canary):
    assert sorted(os.listdir(canary)) == ["victim"]
    with open(os.path.join(canary, "victim")) as f:
        assert f.read() == "original"


def load_layer(silo, workdir, tar, name="hostile/img:1", compression="gzip", env=None):
    img = Image([tar], compression=compression)
    path = write_oci_archive(os.path.join(workdir, f"a-{img.digest[7:19]}.tar"), [img], [name])
    return silo.run("load", "-i", path, check=False, env=env), img


def expect_rejected(silo, workdir, tar, message, compression="gzip", env=None):
    before = store_snapshot(silo.root)
    p, img = load_layer(silo, workdir, tar, compression=compression, env=env)
    assert p.returncode != 0, p.out
    assert message in p.err, p.err
    assert p.err.count("\n") == 1, "one line naming the cause"
    assert silo.images() == [], "no partial image visible"
    assert_nothing_left(silo.root, before)
    # The retry with good input succeeds (the store is not wedged).
    good, _ = load_layer(silo, workdir, Layer().file("ok", "fine").bytes(), name="good/img:1")
    assert good.returncode == 0, good.err
    assert silo.names() == ["docker.io/good/img:1"]
    silo.run("rmi", "good/img:1")
    return p.err


def unpacked(silo, img_ref):
    diff = silo.inspect(img_ref)["RootFS"]["Layers"][-1].split(":")[1]
    return os.path.join(silo.root, "layers", diff, "diff")


# ---- layer tarballs ----

def test_dotdot_path(silo, workdir, canary):
    tar = Layer().file("../../outside/victim", "pwned").bytes()
    err = expect_rejected(silo, workdir, tar, "path escapes the layer root")
    assert "'../../outside/victim'" in err
    assert_canary(canary)


def test_dotdot_inside_path(silo, workdir, canary):
    tar = Layer().dir("a/").file("a/b/../../../outside/victim", "pwned").bytes()
    expect_rejected(silo, workdir, tar, "path escapes the layer root")
    assert_canary(canary)


def test_absolute_path_is_neutralised(silo, workdir, canary):
    victim = os.path.join(canary, "victim")
    tar = Layer().file(victim, "pwned").bytes()
    p, img = load_layer(silo, workdir, tar)
    assert p.returncode == 0, p.err
    assert_canary(canary)
    # it lands inside the layer, under the same path
    with open(os.path.join(unpacked(silo, "hostile/img:1"), victim.lstrip("/"))) as f:
        assert f.read() == "pwned"


def test_symlink_then_write_through(silo, workdir, canary):
    tar = Layer().symlink("evil", canary).file("evil/victim", "pwned").bytes()
    expect_rejected(silo, workdir, tar, "entry 'evil/victim'")
    assert_canary(canary)


def test_symlink_relative_escape_stays_inside(silo, workdir, canary):
    tar = Layer().symlink("up", "../../../../../../../../..").file("up" + canary + "/victim", "pwned").bytes()
    p, _ = load_layer(silo, workdir, tar)
    assert_canary(canary)
    if p.returncode == 0:
        with open(os.path.join(unpacked(silo, "hostile/img:1"), canary.lstrip("/"), "victim")) as f:
            assert f.read() == "pwned"


def test_symlink_replaced_by_file_not_written_through(silo, workdir, canary):
    tar = Layer().symlink("f", os.path.join(canary, "victim")).file("f", "pwned").bytes()
    p, _ = load_layer(silo, workdir, tar)
    assert p.returncode == 0, p.err
    assert_canary(canary)
    assert not os.path.islink(os.path.join(unpacked(silo, "hostile/img:1"), "f"))


def test_hardlink_out_of_root(silo, workdir, canary):
    tar = Layer().hardlink("h", "../../outside/victim").bytes()
    expect_rejected(silo, workdir, tar, "hardlink target '../../outside/victim' is outside the layer")
    assert_canary(canary)
    tar = Layer().hardlink("h", os.path.join(canary, "victim")).bytes()
    expect_rejected(silo, workdir, tar, "does not exist in this layer")
    assert_canary(canary)


def test_hardlink_to_symlink(silo, workdir, canary):
    victim = os.path.join(canary, "victim")
    tar = Layer().symlink("s", victim).hardlink("h", "s").file("h", "pwned").bytes()
    p, _ = load_layer(silo, workdir, tar)
    assert p.returncode == 0, p.err
    assert_canary(canary)
    root = unpacked(silo, "hostile/img:1")
    assert os.path.islink(os.path.join(root, "s"))
    assert not os.path.islink(os.path.join(root, "h"))


def test_directory_replacing_symlink(silo, workdir, canary):
    tar = Layer().symlink("d", canary).dir("d/").file("d/victim", "inside").bytes()
    p, _ = load_layer(silo, workdir, tar)
    assert p.returncode == 0, p.err
    assert_canary(canary)
    root = unpacked(silo, "hostile/img:1")
    assert os.path.isdir(os.path.join(root, "d")) and not os.path.islink(os.path.join(root, "d"))
    with open(os.path.join(root, "d/victim")) as f:
        assert f.read() == "inside"


def test_device_nodes_are_not_created(silo, workdir):
    tar = Layer().chardev("dev/sda", 8, 0).chardev("dev/mem", 1, 1).file("ok", "x").bytes()
    p, _ = load_layer(silo, workdir, tar)
    assert p.returncode == 0, p.err
    root = unpacked(silo, "hostile/img:1")
    assert not os.path.lexists(os.path.join(root, "dev/sda"))
    assert not os.path.lexists(os.path.join(root, "dev/mem"))


def test_setuid_kept_inside_private_store(silo, workdir):
    tar = Layer().file("bin/su", "elf", mode=0o4755).file("bin/wall", "elf", mode=0o2755, gid=5).bytes()
    p, _ = load_layer(silo, workdir, tar)
    assert p.returncode == 0, p.err
    root = unpacked(silo, "hostile/img:1")
    assert os.stat(os.path.join(root, "bin/su")).st_mode & 0o7777 == 0o4755
    st = os.stat(os.path.join(root, "bin/wall"))
    assert st.st_mode & 0o7777 == 0o2755 and st.st_gid == 5
    # other users cannot reach them: layers/ is 0700
    assert os.stat(os.path.join(silo.root, "layers")).st_mode & 0o077 == 0


def test_overlay_xattrs_in_tar_are_dropped(silo, workdir):
    lay = Layer()
    ti = tarfile.TarInfo("d")
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.ok": "1"}
    lay.tar.addfile(ti)
    p, _ = load_layer(silo, workdir, lay.bytes())
    assert p.returncode == 0, p.err
    d = os.path.join(unpacked(silo, "hostile/img:1"), "d")
    assert "trusted.overlay.opaque" not in os.listxattr(d)
    assert os.getxattr(d, "user.ok") == b"1"


def test_deeply_nested_tree(silo, workdir):
    tar = Layer().file("d/" * 300 + "f", "deep").bytes()
    expect_rejected(silo, workdir, tar, "nested deeper than 256 levels")


def test_too_many_entries(silo, workdir):
    lay = Layer()
    for i in range(1100):
        lay.file(f"f{i}", "")
    expect_rejected(silo, workdir, lay.bytes(), "layer has more than 1000 entries",
                    env={"SILO_UNPACK_MAX_ENTRIES": "1000"})


def zstd_bomb(path, size):
    """A tar with one file of `size` zero bytes, zstd-compressed as it is generated."""
    ti = tarfile.TarInfo("zeros")
    ti.size = size
    with open(path, "wb") as out:
        z = subprocess.Popen(["zstd", "-q", "-1", "-c"], stdin=subprocess.PIPE, stdout=out)
        z.stdin.write(ti.tobuf(format=tarfile.PAX_FORMAT))
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            z.stdin.write(chunk)
        z.stdin.write(bytes(1024))
        z.stdin.close()
        assert z.wait() == 0


def test_decompression_bomb(silo, workdir):
    bomb = os.path.join(workdir, "bomb.tar.zst")
    zstd_bomb(bomb, 2 << 30)
    assert os.path.getsize(bomb) < (2 << 20)
    before = store_snapshot(silo.root)
    # through import (which reads the tarball through the same limits) ...
    p = silo.run("import", bomb, "bomb:1", check=False)
    assert p.returncode != 0
    assert "decompression bomb" in p.err, p.err
    assert silo.images() == []
    assert_nothing_left(silo.root, before)
    # ... and as a layer of a loaded image, with bounded memory
    tar_zst = open(bomb, "rb").read()
    img_layers = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": sha256(tar_zst),
                  "size": len(tar_zst)}
    cfg = image_config(["sha256:" + "0" * 64])
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                           "config": {"mediaType": MT_OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
                           "layers": [img_layers]}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": MT_OCI_MANIFEST, "digest": sha256(manifest),
                                                "size": len(manifest),
                                                "annotations": {"org.opencontainers.image.ref.name": "b/omb:1"}}]}
    path = write_oci_archive(os.path.join(workdir, "bomb.tar"), [], index_obj=index,
                             blob_override={sha256(tar_zst): tar_zst, sha256(cfg): cfg,
                                            sha256(manifest): manifest})
    # Run through spawn-rusage: a child forked by pytest starts out with
    # pytest's memory high-water mark, which ru_maxrss keeps across exec.
    isup = __import__("image_support")
    spawn = os.path.join(isup.BUILD_DIR, "tests/helper/spawn-rusage")
    p = subprocess.run([spawn, isup.SILO, "--root", silo.root, "load", "-i", path], capture_output=True,
                       text=True, env=silo.env, timeout=120)
    code, _, peak_kib = (int(x) for x in p.stdout.split())
    assert code != 0
    assert "decompression bomb" in p.stderr, p.stderr
    assert peak_kib < 64 * 1024, f"peak RSS {peak_kib} KiB"
    assert silo.images() == []
    assert_nothing_left(silo.root, before)


def test_gzip_size_limit(silo, workdir):
    tar = Layer().file("big", bytes(4 << 20)).bytes()
    expect_rejected(silo, workdir, tar, "larger than the limit of 1048576 uncompressed bytes",
                    env={"SILO_UNPACK_MAX_BYTES": str(1 << 20)})


# ---- manifests, configs, blobs ----

def good_image(rootfs_dir=None):
    lay = Layer().file("hello", "world").bytes()
    return Image([lay], cmd=["/hello"])


def test_blob_with_wrong_digest(silo, workdir):
    img = good_image()
    layer = img.layers[0]["digest"]
    bad = bytearray(img.blobs[layer])
    bad[-1] ^= 0xFF
    path = write_oci_archive(os.path.join(workdir, "bad.tar"), [img], ["x/y:1"], blob_override={layer: bytes(bad)})
    before = store_snapshot(silo.root)
    err = silo.fail("load", "-i", path)
    assert f"layer {layer}: content hashes to" in err
    assert silo.images() == []
    assert_nothing_left(silo.root, before)


def test_wrong_size_in_descriptor(silo, workdir):
    img = good_image()
    img.manifest_obj["layers"][0]["size"] += 1
    manifest = json.dumps(img.manifest_obj).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": MT_OCI_MANIFEST, "digest": sha256(manifest),
                                                "size": len(manifest)}]}
    blobs = dict(img.blobs)
    blobs[sha256(manifest)] = manifest
    path = write_oci_archive(os.path.join(workdir, "bad.tar"), [], index_obj=index, blob_override=blobs)
    before = store_snapshot(silo.root)
    err = silo.fail("load", "-i", path)
    assert "size" in err and img.layers[0]["digest"] in err
    assert_nothing_left(silo.root, before)


def test_truncated_layer_in_docker_archive(silo, workdir):
    tar = Layer().file("big", os.urandom(300000)).bytes()
    gz = compress(tar, "gzip")
    truncated = gz[: len(gz) // 2]
    img = Image([tar], compression="none")
    path = os.path.join(workdir, "trunc.tar")
    write_docker_archive(path, [(img, [truncated])], tags=[["t/runc:1"]])
    before = store_snapshot(silo.root)
    err = silo.fail("load", "-i", path)
    assert "truncated" in err
    assert silo.images() == []
    assert_nothing_left(silo.root, before)


def test_truncated_archive(silo, workdir):
    img = Image([Layer().file("big", os.urandom(400000)).bytes()])
    path = write_oci_archive(os.path.join(workdir, "a.tar"), [img], ["x/y:1"])
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])     # cut inside the layer blob
    before = store_snapshot(silo.root)
    err = silo.fail("load", "-i", path)
    assert "archive" in err
    assert_nothing_left(silo.root, before)


def test_diff_id_mismatch(silo, workdir):
    lay = Layer().file("a", "b").bytes()
    cfg = image_config(["sha256:" + "1" * 64])
    img = Image([lay], config=cfg)
    path = write_oci_archive(os.path.join(workdir, "a.tar"), [img], ["x/y:1"])
    before = store_snapshot(silo.root)
    err = silo.fail("load", "-i", path)
    assert "diff_id mismatch" in err
    assert_nothing_left(silo.root, before)


@pytest.mark.parametrize("which", ["index.json", "manifest.json", "config"])
def test_huge_json(silo, workdir, which):
    path = os.path.join(workdir, "huge.tar")
    huge = b'{"x":"' + b"a" * (9 << 20) + b'"}'
    if which == "config":
        img = Image([Layer().file("a", "b").bytes()], config=huge)
        write_oci_archive(path, [img], ["x/y:1"])
        expect = "larger than"
    else:
        with tarfile.open(path, "w") as t:
            import io
            for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), (which, huge)):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        expect = "larger than 8388608 bytes"
    before = store_snapshot(silo.root)
    err = silo.fail("load", "-i", path)
    assert expect in err
    assert_nothing_left(silo.root, before)


def test_unknown_layer_media_type(silo, workdir):
    img = Image([Layer().file("a", "b").bytes()], layer_media_type="application/x-evil")
    path = write_oci_archive(os.path.join(workdir, "a.tar"), [img], ["x/y:1"])
    before = store_snapshot(silo.root)
    err = silo.fail("load", "-i", path)
    assert "unsupported layer media type 'application/x-evil'" in err
    assert_nothing_left(silo.root, before)


def test_artifact_is_not_an_image(silo, workdir):
    img = Image([Layer().file("a", "b").bytes()], config_media_type="application/vnd.cncf.helm.config.v1+json")
    path = write_oci_archive(os.path.join(workdir, "a.tar"), [img], ["x/y:1"])
    err = silo.fail("load", "-i", path)
    assert "not a container image" in err


def test_schema1_manifest(silo, workdir):
    m = json.dumps({"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": MT_OCI_MANIFEST, "digest": sha256(m), "size": len(m)}]}
    path = write_oci_archive(os.path.join(workdir, "a.tar"), [], index_obj=index, blob_override={sha256(m): m})
    err = silo.fail("load", "-i", path)
    assert "schema 1 manifests are not supported" in err


def test_not_an_archive(silo, workdir):
    path = os.path.join(workdir, "junk")
    with open(path, "wb") as f:
        f.write(os.urandom(10000))
    err = silo.fail("load", "-i", path)
    assert "archive" in err
    path = write_oci_archive(os.path.join(workdir, "empty.tar"), [], index_obj={"schemaVersion": 2, "manifests": []})
    os.rename(path, path)
    with tarfile.open(os.path.join(workdir, "plain.tar"), "w") as t:
        t.add(path, arcname="something")
    err = silo.fail("load", "-i", os.path.join(workdir, "plain.tar"))
    assert "not an image archive" in err


def test_volumes_with_dotdot(silo, workdir, rootfs):
    silo.run("import", "-c", 'CMD ["/bin/sh"]', "-c", "VOLUME /data/../../etc", rootfs, "vol:1")
    before = store_snapshot(silo.root)
    with open("/proc/self/mountinfo") as f:
        mounts_before = f.read().count("\n")
    err = silo.fail("bundle", "--id", "v1", "vol:1", os.path.join(workdir, "bundle"))
    assert "config.Volumes: '/data/../../etc' contains '..'" in err
    assert_nothing_left(silo.root, before)
    with open("/proc/self/mountinfo") as f:
        assert f.read().count("\n") == mounts_before
    assert not os.path.exists(os.path.join(workdir, "bundle", "config.json"))
