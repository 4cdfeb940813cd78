# SPDX-License-Identifier: Apache-2.0
"""Named and anonymous volumes through the real docker CLI: persistence
across containers, filling from the image, `docker volume` ls/inspect/rm/
prune, in-use protection, `rm -v` and `--rm` taking anonymous volumes
along, and image VOLUMEs becoming anonymous volumes."""

import hashlib
import io
import json
import os
import tarfile
import time

from daemon_support import daemon, image  # noqa: F401 - fixtures


def volume_names(daemon):
    return set(daemon.docker("volume", "ls", "-q").stdout.split())


def test_named_volume_persists_and_is_protected(daemon, image):
    daemon.docker("run", "--rm", "-v", "data1:/data", image, "sh", "-c", "echo kept > /data/f")
    p = daemon.docker("run", "--rm", "--mount", "type=volume,src=data1,dst=/d,readonly", image, "sh", "-c",
                      "cat /d/f; touch /d/g", check=False)
    assert p.stdout == "kept\n" and "Read-only file system" in p.stderr
    assert "data1" in volume_names(daemon)
    doc = json.loads(daemon.docker("volume", "inspect", "data1").stdout)[0]
    assert doc["Name"] == "data1" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Mountpoint"] == os.path.join(daemon.state, "volumes", "data1", "_data")
    with open(os.path.join(doc["Mountpoint"], "f")) as f:
        assert f.read() == "kept\n"
    # In use by a container (even a stopped one): 409.
    cid = daemon.docker("create", "-v", "data1:/data", image, "true").stdout.strip()
    doc = json.loads(daemon.docker("inspect", cid).stdout)[0]
    mount = [m for m in doc["Mounts"] if m["Destination"] == "/data"][0]
    assert mount["Type"] == "volume" and mount["Name"] == "data1" and mount["RW"] is True
    p = daemon.docker("volume", "rm", "data1", check=False)
    assert p.returncode != 0 and "volume is in use" in p.stderr and cid in p.stderr
    daemon.docker("rm", cid)
    daemon.docker("volume", "rm", "data1")
    assert "data1" not in volume_names(daemon)
    p = daemon.docker("volume", "inspect", "data1", check=False)
    assert p.returncode != 0 and "no such volume" in p.stderr.lower()
    p = daemon.docker("volume", "rm", "data1", check=False)
    assert p.returncode != 0
    daemon.docker("volume", "rm", "-f", "data1")  # force: a missing volume is no error


def test_empty_volume_is_filled_from_the_image(daemon, image):
    # /home holds user/ (uid 1000) in the test image.
    out = daemon.docker("run", "--rm", "-v", "homes:/home", image, "sh", "-c",
                        "stat -c '%u %n' /home/user").stdout
    assert out == "1000 /home/user\n"
    out = daemon.docker("run", "--rm", "-v", "homes:/mnt", image, "ls", "/mnt").stdout
    assert out.split() == ["user"]
    # nocopy, and a volume that has content is not filled again.
    out = daemon.docker("run", "--rm", "-v", "bare:/home:nocopy", image, "ls", "-A", "/home").stdout
    assert out == ""
    daemon.docker("run", "--rm", "-v", "homes:/var", image, "ls", "/var")
    out = daemon.docker("run", "--rm", "-v", "homes:/x", image, "ls", "/x").stdout
    assert out.split() == ["user"]
    daemon.docker("volume", "rm", "homes", "bare")


def test_volume_create_ls_filters_prune(daemon, image):
    out = daemon.docker("volume", "create", "--label", "team=a", "v-labelled").stdout
    assert out.strip() == "v-labelled"
    daemon.docker("volume", "create", "v-plain")
    anon = daemon.docker("volume", "create").stdout.strip()
    assert len(anon) == 64
    assert daemon.docker("volume", "ls", "-q", "--filter", "label=team=a").stdout.split() == ["v-labelled"]
    assert set(daemon.docker("volume", "ls", "-q", "--filter", "name=v-").stdout.split()) == \
        {"v-labelled", "v-plain"}
    cid = daemon.docker("create", "-v", "v-plain:/p", image, "true").stdout.strip()
    dangling = set(daemon.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.split())
    assert "v-plain" not in dangling and "v-labelled" in dangling
    # Prune takes unused anonymous volumes; -a takes unused named ones too.
    out = daemon.docker("volume", "prune", "-f").stdout
    assert anon in out
    names = volume_names(daemon)
    assert anon not in names and {"v-labelled", "v-plain"} <= names
    daemon.docker("volume", "prune", "-a", "-f")
    assert volume_names(daemon) == {"v-plain"}
    daemon.docker("rm", cid)
    daemon.docker("volume", "rm", "v-plain")
    # Bad requests.
    status, payload, _ = daemon.api("POST", "/volumes/create", {"Name": "bad name"})
    assert status == 400 and "invalid characters" in json.loads(payload)["message"]
    status, payload, _ = daemon.api("POST", "/volumes/create", {"Name": "x1", "Driver": "nfs"})
    assert status == 400 and "Driver" in json.loads(payload)["message"]
    status, payload, _ = daemon.api("POST", "/volumes/create", {"Name": 5})
    assert status == 400 and "Name: expected a string" in json.loads(payload)["message"]
    status, _, _ = daemon.api("GET", "/volumes/nope")
    assert status == 404
    status, payload, _ = daemon.api("GET", "/volumes?filters=notjson")
    assert status == 400


