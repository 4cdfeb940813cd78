# SPDX-License-Identifier: Apache-2.0
"""linux.namespaces: new ones, absent ones, joined ones (by path), user namespaces with mappings,
cgroup and time namespaces, hostname/domainname."""

import os
import subprocess
import time

import pytest

import silo_harness as h

NS_FILES = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
            "cgroup": "cgroup", "user": "user", "time": "time"}


def host_ns(name):
    return os.readlink(f"/proc/self/ns/{name}")


def userns_mappings(bundle, host_base=100000, size=65536):
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": host_base, "size": size}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": host_base, "size": size}]


@pytest.fixture
def holder(cleanup):
    """Start `unshare FLAGS... sleep` on the host; returns the pid owning the new namespaces."""
    def start(*flags):
        p = subprocess.Popen(["unshare", *flags, "--", "sleep", "120"],
                             stdin=subprocess.DEVNULL)
        cleanup(lambda: (p.kill(), p.wait()))
        target = p.pid
        if "--fork" in flags:
            # unshare --fork: the namespace's first process is unshare's child.
            def child():
                try:
                    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                        kids = f.read().split()
                    return int(kids[0]) if kids else None
                except OSError:
                    return None
            target = h.wait_for(child, what="unshare child")
            cleanup(lambda: h.pid_alive(target) and os.kill(target, 9))
        # wait until unshare has exec'd sleep, i.e. the namespaces exist
        h.wait_for(lambda: open(f"/proc/{target}/comm").read().strip() == "sleep",
                   what="unshare to exec sleep")
        return target
    return start


@pytest.mark.parametrize("ns", ["pid", "network", "ipc", "uts", "mount"])
def test_default_namespaces_are_new(rt, bundle, ns):
    info = rt.run_helper(bundle, "ns")
    name = NS_FILES[ns]
    assert info[name] != host_ns(name)


@pytest.mark.parametrize("ns", ["network", "ipc", "uts"])
def test_absent_namespace_is_shared_with_host(rt, bundle, ns):
    bundle.drop_namespace(ns)
    if ns == "uts":
        del bundle.config["hostname"]
    info = rt.run_helper(bundle, "ns")
    name = NS_FILES[ns]
    assert info[name] == host_ns(name)


def test_user_and_cgroup_ns_not_created_by_default(rt, bundle):
    info = rt.run_helper(bundle, "ns")
    assert info["user"] == host_ns("user")
    assert info["cgroup"] == host_ns("cgroup")


def test_pid_namespace_init_is_pid_1(rt, bundle):
    info = rt.run_helper(bundle, "pid")
    assert info["pid"] == 1
    assert info["ppid"] == 0


def test_pid_namespace_hides_host_processes(rt, bundle):
    res = rt.run_helper(bundle, "ls", "/proc")
    pids = [e for e in res["entries"] if e.isdigit()]
    assert pids == ["1"]


def test_network_namespace_has_only_loopback(rt, bundle):
    res = rt.run_helper(bundle, "net")
    assert res["interfaces"] == ["lo"]


def test_hostname(rt, bundle):
    bundle.config["hostname"] = "my-host"
    info = rt.run_helper(bundle, "hostname")
    assert info["hostname"] == "my-host"
    assert os.uname().nodename != "my-host"


@pytest.mark.silo_only  # runc 1.1 ignores "domainname" (runc 1.2 and the 1.1 spec set it)
def test_domainname(rt, bundle):
    bundle.config["hostname"] = "my-host"
    bundle.config["domainname"] = "example.test"
    info = rt.run_helper(bundle, "hostname")
    assert info == {"hostname": "my-host", "domainname": "example.test"}


def test_hostname_absent_keeps_kernel_default(rt, bundle):
    del bundle.config["hostname"]
    info = rt.run_helper(bundle, "hostname")
    # a fresh UTS namespace copies the creator's name
    assert info["hostname"] == os.uname().nodename


def test_cgroup_namespace_hides_path(rt, bundle):
    bundle.set_namespace("cgroup")
    res = rt.run_helper(bundle, "cgroup")
    paths = {c["controllers"]: c["path"] for c in res["cgroup"]}
    assert paths, res
    for ctrl, path in paths.items():
        assert path == "/", (ctrl, path)


def test_without_cgroup_namespace_path_is_visible(rt, bundle):
    res = rt.run_helper(bundle, "cgroup")
    paths = {c["controllers"]: c["path"] for c in res["cgroup"]}
    assert paths["pids"] == bundle.cgroups_path
    assert paths["memory"] == bundle.cgroups_path


# ---- joining existing namespaces ----

def test_join_network_namespace_by_proc_path(rt, bundle, holder):
    pid = holder("--net")
    bundle.set_namespace("network", f"/proc/{pid}/ns/net")
    info = rt.run_helper(bundle, "ns")
    assert info["net"] == os.readlink(f"/proc/{pid}/ns/net")
    assert info["net"] != host_ns("net")


def test_join_ipc_namespace_by_proc_path(rt, bundle, holder):
    pid = holder("--ipc")
    bundle.set_namespace("ipc", f"/proc/{pid}/ns/ipc")
    info = rt.run_helper(bundle, "ns")
    assert info["ipc"] == os.readlink(f"/proc/{pid}/ns/ipc")


