# SPDX-License-Identifier: Apache-2.0
"""silo pull / push against Debian's docker-registry on 127.0.0.1: plain HTTP, HTTPS with a
throwaway certificate, htpasswd Basic auth, Bearer tokens, manifest lists, cross-repository mounts,
and a fault-injecting proxy (dropped connections, 500s, corrupted blobs)."""

import base64
import json
import os
import pty
import select
import subprocess
import threading

import pytest

from image_support import (  # noqa: F401  (fixtures)
    MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, SILO, FaultProxy, Image, Layer, Registry, Silo,
    TokenServer, assert_nothing_left, busybox_image, is_blob_get, registry, rootfs, sha256, silo, silo_binary,
    store_snapshot, workdir)

FAST_RETRY = {"SILO_TEST": "1"}


def other_store(workdir, name="store2"):
    os.makedirs(os.path.join(workdir, "home"), exist_ok=True)
    return Silo(os.path.join(workdir, name))


def big_image():
    """Two layers big enough that a half-sent blob is a real partial download."""
    return Image([Layer().file("a", os.urandom(600000)).bytes(),
                  Layer().file("b", os.urandom(900000)).bytes()], cmd=["/a"])


def test_push_pull_roundtrip(silo, busybox_image, registry, workdir):
    ref = f"{registry.host}/test/busybox:1"
    pushed = silo.run("push", busybox_image, ref).out.strip()
    assert pushed == silo.inspect(busybox_image)["Digest"]
    other = other_store(workdir)
    p = other.run("pull", ref)
    assert p.out.strip() == silo.inspect(busybox_image)["Id"]
    info = other.inspect(ref)
    assert info["Digest"] == pushed
    assert info["RepoTags"] == [ref]
    diff = info["RootFS"]["Layers"][0].split(":")[1]
    assert os.path.exists(os.path.join(other.root, "layers", diff, "diff/bin/busybox"))
    # pulling again: everything exists, nothing downloaded
    p = other.run("pull", ref)
    assert "exists" in p.err and "downloading" not in p.err
    # by digest
    third = other_store(workdir, "store3")
    third.run("pull", f"{registry.host}/test/busybox@{pushed}")
    assert third.images()[0]["Names"] == [f"{registry.host}/test/busybox@{pushed}"]
    assert f"{registry.host}/test/busybox" in third.run("images").out


def test_pull_errors(silo, registry, workdir):
    err = silo.fail("pull", f"{registry.host}/no/such:1")
    assert "HTTP 404" in err and "MANIFEST_UNKNOWN" in err
    err = silo.fail("pull", f"{registry.host}/Bad:1")
    assert "invalid repository name" in err
    port = registry.port
    registry.stop()
    err = silo.fail("pull", "--retries", "1", f"127.0.0.1:{port}/x/y:1")
    assert "Couldn't connect" in err or "Connection refused" in err
    assert silo.images() == []
    err = silo.fail("push", "nosuch:1", f"127.0.0.1:{port}/x/y:1")
    assert "not found" in err


def test_manifest_list_platforms(silo, registry):
    amd = Image([Layer().file("arch", "amd64").bytes()], cmd=["/x"])
    arm = Image([Layer().file("arch", "arm64").bytes()], cmd=["/x"], )
    registry.upload("multi/img", amd)
    registry.upload("multi/img", arm)
    lst = {"schemaVersion": 2, "mediaType": MT_DOCKER_LIST, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.digest,
         "size": len(arm.manifest), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.digest,
         "size": len(amd.manifest), "platform": {"os": "linux", "architecture": "amd64"}}]}
    registry.put_manifest("multi/img", "latest", json.dumps(lst).encode(), MT_DOCKER_LIST)
    ref = f"{registry.host}/multi/img"
    silo.run("pull", ref)
    assert silo.inspect(ref)["Digest"] == amd.digest
    silo.run("pull", "--platform", "linux/arm64", ref)
    assert silo.inspect(ref)["Digest"] == arm.digest
    err = silo.fail("pull", "--platform", "linux/s390x", ref)
    assert "no image for platform linux/s390x" in err


def test_docker_media_types(silo, registry):
    img = Image([Layer().file("f", "docker").bytes()], layer_media_type="application/vnd.docker.image.rootfs.diff.tar.gzip",
                config_media_type="application/vnd.docker.container.image.v1+json",
                manifest_media_type=MT_DOCKER_MANIFEST)
    registry.upload("dock/er", img, tag="v2")
    silo.run("pull", f"{registry.host}/dock/er:v2")
    assert silo.inspect(f"{registry.host}/dock/er:v2")["ManifestMediaType"] == MT_DOCKER_MANIFEST


