# SPDX-License-Identifier: Apache-2.0
"""`docker run --isolation=hyperv` through silod: the container runs in a
utility VM (QEMU, TCG here) through the same monitor and library calls as a
process-isolated one (docs/VM.md).  Fixtures: daemon_support.py."""

import json
import os
import subprocess
import time

from daemon_support import daemon, image  # noqa: F401 - fixtures


def qemu_pids(state):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"qemu-system" in cmd and state.encode() in cmd:
            found.append(int(pid))
    return found


def test_run_hyperv_gets_its_own_kernel(daemon, image):
    with open("/proc/sys/kernel/random/boot_id") as f:
        host_boot = f.read().strip()
    p = daemon.docker("run", "--rm", "--isolation=hyperv", "--network", "none", "--dns", "192.0.2.53", image,
                      "sh", "-c", "cat /proc/sys/kernel/random/boot_id; uname -r; tail -n +3 /proc/net/dev | "
                      "cut -d: -f1; grep nameserver /etc/resolv.conf; exit 3", check=False, timeout=120)
    assert p.returncode == 3, p.stderr
    boot_id, release, *rest = p.stdout.split()
    assert boot_id != host_boot             # another kernel instance: the utility VM's
    assert "cloud" in release, release      # Debian's cloud kernel, whatever the host runs
    # --network none: loopback only (no NIC in the VM), and silod's resolv.conf still reaches it.
    assert rest == ["lo", "nameserver", "192.0.2.53"], p.stdout
    assert qemu_pids(daemon.state) == []


