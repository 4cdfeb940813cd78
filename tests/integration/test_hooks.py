# SPDX-License-Identifier: Apache-2.0
"""OCI hooks: all six kinds, their order, the state on stdin, args/env, timeouts and failures."""

import json
import os
import time

import pytest

import silo_harness as h

ALL = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]

# Logs its name (in order), args, env and stdin into $LOG_DIR (second argument). Works with dash on
# the host and busybox sh in the container.
HOOK_SCRIPT = """#!/bin/sh
name=$1
dir=$2
shift 2
cat > "$dir/$name.state"
echo "$@" > "$dir/$name.args"
env > "$dir/$name.env"
pwd > "$dir/$name.cwd"
echo "$name" >> "$dir/order"
case "$1" in
fail) exit 3 ;;
sleep) exec sleep "$2" ;;
esac
exit 0
"""


class Hooks:
    def __init__(self, rt, bundle, host_dir):
        self.bundle = bundle
        self.log = host_dir()
        os.chmod(self.log, 0o777)
        self.script = os.path.join(rt.test_dir, "hook.sh")
        with open(self.script, "w") as f:
            f.write(HOOK_SCRIPT)
        os.chmod(self.script, 0o755)
        # startContainer runs inside the container: give it the script and the log dir there
        with open(bundle.root_path("/hook.sh"), "w") as f:
            f.write(HOOK_SCRIPT)
        os.chmod(bundle.root_path("/hook.sh"), 0o755)
        bundle.add_mount("/hooklog", "bind", self.log, ["rbind", "rw"])
        bundle.config["hooks"] = {}

    def add(self, kind, *extra, timeout=None, env=None, name=None):
        inside = kind == "startContainer"
        path = "/hook.sh" if inside else self.script
        log = "/hooklog" if inside else self.log
        hook = {"path": path, "args": ["hook.sh", name or kind, log, *extra]}
        if env is not None:
            hook["env"] = env
        if timeout is not None:
            hook["timeout"] = timeout
        self.bundle.config["hooks"].setdefault(kind, []).append(hook)

    def order(self):
        path = os.path.join(self.log, "order")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().split()

    def read(self, name, what):
        with open(os.path.join(self.log, f"{name}.{what}")) as f:
            return f.read()

    def state(self, name):
        return json.loads(self.read(name, "state"))


@pytest.fixture
def hooks(rt, bundle, host_dir):
    return Hooks(rt, bundle, host_dir)


def test_all_hooks_run_with_create_start_delete(rt, bundle, hooks):
    for kind in ALL:
        hooks.add(kind)
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    # runc 1.1 also runs poststart during create (a known deviation from the spec, which
    # test_poststart_runs_at_start_not_create checks for silo)
    assert hooks.order()[:3] == ["prestart", "createRuntime", "createContainer"]
    assert "startContainer" not in hooks.order()
    rt.start(bundle.cid).check()
    h.wait_for(lambda: {"startContainer", "poststart"} <= set(hooks.order()),
               what="startContainer and poststart")
    assert "poststop" not in hooks.order()
    rt.kill(bundle.cid, "KILL").check()
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()
    assert sorted(hooks.order()) == sorted(ALL)
    assert hooks.order()[-1] == "poststop"


@pytest.mark.silo_only  # runc 1.1 runs poststart hooks during `create`
def test_poststart_runs_at_start_not_create(rt, bundle, hooks):
    for kind in ALL:
        hooks.add(kind)
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    assert hooks.order() == ["prestart", "createRuntime", "createContainer"]
    rt.start(bundle.cid).check()
    # poststart must have run before `start` returned
    assert hooks.order() == ["prestart", "createRuntime", "createContainer", "startContainer",
                             "poststart"]
    assert hooks.state("poststart")["pid"] == rt.state(bundle.cid)["pid"]
    rt.delete(bundle.cid, force=True).check()
    assert hooks.order() == ALL


def test_all_hooks_run_with_run(rt, bundle, hooks):
    for kind in ALL:
        hooks.add(kind)
    bundle.args("exit", "0")
    rt.run(bundle).check()
    order = hooks.order()
    assert sorted(order) == sorted(ALL)
    assert order[:3] == ["prestart", "createRuntime", "createContainer"]
    assert order[-1] == "poststop"


