# SPDX-License-Identifier: Apache-2.0
"""Docker networking through silod with the real docker CLI.

silod runs inside a network namespace this module creates (it plays the
host): its bridges, veths, nftables table and published ports exist only
there, and every packet stays in it.  The network state directory is private
too (SILO_NETWORK_DIR).  Teardown fails the module if a veth, a namespace
mount, a rule or a lease is left.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

import daemon_support
from daemon_support import Daemon, cgroup_dirs, monitor_pids, mounts_under, write_docker_archive

sys_images = daemon_support.silo_images


class NetDaemon(Daemon):
    """A Daemon whose silod lives in a network namespace of the test's own
    (Daemon.use_private_netns), with a view of what silod holds there."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.use_private_netns()
        self.netdir = self.env["SILO_NETWORK_DIR"]

    def host(self, *cmd, check=True, timeout=20, input=None):
        """A command in silod's ("the host's") network namespace."""
        p = subprocess.run([*self.in_netns(), *cmd], capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} -> {p.returncode}: {p.stdout} {p.stderr}")
        return p

    # ---- what silod holds ----
    def veths(self):
        out = self.host("ip", "-o", "link", "show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                if line.split(":")[1].strip().startswith("sv")]

    def netns_mounts(self):
        return mounts_under(os.path.join(self.state, "net"))

    def rules(self):
        p = self.host("nft", "-j", "list", "table", "ip", "silo", check=False)
        if p.returncode != 0:
            return []
        found = []
        for item in json.loads(p.stdout).get("nftables", []):
            rule = item.get("rule")
            if rule and rule.get("comment", "").startswith("silo:"):
                found.append(rule["comment"])
        return found

    def leases(self):
        try:
            with open(os.path.join(self.netdir, "state.json")) as f:
                return list(json.load(f).get("endpoints", {}))
        except FileNotFoundError:
            return []

    def net_dirs(self):
        d = os.path.join(self.state, "net")
        return os.listdir(d) if os.path.isdir(d) else []

    def held(self):
        return {"veths": self.veths(), "netns": self.netns_mounts(), "rules": self.rules(),
                "leases": self.leases(), "dirs": self.net_dirs()}

    def assert_clean(self, timeout=5):
        """Nothing of any container is left (the poller releases within ms)."""
        deadline = time.time() + timeout
        while True:
            held = self.held()
            if not any(held.values()):
                return
            if time.time() > deadline:
                raise AssertionError(f"network leftovers: {held}")
            time.sleep(0.05)

    def inspect(self, ref):
        return json.loads(self.docker("inspect", ref).stdout)[0]


@pytest.fixture(scope="module")
def netd():
    if not daemon_support.DOCKER:
        pytest.fail("the docker CLI is required for the daemon tests")
    if not os.path.exists(daemon_support.SILOD):
        pytest.fail(f"{daemon_support.SILOD} is not built")
    tmp = tempfile.mkdtemp(prefix="silod-net-test-")
    d = NetDaemon(tmp)
    nsfile = d.nsfile
    leaks = []
    try:
        d.start()
        rootfs = os.path.join(tmp, "busybox-rootfs")
        os.makedirs(rootfs)
        sys_images.build_busybox_rootfs(rootfs)
        tar = write_docker_archive(rootfs, os.path.join(tmp, "busybox.tar"), "busybox:latest")
        shutil.rmtree(rootfs)
        d.docker("load", "-i", tar, timeout=60)
        yield d
    finally:
        try:
            if d.proc is None:
                d.start()
            status, body, _ = d.api("GET", "/containers/json?all=1")
            for c in json.loads(body) if status == 200 else []:
                d.api("DELETE", f"/containers/{c['Id']}?force=1", timeout=30)
            try:
                d.assert_clean()
            except AssertionError as e:
                leaks.append(str(e))
            d.docker("network", "prune", "-f", check=False)
        except Exception as e:  # noqa: BLE001 - teardown must go on
            leaks.append(f"cleanup through the API failed: {e}")
        rc = d.stop()
        if rc != 0:
            leaks.append(f"silod exited {rc} on SIGTERM: {open(d.log).read()[-2000:]}")
        deadline = time.time() + 10
        while monitor_pids(d.state) and time.time() < deadline:
            time.sleep(0.1)
        for pid in monitor_pids(d.state):
            leaks.append(f"monitor process {pid} left running")
            os.kill(pid, signal.SIGKILL)
        for m in reversed(mounts_under(tmp)):
            if m == nsfile:
                continue
            leaks.append(f"mount left: {m}")
            subprocess.run(["umount", "-l", m], check=False)
        d.release_netns()
        for cg in cgroup_dirs(d.cgroup_parent):
            for s in os.listdir(cg):
                if os.path.isdir(os.path.join(cg, s)):
                    leaks.append(f"container cgroup left: {cg}/{s}")
                    try:
                        os.rmdir(os.path.join(cg, s))
                    except OSError:
                        pass
            try:
                os.rmdir(cg)
            except OSError as e:
                leaks.append(f"cannot remove {cg}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
    assert not leaks, "\n".join(leaks)


@pytest.fixture(autouse=True)
def fresh(netd):
    """A failed test must not leave its containers to the next one."""
    yield
    status, body, _ = netd.api("GET", "/containers/json?all=1")
    for c in json.loads(body) if status == 200 else []:
        netd.api("DELETE", f"/containers/{c['Id']}?force=1", timeout=30)
    netd.docker("network", "prune", "-f", check=False)


def http_get_in(netd, url, *net):
    """GET url from a new container (busybox nc: this busybox's wget crashes)."""
    host, port = url.split("/")[2].rsplit(":", 1) if url.count(":") > 1 else (url.split("/")[2], "80")
    return netd.docker("run", "--rm", *net, "busybox", "sh", "-c",
                       f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port} | tail -n 1", check=False)


def name():
    return "n" + uuid.uuid4().hex[:8]


def retry(fn, timeout=10, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            result = fn()
            if result:
                return result
        except AssertionError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached: {last}")


def test_default_bridge_address_files_and_inspect(netd):
    c = name()
    netd.docker("run", "-d", "--name", c, "busybox", "sleep", "60")
    info = netd.inspect(c)
    ns = info["NetworkSettings"]
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    assert ns["IPAddress"].startswith("10.211.") and ns["Gateway"].endswith(".1")
    assert ns["MacAddress"].startswith("02:42:")
    br = ns["Networks"]["bridge"]
    assert br["IPAddress"] == ns["IPAddress"] and br["NetworkID"] and br["EndpointID"]
    # Inside: eth0 with that address, a default route, lo up; the files silod wrote.
    out = netd.docker("exec", c, "ip", "-o", "-4", "addr").stdout
    assert ns["IPAddress"] in out and " lo " in out
    assert "default via " + ns["Gateway"] in netd.docker("exec", c, "ip", "route").stdout
    hosts = netd.docker("exec", c, "cat", "/etc/hosts").stdout
    assert f"{ns['IPAddress']}\t{c[:12]}" in hosts or ns["IPAddress"] in hosts
    assert netd.docker("exec", c, "hostname").stdout.strip() == info["Config"]["Hostname"] or \
        netd.docker("exec", c, "hostname").stdout.strip() == info["Id"][:12]
    # The gateway (the host) answers.
    netd.docker("exec", c, "ping", "-c", "1", "-W", "2", ns["Gateway"])
    # Its namespace is silod's bind mount; released when the container stops.
    assert any(info["Id"] in m for m in netd.netns_mounts())
    assert len(netd.veths()) == 1
    netd.docker("rm", "-f", c)
    netd.assert_clean()


def test_hostname_add_host_dns(netd):
    out = netd.docker("run", "--rm", "--hostname", "web1", "--add-host", "db.example:10.1.2.3",
                      "--dns", "10.9.9.9", "--dns-search", "corp.example", "busybox", "sh", "-c",
                      "hostname; cat /etc/hostname; cat /etc/hosts; echo ---; cat /etc/resolv.conf").stdout
    lines = out.splitlines()
    assert lines[0] == "web1" and lines[1] == "web1"
    hosts, resolv = out.split("---")
    assert "10.1.2.3\tdb.example" in hosts and "web1" in hosts
    assert "nameserver 10.9.9.9" in resolv and "search corp.example" in resolv
    assert resolv.count("nameserver") == 1
    netd.assert_clean()


def test_user_network_names_tcp_udp_alias(netd):
    net = name()
    netd.docker("network", "create", net)
    srv = name()
    netd.docker("run", "-d", "--name", srv, "--network", net, "--network-alias", "webalias", "busybox", "sh", "-c",
                "while true; do echo hello-tcp | nc -l -p 7000; done")
    # TCP by name and by alias from another container on the network.
    for target in (srv, "webalias"):
        out = retry(lambda: netd.docker("run", "--rm", "--network", net, "busybox", "nc", "-w", "3", target, "7000",
                                        check=False).stdout.strip(), what=f"tcp to {target}")
        assert out == "hello-tcp"
    # UDP by name: syslogd in a client container sends to srv:5514, where a
    # receiver listens inside srv's network namespace.
    pid = netd.inspect(srv)["State"]["Pid"]
    recv = subprocess.Popen(
        ["nsenter", "--net=/proc/%d/ns/net" % pid, "python3", "-c",
         "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5514)); "
         "print('ready', flush=True); s.settimeout(15); print(s.recv(2000).decode(errors='replace'), flush=True)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "ready"
        netd.docker("run", "--rm", "--network", net, "busybox", "sh", "-c",
                    f"syslogd -R {srv}:5514 && for i in 1 2 3; do logger -t silotest hello-udp; sleep 0.3; done")
        out, _ = recv.communicate(timeout=20)
    finally:
        recv.kill()
    assert "hello-udp" in out
    # /etc/hosts follows containers as they come and go.
    other = name()
    netd.docker("run", "-d", "--name", other, "--network", net, "busybox", "sleep", "60")
    hosts = netd.docker("exec", srv, "cat", "/etc/hosts").stdout
    assert other in hosts
    netd.docker("rm", "-f", other)
    retry(lambda: other not in netd.docker("exec", srv, "cat", "/etc/hosts").stdout, what="hosts update")
    info = json.loads(netd.docker("network", "inspect", net).stdout)[0]
    assert [c["Name"] for c in info["Containers"].values()] == [srv]
    netd.docker("rm", "-f", srv)
    netd.docker("network", "rm", net)
    netd.assert_clean()


HTTP_GET = """
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=3)
c.request("GET", "/")
print(c.getresponse().read().decode(), end="")
"""


def wget_host(netd, url):
    """GET url from the host's namespace (python: Debian's static busybox wget
    crashes outside a container)."""
    hostport = url.split("/")[2]
    host, port = hostport.rsplit(":", 1)
    return netd.host("python3", "-c", HTTP_GET, host, port, check=False)


HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-http > /www/index.html && exec httpd -f -p 80 -h /www"]


def test_published_port_from_host_loopback(netd):
    c = name()
    netd.docker("run", "-d", "--name", c, "-p", "127.0.0.1:18080:80", "-p", "18081:81/udp", "busybox", *HTTPD)
    out = retry(lambda: wget_host(netd, "http://127.0.0.1:18080/").stdout, what="published port")
    assert out.strip() == "hello-http"
    port = netd.docker("port", c).stdout
    assert "80/tcp -> 127.0.0.1:18080" in port and "81/udp -> 0.0.0.0:18081" in port
    ps = netd.docker("ps", "--format", "{{.Ports}}", "--filter", "name=" + c).stdout
    assert "127.0.0.1:18080->80/tcp" in ps
    rules = netd.rules()
    assert rules and all(r == "silo:" + netd.inspect(c)["Id"] for r in rules)
    netd.docker("rm", "-f", c)
    netd.assert_clean()
    assert wget_host(netd, "http://127.0.0.1:18080/").returncode != 0


def test_random_host_ports(netd):
    c = name()
    netd.docker("run", "-d", "--name", c, "-P", "--expose", "80", "-p", "81", "busybox", *HTTPD)
    port80 = netd.docker("port", c, "80").stdout.split()[0]
    port81 = netd.docker("port", c, "81").stdout.split()[0]
    host_port = int(port80.rsplit(":", 1)[1])
    assert port80.startswith("0.0.0.0:") and 1024 < host_port <= 65535
    assert int(port81.rsplit(":", 1)[1]) != host_port
    out = retry(lambda: wget_host(netd, f"http://127.0.0.1:{host_port}/").stdout, what="random port")
    assert out.strip() == "hello-http"
    ports = netd.inspect(c)["NetworkSettings"]["Ports"]
    assert ports["80/tcp"][0]["HostPort"] == str(host_port)
    netd.docker("rm", "-f", c)
    netd.assert_clean()


def test_container_mode_shares_namespace(netd):
    owner = name()
    netd.docker("run", "-d", "--name", owner, "busybox", "sleep", "60")
    ip = netd.inspect(owner)["NetworkSettings"]["IPAddress"]
    out = netd.docker("run", "--rm", "--network", "container:" + owner, "busybox", "ip", "-o", "-4", "addr").stdout
    assert ip in out
    a = netd.docker("exec", owner, "readlink", "/proc/self/ns/net").stdout.strip()
    b = netd.docker("run", "--rm", "--network", "container:" + owner, "busybox", "readlink",
                    "/proc/self/ns/net").stdout.strip()
    assert a == b
    p = netd.docker("run", "--rm", "--network", "container:nosuchcontainer", "busybox", "true", check=False)
    assert p.returncode != 0 and "nosuchcontainer" in p.stderr
    netd.docker("rm", "-f", owner)
    netd.assert_clean()


def test_none_and_host_modes(netd):
    out = netd.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    links = [line.split(":")[1].strip() for line in out.splitlines()]
    assert links == ["lo"] and "UP" in out
    assert netd.inspect  # host mode: the container sees silod's namespace (the test's "host")
    host_links = netd.host("ip", "-o", "link").stdout.count("\n")
    out = netd.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert out.count("\n") == host_links
    netd.assert_clean()


def state_file_snapshot(netd):
    path = os.path.join(netd.netdir, "state.json")
    try:
        st = os.stat(path)
        with open(path) as f:
            return (st.st_mtime_ns, st.st_ino, f.read())
    except FileNotFoundError:
        return None


def test_none_mode_files_without_lease(netd):
    netd.assert_clean()
    before = state_file_snapshot(netd)
    c = name()
    cid = netd.docker("run", "-d", "--name", c, "--network", "none", "--hostname", "quiet1",
                      "--add-host", "db.example:10.1.2.3", "--dns", "10.9.9.9", "--dns-option", "ndots:2",
                      "busybox", "sleep", "60").stdout.strip()
    # Only lo, and up (the runtime's fresh namespace).
    out = netd.docker("exec", c, "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"] and "UP" in out
    netd.docker("exec", c, "ping", "-c", "1", "-W", "2", "127.0.0.1")
    hosts = netd.docker("exec", c, "cat", "/etc/hosts").stdout
    assert "127.0.0.1\tlocalhost" in hosts
    assert "127.0.1.1\tquiet1 " + c in hosts and "10.1.2.3\tdb.example" in hosts
    assert netd.docker("exec", c, "hostname").stdout.strip() == "quiet1"
    resolv = netd.docker("exec", c, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.9.9.9" in resolv and resolv.count("nameserver") == 1 and "options ndots:2" in resolv
    # No lease, no namespace file, the state file untouched.
    assert cid not in netd.leases() and not netd.netns_mounts()
    assert state_file_snapshot(netd) == before
    assert netd.net_dirs() == [cid]
    info = netd.inspect(c)
    ns = info["NetworkSettings"]
    assert list(ns["Networks"]) == ["none"] and ns["IPAddress"] == "" and ns["Gateway"] == ""
    assert ns["Networks"]["none"]["IPAddress"] == "" and ns["Networks"]["none"]["NetworkID"]
    assert ns["SandboxID"] == cid and ns["SandboxKey"] == f"/proc/{info['State']['Pid']}/ns/net"
    assert info["HostsPath"] == os.path.join(netd.state, "net", cid, "hosts")
    with open(info["ResolvConfPath"]) as f:
        assert f.read() == resolv
    listed = [x for x in json.loads(netd.api("GET", "/containers/json")[1]) if x["Id"] == cid][0]
    assert list(listed["NetworkSettings"]["Networks"]) == ["none"]
    assert listed["HostConfig"]["NetworkMode"] == "none"
    # A container joining its namespace sees the same lo and files.
    out = netd.docker("run", "--rm", "--network", "container:" + c, "busybox", "sh", "-c",
                      "ip -o link; cat /etc/hosts").stdout
    assert out.count(": lo:") == 1 and out.count("link/") == 1 and "10.1.2.3\tdb.example" in out
    # Stopping releases it without the state file; a restart writes it again.
    netd.docker("stop", "-t", "0", c)
    netd.assert_clean()
    netd.docker("start", c)
    assert "10.1.2.3\tdb.example" in netd.docker("exec", c, "cat", "/etc/hosts").stdout
    netd.docker("rm", "-f", c)
    netd.assert_clean()
    assert state_file_snapshot(netd) == before


def test_user_network_isolated_from_default(netd):
    net = name()
    netd.docker("network", "create", net)
    web = name()
    netd.docker("run", "-d", "--name", web, "busybox", *HTTPD)
    ip = netd.inspect(web)["NetworkSettings"]["IPAddress"]
    # From the default network it is reachable, from the user network not.
    out = retry(lambda: http_get_in(netd, f"http://{ip}/").stdout, what="same network")
    assert out.strip() == "hello-http"
    p = http_get_in(netd, f"http://{ip}/", "--network", net)
    assert "hello-http" not in p.stdout
    # ... nor can it ping it.
    p = netd.docker("run", "--rm", "--network", net, "busybox", "ping", "-c", "1", "-W", "1", ip, check=False)
    assert p.returncode != 0
    netd.docker("rm", "-f", web)
    netd.docker("network", "rm", net)
    netd.assert_clean()


def test_conflicting_port_clear_error_nothing_left(netd):
    a = name()
    netd.docker("run", "-d", "--name", a, "-p", "18090:80", "busybox", "sleep", "60")
    before = netd.held()
    b = name()
    p = netd.docker("run", "-d", "--name", b, "-p", "18090:80", "busybox", "sleep", "60", check=False)
    assert p.returncode != 0
    assert "18090" in p.stderr and "already published" in p.stderr, p.stderr
    time.sleep(0.2)
    assert netd.held() == before
    netd.docker("rm", "-f", a, b)
    netd.assert_clean()
    # Malformed bindings are refused at create, through the raw API as well.
    status, body, _ = netd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"PortBindings": {"80/sctp": [{"HostPort": "1"}]}}})
    assert status == 400 and b"sctp" in body
    status, body, _ = netd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}})
    assert status == 400 and b"HostPort" in body
    status, body, _ = netd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"NetworkMode": "nosuchnet"}})
    assert status == 400 and b"nosuchnet" in body   # not 404: the CLI would try to pull the image
    status, body, _ = netd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"Dns": "10.0.0.1"}})
    assert status == 400 and b"HostConfig.Dns" in body


