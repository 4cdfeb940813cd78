# SPDX-License-Identifier: Apache-2.0
"""The compute API's Container.Networking.Network: a compute system attached to a silo network by
name, with published Ports, through `silo compute`.  Everything runs in a network namespace the
test creates (it plays the host) with a private network state directory; teardown checks that no
veth, namespace mount, lease or state is left."""

import json
import os
import subprocess
import tempfile
import time

import pytest

import silo_harness as h

SILO = os.path.join(h.BUILD_DIR, "src/cli/silo")
INIT = os.path.join(h.BUILD_DIR, "src/lib/api/silo-compute-init")
TIMEOUT = 30

HTTP_GET = """
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=3)
c.request("GET", "/")
print(c.getresponse().read().decode(), end="")
"""


class NetCompute:
    def __init__(self, test_dir, layer, cgroup_parent):
        self.dir = test_dir
        self.layer = layer
        self.state = os.path.join(test_dir, "state")
        self.netdir = os.path.join(test_dir, "network")
        self.nsfile = os.path.join(test_dir, "hostns")
        self.env = dict(os.environ, SILO_COMPUTE_STATE=self.state, SILO_COMPUTE_CGROUP_PARENT="/" + cgroup_parent,
                        SILO_COMPUTE_INIT=INIT, SILO_NETWORK_DIR=self.netdir)
        self.ids = set()

    def host(self, *cmd, check=True, input=None):
        p = subprocess.run(["nsenter", "--net=" + self.nsfile, *cmd], capture_output=True, text=True,
                           env=self.env, timeout=TIMEOUT, input=input)
        if check:
            assert p.returncode == 0, f"{cmd}: rc={p.returncode} {p.stdout} {p.stderr}"
        return p

    def silo(self, *args, check=True):
        args = [a if isinstance(a, str) else json.dumps(a) for a in args]
        if len(args) > 2 and args[:2] == ["compute", "create"]:
            self.ids.add(args[2])
        return self.host(SILO, "--root", os.path.join(self.dir, "store"), *args, check=check)

    def document(self, name, networking):
        scratch = os.path.join(self.dir, name + "-scratch")
        os.makedirs(scratch, exist_ok=True)
        return {"Owner": "pytest", "SchemaVersion": {"Major": 2, "Minor": 1},
                "Container": {"GuestOs": {"HostName": "web1"}, "Networking": networking,
                              "Storage": {"Layers": [{"Id": "busybox", "Path": self.layer}], "Path": scratch}}}

    def leftovers(self):
        out = self.host("ip", "-o", "link").stdout
        veths = [line.split(":")[1].strip() for line in out.splitlines() if line.split(":")[1].strip()[:2] == "sv"]
        try:
            with open(os.path.join(self.netdir, "state.json")) as f:
                leases = list(json.load(f).get("endpoints", {}))
        except FileNotFoundError:
            leases = []
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f
                      if line.split()[4].startswith(self.state) and line.split()[4].endswith("/netns")]
        return veths, leases, mounts


