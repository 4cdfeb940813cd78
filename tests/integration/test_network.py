# SPDX-License-Identifier: Apache-2.0
"""Container networking (issue 5), driven through `silo network ...`.

Everything happens inside network namespaces the tests create: a "host" namespace plays the machine
(silo0, the nftables table, ip_forward all live there), "containers" are `unshare -n sleep` processes
started from it, and an "outside" namespace joined to the host by a veth plays a remote machine.
Deleting the namespaces removes everything; the tests also check that silo itself leaves nothing.
No traffic leaves these namespaces.
"""

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest

BUILD_DIR = os.environ.get("SILO_BUILD_DIR", "/work/main/build")
SILO = os.environ.get("SILO_BIN") or os.path.join(BUILD_DIR, "src/cli/silo")
PY = "/usr/bin/python3"
TIMEOUT = 20
OUTSIDE_HOST_IP = "192.168.251.1"   # the host's end of the link to the outside namespace
OUTSIDE_IP = "192.168.251.2"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

# A one-shot echo server: binds, says "ready" on stdout, answers one TCP connection and/or one UDP
# datagram by echoing the payload with a prefix, then exits.
SERVER = r"""
import socket, sys, select
tcp_port, udp_port, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
if tcp_port:
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", tcp_port)); t.listen(8); socks.append(t)
if udp_port:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", udp_port)); socks.append(u)
print("ready", flush=True)
pending = len(socks) * int(sys.argv[4])
while pending:
    r, _, _ = select.select(socks, [], [], 15)
    if not r:
        break
    for s in r:
        if s.type == socket.SOCK_STREAM:
            c, peer = s.accept(); data = c.recv(100); c.sendall(tag.encode() + b":" + data + b":" + peer[0].encode()); c.close()
        else:
            data, peer = s.recvfrom(100); s.sendto(tag.encode() + b":" + data + b":" + peer[0].encode(), peer)
        pending -= 1
"""

CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "tcp":
    s = socket.create_connection((host, port), timeout=float(sys.argv[4]))
    s.sendall(b"hi"); print(s.recv(200).decode())
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(float(sys.argv[4]))
    s.sendto(b"hi", (host, port)); print(s.recvfrom(200)[0].decode())
