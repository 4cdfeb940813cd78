# SPDX-License-Identifier: Apache-2.0
"""`silo compute`: the HCS-shaped compute API driven from JSON documents, as root, against a busybox
root filesystem used as a read-only overlay layer with a per-test scratch directory.

Every test gets a private state root and cgroups under the session's test-owned parent, and checks
afterwards that nothing is left: no state, no mounts, no cgroups, no processes."""

import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

import silo_harness as h

SILO = os.path.join(h.BUILD_DIR, "src/cli/silo")
EXAMPLE = os.path.join(h.BUILD_DIR, "examples/compute-example")
INIT = os.path.join(h.BUILD_DIR, "src/lib/api/silo-compute-init")
TIMEOUT = 30


class Compute:
    def __init__(self, test_dir, layer, cgroup_parent):
        self.dir = test_dir
        self.layer = layer
        self.cgroup_parent = "/" + cgroup_parent
        self.state = os.path.join(test_dir, "state")
        self.store = os.path.join(test_dir, "store")
        self.env = dict(os.environ, SILO_COMPUTE_STATE=self.state,
                        SILO_COMPUTE_CGROUP_PARENT=self.cgroup_parent, SILO_COMPUTE_INIT=INIT)
        self.ids = set()

    def run(self, *args, input=None, timeout=TIMEOUT, stdin=None):
        args = [a if isinstance(a, str) else json.dumps(a) for a in args]
        if len(args) > 1 and args[0] == "create":
            self.ids.add(args[1])
        return subprocess.run([SILO, "--root", self.store, "compute", *args], input=input, stdin=stdin,
                              capture_output=True, text=True, env=self.env, timeout=timeout)

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, f"silo compute {args}: rc={p.returncode} stderr={p.stderr}"
        return p

    def fail(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode != 0, f"silo compute {args} unexpectedly succeeded: {p.stdout}"
        assert p.stderr.startswith("silo: "), p.stderr
        return p.stderr

    def props(self, cid, *types):
        q = {"PropertyTypes": list(types)} if types else None
        p = self.ok("properties", cid, *([q] if q else []))
        return json.loads(p.stdout)

    def document(self, name="sys", **container):
        scratch = os.path.join(self.dir, name + "-scratch")
        os.makedirs(scratch, exist_ok=True)
        c = {"GuestOs": {"HostName": "web1"},
             "Storage": {"Layers": [{"Id": "busybox", "Path": self.layer}], "Path": scratch}}
        c.update(container)
        return {"Owner": "pytest", "SchemaVersion": {"Major": 2, "Minor": 1}, "Container": c}

    def cgroup(self, controller, cid):
        return os.path.join(h.CGROUP_ROOT, controller, self.cgroup_parent.lstrip("/"), cid)

    def start_system(self, cid, **container):
        self.ok("create", cid, self.document(cid, **container))
        self.ok("start", cid)


@pytest.fixture
def compute(session_dir, cgroup_parent, rootfs_base):
    if not os.access(INIT, os.X_OK):
        pytest.fail(f"{INIT} not built")
    test_dir = tempfile.mkdtemp(prefix="c", dir=session_dir)
    mounts_before = set(h.read_mountinfo())
    c = Compute(test_dir, rootfs_base, cgroup_parent)
    yield c
    for cid in sorted(c.ids):
        c.run("delete", "--force", cid)
    problems = []
    for d in ("systems", "runtime"):
        p = os.path.join(c.state, d)
        if os.path.isdir(p) and os.listdir(p):
            problems.append(f"state left in {p}: {os.listdir(p)}")
    for m in h.read_mountinfo().values():
        if m["id"] not in mounts_before and test_dir in m["mount_point"]:
            problems.append(f"mount left: {m['mount_point']}")
    for ctrl, mnt in h.cgroup_hierarchies().items():
        p = os.path.join(mnt, cgroup_parent)
        if os.path.isdir(p):
            left = [e for e in os.listdir(p) if os.path.isdir(os.path.join(p, e))]
            if left:
                problems.append(f"cgroups left under {p}: {left}")
    # Monitors and inits gone: no process works in (or is rooted at) the test's directories.
    deadline = time.monotonic() + 5
    while True:
        users = processes_using(test_dir)
        if not users or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if users:
        problems.append(f"processes left: {users}")
    subprocess.run(["rm", "-rf", "--one-file-system", test_dir], timeout=60)
    assert not problems, problems


def processes_using(path):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for link in ("cwd", "root"):
            try:
                target = os.readlink(f"/proc/{pid}/{link}")
            except OSError:
                continue
            if target == path or target.startswith(path + "/"):
                found.append((int(pid), link, target))
    return found


def test_full_lifecycle(compute):
    c = compute
    c.ok("create", "life", c.document("life", Memory={"SizeInMB": 256}))
    assert c.props("life")["State"] == "Created"
    c.ok("start", "life")
    p = c.props("life")
    assert (p["Id"], p["SystemType"], p["Owner"], p["State"], p["Stopped"]) == \
        ("life", "Container", "pytest", "Running", False)

    # Piped stdio both ways, stderr apart, the exit code, and the environment.
    r = c.run("exec", "life", {"CommandArgs": ["sh", "-c", "cat; hostname; echo $GREETING >&2; pwd; exit 7"],
                               "Environment": {"GREETING": "hi there"}, "WorkingDirectory": "/tmp",
                               "CreateStdInPipe": True, "CreateStdOutPipe": True, "CreateStdErrPipe": True},
              input="from stdin\n")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "from stdin\nweb1\n/tmp\n"
    assert r.stderr == "hi there\n"
    # CommandLine with quoting, and User.
    r = c.ok("exec", "life", {"CommandLine": "sh -c 'id -u; id -g'", "User": "1000:1001",
                              "CreateStdOutPipe": True})
    assert r.stdout.split() == ["1000", "1001"]
    # Names through the system's /etc/passwd and /etc/group; a user alone gets its primary group.
    for user, ids in (("user", ["1000", "1000"]), ("user:extra", ["1000", "1001"]), ("nobody:5", ["65534", "5"]),
                      ("1000", ["1000", "1000"]), ("4242", ["4242", "0"])):
        r = c.ok("exec", "life", {"CommandLine": "sh -c 'id -u; id -g'", "User": user, "CreateStdOutPipe": True})
        assert r.stdout.split() == ids, user
    assert 'User: no user "alice"' in c.fail("exec", "life", {"CommandArgs": ["true"], "User": "alice"})

    pid = int(c.ok("exec", "--detach", "life", {"CommandArgs": ["sleep", "60"]}).stdout)
    p = c.props("life", "Statistics", "ProcessList", "Memory")
    pids = {e["ProcessId"]: e for e in p["ProcessList"]}
    assert pid in pids and pids[pid]["ImageName"] == "sleep"
    assert any(e["ImageName"] == ".silo-init" for e in p["ProcessList"])
    s = p["Statistics"]
    assert s["Uptime100ns"] > 0 and s["Timestamp"] and s["ContainerStartTime"]
    assert s["Processor"]["TotalRuntime100ns"] > 0
    assert s["Memory"]["MemoryUsageCommitBytes"] > 0
    assert p["Memory"] == {"SizeInMB": 256}

    c.ok("modify", "life", {"ResourcePath": "Container/Memory/SizeInMB", "RequestType": "Update", "Settings": 512})
    assert c.props("life", "Memory")["Memory"] == {"SizeInMB": 512}
    with open(os.path.join(c.cgroup("memory", "life"), "memory.limit_in_bytes")) as f:
        assert int(f.read()) == 512 << 20

    st = json.loads(c.ok("process", "life", str(pid)).stdout)
    assert st == {"ProcessId": pid, "Exited": False}
    t0 = time.monotonic()
    c.ok("shutdown", "--timeout", "10", "life")
    assert time.monotonic() - t0 < 5
    c.ok("wait", "--timeout", "1", "life")
    p = c.props("life")
    assert (p["State"], p["Stopped"], p["ExitType"]) == ("Stopped", True, "GracefulExit")
    # The init passed SIGTERM on: the sleep died of it, and its monitor recorded that.
    assert c.ok("wait", "--timeout", "5", "life", str(pid)).stdout.strip() == "143"
    c.ok("delete", "life")
    assert "does not exist" in c.fail("properties", "life")


def test_terminate_process_signals_and_timeouts(compute):
    c = compute
    c.start_system("t1")
    pid = int(c.ok("exec", "--detach", "t1", {"CommandArgs": ["sleep", "60"]}).stdout)
    err = c.fail("wait", "--timeout", "0.2", "t1", str(pid))
    assert "still running" in err
    c.ok("process", "t1", str(pid), "9")
    assert c.ok("wait", "--timeout", "5", "t1", str(pid)).stdout.strip() == "137"
    st = json.loads(c.ok("process", "t1", str(pid)).stdout)
    assert st == {"ProcessId": pid, "Exited": True, "ExitCode": 137}
    assert "has exited" in c.fail("process", "t1", str(pid), "15")

    # An attached exec passes its signals on (and the process does not inherit ignored ones).
    p = subprocess.Popen([SILO, "compute", "exec", "t1", json.dumps(
        {"CommandArgs": ["sh", "-c", "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.1; done"],
         "CreateStdOutPipe": True})], stdout=subprocess.PIPE, text=True, env=c.env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=10)
    finally:
        p.kill()
    assert (p.returncode, out) == (130, "")
    p = subprocess.Popen([SILO, "compute", "exec", "t1", json.dumps(
        {"CommandArgs": ["sh", "-c", "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.1; done"],
         "CreateStdOutPipe": True})], stdout=subprocess.PIPE, text=True, env=c.env)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=10)
    finally:
        p.kill()
    assert (p.returncode, out) == (5, "got-term\n")

    # A process that ignores SIGTERM outlasts a short graceful shutdown; terminate ends it.
    c.ok("exec", "--detach", "t1", {"CommandArgs": ["sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"]})
    assert "still running" in c.fail("shutdown", "--timeout", "0.3", "t1")
    assert "still running" in c.fail("wait", "--timeout", "0.2", "t1")
    c.ok("terminate", "t1")
    p = c.props("t1")
    assert (p["State"], p["ExitType"]) == ("Stopped", "ForcedExit")
    c.ok("delete", "t1")