def test_run_rm_cycles_leave_nothing(netd):
    net = name()
    netd.docker("network", "create", net)
    for i in range(20):
        extra = ["--network", net] if i % 2 else []
        netd.docker("run", "--rm", *extra, "-p", f"127.0.0.1:{19000 + i}:80", "busybox", "true")
    netd.docker("network", "rm", net)
    netd.assert_clean()
    # A stopped container holds nothing either; starting it again re-attaches.
    c = name()
    netd.docker("run", "-d", "--name", c, "-p", "18095:80", "busybox", "sleep", "60")
    netd.docker("stop", "-t", "0", c)
    netd.assert_clean()
    netd.docker("start", c)
    assert netd.inspect(c)["NetworkSettings"]["IPAddress"]
    assert len(netd.veths()) == 1 and len(netd.rules()) > 0
    # A restart re-attaches at once, while the kernel may still be deleting
    # the previous veth of the same name with its namespace.
    for _ in range(3):
        netd.docker("restart", "-t", "0", c)
        ip = netd.inspect(c)["NetworkSettings"]["IPAddress"]
        netd.docker("exec", c, "ping", "-c", "1", "-W", "2", ip.rsplit(".", 1)[0] + ".1")
    netd.docker("rm", "-f", c)
    netd.assert_clean()


