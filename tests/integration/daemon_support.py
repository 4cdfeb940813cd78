# SPDX-License-Identifier: Apache-2.0
"""Shared by the silod test modules: a Daemon (silod on a private unix socket
with its own --root, --state and a test-owned absolute --cgroup-parent), the
docker CLI bound to it, and the module-scoped `daemon` and `image` fixtures.

Import the fixtures into a test module with
`from daemon_support import daemon, image  # noqa: F401`.  Teardown removes
every container, stops silod and fails the module if a monitor process,
mount, cgroup or socket is left behind.
"""

import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients"))
import silo_images  # noqa: E402

BUILD_DIR = os.environ.get("SILO_BUILD_DIR", "/work/main/build")
SILOD = os.path.join(BUILD_DIR, "src/daemon/silod")
DOCKER = shutil.which("docker")
CMD_TIMEOUT = 30


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=20):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def write_docker_archive(rootfs, path, tag):
    """A `docker save` tarball (manifest.json, config, one layer.tar)."""
    layer = silo_images._rootfs_tar_bytes(rootfs)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "silo tests: busybox-static"}],
    }
    cfg = json.dumps(config, sort_keys=True).encode()
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    layer_name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
    manifest = [{"Config": cfg_hex + ".json", "RepoTags": [tag], "Layers": [layer_name]}]
    with tarfile.open(path, "w") as out:
        for name, data in ((cfg_hex + ".json", cfg), (layer_name, layer),
                           ("manifest.json", json.dumps(manifest).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            out.addfile(ti, io.BytesIO(data))
    return path


class Daemon:
    def __init__(self, tmp):
        self.tmp = tmp
        self.sock = os.path.join(tmp, "silod.sock")
        self.root = os.path.join(tmp, "root")
        self.state = os.path.join(tmp, "state")
        self.cgroup_parent = "/silo-test-" + uuid.uuid4().hex[:10]
        self.log = os.path.join(tmp, "silod.log")
        self.proc = None
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock,
                        DOCKER_CONFIG=os.path.join(tmp, "docker-config"))

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [SILOD, "--host", "unix://" + self.sock, "--root", self.root, "--state", self.state,
             "--cgroup-parent", self.cgroup_parent],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"silod exited {self.proc.returncode}: {open(self.log).read()}")
            try:
                if self.api("GET", "/_ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("silod did not come up: " + open(self.log).read())

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def api(self, method, path, body=None, raw=None, headers=None, timeout=20):
        conn = UnixHTTPConnection(self.sock, timeout=timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            hdrs = dict(headers or {})
            if data is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, payload, dict(resp.getheaders())
        finally:
            conn.close()

    def docker(self, *args, check=True, timeout=CMD_TIMEOUT, input=None):
        p = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} -> {p.returncode}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}\n"
                                 f"silod log: {open(self.log).read()[-3000:]}")
        return p


def monitor_pids(state):
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if len(cmd) >= 3 and cmd[0].endswith(b"silo-monitor") and cmd[2].startswith(state.encode()):
            pids.append(int(pid))
    return pids


def cgroup_dirs(parent):
    found = []
    base = "/sys/fs/cgroup"
    for ctrl in os.listdir(base):
        d = os.path.join(base, ctrl, parent.lstrip("/"))
        if os.path.isdir(d):
            found.append(d)
    return found


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


@pytest.fixture(scope="module")
def daemon():
    if not DOCKER:
        pytest.fail("the docker CLI is required for the daemon tests")
    if not os.path.exists(SILOD):
        pytest.fail(f"{SILOD} is not built")
    tmp = tempfile.mkdtemp(prefix="silod-test-")
    d = Daemon(tmp)
    d.start()
    rootfs = os.path.join(tmp, "busybox-rootfs")
    os.makedirs(rootfs)
    silo_images.build_busybox_rootfs(rootfs)
    d.image_tar = write_docker_archive(rootfs, os.path.join(tmp, "busybox.tar"), "busybox:latest")
    shutil.rmtree(rootfs)
    leaks = []
    try:
        yield d
    finally:
        try:
            if d.proc is None:
                d.start()
            status, body, _ = d.api("GET", "/containers/json?all=1")
            for c in json.loads(body) if status == 200 else []:
                d.api("DELETE", f"/containers/{c['Id']}?force=1", timeout=30)
        except Exception as e:  # noqa: BLE001 - teardown must go on
            leaks.append(f"cleanup through the API failed: {e}")
        rc = d.stop()
        if rc != 0:
            leaks.append(f"silod exited {rc} on SIGTERM: {open(d.log).read()[-2000:]}")
        if os.path.exists(d.sock):
            leaks.append("socket left behind")
        deadline = time.time() + 10
        while monitor_pids(d.state) and time.time() < deadline:
            time.sleep(0.1)
        for pid in monitor_pids(d.state):
            leaks.append(f"monitor process {pid} left running")
            os.kill(pid, signal.SIGKILL)
        for m in reversed(mounts_under(tmp)):
            leaks.append(f"mount left: {m}")
            subprocess.run(["umount", "-l", m], check=False)
        for cg in cgroup_dirs(d.cgroup_parent):
            subs = [os.path.join(cg, s) for s in os.listdir(cg) if os.path.isdir(os.path.join(cg, s))]
            if subs:
                leaks.append(f"container cgroups left: {subs}")
            for s in subs:
                try:
                    os.rmdir(s)
                except OSError:
                    pass
            try:
                os.rmdir(cg)
            except OSError as e:
                leaks.append(f"cannot remove {cg}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
    assert not leaks, "\n".join(leaks)


@pytest.fixture(scope="module")
def image(daemon):
    p = daemon.docker("load", "-i", daemon.image_tar, timeout=60)
    assert "Loaded image: busybox:latest" in p.stdout
    return "busybox"
