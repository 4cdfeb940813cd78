"""podman 4.3 driving the runtime under test ($SILO_RUNTIME) as its OCI runtime.

Every podman call uses a private setup under a temp dir (storage, run root,
libpod tmp dir, file locks, file events log, containers.conf via
CONTAINERS_CONF) and puts containers under a test-owned absolute cgroup
parent that is removed at the end.  The image is a busybox-static rootfs
imported with `podman import`; nothing is pulled.

Run:  SILO_RUNTIME=/usr/sbin/runc /usr/bin/python3 -m pytest tests/integration/test_podman.py
"""

import json
import os
import pty
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients"))
import silo_clients as sc  # noqa: E402
import silo_images  # noqa: E402

IMAGE = "localhost/silo-busybox:test"
PODMAN = shutil.which("podman") or "/usr/bin/podman"

# podman 4.3 lowers its own RLIMIT_NPROC to 32768 at start-up, so conmon and
# the runtime cannot set a higher hard limit than that (no CAP_SYS_RESOURCE).
PODMAN_NPROC_CAP = 32768


class Podman:
    def __init__(self, base, runtime, cgroup_parent):
        self.base = base
        self.runtime = runtime
        self.cgroup_parent = cgroup_parent
        self.env = dict(os.environ,
                        CONTAINERS_CONF=os.path.join(base, "containers.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(base, "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=os.path.join(base, "registries.conf"),
                        TMPDIR=os.path.join(base, "vartmp"))

    def argv(self, *args):
        return [PODMAN, "--root", os.path.join(self.base, "root"),
                "--runroot", os.path.join(self.base, "runroot"),
                "--storage-driver", "vfs", "--runtime", self.runtime] + list(args)

    def __call__(self, *args, timeout=60, check=True, input=None):
        return sc.cmd_run(self.argv(*args), timeout=timeout, check=check, input=input,
                          env=self.env)

    def run(self, *args, timeout=60, check=True, input=None):
        """`podman run` with the test cgroup parent; ARGS are options, image, command."""
        return self("run", "--cgroup-parent", self.cgroup_parent, *args,
                    timeout=timeout, check=check, input=input)

    def inspect(self, name, fmt):
        return self("inspect", "--format", fmt, name).stdout.strip()


def write_config(base):
    nofile = sc.hard_rlimit(resource.RLIMIT_NOFILE)
    nproc = min(sc.hard_rlimit(resource.RLIMIT_NPROC), PODMAN_NPROC_CAP)
    runtime_name = os.path.basename(sc.runtime_path())
    for d in ("root", "runroot", "tmp", "vartmp", "net"):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    with open(os.path.join(base, "containers.conf"), "w") as f:
        f.write(f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"
log_driver = "k8s-file"
read_only_tmpfs = true

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
lock_type = "file"
tmp_dir = "{base}/tmp"
static_dir = "{base}/root/libpod"
volume_path = "{base}/root/volumes"
image_copy_tmp_dir = "{base}/vartmp"
runtime_supports_json = ["crun", "runc", "{runtime_name}"]

[network]
network_config_dir = "{base}/net"
""")
    with open(os.path.join(base, "storage.conf"), "w") as f:
        f.write(f"""[storage]
driver = "vfs"
graphroot = "{base}/root"
runroot = "{base}/runroot"
""")
    with open(os.path.join(base, "registries.conf"), "w") as f:
        f.write("unqualified-search-registries = []\n")


@pytest.fixture(scope="module")
def podman():
    runtime = sc.runtime_path()
    problem = sc.runtime_problem(runtime)
    if problem:
        pytest.fail(problem)
    base = tempfile.mkdtemp(prefix="silo-podman-")
    parent = sc.owned_cgroup_parent("test-podman")
    pm = Podman(base, runtime, parent)
    try:
        write_config(base)
        rootfs = silo_images.build_busybox_rootfs(os.path.join(base, "rootfs"))
        tarball = silo_images.write_rootfs_tar(rootfs, os.path.join(base, "rootfs.tar"))
        pm("import", "--change", "CMD=/bin/sh", tarball, IMAGE, timeout=120)
        yield pm
    finally:
        try:
            pm("rm", "--all", "--force", "--time", "0", timeout=120, check=False)
        finally:
            # conmon and `podman container cleanup` name the temp dir on their
            # command line; anything still alive here is ours.
            sc.kill_pids_mentioning(base)
            leftovers = sc.remove_cgroup_tree(parent)
            sc.unmount_under(base)
            shutil.rmtree(base, ignore_errors=True)
            assert not leftovers, "could not remove cgroups: %s" % leftovers


def _container_pid(pm, name):
    pid = int(pm.inspect(name, "{{.State.Pid}}"))
    assert pid > 0, "container %s has no pid" % name
    return pid


def _wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# --- run --rm, output and exit codes ----------------------------------------

def test_run_rm_output(podman):
    p = podman.run("--rm", IMAGE, "echo", "hello from silo")
    assert p.stdout == "hello from silo\n"
    # --rm really removed it
    assert podman("ps", "-a", "-q").stdout.strip() == ""


def test_run_stdin(podman):
    p = podman.run("--rm", "-i", IMAGE, "tr", "a-z", "A-Z", input="piped text\n")
    assert p.stdout == "PIPED TEXT\n"


def test_stdout_and_stderr_are_separate(podman):
    p = podman.run("--rm", IMAGE, "sh", "-c", "echo to-out; echo to-err >&2")
    assert p.stdout == "to-out\n"
    assert "to-err" in p.stderr


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exit_code(podman, code):
    p = podman.run("--rm", IMAGE, "sh", "-c", "exit %d" % code, check=False)
    assert p.returncode == code, p.stderr


def test_missing_executable_is_127(podman):
    # podman maps the runtime's "no such file"/"not found" error to 127
    p = podman.run("--rm", IMAGE, "/no/such/binary", check=False)
    assert p.returncode == 127, p.stderr
    p = podman.run("--rm", IMAGE, "no-such-command-in-path", check=False)
    assert p.returncode == 127, p.stderr


def test_non_executable_is_126(podman):
    # ... and "permission denied" to 126
    p = podman.run("--rm", IMAGE, "/etc/passwd", check=False)
    assert p.returncode == 126, p.stderr


# --- process settings -------------------------------------------------------

def test_env(podman):
    p = podman.run("--rm", "-e", "FOO=bar baz", "-e", "EMPTY=", "--hostname", "silo-host",
                   IMAGE, "sh", "-c", 'echo "[$FOO][$EMPTY][$PATH]"; hostname')
    lines = p.stdout.splitlines()
    assert lines[0] == "[bar baz][][/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]"
    assert lines[1] == "silo-host"


def test_workdir(podman):
    assert podman.run("--rm", "-w", "/tmp", IMAGE, "pwd").stdout == "/tmp\n"
    assert podman.run("--rm", IMAGE, "pwd").stdout == "/\n"
    p = podman.run("--rm", "--user", "1000", "-w", "/home/user", IMAGE, "sh", "-c",
                   "touch mine && ls -n mine")
    assert p.stdout.split()[2:4] == ["1000", "1000"]


def test_user(podman):
    p = podman.run("--rm", "--user", "1000:1000", IMAGE, "sh", "-c", "id -u; id -g; echo $HOME")
    assert p.stdout.split() == ["1000", "1000", "/home/user"]
    p = podman.run("--rm", "--user", "nobody", IMAGE, "sh", "-c", "id -u; id -g")
    assert p.stdout.split() == ["65534", "65534"]
    p = podman.run("--rm", "--user", "1000:1000", "--group-add", "65534", IMAGE, "id", "-G")
    assert sorted(p.stdout.split()) == ["1000", "65534"]


def test_user_is_unprivileged(podman):
    p = podman.run("--rm", "--user", "1000:1000", IMAGE, "sh", "-c",
                   "grep CapEff /proc/self/status; touch /root/x", check=False)
    assert "CapEff:\t0000000000000000" in p.stdout
    assert p.returncode == 1
    assert "Permission denied" in p.stderr


def test_rlimits_follow_config(podman):
    nofile = sc.hard_rlimit(resource.RLIMIT_NOFILE)
    p = podman.run("--rm", IMAGE, "sh", "-c", "ulimit -n; ulimit -Hn")
    assert p.stdout.split() == [str(nofile), str(nofile)]
    # an explicit --ulimit replaces the configured defaults, so nproc has to be
    # repeated or podman falls back to its built-in 1048576
    nproc = min(sc.hard_rlimit(resource.RLIMIT_NPROC), PODMAN_NPROC_CAP)
    p = podman.run("--rm", "--ulimit", "nofile=512:1024", "--ulimit", "nproc=%d:%d" % (nproc, nproc),
                   IMAGE, "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u")
    assert p.stdout.split() == ["512", "1024", str(nproc)]


def test_tty(podman):
    out, rc = _run_in_pty(podman, ["run", "--rm", "-t", "--cgroup-parent",
                                   podman.cgroup_parent, IMAGE, "sh", "-c",
                                   "tty; test -t 1 && echo is-a-tty"])
    assert rc == 0, out
    assert "/dev/pts/0" in out
    assert "is-a-tty" in out


def test_tty_interactive(podman):
    out, rc = _run_in_pty(podman, ["run", "--rm", "-it", "--cgroup-parent",
                                   podman.cgroup_parent, IMAGE, "sh"],
                          send=b"echo typed-$((6*7))\nexit 3\n")
    assert "typed-42" in out
    assert rc == 3, out


def _run_in_pty(pm, args, send=None, timeout=30):
    master, slave = pty.openpty()
    proc = subprocess.Popen(pm.argv(*args), stdin=slave, stdout=slave, stderr=slave,
                            env=pm.env, start_new_session=True, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        if send:
            # the pty buffers the input until the container's shell reads it
            os.write(master, send)
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:         # EIO: every slave fd closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError("pty session timed out: %r" % b"".join(chunks))
        rc = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return b"".join(chunks).decode(errors="replace"), rc


# --- resources --------------------------------------------------------------

def test_memory_limit(podman):
    name = "memlimit"
    podman.run("-d", "--name", name, "--memory", "64m", IMAGE, "sleep", "600")
    try:
        pid = _container_pid(podman, name)
        assert sc.cgroup_path_of(pid, "memory").startswith(podman.cgroup_parent + "/")
        assert sc.read_cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        inside = podman("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert inside.stdout.strip() == str(64 << 20)
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_memory_limit_is_enforced(podman):
    script = "dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null; echo dd=$?"
    small = podman.run("--rm", "--memory", "32m", "--memory-swap", "32m", IMAGE,
                       "sh", "-c", script)
    assert small.stdout == "dd=137\n"           # OOM-killed
    big = podman.run("--rm", "--memory", "256m", IMAGE, "sh", "-c", script)
    assert big.stdout == "dd=0\n"


def test_pids_limit(podman):
    name = "pidslimit"
    podman.run("-d", "--name", name, "--pids-limit", "20", IMAGE, "sleep", "600")
    try:
        pid = _container_pid(podman, name)
        assert sc.cgroup_path_of(pid, "pids").startswith(podman.cgroup_parent + "/")
        assert sc.read_cgroup_file(pid, "pids", "pids.max") == "20"
        inside = podman("exec", name, "cat", "/sys/fs/cgroup/pids/pids.max")
        assert inside.stdout.strip() == "20"
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_pids_limit_is_enforced(podman):
    p = podman.run("--rm", "--pids-limit", "10", IMAGE, "sh", "-c",
                   "for i in $(seq 20); do sleep 1 & done; wait", check=False)
    assert p.returncode != 0
    assert "can't fork" in p.stderr


def test_cgroup_parent_is_used(podman):
    p = podman.run("--rm", IMAGE, "cat", "/proc/self/cgroup")
    lines = [ln.split(":", 2) for ln in p.stdout.splitlines()]
    v1 = {c: path for _h, ctrls, path in lines for c in ctrls.split(",") if c}
    for ctrl in ("memory", "pids", "cpu", "devices", "freezer"):
        assert v1[ctrl].startswith(podman.cgroup_parent + "/libpod-"), p.stdout


# --- lifecycle --------------------------------------------------------------

def test_detached_exec_stop_rm(podman):
    name = "lifecycle"
    cid = podman.run("-d", "--name", name, IMAGE, "sh", "-c",
                     'trap "echo got-term; exit 0" TERM; '
                     'echo started; while :; do sleep 0.1; done').stdout.strip()
    assert len(cid) == 64
    try:
        assert podman.inspect(name, "{{.State.Status}}") == "running"
        ps = podman("ps", "--format", "{{.Names}} {{.Status}}").stdout
        assert name + " Up" in ps

        assert podman("exec", name, "echo", "from-exec").stdout == "from-exec\n"
        p = podman("exec", name, "sh", "-c", "exit 7", check=False)
        assert p.returncode == 7
        p = podman("exec", "-e", "X=1", "-w", "/tmp", "--user", "1000", name,
                   "sh", "-c", 'echo "$X $(pwd) $(id -u)"')
        assert p.stdout == "1 /tmp 1000\n"
        # exec joins the container's namespaces: same pid namespace, sees pid 1
        p = podman("exec", name, "cat", "/proc/1/cmdline")
        assert p.stdout.startswith("sh\0-c\0")
        p = podman("exec", name, "/no/such/binary", check=False)
        assert p.returncode == 127

        start = time.monotonic()
        podman("stop", "-t", "20", name, timeout=60)
        # the TERM handler ran, so stop did not need its SIGKILL fallback
        assert time.monotonic() - start < 10
        assert podman.inspect(name, "{{.State.Status}}") == "exited"
        assert podman.inspect(name, "{{.State.ExitCode}}") == "0"
        logs = podman("logs", name).stdout
        assert "started" in logs and "got-term" in logs

        podman("start", name)
        assert podman.inspect(name, "{{.State.Status}}") == "running"
        podman("kill", name)                    # SIGKILL by default
        podman("wait", name, timeout=30)
        assert podman.inspect(name, "{{.State.ExitCode}}") == "137"

        podman("rm", name)
        assert name not in podman("ps", "-a", "--format", "{{.Names}}").stdout
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def test_logs(podman):
    name = "logs"
    podman.run("--name", name, IMAGE, "sh", "-c",
               "echo out-line-1; echo err-line >&2; echo out-line-2")
    try:
        p = podman("logs", name)
        combined = p.stdout + p.stderr
        assert "out-line-1" in combined and "out-line-2" in combined
        assert "err-line" in combined
        assert combined.index("out-line-1") < combined.index("out-line-2")
    finally:
        podman("rm", "-f", name)


def test_pause_unpause(podman):
    name = "pausable"
    data = os.path.join(podman.base, "pause-data")
    os.makedirs(data, exist_ok=True)
    counter = os.path.join(data, "count")
    podman.run("-d", "--name", name, "-v", data + ":/data", IMAGE, "sh", "-c",
               "i=0; while :; do i=$((i+1)); echo $i > /data/count; sleep 0.02; done")
    try:
        def value():
            try:
                with open(counter) as f:
                    return int(f.read().strip() or 0)
            except (OSError, ValueError):
                return 0
        _wait_for(lambda: value() > 3, what="counter to start")
        pid = _container_pid(podman, name)

        podman("pause", name)
        assert podman.inspect(name, "{{.State.Status}}") == "paused"
        assert sc.read_cgroup_file(pid, "freezer", "freezer.state") == "FROZEN"
        frozen = value()
        time.sleep(0.5)
        assert value() == frozen, "container kept running while paused"

        podman("unpause", name)
        assert podman.inspect(name, "{{.State.Status}}") == "running"
        assert sc.read_cgroup_file(pid, "freezer", "freezer.state") == "THAWED"
        _wait_for(lambda: value() > frozen + 3, what="counter to resume")
    finally:
        podman("rm", "-f", "-t", "0", name)


# --- security and isolation -------------------------------------------------

def test_read_only_rootfs(podman):
    p = podman.run("--rm", "--read-only", IMAGE, "sh", "-c",
                   "touch /x; echo rc=$?; touch /tmp/y && echo tmp-ok; "
                   "awk '$2 == \"/\" {print $4}' /proc/mounts", check=False)
    lines = p.stdout.splitlines()
    assert lines[0] == "rc=1"
    assert "Read-only file system" in p.stderr
    assert lines[1] == "tmp-ok"                 # podman's tmpfs on /tmp
    assert lines[2].split(",")[0] == "ro"
    # and without --read-only the root is writable
    p = podman.run("--rm", IMAGE, "sh", "-c", "touch /x && echo rw-ok")
    assert p.stdout == "rw-ok\n"


# podman 4.3 default capability set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL
# NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT NET_RAW MKNOD AUDIT_WRITE
DEFAULT_CAPS = 0x00000000a80425fb
CAP_CHOWN = 1 << 0
CAP_NET_ADMIN = 1 << 12


def _caps(text):
    caps = {}
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key.startswith("Cap"):
            caps[key] = int(val.strip(), 16)
    return caps


def test_default_capabilities(podman):
    caps = _caps(podman.run("--rm", IMAGE, "grep", "^Cap", "/proc/self/status").stdout)
    assert caps["CapEff"] == DEFAULT_CAPS
    assert caps["CapPrm"] == DEFAULT_CAPS
    assert caps["CapBnd"] == DEFAULT_CAPS
    assert caps["CapInh"] == 0
    assert caps["CapAmb"] == 0


def test_cap_drop(podman):
    caps = _caps(podman.run("--rm", "--cap-drop", "ALL", IMAGE,
                            "grep", "^Cap", "/proc/self/status").stdout)
    assert all(v == 0 for v in caps.values()), caps

    p = podman.run("--rm", "--cap-drop", "CHOWN", IMAGE, "sh", "-c",
                   "grep ^CapEff /proc/self/status; touch /tmp/f; chown 1000 /tmp/f",
                   check=False)
    assert _caps(p.stdout)["CapEff"] == DEFAULT_CAPS & ~CAP_CHOWN
    assert p.returncode == 1
    assert "Operation not permitted" in p.stderr


def test_cap_add(podman):
    p = podman.run("--rm", "--cap-add", "NET_ADMIN", IMAGE, "grep", "^CapEff",
                   "/proc/self/status")
    assert _caps(p.stdout)["CapEff"] == DEFAULT_CAPS | CAP_NET_ADMIN


def test_network_none(podman):
    p = podman.run("--rm", "--network", "none", IMAGE, "sh", "-c",
                   "ls /sys/class/net; readlink /proc/self/ns/net")
    lines = p.stdout.split()
    assert lines[:-1] == ["lo"]
    assert lines[-1] != os.readlink("/proc/self/ns/net")


def test_namespaces_are_private(podman):
    p = podman.run("--rm", IMAGE, "sh", "-c",
                   "for n in pid mnt uts ipc net; do readlink /proc/self/ns/$n; done; "
                   "echo $$")
    lines = p.stdout.split()
    for n, inside in zip(("pid", "mnt", "uts", "ipc", "net"), lines):
        assert inside != os.readlink("/proc/self/ns/" + n), n
    assert lines[-1] == "1"                     # the command is pid 1


def test_masked_and_readonly_paths(podman):
    p = podman.run("--rm", IMAGE, "sh", "-c",
                   "cat /proc/kcore | head -c 1 | wc -c; "
                   "echo 1 > /proc/sys/kernel/domainname; echo sysctl=$?", check=False)
    lines = p.stdout.split()
    assert lines[0] == "0"                      # /proc/kcore masked (bound to /dev/null)
    assert lines[1] == "sysctl=1"               # /proc/sys read-only


def test_update_resources(podman):
    name = "updatable"
    podman.run("-d", "--name", name, "--memory", "64m", "--cpu-shares", "1024", IMAGE,
               "sleep", "600")
    try:
        pid = _container_pid(podman, name)
        # podman update runs `<runtime> update --resources <file> ID`
        podman("update", "--memory", "128m", "--cpu-shares", "512", name)
        assert sc.read_cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(128 << 20)
        assert sc.read_cgroup_file(pid, "cpu", "cpu.shares") == "512"
        assert podman.inspect(name, "{{.State.Status}}") == "running"
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_exec_tty(podman):
    name = "exectty"
    podman.run("-d", "--name", name, IMAGE, "sleep", "600")
    try:
        out, rc = _run_in_pty(podman, ["exec", "-t", name, "sh", "-c", "tty; exit 6"])
        assert "/dev/pts/" in out, out
        assert rc == 6, out
        out, rc = _run_in_pty(podman, ["exec", "-it", name, "sh"],
                              send=b"test -t 0 && echo in-$((40+2))\nexit\n")
        assert "in-42" in out, out
        assert rc == 0, out
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_bind_and_tmpfs_mounts(podman):
    data = os.path.join(podman.base, "bind-data")
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "from-host"), "w") as f:
        f.write("host-content\n")
    p = podman.run("--rm", "-v", data + ":/data", "--tmpfs", "/scratch:size=1m", IMAGE,
                   "sh", "-c", "cat /data/from-host; echo written > /data/from-ctr; "
                   "awk '$2 == \"/scratch\" {print $1, $2, $3}' /proc/mounts")
    assert p.stdout.splitlines() == ["host-content", "tmpfs /scratch tmpfs"]
    with open(os.path.join(data, "from-ctr")) as f:
        assert f.read() == "written\n"
    p = podman.run("--rm", "-v", data + ":/data:ro", IMAGE, "sh", "-c",
                   "cat /data/from-host; echo x > /data/nope", check=False)
    assert p.stdout == "host-content\n"
    assert p.returncode != 0
    assert "Read-only file system" in p.stderr
    assert not os.path.exists(os.path.join(data, "nope"))


def test_seccomp(podman):
    p = podman.run("--rm", IMAGE, "grep", "^Seccomp:", "/proc/self/status")
    assert p.stdout.split() == ["Seccomp:", "2"]          # podman's default filter
    p = podman.run("--rm", "--security-opt", "seccomp=unconfined", IMAGE,
                   "grep", "^Seccomp:", "/proc/self/status")
    assert p.stdout.split() == ["Seccomp:", "0"]
    # a custom profile is enforced: mkdir fails with the chosen errno (EACCES)
    profile = os.path.join(podman.base, "seccomp-nomkdir.json")
    with open(profile, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                   "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                 "errnoRet": 13}]}, f)
    p = podman.run("--rm", "--security-opt", "seccomp=" + profile, IMAGE, "sh", "-c",
                   "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touch-ok", check=False)
    assert p.stdout.splitlines() == ["rc=1", "touch-ok"]
    assert "Permission denied" in p.stderr


def test_no_new_privileges(podman):
    p = podman.run("--rm", IMAGE, "grep", "^NoNewPrivs:", "/proc/self/status")
    assert p.stdout.split() == ["NoNewPrivs:", "0"]
    p = podman.run("--rm", "--security-opt", "no-new-privileges", IMAGE,
                   "grep", "^NoNewPrivs:", "/proc/self/status")
    assert p.stdout.split() == ["NoNewPrivs:", "1"]


def test_sysctl(podman):
    p = podman.run("--rm", "--sysctl", "kernel.msgmax=12345", "--sysctl",
                   "net.ipv4.ip_forward=1", IMAGE, "sh", "-c",
                   "cat /proc/sys/kernel/msgmax /proc/sys/net/ipv4/ip_forward")
    assert p.stdout.split() == ["12345", "1"]


def test_host_pid_namespace(podman):
    p = podman.run("--rm", "--pid", "host", IMAGE, "readlink", "/proc/self/ns/pid")
    assert p.stdout.strip() == os.readlink("/proc/self/ns/pid")


def test_bad_sysctl_fails_cleanly(podman):
    # podman passes this through; the runtime's write fails and create must
    # roll back (no container cgroup, no container left behind)
    name = "badsysctl"
    try:
        p = podman.run("--name", name, "--sysctl", "kernel.shmmax=notanumber", IMAGE, "true",
                       check=False)
        assert p.returncode == 126, p.stderr
        assert "kernel.shmmax" in p.stderr or "kernel/shmmax" in p.stderr
        assert "nvalid argument" in p.stderr
        cid = podman.inspect(name, "{{.Id}}")
        assert podman.inspect(name, "{{.State.Status}}") != "running"
        for d in sc.cgroup_dirs(podman.cgroup_parent):
            assert not os.path.exists(os.path.join(d, "libpod-" + cid)), d
    finally:
        podman("rm", "-f", name, check=False)
    p = podman.run("--rm", "--sysctl", "net.ipv4.no_such_key=1", IMAGE, "true", check=False)
    assert p.returncode == 127, p.stderr           # "no such file or directory"
    assert "no_such_key" in p.stderr
