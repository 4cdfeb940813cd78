"""containerd 1.6 (ctr + containerd-shim-runc-v2) driving the runtime under test.

The test starts a private containerd (own root, state, temp dir, sockets and
config; CRI and unused plugins disabled), imports a busybox-static image built
offline as an OCI archive, and runs containers with
`ctr run --runc-binary $SILO_RUNTIME --runc-root <tmp> --cgroup /silo-test-ctrd-*/<id>`.

Run:  SILO_RUNTIME=/usr/sbin/runc /usr/bin/python3 -m pytest tests/integration/test_containerd.py
"""

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients"))
import silo_clients as sc  # noqa: E402
import silo_images  # noqa: E402

IMAGE = "localhost/silo-busybox:test"
NAMESPACE = "silo-test"
CONTAINERD = shutil.which("containerd") or "/usr/bin/containerd"
CTR = shutil.which("ctr") or "/usr/bin/ctr"

DISABLED_PLUGINS = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",            # would use /opt/containerd
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
]


class Containerd:
    def __init__(self, base, runtime, cgroup_parent):
        self.base = base
        self.runtime = runtime
        self.cgroup_parent = cgroup_parent
        self.sock = os.path.join(base, "ctrd.sock")
        self.proc = None

    def write_config(self):
        b = self.base
        for d in ("root", "state", "tmp", "runc-root"):
            os.makedirs(os.path.join(b, d), exist_ok=True)
        plugins = ",\n".join('  "%s"' % p for p in DISABLED_PLUGINS)
        with open(os.path.join(b, "config.toml"), "w") as f:
            f.write(f"""version = 2
root = "{b}/root"
state = "{b}/state"
temp = "{b}/tmp"
disabled_plugins = [
{plugins}
]

[grpc]
  address = "{self.sock}"

[ttrpc]
  address = "{self.sock}.ttrpc"

[debug]
  address = "{b}/debug.sock"
  level = "info"

[metrics]
  address = ""
""")

    def start(self, timeout=30):
        self.log = open(os.path.join(self.base, "containerd.log"), "w")
        self.proc = subprocess.Popen([CONTAINERD, "--config",
                                      os.path.join(self.base, "config.toml")],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("containerd exited early:\n" + self.read_log())
            if os.path.exists(self.sock):
                if self("version", check=False, timeout=10).returncode == 0:
                    return
            time.sleep(0.1)
        raise AssertionError("containerd did not come up:\n" + self.read_log())

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
        self.log.close()

    def read_log(self):
        try:
            with open(os.path.join(self.base, "containerd.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def argv(self, *args):
        return [CTR, "--address", self.sock, "--namespace", NAMESPACE] + list(args)

    def __call__(self, *args, timeout=60, check=True, input=None):
        return sc.cmd_run(self.argv(*args), timeout=timeout, check=check, input=input)

    def run_argv(self, cid, *opts_and_cmd, image=IMAGE):
        """`ctr run` arguments; OPTS_AND_CMD is (options..., "--", command...)."""
        args = list(opts_and_cmd)
        split = args.index("--")
        opts, cmd = args[:split], args[split + 1:]
        return ["run", "--runc-binary", self.runtime,
                "--runc-root", os.path.join(self.base, "runc-root"),
                "--cgroup", self.cgroup(cid)] + opts + [image, cid] + cmd

    def run(self, cid, *opts_and_cmd, timeout=60, check=True, input=None):
        return self(*self.run_argv(cid, *opts_and_cmd), timeout=timeout, check=check,
                    input=input)

    def cgroup(self, cid):
        return "%s/%s" % (self.cgroup_parent, cid)

    def task_status(self, cid):
        for line in self("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return None

    def task_pid(self, cid):
        for line in self("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise LookupError(cid)

    def remove(self, cid):
        """Best-effort removal of a container and its task."""
        self("task", "kill", "-s", "KILL", cid, check=False)
        self("task", "delete", "-f", cid, check=False)
        self("container", "delete", cid, check=False)


@pytest.fixture(scope="module")
def ctrd():
    runtime = sc.runtime_path()
    problem = sc.runtime_problem(runtime)
    if problem:
        pytest.fail(problem)
    base = tempfile.mkdtemp(prefix="silo-ctrd-")
    parent = sc.owned_cgroup_parent("test-ctrd")
    cd = Containerd(base, runtime, parent)
    try:
        cd.write_config()
        cd.start()
        rootfs = silo_images.build_busybox_rootfs(os.path.join(base, "rootfs"))
        archive = silo_images.write_oci_archive(rootfs, os.path.join(base, "image.tar"), IMAGE)
        cd("images", "import", archive, timeout=120)
        assert IMAGE in cd("images", "ls", "-q").stdout
        yield cd
    finally:
        try:
            if cd.proc is not None and cd.proc.poll() is None:
                for cid in cd("container", "ls", "-q", check=False).stdout.split():
                    cd.remove(cid)
        finally:
            cd.stop()
            # shims name the containerd socket (inside BASE) on their command line
            sc.kill_pids_mentioning(base)
            leftovers = sc.remove_cgroup_tree(parent)
            sc.unmount_under(base)
            shutil.rmtree(base, ignore_errors=True)
            assert not leftovers, "could not remove cgroups: %s" % leftovers


def _wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_run_output(ctrd):
    p = ctrd.run("out", "--rm", "--", "echo", "hello from silo")
    assert p.stdout == "hello from silo\n"
    assert "out" not in ctrd("container", "ls", "-q").stdout.split()


def test_stdin_and_stderr(ctrd):
    # ctr does not forward stdin EOF to the task, so read exactly one line
    p = ctrd.run("io", "--rm", "--", "sh", "-c",
                 'read line; echo "$line" | tr a-z A-Z; echo to-err >&2',
                 input="piped text\n")
    assert p.stdout == "PIPED TEXT\n"
    assert p.stderr == "to-err\n"


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_code(ctrd, code):
    p = ctrd.run("exit%d" % code, "--rm", "--", "sh", "-c", "exit %d" % code, check=False)
    assert p.returncode == code, p.stderr


def test_env_cwd(ctrd):
    p = ctrd.run("envcwd", "--rm", "--env", "FOO=bar baz", "--cwd", "/tmp", "--",
                 "sh", "-c", 'echo "$FOO"; pwd; echo $$')
    assert p.stdout.splitlines() == ["bar baz", "/tmp", "1"]


def test_missing_executable_reports_runtime_error(ctrd):
    # the shim relays the runtime's error (from its --log json file) to ctr
    p = ctrd.run("missing", "--rm", "--", "/no/such/binary", check=False)
    assert p.returncode != 0
    assert "no such file or directory" in p.stderr.lower(), p.stderr
    assert "missing" not in ctrd("task", "ls").stdout


def test_cgroup_path_and_memory_limit(ctrd):
    cid = "memlimit"
    ctrd.run(cid, "-d", "--memory-limit", str(64 << 20), "--", "sleep", "600")
    try:
        pid = ctrd.task_pid(cid)
        assert sc.cgroup_path_of(pid, "memory") == ctrd.cgroup(cid)
        assert sc.cgroup_path_of(pid, "pids") == ctrd.cgroup(cid)
        assert sc.read_cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    finally:
        ctrd.remove(cid)
    # the runtime's delete removed the container cgroup
    assert not os.path.exists("/sys/fs/cgroup/memory" + ctrd.cgroup(cid))


def test_detached_exec_kill_delete(ctrd):
    cid = "lifecycle"
    ctrd.run(cid, "-d", "--", "sh", "-c",
             'trap "exit 0" TERM; while :; do sleep 0.1; done')
    try:
        assert ctrd.task_status(cid) == "RUNNING"
        pid = ctrd.task_pid(cid)

        p = ctrd("task", "exec", "--exec-id", "e1", cid, "echo", "from-exec")
        assert p.stdout == "from-exec\n"
        p = ctrd("task", "exec", "--exec-id", "e2", cid, "sh", "-c", "exit 5", check=False)
        assert p.returncode == 5
        p = ctrd("task", "exec", "--exec-id", "e3", "--cwd", "/tmp", "--user", "1000",
                 cid, "sh", "-c", 'echo "$(pwd) $(id -u)"; cat /proc/1/cmdline')
        lines = p.stdout.split("\n", 1)
        assert lines[0] == "/tmp 1000"
        assert lines[1].startswith("sh\0-c\0")
        p = ctrd("task", "exec", "--exec-id", "e4", cid, "/no/such/binary", check=False)
        assert p.returncode != 0

        ps = ctrd("task", "ps", cid).stdout.split()
        assert str(pid) in ps

        ctrd("task", "pause", cid)
        assert ctrd.task_status(cid) == "PAUSED"
        assert sc.read_cgroup_file(pid, "freezer", "freezer.state") == "FROZEN"
        ctrd("task", "resume", cid)
        assert ctrd.task_status(cid) == "RUNNING"
        assert sc.read_cgroup_file(pid, "freezer", "freezer.state") == "THAWED"

        ctrd("task", "kill", cid)               # SIGTERM: the trap exits 0
        _wait_for(lambda: ctrd.task_status(cid) == "STOPPED", what="task to stop")
        p = ctrd("task", "delete", cid)
        assert "non-zero exit code" not in p.stderr
        assert ctrd.task_status(cid) is None
        ctrd("container", "delete", cid)
        assert cid not in ctrd("container", "ls", "-q").stdout.split()
    finally:
        ctrd.remove(cid)


def test_kill_reports_signal_exit(ctrd):
    cid = "killed"
    ctrd.run(cid, "-d", "--", "sleep", "600")
    try:
        ctrd("task", "kill", "-s", "KILL", cid)
        _wait_for(lambda: ctrd.task_status(cid) == "STOPPED", what="task to stop")
        p = ctrd("task", "delete", cid)
        assert "exit code 137" in p.stderr
    finally:
        ctrd.remove(cid)


def test_read_only(ctrd):
    p = ctrd.run("ro", "--rm", "--read-only", "--", "sh", "-c",
                 "touch /x; echo rc=$?", check=False)
    assert p.stdout == "rc=1\n"
    assert "Read-only file system" in p.stderr


def test_cap_drop(ctrd):
    p = ctrd.run("caps", "--rm", "--cap-drop", "CAP_CHOWN", "--", "sh", "-c",
                 "touch /tmp/f; chown 1000 /tmp/f", check=False)
    assert p.returncode == 1
    assert "Operation not permitted" in p.stderr
    p = ctrd.run("caps2", "--rm", "--", "sh", "-c",
                 "touch /tmp/f; chown 1000 /tmp/f && echo chown-ok")
    assert p.stdout == "chown-ok\n"


def _run_in_pty(argv, send=None, timeout=30):
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        if send:
            os.write(master, send)
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError("pty session timed out: %r" % out)
        rc = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.decode(errors="replace"), rc


def test_tty(ctrd):
    out, rc = _run_in_pty(ctrd.argv(*ctrd.run_argv("tty", "--rm", "-t", "--", "sh", "-c",
                                                    "tty; exit 4")))
    assert "/dev/pts/0" in out, out
    assert rc == 4


def test_exec_tty(ctrd):
    cid = "exectty"
    ctrd.run(cid, "-d", "--", "sleep", "600")
    try:
        out, rc = _run_in_pty(ctrd.argv("task", "exec", "-t", "--exec-id", "t1", cid,
                                        "sh", "-c", "tty; exit 3"))
        assert "/dev/pts/" in out, out
        assert rc == 3
    finally:
        ctrd.remove(cid)


def test_bind_mount(ctrd):
    data = os.path.join(ctrd.base, "bind-data")
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "from-host"), "w") as f:
        f.write("host-content\n")
    p = ctrd.run("bind", "--rm", "--mount",
                 "type=bind,src=%s,dst=/data,options=rbind:rw" % data, "--",
                 "sh", "-c", "cat /data/from-host; echo written > /data/from-ctr")
    assert p.stdout == "host-content\n"
    with open(os.path.join(data, "from-ctr")) as f:
        assert f.read() == "written\n"
    p = ctrd.run("bindro", "--rm", "--mount",
                 "type=bind,src=%s,dst=/data,options=rbind:ro" % data, "--",
                 "sh", "-c", "echo x > /data/nope", check=False)
    assert p.returncode != 0
    assert "Read-only file system" in p.stderr
