# SPDX-License-Identifier: Apache-2.0
"""linux.resources and `update`, read back from the container's cgroup files on the host, plus
enforcement seen from inside. Every container uses an absolute cgroupsPath under the test-owned
parent (see conftest.py)."""

import json
import os

import pytest

import silo_harness as h

V1 = os.path.isdir("/sys/fs/cgroup/memory") and os.path.exists(
    "/sys/fs/cgroup/memory/memory.limit_in_bytes")
v1 = pytest.mark.skipif(not V1, reason="reads cgroup v1 files")

MiB = 1024 * 1024


def cg(bundle, controller, name):
    return h.read_cgroup_file(controller, bundle.cgroups_path, name)


def start_sleeping(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    return rt.state(bundle.cid)["pid"]


@v1
def test_container_processes_in_every_controller(rt, bundle):
    bundle.args("/bin/sh", "-c", f"{h.HELPER} sleep 60 & exec {h.HELPER} sleep 60")
    rt.run(bundle, detach=True).check()
    pids = h.wait_for(lambda: (lambda p: p if len(p) == 2 else None)(
        rt.cmd("ps", "-f", "json", bundle.cid).json), what="two processes")
    for ctrl in ("memory", "pids", "cpu", "cpuset", "devices", "freezer", "blkio"):
        procs = {int(p) for p in cg(bundle, ctrl, "cgroup.procs").split()}
        assert procs == set(pids), ctrl
    rt.delete(bundle.cid, force=True).check()


@v1
def test_memory_limits(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 64 * MiB, "reservation": 32 * MiB,
                                           "swap": 128 * MiB, "swappiness": 10}
    start_sleeping(rt, bundle)
    assert int(cg(bundle, "memory", "memory.limit_in_bytes")) == 64 * MiB
    assert int(cg(bundle, "memory", "memory.soft_limit_in_bytes")) == 32 * MiB
    if os.path.exists(h.cgroup_dir("memory", bundle.cgroups_path) + "/memory.memsw.limit_in_bytes"):
        assert int(cg(bundle, "memory", "memory.memsw.limit_in_bytes")) == 128 * MiB
    assert int(cg(bundle, "memory", "memory.swappiness")) == 10
    rt.delete(bundle.cid, force=True).check()


@v1
def test_memory_disable_oom_killer(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 64 * MiB, "disableOOMKiller": True}
    start_sleeping(rt, bundle)
    assert "oom_kill_disable 1" in cg(bundle, "memory", "memory.oom_control")
    rt.delete(bundle.cid, force=True).check()


@v1
def test_memory_unlimited(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": -1}
    start_sleeping(rt, bundle)
    assert int(cg(bundle, "memory", "memory.limit_in_bytes")) >= 2 ** 62
    rt.delete(bundle.cid, force=True).check()


@v1
def test_memory_limit_enforced(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 16 * MiB, "swap": 16 * MiB}
    # dd with a 64 MiB block size needs a 64 MiB buffer
    bundle.args("/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; "
                "echo rc=$?")
    res = rt.run(bundle)
    res.check()
    assert "rc=137" in res.stdout  # dd was OOM-killed


@v1
def test_cpu_limits(rt, bundle):
    bundle.linux["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000,
                                        "cpus": "0", "mems": "0"}
    start_sleeping(rt, bundle)
    assert int(cg(bundle, "cpu", "cpu.shares")) == 512
    assert int(cg(bundle, "cpu", "cpu.cfs_quota_us")) == 50000
    assert int(cg(bundle, "cpu", "cpu.cfs_period_us")) == 100000
    assert cg(bundle, "cpuset", "cpuset.cpus") == "0"
    assert cg(bundle, "cpuset", "cpuset.mems") == "0"
    rt.delete(bundle.cid, force=True).check()


@v1
def test_cpuset_visible_inside(rt, bundle):
    bundle.linux["resources"]["cpu"] = {"cpus": "1"}
    bundle.args("/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status")
    res = rt.run(bundle)
    res.check()
    assert res.stdout.split() == ["Cpus_allowed_list:", "1"]


@v1
def test_pids_limit(rt, bundle):
    bundle.linux["resources"]["pids"] = {"limit": 42}
    start_sleeping(rt, bundle)
    assert cg(bundle, "pids", "pids.max") == "42"
    rt.delete(bundle.cid, force=True).check()


@v1
def test_pids_limit_enforced(rt, bundle):
    bundle.linux["resources"]["pids"] = {"limit": 5}
    res = rt.run_helper(bundle, "fork", "10")
    assert res["forked"] == 4  # the helper itself is the fifth task
    assert res["error"] == "EAGAIN"


@v1
def test_pids_unlimited(rt, bundle):
    bundle.linux["resources"]["pids"] = {"limit": -1}
    start_sleeping(rt, bundle)
    assert cg(bundle, "pids", "pids.max") == "max"
    rt.delete(bundle.cid, force=True).check()


def root_block_device():
    st = os.stat("/")
    # the device of / (e.g. 254:0); the whole-disk device is what blkio understands
    return os.major(st.st_dev), os.minor(st.st_dev)


@v1
def test_blkio_throttle(rt, bundle):
    major, minor = root_block_device()
    bundle.linux["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
    }
    start_sleeping(rt, bundle)
    assert f"{major}:{minor} 1048576" in cg(bundle, "blkio", "blkio.throttle.read_bps_device")
    assert f"{major}:{minor} 300" in cg(bundle, "blkio", "blkio.throttle.write_iops_device")
    rt.delete(bundle.cid, force=True).check()


@v1
def test_default_device_rules(rt, bundle):
    start_sleeping(rt, bundle)
    rules = cg(bundle, "devices", "devices.list").splitlines()
    assert "a *:* rwm" not in rules
    for dev in ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                "c 5:2 rwm", "c 136:* rwm"):
        assert dev in rules, (dev, rules)
    rt.delete(bundle.cid, force=True).check()


@v1
def test_device_rule_deny_all_then_allow(rt, bundle):
    bundle.linux["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"},
    ]
    start_sleeping(rt, bundle)
    rules = cg(bundle, "devices", "devices.list").splitlines()
    assert "b 7:0 r" in rules
    rt.delete(bundle.cid, force=True).check()


