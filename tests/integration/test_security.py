# SPDX-License-Identifier: Apache-2.0
"""Security properties. Tests marked silo_only check guarantees runc 1.1 does not give (they are
skipped only when SILO_RUNTIME names another runtime)."""

import json
import os
import shutil
import subprocess
import time

import pytest

import silo_harness as h


# ---- /proc and mount destinations through symlinks ----

def test_proc_symlink_outside_rootfs_refused(rt, bundle, host_dir):
    target = host_dir()
    os.rmdir(bundle.root_path("/proc"))
    os.symlink(target, bundle.root_path("/proc"))
    res = rt.run(bundle.args("exit", "0"))
    assert res.returncode != 0
    assert "/proc" in res.stderr
    assert os.listdir(target) == []


def test_proc_symlink_inside_rootfs_refused(rt, bundle):
    os.rmdir(bundle.root_path("/proc"))
    os.makedirs(bundle.root_path("/fakeproc"))
    os.symlink("fakeproc", bundle.root_path("/proc"))
    res = rt.run(bundle.args("exit", "0"))
    assert res.returncode != 0
    assert "/proc" in res.stderr


@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_mount_destination_symlink_stays_in_rootfs(rt, bundle, host_dir, link):
    """A rootfs symlink pointing "outside" is resolved inside the rootfs (as if chrooted)."""
    outside = host_dir()
    src = host_dir({"payload": "p"})
    if link == "absolute":
        os.symlink(outside, bundle.root_path("/evil"))
    else:
        os.symlink("../../../../../../../../.." + outside, bundle.root_path("/evil"))
    bundle.add_mount("/evil/sub", "bind", src, ["rbind"])
    res = rt.run(bundle.args("ls", "/evil/sub"))
    res.check()
    assert res.json["entries"] == ["payload"]
    assert os.listdir(outside) == [], "the runtime followed the symlink out of the rootfs"
    # it went to <rootfs>/<outside path>/sub
    assert os.path.isdir(bundle.root_path(outside + "/sub"))


def test_tmpfs_destination_symlink_stays_in_rootfs(rt, bundle, host_dir):
    outside = host_dir({"keep": "k"})
    os.symlink(outside, bundle.root_path("/evil"))
    bundle.add_mount("/evil", "tmpfs", "tmpfs", ["size=1m"])
    res = rt.run(bundle.args("ls", outside))
    res.check()
    assert os.listdir(outside) == ["keep"]


@pytest.mark.silo_only  # runc 1.1 creates /dev/fd, /dev/stdin... through the symlink, on the host
def test_dev_symlink_outside_rootfs(rt, bundle, host_dir):
    """/dev replaced by a symlink out of the rootfs: devices must not be created outside."""
    outside = host_dir()
    subprocess.run(["rm", "-rf", bundle.root_path("/dev")], check=True)
    os.symlink(outside, bundle.root_path("/dev"))
    rt.run(bundle.args("exit", "0"))  # may fail or succeed; either way nothing escapes
    assert os.listdir(outside) == []


def test_bind_onto_proc_sensitive_file_refused(rt, bundle, host_dir):
    src = host_dir({"f": "|/tmp/evil"})
    bundle.add_mount("/proc/sys/kernel/core_pattern", "bind", os.path.join(src, "f"), ["bind"])
    res = rt.run(bundle.args("exit", "0"))
    assert res.returncode != 0
    assert "core_pattern" in res.stderr


def test_container_cannot_write_host_proc_sys(rt, bundle):
    res = rt.run_helper(bundle, "write", "/proc/sys/kernel/core_pattern", "|/tmp/evil")
    assert res["ok"] is False


def test_container_cannot_write_sysfs(rt, bundle):
    res = rt.run_helper(bundle, "write", "/sys/kernel/uevent_helper", "/tmp/evil")
    assert res["ok"] is False


# ---- maskedPaths with a hostile /dev/null ----

