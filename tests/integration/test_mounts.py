# SPDX-License-Identifier: Apache-2.0
"""Mounts, root.readonly, propagation, --no-pivot, /dev, linux.devices, maskedPaths,
readonlyPaths and sysctl, all observed from inside the container."""

import os
import subprocess

import pytest

import silo_harness as h


def mounts_by_point(rt, bundle):
    res = rt.run_helper(bundle, "mounts")
    by_point = {}
    for m in res["mounts"]:
        by_point[m["mount_point"]] = m  # the last (top-most) mount wins
    return by_point


def opts(m):
    return set(m["options"].split(",")) | set(m["super_options"].split(","))


def tagged(m, prefix):
    return any(o.startswith(prefix) for o in m["optional"])


# ---- default mounts ----

def test_default_mounts(rt, bundle):
    mounts = mounts_by_point(rt, bundle)
    expect = {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
              "/dev/mqueue": "mqueue", "/sys": "sysfs"}
    for point, fstype in expect.items():
        assert point in mounts, f"{point} not mounted: {sorted(mounts)}"
        assert mounts[point]["fstype"] == fstype, mounts[point]
    assert "ro" in mounts["/sys"]["options"].split(",")
    assert {"nosuid", "noexec", "nodev"} <= opts(mounts["/dev/shm"])
    assert "size=65536k" in mounts["/dev/shm"]["super_options"]
    assert "mode=755" in mounts["/dev"]["super_options"]
    assert "ptmxmode=666" in mounts["/dev/pts"]["super_options"]
    assert "mode=620" in mounts["/dev/pts"]["super_options"]
    assert "gid=5" in mounts["/dev/pts"]["super_options"]
    assert "/" in mounts


def test_default_mount_modes(rt, bundle):
    assert rt.run_helper(bundle, "stat", "/dev/shm")["mode"] == 0o1777
    assert rt.run_helper(bundle, "stat", "/dev")["mode"] == 0o755


def test_only_container_mounts_visible(rt, bundle):
    mounts = mounts_by_point(rt, bundle)
    for point in mounts:
        assert not point.startswith("/tmp/silo-it-"), point
        assert not point.startswith("/work"), point


def test_cgroup_mount_is_readonly(rt, bundle):
    mounts = mounts_by_point(rt, bundle)
    assert "/sys/fs/cgroup" in mounts
    cg = [m for p, m in mounts.items() if p.startswith("/sys/fs/cgroup")
          and m["fstype"] in ("cgroup", "cgroup2")]
    assert cg, "no cgroup filesystem mounted under /sys/fs/cgroup"
    for m in cg:
        assert "ro" in m["options"].split(","), m


def test_cgroup_mount_shows_own_cgroup(rt, bundle):
    bundle.args("ls", "/sys/fs/cgroup/pids")
    res = rt.run(bundle)
    res.check()
    entries = res.json["entries"]
    assert "pids.max" in entries
    # the container sees its own cgroup as the root of the hierarchy, not the host's tree
    assert rt.cgroup_parent not in entries


# ---- root ----

def test_root_readonly(rt, bundle):
    bundle.config["root"]["readonly"] = True
    bundle.args("/bin/sh", "-c", f"{h.HELPER} write /etc/x; {h.HELPER} write /dev/shm/x; "
                f"{h.HELPER} write /dev/x")
    res = rt.run(bundle)
    res.check()
    lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
    import json
    etc, shm, dev = (json.loads(l) for l in lines)
    assert etc["error"] == "EROFS"
    assert shm["ok"] is True
    assert dev["ok"] is True  # /dev is a separate tmpfs
    mounts = mounts_by_point(rt, bundle)
    assert "ro" in mounts["/"]["options"].split(",")


def test_root_writable(rt, bundle):
    res = rt.run_helper(bundle, "write", "/etc/written", "data")
    assert res["ok"]
    with open(bundle.root_path("/etc/written")) as f:
        assert f.read() == "data"


def test_root_path_absolute(rt, bundle):
    bundle.config["root"]["path"] = bundle.rootfs
    assert rt.run_helper(bundle, "cwd")["cwd"] == "/"


def test_no_pivot(rt, bundle):
    bundle.args("ls", "/")
    res = rt.run(bundle, "--no-pivot")
    res.check()
    entries = set(res.json["entries"])
    assert {"bin", "etc", "proc", "usr"} <= entries
    assert "work" not in entries


def test_no_pivot_hides_host(rt, bundle):
    bundle.args("stat", "/etc/silo-release")
    res = rt.run(bundle, "--no-pivot")
    res.check()
    assert res.json["exists"]


