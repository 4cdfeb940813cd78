"""Support code shared by the real-client tests (podman, containerd) and the bench.

Only test-owned state is touched: cgroups below an absolute parent whose name
starts with "silo-test-" or "silo-bench-", mounts below a test temp dir, and
processes whose command line names that temp dir.
"""

import ctypes
import os
import re
import resource
import secrets
import signal
import subprocess
import time

CGROUP_ROOT = "/sys/fs/cgroup"
OWNED_CGROUP_RE = re.compile(r"^/silo-(test|bench)-[A-Za-z0-9_.-]+$")
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def runtime_path():
    """The OCI runtime under test: $SILO_RUNTIME, else the default build output."""
    path = os.environ.get("SILO_RUNTIME")
    if not path:
        build = os.environ.get("SILO_BUILD_DIR", "/work/main/build")
        path = os.path.join(build, "src/runtime/silo-runtime")
    return os.path.abspath(path)


def runtime_problem(path):
    """None when PATH looks like a usable runtime binary, else why not."""
    if not os.path.isfile(path):
        return "runtime binary %s does not exist (set SILO_RUNTIME)" % path
    if not os.access(path, os.X_OK):
        return "runtime binary %s is not executable" % path
    return None


def owned_cgroup_parent(kind):
    """A fresh absolute cgroup path such as /silo-test-podman-1a2b3c4d."""
    name = "/silo-%s-%s" % (kind, secrets.token_hex(4))
    assert OWNED_CGROUP_RE.match(name), name
    return name


def cgroup_hierarchies():
    """Mount points of every cgroup (v1 and v2) hierarchy under /sys/fs/cgroup."""
    result = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype = fields[sep + 1]
            mnt = fields[4]
            if fstype in ("cgroup", "cgroup2") and (
                    mnt == CGROUP_ROOT or mnt.startswith(CGROUP_ROOT + "/")):
                result.append(mnt)
    return result


def cgroup_dirs(parent):
    """Existing directories for the owned cgroup PARENT, one per hierarchy."""
    assert OWNED_CGROUP_RE.match(parent), parent
    dirs = []
    for h in cgroup_hierarchies():
        d = h + parent
        if os.path.isdir(d):
            dirs.append(d)
    return dirs


def _cgroup_pids(d):
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def remove_cgroup_tree(parent, timeout=10.0):
    """Remove the owned cgroup PARENT (and children) from every hierarchy.

    Any process still inside belongs to the test (it was started in a cgroup
    the test created), so it is thawed and SIGKILLed by pid first.
    Returns a list of directories that could not be removed.
    """
    leftovers = []
    for top in cgroup_dirs(parent):
        subdirs = []
        for root, dirs, _files in os.walk(top):
            subdirs.append(root)
        for d in reversed(subdirs):     # children first
            deadline = time.monotonic() + timeout
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        leftovers.append(d)
                        break
                _thaw(d)
                for pid in _cgroup_pids(d):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
    return leftovers


def _thaw(d):
    for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        path = os.path.join(d, name)
        if os.path.exists(path):
            try:
                with open(path, "w") as f:
                    f.write(value)
            except OSError:
                pass


def mounts_under(path):
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == path or mnt.startswith(path + "/"):
                found.append(mnt)
    return found


def unmount_under(path):
    """Lazily unmount everything mounted at or below PATH (deepest first)."""
    for mnt in sorted(set(mounts_under(path)), key=len, reverse=True):
        if _libc.umount2(mnt.encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err not in (22, 2):      # EINVAL: already gone, ENOENT
                raise OSError(err, "umount2(%s)" % mnt)


def pids_mentioning(text):
    """Pids whose command line contains TEXT (used with a unique temp dir)."""
    pids = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if text.encode() in cmd:
            pids.append(int(entry))
    return pids


def kill_pids_mentioning(text, grace=5.0):
    """SIGTERM, then SIGKILL, the processes whose command line names TEXT."""
    pids = pids_mentioning(text)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def cmd_run(argv, timeout=60, check=True, input=None, env=None, **kw):
    """subprocess.run with text output, a timeout and a readable failure."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          input=input, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError("command failed (rc=%d): %s\n--- stdout\n%s--- stderr\n%s"
                             % (proc.returncode, " ".join(argv), proc.stdout, proc.stderr))
    return proc


def cgroup_path_of(pid, controller):
    """The v1 cgroup path of PID for CONTROLLER (e.g. "memory"), or the v2 path for ""."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return path
            if controller == "" and ctrls == "":
                return path
    raise LookupError("pid %d has no %r cgroup" % (pid, controller))


def read_cgroup_file(pid, controller, name):
    path = os.path.join(CGROUP_ROOT, controller,
                        cgroup_path_of(pid, controller).lstrip("/"), name)
    with open(path) as f:
        return f.read().strip()


def hard_rlimit(which):
    """Current hard limit of rlimit WHICH (resource.RLIMIT_*), as an int."""
    hard = resource.getrlimit(which)[1]
    return hard if hard != resource.RLIM_INFINITY else 1 << 20