def test_hook_state_on_stdin(rt, bundle, hooks):
    for kind in ALL:
        hooks.add(kind)
    bundle.config["annotations"] = {"org.silo.hook": "yes"}
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    h.wait_for(lambda: {"poststart", "startContainer"} <= set(hooks.order()), what="poststart")
    init_pid = rt.state(bundle.cid)["pid"]
    rt.delete(bundle.cid, force=True).check()
    for kind in ALL:
        st = hooks.state(kind)
        assert st["id"] == bundle.cid, kind
        assert st["bundle"] == bundle.path, kind
        assert st["ociVersion"], kind
        assert st.get("annotations") == {"org.silo.hook": "yes"}, kind
    for kind in ("prestart", "createRuntime", "poststart"):
        assert hooks.state(kind)["pid"] == init_pid, kind
    assert hooks.state("createRuntime")["status"] in ("creating", "created")
    assert hooks.state("poststart")["status"] in ("running", "created")
    assert hooks.state("poststop")["status"] == "stopped"


@pytest.mark.silo_only  # runc 1.1 reports the pid as seen inside the container (1)
def test_container_hooks_state_has_host_pid(rt, bundle, hooks):
    hooks.add("createContainer")
    hooks.add("startContainer")
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    h.wait_for(lambda: "startContainer" in hooks.order(), what="startContainer")
    init_pid = rt.state(bundle.cid)["pid"]
    assert hooks.state("createContainer")["pid"] == init_pid
    assert hooks.state("startContainer")["pid"] == init_pid
    rt.delete(bundle.cid, force=True).check()


def test_hook_args_and_env(rt, bundle, hooks):
    hooks.add("prestart", "extra-arg", "x y", env=["HOOKVAR=hello", "PATH=/usr/bin:/bin"])
    bundle.args("exit", "0")
    rt.run(bundle).check()
    assert hooks.read("prestart", "args").strip() == "extra-arg x y"
    env = hooks.read("prestart", "env").splitlines()
    assert "HOOKVAR=hello" in env
    # the hook environment is exactly what the config says (plus what sh itself adds)
    assert not any(e.startswith("SILO_RUNTIME") for e in env)


@pytest.mark.silo_only  # runc hands its own environment to hooks that have no "env"
def test_hook_without_env_gets_empty_environment(rt, bundle, hooks):
    hooks.add("createRuntime")
    bundle.args("exit", "0")
    rt.run(bundle).check()
    env = dict(l.split("=", 1) for l in hooks.read("createRuntime", "env").splitlines()
               if "=" in l)
    for leaked in ("HOME", "USER", "SILO_RUNTIME", "PYTEST_CURRENT_TEST"):
        assert leaked not in env, env


def test_several_hooks_of_one_kind_run_in_order(rt, bundle, hooks):
    for n in range(3):
        hooks.add("prestart", name=f"prestart{n}")
    bundle.args("exit", "0")
    rt.run(bundle).check()
    assert hooks.order() == ["prestart0", "prestart1", "prestart2"]


def test_start_container_hook_runs_inside(rt, bundle, hooks):
    hooks.add("startContainer")
    bundle.args("exit", "0")
    rt.run(bundle).check()
    # it ran in the container: its cwd is the container's, and the host's /hooklog does not exist
    assert not os.path.exists("/hooklog")
    assert hooks.order() == ["startContainer"]


def test_create_container_hook_sees_container_mounts(rt, bundle, hooks, host_dir):
    """createContainer runs in the container's mount namespace (before pivot_root)."""
    marker = host_dir({"marker": "m"})
    bundle.add_mount("/from-host", "bind", marker, ["rbind"])
    check = os.path.join(rt.test_dir, "check.sh")
    with open(check, "w") as f:
        f.write(f"#!/bin/sh\nls {bundle.rootfs}/from-host > {hooks.log}/ls.out\n")
    os.chmod(check, 0o755)
    bundle.config["hooks"]["createContainer"] = [{"path": check}]
    bundle.args("exit", "0")
    rt.run(bundle).check()
    with open(os.path.join(hooks.log, "ls.out")) as f:
        assert f.read().split() == ["marker"]


# ---- failures ----

@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_aborts_and_cleans_up(rt, bundle, hooks, kind):
    hooks.add(kind, "fail")
    hooks.add("poststop")
    bundle.args("exit", "0")
    res = rt.create(bundle)
    assert res.returncode != 0
    assert res.stderr.strip()
    assert rt.try_state(bundle.cid) is None
    assert kind in hooks.order()
    # the leak checks verify no cgroup, mount, process or state is left


