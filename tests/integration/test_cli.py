# SPDX-License-Identifier: Apache-2.0
"""Command-line surface: --version, --help, spec, features, global options (--root, --log,
--log-format, --debug) and argument-count errors, as runc presents them."""

import json
import os
import subprocess

import pytest

import silo_harness as h

COMMANDS = ["create", "start", "run", "state", "list", "kill", "delete", "pause", "resume",
            "ps", "events", "update", "exec", "spec", "features"]


def test_version(rt):
    res = rt.cmd("--version", root=False)
    res.check()
    out = res.stdout.lower()
    assert "version" in out
    assert "spec: 1." in out


def test_help_lists_commands(rt):
    res = rt.cmd("--help", root=False)
    res.check()
    for cmd in COMMANDS:
        assert cmd in res.stdout, cmd


@pytest.mark.parametrize("cmd", ["create", "run", "exec", "kill", "delete", "state"])
def test_command_help(rt, cmd):
    res = rt.cmd(cmd, "--help", root=False)
    res.check()
    assert cmd in res.stdout.lower()


def test_unknown_global_option(rt):
    res = rt.cmd("--no-such-flag", "list")
    assert res.returncode != 0
    assert "no-such-flag" in res.stderr


# ---- spec ----

def test_spec_writes_default_config(rt):
    d = os.path.join(rt.test_dir, "specdir")
    os.mkdir(d)
    rt.cmd("spec", "--bundle", d, root=False).check()
    with open(os.path.join(d, "config.json")) as f:
        spec = json.load(f)
    assert spec["ociVersion"].startswith("1.")
    assert spec["root"]["path"] == "rootfs"
    assert spec["process"]["args"] == ["sh"]
    assert spec["process"]["terminal"] is True
    assert spec["process"]["cwd"] == "/"
    dests = [m["destination"] for m in spec["mounts"]]
    for d_ in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"):
        assert d_ in dests
    ns = {n["type"] for n in spec["linux"]["namespaces"]}
    assert {"pid", "network", "ipc", "uts", "mount"} <= ns
    assert "user" not in ns
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    caps = spec["process"]["capabilities"]
    assert set(caps["bounding"]) == set(h.DEFAULT_CAPS)
    assert caps.get("inheritable", []) == []