def test_anonymous_volumes_rm_v_and_autoremove(daemon, image):
    before = volume_names(daemon)
    cid = daemon.docker("run", "-d", "-v", "/anon", image, "sh", "-c", "echo x > /anon/f; sleep 30").stdout.strip()
    doc = json.loads(daemon.docker("inspect", cid).stdout)[0]
    mount = [m for m in doc["Mounts"] if m["Destination"] == "/anon"][0]
    assert mount["Type"] == "volume" and len(mount["Name"]) == 64
    assert mount["Name"] in volume_names(daemon)
    daemon.docker("rm", "-f", "-v", cid)
    assert volume_names(daemon) == before
    # Without -v the anonymous volume stays (dangling), as in docker.
    cid = daemon.docker("create", "-v", "/keep", image, "true").stdout.strip()
    name = [m for m in json.loads(daemon.docker("inspect", cid).stdout)[0]["Mounts"]][0]["Name"]
    daemon.docker("rm", cid)
    assert name in volume_names(daemon)
    daemon.docker("volume", "rm", name)
    # --rm removes the container's anonymous volumes, never named ones.
    daemon.docker("run", "--rm", "-v", "/gone", "-v", "named1:/n", image, "true")
    assert volume_names(daemon) == before | {"named1"}
    daemon.docker("volume", "rm", "named1")


def image_with_volume(daemon, tmp_path):
    """busybox plus a /srv/data VOLUME holding a file."""
    with tarfile.open(daemon.image_tar) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        cfg = json.load(t.extractfile(manifest[0]["Config"]))
        members = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as lt:
        for name, data, mode in (("srv", None, 0o755), ("srv/data", None, 0o755),
                                 ("srv/data/seed", b"seeded\n", 0o644)):
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            if data is None:
                ti.type = tarfile.DIRTYPE
                lt.addfile(ti)
            else:
                ti.size = len(data)
                lt.addfile(ti, io.BytesIO(data))
    layer = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg["rootfs"]["diff_ids"].append(diff_id)
    cfg["config"]["Volumes"] = {"/srv/data": {}}
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    layer_name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
    new_manifest = [{"Config": cfg_name, "RepoTags": ["silo-test/withvol:1"],
                     "Layers": manifest[0]["Layers"] + [layer_name]}]
    path = tmp_path / "withvol.tar"
    with tarfile.open(path, "w") as out:
        files = {manifest[0]["Layers"][0]: members[manifest[0]["Layers"][0]], layer_name: layer,
                 cfg_name: cfg_bytes, "manifest.json": json.dumps(new_manifest).encode()}
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))
    daemon.docker("load", "-i", str(path))
    return "silo-test/withvol:1"


def test_image_volume_becomes_anonymous_volume(daemon, image, tmp_path):
    ref = image_with_volume(daemon, tmp_path)
    before = volume_names(daemon)
    cid = daemon.docker("run", "-d", ref, "sh", "-c", "cat /srv/data/seed; echo more > /srv/data/new; sleep 30"
                        ).stdout.strip()
    doc = json.loads(daemon.docker("inspect", cid).stdout)[0]
    mount = [m for m in doc["Mounts"] if m["Destination"] == "/srv/data"][0]
    assert mount["Type"] == "volume" and mount["Name"] in volume_names(daemon)
    data = os.path.join(daemon.state, "volumes", mount["Name"], "_data")
    for _ in range(50):
        if os.path.exists(os.path.join(data, "new")):
            break
        time.sleep(0.1)
    with open(os.path.join(data, "seed")) as f:
        assert f.read() == "seeded\n"
    daemon.docker("rm", "-f", "-v", cid)
    assert volume_names(daemon) == before
    # A named volume over the image VOLUME replaces the anonymous one.
    out = daemon.docker("run", "--rm", "-v", "over:/srv/data", ref, "cat", "/srv/data/seed").stdout
    assert out == "seeded\n"
    assert volume_names(daemon) == before | {"over"}
    daemon.docker("volume", "rm", "over")
    daemon.docker("rmi", ref)
