# SPDX-License-Identifier: Apache-2.0
"""Shared by the silod test modules: a Daemon (silod on a private unix socket
with its own --root, --state and a test-owned absolute --cgroup-parent), the
docker CLI bound to it, and the module-scoped `daemon` and `image` fixtures.

Import the fixtures into a test module with
`from daemon_support import daemon, image  # noqa: F401`.  Teardown removes
every container, stops silod and fails the module if a monitor process,
mount, cgroup or socket is left behind.
"""

import ctypes
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
import threading
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
        self.extra_args = []            # more silod arguments (e.g. a TLS listener)
        self.nsfile = None              # silod's network namespace, see use_private_netns()
        self.forwarders = []            # listening sockets of forward_to_host()
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock,
                        DOCKER_CONFIG=os.path.join(tmp, "docker-config"))

    def use_private_netns(self):
        """Runs silod (and the docker CLI) in a network namespace of the test's
        own, with a private network state directory: the default bridge, its
        nftables table and published ports never touch the machine's network."""
        self.nsfile = os.path.join(self.tmp, "hostns")
        open(self.nsfile, "w").close()
        subprocess.run(["unshare", "--net=" + self.nsfile, "true"], check=True, timeout=10)
        subprocess.run(["nsenter", "--net=" + self.nsfile, "ip", "link", "set", "lo", "up"], check=True, timeout=10)
        self.env["SILO_NETWORK_DIR"] = os.path.join(self.tmp, "network")

    def release_netns(self):
        for listener in self.forwarders:
            listener.close()
        self.forwarders = []
        if self.nsfile:
            subprocess.run(["umount", "-l", self.nsfile], check=False)
            self.nsfile = None

    def in_netns(self):
        """Command prefix that runs a program where silod's network is."""
        return ["nsenter", "--net=" + self.nsfile] if self.nsfile else []

    def _in_netns(self, make):
        """Runs make() in a short-lived thread that entered silod's network
        namespace (setns is per thread); sockets it creates stay there."""
        if not self.nsfile:
            return make()
        made = {}

        def enter_and_make():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(self.nsfile, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if libc.setns(fd, 0x40000000) != 0:     # CLONE_NEWNET
                        raise OSError(ctypes.get_errno(), "setns " + self.nsfile)
                finally:
                    os.close(fd)
                made["value"] = make()
            except OSError as e:
                made["error"] = e

        t = threading.Thread(target=enter_and_make)
        t.start()
        t.join()
        if "error" in made:
            raise made["error"]
        return made["value"]

    def connect_tcp(self, host, port, timeout=10):
        """A TCP connection made from silod's network namespace."""
        return self._in_netns(lambda: socket.create_connection((host, port), timeout=timeout))

    def forward_to_host(self, port):
        """Makes the host's 127.0.0.1:port (a test registry) answer at the same
        address inside silod's network namespace: a relay of the test's own."""
        if not self.nsfile:
            return
        listener = self._in_netns(lambda: socket.create_server(("127.0.0.1", port)))
        self.forwarders.append(listener)

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        def accept_loop():
            while True:
                try:
                    inner, _ = listener.accept()
                except OSError:
                    return
                try:
                    outer = socket.create_connection(("127.0.0.1", port), timeout=30)
                except OSError:
                    inner.close()
                    continue
                for a, b in ((inner, outer), (outer, inner)):
                    threading.Thread(target=pump, args=(a, b), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [*self.in_netns(), SILOD, "--host", "unix://" + self.sock, "--root", self.root, "--state", self.state,
             "--cgroup-parent", self.cgroup_parent, *self.extra_args],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=self.env)
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
        p = subprocess.run([*self.in_netns(), DOCKER, *args], env=self.env, capture_output=True, text=True,
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
    d.use_private_netns()
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
        d.release_netns()
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