# ---- bind mounts ----

def test_bind_mount_rw(rt, bundle, host_dir):
    src = host_dir({"hello": "host"})
    bundle.add_mount("/data", "bind", src, ["rbind", "rw"])
    bundle.args("/bin/sh", "-c", f"cat /data/hello; echo; {h.HELPER} write /data/from-ctr ctr")
    res = rt.run(bundle)
    res.check()
    assert res.stdout.startswith("host\n")
    assert res.json["ok"]
    with open(os.path.join(src, "from-ctr")) as f:
        assert f.read() == "ctr"


def test_bind_mount_ro(rt, bundle, host_dir):
    src = host_dir({"hello": "host"})
    bundle.add_mount("/data", "bind", src, ["rbind", "ro"])
    res = rt.run_helper(bundle, "write", "/data/x")
    assert res["error"] == "EROFS"
    assert not os.path.exists(os.path.join(src, "x"))


def test_bind_mount_single_file(rt, bundle, host_dir):
    src = host_dir({"file.txt": "file content\n"})
    bundle.add_mount("/etc/mounted.txt", "bind", os.path.join(src, "file.txt"), ["bind", "ro"])
    res = rt.run_helper(bundle, "read", "/etc/mounted.txt")
    assert res["data"] == "file content\n"


def test_bind_mount_creates_missing_destination(rt, bundle, host_dir):
    src = host_dir({"f": "x"})
    bundle.add_mount("/new/deep/dir", "none", src, ["rbind"])
    res = rt.run_helper(bundle, "ls", "/new/deep/dir")
    assert res["entries"] == ["f"]
    assert os.path.isdir(bundle.root_path("/new/deep/dir"))


def test_bind_mount_type_none(rt, bundle, host_dir):
    src = host_dir({"f": "x"})
    bundle.add_mount("/data", "none", src, ["bind"])
    assert rt.run_helper(bundle, "ls", "/data")["entries"] == ["f"]


def test_bind_mount_without_type(rt, bundle, host_dir):
    src = host_dir({"f": "x"})
    bundle.add_mount("/data", None, src, ["rbind"])
    assert rt.run_helper(bundle, "ls", "/data")["entries"] == ["f"]


@pytest.fixture
def dir_with_submount(host_dir, cleanup):
    src = host_dir({"top": "1"})
    sub = os.path.join(src, "sub")
    os.mkdir(sub)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "silo-test-sub", sub], check=True,
                   timeout=30)
    cleanup(lambda: subprocess.run(["umount", "-l", sub], check=True, timeout=30))
    with open(os.path.join(sub, "in-submount"), "w") as f:
        f.write("sub")
    return src


def test_rbind_includes_submounts(rt, bundle, dir_with_submount):
    bundle.add_mount("/data", "bind", dir_with_submount, ["rbind"])
    assert rt.run_helper(bundle, "ls", "/data/sub")["entries"] == ["in-submount"]


def test_bind_excludes_submounts(rt, bundle, dir_with_submount):
    bundle.add_mount("/data", "bind", dir_with_submount, ["bind"])
    assert rt.run_helper(bundle, "ls", "/data/sub")["entries"] == []


def test_container_mounts_do_not_propagate_to_host(rt, bundle, dir_with_submount):
    bundle.add_mount("/data", "bind", dir_with_submount, ["rbind", "rprivate"])
    caps = h.DEFAULT_CAPS + ["CAP_SYS_ADMIN"]
    for s in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][s] = caps
    bundle.args("syscall-test", "mount", "/data")
    res = rt.run(bundle)
    res.check()
    assert res.json["ok"], res.json
    assert not any(m["mount_point"].startswith(dir_with_submount) and m["fstype"] == "tmpfs"
                   and m["source"] == "none" for m in h.read_mountinfo().values())


@pytest.mark.parametrize("flag", ["nosuid", "nodev", "noexec", "ro"])
def test_bind_mount_flags(rt, bundle, host_dir, flag):
    src = host_dir({"f": "x"})
    bundle.add_mount("/data", "bind", src, ["rbind", flag])
    mounts = mounts_by_point(rt, bundle)
    assert flag in mounts["/data"]["options"].split(",")