@v1
def test_cgroup_removed_after_exit_and_delete(rt, bundle):
    bundle.args("exit", "0")
    rt.create(bundle).check()
    d = h.cgroup_dir("memory", bundle.cgroups_path)
    assert os.path.isdir(d)
    rt.start(bundle.cid).check()
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()
    for ctrl in h.cgroup_hierarchies():
        assert not os.path.exists(h.cgroup_dir(ctrl, bundle.cgroups_path)), ctrl


@v1
def test_nested_cgroups_path(rt, bundle):
    bundle.linux["cgroupsPath"] = f"/{rt.cgroup_parent}/a/b/{bundle.cid}"
    bundle.cgroups_path = bundle.linux["cgroupsPath"]
    start_sleeping(rt, bundle)
    assert os.path.isdir(h.cgroup_dir("pids", bundle.cgroups_path))
    rt.delete(bundle.cid, force=True).check()
    assert not os.path.exists(h.cgroup_dir("pids", bundle.cgroups_path))
    # intermediate directories the runtime created may stay (runc leaves them); remove ours
    for ctrl in h.cgroup_hierarchies():
        h.remove_cgroup_tree(h.cgroup_dir(ctrl, f"/{rt.cgroup_parent}/a"))


@v1
def test_existing_cgroup_is_reused(rt, bundle):
    """A pre-created cgroup (e.g. by a pod manager) is joined, and left to its owner."""
    for ctrl in h.cgroup_hierarchies():
        os.makedirs(h.cgroup_dir(ctrl, bundle.cgroups_path), exist_ok=True)
    pid = start_sleeping(rt, bundle)
    procs = cg(bundle, "pids", "cgroup.procs").split()
    assert str(pid) in procs
    rt.delete(bundle.cid, force=True).check()
    for ctrl in h.cgroup_hierarchies():
        h.remove_cgroup_tree(h.cgroup_dir(ctrl, bundle.cgroups_path))


# ---- update ----

@v1
def test_update_flags(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 64 * MiB}
    bundle.linux["resources"]["pids"] = {"limit": 100}
    start_sleeping(rt, bundle)
    rt.cmd("update", "--memory", str(128 * MiB), "--pids-limit", "50", "--cpu-quota", "20000",
           "--cpu-period", "100000", "--cpu-share", "256", "--cpuset-cpus", "0",
           bundle.cid).check()
    assert int(cg(bundle, "memory", "memory.limit_in_bytes")) == 128 * MiB
    assert cg(bundle, "pids", "pids.max") == "50"
    assert int(cg(bundle, "cpu", "cpu.cfs_quota_us")) == 20000
    assert int(cg(bundle, "cpu", "cpu.cfs_period_us")) == 100000
    assert int(cg(bundle, "cpu", "cpu.shares")) == 256
    assert cg(bundle, "cpuset", "cpuset.cpus") == "0"
    rt.delete(bundle.cid, force=True).check()