def test_console(compute):
    c = compute
    c.start_system("tty")
    r = c.run("exec", "tty", {"CommandLine": "sh -c 'tty; stty size; echo $TERM'", "EmulateConsole": True,
                              "ConsoleSize": [30, 100], "Environment": {"TERM": "xterm"}},
              stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "/dev/pts/" in r.stdout and "30 100" in r.stdout and "xterm" in r.stdout

    # Resize from another handle (another silo process) while the attached exec holds the master;
    # a CloseHandle through a handle without pipes is a no-op, a bad one an error.
    p = subprocess.Popen([SILO, "--root", c.store, "compute", "exec", "tty", json.dumps(
        {"CommandLine": "sh -c 'echo ready; read x; stty size'", "EmulateConsole": True, "ConsoleSize": [10, 20]})],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=c.env)
    try:
        assert p.stdout.readline().strip() == "ready"
        sh = [e["ProcessId"] for e in c.props("tty", "ProcessList")["ProcessList"] if e["ImageName"] == "sh"]
        assert len(sh) == 1
        c.ok("process", "tty", str(sh[0]), {"Operation": "ConsoleSize", "ConsoleSize": {"Height": 33, "Width": 111}})
        assert "Operation: unknown operation" in c.fail("process", "tty", str(sh[0]), {"Operation": "Resize"})
        assert "CloseHandle.Handle: unknown handle" in c.fail(
            "process", "tty", str(sh[0]), {"Operation": "CloseHandle", "CloseHandle": {"Handle": "StdFoo"}})
        out, _ = p.communicate("go\n", timeout=10)
    finally:
        p.kill()
    assert p.returncode == 0
    assert "33 111" in out

    # The pty master lives in the handle: a detached console process loses its terminal when the
    # creating handle closes, and is hung up like any session leader.
    pid = int(c.ok("exec", "--detach", "tty", {"CommandArgs": ["sleep", "60"], "EmulateConsole": True}).stdout)
    assert c.ok("wait", "--timeout", "5", "tty", str(pid)).stdout.strip() == "129"
    c.ok("terminate", "tty")


def test_pause_resume(compute):
    c = compute
    c.start_system("pz")
    c.ok("pause", "pz")
    assert c.props("pz")["State"] == "Paused"
    assert "not Running" in c.fail("exec", "pz", {"CommandArgs": ["true"]})
    assert "not Running" in c.fail("pause", "pz")
    c.ok("resume", "pz")
    assert c.props("pz")["State"] == "Running"
    assert c.run("exec", "pz", {"CommandArgs": ["true"]}).returncode == 0
    # A paused system still shuts down gracefully.
    c.ok("pause", "pz")
    c.ok("shutdown", "pz")
    assert c.props("pz")["ExitType"] == "GracefulExit"


def test_processor_and_memory_mapping(compute):
    c = compute
    ncpu = os.cpu_count()
    c.start_system("cpu", Processor={"Maximum": 5000, "Weight": 100}, Memory={"SizeInMB": 64})
    cpu = c.cgroup("cpu", "cpu")
    with open(os.path.join(cpu, "cpu.cfs_quota_us")) as f:
        assert int(f.read()) == 5000 * 100000 * ncpu // 10000
    with open(os.path.join(cpu, "cpu.shares")) as f:
        assert int(f.read()) == 2 + 99 * 262142 // 9999
    with open(os.path.join(c.cgroup("memory", "cpu"), "memory.limit_in_bytes")) as f:
        assert int(f.read()) == 64 << 20
    c.ok("modify", "cpu", {"ResourcePath": "Container/Processor", "RequestType": "Update",
                           "Settings": {"Count": 1}})
    with open(os.path.join(cpu, "cpu.cfs_quota_us")) as f:
        assert int(f.read()) == 100000
    err = c.fail("modify", "cpu", {"ResourcePath": "Container/Processor", "Settings": {"Count": ncpu + 1}})
    assert "Settings.Count" in err and "exceeds" in err
    c.ok("terminate", "cpu")


def test_mapped_directories_and_scratch(compute):
    c = compute
    share = os.path.join(c.dir, "share")
    os.makedirs(share)
    with open(os.path.join(share, "f"), "w") as f:
        f.write("shared\n")
    c.start_system("md", MappedDirectories=[{"HostPath": share, "ContainerPath": "/data", "ReadOnly": True}])
    r = c.run("exec", "md", {"CommandLine": "sh -c 'cat /data/f; touch /data/x || echo ro; echo new > /etc/new'",
                             "CreateStdOutPipe": True, "CreateStdErrPipe": True})
    assert r.stdout == "shared\nro\n", r.stderr
    # Writes land in the scratch layer, never in the read-only layer.
    assert os.path.exists(os.path.join(c.dir, "md-scratch", "upper", "etc", "new"))
    assert not os.path.exists(os.path.join(c.layer, "etc", "new"))

    rw = os.path.join(c.dir, "rw")
    os.makedirs(rw)
    c.ok("modify", "md", {"ResourcePath": "Container/MappedDirectories", "RequestType": "Add",
                          "Settings": {"HostPath": rw, "ContainerPath": "/added"}})
    c.ok("exec", "md", {"CommandLine": "sh -c 'echo hi > /added/out'"})
    with open(os.path.join(rw, "out")) as f:
        assert f.read() == "hi\n"
    remove = {"ResourcePath": "Container/MappedDirectories", "RequestType": "Remove",
              "Settings": {"ContainerPath": "/added"}}
    c.ok("modify", "md", remove)
    # Gone from the document too: removing it again is refused.
    assert "/added is not a mapped directory" in c.fail("modify", "md", remove)
    # Mapped at create time counts as mapped.
    c.ok("modify", "md", {"ResourcePath": "Container/MappedDirectories", "RequestType": "Remove",
                          "Settings": {"ContainerPath": "/data"}})
    r = c.run("exec", "md", {"CommandLine": "sh -c 'ls /added; mountpoint /added || echo gone'",
                             "CreateStdOutPipe": True})
    assert r.stdout.strip().endswith("gone"), r.stdout
    assert "Settings.ContainerPath: required field is missing" in c.fail(
        "modify", "md", {"ResourcePath": "Container/MappedDirectories", "RequestType": "Remove", "Settings": {}})
    assert "Settings.ContainerPath: /etc is not a mapped directory" in c.fail(
        "modify", "md", {"ResourcePath": "Container/MappedDirectories", "RequestType": "Remove",
                         "Settings": {"ContainerPath": "/etc"}})
    c.ok("terminate", "md")


def test_enumerate(compute):
    c = compute
    c.ok("create", "e1", c.document("e1"))
    doc = c.document("e2")
    doc["Owner"] = "other"
    c.ok("create", "e2", doc)
    all_ = json.loads(c.ok("list").stdout)
    assert sorted(s["Id"] for s in all_) == ["e1", "e2"]
    assert all(s["State"] == "Created" for s in all_)
    mine = json.loads(c.ok("list", {"Owners": ["other"]}).stdout)
    assert [s["Id"] for s in mine] == ["e2"]
    assert json.loads(c.ok("list", {"Ids": ["e1"], "Types": ["Container"]}).stdout)[0]["Id"] == "e1"
    assert json.loads(c.ok("list", {"Types": ["VirtualMachine"]}).stdout) == []
    assert "Owners: expected an array" in c.fail("list", {"Owners": "x"})
    assert "is Created" in c.fail("delete", "e1")
    c.ok("delete", "--force", "e1", "e2")
    assert json.loads(c.ok("list").stdout) == []


def bad_documents(c):
    good = c.document("bad")
    scratch = good["Container"]["Storage"]["Path"]

    def with_(**kw):
        d = json.loads(json.dumps(good))
        d["Container"].update(kw)
        return d
    return [
        ("{not json", "ComputeSystem"),
        ([], "ComputeSystem: expected an object"),
        ({"Owner": "x"}, "Container: missing"),
        ({"Owner": 5, "Container": good["Container"]}, "Owner: expected a string"),
        ({"SchemaVersion": {"Major": 1}, "Container": good["Container"]}, "SchemaVersion.Major: 1"),
        ({"VirtualMachine": {"Chipset": {"Uefi": {}}}}, "only LinuxKernelDirect boots are supported"),
        ({"Container": good["Container"], "VirtualMachine": {}}, "mutually exclusive"),
        (with_(Memory={"SizeInMB": "lots"}), "Container.Memory.SizeInMB: expected an integer, got string"),
        (with_(Memory={"SizeInMB": 1}), "Container.Memory.SizeInMB: 1 MB is out of range"),
        (with_(Processor={"Maximum": 20000}), "Container.Processor.Maximum: 20000 is out of range"),
        (with_(Processor={"Weight": -1}), "Container.Processor.Weight"),
        (with_(Processor=[]), "Container.Processor: expected an object"),
        (with_(Storage={"Layers": [{"Path": "relative"}], "Path": scratch}),
         "Container.Storage.Layers[0].Path: expected an absolute path"),
        (with_(Storage={"Layers": [{"Id": "x"}], "Path": scratch}), "Container.Storage.Layers[0].Path"),
        (with_(Storage={"Layers": [{"Path": "/no/such/layer"}], "Path": scratch}), "/no/such/layer"),
        (with_(Storage={"Layers": [{"Path": "/a:b"}], "Path": scratch}), "overlay paths cannot"),
        (with_(Storage={"Path": "/no/such/dir"}), "Container.Storage.Path /no/such/dir"),
        (with_(Storage=None), "Container.Storage: missing"),
        (with_(MappedDirectories=[{"HostPath": "/tmp"}]), "Container.MappedDirectories[0].ContainerPath"),
        (with_(MappedDirectories=[{"HostPath": "/tmp", "ContainerPath": "/x", "ReadOnly": "yes"}]),
         "Container.MappedDirectories[0].ReadOnly: expected a boolean"),
        (with_(GuestOs={"HostName": 7}), "Container.GuestOs.HostName: expected a string"),
        (with_(Networking={"Namespace": "../etc"}), "Container.Networking.Namespace"),
    ]


def test_bad_documents(compute):
    c = compute
    for doc, message in bad_documents(c):
        err = c.fail("create", "bad", doc if isinstance(doc, str) else json.dumps(doc))
        assert message in err, (doc, err)
    assert "invalid" in c.fail("create", "../escape", c.document("x")).lower()
    assert json.loads(c.ok("list").stdout) == []


def test_bad_requests(compute):
    c = compute
    c.start_system("req")
    c.fail("create", "req", c.document("req"))
    assert "already exists" in c.fail("create", "req", c.document("req"))
    mem = {"ResourcePath": "Container/Memory/SizeInMB", "Settings": 128}
    cases = [
        (dict(mem, RequestType="Replace"), 'RequestType: unknown request type "Replace"'),
        (dict(mem, RequestType="Add"), "RequestType: Add is not supported for Container/Memory/SizeInMB"),
        (dict(mem, ResourcePath="Container/Gpu"), 'ResourcePath: unknown resource "Container/Gpu"'),
        (dict(mem, ResourcePath=3), "ResourcePath: expected a string"),
        (dict(mem, Settings="x"), "Settings: expected an integer, got string"),
        ({"ResourcePath": "Container/Memory/SizeInMB"}, "Settings: missing"),
        ({"ResourcePath": "Container/MappedDirectories", "RequestType": "Add",
          "Settings": {"HostPath": "/nonexistent-dir", "ContainerPath": "/x"}}, "Settings.HostPath /nonexistent-dir"),
    ]
    for req, message in cases:
        err = c.fail("modify", "req", req)
        assert message in err, (req, err)
    assert 'PropertyTypes[1]: unknown property type "Gpu"' in \
        c.fail("properties", "req", {"PropertyTypes": ["Memory", "Gpu"]})
    procs = [
        ({}, "needs CommandLine or CommandArgs"),
        ({"CommandArgs": "sh"}, "CommandArgs: expected an array"),
        ({"CommandArgs": ["sh", 1]}, "CommandArgs[1]: expected a string"),
        ({"CommandLine": "sh -c 'unterminated"}, "CommandLine: unterminated ' quote"),
        ({"CommandArgs": ["true"], "Environment": {"A": 1}}, "Environment.A: expected a string"),
        ({"CommandArgs": ["true"], "User": "bob"}, "User: no user \"bob\""),
        ({"CommandArgs": ["true"], "User": "0:"}, "User: expected \"user[:group]\""),
        ({"CommandArgs": ["true"], "WorkingDirectory": "tmp"}, "WorkingDirectory: expected an absolute path"),
        ({"CommandArgs": ["true"], "ConsoleSize": [1]}, "ConsoleSize: expected [height, width]"),
        ({"CommandArgs": ["/no/such/binary"]}, "/no/such/binary"),
    ]
    for params, message in procs:
        err = c.fail("exec", "req", params)
        assert message in err, (params, err)
    assert "does not exist" in c.fail("start", "nosuch")
    p = c.run("frob")
    assert p.returncode == 2 and "unknown compute command 'frob'" in p.stderr and "compute exec" in p.stderr
    p = c.run("create", "only-id")
    assert p.returncode == 2 and p.stderr.startswith("usage: silo compute create ID DOCUMENT")
    assert "--timeout: expected seconds" in c.run("wait", "--timeout", "soon", "req").stderr
    assert "No such file" in c.fail("create", "nofile", "/nonexistent/doc.json")
    assert "not Created" in c.fail("start", "req")
    assert "does not exist" in c.fail("process", "req", "999999")
    c.ok("terminate", "req")
    assert "Stopped" in c.fail("properties", "req", {"PropertyTypes": ["Statistics"]})
    assert "Stopped" in c.fail("modify", "req", mem)


def test_example_program(compute):
    """docs/API.md's example program, built by meson, runs as documented."""
    c = compute
    scratch = os.path.join(c.dir, "example-scratch")
    os.makedirs(scratch)
    c.ids.add("compute-example")
    p = subprocess.run([EXAMPLE, c.layer, scratch], capture_output=True, text=True, env=c.env, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[1] == "HELLO FROM THE HOST"
    assert lines[2] == "process exited with 0"
    props = json.loads(lines[3])
    assert props["State"] == "Running" and props["Memory"] == {"SizeInMB": 128}
    assert lines[-1] == "done"


def test_terminate_on_last_handle_closed(compute):
    """ShouldTerminateOnLastHandleClosed: every silo invocation holds a handle while it runs, so
    the system ends as `create` closes the only one; listing does not count as a handle."""
    c = compute
    doc = c.document("last")
    doc["ShouldTerminateOnLastHandleClosed"] = True
    c.ok("create", "last", doc)
    assert json.loads(c.ok("list").stdout)[0]["State"] == "Stopped"
    p = c.props("last")
    assert (p["State"], p["ExitType"]) == ("Stopped", "ForcedExit")
    c.ok("delete", "last")


def test_concurrent_systems(compute):
    """Parallel creates, starts and execs neither hang nor fail (HCS users saw starts hang)."""
    c = compute
    n = 6
    procs = []
    for i in range(n):
        cid = f"par{i}"
        c.ids.add(cid)
        doc = json.dumps(c.document(cid))
        script = (f"{SILO} compute create {cid} '{doc}' >/dev/null && {SILO} compute start {cid} && "
                  f"{SILO} compute exec {cid} '{{\"CommandArgs\": [\"echo\", \"{cid}\"], "
                  f"\"CreateStdOutPipe\": true}}'")
        procs.append(subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=c.env))
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out == f"par{i}\n"
    states = {s["Id"]: s["State"] for s in json.loads(c.ok("list").stdout)}
    assert states == {f"par{i}": "Running" for i in range(n)}
    for i in range(n):
        c.ok("terminate", f"par{i}")


def test_store_image(compute):
    """Storage.Image (silo's addition): the root filesystem is a container rootfs of the image store,
    created with the system and removed with it."""
    c = compute
    p = subprocess.run([SILO, "--root", c.store, "import", c.layer, "busybox:compute"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = {"SchemaVersion": {"Major": 2, "Minor": 1},
           "Container": {"Storage": {"Image": "busybox:compute"}, "GuestOs": {"HostName": "img"}}}
    c.ok("create", "img", doc)
    c.ok("start", "img")
    r = c.ok("exec", "img", {"CommandLine": "sh -c 'hostname; echo x > /new; ls /new'", "CreateStdOutPipe": True})
    assert r.stdout == "img\n/new\n"
    ls = subprocess.run([SILO, "--root", c.store, "rootfs", "ls"], capture_output=True, text=True, timeout=30)
    assert "compute-img" in ls.stdout
    assert "Image: excludes Layers and Path" in c.fail(
        "create", "img2", {"Container": {"Storage": {"Image": "busybox:compute", "Path": "/tmp"}}})
    assert "Container.Storage.Image" in c.fail("create", "img3", {"Container": {"Storage": {"Image": "nosuch:1"}}})
    c.ok("terminate", "img")
    c.ok("delete", "img")
    ls = subprocess.run([SILO, "--root", c.store, "rootfs", "ls"], capture_output=True, text=True, timeout=30)
    assert "compute-img" not in ls.stdout


def test_embedded_oci_spec(compute):
    """An OCI spec inside the document: its process is the system's init, so the system stops when
    that process exits (UnexpectedExit); the HCS fields still apply on top."""
    c = compute
    oci = h.default_config("/ignored")
    oci["process"]["args"] = ["sh", "-c", "hostname > /tmp/host; sleep 0.5"]
    oci["root"] = {"path": "/unused-with-storage"}
    doc = c.document("oci", OciSpecification=oci, Memory={"SizeInMB": 32})
    doc["Container"]["GuestOs"] = {"HostName": "from-hcs"}
    c.ok("create", "oci", doc)
    c.ok("start", "oci")
    with open(os.path.join(c.cgroup("memory", "oci"), "memory.limit_in_bytes")) as f:
        assert int(f.read()) == 32 << 20
    assert not any(e["ImageName"] == ".silo-init" for e in c.props("oci", "ProcessList")["ProcessList"])
    c.ok("wait", "--timeout", "10", "oci")
    p = c.props("oci")
    assert (p["State"], p["ExitType"]) == ("Stopped", "UnexpectedExit")
    with open(os.path.join(c.dir, "oci-scratch", "upper", "tmp", "host")) as f:
        assert f.read() == "from-hcs\n"
    c.ok("delete", "oci")