def test_noexec_mount_prevents_exec(rt, bundle, host_dir):
    src = host_dir()
    subprocess.run(["cp", os.path.join(rt.rootfs_base, "bin/busybox"), src], check=True)
    bundle.add_mount("/data", "bind", src, ["rbind", "noexec"])
    bundle.args("/bin/sh", "-c", "/data/busybox true; echo rc=$?")
    res = rt.run(bundle)
    res.check()
    assert "rc=126" in res.stdout


# ---- tmpfs and other filesystems ----

def test_tmpfs_with_options(rt, bundle):
    bundle.add_mount("/scratch", "tmpfs", "tmpfs",
                     ["nosuid", "nodev", "noexec", "size=1m", "mode=1770", "uid=1000", "gid=1000"])
    mounts = mounts_by_point(rt, bundle)
    m = mounts["/scratch"]
    assert m["fstype"] == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= set(m["options"].split(","))
    assert "size=1024k" in m["super_options"]
    assert "mode=1770" in m["super_options"]
    assert "uid=1000" in m["super_options"] and "gid=1000" in m["super_options"]
    st = rt.run_helper(bundle, "stat", "/scratch")
    assert (st["uid"], st["gid"]) == (1000, 1000)


@pytest.mark.silo_only  # runc 1.1 chmods a tmpfs to the mode of its mountpoint, dropping mode=
def test_tmpfs_mode_option_honored(rt, bundle):
    bundle.add_mount("/scratch", "tmpfs", "tmpfs", ["mode=1770"])
    assert rt.run_helper(bundle, "stat", "/scratch")["mode"] == 0o1770


def test_tmpfs_size_limit_enforced(rt, bundle):
    bundle.add_mount("/scratch", "tmpfs", "tmpfs", ["size=64k"])
    bundle.args("/bin/sh", "-c", "dd if=/dev/zero of=/scratch/big bs=1k count=200 2>/dev/null;"
                " echo rc=$?")
    res = rt.run(bundle)
    res.check()
    assert "rc=0" not in res.stdout


def test_second_proc_mount(rt, bundle):
    bundle.add_mount("/proc2", "proc", "proc", [])
    mounts = mounts_by_point(rt, bundle)
    assert mounts["/proc2"]["fstype"] == "proc"


def test_sysfs_mount_rw_when_asked(rt, bundle):
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/sys")]
    bundle.add_mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev"])
    mounts = mounts_by_point(rt, bundle)
    assert mounts["/sys"]["fstype"] == "sysfs"
    assert "rw" in mounts["/sys"]["options"].split(",")


def test_mqueue_mount(rt, bundle):
    mounts = mounts_by_point(rt, bundle)
    assert mounts["/dev/mqueue"]["fstype"] == "mqueue"
    assert {"nosuid", "noexec", "nodev"} <= set(mounts["/dev/mqueue"]["options"].split(","))


def test_mounts_applied_in_order(rt, bundle, host_dir):
    a = host_dir({"a": "1"})
    b = host_dir({"b": "2"})
    bundle.add_mount("/data", "bind", a, ["rbind"])
    bundle.add_mount("/data", "bind", b, ["rbind"])
    assert rt.run_helper(bundle, "ls", "/data")["entries"] == ["b"]


def test_nested_mount_destinations(rt, bundle, host_dir):
    outer = host_dir({"o": "1"})
    inner = host_dir({"i": "2"})
    bundle.add_mount("/data", "bind", outer, ["rbind"])
    bundle.add_mount("/data/inner", "bind", inner, ["rbind"])
    assert rt.run_helper(bundle, "ls", "/data/inner")["entries"] == ["i"]
    # the mountpoint directory was created in the (bind-mounted) outer host dir
    assert os.path.isdir(os.path.join(outer, "inner"))


# ---- propagation ----

def test_bind_mount_rshared(rt, bundle, host_dir):
    src = host_dir({"f": "x"})
    bundle.add_mount("/data", "bind", src, ["rbind", "rshared"])
    assert tagged(mounts_by_point(rt, bundle)["/data"], "shared:")


def test_bind_mount_rprivate(rt, bundle, host_dir):
    src = host_dir({"f": "x"})
    bundle.add_mount("/data", "bind", src, ["rbind", "rprivate"])
    m = mounts_by_point(rt, bundle)["/data"]
    assert not tagged(m, "shared:") and not tagged(m, "master:")


def test_bind_mount_runbindable(rt, bundle, host_dir):
    src = host_dir({"f": "x"})
    bundle.add_mount("/data", "bind", src, ["rbind", "runbindable"])
    assert "unbindable" in mounts_by_point(rt, bundle)["/data"]["optional"]


