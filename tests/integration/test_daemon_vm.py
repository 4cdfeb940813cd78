# SPDX-License-Identifier: Apache-2.0
"""`docker run --isolation=hyperv` through silod: the container runs in a
utility VM (QEMU, TCG here) through the same monitor and library calls as a
process-isolated one (docs/VM.md).  Fixtures: daemon_support.py."""

import json
import os
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
    p = daemon.docker("run", "--rm", "--isolation=hyperv", image, "sh", "-c",
                      "cat /proc/sys/kernel/random/boot_id; uname -r; exit 3", check=False, timeout=120)
    assert p.returncode == 3, p.stderr
    boot_id, release = p.stdout.split()[:2]
    assert boot_id != host_boot             # another kernel instance: the utility VM's
    assert "cloud" in release, release      # Debian's cloud kernel, whatever the host runs
    assert qemu_pids(daemon.state) == []


def test_hyperv_detached_exec_stop(daemon, image):
    name = "vm-detached"
    daemon.docker("run", "-d", "--name", name, "--isolation", "vm", image, "sh", "-c",
                  "echo booted; sleep 1000", timeout=120)
    try:
        deadline = time.time() + 60
        while "booted" not in daemon.docker("logs", name).stdout:
            assert time.time() < deadline, daemon.docker("logs", name).stderr
            time.sleep(0.1)
        info = json.loads(daemon.docker("inspect", name).stdout)[0]
        assert info["HostConfig"]["Isolation"] == "vm" and info["HostConfig"]["NetworkMode"] == "none"
        p = daemon.docker("exec", name, "sh", "-c", "cat /proc/version; exit 4", check=False, timeout=60)
        assert p.returncode == 4 and "Linux" in p.stdout
        daemon.docker("stop", "-t", "2", name, timeout=60)
        assert daemon.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "exited"
        assert qemu_pids(daemon.state) == []
    finally:
        daemon.docker("rm", "-f", name, timeout=60)
    assert qemu_pids(daemon.state) == []


def test_hyperv_refuses_networks_it_cannot_give(daemon, image):
    p = daemon.docker("run", "--rm", "--isolation=hyperv", "-p", "127.0.0.1:18080:80", image, "true", check=False)
    assert p.returncode != 0 and "published ports" in p.stderr
    p = daemon.docker("run", "--rm", "--isolation=hyperv", "--network", "host", image, "true", check=False)
    assert p.returncode != 0 and "loopback only" in p.stderr
    p = daemon.docker("run", "--rm", "--isolation=sandbox", image, "true", check=False)
    assert p.returncode != 0 and "invalid isolation" in p.stderr
