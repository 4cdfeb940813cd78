# SPDX-License-Identifier: Apache-2.0
"""HostConfig through the real docker CLI: how `docker run` options land in
the container (mounts, cgroup limits, capabilities, seccomp, rlimits,
sysctls, --init) and which bad values are refused with a message naming
the field.  One private silod per module (daemon_support.py), whose teardown
checks that nothing is left behind."""

import json
import os
import resource
import shutil
import tempfile
import time

from daemon_support import daemon, image  # noqa: F401 - fixtures


def status_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


def cgroup_file(daemon, cid, ctrl_names, name):
    for ctrl in ctrl_names:
        path = os.path.join("/sys/fs/cgroup", ctrl, daemon.cgroup_parent.lstrip("/"), cid, name)
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
    raise AssertionError(f"no {name} for {cid} under {daemon.cgroup_parent}")


def run_out(daemon, *args):
    return daemon.docker("run", "--rm", *args).stdout


def create_error(daemon, host_config, extra=None):
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}
    body.update(extra or {})
    status, payload, _ = daemon.api("POST", "/containers/create", body)
    assert status == 400, (status, payload)
    return json.loads(payload)["message"]


# ---- mounts ----

def test_bind_mount_ro_and_rw(daemon, image):
    host = tempfile.mkdtemp(prefix="silo-bind-")
    try:
        with open(os.path.join(host, "f"), "w") as f:
            f.write("from host\n")
        p = daemon.docker("run", "--rm", "-v", f"{host}:/x:ro", image, "sh", "-c",
                          "cat /x/f; touch /x/new", check=False)
        assert p.stdout == "from host\n"
        assert p.returncode != 0 and "Read-only file system" in p.stderr
        assert not os.path.exists(os.path.join(host, "new"))
        run_out(daemon, "-v", f"{host}:/x", image, "sh", "-c", "echo back > /x/new")
        with open(os.path.join(host, "new")) as f:
            assert f.read() == "back\n"
        # --mount type=bind, read-only, and a source that does not exist.
        p = daemon.docker("run", "--rm", "--mount", f"type=bind,src={host},dst=/m,readonly", image,
                          "sh", "-c", "cat /m/new; grep ' /m ' /proc/mounts")
        assert p.stdout.startswith("back\n") and " ro," in p.stdout
        p = daemon.docker("run", "--rm", "--mount", f"type=bind,src={host}/missing,dst=/m", image, "true",
                          check=False)
        assert p.returncode != 0 and "bind source path does not exist" in p.stderr
        # -v creates a missing host directory, as docker does.
        run_out(daemon, "-v", f"{host}/made:/made", image, "true")
        assert os.path.isdir(os.path.join(host, "made"))
    finally:
        shutil.rmtree(host)


def test_tmpfs_and_shm_size(daemon, image):
    out = run_out(daemon, "--tmpfs", "/t:size=1m,exec", "--mount",
                  "type=tmpfs,dst=/t2,tmpfs-size=2097152,tmpfs-mode=1770", "--shm-size", "32m", image,
                  "sh", "-c", "grep -E ' /(t|t2|dev/shm) ' /proc/mounts; stat -c %a /t2")
    mounts = {line.split()[1]: line.split()[3] for line in out.splitlines() if line.startswith(("tmpfs", "shm"))}
    assert "size=1024k" in mounts["/t"] and "noexec" not in mounts["/t"] and "nosuid" in mounts["/t"]
    assert "size=2048k" in mounts["/t2"] and "noexec" in mounts["/t2"]
    assert "size=32768k" in mounts["/dev/shm"]
    assert out.splitlines()[-1] == "1770"