@pytest.mark.parametrize("prop", ["private", "slave", "rprivate", "rslave"])
def test_rootfs_propagation_not_shared(rt, bundle, prop):
    bundle.config["linux"]["rootfsPropagation"] = prop.lstrip("r")
    root = mounts_by_point(rt, bundle)["/"]
    assert not tagged(root, "shared:"), root


# runc 1.1 makes the rootfs' parent private before binding it, so "shared" has no effect on "/",
# and "unbindable" makes its own rootfs bind fail with EINVAL. The spec says the value sets the
# rootfs mount's propagation; silo-runtime does that.
@pytest.mark.silo_only
@pytest.mark.parametrize("prop,expect", [("shared", "shared:"), ("unbindable", "unbindable")])
def test_rootfs_propagation_applied_to_root(rt, bundle, prop, expect):
    bundle.config["linux"]["rootfsPropagation"] = prop
    root = mounts_by_point(rt, bundle)["/"]
    assert tagged(root, expect), root


def test_rootfs_propagation_default_not_shared(rt, bundle):
    root = mounts_by_point(rt, bundle)["/"]
    assert not tagged(root, "shared:"), root


# ---- /dev ----

DEFAULT_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                   "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


@pytest.mark.parametrize("path", sorted(DEFAULT_DEVICES))
def test_default_devices(rt, bundle, path):
    st = rt.run_helper(bundle, "stat", path)
    assert st["exists"] and st["type"] == "chr", st
    assert (st["rdev_major"], st["rdev_minor"]) == DEFAULT_DEVICES[path]
    assert st["mode"] == 0o666


def test_default_devices_usable(rt, bundle):
    bundle.args("/bin/sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c && "
                "head -c 4 /dev/urandom | wc -c")
    res = rt.run(bundle)
    res.check()
    assert res.stdout.split() == ["4", "4"]


@pytest.mark.parametrize("path,target", [
    ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
])
def test_dev_symlinks(rt, bundle, path, target):
    st = rt.run_helper(bundle, "stat", path)
    assert st["type"] == "lnk", st
    assert st["link"] == target


def test_dev_has_no_host_devices(rt, bundle):
    entries = set(rt.run_helper(bundle, "ls", "/dev")["entries"])
    for host_only in ("vda", "kmsg", "mem", "port", "loop0"):
        assert host_only not in entries


def test_host_device_access_denied_by_cgroup(rt, bundle):
    """mknod works with CAP_MKNOD, but the device cgroup refuses opening the node."""
    caps = h.DEFAULT_CAPS + ["CAP_MKNOD"]
    for s in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][s] = caps
    vda = os.stat("/dev/vda").st_rdev
    bundle.args("/bin/sh", "-c", f"mknod /tmp/disk b {os.major(vda)} {os.minor(vda)} && "
                f"{h.HELPER} open /tmp/disk r")
    res = rt.run(bundle)
    res.check()
    assert res.json["error"] == "EPERM"


def test_linux_devices_created(rt, bundle):
    bundle.linux["devices"] = [
        {"path": "/dev/custom-null", "type": "c", "major": 1, "minor": 3,
         "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/fake-loop", "type": "b", "major": 7, "minor": 200,
         "fileMode": 0o600, "uid": 0, "gid": 0},
    ]
    bundle.args("/bin/sh", "-c", f"{h.HELPER} stat /dev/custom-null; "
                f"{h.HELPER} stat /dev/sub/fake-loop")
    res = rt.run(bundle)
    res.check()
    import json
    null, loop = (json.loads(l) for l in res.stdout.splitlines())
    assert null["type"] == "chr" and (null["rdev_major"], null["rdev_minor"]) == (1, 3)
    assert null["mode"] == 0o640 and (null["uid"], null["gid"]) == (1000, 1001)
    assert loop["type"] == "blk" and (loop["rdev_major"], loop["rdev_minor"]) == (7, 200)
    assert loop["mode"] == 0o600