def test_cross_repository_mount(silo, busybox_image, registry):
    a = f"{registry.host}/team/a:1"
    silo.run("tag", busybox_image, a)
    silo.run("push", a)
    p = silo.run("push", a, f"{registry.host}/team/b:1")
    assert "mounted" in p.err, p.err
    assert "uploading" not in p.err


def test_https_self_signed(silo, busybox_image, workdir):
    reg = Registry(workdir, tls=True)
    try:
        ref = f"{reg.host}/secure/bb:1"
        err = silo.fail("push", busybox_image, ref)
        assert "certificate" in err and "--ca-file" in err
        silo.run("push", "--ca-file", reg.cert, busybox_image, ref)
        other = other_store(workdir)
        err = other.fail("pull", ref)
        assert "certificate" in err
        assert other.images() == []
        other.run("pull", "--ca-file", reg.cert, ref)
        third = other_store(workdir, "store3")
        third.run("pull", "--tls-verify=false", ref)
        assert third.inspect(ref)["Digest"] == other.inspect(ref)["Digest"]
    finally:
        reg.stop()


def write_authfile(path, host, user, password):
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"auths": {host: {"auth": auth}}}, f)
    return path


def test_basic_auth(silo, busybox_image, workdir):
    reg = Registry(workdir, htpasswd={"alice": "s3cret"})
    try:
        ref = f"{reg.host}/private/bb:1"
        err = silo.fail("push", busybox_image, ref)
        assert "requires authentication" in err
        err = silo.fail("push", "--creds", "alice:wrong", busybox_image, ref)
        assert "authentication failed" in err
        silo.run("push", "--creds", "alice:s3cret", busybox_image, ref)
        other = other_store(workdir)
        err = other.fail("pull", ref)
        assert "requires authentication" in err
        authfile = write_authfile(os.path.join(workdir, "auth.json"), reg.host, "alice", "s3cret")
        other.run("pull", "--authfile", authfile, ref)
        # docker's default location: $HOME/.docker/config.json
        third = other_store(workdir, "store3")
        write_authfile(os.path.join(third.env["HOME"], ".docker", "config.json"), f"https://{reg.host}/v1/",
                       "alice", "s3cret")
        third.run("pull", ref)
        assert third.inspect(ref)["Id"] == silo.inspect(busybox_image)["Id"]
    finally:
        reg.stop()


def test_bearer_token_auth(silo, busybox_image, workdir):
    tokens = TokenServer(workdir, {"bob": "pw"})
    reg = Registry(workdir, token=tokens.registry_config())
    try:
        ref = f"{reg.host}/private/bb:1"
        err = silo.fail("push", busybox_image, ref)
        assert "HTTP 401" in err or "denied" in err.lower() or "authentication" in err
        err = silo.fail("push", "--creds", "bob:nope", busybox_image, ref)
        assert "authentication failed" in err and "bad password" in err
        silo.run("push", "--creds", "bob:pw", busybox_image, ref)
        scopes = [s for q in tokens.requests for s in q.get("scope", [])]
        assert "repository:private/bb:pull,push" in scopes
        other = other_store(workdir)
        other.run("pull", "--creds", "bob:pw", ref)
        assert other.inspect(ref)["Digest"] == silo.inspect(busybox_image)["Digest"]
        # anonymous pulls work where the token server allows them
        silo.run("push", "--creds", "bob:pw", busybox_image, f"{reg.host}/public/bb:1")
        third = other_store(workdir, "store3")
        third.run("pull", f"{reg.host}/public/bb:1")
        err = third.fail("pull", ref)
        assert "401" in err or "UNAUTHORIZED" in err or "authentication" in err
    finally:
        reg.stop()
        tokens.stop()


# ---- faults ----

@pytest.fixture
def proxied(registry):
    proxy = FaultProxy(registry.port)
    yield registry, proxy
    proxy.stop()


def test_dropped_connection_resumes(silo, proxied):
    reg, proxy = proxied
    img = big_image()
    reg.upload("fault/img", img, tag="1")
    layer = img.layers[1]["digest"]
    proxy.faults.append((is_blob_get(layer), "drop"))
    before = store_snapshot(silo.root)
    p = silo.run("pull", f"{proxy.host}/fault/img:1")
    assert "retrying" in p.err and ("partial file" in p.err or "connection closed after" in p.err), p.err
    gets = proxy.blob_gets(layer)
    assert len(gets) == 2 and gets[0][2] is None and gets[1][2].startswith("bytes="), gets
    assert silo.inspect(f"{proxy.host}/fault/img:1")["Digest"] == img.digest
    assert before != store_snapshot(silo.root)


def test_resume_ignored_by_server_restarts(silo, proxied):
    reg, proxy = proxied
    img = big_image()
    reg.upload("fault/img", img, tag="1")
    layer = img.layers[0]["digest"]
    proxy.faults += [(is_blob_get(layer), "drop"), (is_blob_get(layer), "ignore-range")]
    silo.run("pull", f"{proxy.host}/fault/img:1")
    assert silo.inspect(f"{proxy.host}/fault/img:1")["Digest"] == img.digest