def test_network_create_ls_inspect_connect_rm(netd):
    net = name()
    out = netd.docker("network", "create", "--subnet", "10.250.7.0/24", "--gateway", "10.250.7.1",
                      "--label", "team=silo", net).stdout.strip()
    assert len(out) == 64
    ls = netd.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.split("\n")
    assert f"{net} bridge" in ls and "bridge bridge" in ls and "host host" in ls and "none null" in ls
    assert net in netd.docker("network", "ls", "-q", "--filter", "name=" + net, "--no-trunc").stdout or \
        out in netd.docker("network", "ls", "-q", "--filter", "name=" + net, "--no-trunc").stdout
    info = json.loads(netd.docker("network", "inspect", net).stdout)[0]
    assert info["IPAM"]["Config"][0]["Subnet"] == "10.250.7.0/24"
    assert info["Labels"] == {"team": "silo"} and info["Driver"] == "bridge" and info["Id"] == out
    assert json.loads(netd.docker("network", "inspect", out[:12]).stdout)[0]["Name"] == net
    p = netd.docker("network", "create", net, check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    p = netd.docker("network", "create", "--subnet", "10.250.7.0/25", name(), check=False)
    assert p.returncode != 0 and "overlaps" in p.stderr
    p = netd.docker("network", "rm", "bridge", check=False)
    assert p.returncode != 0 and "pre-defined" in p.stderr
    # connect / disconnect a running container
    c = name()
    netd.docker("run", "-d", "--name", c, "busybox", "sleep", "60")
    netd.docker("network", "connect", net, c)
    assert "10.250.7." in netd.docker("exec", c, "ip", "-o", "-4", "addr", "show", "eth1").stdout
    info = json.loads(netd.docker("network", "inspect", net).stdout)[0]
    cid = netd.inspect(c)["Id"]
    assert info["Containers"][cid]["IPv4Address"].startswith("10.250.7.")
    nets = netd.inspect(c)["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", net} and nets[net]["IPAddress"].startswith("10.250.7.")
    p = netd.docker("network", "rm", net, check=False)
    assert p.returncode != 0
    netd.docker("network", "disconnect", net, c)
    assert netd.docker("exec", c, "ip", "link", "show", "eth1", check=False).returncode != 0
    netd.docker("network", "rm", net)
    assert net not in netd.docker("network", "ls").stdout
    p = netd.docker("network", "inspect", net, check=False)
    assert p.returncode != 0
    # prune removes unused user networks only
    unused = name()
    netd.docker("network", "create", unused)
    netd.docker("network", "prune", "-f")
    assert unused not in netd.docker("network", "ls").stdout
    netd.docker("rm", "-f", c)
    netd.assert_clean()


def test_kill9_restart_reconciles(netd):
    keep, dies = name(), name()
    netd.docker("run", "-d", "--name", keep, "-p", "18100:80", "busybox", *HTTPD)
    netd.docker("run", "-d", "--name", dies, "-p", "18101:80", "busybox", "sleep", "600")
    dies_id = netd.inspect(dies)["Id"]
    dies_pid = netd.inspect(dies)["State"]["Pid"]
    netd.stop(signal.SIGKILL)
    # While silod is down one container dies; its network must go at restart.
    os.kill(dies_pid, signal.SIGKILL)
    time.sleep(0.3)
    netd.start()
    held = netd.held()
    assert dies_id not in held["leases"] and not any(dies_id in m for m in held["netns"])
    assert not any(r == "silo:" + dies_id for r in held["rules"])
    assert len(held["veths"]) == 1
    out = retry(lambda: wget_host(netd, "http://127.0.0.1:18100/").stdout, what="kept container's port")
    assert out.strip() == "hello-http"
    netd.docker("rm", "-f", keep, dies)
    netd.assert_clean()


def run_many(netd, count, *opts):
    ids = []
    for i in range(count):
        ids.append(netd.docker("run", "-d", *opts, "busybox", "sleep", "600").stdout.strip())
    return ids


def test_kill9_right_after_rm_leaves_no_lease(netd):
    ids = run_many(netd, 1, "-p", "18110-18111:80-81") + run_many(netd, 7)
    assert set(ids) <= set(netd.leases())
    # The releases run on silod's poller after rm answered: kill it at once.
    netd.docker("rm", "-f", *ids[:4], timeout=60)
    # ... and while removals are in flight.
    def delete(cid):
        try:
            netd.api("DELETE", f"/containers/{cid}?force=1", timeout=5)
        except (OSError, http.client.HTTPException):
            pass    # silod was killed under it
    threads = [threading.Thread(target=delete, args=(i,), daemon=True) for i in ids[4:]]
    for t in threads:
        t.start()
    time.sleep(0.02)
    netd.stop(signal.SIGKILL)
    for t in threads:
        t.join(10)
    netd.start()
    running = {c["Id"] for c in json.loads(netd.api("GET", "/containers/json")[1])}
    held = netd.held()
    assert set(held["leases"]) <= running, held
    assert len(held["veths"]) == len(running) and len(held["dirs"]) == len(running), held
    netd.docker("rm", "-f", *ids, check=False, timeout=60)
    netd.assert_clean()


def test_sigterm_releases_outstanding_work(netd):
    ids = run_many(netd, 8)
    netd.docker("rm", "-f", *ids, timeout=60)
    assert netd.stop() == 0
    # Read with silod down: the shutdown released what the poller had not.
    held = {"leases": netd.leases(), "netns": netd.netns_mounts(), "dirs": netd.net_dirs()}
    netd.start()
    assert not set(ids) & set(held["leases"]) and not held["netns"] and not held["dirs"], held
    netd.assert_clean()


def test_restart_sweeps_foreign_leases_whose_namespace_is_gone(netd):
    """Endpoints of another owner (the CLI, a daemon on another state
    directory) stay while their namespace does; one whose namespace file or
    veth is gone is a lease nobody will release."""
    keep = name()
    netd.docker("run", "-d", "--name", keep, "busybox", "sleep", "600")
    keep_id = netd.inspect(keep)["Id"]
    netd.stop()
    path = os.path.join(netd.netdir, "state.json")
    with open(path) as f:
        state = json.load(f)
    gone = "/nonexistent-silod-state/net/" + "a" * 64
    ep = state["endpoints"][keep_id]
    stale_ns = dict(ep, id="f" * 64, ip="10.211.0.250", veth="sv0000000001", netns=gone + "/netns",
                    files=gone, ports=[])
    stale_veth = dict(ep, id="e" * 64, ip="10.211.0.251", veth="sv0000000002", netns=None, files=None,
                      ports=[])
    stale_veth = {k: v for k, v in stale_veth.items() if v is not None}
    alive = {"id": "d" * 64, "name": "cli", "mode": "none", "netns": netd.nsfile}
    state["endpoints"].update({"f" * 64: stale_ns, "e" * 64: stale_veth, "d" * 64: alive})
    with open(path, "w") as f:
        json.dump(state, f)
    netd.start()
    leases = netd.leases()
    assert "f" * 64 not in leases and "e" * 64 not in leases, leases
    assert "d" * 64 in leases                   # someone else's, still alive
    netd.stop()
    with open(path) as f:
        state = json.load(f)
    del state["endpoints"]["d" * 64]
    with open(path, "w") as f:
        json.dump(state, f)
    netd.start()
    netd.docker("rm", "-f", keep)
    netd.assert_clean()


def load_image_exposing(netd, tag, exposed):
    """The fixture's busybox archive again, with ExposedPorts in its config."""
    import hashlib
    import io
    import tarfile
    src = os.path.join(netd.tmp, "busybox.tar")
    dst = os.path.join(netd.tmp, tag.replace(":", "_") + ".tar")
    with tarfile.open(src) as t:
        members = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    manifest = json.loads(members.pop("manifest.json"))
    config = json.loads(members.pop(manifest[0]["Config"]))
    config["config"]["ExposedPorts"] = {p: {} for p in exposed}
    cfg = json.dumps(config, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest[0].update(Config=cfg_name, RepoTags=[tag])
    members.update({cfg_name: cfg, "manifest.json": json.dumps(manifest).encode()})
    with tarfile.open(dst, "w") as out:
        for member, data in members.items():
            ti = tarfile.TarInfo(member)
            ti.size = len(data)
            ti.mode = 0o644
            out.addfile(ti, io.BytesIO(data))
    netd.docker("load", "-i", dst, timeout=60)


def test_publish_all_takes_the_image_exposed_ports(netd):
    load_image_exposing(netd, "busybox-web:latest", ["80/tcp", "5353/udp"])
    c = name()
    netd.docker("run", "-d", "--name", c, "-P", "busybox-web", *HTTPD)
    port80 = netd.docker("port", c, "80/tcp").stdout.split()[0]
    port_udp = netd.docker("port", c, "5353/udp").stdout.split()[0]
    host_port = int(port80.rsplit(":", 1)[1])
    assert int(port_udp.rsplit(":", 1)[1]) > 1024
    out = retry(lambda: wget_host(netd, f"http://127.0.0.1:{host_port}/").stdout, what="image port")
    assert out.strip() == "hello-http"
    assert "80/tcp" in netd.inspect(c)["Config"]["ExposedPorts"]
    # Without -P the image's ports are not published.
    d = name()
    netd.docker("run", "-d", "--name", d, "busybox-web", "sleep", "60")
    assert netd.docker("port", d).stdout.strip() == ""
    assert not [r for r in netd.rules() if r == "silo:" + netd.inspect(d)["Id"]]
    netd.docker("rm", "-f", c, d)
    netd.docker("rmi", "busybox-web")
    netd.assert_clean()


def test_host_port_ranges(netd):
    # A host range for one container port: each container gets a free one.
    a, b, c = name(), name(), name()
    netd.docker("run", "-d", "--name", a, "-p", "18120-18121:80", "busybox", *HTTPD)
    netd.docker("run", "-d", "--name", b, "-p", "18120-18121:80", "busybox", *HTTPD)
    got = sorted(netd.docker("port", x, "80").stdout.split()[0] for x in (a, b))
    assert got == ["0.0.0.0:18120", "0.0.0.0:18121"]
    out = retry(lambda: wget_host(netd, "http://127.0.0.1:18121/").stdout, what="second port of the range")
    assert out.strip() == "hello-http"
    p = netd.docker("run", "-d", "--name", c, "-p", "18120-18121:80", "busybox", "true", check=False)
    assert p.returncode != 0 and "no free host port in 18120-18121" in p.stderr, p.stderr
    netd.docker("rm", "-f", a, b, c)
    # Equal ranges map port by port.
    d = name()
    netd.docker("run", "-d", "--name", d, "-p", "18130-18131:80-81", "busybox", "sleep", "60")
    assert netd.docker("port", d, "81").stdout.split()[0] == "0.0.0.0:18131"
    assert netd.docker("port", d, "80").stdout.split()[0] == "0.0.0.0:18130"
    netd.docker("rm", "-f", d)
    status, body, _ = netd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "9000-8000"}]}}})
    assert status == 400 and b"HostPort" in body
    netd.assert_clean()