def silod_veths(daemon):
    out = subprocess.run([*daemon.in_netns(), "ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.split(":")[1].strip().startswith("sv")]


def http_get(daemon, host, port, path="/"):
    s = daemon.connect_tcp(host, port)
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk
    finally:
        s.close()


def test_hyperv_detached_exec_stop_with_a_published_port(daemon, image):
    # The default bridge network and -p work as for a process container: the VM's NIC is the
    # container's eth0 (address, MAC, gateway), the published port reaches httpd inside the VM.
    name = "vm-detached"
    port = 18390
    daemon.docker("run", "-d", "--name", name, "--isolation", "vm", "-p", f"127.0.0.1:{port}:80", image, "sh",
                  "-c", "mkdir -p /www; echo vm-page > /www/index.html; httpd -p 80 -h /www; echo booted; "
                  "sleep 1000", timeout=120)
    try:
        deadline = time.time() + 60
        while "booted" not in daemon.docker("logs", name).stdout:
            assert time.time() < deadline, daemon.docker("logs", name).stderr
            time.sleep(0.1)
        info = json.loads(daemon.docker("inspect", name).stdout)[0]
        assert info["HostConfig"]["Isolation"] == "vm"
        ns = info["NetworkSettings"]
        ip, gw, mac = ns["IPAddress"], ns["Gateway"], ns["MacAddress"]
        assert ip and gw and mac, ns
        assert ns["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}], ns["Ports"]
        # Published port from the host (silod's namespace) and the container's address directly.
        assert http_get(daemon, "127.0.0.1", port, "/index.html").endswith("vm-page\n")
        assert http_get(daemon, ip, 80, "/index.html").endswith("vm-page\n")
        p = daemon.docker("exec", name, "sh", "-c", "cat /proc/version; ip -o -4 addr show eth0; "
                          "ip -o link show eth0; ip route; ping -c 1 -W 5 " + gw + " >/dev/null && echo gw-ok; "
                          "cat /etc/resolv.conf /etc/hosts; exit 4", check=False, timeout=60)
        assert p.returncode == 4 and "Linux" in p.stdout, p.stderr
        assert f"inet {ip}/" in p.stdout and mac in p.stdout and f"default via {gw}" in p.stdout, p.stdout
        assert "gw-ok" in p.stdout and "nameserver" in p.stdout, p.stdout
        assert any(line.split()[:1] == [ip] for line in p.stdout.splitlines()), p.stdout     # /etc/hosts
        # A restart gets a new namespace, handed to the new VM: the port is served again.
        daemon.docker("restart", "-t", "1", name, timeout=120)
        deadline = time.time() + 60
        while daemon.docker("logs", name).stdout.count("booted") < 2:
            assert time.time() < deadline, daemon.docker("logs", name).stderr
            time.sleep(0.1)
        assert http_get(daemon, "127.0.0.1", port, "/index.html").endswith("vm-page\n")
        daemon.docker("stop", "-t", "2", name, timeout=60)
        assert daemon.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "exited"
        assert qemu_pids(daemon.state) == []
        # Stopped: the endpoint is released (veth, lease, namespace), as for a process container.
        deadline = time.time() + 5
        while silod_veths(daemon):
            assert time.time() < deadline, silod_veths(daemon)
            time.sleep(0.05)
    finally:
        daemon.docker("rm", "-f", name, timeout=60)
    assert qemu_pids(daemon.state) == []


def test_hyperv_refuses_networks_it_cannot_give(daemon, image):
    # Refused at create, with nothing booted: a VM cannot share the host's stack or another
    # container's namespace, and nobody can join a VM container's network.
    p = daemon.docker("run", "--rm", "--isolation=hyperv", "--network", "host", image, "true", check=False)
    assert p.returncode != 0 and "cannot share the host's" in p.stderr, p.stderr
    daemon.docker("create", "--name", "vm-target", "--isolation=hyperv", image, "true")
    try:
        p = daemon.docker("run", "--rm", "--isolation=hyperv", "--network", "container:vm-target", image, "true",
                          check=False)
        assert p.returncode != 0 and "cannot share another container's" in p.stderr, p.stderr
        p = daemon.docker("run", "--rm", "--network", "container:vm-target", image, "true", check=False)
        assert p.returncode != 0 and "is VM-isolated" in p.stderr, p.stderr
    finally:
        daemon.docker("rm", "-f", "vm-target")
    p = daemon.docker("run", "--rm", "--isolation=sandbox", image, "true", check=False)
    assert p.returncode != 0 and "invalid isolation" in p.stderr
    assert qemu_pids(daemon.state) == []


def test_hyperv_on_a_user_network_reached_by_name(daemon, image):
    # A user-defined network: a process container finds the VM container by name (its /etc/hosts)
    # and talks TCP to it; the VM container reaches the process container back.
    daemon.docker("network", "create", "vmnet")
    try:
        daemon.docker("run", "-d", "--name", "vm-web", "--network", "vmnet", "--isolation=hyperv", image, "sh",
                      "-c", "mkdir -p /www; echo on-vmnet > /www/index.html; httpd -p 8080 -h /www; "
                      "echo booted; sleep 1000", timeout=120)
        deadline = time.time() + 60
        while "booted" not in daemon.docker("logs", "vm-web").stdout:
            assert time.time() < deadline, daemon.docker("logs", "vm-web").stderr
            time.sleep(0.1)
        p = daemon.docker("run", "--rm", "--name", "proc-client", "--network", "vmnet", image, "sh", "-c",
                          "wget -q -O - http://vm-web:8080/index.html", check=False, timeout=60)
        assert p.returncode == 0 and p.stdout == "on-vmnet\n", p.stderr
        daemon.docker("run", "-d", "--name", "proc-srv", "--network", "vmnet", image, "sh", "-c",
                      "echo from-proc > /index.html; httpd -f -p 8081 -h /")
        # By address: the VM's /etc/hosts is a copy taken at create (mapped directories are
        # snapshots, docs/VM.md), so a container that joined later is not in it.
        srv_ip = json.loads(daemon.docker("inspect", "proc-srv").stdout)[0]["NetworkSettings"]["Networks"]["vmnet"][
            "IPAddress"]
        p = daemon.docker("exec", "vm-web", "sh", "-c",
                          "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://" + srv_ip + ":8081/index.html && "
                          "exit 0; sleep 0.2; done; exit 1", check=False, timeout=60)
        assert p.returncode == 0 and p.stdout == "from-proc\n", (p.stdout, p.stderr)
    finally:
        daemon.docker("rm", "-f", "vm-web", "proc-srv", timeout=60, check=False)
        daemon.docker("network", "rm", "vmnet", check=False)
    assert qemu_pids(daemon.state) == []