"""


def run(*args, check=True, timeout=TIMEOUT, env=None):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {p.stderr.strip()}")
    return p


class Lab:
    """A host namespace with silo's state dir, containers and an optional outside machine."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.host = f"silot-h-{tag}"
        self.outside = f"silot-o-{tag}"
        self.state = tempfile.mkdtemp(prefix="silo-net-state-")
        self.files = tempfile.mkdtemp(prefix="silo-net-files-")
        self.resolv = os.path.join(self.files, "host-resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("search example.test\nnameserver 127.0.0.53\nnameserver 10.9.8.7\noptions ndots:1\n")
        self.procs = []
        self.has_outside = False
        run("ip", "netns", "add", self.host)
        self.hx("ip", "link", "set", "lo", "up")

    # -- helpers --
    def hx(self, *args, check=True, timeout=TIMEOUT):
        """Runs a command in the host namespace."""
        return run("ip", "netns", "exec", self.host, *args, check=check, timeout=timeout)

    def silo(self, *args, check=True):
        env = dict(os.environ, SILO_NETWORK_DIR=self.state, SILO_RESOLV_CONF=self.resolv,
                   SILO_NETWORK_SUBNET="10.211.7.0/24")
        return run("ip", "netns", "exec", self.host, SILO, "network", *args, check=check, env=env)

    def container(self):
        """A process in a new network namespace (created from the host namespace); returns its pid."""
        p = subprocess.Popen(["ip", "netns", "exec", self.host, "unshare", "-n", "sleep", "300"])
        self.procs.append(p)
        deadline = time.time() + 5
        host_ns = os.stat(f"/run/netns/{self.host}").st_ino
        while time.time() < deadline:   # until unshare has exec'd sleep in its own namespace
            try:
                if (os.readlink(f"/proc/{p.pid}/exe").endswith("sleep")
                        and os.stat(f"/proc/{p.pid}/ns/net").st_ino != host_ns):
                    return p.pid
            except OSError:
                pass
            time.sleep(0.01)
        raise AssertionError("container process did not start")

    def connect(self, cid, pid, *args):
        out = self.silo("connect", "--id", cid, *args, str(pid)).stdout
        return json.loads(out)

    def cx(self, pid, *args, check=True, timeout=TIMEOUT):
        """Runs a command in a container's network namespace."""
        return run("nsenter", "-t", str(pid), "-n", *args, check=check, timeout=timeout)

    def serve(self, pid, tcp=0, udp=0, tag="srv", count=1, where="container"):
        """Starts the echo server in a container (pid), the host (pid=None) or the outside."""
        if where == "host":
            prefix = ["ip", "netns", "exec", self.host]
        elif where == "outside":
            prefix = ["ip", "netns", "exec", self.outside]
        else:
            prefix = ["nsenter", "-t", str(pid), "-n"]
        p = subprocess.Popen(prefix + [PY, "-c", SERVER, str(tcp), str(udp), tag, str(count)],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p

    def client(self, prefix, proto, host, port, timeout=5, check=True):
        return run(*prefix, PY, "-c", CLIENT, proto, host, str(port), str(timeout), check=check,
                   timeout=timeout + 10)

    def add_outside(self):
        """An outside machine: a namespace joined to the host by a veth, on its own subnet."""
        run("ip", "netns", "add", self.outside)
        self.has_outside = True
        self.hx("ip", "link", "add", "silot-out", "type", "veth", "peer", "name", "eth0", "netns", self.outside)
        self.hx("ip", "addr", "add", f"{OUTSIDE_HOST_IP}/30", "dev", "silot-out")
        self.hx("ip", "link", "set", "silot-out", "up")
        ox = ["ip", "netns", "exec", self.outside]
        run(*ox, "ip", "addr", "add", f"{OUTSIDE_IP}/30", "dev", "eth0")
        run(*ox, "ip", "link", "set", "eth0", "up")
        run(*ox, "ip", "link", "set", "lo", "up")
        return ox

    def links(self):
        out = self.hx("ip", "-o", "link", "show").stdout
        return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())

    def rules(self):
        p = self.hx("nft", "list", "table", "ip", "silo", check=False)
        return p.stdout if p.returncode == 0 else ""

    def endpoints(self):
        with open(os.path.join(self.state, "state.json")) as f:
            return json.load(f)["endpoints"]

    def assert_clean(self):
        """Nothing of any container left: no veth, no port rule, no lease."""
        assert [n for n in self.links() if n.startswith("sv")] == []
        assert "silo:" not in self.rules().replace("silo-net:", "")
        assert self.endpoints() == {}

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        run("ip", "netns", "del", self.host, check=False)
        if self.has_outside:
            run("ip", "netns", "del", self.outside, check=False)
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.files, ignore_errors=True)


@pytest.fixture
def lab():
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def nsx(pid):
    return ["nsenter", "-t", str(pid), "-n"]