def test_join_uts_namespace_by_bind_mounted_file(rt, bundle, cleanup):
    nsfile = os.path.join(rt.test_dir, "utsns")
    open(nsfile, "w").close()
    subprocess.run(["unshare", f"--uts={nsfile}", "hostname", "joined-host"], check=True,
                   timeout=30)
    cleanup(lambda: subprocess.run(["umount", nsfile], check=True, timeout=30))
    bundle.set_namespace("uts", nsfile)
    del bundle.config["hostname"]
    info = rt.run_helper(bundle, "info")
    assert info["uts"]["hostname"] == "joined-host"
    inode = subprocess.run(["stat", "-L", "-c", "%i", nsfile], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert info["ns"]["uts"] == f"uts:[{inode}]"


def test_join_network_namespace_by_bind_mount(rt, bundle, holder, cleanup):
    """The namespace outlives its creator through a bind mount of /proc/PID/ns/net."""
    pid = holder("--net")
    expected = os.readlink(f"/proc/{pid}/ns/net")
    nsfile = os.path.join(rt.test_dir, "netns")
    open(nsfile, "w").close()
    subprocess.run(["mount", "--bind", f"/proc/{pid}/ns/net", nsfile], check=True, timeout=30)
    cleanup(lambda: subprocess.run(["umount", nsfile], check=True, timeout=30))
    os.kill(pid, 9)
    h.wait_for(lambda: not h.pid_alive(pid), what="holder to exit")
    bundle.set_namespace("network", nsfile)
    info = rt.run_helper(bundle, "ns")
    assert info["net"] == expected


def test_join_pid_namespace(rt, bundle, holder):
    pid = holder("--pid", "--fork", "--mount-proc")
    bundle.set_namespace("pid", f"/proc/{pid}/ns/pid")
    info = rt.run_helper(bundle, "info")
    assert info["ns"]["pid"] == os.readlink(f"/proc/{pid}/ns/pid")
    assert info["proc"]["pid"] != 1  # the holder's sleep is pid 1 there


def test_two_containers_share_network_namespace(rt, make_bundle):
    b1 = make_bundle("sleep", "60")
    rt.run(b1, detach=True).check()
    pid = rt.state(b1.cid)["pid"]
    b2 = make_bundle("ns")
    b2.set_namespace("network", f"/proc/{pid}/ns/net")
    info = rt.run_helper(b2, "ns")
    assert info["net"] == os.readlink(f"/proc/{pid}/ns/net")
    rt.delete(b1.cid, force=True).check()


def test_join_namespace_with_wrong_type_fails(rt, bundle, holder):
    pid = holder("--net")
    bundle.set_namespace("ipc", f"/proc/{pid}/ns/net")
    bundle.args("exit", "0")
    res = rt.run(bundle)
    assert res.returncode != 0
    assert res.stderr.strip()


def test_join_missing_namespace_path_fails(rt, bundle):
    bundle.set_namespace("network", "/proc/999999999/ns/net")
    bundle.args("exit", "0")
    res = rt.run(bundle)
    assert res.returncode != 0
    assert "/proc/999999999/ns/net" in res.stderr


# ---- user namespaces ----

def test_user_namespace_mappings(rt, bundle):
    userns_mappings(bundle)
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    pid = rt.state(bundle.cid)["pid"]
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", "100000", "65536"]
    with open(f"/proc/{pid}/gid_map") as f:
        assert f.read().split() == ["0", "100000", "65536"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(l.split(":", 1) for l in f.read().splitlines())
    assert status["Uid"].split()[0] == "100000"
    assert status["Gid"].split()[0] == "100000"
    res = rt.exec(bundle.cid, "info")
    res.check()
    info = res.json
    assert info["ids"]["uid"] == 0 and info["ids"]["gid"] == 0
    assert info["ns"]["user"] != host_ns("user")
    rt.delete(bundle.cid, force=True).check()


def test_user_namespace_non_root_user(rt, bundle):
    userns_mappings(bundle)
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    pid = rt.state(bundle.cid)["pid"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(l.split(":", 1) for l in f.read().splitlines())
    assert status["Uid"].split()[0] == "101000"
    rt.delete(bundle.cid, force=True).check()


def test_user_namespace_host_files_appear_unmapped(rt, bundle):
    userns_mappings(bundle)
    res = rt.run_helper(bundle, "stat", "/bin/busybox")
    assert res["uid"] == 65534  # host root is not mapped: overflow uid


def test_user_namespace_caps_are_namespaced(rt, bundle):
    """CAP_SYS_ADMIN inside a user namespace does not allow host-level operations."""
    userns_mappings(bundle)
    caps = h.DEFAULT_CAPS + ["CAP_SYS_ADMIN"]
    for s in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][s] = list(caps)
    res = rt.run_helper(bundle, "syscall-test", "mknod", "/tmp/null")
    assert res["ok"] is False and res["error"] == "EPERM"


def test_user_namespace_multiple_mapping_ranges(rt, bundle):
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000},
                                   {"containerID": 1000, "hostID": 201000, "size": 1}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 2000}]
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    pid = rt.state(bundle.cid)["pid"]
    with open(f"/proc/{pid}/uid_map") as f:
        lines = [l.split() for l in f.read().strip().splitlines()]
    assert lines == [["0", "200000", "1000"], ["1000", "201000", "1"]]
    rt.delete(bundle.cid, force=True).check()


# ---- time namespace ----

def test_time_namespace_offsets(rt, bundle, require_feature):
    require_feature("time namespaces", "linux", "namespaces", "time")
    bundle.set_namespace("time")
    bundle.linux["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0},
                                   "boottime": {"secs": 172800, "nanosecs": 0}}
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    info = rt.run_helper(bundle, "time")
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    assert before + 86400 - 1 <= info["monotonic"] <= after + 86400 + 1
    boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert boot + 172800 - 30 <= info["boottime"] <= boot + 172800 + 1


def test_time_namespace_is_new(rt, bundle, require_feature):
    require_feature("time namespaces", "linux", "namespaces", "time")
    bundle.set_namespace("time")
    info = rt.run_helper(bundle, "ns")
    assert info["time"] != host_ns("time")
