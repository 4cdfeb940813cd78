# SPDX-License-Identifier: Apache-2.0
"""Bad input: every case must fail with a non-zero exit, a one-line error naming the field or path,
and leave nothing behind (state, cgroups, mounts, processes: the `rt` leak checks)."""

import json
import os
import resource

import pytest

import silo_harness as h


def assert_clean_failure(rt, bundle, res, *needles, runc_weak=False):
    """needles: each is a string, or a tuple of alternatives, that must appear in stderr.

    runc_weak marks cases where runc 1.1 fails correctly but with a poor message (a bare "EOF",
    a Go panic, several lines of nsexec noise): for other runtimes only the failure and the
    clean-up are checked; silo-runtime must also give the one-line message."""
    assert res.returncode != 0, res.describe()
    if runc_weak and not h.IS_SILO:
        needles = ()
    lines = res.error_lines if needles else [res.stderr]
    assert len(lines) == 1, f"expected a one-line error, got {lines}"
    low = res.stderr.lower()
    for n in needles:
        alts = n if isinstance(n, tuple) else (n,)
        assert any(a.lower() in low for a in alts), f"error does not mention {alts}: {res.stderr}"
    assert rt.try_state(bundle.cid) is None
    assert not os.path.exists(h.cgroup_dir("pids", bundle.cgroups_path))


def create(rt, bundle):
    return rt.create(bundle)


# ---- config.json itself ----

@pytest.mark.parametrize("raw", [
    "", "{", '{"ociVersion": "1.0.2", "process": {"args": ["x"]', "[]", "null", "42",
    '{"ociVersion": "1.0.2",}', "\xff\xfe garbage",
], ids=["empty", "open-brace", "truncated", "array", "null", "number", "trailing-comma",
        "garbage"])
def test_malformed_config(rt, bundle, raw):
    bundle.set_raw(raw)
    res = create(rt, bundle)
    # runc: a bare "EOF" for an empty file, a nil-pointer panic for "null"
    assert_clean_failure(rt, bundle, res, ("config.json", "json", "unexpected", "invalid"),
                         runc_weak=raw in ("", "null"))