def test_read_only_rootfs(daemon, image):
    p = daemon.docker("run", "--rm", "--read-only", "--tmpfs", "/scratch", image, "sh", "-c",
                      "touch /scratch/ok && touch /x", check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr


# ---- resources ----

def test_memory_cpu_pids_land_in_the_cgroup(daemon, image):
    cid = daemon.docker("run", "-d", "--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m",
                        "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "50",
                        image, "sleep", "30").stdout.strip()
    try:
        assert cgroup_file(daemon, cid, ["memory"], "memory.limit_in_bytes") == str(64 << 20)
        assert cgroup_file(daemon, cid, ["memory"], "memory.memsw.limit_in_bytes") == str(128 << 20)
        assert cgroup_file(daemon, cid, ["memory"], "memory.soft_limit_in_bytes") == str(32 << 20)
        cpu = ["cpu,cpuacct", "cpu"]
        assert cgroup_file(daemon, cid, cpu, "cpu.cfs_period_us") == "100000"
        assert cgroup_file(daemon, cid, cpu, "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(daemon, cid, cpu, "cpu.shares") == "512"
        assert cgroup_file(daemon, cid, ["cpuset"], "cpuset.cpus") == "0"
        assert cgroup_file(daemon, cid, ["pids"], "pids.max") == "50"
        doc = json.loads(daemon.docker("inspect", cid).stdout)[0]
        assert doc["HostConfig"]["NanoCpus"] == 500000000 and doc["HostConfig"]["Memory"] == 64 << 20
    finally:
        daemon.docker("rm", "-f", cid)
    cid = daemon.docker("run", "-d", "--cpu-period", "50000", "--cpu-quota", "25000", image,
                        "sleep", "30").stdout.strip()
    try:
        assert cgroup_file(daemon, cid, ["cpu,cpuacct", "cpu"], "cpu.cfs_quota_us") == "25000"
        assert cgroup_file(daemon, cid, ["cpu,cpuacct", "cpu"], "cpu.cfs_period_us") == "50000"
    finally:
        daemon.docker("rm", "-f", cid)


def test_ulimits(daemon, image):
    out = run_out(daemon, "--ulimit", "nofile=512:1024", image, "sh", "-c", "ulimit -n; ulimit -Hn")
    assert out.split() == ["512", "1024"]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # silod's, inherited from us
    p = daemon.docker("run", "--rm", "--ulimit", f"nofile=512:{hard + 1}", image, "true", check=False)
    assert p.returncode != 0
    assert "HostConfig.Ulimits[0]" in p.stderr and "exceeds this host's hard limit" in p.stderr


def test_sysctls_shm_oom_score_and_groups(daemon, image):
    out = run_out(daemon, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmni=1000",
                  "--oom-score-adj", "500", "--group-add", "1234", "--group-add", "user", image, "sh", "-c",
                  "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni /proc/self/oom_score_adj; id -G")
    lines = out.split("\n")
    assert lines[:3] == ["1", "1000", "500"]
    groups = lines[3].split()
    assert "1234" in groups and "1000" in groups  # "user" is gid 1000 in the test image
    # Host-wide sysctls are refused by silod itself (the CLI checks some too).
    msg = create_error(daemon, {"Sysctls": {"vm.swappiness": "1"}})
    assert "HostConfig.Sysctls.vm.swappiness" in msg and "not allowed" in msg


# ---- security ----

DEFAULT_CAPS = "00000000a80425fb"  # docker's default set


def test_default_caps_seccomp_and_masked_paths(daemon, image):
    out = run_out(daemon, image, "sh", "-c", "cat /proc/self/status; grep ' /sys ' /proc/mounts")
    assert status_field(out, "CapEff") == DEFAULT_CAPS and status_field(out, "CapBnd") == DEFAULT_CAPS
    assert status_field(out, "Seccomp") == "2" and status_field(out, "NoNewPrivs") == "0"
    assert " ro," in out.splitlines()[-1]
    # The default profile refuses namespace creation (even unprivileged
    # user namespaces) and keyrings; the kernel would allow unshare -U.
    p = daemon.docker("run", "--rm", image, "unshare", "-U", "true", check=False)
    assert p.returncode != 0 and "Operation not permitted" in p.stderr
    p = daemon.docker("run", "--rm", "--security-opt", "seccomp=unconfined", image, "sh", "-c",
                      "grep Seccomp: /proc/self/status")
    assert p.stdout.split() == ["Seccomp:", "0"]


def test_cap_add_drop(daemon, image):
    out = run_out(daemon, "--cap-drop", "ALL", image, "cat", "/proc/self/status")
    assert status_field(out, "CapEff") == "0000000000000000"
    assert status_field(out, "CapBnd") == "0000000000000000"
    out = run_out(daemon, "--cap-drop", "ALL", "--cap-add", "net_admin", image, "cat", "/proc/self/status")
    assert status_field(out, "CapEff") == "0000000000001000"
    out = run_out(daemon, "--cap-drop", "CHOWN", "--cap-add", "SYS_ADMIN", image, "cat", "/proc/self/status")
    eff = int(status_field(out, "CapEff"), 16)
    assert eff == (int(DEFAULT_CAPS, 16) & ~1) | (1 << 21)
    # With CAP_SYS_ADMIN the default profile lets namespaces be made.
    run_out(daemon, "--cap-add", "SYS_ADMIN", image, "unshare", "-U", "true")
    p = daemon.docker("run", "--rm", "--cap-add", "NOPE", image, "true", check=False)
    assert p.returncode != 0 and "unknown capability" in p.stderr and "CapAdd[0]" in p.stderr


def test_privileged(daemon, image):
    out = run_out(daemon, "--privileged", image, "sh", "-c",
                  "cat /proc/self/status; grep ' /sys ' /proc/mounts; grep -c ' /proc/' /proc/mounts; ls /dev")
    own = int(status_field(open("/proc/self/status").read(), "CapPrm"), 16)
    assert int(status_field(out, "CapEff"), 16) == own
    assert status_field(out, "Seccomp") == "0"
    sys_line = [line for line in out.splitlines() if " /sys " in line][0]
    assert " rw," in sys_line
    # No masked or read-only /proc paths.
    assert not [line for line in out.splitlines() if line.startswith(("tmpfs /proc", "devtmpfs /proc"))]
    host_devs = set(os.listdir("/dev"))
    if "loop0" in host_devs:
        assert "loop0" in out.split()


def test_no_new_privileges_and_seccomp_profile(daemon, image, tmp_path):
    out = run_out(daemon, "--security-opt", "no-new-privileges", image, "cat", "/proc/self/status")
    assert status_field(out, "NoNewPrivs") == "1"
    out = run_out(daemon, "--security-opt", "no-new-privileges:true", image, "cat", "/proc/self/status")
    assert status_field(out, "NoNewPrivs") == "1"
    # A docker-format profile (archMap, includes): mkdir refused.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_MODULE"]}},
        ],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    p = daemon.docker("run", "--rm", "--security-opt", f"seccomp={path}", image, "sh", "-c",
                      "cd /tmp && mkdir /tmp/d", check=False)
    assert p.returncode != 0 and "Operation not permitted" in p.stderr
    bad = dict(profile, defaultAction="SCMP_ACT_NOPE")
    path.write_text(json.dumps(bad))
    p = daemon.docker("run", "--rm", "--security-opt", f"seccomp={path}", image, "true", check=False)
    assert p.returncode != 0 and "seccomp" in p.stderr and "SCMP_ACT_NOPE" in p.stderr
    p = daemon.docker("run", "--rm", "--security-opt", "bogus=1", image, "true", check=False)
    assert p.returncode != 0 and "Invalid --security-opt" in p.stderr
    # label/apparmor: no such LSM here; accepted with a warning, as docker does.
    status, payload, _ = daemon.api("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"SecurityOpt": ["label=disable", "apparmor=x"]}})
    doc = json.loads(payload)
    assert status == 201 and len(doc["Warnings"]) == 2
    daemon.docker("rm", doc["Id"])


# ---- --init ----

def test_init_reaps_and_forwards_signals(daemon, image):
    out = run_out(daemon, "--init", image, "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$")
    first, pid = out.splitlines()
    assert first.startswith("/sbin/docker-init -- sh -c") and pid != "1"
    # A re-parented orphan is reaped: no zombie stays behind PID 1.
    out = run_out(daemon, "--init", image, "sh", "-c",
                  "(sleep 0.2 &) ; sleep 0.6; grep -l '^State:.*Z' /proc/[0-9]*/status || echo none")
    assert out.strip() == "none"
    # The exit status is the command's; signals reach the command.
    p = daemon.docker("run", "--rm", "--init", image, "sh", "-c", "exit 7", check=False)
    assert p.returncode == 7
    cid = daemon.docker("run", "-d", "--init", image, "sh", "-c",
                        "trap 'echo got-term; exit 3' TERM; while true; do sleep 0.1; done").stdout.strip()
    time.sleep(0.5)
    daemon.docker("stop", "-t", "5", cid)
    doc = json.loads(daemon.docker("inspect", cid).stdout)[0]
    assert doc["State"]["ExitCode"] == 3
    assert "got-term" in daemon.docker("logs", cid).stdout
    daemon.docker("rm", cid)


# ---- Config fields kept for inspect ----

def test_labels_stop_signal_healthcheck_in_inspect(daemon, image):
    cid = daemon.docker("create", "--label", "a=b", "--stop-signal", "SIGUSR1", "--stop-timeout", "3",
                        "--health-cmd", "true", "--restart", "on-failure:3", image, "true").stdout.strip()
    doc = json.loads(daemon.docker("inspect", cid).stdout)[0]
    assert doc["Config"]["Labels"] == {"a": "b"}
    assert doc["Config"]["StopSignal"] == "SIGUSR1" and doc["Config"]["StopTimeout"] == 3
    assert doc["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    daemon.docker("rm", cid)


# ---- refused values ----

def test_bad_values_are_clear_errors(daemon, image):
    for args, want in [
        (["--memory", "1k"], "Minimum memory limit allowed is 6MB"),
        (["--cpus", "99"], "Range of CPUs is from 0.01"),
        (["--cpuset-cpus", "64"], "HostConfig.CpusetCpus"),
        (["--memory", "64m", "--memory-swap", "32m"], "Minimum memoryswap limit"),
        (["--oom-score-adj", "5000"], "HostConfig.OomScoreAdj"),
        (["--ulimit", "nofile=2048:1024"], "soft limit must be less than or equal to hard"),
        (["-v", "bad name!:/x"], "invalid"),
        (["-v", "/tmp:relative"], "invalid"),
        (["--tmpfs", "/t:bogus=1"], "invalid tmpfs option"),
        (["--group-add", "nosuchgroup"], "Unable to find group nosuchgroup"),
    ]:
        p = daemon.docker("run", "--rm", *args, image, "true", check=False)
        assert p.returncode != 0 and want in p.stderr, (args, p.stderr)
    # Through the raw API: field types, mount types, restart policies.
    assert "HostConfig.Memory: expected an integer, got string" in create_error(daemon, {"Memory": "x"})
    assert "HostConfig.Binds" in create_error(daemon, {"Binds": "notalist"})
    msg = create_error(daemon, {"Mounts": [{"Type": "npipe", "Target": "/x"}]})
    assert "HostConfig.Mounts[0].Type" in msg and "npipe" in msg
    assert "HostConfig.Mounts[0].Target" in create_error(daemon, {"Mounts": [{"Type": "tmpfs"}]})
    msg = create_error(daemon, {"Binds": ["/a:/x", "/b:/x"]})
    assert "Duplicate mount point: /x" in msg
    assert "HostConfig.RestartPolicy.Name" in create_error(daemon, {"RestartPolicy": {"Name": "sometimes"}})
    msg = create_error(daemon, {"RestartPolicy": {"Name": "always"}, "AutoRemove": True})
    assert "autoremove" in msg
    msg = create_error(daemon, {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}})
    assert "maximum retry count cannot be used" in msg
    assert "HostConfig.CapDrop[0]" in create_error(daemon, {"CapDrop": ["CAP_NOPE"]})
    msg = create_error(daemon, {"SecurityOpt": ["seccomp=/etc/profile.json"]})
    assert "JSON content" in msg
    assert "HostConfig.Tmpfs./t" in create_error(daemon, {"Tmpfs": {"/t": 5}})
    assert "HostConfig.NanoCpus" in create_error(daemon, {"NanoCpus": 500000000, "CpuPeriod": 100000})
    assert "HostConfig.Isolation" in create_error(daemon, {"Isolation": "bogus"})
    msg = create_error(daemon, {"Isolation": "vm", "NetworkMode": "host"})
    assert "HostConfig.NetworkMode" in msg and "cannot share the host's" in msg
    # Nothing was created by any of them.
    assert daemon.docker("ps", "-aq").stdout.strip() == ""