def test_default_bridge_has_no_names_user_networks_do(netd):
    a, b = name(), name()
    netd.docker("run", "-d", "--name", a, "busybox", "sleep", "60")
    hosts = netd.docker("run", "--rm", "--name", b, "busybox", "cat", "/etc/hosts").stdout
    assert a not in hosts and b in hosts
    assert netd.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", a, check=False).returncode != 0
    netd.docker("run", "-d", "--name", b, "busybox", "sleep", "60")
    assert b not in netd.docker("exec", a, "cat", "/etc/hosts").stdout
    netd.docker("rm", "-f", a, b)
    netd.assert_clean()


def test_connect_stopped_container_and_connect_aliases(netd):
    net = name()
    netd.docker("network", "create", "--subnet", "10.250.9.0/24", net)
    c, c2 = name(), name()
    netd.docker("create", "--name", c, "busybox", "sleep", "60")
    # Stopped: recorded, joined at start.
    status, body, _ = netd.api("POST", f"/networks/{net}/connect",
                               {"Container": c, "EndpointConfig": {"Aliases": ["-bad"]}})
    assert status == 400 and b"not a valid name" in body, body
    netd.docker("network", "connect", "--alias", "dbalias", net, c)
    assert set(netd.inspect(c)["NetworkSettings"]["Networks"]) == {"bridge", net}
    p = netd.docker("network", "connect", net, c, check=False)
    assert p.returncode != 0 and "already connected" in p.stderr
    netd.docker("start", c)
    assert "10.250.9." in netd.docker("exec", c, "ip", "-o", "-4", "addr", "show", "eth1").stdout
    # Running: joins at once, with its aliases on that network only.
    netd.docker("run", "-d", "--name", c2, "busybox", "sleep", "60")
    netd.docker("network", "connect", "--alias", "web2", net, c2)
    hosts = netd.docker("run", "--rm", "--network", net, "busybox", "cat", "/etc/hosts").stdout
    assert "dbalias" in hosts and c in hosts and "web2" in hosts and c2 in hosts, hosts
    netd.docker("exec", c2, "ping", "-c", "1", "-W", "2", "dbalias")
    # A restart keeps the networks it was connected to.
    netd.docker("restart", "-t", "0", c2)
    assert "10.250.9." in netd.docker("exec", c2, "ip", "-o", "-4", "addr", "show", "eth1").stdout
    # Disconnected while stopped: not joined at the next start.
    netd.docker("stop", "-t", "0", c)
    netd.docker("network", "disconnect", net, c)
    p = netd.docker("network", "disconnect", net, c, check=False)
    assert p.returncode != 0 and "not connected" in p.stderr
    netd.docker("start", c)
    assert netd.docker("exec", c, "ip", "link", "show", "eth1", check=False).returncode != 0
    assert set(netd.inspect(c)["NetworkSettings"]["Networks"]) == {"bridge"}
    # Its first network goes only with it.
    p = netd.docker("network", "disconnect", "bridge", c, check=False)
    assert p.returncode != 0 and "first network" in p.stderr
    netd.docker("rm", "-f", c, c2)
    netd.docker("network", "rm", net)
    netd.assert_clean()