def test_tcp_and_udp_between_containers(lab):
    a, b = lab.container(), lab.container()
    ia = lab.connect("ca", a, "--name", "alpha")
    ib = lab.connect("cb", b, "--name", "beta")
    assert ia["ip"] != ib["ip"] and ia["ip"].startswith("10.211.7.") and ib["ip"].startswith("10.211.7.")
    # Inside: the address, loopback up, a default route via the gateway, the bridge's MTU.
    addr = lab.cx(a, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert f"{ia['ip']}/24" in addr
    assert "UP" in lab.cx(a, "ip", "link", "show", "lo").stdout
    assert "default via 10.211.7.1 dev eth0" in lab.cx(a, "ip", "route").stdout
    assert "mtu 1500" in lab.cx(a, "ip", "link", "show", "eth0").stdout

    srv = lab.serve(b, tcp=5000, udp=5001, tag="beta")
    assert lab.client(nsx(a), "tcp", ib["ip"], 5000).stdout.strip() == f"beta:hi:{ia['ip']}"
    assert lab.client(nsx(a), "udp", ib["ip"], 5001).stdout.strip() == f"beta:hi:{ia['ip']}"
    srv.wait(timeout=10)

    lab.silo("disconnect", "ca", "cb")
    lab.assert_clean()
    # The namespace is left alone but loses its interface.
    assert "eth0" not in lab.cx(a, "ip", "link").stdout


def test_published_port_from_loopback_host_and_outside(lab):
    ox = lab.add_outside()
    c = lab.container()
    info = lab.connect("web", c, "-p", "8080:80", "-p", "9053:53/udp", "-p", "127.0.0.1:7000-7001:7100-7101")
    assert info["ports"] == ["0.0.0.0:8080:80/tcp", "0.0.0.0:9053:53/udp", "127.0.0.1:7000-7001:7100-7101/tcp"]
    host = ["ip", "netns", "exec", lab.host]

    neighbour = lab.container()
    lab.connect("neighbour", neighbour)
    srv = lab.serve(c, tcp=80, udp=53, tag="web", count=5)
    # Hairpin from the host's loopback, then the host's own address, then the outside machine.
    assert lab.client(host, "tcp", "127.0.0.1", 8080).stdout.startswith("web:hi:")
    assert lab.client(host, "tcp", OUTSIDE_HOST_IP, 8080).stdout.startswith("web:hi:")
    out = lab.client(ox, "tcp", OUTSIDE_HOST_IP, 8080).stdout.strip()
    assert out == f"web:hi:{OUTSIDE_IP}"      # DNAT only: the container sees the real client
    # The container reaches its own published port through the host's address (bridge hairpin).
    assert lab.client(nsx(c), "tcp", OUTSIDE_HOST_IP, 8080).stdout.startswith("web:hi:")
    # ... and so does another container on the same bridge.
    assert lab.client(nsx(neighbour), "tcp", OUTSIDE_HOST_IP, 8080).stdout.startswith("web:hi:")
    for who, addr in ((host, "127.0.0.1"), (host, OUTSIDE_HOST_IP), (ox, OUTSIDE_HOST_IP), (nsx(c), OUTSIDE_HOST_IP),
                      (nsx(neighbour), OUTSIDE_HOST_IP)):
        assert lab.client(who, "udp", addr, 9053).stdout.startswith("web:hi:")
    srv.wait(timeout=10)

    # A range bound to 127.0.0.1 maps port by port, and is not reachable from outside.
    srv = lab.serve(c, tcp=7101, tag="r")
    assert lab.client(host, "tcp", "127.0.0.1", 7001).stdout.startswith("r:hi:")
    assert lab.client(ox, "tcp", OUTSIDE_HOST_IP, 7001, timeout=1, check=False).returncode != 0
    srv.kill()

    # Outbound: the container reaches the outside machine masqueraded as the host.
    srv = lab.serve(None, tcp=6000, tag="out", where="outside")
    assert lab.client(nsx(c), "tcp", OUTSIDE_IP, 6000).stdout.strip() == f"out:hi:{OUTSIDE_HOST_IP}"
    srv.wait(timeout=10)

    lab.silo("disconnect", "web", "neighbour")
    lab.assert_clean()
    assert lab.client(host, "tcp", "127.0.0.1", 8080, timeout=1, check=False).returncode != 0


def test_container_mode_shares_namespace(lab):
    c = lab.container()
    owner = lab.connect("owner", c, "--name", "owner")
    shared = json.loads(lab.silo("connect", "--id", "sidecar", "--mode", "container:owner").stdout)
    assert shared["mode"] == "container" and shared["netns"] == owner["netns"]
    # Joining the returned namespace shows the owner's interface and address.
    out = run("nsenter", f"--net={shared['netns']}", "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert owner["ip"] in out
    # The sidecar goes without taking the owner's network along.
    lab.silo("disconnect", "sidecar")
    assert owner["ip"] in lab.cx(c, "ip", "-o", "-4", "addr").stdout
    lab.silo("disconnect", "owner")
    lab.assert_clean()
    p = lab.silo("connect", "--id", "x", "--mode", "container:nobody", check=False)
    assert p.returncode != 0 and "container nobody has no network namespace" in p.stderr


def test_none_and_host_modes(lab):
    c = lab.container()
    files = os.path.join(lab.files, "none")
    os.mkdir(files)
    lab.silo("connect", "--id", "lonely", "--mode", "none", "--name", "lonely", "--files", files, str(c))
    links = lab.cx(c, "ip", "-o", "link").stdout
    assert "lo:" in links and "UP" in links and "eth0" not in links
    with open(os.path.join(files, "hosts")) as f:
        assert "lonely" in f.read()
    lab.silo("disconnect", "lonely")
    hfiles = os.path.join(lab.files, "host")
    os.mkdir(hfiles)
    lab.silo("connect", "--id", "hosty", "--mode", "host", "--files", hfiles)
    with open(os.path.join(hfiles, "resolv.conf")) as f:
        assert "127.0.0.53" in f.read()   # host mode keeps the host's own resolver
    lab.silo("disconnect", "hosty")
    p = lab.silo("connect", "--id", "y", "--mode", "none", "-p", "80:80", str(c), check=False)
    assert p.returncode != 0 and "need bridge mode" in p.stderr
    lab.assert_clean()


def test_name_resolution_through_hosts_files(lab):
    a, b = lab.container(), lab.container()
    fa, fb = os.path.join(lab.files, "a"), os.path.join(lab.files, "b")
    os.mkdir(fa)
    os.mkdir(fb)
    ia = lab.connect("ca", a, "--name", "web", "--files", fa)
    ib = lab.connect("cb", b, "--name", "db", "--files", fb)
    inode = os.stat(os.path.join(fa, "hosts")).st_ino

    with open(os.path.join(fa, "hostname")) as f:
        assert f.read() == "web\n"
    with open(os.path.join(fa, "resolv.conf")) as f:
        resolv = f.read()
    assert "127.0.0.53" not in resolv and "nameserver 10.9.8.7" in resolv and "search example.test" in resolv

    # "web" resolves "db" through its bind-mounted /etc/hosts and talks to it by name.
    srv = lab.serve(b, tcp=5432, tag="db")
    script = ("mount --bind {h} /etc/hosts && getent hosts db && "
              "{py} -c '{client}' tcp db 5432 5").format(h=os.path.join(fa, "hosts"), py=PY,
                                                        client=CLIENT.replace("'", "\"").strip())
    out = run("nsenter", "-t", str(a), "-n", "unshare", "-m", "sh", "-c", script).stdout
    assert ib["ip"] in out and f"db:hi:{ia['ip']}" in out
    srv.wait(timeout=10)

    # A newcomer appears in the others' files (rewritten in place: bind mounts stay valid) ...
    c = lab.container()
    lab.connect("cc", c, "--name", "cache")
    with open(os.path.join(fa, "hosts")) as f:
        assert "\tcache\n" in f.read()
    assert os.stat(os.path.join(fa, "hosts")).st_ino == inode
    # ... and leaves them when it goes.
    lab.silo("disconnect", "cc")
    with open(os.path.join(fb, "hosts")) as f:
        text = f.read()
    assert "cache" not in text and "\tweb\n" in text and "\tdb\n" in text
    lab.silo("disconnect", "ca", "cb")
    lab.assert_clean()


def test_user_defined_network_is_isolated(lab):
    lab.silo("create", "--subnet", "10.212.9.0/24", "--mtu", "9000", "backend")
    ls = lab.silo("ls").stdout
    assert "backend" in ls and "10.212.9.0/24" in ls and "silo-backend" in ls
    d, u1, u2 = lab.container(), lab.container(), lab.container()
    idf = lab.connect("d", d)
    i1 = lab.connect("u1", u1, "--network", "backend", "--name", "one")
    lab.connect("u2", u2, "--network", "backend")
    assert i1["ip"].startswith("10.212.9.")
    assert "mtu 9000" in lab.cx(u1, "ip", "link", "show", "eth0").stdout   # the bridge's MTU
    inspect = json.loads(lab.silo("inspect", "backend").stdout)[0]
    assert sorted(e["id"] for e in inspect["endpoints"]) == ["u1", "u2"]

    srv = lab.serve(u1, tcp=7000, tag="one", count=1)
    # The default network cannot reach it; its own network can.
    assert lab.client(nsx(d), "tcp", i1["ip"], 7000, timeout=1, check=False).returncode != 0
    assert lab.client(nsx(u2), "tcp", i1["ip"], 7000).stdout.startswith("one:hi:")
    srv.wait(timeout=10)
    srv = lab.serve(d, tcp=7001, tag="d")
    assert lab.client(nsx(u1), "tcp", idf["ip"], 7001, timeout=1, check=False).returncode != 0
    srv.kill()

    p = lab.silo("rm", "backend", check=False)
    assert p.returncode != 0 and "has 2 connected containers" in p.stderr
    p = lab.silo("create", "--subnet", "10.212.9.128/25", "clash", check=False)
    assert p.returncode != 0 and "overlaps network backend" in p.stderr
    lab.silo("disconnect", "u1", "u2", "d")
    lab.silo("rm", "backend")
    assert "silo-backend" not in lab.links()
    assert "silo-net:backend" not in lab.rules()
    lab.silo("rm", "silo0")
    assert lab.rules() == "" and "silo0" not in lab.links()
    lab.assert_clean()


def test_connect_a_container_to_a_further_network(lab):
    lab.silo("create", "--subnet", "10.212.10.0/24", "back")
    fa, fb = os.path.join(lab.files, "a"), os.path.join(lab.files, "b")
    os.mkdir(fa)
    os.mkdir(fb)
    a, b = lab.container(), lab.container()
    ia = lab.connect("front", a, "--name", "front", "--files", fa)
    ib = lab.connect("db", b, "--name", "db", "--network", "back", "--files", fb)
    assert lab.client(nsx(a), "tcp", ib["ip"], 5432, timeout=1, check=False).returncode != 0   # isolated
    extra = json.loads(lab.silo("connect", "--id", "front", "--network", "back").stdout)
    assert extra["ifname"] == "eth1" and extra["ip"].startswith("10.212.10.")
    addrs = lab.cx(a, "ip", "-o", "-4", "addr").stdout
    assert f"{ia['ip']}/24" in addrs and f"{extra['ip']}/24" in addrs
    assert "default via 10.211.7.1 dev eth0" in lab.cx(a, "ip", "route").stdout   # the first network keeps it
    srv = lab.serve(b, tcp=5432, tag="db")
    assert lab.client(nsx(a), "tcp", ib["ip"], 5432).stdout.strip() == f"db:hi:{extra['ip']}"
    srv.wait(timeout=10)
    # Both hosts files know each other under their "back" addresses.
    with open(os.path.join(fb, "hosts")) as f:
        assert f"{extra['ip']}\tfront\n" in f.read()
    with open(os.path.join(fa, "hosts")) as f:
        assert f"{ib['ip']}\tdb\n" in f.read()
    inspect = json.loads(lab.silo("inspect", "back").stdout)[0]
    assert sorted(e["id"] for e in inspect["endpoints"]) == ["db", "front"]
    p = lab.silo("connect", "--id", "front", "--network", "back", check=False)
    assert p.returncode != 0 and "already connected to network back" in p.stderr
    p = lab.silo("disconnect", "--network", "silo0", "front", check=False)
    assert p.returncode != 0 and "first network" in p.stderr

    lab.silo("disconnect", "--network", "back", "front")
    assert "eth1" not in lab.cx(a, "ip", "link").stdout
    with open(os.path.join(fb, "hosts")) as f:
        assert "front" not in f.read()
    # Connect again, then a plain disconnect removes both veths.
    lab.silo("connect", "--id", "front", "--network", "back")
    assert len([n for n in lab.links() if n.startswith("sv")]) == 3
    lab.silo("disconnect", "front", "db")
    lab.silo("rm", "back")
    lab.assert_clean()


def test_hundred_cycles_leave_nothing(lab):
    c = lab.container()
    seen = set()
    start = time.monotonic()
    for i in range(100):
        info = lab.connect(f"cyc{i}", c, "-p", "8443:443", "-p", "9000-9001:9000-9001/udp")
        seen.add(info["ip"])
        lab.silo("disconnect", f"cyc{i}")
    elapsed = time.monotonic() - start
    # Freed addresses are not reused at once (the allocator moves on).
    assert len(seen) > 50
    lab.assert_clean()
    assert lab.links() == sorted(["lo", "silo0"])
    assert "eth0" not in lab.cx(c, "ip", "link").stdout
    assert elapsed < 60, f"100 cycles took {elapsed:.1f}s"


def test_concurrent_connects_get_distinct_addresses(lab):
    """The state lock serialises concurrent CLI processes: no address or port is handed out twice."""
    pids = [lab.container() for _ in range(8)]
    env = dict(os.environ, SILO_NETWORK_DIR=lab.state, SILO_NETWORK_SUBNET="10.211.7.0/24")
    procs = [subprocess.Popen(["ip", "netns", "exec", lab.host, SILO, "network", "connect", "--id", f"par{i}",
                               "-p", "7777:80", str(pid)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for i, pid in enumerate(pids)]
    results = [(p.wait(timeout=TIMEOUT), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    ok = [json.loads(out) for rc, out, _ in results if rc == 0]
    # Exactly one gets the port, everyone else a clear refusal, and nothing is left of them.
    assert len(ok) == 1
    assert all("already published" in err for rc, _, err in results if rc != 0)
    others = [pid for i, pid in enumerate(pids) if f"par{i}" != ok[0]["id"]]
    results = [lab.connect(f"more{i}", pid) for i, pid in enumerate(others)]
    ips = [r["ip"] for r in results] + [ok[0]["ip"]]
    assert len(set(ips)) == len(ips)
    # A second connect of the same namespace is refused (its eth0 exists) and rolled back.
    p = lab.silo("connect", "--id", "again", str(others[0]), check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    lab.silo("disconnect", ok[0]["id"], *[f"more{i}" for i in range(len(others))])
    lab.assert_clean()


def test_conflicting_port_is_refused(lab):
    a, b = lab.container(), lab.container()
    lab.connect("first", a, "-p", "8080:80", "-p", "5353:53/udp")
    p = lab.silo("connect", "--id", "second", "-p", "8080:8000", str(b), check=False)
    assert p.returncode != 0
    assert "port 0.0.0.0:8080:8000/tcp is already published: 0.0.0.0:8080:80/tcp by container first" in p.stderr
    p = lab.silo("connect", "--id", "second", "-p", "127.0.0.1:8000-8100:8000-8100", str(b), check=False)
    assert p.returncode != 0 and "already published" in p.stderr
    # Same number, other protocol, is fine.
    lab.connect("third", b, "-p", "8080:80/udp")
    # A host process listening on the port is detected too.
    srv = lab.serve(None, tcp=9999, tag="h", where="host")
    c = lab.container()
    p = lab.silo("connect", "--id", "fourth", "-p", "9999:80", str(c), check=False)
    assert p.returncode != 0 and "in use on the host" in p.stderr
    srv.kill()
    p = lab.silo("connect", "--id", "fifth", "-p", "10.99.99.99:8088:80", str(c), check=False)
    assert p.returncode != 0 and "not one of this host's" in p.stderr
    # Refused attaches leave nothing; bad specifications are rejected with the reason.
    assert sorted(lab.endpoints()) == ["first", "third"]
    for spec, msg in [("80-81", "a random host port needs one container port"), ("70000:80", "outside 1-65535"),
                      ("80:80/icmp", "protocol 'icmp'"), ("x:80:80", "not an IPv4 address")]:
        p = lab.silo("connect", "--id", "bad", "-p", spec, str(c), check=False)
        assert p.returncode != 0 and msg in p.stderr, p.stderr
    lab.silo("disconnect", "first", "third")
    lab.assert_clean()


def test_reconcile_after_crash(lab):
    a, b = lab.container(), lab.container()
    lab.connect("dead", a, "-p", "8081:80")
    lab.connect("alive", b, "-p", "8082:80")
    # The container dies without a disconnect; a crash also left a stray veth and a stray rule.
    proc = next(p for p in lab.procs if p.pid == a)
    proc.kill()
    proc.wait()
    lab.hx("ip", "link", "add", "sv00000000ff", "type", "veth", "peer", "name", "svpeer0")
    lab.hx("nft", "add", "rule", "ip", "silo", "prerouting", "tcp", "dport", "1234", "dnat", "to",
           "10.211.7.99", "comment", '"silo:ghost"')
    deadline = time.time() + 5
    while time.time() < deadline:   # the kernel destroys the dead namespace asynchronously
        out = lab.silo("reconcile").stdout
        if "dead" not in lab.endpoints():
            break
        time.sleep(0.05)
    assert sorted(lab.endpoints()) == ["alive"]
    assert "sv00000000ff" not in lab.links()
    rules = lab.rules()
    assert "ghost" not in rules and "silo:dead" not in rules and "silo:alive" in rules
    assert "removed" in out
    # The survivor still works, and a flushed ruleset is restored by reconcile.
    lab.hx("nft", "flush", "ruleset")
    lab.silo("reconcile")
    rules = lab.rules()
    assert "silo:alive" in rules and "silo-net:silo0" in rules
    lab.silo("disconnect", "alive")
    lab.assert_clean()


def test_runtime_bundle_with_network_hooks(rt, bundle, host_dir, lab):
    """silo-runtime runs a bundle whose createRuntime hook connects it and poststop disconnects it.

    The hooks run `silo network oci-hook` inside the lab's host namespace, so the bridge and rules
    live there; the runtime gives the container its own network namespace as usual."""
    files = host_dir({"hosts": "", "hostname": "", "resolv.conf": ""})
    for name in ("hosts", "hostname", "resolv.conf"):
        bundle.add_mount(f"/etc/{name}", "bind", os.path.join(files, name), ["bind", "ro"])
    env = [f"SILO_NETWORK_DIR={lab.state}", f"SILO_RESOLV_CONF={lab.resolv}", "SILO_NETWORK_SUBNET=10.211.7.0/24",
           "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    hook = ["ip", "netns", "exec", lab.host, SILO, "network", "oci-hook"]
    bundle.config["hooks"] = {
        "createRuntime": [{"path": "/usr/bin/ip", "args": hook + ["attach", "--name", "webby", "-p", "8080:80",
                                                                  "--files", files], "env": env}],
        "poststop": [{"path": "/usr/bin/ip", "args": hook + ["detach"], "env": env}],
    }
    bundle.args("/bin/sh", "-c", "echo from-bundle | nc -l -p 80")
    rt.start_container(bundle)
    ep = lab.endpoints()[bundle.cid]
    assert ep["name"] == "webby" and ep["ports"] == ["0.0.0.0:8080:80/tcp"]
    out = rt.exec(bundle.cid, "/bin/cat", "/etc/hosts", "/etc/hostname")
    out.check()
    assert f"{ep['ip']}\twebby" in out.stdout and "webby\n" in out.stdout
    host = ["ip", "netns", "exec", lab.host]
    deadline = time.time() + 10
    while True:   # until nc listens
        p = lab.client(host, "tcp", "127.0.0.1", 8080, timeout=2, check=False)
        if p.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert "from-bundle" in p.stdout
    rt.kill(bundle.cid, 9)
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()
    lab.assert_clean()