@pytest.fixture
def netcompute(session_dir, cgroup_parent, rootfs_base):
    if not os.access(INIT, os.X_OK):
        pytest.fail(f"{INIT} not built")
    test_dir = tempfile.mkdtemp(prefix="cn", dir=session_dir)
    c = NetCompute(test_dir, rootfs_base, cgroup_parent)
    open(c.nsfile, "w").close()
    subprocess.run(["unshare", "--net=" + c.nsfile, "true"], check=True, timeout=10)
    c.host("ip", "link", "set", "lo", "up")
    try:
        yield c
    finally:
        for cid in sorted(c.ids):
            c.silo("compute", "delete", "--force", cid, check=False)
        deadline = time.time() + 5
        while any(c.leftovers()) and time.time() < deadline:
            time.sleep(0.05)
        left = c.leftovers()
        subprocess.run(["umount", "-l", c.nsfile], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", test_dir], timeout=60)
        assert not any(left), f"network leftovers (veths, leases, namespace mounts): {left}"


def serve(c, sid, text):
    """busybox httpd on port 80 of compute system sid, serving `text`."""
    c.silo("compute", "exec", "--detach", sid, {"CommandArgs": [
        "sh", "-c", f"mkdir -p /tmp/www && echo {text} > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]})


def fetch_until(c, port, expect, limit, pause):
    """GET / from the host's 127.0.0.1:port until it answers `expect` or `limit` seconds pass."""
    deadline = time.time() + limit
    while True:
        p = c.host("python3", "-c", HTTP_GET, "127.0.0.1", port, check=False)
        if p.stdout == expect or time.time() > deadline:
            return p
        time.sleep(pause)


def test_compute_system_on_a_network(netcompute):
    c = netcompute
    c.silo("network", "create", "--subnet", "10.213.5.0/24", "cnet")
    doc = c.document("sys1", {"Network": "cnet", "Ports": ["127.0.0.1:18700:80"]})
    c.silo("compute", "create", "sys1", doc)
    c.silo("compute", "start", "sys1")
    serve(c, "sys1", "hi-compute")
    p = fetch_until(c, "18700", "hi-compute\n", limit=10, pause=0.1)
    assert p.stdout == "hi-compute\n", p.stderr
    out = c.silo("compute", "exec", "sys1", {"CommandArgs": ["sh", "-c", "cat /etc/hosts; ip -o -4 addr"],
                                             "CreateStdOutPipe": True}).stdout
    assert "10.213.5.2\tweb1 sys1" in out and "10.213.5.2/24" in out
    info = json.loads(c.silo("network", "inspect", "cnet").stdout)
    info = info[0] if isinstance(info, list) else info
    assert [e["id"] for e in info["endpoints"]] == ["sys1"]
    c.silo("compute", "terminate", "sys1")
    c.silo("compute", "delete", "sys1")
    deadline = time.time() + 5
    while any(c.leftovers()) and time.time() < deadline:
        time.sleep(0.05)
    assert c.leftovers() == ([], [], [])
    c.silo("network", "rm", "cnet")


def test_compute_network_errors_leave_nothing(netcompute):
    c = netcompute
    p = c.silo("compute", "create", "bad1", c.document("bad1", {"Network": "nosuch"}), check=False)
    assert p.returncode != 0 and "network nosuch not found" in p.stderr, p.stderr
    p = c.silo("compute", "create", "bad2", c.document("bad2", {"Network": "x", "Namespace": "blue"}), check=False)
    assert p.returncode != 0 and "exclude each other" in p.stderr
    p = c.silo("compute", "create", "bad3", c.document("bad3", {"Ports": ["8080:80"]}), check=False)
    assert p.returncode != 0 and "needs a Network" in p.stderr
    p = c.silo("compute", "create", "bad4", c.document("bad4", {"Network": "bridge", "Ports": ["8080:80/sctp"]}),
               check=False)
    assert p.returncode != 0 and "Container.Networking.Ports[0]" in p.stderr and "sctp" in p.stderr
    assert not os.listdir(os.path.join(c.state, "systems")) if os.path.isdir(os.path.join(c.state, "systems")) \
        else True
    assert c.leftovers() == ([], [], [])


def test_virtual_machine_network_is_its_containers(netcompute):
    """A VirtualMachine on a network is the network of the containers it hosts, as a pod's sandbox:
    they share its NIC (and its loopback), and its published ports reach them."""
    from test_vm import INITRD, guest_kernel
    c = netcompute
    c.env.update(SILO_VM_KERNEL=guest_kernel(), SILO_VM_INITRD=INITRD)
    c.silo("network", "create", "--subnet", "10.213.6.0/24", "vmnet")
    c.silo("compute", "create", "pod", {"SchemaVersion": {"Major": 2, "Minor": 1}, "VirtualMachine": {
        "ComputeTopology": {"Memory": {"SizeInMB": 320}},
        "Networking": {"Network": "vmnet", "Ports": ["127.0.0.1:18702:80"]}}})
    c.silo("compute", "start", "pod")
    for name in ("web", "client"):
        doc = c.document(name, None)
        del doc["Container"]["Networking"]
        doc["HostingSystemId"] = "pod"
        c.silo("compute", "create", name, doc)
        c.silo("compute", "start", name)
    serve(c, "web", "hi-pod")
    p = fetch_until(c, "18702", "hi-pod\n", limit=20, pause=0.2)
    assert p.stdout == "hi-pod\n", p.stderr
    # The other container: the same stack, so the pod's loopback reaches the web server.
    out = c.silo("compute", "exec", "client", {"CommandArgs": ["sh", "-c",
                 "wget -q -O - http://127.0.0.1:80/; ip -o -4 addr show eth0; cat /etc/hosts"],
                 "CreateStdOutPipe": True}).stdout
    assert out.startswith("hi-pod\n") and "10.213.6.2/24" in out and "10.213.6.2" in out.split("eth0")[-1], out
    for sid in ("web", "client", "pod"):
        c.silo("compute", "terminate", sid, check=False)
    c.silo("compute", "delete", "web", "client", "pod")
    deadline = time.time() + 5
    while any(c.leftovers()) and time.time() < deadline:
        time.sleep(0.05)
    assert c.leftovers() == ([], [], [])
    c.silo("network", "rm", "vmnet")