def test_failing_start_container_hook_stops_container(rt, bundle, hooks):
    hooks.add("startContainer", "fail")
    bundle.args("write", "/tmp/ran", "1")
    rt.create(bundle).check()
    rt.start(bundle.cid)
    rt.wait_status(bundle.cid, "stopped")
    assert not os.path.exists(bundle.root_path("/tmp/ran")), "user process ran after hook failed"
    rt.delete(bundle.cid, force=True)


@pytest.mark.silo_only  # runc's `start` returns 0 although the startContainer hook failed
def test_failing_start_container_hook_fails_start(rt, bundle, hooks):
    hooks.add("startContainer", "fail")
    bundle.args("write", "/tmp/ran", "1")
    rt.create(bundle).check()
    res = rt.start(bundle.cid)
    assert res.returncode != 0
    assert "startContainer" in res.stderr or "hook" in res.stderr.lower()
    assert not os.path.exists(bundle.root_path("/tmp/ran"))
    rt.delete(bundle.cid, force=True)


@pytest.mark.silo_only
def test_failing_poststart_hook(rt, bundle, hooks):
    """The runtime spec: a failing poststart hook is logged as a warning and the
    remaining hooks and the lifecycle go on (runc instead tears the container down)."""
    hooks.add("poststart", "fail")
    hooks.add("poststart", name="poststart2")
    bundle.args("sleep", "60")
    res = rt.run(bundle, detach=True)
    assert res.returncode == 0, res.stderr
    assert "warning" in res.stderr and "poststart" in res.stderr
    assert rt.state(bundle.cid)["status"] == "running"
    assert "poststart2" in hooks.order()
    rt.delete(bundle.cid, force=True).check()


def test_failing_poststop_hook_does_not_fail_delete(rt, bundle, hooks):
    hooks.add("poststop", "fail")
    hooks.add("poststop", name="poststop2")
    bundle.args("exit", "0")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    rt.wait_status(bundle.cid, "stopped")
    res = rt.delete(bundle.cid)
    assert res.returncode == 0
    assert rt.try_state(bundle.cid) is None
    assert "poststop" in hooks.order()


def test_hook_timeout(rt, bundle, hooks):
    hooks.add("prestart", "sleep", "20", timeout=1)
    bundle.args("exit", "0")
    start = time.monotonic()
    res = rt.create(bundle)
    elapsed = time.monotonic() - start
    assert res.returncode != 0
    assert elapsed < 10, f"timeout not enforced ({elapsed:.1f}s)"
    assert "timeout" in res.stderr.lower() or "timed out" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None


def test_hook_missing_binary(rt, bundle, hooks):
    bundle.config["hooks"]["createRuntime"] = [{"path": "/no/such/hook"}]
    bundle.args("exit", "0")
    res = rt.run(bundle)
    assert res.returncode != 0
    assert "/no/such/hook" in res.stderr or "no such file" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None


def test_hook_not_reading_stdin(rt, bundle, hooks):
    """A hook that exits without reading the (large) state must not kill the runtime with
    SIGPIPE or make it fail."""
    bundle.config["annotations"] = {"big": "x" * 300000}
    bundle.config["hooks"]["prestart"] = [{"path": "/bin/true", "args": ["true"]}]
    bundle.config["hooks"]["poststop"] = [{"path": "/bin/true", "args": ["true"]}]
    bundle.args("exit", "0")
    res = rt.run(bundle)
    assert res.returncode == 0, res.stderr


def test_hook_with_large_output(rt, bundle, hooks):
    """Hook output must be drained (or discarded): no deadlock on a full pipe."""
    bundle.config["hooks"]["createRuntime"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", "head -c 2000000 /dev/zero; "
                                     "head -c 2000000 /dev/zero >&2"], "timeout": 20}]
    bundle.args("exit", "0")
    start = time.monotonic()
    res = rt.run(bundle)
    assert res.returncode == 0, res.stderr[-500:]
    assert time.monotonic() - start < 15


@pytest.mark.silo_only  # runc waits for every process holding the hook's output pipe
def test_hook_timeout_with_background_child(rt, bundle, hooks):
    bundle.config["hooks"]["prestart"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 30 & sleep 30"], "timeout": 1}]
    bundle.args("exit", "0")
    start = time.monotonic()
    res = rt.create(bundle)
    assert res.returncode != 0
    assert time.monotonic() - start < 10, "hook timeout not enforced"
    assert rt.try_state(bundle.cid) is None