def test_truncated_real_config(rt, bundle):
    text = json.dumps(bundle.config)
    bundle.set_raw(text[:len(text) // 2])
    assert_clean_failure(rt, bundle, create(rt, bundle), ("config.json", "json", "unexpected"))


def test_missing_config(rt, bundle):
    bundle.write = lambda *a, **k: bundle  # keep it missing
    os.unlink(bundle.file("config.json"))
    res = create(rt, bundle)
    assert_clean_failure(rt, bundle, res, "config.json")


def test_missing_bundle_dir(rt, bundle):
    res = rt.cmd("create", "--bundle", os.path.join(rt.test_dir, "nope"), bundle.cid)
    rt.ids.add(bundle.cid)
    assert_clean_failure(rt, bundle, res, "nope")


# ---- wrong types ----

WRONG_TYPES = [
    ("process.args", lambda c: c["process"].__setitem__("args", "silo-test-helper")),
    ("process.env", lambda c: c["process"].__setitem__("env", "A=1")),
    ("process.user.uid", lambda c: c["process"]["user"].__setitem__("uid", "0")),
    ("process.user.gid", lambda c: c["process"]["user"].__setitem__("gid", [0])),
    ("process.cwd", lambda c: c["process"].__setitem__("cwd", 5)),
    ("process.terminal", lambda c: c["process"].__setitem__("terminal", "no")),
    ("process.capabilities.bounding",
     lambda c: c["process"]["capabilities"].__setitem__("bounding", "CAP_KILL")),
    ("process.rlimits", lambda c: c["process"]["rlimits"][0].__setitem__("hard", "1024")),
    ("process.noNewPrivileges", lambda c: c["process"].__setitem__("noNewPrivileges", 1)),
    ("process.oomScoreAdj", lambda c: c["process"].__setitem__("oomScoreAdj", "5")),
    ("root.path", lambda c: c["root"].__setitem__("path", 7)),
    ("root.readonly", lambda c: c["root"].__setitem__("readonly", "yes")),
    ("hostname", lambda c: c.__setitem__("hostname", 3)),
    ("mounts", lambda c: c.__setitem__("mounts", {"destination": "/x"})),
    ("mounts", lambda c: c["mounts"][0].__setitem__("options", "nosuid")),
    ("linux.namespaces", lambda c: c["linux"]["namespaces"][0].__setitem__("type", 1)),
    ("linux.resources.memory.limit",
     lambda c: c["linux"]["resources"].__setitem__("memory", {"limit": "64M"})),
    ("linux.resources.pids.limit",
     lambda c: c["linux"]["resources"].__setitem__("pids", {"limit": "ten"})),
    ("linux.maskedPaths", lambda c: c["linux"].__setitem__("maskedPaths", "/proc/kcore")),
    ("linux.sysctl", lambda c: c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": 1})),
    ("annotations", lambda c: c.__setitem__("annotations", {"a": 1})),
    ("hooks.prestart", lambda c: c.__setitem__("hooks", {"prestart": {"path": "/bin/true"}})),
]


@pytest.mark.parametrize("field,mutate", WRONG_TYPES, ids=[f"{f}-{i}" for i, (f, _) in
                                                         enumerate(WRONG_TYPES)])
def test_wrong_typed_field(rt, bundle, field, mutate):
    mutate(bundle.config)
    res = create(rt, bundle)
    last = field.split(".")[-1]
    assert_clean_failure(rt, bundle, res, (field, last))


# ---- semantic errors ----

def test_missing_rootfs(rt, bundle):
    bundle.config["root"]["path"] = "no-such-rootfs"
    assert_clean_failure(rt, bundle, create(rt, bundle), "no-such-rootfs")


def test_rootfs_is_a_file(rt, bundle):
    with open(bundle.file("rootfs-file"), "w") as f:
        f.write("x")
    bundle.config["root"]["path"] = "rootfs-file"
    assert_clean_failure(rt, bundle, create(rt, bundle), ("rootfs-file", "not a directory"))


def test_missing_root(rt, bundle):
    del bundle.config["root"]
    assert_clean_failure(rt, bundle, create(rt, bundle), "root")


def test_missing_process(rt, bundle):
    del bundle.config["process"]
    assert_clean_failure(rt, bundle, create(rt, bundle), "process")


def test_missing_args(rt, bundle):
    del bundle.config["process"]["args"]
    assert_clean_failure(rt, bundle, create(rt, bundle), "args")


def test_empty_args(rt, bundle):
    bundle.config["process"]["args"] = []
    assert_clean_failure(rt, bundle, create(rt, bundle), "args")


def test_args0_not_found(rt, bundle):
    bundle.config["process"]["args"] = ["/no/such/binary"]
    assert_clean_failure(rt, bundle, create(rt, bundle), "/no/such/binary")


def test_args0_not_executable(rt, bundle):
    with open(bundle.root_path("/not-exec"), "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(bundle.root_path("/not-exec"), 0o644)
    bundle.config["process"]["args"] = ["/not-exec"]
    res = rt.run(bundle)
    assert res.returncode != 0
    assert "not-exec" in res.stderr or "permission denied" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None


def test_relative_cwd(rt, bundle):
    bundle.config["process"]["cwd"] = "tmp"
    assert_clean_failure(rt, bundle, create(rt, bundle), "cwd")


def rlimit_over_hard():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard + 1


def test_rlimit_above_hard_limit(rt, bundle):
    """This machine lacks CAP_SYS_RESOURCE: a hard limit above ours cannot be set."""
    over = rlimit_over_hard()
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": over, "hard": over}]
    assert_clean_failure(rt, bundle, create(rt, bundle), "rlimit")


@pytest.mark.silo_only  # runc says "error setting rlimit type 7"
def test_rlimit_above_hard_limit_names_it(rt, bundle):
    over = rlimit_over_hard()
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": over, "hard": over}]
    assert_clean_failure(rt, bundle, create(rt, bundle), "RLIMIT_NOFILE")


def test_rlimit_soft_above_hard(rt, bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]
    assert_clean_failure(rt, bundle, create(rt, bundle), ("rlimit", "RLIMIT_NOFILE"))


def test_unknown_rlimit(rt, bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    assert_clean_failure(rt, bundle, create(rt, bundle), "RLIMIT_BOGUS")


def test_unknown_namespace_type(rt, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "bogusns"})
    assert_clean_failure(rt, bundle, create(rt, bundle), "bogusns")


def test_duplicate_namespace(rt, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "pid"})
    assert_clean_failure(rt, bundle, create(rt, bundle), ("pid", "namespace"))


@pytest.mark.silo_only  # runc 1.1 only warns "ignoring unknown or unavailable capabilities"
def test_unknown_capability(rt, bundle):
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_BOGUS")
    assert_clean_failure(rt, bundle, create(rt, bundle), "CAP_BOGUS")


def test_hostname_without_uts_namespace(rt, bundle):
    bundle.drop_namespace("uts")
    assert_clean_failure(rt, bundle, create(rt, bundle), ("hostname", "uts"))


def test_user_namespace_without_mappings(rt, bundle):
    bundle.set_namespace("user")
    assert_clean_failure(rt, bundle, create(rt, bundle), ("mapping", "uidMappings"))


@pytest.mark.silo_only  # runc 1.1 silently ignores the mappings
def test_mappings_without_user_namespace(rt, bundle):
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert_clean_failure(rt, bundle, create(rt, bundle), ("mapping", "user"))


def test_sysctl_not_namespaced(rt, bundle):
    bundle.linux["sysctl"] = {"vm.swappiness": "10"}
    with open("/proc/sys/vm/swappiness") as f:
        host = f.read()
    assert_clean_failure(rt, bundle, create(rt, bundle), "vm.swappiness")
    with open("/proc/sys/vm/swappiness") as f:
        assert f.read() == host


def test_sysctl_net_without_netns(rt, bundle):
    bundle.drop_namespace("network")
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    assert_clean_failure(rt, bundle, create(rt, bundle), "net.ipv4.ip_forward")


def test_unknown_sysctl(rt, bundle):
    bundle.linux["sysctl"] = {"net.ipv4.no_such_knob": "1"}
    res = create(rt, bundle)
    assert res.returncode != 0
    assert "no_such_knob" in res.stderr
    assert rt.try_state(bundle.cid) is None


def test_mount_missing_destination(rt, bundle):
    bundle.config["mounts"].append({"type": "tmpfs", "source": "tmpfs"})
    assert_clean_failure(rt, bundle, create(rt, bundle), ("destination", "mount"),
                         runc_weak=True)  # runc: two warnings, then "/proc/self/fd" error


def test_bind_mount_missing_source(rt, bundle):
    missing = os.path.join(rt.test_dir, "missing-source")
    bundle.add_mount("/data", "bind", missing, ["rbind"])
    assert_clean_failure(rt, bundle, create(rt, bundle), "missing-source")


def test_unknown_filesystem_type(rt, bundle):
    bundle.add_mount("/data", "bogusfs", "none", [])
    assert_clean_failure(rt, bundle, create(rt, bundle), ("bogusfs", "/data"))


def test_bad_seccomp_action(rt, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_BOGUS"}
    assert_clean_failure(rt, bundle, create(rt, bundle), ("SCMP_ACT_BOGUS", "seccomp"))


def test_bad_seccomp_arch(rt, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "architectures": ["SCMP_ARCH_BOGUS"]}
    assert_clean_failure(rt, bundle, create(rt, bundle), ("SCMP_ARCH_BOGUS", "arch"))


def test_bad_seccomp_operator(rt, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]}
    assert_clean_failure(rt, bundle, create(rt, bundle), ("SCMP_CMP_BOGUS", "operator"))


def test_bad_device_type(rt, bundle):
    bundle.linux["devices"] = [{"path": "/dev/x", "type": "q", "major": 1, "minor": 3}]
    assert_clean_failure(rt, bundle, create(rt, bundle), ("type", "/dev/x", "device"))


def test_negative_uid(rt, bundle):
    bundle.process["user"]["uid"] = -1
    assert_clean_failure(rt, bundle, create(rt, bundle), "uid")


@pytest.mark.silo_only  # runc 1.1 ignores linux.timeOffsets
def test_time_offsets_without_time_namespace(rt, bundle):
    bundle.linux["timeOffsets"] = {"monotonic": {"secs": 10, "nanosecs": 0}}
    assert_clean_failure(rt, bundle, create(rt, bundle), ("timeOffsets", "time"))


def test_namespace_path_not_a_namespace(rt, bundle):
    bundle.set_namespace("network", bundle.file("config.json"))
    assert_clean_failure(rt, bundle, create(rt, bundle), ("config.json", "namespace"),
                         runc_weak=True)  # runc: three lines of nsexec errors


# ---- IDs and arguments ----

def test_duplicate_container_id(rt, make_bundle):
    b1 = make_bundle("sleep", "60")
    rt.create(b1).check()
    b2 = make_bundle("exit", "0", cid=b1.cid)
    res = rt.create(b2, cid=b1.cid)
    assert res.returncode != 0
    assert len(res.error_lines) == 1
    assert b1.cid in res.stderr or "exists" in res.stderr.lower()
    st = rt.state(b1.cid)
    assert st["status"] == "created" and st["bundle"] == b1.path
    rt.delete(b1.cid, force=True).check()


@pytest.mark.parametrize("args", [["create"], ["start"], ["state"], ["kill"], ["delete"],
                                  ["exec"], ["pause"], ["resume"], ["ps"], ["update"],
                                  ["events"]])
def test_missing_container_id_argument(rt, args):
    res = rt.cmd(*args)
    assert res.returncode != 0
    assert res.stderr.strip()


def test_unknown_command(rt):
    res = rt.cmd("frobnicate")
    assert res.returncode != 0
    assert "frobnicate" in (res.stderr + res.stdout)


def test_unknown_option(rt, bundle):
    res = rt.cmd("create", "--no-such-option", "--bundle", bundle.path, bundle.cid)
    assert res.returncode != 0
    assert "no-such-option" in res.stderr
    assert rt.try_state(bundle.cid) is None


def test_process_json_bad_input(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    path = bundle.file("process.json")
    for raw in ("{", '{"args": "x", "cwd": "/"}', '{"cwd": "/"}'):
        with open(path, "w") as f:
            f.write(raw)
        res = rt.exec(bundle.cid, opts=["--process", path])
        assert res.returncode != 0, raw
        assert res.stderr.strip()
    assert rt.state(bundle.cid)["status"] == "running"
    assert len(rt.cmd("ps", "-f", "json", bundle.cid).json) == 1
    rt.delete(bundle.cid, force=True).check()


# ---- accepted input: what must NOT be an error ----

def test_null_optional_fields_accepted(rt, bundle):
    """Go-generated configs (containerd, podman) may carry nulls for absent fields."""
    c = bundle.config
    c["hooks"] = None
    c["annotations"] = None
    c["process"]["rlimits"] = None
    c["process"]["capabilities"]["inheritable"] = None
    c["linux"]["seccomp"] = None
    c["linux"]["sysctl"] = None
    c["linux"]["devices"] = None
    c["linux"]["uidMappings"] = None
    c["mounts"][0]["options"] = None
    info = rt.run_helper(bundle, "info")
    assert info["proc"]["pid"] == 1


def test_unknown_keys_ignored_everywhere(rt, bundle):
    c = bundle.config
    c["x-unknown"] = {"nested": [1, 2, {"deep": None}]}
    c["process"]["x-unknown"] = 1
    c["process"]["user"]["x-unknown"] = "s"
    c["root"]["x-unknown"] = True
    c["mounts"][0]["x-unknown"] = []
    c["linux"]["x-unknown"] = {}
    c["linux"]["resources"]["x-unknown"] = 3.5
    c["linux"]["namespaces"][0]["x-unknown"] = "y"
    info = rt.run_helper(bundle, "info")
    assert info["proc"]["pid"] == 1


def test_moderately_nested_unknown_key_accepted(rt, bundle):
    c = bundle.config
    nested = []
    for _ in range(64):
        nested = [nested]
    c["x-nested"] = nested
    rt.run_helper(bundle, "cwd")


def test_absurdly_nested_json_fails_cleanly(rt, bundle):
    depth = 200000
    text = json.dumps(bundle.config)
    bundle.set_raw(text[:-1] + ', "x-deep": ' + "[" * depth + "]" * depth + "}")
    res = create(rt, bundle)
    assert res.returncode in range(0, 126), f"runtime crashed: {res.returncode}"
    if res.returncode == 0:
        rt.delete(bundle.cid, force=True).check()
    else:
        assert res.stderr.strip()
        assert rt.try_state(bundle.cid) is None


@pytest.mark.parametrize("field,value", [("uid", 2 ** 32), ("gid", 2 ** 32 + 5),
                                         ("uid", 2 ** 64)])
def test_id_out_of_range(rt, bundle, field, value):
    bundle.process["user"][field] = value
    assert_clean_failure(rt, bundle, create(rt, bundle), field)


def test_pid_file_in_missing_directory(rt, bundle):
    """A failure after the container exists must tear it down again."""
    bundle.args("sleep", "60")
    res = rt.create(bundle, "--pid-file", os.path.join(rt.test_dir, "no", "such", "pid"))
    assert res.returncode != 0
    assert "pid" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None


def test_console_socket_is_regular_file(rt, bundle):
    path = bundle.file("not-a-socket")
    with open(path, "w") as f:
        f.write("x")
    bundle.process["terminal"] = True
    bundle.args("sleep", "60")
    res = rt.create(bundle, "--console-socket", path)
    assert res.returncode != 0
    assert "not-a-socket" in res.stderr or "socket" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None