def test_server_errors_are_retried(silo, proxied):
    reg, proxy = proxied
    img = big_image()
    reg.upload("fault/img", img, tag="1")
    layer = img.layers[0]["digest"]
    proxy.faults += [(is_blob_get(layer), "500"), (is_blob_get(layer), "500"),
                     (lambda m, p: "/manifests/" in p, "500")]
    p = silo.run("pull", f"{proxy.host}/fault/img:1")
    assert p.err.count("retrying") >= 3, p.err
    assert "injected failure" in p.err


def test_persistent_failure_leaves_nothing(silo, proxied):
    reg, proxy = proxied
    img = big_image()
    reg.upload("fault/img", img, tag="1")
    layer = img.layers[1]["digest"]
    proxy.faults += [(is_blob_get(layer), "500")] * 3
    before = store_snapshot(silo.root)
    err = silo.fail("pull", "--retries", "3", f"{proxy.host}/fault/img:1")
    assert f"layer {layer}: HTTP 500: UNKNOWN: injected failure (giving up after retries)" in err
    assert silo.images() == []
    assert_nothing_left(silo.root, before)
    # and a retry succeeds
    silo.run("pull", f"{proxy.host}/fault/img:1")
    assert silo.inspect(f"{proxy.host}/fault/img:1")["Digest"] == img.digest


def test_corrupt_blob_detected(silo, proxied):
    reg, proxy = proxied
    img = big_image()
    reg.upload("fault/img", img, tag="1")
    layer = img.layers[0]["digest"]
    proxy.faults.append((is_blob_get(layer), "corrupt"))
    p = silo.run("pull", f"{proxy.host}/fault/img:1")
    assert "digest mismatch" in p.err
    assert silo.inspect(f"{proxy.host}/fault/img:1")["Digest"] == img.digest
    # always corrupt: refused with the cause
    other = Silo(os.path.join(os.path.dirname(silo.root), "store2"))
    before = store_snapshot(other.root)
    proxy.faults += [(is_blob_get(layer), "corrupt")] * 2
    err = other.fail("pull", "--retries", "2", f"{proxy.host}/fault/img:1")
    assert "blob digest mismatch" in err and layer in err
    assert other.images() == []
    assert_nothing_left(other.root, before)


def test_manifest_digest_verified(silo, proxied):
    reg, proxy = proxied
    img = big_image()
    reg.upload("fault/img", img, tag="1")
    proxy.faults.append((lambda m, p: p.endswith("/manifests/" + img.digest), "corrupt"))
    err = silo.fail("pull", f"{proxy.host}/fault/img@{img.digest}")
    assert "manifest digest mismatch" in err or "invalid JSON" in err
    assert silo.images() == []


def test_concurrent_pulls_same_image(silo, registry):
    img = big_image()
    registry.upload("conc/img", img, tag="1")
    results = []

    def pull():
        results.append(silo.run("pull", f"{registry.host}/conc/img:1", check=False))

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.err for r in results]
    snap = store_snapshot(silo.root)
    assert len(snap["layers"]) == 2 and snap["tmp"] == []
    assert silo.inspect(f"{registry.host}/conc/img:1")["Digest"] == img.digest


# ---- output ----

def test_progress_plain_and_quiet(silo, registry):
    img = big_image()
    registry.upload("out/img", img, tag="1")
    p = silo.run("pull", f"{registry.host}/out/img:1")
    assert "downloading" in p.err and "unpacking" in p.err and "Digest: " + img.digest in p.err
    assert "\033[" not in p.err
    other = Silo(os.path.join(os.path.dirname(silo.root), "store2"))
    q = other.run("pull", "-q", f"{registry.host}/out/img:1")
    assert q.err == "" and q.out.strip() == img.id


def test_progress_bars_on_a_terminal(silo, registry):
    img = big_image()
    registry.upload("tty/img", img, tag="1")
    master, slave = pty.openpty()
    env = dict(silo.env, TERM="xterm")
    proc = subprocess.Popen([SILO, "--root", silo.root, "pull", f"{registry.host}/tty/img:1"], stdin=slave,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 30)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "\033[" in text          # cursor movement: bars redrawn in place
    assert "downloading [" in text and "kB/" in text and "done" in text


def test_push_verifies_store_blobs(silo, busybox_image, registry):
    layer = silo.inspect(busybox_image)["ManifestLayers"][0]["digest"]
    path = os.path.join(silo.root, "blobs/sha256", layer.split(":")[1])
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    err = silo.fail("push", busybox_image, f"{registry.host}/corrupt/bb:1")
    assert f"blob {layer} is corrupt" in err