def test_linux_devices_without_cgroup_rule_not_openable(rt, bundle):
    bundle.linux["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                                "fileMode": 0o600}]
    assert rt.run_helper(bundle, "open", "/dev/kmsg", "w")["error"] == "EPERM"


def test_device_cgroup_allow_rule(rt, bundle):
    bundle.linux["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                                "fileMode": 0o600}]
    bundle.linux["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"})
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    # opening /dev/kmsg write-only needs no capability; we never write to it
    res = rt.exec(bundle.cid, "open", "/dev/kmsg", "w")
    res.check()
    assert res.json["ok"], res.json
    rules = h.read_cgroup_file("devices", bundle.cgroups_path, "devices.list").splitlines()
    assert any(r.startswith("c 1:11 ") and "w" in r.split()[2] for r in rules), rules
    rt.delete(bundle.cid, force=True).check()


# ---- masked and read-only paths ----

@pytest.mark.parametrize("path", ["/proc/keys", "/proc/timer_list", "/proc/kcore"])
def test_masked_file_is_dev_null(rt, bundle, path):
    if not os.path.exists(path):
        # Nothing to mask (this kernel has no /proc/kcore): masking a path that
        # does not exist must neither fail the container nor create anything.
        assert path in bundle.linux["maskedPaths"]
        st = rt.run_helper(bundle, "stat", path)
        assert not st["exists"] and st["error"] == "ENOENT"
        return
    st = rt.run_helper(bundle, "stat", path)
    assert st["type"] == "chr" and (st["rdev_major"], st["rdev_minor"]) == (1, 3)
    assert rt.run_helper(bundle, "read", path)["data"] == ""


def test_masked_proc_directory(rt, bundle):
    bundle.linux["maskedPaths"].append("/proc/driver")
    bundle.linux["maskedPaths"].append("/sys/firmware")
    assert rt.run_helper(bundle, "ls", "/sys/firmware")["entries"] == []
    mounts = mounts_by_point(rt, bundle)
    assert mounts["/sys/firmware"]["fstype"] == "tmpfs"
    assert "ro" in mounts["/sys/firmware"]["options"].split(",")


def test_masked_directory_is_empty_readonly(rt, bundle):
    bundle.linux["maskedPaths"].append("/etc")
    bundle.args("/bin/sh", "-c", f"{h.HELPER} ls /etc; {h.HELPER} write /etc/x")
    res = rt.run(bundle)
    res.check()
    import json
    ls, write = (json.loads(l) for l in res.stdout.splitlines())
    assert ls["entries"] == []
    assert write["ok"] is False


def test_masked_rootfs_file(rt, bundle):
    with open(bundle.root_path("/etc/secret"), "w") as f:
        f.write("top secret")
    bundle.linux["maskedPaths"].append("/etc/secret")
    assert rt.run_helper(bundle, "read", "/etc/secret")["data"] == ""


def test_masked_missing_path_is_ignored(rt, bundle):
    bundle.linux["maskedPaths"].append("/does/not/exist")
    assert rt.run_helper(bundle, "stat", "/does/not/exist")["exists"] is False


def test_readonly_paths(rt, bundle):
    res = rt.run_helper(bundle, "write", "/proc/sys/kernel/domainname", "x")
    assert res["error"] == "EROFS"
    mounts = mounts_by_point(rt, bundle)
    for path in bundle.linux["readonlyPaths"]:
        if os.path.exists(path):
            assert "ro" in mounts[path]["options"].split(","), path


def test_readonly_rootfs_path(rt, bundle):
    os.mkdir(bundle.root_path("/ro-dir"))
    bundle.linux["readonlyPaths"].append("/ro-dir")
    assert rt.run_helper(bundle, "write", "/ro-dir/x")["error"] == "EROFS"
    assert rt.run_helper(bundle, "write", "/tmp/x")["ok"]


def test_readonly_missing_path_is_ignored(rt, bundle):
    bundle.linux["readonlyPaths"].append("/does/not/exist")
    rt.run_helper(bundle, "cwd")


# ---- sysctl ----

def test_sysctl_net(rt, bundle):
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "net.ipv4.ping_group_range": "0 0"}
    assert rt.run_helper(bundle, "sysctl", "net.ipv4.ip_forward")["value"] == "1"
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        host = f.read()
    assert rt.run_helper(bundle, "sysctl", "net.ipv4.ping_group_range")["value"] == "0\t0"
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        assert f.read() == host  # host unchanged


def test_sysctl_ipc(rt, bundle):
    bundle.linux["sysctl"] = {"kernel.msgmax": "4096", "fs.mqueue.msg_max": "5"}
    assert rt.run_helper(bundle, "sysctl", "kernel.msgmax")["value"] == "4096"
    assert rt.run_helper(bundle, "sysctl", "fs.mqueue.msg_max")["value"] == "5"


def test_sysctl_slash_separated_name(rt, bundle):
    bundle.linux["sysctl"] = {"net/ipv4/ip_forward": "1"}
    res = rt.run(bundle.args("sysctl", "net.ipv4.ip_forward"))
    res.check()
    assert res.json["value"] == "1"
