# SPDX-License-Identifier: Apache-2.0
"""Utility VMs (docs/VM.md, "Utility VMs"): one VM booted with no container of its own, hosting
several containers created later (annotation io.silo.vm.host), as HCS hosts containers in a
utility VM named by HostingSystemId.  Driven through silo-runtime and through the compute API
(`silo compute` with VirtualMachine documents).  Each test boots one VM (TCG here)."""

import glob
import json
import os
import subprocess
import time

import silo_harness as h
from test_vm import BOOT_LIMIT, INITRD, children_of, comm, guest_kernel, vm, vm_rootfs, wait_gone  # noqa: F401
from test_compute import Compute, compute  # noqa: F401

SILO = os.path.join(h.BUILD_DIR, "src/cli/silo")


def write_bundle(path, config):
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def utility_config(cgroup):
    return {"ociVersion": "1.0.2", "linux": {"cgroupsPath": cgroup},
            "annotations": {"io.silo.isolation": "vm", "io.silo.vm.utility": "true",
                            "io.silo.vm.memory-mb": "384"}}


def hosted_config(vm, host, hostname, args, mounts=()):
    cfg = json.loads(json.dumps(vm.config))
    cfg["process"]["args"] = args
    cfg["hostname"] = hostname
    cfg["annotations"] = {"io.silo.isolation": "vm", "io.silo.vm.host": host}
    cfg["linux"]["cgroupsPath"] = f"/silo-hosted/{hostname}"
    cfg["mounts"] = cfg["mounts"] + list(mounts)
    return cfg


def qemu_of(vm, cid):
    pid = vm.state(cid)["pid"]
    return [p for p in children_of(pid) if "qemu" in comm(p)]