def test_spec_in_cwd(rt):
    d = os.path.join(rt.test_dir, "specdir")
    os.mkdir(d)
    p = subprocess.run([rt.binary, "spec"], cwd=d, capture_output=True, text=True,
                       timeout=h.CMD_TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(os.path.join(d, "config.json"))


def test_spec_refuses_to_overwrite(rt):
    d = os.path.join(rt.test_dir, "specdir")
    os.mkdir(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write("precious")
    res = rt.cmd("spec", "--bundle", d, root=False)
    assert res.returncode != 0
    assert "config.json" in res.stderr
    with open(os.path.join(d, "config.json")) as f:
        assert f.read() == "precious"


def test_spec_rootless(rt):
    d = os.path.join(rt.test_dir, "specdir")
    os.mkdir(d)
    rt.cmd("spec", "--rootless", "--bundle", d, root=False).check()
    with open(os.path.join(d, "config.json")) as f:
        spec = json.load(f)
    ns = {n["type"] for n in spec["linux"]["namespaces"]}
    assert "user" in ns
    assert spec["linux"]["uidMappings"][0]["hostID"] == os.getuid()
    assert spec["linux"]["gidMappings"][0]["hostID"] == os.getgid()


def test_spec_output_runs(rt, bundle):
    """The runtime's own default spec, made non-interactive, runs the helper."""
    os.unlink(bundle.file("config.json"))
    rt.cmd("spec", "--bundle", bundle.path, root=False).check()
    with open(bundle.file("config.json")) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = [h.HELPER, "info"]
    spec["linux"]["cgroupsPath"] = bundle.cgroups_path
    bundle.config = spec
    info = rt.run_helper(bundle, "info")
    assert info["proc"]["pid"] == 1
    assert h.caps_from_mask(info["caps"]["bnd"]) == set(h.DEFAULT_CAPS)
    assert int(info["caps"]["inh"], 16) == 0
    assert int(info["caps"]["amb"], 16) == 0  # ambient without inheritable cannot be raised


# ---- features ----

def test_features(rt):
    res = rt.cmd("features", root=False)
    res.check()
    f = json.loads(res.stdout)
    assert f["ociVersionMin"].startswith("1.0")
    assert f["ociVersionMax"].startswith("1.")
    assert set(f["hooks"]) == {"prestart", "createRuntime", "createContainer", "startContainer",
                               "poststart", "poststop"}
    for opt in ("bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "rprivate",
                "rshared", "rslave", "private", "shared", "slave"):
        assert opt in f["mountOptions"], opt
    linux = f["linux"]
    assert {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"} <= set(linux["namespaces"])
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"]["v1"] is True
    assert linux["seccomp"]["enabled"] is True
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"} <= set(linux["seccomp"]["actions"])
    assert "SCMP_CMP_MASKED_EQ" in linux["seccomp"]["operators"]
    assert "SCMP_ARCH_X86_64" in linux["seccomp"]["archs"]


# ---- global options ----

def test_root_created_on_demand(rt, bundle):
    root = os.path.join(rt.test_dir, "deep", "new", "root")
    bundle.args("sleep", "60")
    res = rt.cmd("create", "--bundle", bundle.path, bundle.cid, global_args=["--root", root],
                 root=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert res.returncode == 0
    try:
        assert os.path.isdir(os.path.join(root))
        assert os.stat(root).st_mode & 0o077 == 0
        res = rt.cmd("state", bundle.cid, global_args=["--root", root], root=False)
        res.check()
        assert json.loads(res.stdout)["status"] == "created"
    finally:
        rt.cmd("delete", "--force", bundle.cid, global_args=["--root", root], root=False)
    assert os.listdir(root) == []


def test_list_nonexistent_root(rt):
    res = rt.cmd("list", "--format", "json", global_args=["--root",
                                                          os.path.join(rt.test_dir, "none")],
                 root=False)
    res.check()
    assert json.loads(res.stdout) in (None, [])


def test_log_json_on_error(rt, bundle):
    """containerd's shim passes --log FILE --log-format json and reads errors from FILE."""
    log = os.path.join(rt.test_dir, "runtime-log.json")
    bundle.config["root"]["path"] = "no-such-rootfs"
    bundle.write()
    res = rt.cmd("create", "--bundle", bundle.path, bundle.cid,
                 global_args=["--log", log, "--log-format", "json"])
    rt.ids.add(bundle.cid)
    assert res.returncode != 0
    with open(log) as f:
        entries = [json.loads(l) for l in f if l.strip()]
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, entries
    assert "no-such-rootfs" in errors[-1]["msg"]
    assert "time" in errors[-1]


def test_debug_logs_lifecycle_steps(rt, bundle):
    """--debug writes the lifecycle steps to the --log file; the container's own
    output still goes to its stdout, and nothing extra appears on stderr."""
    log = os.path.join(rt.test_dir, "debug-log.json")
    bundle.args("/bin/echo", "hi")
    bundle.write()
    rt.ids.add(bundle.cid)
    res = rt.cmd("run", "--bundle", bundle.path, bundle.cid,
                 global_args=["--debug", "--log", log, "--log-format", "json"])
    res.check()
    assert res.stdout == "hi\n" and res.stderr == ""
    with open(log) as f:
        entries = [json.loads(l) for l in f if l.strip()]
    msgs = [e["msg"] for e in entries if e.get("level") == "debug"]
    assert any("config" in m and "loaded" in m for m in msgs), msgs
    assert any("init is pid" in m for m in msgs), msgs
    assert any("init ready" in m for m in msgs), msgs


def test_log_text_on_error(rt, bundle):
    log = os.path.join(rt.test_dir, "runtime-log.txt")
    bundle.config["root"]["path"] = "no-such-rootfs"
    bundle.write()
    res = rt.cmd("create", "--bundle", bundle.path, bundle.cid,
                 global_args=["--log", log, "--log-format", "text"])
    rt.ids.add(bundle.cid)
    assert res.returncode != 0
    with open(log) as f:
        text = f.read()
    assert "level=error" in text
    assert "no-such-rootfs" in text


def test_log_file_does_not_capture_container_output(rt, bundle):
    log = os.path.join(rt.test_dir, "runtime-log.json")
    bundle.args("/bin/sh", "-c", "echo container-output")
    bundle.write()
    res = rt.cmd("run", "--bundle", bundle.path, bundle.cid,
                 global_args=["--log", log, "--log-format", "json"])
    rt.ids.add(bundle.cid)
    res.check()
    assert res.stdout == "container-output\n"
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                if line.strip():
                    json.loads(line)  # only JSON records
                    assert "container-output" not in line


def test_debug_flag_accepted(rt, bundle):
    bundle.args("exit", "0")
    bundle.write()
    res = rt.cmd("run", "--bundle", bundle.path, bundle.cid, global_args=["--debug"])
    rt.ids.add(bundle.cid)
    assert res.returncode == 0


def test_bundle_defaults_to_cwd(rt, bundle):
    bundle.args("exit", "3")
    bundle.write()
    rt.ids.add(bundle.cid)
    p = subprocess.run([rt.binary, "--root", rt.root, "run", bundle.cid], cwd=bundle.path,
                       capture_output=True, text=True, timeout=h.CMD_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 3, p.stderr


def test_relative_bundle_path(rt, bundle):
    bundle.args("sleep", "60")
    bundle.write()
    rt.ids.add(bundle.cid)
    # the container inherits stdio: a file, not a pipe we would wait on
    with open(bundle.file("create.err"), "w+") as err:
        p = subprocess.run([rt.binary, "--root", rt.root, "create", "--bundle",
                            os.path.basename(bundle.path), bundle.cid], cwd=rt.test_dir,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=h.CMD_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        err.seek(0)
        assert p.returncode == 0, err.read()
    assert rt.state(bundle.cid)["bundle"] == bundle.path  # stored absolute
    rt.delete(bundle.cid, force=True).check()


# ---- argument counts ----

@pytest.mark.parametrize("args", [["state", "a", "b"], ["start", "a", "b"],
                                  ["kill", "a", "KILL", "extra"], ["delete"],
                                  ["exec", "only-id"], ["pause"], ["resume"]])
def test_wrong_argument_count(rt, args):
    res = rt.cmd(*args)
    assert res.returncode != 0
    assert res.stderr.strip()


def test_unknown_fields_warned_not_fatal(rt, bundle):
    """Unknown fields are ignored as the OCI spec requires, but each gets a
    warning naming its path, so a typo does not pass silently."""
    bundle.args("/bin/true")
    bundle.config["hostnme"] = "typo"
    bundle.process["usr"] = {"uid": 0}
    res = rt.run(bundle)
    res.check()
    assert 'ignoring unknown field "hostnme"' in res.stderr
    assert 'ignoring unknown field "process.usr"' in res.stderr


def test_default_spec_has_no_unknown_fields(rt, bundle):
    bundle.args("/bin/true")
    res = rt.run(bundle)
    res.check()
    assert "unknown field" not in res.stderr