def rootfs_dev_only(bundle):
    """No /dev tmpfs: /dev comes from the (untrusted) rootfs image."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    os.makedirs(bundle.root_path("/dev"), exist_ok=True)


@pytest.mark.silo_only  # runc < 1.2.8 bind-mounts whatever the rootfs has at /dev/null
def test_masked_paths_with_regular_file_dev_null(rt, bundle):
    rootfs_dev_only(bundle)
    with open(bundle.root_path("/dev/null"), "w") as f:
        f.write("NOT A DEVICE\n")
    bundle.args("/bin/sh", "-c", f"{h.HELPER} stat /proc/keys; {h.HELPER} read /proc/keys")
    res = rt.run(bundle)
    with open(bundle.root_path("/dev/null")) as f:
        assert f.read() == "NOT A DEVICE\n", "the runtime wrote into the image's fake /dev/null"
    # masking must use a verified char 1:3 device, whatever the image has at /dev/null
    res.check()
    st, data = (json.loads(l) for l in res.stdout.splitlines())
    assert st["type"] == "chr" and (st["rdev_major"], st["rdev_minor"]) == (1, 3), st
    assert data["data"] == ""


@pytest.mark.silo_only
def test_masked_paths_with_symlink_dev_null(rt, bundle):
    rootfs_dev_only(bundle)
    with open(bundle.root_path("/etc/secret"), "w") as f:
        f.write("SECRET\n")
    os.symlink("/etc/secret", bundle.root_path("/dev/null"))
    bundle.args("read", "/proc/keys")
    res = rt.run(bundle)
    assert "SECRET" not in res.stdout
    res.check()
    assert res.json["data"] == ""


@pytest.mark.silo_only
def test_stdio_not_redirected_to_image_dev_null(rt, bundle):
    """The caller's stdio must reach the container even if the image's /dev/null is bogus."""
    rootfs_dev_only(bundle)
    with open(bundle.root_path("/dev/null"), "w") as f:
        f.write("")
    res = rt.run(bundle.args("/bin/sh", "-c", "echo visible"))
    res.check()
    assert res.stdout == "visible\n"


# ---- fds and capabilities ----

def test_runtime_fds_not_leaked_into_container(rt, bundle):
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(5)]
    try:
        log = os.path.join(rt.test_dir, "runtime.log")
        res = rt.cmd("run", "--bundle", bundle.path, bundle.cid,
                     global_args=["--log", log, "--log-format", "json"], pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    rt.ids.add(bundle.cid)
    res.check()
    assert [f["fd"] for f in res.json["fds"]] == [0, 1, 2]


def test_runtime_fds_not_leaked_into_exec(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]
    try:
        res = rt.exec(bundle.cid, "fds", pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    res.check()
    assert [f["fd"] for f in res.json["fds"]] == [0, 1, 2]
    rt.delete(bundle.cid, force=True).check()


def test_no_inheritable_or_ambient_caps_by_default(rt, bundle):
    caps = rt.run_helper(bundle, "caps")
    assert int(caps["inh"], 16) == 0
    assert int(caps["amb"], 16) == 0


def test_exec_has_no_inheritable_or_ambient_caps(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "caps", opts=["--cap", "CAP_SYS_ADMIN"])
    res.check()
    assert int(res.json["inh"], 16) == 0
    assert int(res.json["amb"], 16) == 0
    rt.delete(bundle.cid, force=True).check()


def test_exec_does_not_gain_init_privileges_it_was_not_given(rt, bundle):
    bundle.process["noNewPrivileges"] = True
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "seccomp")
    res.check()
    assert res.json["no_new_privs"] == 1
    rt.delete(bundle.cid, force=True).check()


# ---- /proc/self/exe (CVE-2019-5736) ----

def runtime_identity():
    st = os.stat(os.path.realpath(h.RUNTIME))
    return os.major(st.st_dev), os.minor(st.st_dev), st.st_ino


def assert_runtime_not_writable(reports):
    ident = runtime_identity()
    for r in reports:
        for prefix in ("write", "reopen"):
            if r.get(f"{prefix}_ok") or r.get(f"{prefix}_write_ok"):
                got = (r.get(f"{prefix}_dev_major"), r.get(f"{prefix}_dev_minor"),
                       r.get(f"{prefix}_ino"))
                assert got != ident, f"container got a writable handle on the runtime: {r}"


def write_exe_script(bundle, path="/evil.sh"):
    with open(bundle.root_path(path), "w") as f:
        f.write("#!/proc/self/exe\n")
    os.chmod(bundle.root_path(path), 0o755)


def test_proc_self_exe_script_as_init(rt, bundle):
    before = h.sha256_file(os.path.realpath(h.RUNTIME))
    write_exe_script(bundle)
    bundle.args("/evil.sh")
    res = rt.run(bundle, timeout=20)
    # whatever the runtime binary does when re-executed inside, it must not be the runtime
    # running with host privileges over the host binary
    assert h.sha256_file(os.path.realpath(h.RUNTIME)) == before
    print(res.describe())


def test_proc_self_exe_script_via_exec(rt, bundle):
    before = h.sha256_file(os.path.realpath(h.RUNTIME))
    write_exe_script(bundle)
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    for _ in range(3):
        rt.exec(bundle.cid, "/evil.sh", timeout=20)
    assert h.sha256_file(os.path.realpath(h.RUNTIME)) == before
    rt.delete(bundle.cid, force=True).check()


@pytest.mark.parametrize("ptrace", [False, True])
def test_runtime_exe_not_writable_during_exec(rt, bundle, ptrace):
    """A container process watches for the runtime entering it (exec) and tries to get a
    writable handle on its executable, directly and via an O_PATH fd reopened later."""
    before = h.sha256_file(os.path.realpath(h.RUNTIME))
    write_exe_script(bundle)
    if ptrace:
        for s in ("bounding", "effective", "permitted"):
            bundle.process["capabilities"][s].append("CAP_SYS_PTRACE")
    bundle.args("exe-watch", "4")
    res = rt.run(bundle, detach=True)
    res.check()
    time.sleep(0.3)
    for _ in range(3):
        rt.exec(bundle.cid, "exit", "0", timeout=20)
        rt.exec(bundle.cid, "/evil.sh", timeout=20)
    rt.wait_status(bundle.cid, "stopped", timeout=20)
    with open(res.stdout_path) as f:
        report = h.parse_json_output(f.read())
    print(json.dumps(report, indent=1))
    assert_runtime_not_writable(report["seen"])
    assert h.sha256_file(os.path.realpath(h.RUNTIME)) == before
    rt.delete(bundle.cid).check()


def test_try_exe_write_inside(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "try-exe-write")
    res.check()
    report = res.json
    assert report["self"]["write_ok"] is False
    assert report["self"].get("reopen_write_ok") is not True
    assert_runtime_not_writable([report["self"], report["parent"]] + report["all"])
    rt.delete(bundle.cid, force=True).check()


# ---- container IDs ----

BAD_IDS = ["a/b", "../escape", "..", ".", "", "a b", "with\nnewline", "x" * 1025,
           "/abs", "a\\b"]


@pytest.mark.parametrize("cid", BAD_IDS, ids=lambda c: repr(c)[:20])
def test_bad_container_id_rejected_before_state(rt, bundle, cid):
    bundle.args("exit", "0")
    before = set(os.listdir(rt.test_dir))
    res = rt.create(bundle, cid=cid)
    rt.ids.discard(cid)
    assert res.returncode != 0
    assert len(res.error_lines) >= 1 and res.stderr.strip()
    assert not os.path.exists(os.path.join(rt.test_dir, "escape"))
    after = set(os.listdir(rt.test_dir)) - before
    assert after <= {"state"}, after
    if os.path.isdir(rt.root):
        assert os.listdir(rt.root) == []
    # and no cgroup was created for the bundle
    assert not os.path.exists(h.cgroup_dir("pids", bundle.cgroups_path))


@pytest.mark.parametrize("command", [["state"], ["delete", "--force"], ["kill"], ["pause"],
                                     ["ps"], ["events", "--stats"], ["start"]])
def test_path_traversal_id_in_other_commands(rt, bundle, command):
    victim = os.path.join(rt.test_dir, "victim")
    os.makedirs(victim)
    with open(os.path.join(victim, "state.json"), "w") as f:
        f.write("{}")
    os.makedirs(rt.root, mode=0o700, exist_ok=True)
    res = rt.cmd(*command, "../victim")
    assert res.returncode != 0 or command[0] == "delete"
    assert os.path.exists(os.path.join(victim, "state.json")), "runtime touched ../victim"


def test_state_root_not_world_writable(rt, bundle):
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    assert os.stat(rt.root).st_mode & 0o022 == 0
    for entry in os.listdir(rt.root):
        assert os.stat(os.path.join(rt.root, entry)).st_mode & 0o022 == 0
    rt.delete(bundle.cid, force=True).check()


def test_container_cannot_see_host_processes_or_runtime(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "ls", "/proc")
    res.check()
    pids = sorted(int(e) for e in res.json["entries"] if e.isdigit())
    assert pids[0] == 1 and len(pids) == 2  # init and the exec'd helper
    rt.delete(bundle.cid, force=True).check()


def test_no_new_privileges_blocks_setuid(rt, bundle):
    """With noNewPrivileges a setuid-root binary does not raise a user's privileges."""
    import shutil
    shutil.copy(bundle.root_path(h.HELPER), bundle.root_path("/suid-helper"))
    os.chmod(bundle.root_path("/suid-helper"), 0o4755)
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["noNewPrivileges"] = True
    res = rt.run_helper(bundle, "/suid-helper", "ids")
    assert res["euid"] == 1000