def test_utility_vm_hosts_several_containers(vm, tmp_path):
    uvm_cg = vm.config["linux"]["cgroupsPath"] + "-uvm"
    uvm = write_bundle(tmp_path / "uvm", utility_config(uvm_cg))
    assert vm.rt("create", "--bundle", uvm, "uvm").returncode == 0
    assert vm.state("uvm")["status"] == "created"
    assert vm.rt("start", "uvm").returncode == 0
    assert vm.state("uvm")["status"] == "running"
    qemu = qemu_of(vm, "uvm")
    assert len(qemu) == 1, qemu

    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("mapped\n")
    ro = {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]}
    outs = {}
    for name in ("c1", "c2"):
        b = write_bundle(tmp_path / name, hosted_config(
            vm, "uvm", name, ["/bin/sh", "-c", f"echo hello from $(hostname); uname -r; sleep 60"], [ro]))
        outs[name] = open(tmp_path / f"{name}.out", "w+")
        r = vm.rt("create", "--bundle", b, name, stdout=outs[name], stderr=subprocess.STDOUT)
        assert r.returncode == 0, open(tmp_path / f"{name}.out").read()
        st = vm.state(name)
        assert st["status"] == "created" and st["pid"] > 0
        assert vm.rt("start", name).returncode == 0
        assert vm.state(name)["status"] == "running"
    # No VM of their own: still the one QEMU, and none under the containers' stand-ins.
    assert qemu_of(vm, "uvm") == qemu
    assert all(not children_of(vm.state(n)["pid"]) for n in outs)

    deadline = time.monotonic() + BOOT_LIMIT
    while time.monotonic() < deadline and not all(
            open(tmp_path / f"{n}.out").read().count("\n") >= 2 for n in outs):
        time.sleep(0.1)
    kernels = set()
    for name in outs:
        lines = open(tmp_path / f"{name}.out").read().splitlines()
        assert lines[0] == f"hello from {name}", lines
        kernels.add(lines[1])
    # Both in the same guest kernel, which is not the host's.
    assert len(kernels) == 1 and os.uname().release not in kernels

    r = vm.rt("exec", "c1", "cat", "/data/f")
    assert r.returncode == 0 and r.stdout == "mapped\n", r.stderr
    r = vm.rt("exec", "c2", "/bin/sh", "-c", "hostname; ps -o comm | grep -c sleep; exit 7")
    assert r.returncode == 7 and r.stdout.split() == ["c2", "1"], (r.stdout, r.stderr)
    ev = vm.rt("events", "--stats", "c2")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["data"]["pids"]["current"] >= 1

    # Read-write binds are live shares of the VM (its FUSE root gets the container's entries).
    rwdir = tmp_path / "rw"
    rwdir.mkdir()
    rwfile = tmp_path / "rw.conf"
    rwfile.write_text("one\n")
    rw = [{"destination": "/rw", "type": "bind", "source": str(rwdir), "options": ["rbind"]},
          {"destination": "/etc/rw.conf", "type": "bind", "source": str(rwfile), "options": ["bind", "rw"]}]
    b = write_bundle(tmp_path / "c3", hosted_config(
        vm, "uvm", "c3", ["/bin/sh", "-c", "echo from-c3 > /rw/out; echo two >> /etc/rw.conf; sleep 60"], rw))
    r = vm.rt("create", "--bundle", b, "c3")
    assert r.returncode == 0
    assert vm.rt("start", "c3").returncode == 0
    h.wait_for(lambda: (rwdir / "out").exists() and rwfile.read_text() == "one\ntwo\n", timeout=20,
               what="the hosted container's writes on the host")
    assert (rwdir / "out").read_text() == "from-c3\n"
    (rwdir / "in").write_text("from the host\n")
    r = vm.rt("exec", "c3", "/bin/sh", "-c", "cat /rw/in; mkdir /rw/d; mv /rw/out /rw/d/moved")
    assert r.returncode == 0 and r.stdout == "from the host\n", (r.stdout, r.stderr)
    assert (rwdir / "d" / "moved").read_text() == "from-c3\n"
    # The other containers do not see c3's shares (they are not in their mounts).
    r = vm.rt("exec", "c2", "/bin/sh", "-c", "ls /rw 2>&1; cat /etc/rw.conf 2>&1")
    assert "from" not in r.stdout and "two" not in r.stdout, r.stdout
    # A host that is not there.
    b = write_bundle(tmp_path / "c4", hosted_config(vm, "nosuch", "c4", ["/bin/true"]))
    r = vm.rt("create", "--bundle", b, "c4", stdout=None, stderr=None, capture_output=True)
    assert r.returncode != 0 and 'no utility VM "nosuch"' in r.stderr, r.stderr

    # Pause freezes one container in the guest (its cgroup there); the other runs on.
    assert vm.rt("pause", "c2").returncode == 0
    assert vm.state("c2")["status"] == "paused" and vm.state("c1")["status"] == "running"
    r = vm.rt("exec", "c1", "/bin/true")
    assert r.returncode == 0, r.stderr
    assert vm.rt("pause", "c2").returncode != 0                 # only once
    assert vm.rt("resume", "c2").returncode == 0
    assert vm.state("c2")["status"] == "running"
    r = vm.rt("exec", "c2", "/bin/sh", "-c", "echo thawed")
    assert r.returncode == 0 and r.stdout == "thawed\n", r.stderr

    # SIGKILL stops one container; the VM and the other go on.
    assert vm.rt("kill", "c1", "KILL").returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and vm.state("c1")["status"] != "stopped":
        time.sleep(0.05)
    assert vm.state("c1")["status"] == "stopped"
    assert vm.state("c2")["status"] == "running" and vm.state("uvm")["status"] == "running"
    assert vm.rt("delete", "c1").returncode == 0

    # A paused one deleted by force is thawed and dies in its guest.
    b = write_bundle(tmp_path / "c5", hosted_config(vm, "uvm", "c5", ["/bin/sleep", "600"]))
    assert vm.rt("create", "--bundle", b, "c5").returncode == 0
    assert vm.rt("start", "c5").returncode == 0
    assert vm.rt("pause", "c5").returncode == 0
    assert vm.rt("delete", "--force", "c5").returncode == 0
    # Gone from the guest too: the same id can be created there again.
    assert vm.rt("create", "--bundle", b, "c5").returncode == 0
    assert vm.rt("delete", "--force", "c5").returncode == 0

    # Stopping the utility VM stops what it hosts.
    assert vm.rt("kill", "uvm", "TERM").returncode == 0
    assert wait_gone(qemu) == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and vm.state("c2")["status"] != "stopped":
        time.sleep(0.05)
    assert vm.state("c2")["status"] == "stopped"
    for cid in ("c2", "c3"):
        h.wait_for(lambda: vm.state(cid)["status"] == "stopped", timeout=10, what=f"{cid} stopped")
    for cid in ("c2", "c3", "uvm"):
        assert vm.rt("delete", cid).returncode == 0
    for d in glob.glob(f"/sys/fs/cgroup/*/{uvm_cg.lstrip('/')}"):
        raise AssertionError(f"cgroup left: {d}")