@v1
def test_update_resources_file(rt, bundle):
    start_sleeping(rt, bundle)
    path = bundle.file("resources.json")
    with open(path, "w") as f:
        json.dump({"memory": {"limit": 96 * MiB}, "pids": {"limit": 33},
                   "cpu": {"shares": 300}}, f)
    rt.cmd("update", "--resources", path, bundle.cid).check()
    assert int(cg(bundle, "memory", "memory.limit_in_bytes")) == 96 * MiB
    assert cg(bundle, "pids", "pids.max") == "33"
    assert int(cg(bundle, "cpu", "cpu.shares")) == 300
    rt.delete(bundle.cid, force=True).check()


@v1
def test_update_resources_stdin(rt, bundle):
    start_sleeping(rt, bundle)
    rt.cmd("update", "-r", "-", bundle.cid, input=json.dumps({"pids": {"limit": 77}})).check()
    assert cg(bundle, "pids", "pids.max") == "77"
    rt.delete(bundle.cid, force=True).check()


@v1
def test_update_keeps_unmentioned_limits(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 64 * MiB}
    bundle.linux["resources"]["pids"] = {"limit": 100}
    start_sleeping(rt, bundle)
    rt.cmd("update", "--pids-limit", "20", bundle.cid).check()
    assert int(cg(bundle, "memory", "memory.limit_in_bytes")) == 64 * MiB
    assert cg(bundle, "pids", "pids.max") == "20"
    rt.delete(bundle.cid, force=True).check()


@v1
def test_update_visible_in_events_stats(rt, bundle):
    start_sleeping(rt, bundle)
    rt.cmd("update", "--pids-limit", "21", bundle.cid).check()
    res = rt.cmd("events", "--stats", bundle.cid)
    res.check()
    assert res.json["data"]["pids"]["limit"] == 21
    rt.delete(bundle.cid, force=True).check()


@v1
def test_update_stopped_container_fails(rt, bundle):
    bundle.args("exit", "0")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    rt.wait_status(bundle.cid, "stopped")
    res = rt.cmd("update", "--pids-limit", "10", bundle.cid)
    assert res.returncode != 0
    rt.delete(bundle.cid).check()


@v1
def test_update_bad_resources_json_fails(rt, bundle):
    start_sleeping(rt, bundle)
    res = rt.cmd("update", "-r", "-", bundle.cid, input='{"pids": {"limit": "many"}}')
    assert res.returncode != 0
    assert res.stderr.strip()
    assert cg(bundle, "pids", "pids.max") == "max"
    rt.delete(bundle.cid, force=True).check()


@v1
def test_update_unknown_container_fails(rt):
    res = rt.cmd("update", "--pids-limit", "10", "no-such-container")
    assert res.returncode != 0


# ---- cgroup v2, in a private mount namespace ----

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def v2_runtime(rt):
    """Run every runtime command in its own mount namespace where /sys/fs/cgroup is the cgroup2
    hierarchy (on this hybrid host the same hierarchy as /sys/fs/cgroup/unified)."""
    if not os.path.isdir(os.path.join(UNIFIED, rt.cgroup_parent)):
        pytest.skip("no cgroup2 hierarchy at /sys/fs/cgroup/unified")
    wrapper = os.path.join(rt.test_dir, "runtime-v2")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                "exec unshare -m --propagation private /bin/sh -c "
                "'mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"' "
                f"{rt.binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    rt.binary = wrapper
    return rt


def test_cgroup_v2_unified_mode(v2_runtime, bundle):
    rt = v2_runtime
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    pid = rt.state(bundle.cid)["pid"]
    d = os.path.join(UNIFIED, bundle.cgroups_path.lstrip("/"))
    with open(os.path.join(d, "cgroup.procs")) as f:
        assert str(pid) in f.read().split()
    res = rt.exec(bundle.cid, "cgroup")
    res.check()
    paths = [c["path"] for c in res.json["cgroup"] if c["id"] == 0]
    assert paths == [bundle.cgroups_path]
    rt.cmd("pause", bundle.cid).check()
    with open(os.path.join(d, "cgroup.freeze")) as f:
        assert f.read().strip() == "1"
    rt.cmd("resume", bundle.cid).check()
    rt.delete(bundle.cid, force=True).check()
    assert not os.path.exists(d)


@v1
def test_exec_process_joins_container_cgroups(rt, bundle):
    start_sleeping(rt, bundle)
    pid_file = bundle.file("exec.pid")
    rt.exec(bundle.cid, "sleep", "60", opts=["--pid-file", pid_file], detach=True,
            bundle=bundle).check()
    with open(pid_file) as f:
        pid = int(f.read())
    for ctrl in ("memory", "pids", "cpu", "devices", "freezer"):
        assert str(pid) in cg(bundle, ctrl, "cgroup.procs").split(), ctrl
    rt.delete(bundle.cid, force=True).check()