def test_runtime_environment_not_leaked(rt, bundle):
    env = dict(os.environ, SILO_HOST_SECRET="hunter2")
    bundle.args("env")
    bundle.write()
    res = rt.cmd("run", "--bundle", bundle.path, bundle.cid, env=env)
    rt.ids.add(bundle.cid)
    res.check()
    assert not any("hunter2" in e for e in res.json["env"])
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "env", env=env)
    res.check()
    assert not any("hunter2" in e for e in res.json["env"])
    rt.delete(bundle.cid, force=True).check()


@pytest.mark.silo_only
def test_immutable_install_needs_no_reexec_and_stays_safe(rt, bundle):
    """An immutable runtime binary (chattr +i) is already out of a container's
    reach: silo-runtime runs it as is, without the protective re-exec, and the
    exec attack still cannot write it."""
    immutable = os.path.join(rt.test_dir, "silo-runtime-immutable")
    shutil.copy2(os.path.realpath(h.RUNTIME), immutable)
    subprocess.run(["chattr", "+i", immutable], check=True)
    original = rt.binary
    try:
        before = h.sha256_file(immutable)
        write_exe_script(bundle)
        bundle.args("exe-watch", "4")
        rt.binary = immutable
        res = rt.run(bundle, detach=True)
        res.check()
        pid = rt.state(bundle.cid)["pid"]
        time.sleep(0.3)
        for _ in range(3):
            rt.exec(bundle.cid, "/evil.sh", timeout=20)
        rt.wait_status(bundle.cid, "stopped", timeout=20)
        with open(res.stdout_path) as f:
            report = h.parse_json_output(f.read())
        for r in report["seen"]:
            assert not r.get("write_ok") and not r.get("reopen_write_ok"), r
        assert h.sha256_file(immutable) == before
        assert pid > 0
        rt.delete(bundle.cid).check()

        # No re-exec: the only execs are the caller's and the container's.
        trace = os.path.join(rt.test_dir, "trace")
        bundle.args("/bin/true")
        bundle.write()
        # LeakSanitizer cannot work under ptrace: off for this traced run only.
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
        p = subprocess.run(["strace", "-f", "-e", "trace=execve,execveat", "-o", trace, immutable,
                            "--root", rt.root, "run", "--bundle", bundle.path, bundle.cid],
                           capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode == 0, p.stderr
        with open(trace) as f:
            calls = [line for line in f if "exec" in line and "resumed" not in line]
        assert not any("execveat" in line for line in calls), calls
    finally:
        rt.binary = original
        subprocess.run(["chattr", "-i", immutable], check=True)
        os.unlink(immutable)


@pytest.mark.silo_only
def test_reexec_runs_from_read_only_mount(rt, bundle):
    """The default install: the init runs the runtime image from a detached
    read-only mount, so even a writable handle on /proc/PID/exe fails (EROFS)."""
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "try-exe-write")
    res.check()
    assert res.json["self"]["write_ok"] is False
    rt.delete(bundle.cid, force=True).check()
