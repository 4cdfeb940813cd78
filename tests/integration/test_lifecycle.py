# SPDX-License-Identifier: Apache-2.0
"""Container lifecycle: run/create/start/state/list/kill/delete/pause/resume/ps/events/exec."""

import json
import os
import re
import subprocess
import signal
import time

import pytest

import silo_harness as h

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


# ---- run ----

def test_run_foreground_prints_helper_output(rt, bundle):
    info = rt.run_helper(bundle, "info")
    assert info["proc"]["pid"] == 1
    assert info["cwd"] == "/"
    assert info["uts"]["hostname"] == "silo-test"


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_run_returns_container_exit_code(rt, bundle, code):
    bundle.args("exit", str(code))
    assert rt.run(bundle).returncode == code


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_run_init_killed_by_signal_returns_128_plus_signal(rt, bundle, sig):
    bundle.args("/bin/sh", "-c", "while :; do sleep 1; done")  # sh as pid 1: no handlers
    bundle.write()
    rt.ids.add(bundle.cid)
    p = rt.popen("run", "--bundle", bundle.path, bundle.cid)
    try:
        st = rt.wait_status(bundle.cid, "running")
        os.kill(st["pid"], sig)  # from the host, so pid-1 protection does not apply to SIGKILL
        if sig != signal.SIGKILL:
            # pid 1 without a handler ignores SIGTERM even from outside; make sure it survived
            time.sleep(0.3)
            assert h.pid_alive(st["pid"])
            os.kill(st["pid"], signal.SIGKILL)
            sig = signal.SIGKILL
        out, err = p.communicate(timeout=h.CMD_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 128 + int(sig), err


def test_run_process_killed_by_signal_inside(rt, bundle):
    """A shell reporting its child's death by signal: 128+9 as exit code of pid 1."""
    # "; exit $?" keeps sh from exec'ing the helper as pid 1 (which cannot kill itself)
    bundle.args("/bin/sh", "-c", f"{h.HELPER} kill-self 9; exit $?")
    assert rt.run(bundle).returncode == 137


def test_run_container_killed_from_outside_reports_137(rt, bundle):
    bundle.args("sleep", "60")
    res = rt.run(bundle, detach=True)
    res.check()
    st = rt.wait_status(bundle.cid, "running")
    os.kill(st["pid"], signal.SIGKILL)
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_run_stdin_is_passed_through(rt, bundle):
    bundle.args("/bin/cat")
    res = rt.run(bundle, input="hello from stdin\n")
    res.check()
    assert res.stdout == "hello from stdin\n"


def test_run_stderr_is_passed_through(rt, bundle):
    bundle.args("/bin/sh", "-c", "echo out; echo err >&2")
    res = rt.run(bundle)
    res.check()
    assert res.stdout == "out\n"
    assert res.stderr.strip().endswith("err")


def test_run_removes_container_after_exit(rt, bundle):
    bundle.args("exit", "0")
    rt.run(bundle).check()
    assert rt.try_state(bundle.cid) is None
    res = rt.cmd("list", "--format", "json")
    res.check()
    assert json.loads(res.stdout) in (None, [])


def test_run_keep_preserves_stopped_container(rt, bundle):
    bundle.args("exit", "5")
    assert rt.run(bundle, "--keep").returncode == 5
    st = rt.state(bundle.cid)
    assert st["status"] == "stopped"
    rt.delete(bundle.cid).check()
    assert rt.try_state(bundle.cid) is None


def test_run_detach_and_pid_file(rt, bundle):
    bundle.args("sleep", "60")
    pid_file = bundle.file("pid")
    rt.run(bundle, "--pid-file", pid_file, detach=True).check()
    st = rt.state(bundle.cid)
    assert st["status"] == "running"
    with open(pid_file) as f:
        text = f.read()
    assert text.strip() == str(st["pid"])
    assert h.pid_alive(st["pid"])
    rt.kill(bundle.cid, "KILL").check()
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()
    assert not h.pid_alive(st["pid"])


def test_run_same_id_twice_fails(rt, make_bundle):
    b1 = make_bundle("sleep", "60")
    rt.run(b1, detach=True).check()
    b2 = make_bundle("exit", "0", cid=b1.cid)
    res = rt.run(b2, cid=b1.cid)
    assert res.returncode != 0
    assert b1.cid in res.stderr or "exist" in res.stderr.lower()
    # the first container is untouched
    assert rt.state(b1.cid)["status"] == "running"
    rt.delete(b1.cid, force=True).check()


# ---- create / start / state ----

def test_create_start_state_delete(rt, bundle):
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    st = rt.state(bundle.cid)
    assert st["status"] == "created"
    assert st["id"] == bundle.cid
    assert st["pid"] > 0 and h.pid_alive(st["pid"])
    init_pid = st["pid"]

    rt.start(bundle.cid).check()
    st = rt.state(bundle.cid)
    assert st["status"] == "running"
    assert st["pid"] == init_pid

    rt.kill(bundle.cid, "KILL").check()
    st = rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()
    assert rt.try_state(bundle.cid) is None
    assert not os.path.exists(os.path.join(rt.root, bundle.cid))


def test_created_container_has_not_run_user_process(rt, bundle):
    marker = "/tmp/started"
    bundle.args("write", marker, "yes")
    rt.create(bundle).check()
    time.sleep(0.3)
    assert not os.path.exists(bundle.root_path(marker))
    rt.start(bundle.cid).check()
    h.wait_for(lambda: os.path.exists(bundle.root_path(marker)), what="process to run")
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_state_json_fields(rt, bundle):
    bundle.config["annotations"] = {"org.silo.test": "value", "another": "x"}
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    st = rt.state(bundle.cid)
    assert set(st) >= {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created"}
    assert st["ociVersion"].startswith("1.")
    assert st["bundle"] == bundle.path
    assert os.path.isabs(st["bundle"])
    assert st["rootfs"] == bundle.rootfs
    assert RFC3339.match(st["created"]), st["created"]
    assert st["annotations"] == {"org.silo.test": "value", "another": "x"}
    assert st.get("owner", "root") in ("root", "")
    rt.delete(bundle.cid, force=True).check()


def test_state_stopped_container(rt, bundle):
    bundle.args("exit", "0")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    st = rt.wait_status(bundle.cid, "stopped")
    assert st["id"] == bundle.cid
    assert st["pid"] == 0
    rt.delete(bundle.cid).check()


def test_state_unknown_container_fails(rt):
    res = rt.cmd("state", "no-such-container")
    assert res.returncode != 0
    assert "no-such-container" in res.stderr or "not exist" in res.stderr.lower()


def test_start_twice_fails(rt, bundle):
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    res = rt.start(bundle.cid)
    assert res.returncode != 0
    assert res.stderr.strip()
    assert rt.state(bundle.cid)["status"] == "running"
    rt.delete(bundle.cid, force=True).check()


def test_start_stopped_container_fails(rt, bundle):
    bundle.args("exit", "0")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    rt.wait_status(bundle.cid, "stopped")
    res = rt.start(bundle.cid)
    assert res.returncode != 0
    rt.delete(bundle.cid).check()


def test_create_pid_file(rt, bundle):
    bundle.args("sleep", "60")
    pid_file = bundle.file("init.pid")
    rt.create(bundle, "--pid-file", pid_file).check()
    with open(pid_file) as f:
        assert int(f.read().strip()) == rt.state(bundle.cid)["pid"]
    rt.delete(bundle.cid, force=True).check()


def test_create_relative_pid_file_is_relative_to_cwd(rt, bundle):
    bundle.args("sleep", "60")
    res = rt.create(bundle, "--pid-file", "rel.pid", )
    res.check()
    # runc resolves a relative --pid-file against its working directory, which is ours.
    path = os.path.join(os.getcwd(), "rel.pid")
    try:
        with open(path) as f:
            assert int(f.read().strip()) == rt.state(bundle.cid)["pid"]
    finally:
        if os.path.exists(path):
            os.unlink(path)
    rt.delete(bundle.cid, force=True).check()


def test_create_writes_nothing_to_stdout(rt, bundle):
    bundle.args("sleep", "60")
    res = rt.create(bundle)
    res.check()
    assert res.stdout == ""
    rt.delete(bundle.cid, force=True).check()


# ---- list ----

def test_list_formats(rt, make_bundle):
    b1 = make_bundle("sleep", "60")
    b2 = make_bundle("sleep", "60")
    rt.create(b1).check()
    rt.run(b2, detach=True).check()

    res = rt.cmd("list", "--format", "json")
    res.check()
    entries = {e["id"]: e for e in json.loads(res.stdout)}
    assert set(entries) == {b1.cid, b2.cid}
    assert entries[b1.cid]["status"] == "created"
    assert entries[b2.cid]["status"] == "running"
    assert entries[b1.cid]["bundle"] == b1.path
    assert entries[b2.cid]["pid"] == rt.state(b2.cid)["pid"]

    res = rt.cmd("list", "-q")
    res.check()
    assert sorted(res.stdout.split()) == sorted([b1.cid, b2.cid])

    res = rt.cmd("list")
    res.check()
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["ID", "PID", "STATUS", "BUNDLE"]
    assert len(lines) == 3
    rt.delete(b1.cid, force=True).check()
    rt.delete(b2.cid, force=True).check()


def test_list_empty_root(rt):
    res = rt.cmd("list", "--format", "json")
    res.check()
    assert json.loads(res.stdout) in (None, [])
    res = rt.cmd("list", "-q")
    res.check()
    assert res.stdout.strip() == ""


# ---- kill ----

@pytest.mark.parametrize("sig,expected", [
    (None, signal.SIGTERM), ("TERM", signal.SIGTERM), ("SIGUSR1", signal.SIGUSR1),
    ("10", signal.SIGUSR1), ("HUP", signal.SIGHUP), ("SIGINT", signal.SIGINT),
])
def test_kill_delivers_signal(rt, bundle, sig, expected):
    trap = "/tmp/trap"
    bundle.args("trap", trap)
    rt.run(bundle, detach=True).check()
    h.wait_for(lambda: os.path.exists(bundle.root_path(trap)), what="trap ready")
    rt.kill(bundle.cid, sig).check()
    rt.wait_status(bundle.cid, "stopped")
    with open(bundle.root_path(trap)) as f:
        assert int(f.read().strip()) == int(expected)
    rt.delete(bundle.cid).check()


def test_kill_sigkill_stops_container(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    rt.kill(bundle.cid, "KILL").check()
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_kill_created_container(rt, bundle):
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    rt.kill(bundle.cid, "KILL").check()
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_kill_stopped_container_fails(rt, bundle):
    bundle.args("exit", "0")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    rt.wait_status(bundle.cid, "stopped")
    res = rt.kill(bundle.cid, "KILL")
    assert res.returncode != 0
    assert "not running" in res.stderr.lower() or "stopped" in res.stderr.lower()
    rt.delete(bundle.cid).check()


def test_kill_invalid_signal_fails(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.kill(bundle.cid, "SIGNOPE")
    assert res.returncode != 0
    assert "SIGNOPE" in res.stderr or "signal" in res.stderr.lower()
    assert rt.state(bundle.cid)["status"] == "running"
    rt.delete(bundle.cid, force=True).check()


def test_kill_all_kills_every_process(rt, bundle):
    bundle.args("/bin/sh", "-c", f"{h.HELPER} sleep 60 & {h.HELPER} sleep 60 & wait")
    rt.run(bundle, detach=True).check()
    st = rt.wait_status(bundle.cid, "running")
    h.wait_for(lambda: len(rt.cmd("ps", "-f", "json", bundle.cid).json) >= 3, what="children")
    rt.kill(bundle.cid, "KILL", "--all").check()
    rt.wait_status(bundle.cid, "stopped")
    assert not h.pid_alive(st["pid"])
    rt.delete(bundle.cid).check()


# ---- delete ----

def test_delete_running_without_force_fails(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.delete(bundle.cid)
    assert res.returncode != 0
    assert "running" in res.stderr.lower()
    assert rt.state(bundle.cid)["status"] == "running"
    rt.delete(bundle.cid, force=True).check()


def test_delete_force_running(rt, bundle):
    bundle.args("/bin/sh", "-c", f"{h.HELPER} sleep 60 & exec {h.HELPER} sleep 60")
    rt.run(bundle, detach=True).check()
    pids = h.wait_for(lambda: (lambda p: p if len(p) >= 2 else None)(
        rt.cmd("ps", "-f", "json", bundle.cid).json), what="two processes")
    rt.delete(bundle.cid, force=True).check()
    assert rt.try_state(bundle.cid) is None
    for pid in pids:
        h.wait_for(lambda: not h.pid_alive(pid), timeout=5, what=f"pid {pid} to die")


def test_delete_created_container_kills_init(rt, bundle):
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    pid = rt.state(bundle.cid)["pid"]
    rt.delete(bundle.cid).check()
    h.wait_for(lambda: not h.pid_alive(pid), timeout=5, what="init to die")
    assert rt.try_state(bundle.cid) is None


def test_delete_unknown_container_fails(rt):
    res = rt.delete("no-such-container")
    assert res.returncode != 0
    res = rt.delete("no-such-container", force=True)
    # runc --force on a missing container succeeds silently
    assert res.returncode == 0


def test_delete_removes_cgroup(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    d = h.cgroup_dir("pids", bundle.cgroups_path)
    assert os.path.isdir(d)
    rt.delete(bundle.cid, force=True).check()
    assert not os.path.exists(d)


# ---- pause / resume ----

def test_pause_resume(rt, bundle):
    counter = "/tmp/counter"
    bundle.args("tick", counter)
    rt.run(bundle, detach=True).check()
    path = bundle.root_path(counter)

    def value():
        with open(path) as f:
            return int(f.read().strip() or 0)

    h.wait_for(lambda: os.path.exists(path) and value() > 2, what="ticks")
    rt.cmd("pause", bundle.cid).check()
    assert rt.state(bundle.cid)["status"] == "paused"
    assert h.read_cgroup_file("freezer", bundle.cgroups_path, "freezer.state") == "FROZEN"
    time.sleep(0.1)
    v1 = value()
    time.sleep(0.3)
    assert value() == v1, "process kept running while paused"

    rt.cmd("resume", bundle.cid).check()
    assert rt.state(bundle.cid)["status"] == "running"
    h.wait_for(lambda: value() > v1 + 2, what="ticks after resume")
    rt.delete(bundle.cid, force=True).check()


def test_pause_stopped_container_fails(rt, bundle):
    bundle.args("exit", "0")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    rt.wait_status(bundle.cid, "stopped")
    assert rt.cmd("pause", bundle.cid).returncode != 0
    rt.delete(bundle.cid).check()


def test_resume_running_container_fails(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.cmd("resume", bundle.cid)
    assert res.returncode != 0
    assert "not paused" in res.stderr.lower() or "paused" in res.stderr.lower()
    rt.delete(bundle.cid, force=True).check()


def test_delete_force_paused_container(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    pid = rt.state(bundle.cid)["pid"]
    rt.cmd("pause", bundle.cid).check()
    rt.delete(bundle.cid, force=True).check()
    h.wait_for(lambda: not h.pid_alive(pid), timeout=5, what="paused init to die")


# ---- ps ----

def test_ps_json_lists_host_pids(rt, bundle):
    bundle.args("/bin/sh", "-c", f"{h.HELPER} sleep 60 & exec {h.HELPER} sleep 60")
    rt.run(bundle, detach=True).check()
    init = rt.state(bundle.cid)["pid"]
    pids = h.wait_for(lambda: (lambda p: p if len(p) == 2 else None)(
        rt.cmd("ps", "--format", "json", bundle.cid).json), what="two pids")
    assert init in pids
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"silo-test-helper" in f.read()
    rt.delete(bundle.cid, force=True).check()


def test_ps_table(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    init = rt.state(bundle.cid)["pid"]
    res = rt.cmd("ps", bundle.cid)
    res.check()
    assert "PID" in res.stdout.splitlines()[0]
    assert str(init) in res.stdout
    rt.delete(bundle.cid, force=True).check()


# ---- events ----

def test_events_stats(rt, bundle):
    bundle.args("sleep", "60")
    bundle.linux["resources"]["pids"] = {"limit": 100}
    rt.run(bundle, detach=True).check()
    res = rt.cmd("events", "--stats", bundle.cid)
    res.check()
    ev = res.json
    assert ev["type"] == "stats"
    assert ev["id"] == bundle.cid
    data = ev["data"]
    assert data["pids"]["current"] >= 1
    assert data["pids"].get("limit") == 100
    assert data["memory"]["usage"]["usage"] > 0
    assert "cpu" in data and data["cpu"]["usage"]["total"] > 0
    rt.delete(bundle.cid, force=True).check()


def test_events_stream_reports_oom_or_stays_open(rt, bundle):
    """`events` without --stats streams until the container goes away."""
    import subprocess
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    p = subprocess.Popen([rt.binary, "--root", rt.root, "events", "--interval", "1s", bundle.cid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        ev = json.loads(line)
        assert ev["id"] == bundle.cid
        assert ev["type"] == "stats"
    finally:
        rt.delete(bundle.cid, force=True).check()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            pytest.fail("events did not exit after the container was deleted")


# ---- exec ----

def test_exec_basic(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "info")
    res.check()
    info = res.json
    assert info["proc"]["pid"] != 1
    assert info["uts"]["hostname"] == "silo-test"
    # same namespaces as init
    init = rt.state(bundle.cid)["pid"]
    for ns in ("mnt", "pid", "net", "ipc", "uts"):
        assert info["ns"][ns] == os.readlink(f"/proc/{init}/ns/{ns}")
    rt.delete(bundle.cid, force=True).check()


def test_exec_exit_code(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    assert rt.exec(bundle.cid, "exit", "17").returncode == 17
    assert rt.state(bundle.cid)["status"] == "running"
    rt.delete(bundle.cid, force=True).check()


def test_exec_in_created_container(rt, bundle):
    """runc allows exec into a created (not yet started) container."""
    bundle.args("sleep", "60")
    rt.create(bundle).check()
    res = rt.exec(bundle.cid, "pid")
    res.check()
    assert res.json["pid"] > 1
    rt.delete(bundle.cid, force=True).check()


def test_exec_env_cwd_user(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "info", opts=["--env", "FOO=bar", "--env", "TERM=dumb",
                                            "--cwd", "/tmp", "--user", "1000:1001"])
    res.check()
    info = res.json
    assert "FOO=bar" in info["env"]
    assert "TERM=dumb" in info["env"] and "TERM=xterm" not in info["env"]
    assert h.DEFAULT_PATH in info["env"]
    assert info["cwd"] == "/tmp"
    assert info["ids"]["uid"] == 1000 and info["ids"]["euid"] == 1000
    assert info["ids"]["gid"] == 1001
    rt.delete(bundle.cid, force=True).check()


def test_exec_additional_gids(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "ids", opts=["--user", "1000:1000", "--additional-gids", "1001",
                                           "--additional-gids", "5"])
    res.check()
    assert sorted(res.json["groups"]) == [5, 1001]
    rt.delete(bundle.cid, force=True).check()


def test_exec_cap_adds_capability(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    base = h.caps_from_mask(rt.exec(bundle.cid, "caps").check().json["eff"])
    assert base == set(h.DEFAULT_CAPS)
    res = rt.exec(bundle.cid, "caps", opts=["--cap", "CAP_SYS_ADMIN", "--cap", "CAP_CHOWN"])
    res.check()
    caps = res.json
    for s in ("eff", "prm", "bnd"):
        assert h.caps_from_mask(caps[s]) == base | {"CAP_SYS_ADMIN", "CAP_CHOWN"}, s
    rt.delete(bundle.cid, force=True).check()


def test_exec_process_json(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    process = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [1001]},
        "args": [h.HELPER, "info"],
        "env": [h.DEFAULT_PATH, "FROM_PROCESS_JSON=1"],
        "cwd": "/home/user",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                         "permitted": ["CAP_KILL"]},
        "noNewPrivileges": True,
    }
    path = bundle.file("process.json")
    with open(path, "w") as f:
        json.dump(process, f)
    res = rt.exec(bundle.cid, opts=["--process", path])
    res.check()
    info = res.json
    assert "FROM_PROCESS_JSON=1" in info["env"]
    assert info["cwd"] == "/home/user"
    assert info["ids"]["uid"] == 1000 and info["ids"]["gid"] == 1000
    assert info["ids"]["groups"] == [1001]
    assert h.caps_from_mask(info["caps"]["bnd"]) == {"CAP_KILL"}
    assert h.caps_from_mask(info["caps"]["eff"]) == set()  # non-root without ambient
    assert info["seccomp"]["no_new_privs"] == 1
    rt.delete(bundle.cid, force=True).check()


def test_exec_detach_pid_file(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    pid_file = bundle.file("exec.pid")
    rt.exec(bundle.cid, "write", "/tmp/exec-ran", "1", opts=["--pid-file", pid_file],
            detach=True, bundle=bundle).check()
    with open(pid_file) as f:
        pid = int(f.read().strip())
    assert pid > 0
    h.wait_for(lambda: os.path.exists(bundle.root_path("/tmp/exec-ran")), what="exec to run")
    rt.delete(bundle.cid, force=True).check()


def test_exec_detach_long_running_shows_in_ps(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    pid_file = bundle.file("exec.pid")
    rt.exec(bundle.cid, "sleep", "60", opts=["--pid-file", pid_file], detach=True,
            bundle=bundle).check()
    with open(pid_file) as f:
        pid = int(f.read().strip())
    assert pid in rt.cmd("ps", "-f", "json", bundle.cid).json
    rt.delete(bundle.cid, force=True).check()
    h.wait_for(lambda: not h.pid_alive(pid), timeout=5, what="exec process to die")


def test_exec_in_stopped_container_fails(rt, bundle):
    bundle.args("exit", "0")
    rt.create(bundle).check()
    rt.start(bundle.cid).check()
    rt.wait_status(bundle.cid, "stopped")
    res = rt.exec(bundle.cid, "exit", "0")
    assert res.returncode != 0
    assert "stopped" in res.stderr.lower() or "not running" in res.stderr.lower()
    rt.delete(bundle.cid).check()


def test_exec_in_paused_container_fails(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    rt.cmd("pause", bundle.cid).check()
    res = rt.exec(bundle.cid, "exit", "0", timeout=10)
    assert res.returncode != 0
    assert "paused" in res.stderr.lower()
    rt.cmd("resume", bundle.cid).check()
    rt.delete(bundle.cid, force=True).check()


def test_exec_unknown_container_fails(rt):
    res = rt.exec("no-such-container", "exit", "0")
    assert res.returncode != 0


def test_exec_missing_binary_fails(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "/no/such/binary")
    assert res.returncode != 0
    assert "/no/such/binary" in res.stderr or "no such file" in res.stderr.lower()
    assert rt.state(bundle.cid)["status"] == "running"
    rt.delete(bundle.cid, force=True).check()


def test_exec_stdin_passthrough(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "/bin/cat", input="via exec\n")
    res.check()
    assert res.stdout == "via exec\n"
    rt.delete(bundle.cid, force=True).check()


def test_exec_many_times_leaks_nothing(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    for _ in range(10):
        rt.exec(bundle.cid, "fds").check()
    res = rt.exec(bundle.cid, "fds")
    res.check()
    assert [f["fd"] for f in res.json["fds"]] == [0, 1, 2]
    rt.delete(bundle.cid, force=True).check()


# ---- concurrency and robustness ----

def test_concurrent_create_same_id_only_one_wins(rt, make_bundle):
    import subprocess
    bundles = [make_bundle("sleep", "60") for _ in range(5)]
    cid = bundles[0].cid
    rt.ids.add(cid)
    procs = []
    for b in bundles:
        b.write()
        out = open(b.file("concurrent.err"), "w")
        procs.append((subprocess.Popen([rt.binary, "--root", rt.root, "create", "--bundle",
                                        b.path, cid], stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=out), out, b))
    results = []
    for p, out, b in procs:
        try:
            p.wait(timeout=h.CMD_TIMEOUT)
        finally:
            out.close()
        results.append((p.returncode, b))
    winners = [b for rc, b in results if rc == 0]
    assert len(winners) == 1, [rc for rc, _ in results]
    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["bundle"] == winners[0].path
    rt.delete(cid, force=True).check()


def test_concurrent_containers(rt, make_bundle):
    import subprocess
    bundles = [make_bundle("sleep", "60") for _ in range(4)]
    procs = []
    for b in bundles:
        b.write()
        rt.ids.add(b.cid)
        out = open(b.file("run.err"), "w")
        procs.append((subprocess.Popen([rt.binary, "--root", rt.root, "run", "-d", "--bundle",
                                        b.path, b.cid], stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=out), out))
    for p, out in procs:
        try:
            assert p.wait(timeout=h.CMD_TIMEOUT) == 0
        finally:
            out.close()
    listed = {e["id"]: e["status"] for e in rt.cmd("list", "-f", "json").json}
    assert listed == {b.cid: "running" for b in bundles}
    for b in bundles:
        rt.delete(b.cid, force=True).check()


def test_concurrent_execs(rt, bundle):
    import subprocess
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    procs = [subprocess.Popen([rt.binary, "--root", rt.root, "exec", bundle.cid, h.HELPER,
                               "exit", str(i)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(6)]
    codes = []
    for p in procs:
        p.communicate(timeout=h.CMD_TIMEOUT)
        codes.append(p.returncode)
    assert codes == list(range(6))
    rt.delete(bundle.cid, force=True).check()


def test_start_after_init_killed_fails(rt, bundle):
    bundle.args("write", "/tmp/ran", "1")
    rt.create(bundle).check()
    pid = rt.state(bundle.cid)["pid"]
    os.kill(pid, signal.SIGKILL)
    h.wait_for(lambda: rt.state(bundle.cid)["status"] == "stopped", what="stopped state")
    res = rt.start(bundle.cid)
    assert res.returncode != 0
    assert not os.path.exists(bundle.root_path("/tmp/ran"))
    rt.delete(bundle.cid).check()


def test_delete_after_bundle_removed(rt, bundle):
    import shutil
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    shutil.rmtree(bundle.path)
    rt.delete(bundle.cid, force=True).check()
    assert rt.try_state(bundle.cid) is None
    assert not os.path.exists(h.cgroup_dir("pids", bundle.cgroups_path))


def test_list_skips_garbage_in_root(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    os.makedirs(os.path.join(rt.root, "garbage-entry"))
    try:
        res = rt.cmd("list", "-f", "json")
        assert res.returncode == 0, res.stderr
        ids = [e["id"] for e in json.loads(res.stdout) or []]
        assert bundle.cid in ids
    finally:
        os.rmdir(os.path.join(rt.root, "garbage-entry"))
    rt.delete(bundle.cid, force=True).check()


def test_big_environment_and_args(rt, bundle):
    env = [h.DEFAULT_PATH] + [f"VAR_{i}={'x' * 50}" for i in range(3000)]
    bundle.process["env"] = env
    args = [f"arg{i}" for i in range(2000)]
    bundle.args("argv", *args)
    res = rt.run(bundle)
    res.check()
    assert res.json["argv"][2:] == args
    bundle.args("env")
    res = rt.run(bundle)
    res.check()
    assert [e for e in res.json["env"] if not e.startswith("HOME=")] == env


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP])
def test_run_foreground_forwards_signals(rt, bundle, sig):
    trap = "/tmp/trap"
    bundle.args("trap", trap)
    bundle.write()
    rt.ids.add(bundle.cid)
    p = rt.popen("run", "--bundle", bundle.path, bundle.cid)
    try:
        h.wait_for(lambda: os.path.exists(bundle.root_path(trap)), what="trap ready")
        p.send_signal(sig)
        p.communicate(timeout=h.CMD_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    with open(bundle.root_path(trap)) as f:
        assert int(f.read()) == int(sig)


def test_killed_create_leaves_no_init(rt, bundle):
    """If the runtime dies during create (here: SIGKILL while a createRuntime
    hook runs), its half-made init dies with it rather than idling forever, and
    delete --force cleans up the state and cgroup it had begun."""
    bundle.args("/bin/true")
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]}
    bundle.write()
    rt.ids.add(bundle.cid)
    argv = [rt.binary, "--root", rt.root, "create", "--bundle", bundle.path, bundle.cid]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    hook = None
    while time.time() < deadline and hook is None:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if f.read() == b"sleep\0" + b"30\0":
                            with open(f"/proc/{pid}/stat") as s:
                                if int(s.read().rsplit(")", 1)[1].split()[1]) == p.pid:
                                    hook = int(pid)
                except OSError:
                    pass
        time.sleep(0.02)
    assert hook, "createRuntime hook never started"
    p.kill()
    p.wait()
    os.kill(hook, signal.SIGKILL)
    # Nothing left whose parent was the killed runtime: the init had PR_SET_PDEATHSIG.
    time.sleep(0.3)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as s:
                    fields = s.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            assert int(fields[1]) != p.pid or fields[0] == "Z", f"process {pid} outlived the killed create"
    rt.delete(bundle.cid, force=True).check()
    assert rt.try_state(bundle.cid) is None