def test_compute_virtual_machine_hosts_containers(compute, tmp_path):
    env = dict(SILO_VM_KERNEL=guest_kernel(), SILO_VM_INITRD=INITRD)
    compute.env.update(env, TMPDIR=str(tmp_path))
    vmdoc = {"Owner": "pytest", "SchemaVersion": {"Major": 2, "Minor": 1},
             "VirtualMachine": {"Chipset": {"LinuxKernelDirect": {"KernelFilePath": guest_kernel(),
                                                                  "InitRdPath": INITRD}},
                                "ComputeTopology": {"Memory": {"SizeInMB": 384}, "Processor": {"Count": 1}}}}
    compute.ok("create", "uvm1", vmdoc, timeout=BOOT_LIMIT)
    # Not started yet: it cannot host.
    doc = compute.document("web", Memory={"SizeInMB": 64})
    doc["HostingSystemId"] = "uvm1"
    assert "is Created, not Running" in compute.fail("create", "web", doc)
    compute.ok("start", "uvm1")
    p = compute.props("uvm1")
    assert p["SystemType"] == "VirtualMachine" and p["State"] == "Running"

    compute.ok("create", "web", doc)
    compute.ok("start", "web")
    r = compute.run("exec", "web", {"CommandLine": "sh -c \"uname -r; hostname; cat /sys/fs/cgroup/memory.max; "
                                                   "echo oops >&2; exit 3\"",
                                    "CreateStdOutPipe": True, "CreateStdErrPipe": True})
    assert r.returncode == 3, r.stderr
    kernel, hostname, limit = r.stdout.split()
    assert kernel != os.uname().release and hostname == "web1" and limit == str(64 << 20)
    assert r.stderr == "oops\n"
    p = compute.props("web", "Statistics", "Memory")
    assert p["SystemType"] == "Container" and p["HostingSystemId"] == "uvm1"
    assert p["Memory"]["SizeInMB"] == 64 and p["Statistics"]["Processor"]["TotalRuntime100ns"] > 0
    listed = {s["Id"]: s["SystemType"] for s in json.loads(compute.ok("list").stdout)}
    assert listed == {"uvm1": "VirtualMachine", "web": "Container"}
    vms = json.loads(compute.ok("list", {"Types": ["VirtualMachine"]}).stdout)
    assert [s["Id"] for s in vms] == ["uvm1"]

    # A container is not a host; a VirtualMachine is not hosted.
    doc2 = compute.document("web2")
    doc2["HostingSystemId"] = "web"
    assert "is a Container, not a VirtualMachine" in compute.fail("create", "web2", doc2)
    doc2["HostingSystemId"] = "nosuch"
    assert 'no compute system "nosuch"' in compute.fail("create", "web2", doc2)

    compute.ok("pause", "web")
    assert compute.props("web")["State"] == "Paused"
    compute.ok("resume", "web")
    assert compute.props("web")["State"] == "Running"
    compute.ok("shutdown", "--timeout", "20", "web")
    p = compute.props("web")
    assert p["State"] == "Stopped" and p["ExitType"] == "GracefulExit"
    compute.ok("terminate", "uvm1")
    p = compute.props("uvm1")
    assert p["State"] == "Stopped" and p["ExitType"] == "ForcedExit"
    compute.ok("delete", "web", "uvm1")
    assert os.listdir(tmp_path) == [], "VM images left in TMPDIR"


def test_compute_virtual_machine_bad_documents(compute):
    base = {"SchemaVersion": {"Major": 2, "Minor": 1}}
    cases = [
        ({"VirtualMachine": {"Chipset": {"LinuxKernelDirect": {"KernelFilePath": "/nonexistent/vmlinux"}}}},
         "VM kernel /nonexistent/vmlinux"),
        ({"VirtualMachine": {"ComputeTopology": {"Memory": {"SizeInMB": 8}}}},
         "VirtualMachine.ComputeTopology.Memory.SizeInMB: expected 64 .. 65536"),
        ({"VirtualMachine": {"Chipset": {"Uefi": {}}}}, "only LinuxKernelDirect boots are supported"),
        ({"VirtualMachine": {"Chipset": {"LinuxKernelDirect": {"KernelCmdLine": "x" * 600}}}},
         "KernelCmdLine: longer than 512 bytes"),
    ]
    for doc, message in cases:
        err = compute.fail("create", "bad", dict(base, **doc))
        assert message in err, err
        assert compute.run("properties", "bad").returncode != 0


def test_utility_vm_that_stops_with_its_last_container(vm, tmp_path):
    cfg = utility_config(vm.config["linux"]["cgroupsPath"] + "-uvm2")
    cfg["annotations"]["io.silo.vm.stop-when-empty"] = "true"
    uvm = write_bundle(tmp_path / "uvm", cfg)
    assert vm.rt("create", "--bundle", uvm, "uvm2").returncode == 0
    assert vm.rt("start", "uvm2").returncode == 0
    qemu = qemu_of(vm, "uvm2")
    b = write_bundle(tmp_path / "c1", hosted_config(vm, "uvm2", "c1", ["/bin/sh", "-c", "exit 0"]))
    assert vm.rt("create", "--bundle", b, "c1").returncode == 0
    # Empty before its first container: it waits for one.
    assert vm.state("uvm2")["status"] == "running"
    assert vm.rt("start", "c1").returncode == 0
    assert wait_gone(qemu) == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and vm.state("uvm2")["status"] != "stopped":
        time.sleep(0.05)
    assert vm.state("uvm2")["status"] == "stopped" and vm.state("c1")["status"] == "stopped"
    for cid in ("c1", "uvm2"):
        assert vm.rt("delete", cid).returncode == 0
