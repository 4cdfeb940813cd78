# SPDX-License-Identifier: Apache-2.0
"""silod's image endpoints through the real docker CLI: pull (with the progress stream) and push
against Debian's docker-registry on 127.0.0.1, save | load, history, image prune, system df and
login (htpasswd registry).  Fixtures: daemon_support.py (silod + docker CLI + busybox image) and
image_support.Registry."""

import base64
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time

import pytest

from daemon_support import DOCKER, UnixHTTPConnection, daemon, image  # noqa: F401 - fixtures
from image_support import Image, Layer, Registry


@pytest.fixture(scope="module")
def registry(daemon):
    tmp = tempfile.mkdtemp(prefix="silod-reg-")
    r = Registry(tmp)
    daemon.forward_to_host(r.port)
    yield r
    r.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def image_ids(daemon):
    p = daemon.docker("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
    return [line.split() for line in p.stdout.splitlines()]


def names(daemon):
    return [n for _, n in image_ids(daemon)]


def test_push_then_pull_back(daemon, image, registry):
    ref = f"{registry.host}/silod/busybox:1"
    daemon.docker("tag", image, ref)
    p = daemon.docker("push", ref, timeout=60)
    assert f"The push refers to repository [{registry.host}/silod/busybox]" in p.stdout
    assert "Pushed" in p.stdout
    assert "1: digest: sha256:" in p.stdout
    digest = p.stdout.split("digest: ")[1].split()[0]
    # the registry has it under that digest
    conn = __import__("http.client").client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    conn.request("HEAD", "/v2/silod/busybox/manifests/1",
                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                    "application/vnd.docker.distribution.manifest.v2+json"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Docker-Content-Digest") == digest
    conn.close()
    # pushing again: every layer exists already
    p = daemon.docker("push", ref, timeout=60)
    assert "Layer already exists" in p.stdout

    daemon.docker("rmi", ref)
    assert ref not in names(daemon)
    p = daemon.docker("pull", ref, timeout=60)
    assert "Pulling from silod/busybox" in p.stdout
    assert f"Digest: {digest}" in p.stdout
    assert f"Status: Downloaded newer image for {ref}" in p.stdout
    assert "Already exists" in p.stdout      # busybox's layer was still in the store
    assert ref in names(daemon)
    p = daemon.docker("run", "--rm", ref, "echo", "pulled")
    assert p.stdout == "pulled\n"
    # a second pull finds it up to date
    p = daemon.docker("pull", ref, timeout=60)
    assert f"Status: Image is up to date for {ref}" in p.stdout
    daemon.docker("rmi", ref)


def test_pull_downloads_and_extracts(daemon, registry):
    """A fresh image: the raw stream has docker's per-layer messages with progressDetail."""
    img = Image([Layer().file("hello", b"x" * 300000).bytes(), Layer().file("world", "w").bytes()],
                cmd=["/hello"])
    registry.upload("silod/fresh", img, tag="v1")
    status, body, headers = daemon.api("POST", f"/images/create?fromImage={registry.host}/silod/fresh&tag=v1",
                                       timeout=60)
    assert status == 200, body
    msgs = [json.loads(line) for line in body.decode().splitlines()]
    assert msgs[0] == {"status": "Pulling from silod/fresh", "id": "v1"}
    statuses = [m.get("status") for m in msgs]
    for s in ("Pulling fs layer", "Downloading", "Download complete", "Extracting", "Pull complete"):
        assert s in statuses, (s, statuses)
    dl = [m for m in msgs if m.get("status") == "Downloading"]
    assert all(len(m["id"]) == 12 and "current" in m["progressDetail"] for m in dl)
    assert msgs[-1]["status"] == f"Status: Downloaded newer image for {registry.host}/silod/fresh:v1"
    assert not any("error" in m for m in msgs)
    # through the CLI, quietly
    p = daemon.docker("pull", "-q", f"{registry.host}/silod/fresh:v1", timeout=60)
    assert p.stdout.strip() == f"{registry.host}/silod/fresh:v1"
    daemon.docker("rmi", f"{registry.host}/silod/fresh:v1")


def test_pull_errors(daemon, registry):
    p = daemon.docker("pull", f"{registry.host}/silod/no-such:1", check=False, timeout=60)
    assert p.returncode == 1
    assert "not found" in p.stderr and "MANIFEST_UNKNOWN" in p.stderr
    p = daemon.docker("pull", "127.0.0.1:1/x/y:1", check=False, timeout=60)
    assert p.returncode == 1 and "127.0.0.1:1" in p.stderr
    status, body, _ = daemon.api("POST", "/images/create")
    assert status == 400 and "fromImage" in json.loads(body)["message"]
    status, body, _ = daemon.api("POST", "/images/create?fromImage=Bad//name")
    assert status == 400 and "invalid reference" in json.loads(body)["message"]
    status, body, _ = daemon.api("POST", f"/images/create?fromImage={registry.host}/x/y&tag=1",
                                 headers={"X-Registry-Auth": "!!not base64!!"})
    assert status == 400 and "X-Registry-Auth" in json.loads(body)["message"]
    # nothing partial was left
    assert not any(n.startswith(registry.host + "/silod/no-such") for n in names(daemon))
    assert daemon.api("GET", "/_ping")[0] == 200


def test_pull_error_mid_stream(daemon, registry):
    """A blob the registry does not have: the stream began, so the error is the last JSON line and
    the CLI exits 1 with it; no image and no unreferenced blob stays."""
    img = Image([Layer().file("a", "broken-a").bytes(), Layer().file("b", "broken-b").bytes()], cmd=["/a"])
    registry.upload("silod/broken", img, tag="1")
    # the registry loses the second layer's data
    hexd = img.layers[1]["digest"].split(":")[1]
    os.unlink(os.path.join(registry.dir, "data", "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd,
                           "data"))
    p = daemon.docker("pull", f"{registry.host}/silod/broken:1", check=False, timeout=60)
    assert p.returncode == 1, p
    assert "Pulling from silod/broken" in p.stdout
    assert "BLOB_UNKNOWN" in p.stderr or "404" in p.stderr, p.stderr
    assert f"{registry.host}/silod/broken:1" not in names(daemon)
    blobs = os.listdir(os.path.join(daemon.root, "blobs", "sha256"))
    assert img.digest.split(":")[1] not in blobs


def test_pull_client_disconnect(daemon, registry):
    """The client goes away mid-pull: the daemon keeps serving and no partial image remains."""
    big = Image([Layer().file("big", os.urandom(8 << 20)).bytes()], cmd=["/big"])
    registry.upload("silod/big", big, tag="1")
    for _ in range(3):
        conn = UnixHTTPConnection(daemon.sock, timeout=30)
        conn.request("POST", f"/images/create?fromImage={registry.host}/silod/big&tag=1")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.fp.readline()
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    deadline = time.time() + 15
    while time.time() < deadline:
        # a pull that finished before the hang-up is complete; otherwise nothing is there
        status, body, _ = daemon.api("GET", f"/images/{registry.host}/silod/big:1/json")
        if status == 404:
            blobs = os.listdir(os.path.join(daemon.root, "blobs", "sha256"))
            if big.digest.split(":")[1] not in blobs:
                break
        else:
            assert status == 200 and json.loads(body)["Id"]
            break
        time.sleep(0.2)
    else:
        pytest.fail("a cancelled pull left blobs behind")
    assert daemon.api("GET", "/_ping")[0] == 200
    daemon.docker("pull", f"{registry.host}/silod/big:1", timeout=60)
    daemon.docker("rmi", f"{registry.host}/silod/big:1")


def test_push_errors(daemon, image, registry):
    p = daemon.docker("push", f"{registry.host}/silod/never-tagged:1", check=False)
    assert p.returncode == 1 and "does not exist locally" in p.stderr
    daemon.docker("tag", image, "127.0.0.1:1/silod/unreachable:1")
    p = daemon.docker("push", "127.0.0.1:1/silod/unreachable:1", check=False, timeout=60)
    assert p.returncode == 1 and "127.0.0.1:1" in (p.stdout + p.stderr)
    daemon.docker("rmi", "127.0.0.1:1/silod/unreachable:1")


def test_login_and_authenticated_push_pull(daemon, image):
    tmp = tempfile.mkdtemp(prefix="silod-reg-auth-")
    reg = Registry(tmp, htpasswd={"alice": "s3cret"})
    daemon.forward_to_host(reg.port)
    try:
        ref = f"{reg.host}/private/bb:1"
        daemon.docker("tag", image, ref)
        p = daemon.docker("push", ref, check=False, timeout=60)
        assert p.returncode == 1 and "authentication" in (p.stdout + p.stderr)
        p = daemon.docker("login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n", check=False)
        assert p.returncode == 1 and "credentials rejected" in p.stderr
        p = daemon.docker("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        assert "Login Succeeded" in p.stdout
        # the CLI now sends X-Registry-Auth with push and pull
        p = daemon.docker("push", ref, timeout=60)
        assert "Pushed" in p.stdout or "Layer already exists" in p.stdout
        daemon.docker("rmi", ref)
        daemon.docker("pull", ref, timeout=60)
        assert ref in names(daemon)
        daemon.docker("rmi", ref)
        daemon.docker("logout", reg.host)
        p = daemon.docker("pull", ref, check=False, timeout=60)
        assert p.returncode == 1 and "authentication" in p.stderr
        # the raw header: base64url JSON
        auth = base64.urlsafe_b64encode(json.dumps({"username": "alice", "password": "s3cret",
                                                    "serveraddress": reg.host}).encode()).decode()
        status, body, _ = daemon.api("POST", f"/images/create?fromImage={reg.host}/private/bb&tag=1",
                                     headers={"X-Registry-Auth": auth}, timeout=60)
        assert status == 200 and b"Status: Downloaded newer image" in body, body
        daemon.docker("rmi", ref)
        status, body, _ = daemon.api("POST", "/auth", body={"username": "alice", "password": "nope",
                                                          "serveraddress": reg.host})
        assert status == 401
        status, body, _ = daemon.api("POST", "/auth", body={"username": "alice"})
        assert status == 400
    finally:
        reg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_save_load_roundtrip(daemon, image):
    tmp = tempfile.mkdtemp(prefix="silod-save-")
    try:
        out = os.path.join(tmp, "bb.tar")
        daemon.docker("tag", image, "silod-save/bb:2")
        daemon.docker("save", "-o", out, "silod-save/bb:2", image, timeout=60)
        with tarfile.open(out) as t:
            members = t.getnames()
            manifest = json.load(t.extractfile("manifest.json"))
        assert "manifest.json" in members and "index.json" in members
        tags = sorted(tag.replace("docker.io/library/", "").replace("docker.io/", "")
                      for m in manifest for tag in m["RepoTags"])
        assert tags == ["busybox:latest", "silod-save/bb:2"]
        old_id = daemon.docker("image", "inspect", "--format", "{{.Id}}", "silod-save/bb:2").stdout.strip()
        daemon.docker("rmi", "silod-save/bb:2")
        p = daemon.docker("load", "-i", out, timeout=60)
        assert "Loaded image: silod-save/bb:2" in p.stdout
        assert daemon.docker("image", "inspect", "--format", "{{.Id}}",
                             "silod-save/bb:2").stdout.strip() == old_id
        # docker save to stdout, piped into docker load
        p = subprocess_pipe(daemon, ["save", "silod-save/bb:2"], ["load"])
        assert "Loaded image: silod-save/bb:2" in p
        # the single-image endpoint
        status, body, headers = daemon.api("GET", "/images/silod-save/bb:2/get", timeout=60)
        assert status == 200 and headers.get("Content-Type") == "application/x-tar"
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            assert "manifest.json" in t.getnames()
        p = daemon.docker("save", "no-such:image", check=False)
        assert p.returncode == 1 and "No such image" in p.stderr
        daemon.docker("rmi", "silod-save/bb:2")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def subprocess_pipe(daemon, left, right):
    import subprocess
    a = subprocess.Popen([DOCKER, *left], env=daemon.env, stdout=subprocess.PIPE)
    b = subprocess.run([DOCKER, *right], env=daemon.env, stdin=a.stdout, capture_output=True, text=True,
                       timeout=60)
    a.stdout.close()
    assert a.wait(timeout=30) == 0
    assert b.returncode == 0, b.stderr
    return b.stdout


def test_history(daemon, image):
    p = daemon.docker("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}", image)
    rows = [line.split("|") for line in p.stdout.splitlines()]
    assert len(rows) == 1
    img_id = daemon.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    assert rows[0][0] == img_id
    assert rows[0][1] == "silo tests: busybox-static"
    assert rows[0][2] != "0B"
    status, body, _ = daemon.api("GET", "/images/no-such-image/history")
    assert status == 404


def test_image_prune(daemon, image):
    base_id = daemon.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    # a dangling image: tag, then move the tag away by importing over it
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 5
        t.addfile(ti, io.BytesIO(b"hello"))
    status, body, _ = daemon.api("POST", "/images/create?fromSrc=-&repo=silod-prune/x&tag=1", raw=tar.getvalue(),
                                 headers={"Content-Type": "application/x-tar"})
    assert status == 200, body
    first = json.loads(body.decode().splitlines()[-1])["status"]
    assert first.startswith("sha256:")
    tar2 = io.BytesIO()
    with tarfile.open(fileobj=tar2, mode="w") as t:
        ti = tarfile.TarInfo("other.txt")
        ti.size = 5
        t.addfile(ti, io.BytesIO(b"other"))
    status, body, _ = daemon.api("POST", "/images/create?fromSrc=-&repo=silod-prune/x&tag=1", raw=tar2.getvalue(),
                                 headers={"Content-Type": "application/x-tar"})
    assert status == 200, body
    assert first in [i for i, _ in image_ids(daemon)]       # now <none>:<none>
    p = daemon.docker("image", "prune", "-f")
    assert f"deleted: {first}" in p.stdout
    ids = [i for i, _ in image_ids(daemon)]
    assert first not in ids and base_id in ids
    assert "silod-prune/x:1" in names(daemon)
    # -a: everything no container uses, busybox stays while a container has it
    daemon.docker("create", "--name", "prune-keeper", image, "true")
    try:
        p = daemon.docker("image", "prune", "-a", "-f")
        assert "untagged: silod-prune/x:1" in p.stdout
        assert "Total reclaimed space" in p.stdout
        assert names(daemon) == ["busybox:latest"]
    finally:
        daemon.docker("rm", "prune-keeper")
    status, body, _ = daemon.api("POST", "/images/prune?filters=" + "%7B%22until%22%3A%5B%221h%22%5D%7D")
    assert status == 501


def test_system_df(daemon, image):
    daemon.docker("create", "--name", "df-one", image, "sh", "-c", "echo hi > /file")
    daemon.docker("start", "-a", "df-one")
    try:
        p = daemon.docker("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}")
        rows = {r.split("|")[0]: r.split("|")[1:] for r in p.stdout.splitlines()}
        assert rows["Images"][0] == "1" and rows["Images"][1] == "1", rows
        assert rows["Containers"][0] == "1" and rows["Containers"][1] == "0", rows
        assert rows["Local Volumes"][0] == "0" or "Local Volumes" in rows
        status, body, _ = daemon.api("GET", "/system/df")
        doc = json.loads(body)
        assert status == 200 and doc["BuildCache"] == [] and isinstance(doc["Volumes"], list)
        c = [x for x in doc["Containers"] if x["Names"] == ["/df-one"]][0]
        assert c["SizeRw"] >= 3 and c["State"] == "exited"
        assert doc["Images"][0]["Containers"] == 1 and doc["LayersSize"] > 0
        p = daemon.docker("system", "df", "-v")
        assert "df-one" in p.stdout and "busybox" in p.stdout
    finally:
        daemon.docker("rm", "df-one")


def test_docker_import(daemon, image):
    tmp = tempfile.mkdtemp(prefix="silod-import-")
    try:
        path = os.path.join(tmp, "rootfs.tar")
        with tarfile.open(path, "w") as t:
            ti = tarfile.TarInfo("etc/imported")
            ti.size = 3
            t.addfile(ti, io.BytesIO(b"yes"))
        t0 = time.time()
        p = daemon.docker("import", "-m", "from a test", path, "silod-import/x:1", timeout=60)
        new_id = p.stdout.strip()
        assert new_id.startswith("sha256:")
        assert daemon.docker("image", "inspect", "--format", "{{.Id}}", "silod-import/x:1").stdout.strip() == new_id
        p = daemon.docker("history", "--format", "{{.Comment}}", "silod-import/x:1")
        assert "from a test" in p.stdout
        evs = daemon.docker("events", "--since", f"{t0:.3f}", "--until", f"{time.time() + 0.5:.3f}",
                            "--filter", "event=import", "--format", "{{.Actor.ID}}").stdout.split()
        assert evs == [new_id]
        p = daemon.docker("import", "-c", "CMD [\"/x\"]", path, "silod-import/y:1", check=False)
        assert p.returncode == 1 and "changes" in p.stderr
        p = daemon.docker("import", os.path.join(tmp, "missing.tar"), check=False)
        assert p.returncode != 0
        status, body, _ = daemon.api("POST", "/images/create?fromSrc=-&repo=silod-import/z", raw=b"not a tarball",
                                     headers={"Content-Type": "application/x-tar"})
        assert status == 400, body
        daemon.docker("rmi", "silod-import/x:1")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
