# SPDX-License-Identifier: Apache-2.0
"""Shared machinery for the runtime integration tests (fixtures live in conftest.py).

The tests are written against the runc command-line contract. SILO_RUNTIME selects the binary under
test (e.g. /usr/sbin/runc to validate the tests themselves); the default is the silo-runtime built in
$SILO_BUILD_DIR (default /work/main/build).
"""

import array
import copy
import errno
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

BUILD_DIR = os.environ.get("SILO_BUILD_DIR", "/work/main/build")
SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNTIME = os.environ.get("SILO_RUNTIME") or os.path.join(BUILD_DIR, "src/runtime/silo-runtime")
# "silo_only" tests are skipped only when SILO_RUNTIME names some other runtime.
IS_SILO = (not os.environ.get("SILO_RUNTIME")
           or "silo" in os.path.basename(os.path.realpath(RUNTIME)))
RUNTIME_NAME = os.path.basename(os.path.realpath(RUNTIME)) if os.path.exists(RUNTIME) else RUNTIME

CMD_TIMEOUT = float(os.environ.get("SILO_TEST_CMD_TIMEOUT", "30"))
HELPER = "/usr/bin/silo-test-helper"
HELPER_EXIT_LEAK = 97
CGROUP_ROOT = "/sys/fs/cgroup"

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Bit numbers from linux/capability.h, for decoding CapXxx masks.
CAP_BITS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}


def caps_from_mask(mask):
    """Set of capability names in a hex mask string from /proc/PID/status."""
    value = int(mask, 16)
    return {name for name, bit in CAP_BITS.items() if value & (1 << bit)}


def caps_to_mask(names):
    return sum(1 << CAP_BITS[n] for n in names)


def host_caps():
    """Capabilities this test process (and so the runtime) has in its bounding set."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return caps_from_mask(line.split()[1])
    return set()


def default_mounts():
    """The mounts `runc spec` generates."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def default_config(cgroups_path):
    """Equivalent of `runc spec`, made non-interactive: no terminal, runs the helper, writable root
    (tests flip root.readonly when they need it), no ambient set, and an absolute cgroupsPath under
    the test-owned cgroup parent."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [HELPER, "info"],
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "silo-test",
        "mounts": default_mounts(),
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }


def parse_json_output(text):
    """The whole text if it is JSON (pretty-printed or not), else the last line that parses as
    JSON (the helper prints exactly one line, possibly after other output)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")) or line == "null":
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON line in output: {text!r}")


class Result:
    def __init__(self, argv, returncode, stdout, stderr):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def json(self):
        return parse_json_output(self.stdout)

    @property
    def error_lines(self):
        return [l for l in self.stderr.splitlines() if l.strip()]

    def check(self, rc=0):
        if self.returncode != rc:
            raise AssertionError(f"{self.describe()}\nexpected exit code {rc}")
        self.check_no_fd_leak()
        return self

    def check_no_fd_leak(self):
        if "LEAKED-FD" in self.stderr or "LEAKED-FD" in self.stdout:
            raise AssertionError(f"fd leaked into the container:\n{self.describe()}")

    def describe(self):
        return (f"$ {' '.join(self.argv)}\nexit code: {self.returncode}\n"
                f"stdout: {self.stdout[-3000:]!r}\nstderr: {self.stderr[-3000:]!r}")

    def __repr__(self):
        return f"<Result rc={self.returncode} argv={self.argv}>"


def unique_id(prefix="sit"):
    return f"{prefix}-{secrets.token_hex(5)}"


class Bundle:
    """A bundle directory: rootfs copy + config.json (self.config, written by write())."""

    def __init__(self, path, cid, cgroups_path, rootfs_src):
        self.path = path
        self.cid = cid
        self.rootfs = os.path.join(path, "rootfs")
        os.makedirs(path, mode=0o755)
        # A real copy (not a bind mount, not hard links): tests may modify it freely.
        subprocess.run(["cp", "-a", rootfs_src, self.rootfs], check=True, timeout=60)
        self.config = default_config(cgroups_path)
        self.cgroups_path = cgroups_path
        self.raw = None
        self.write()

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]

    def args(self, *args):
        """Set process.args; a first argument not starting with '/' is a helper subcommand."""
        if args and not args[0].startswith("/"):
            args = (HELPER,) + args
        self.process["args"] = list(args)
        return self

    def namespaces(self):
        return [n["type"] for n in self.linux.get("namespaces", [])]

    def set_namespace(self, ns_type, path=None):
        nss = [n for n in self.linux.setdefault("namespaces", []) if n["type"] != ns_type]
        entry = {"type": ns_type}
        if path:
            entry["path"] = path
        nss.append(entry)
        self.linux["namespaces"] = nss
        return self

    def drop_namespace(self, ns_type):
        self.linux["namespaces"] = [n for n in self.linux.get("namespaces", [])
                                    if n["type"] != ns_type]
        return self

    def add_mount(self, destination, type_=None, source=None, options=None):
        m = {"destination": destination}
        if type_:
            m["type"] = type_
        if source is not None:
            m["source"] = source
        if options is not None:
            m["options"] = list(options)
        self.config["mounts"].append(m)
        return self

    def root_path(self, path):
        """Host path of a path inside the container rootfs."""
        return os.path.join(self.rootfs, path.lstrip("/"))

    def write(self, raw=None):
        """Write config.json; raw text (for bad-input tests) sticks until write() is called again
        without it. Runtime.run/create call this, so tests just edit self.config."""
        if raw is not None:
            self.raw = raw
        with open(os.path.join(self.path, "config.json"), "w") as f:
            if self.raw is not None:
                f.write(self.raw)
            else:
                json.dump(self.config, f, indent=1)
        return self

    def set_raw(self, raw):
        self.raw = raw
        return self.write()

    def file(self, name):
        return os.path.join(self.path, name)


class Runtime:
    """Runs the runtime under test with a private --root; remembers container IDs for cleanup."""

    def __init__(self, binary, root, log=None):
        self.binary = binary
        self.root = root
        self.ids = set()
        self.bundles = []
        self.log = log if log is not None else []
        self.fd_leaks = []  # LEAKED-FD reports of the helper seen in any output
        self._n = 0

    # ---- generic invocation ----

    def cmd(self, *args, global_args=(), input=None, stdin=None, timeout=None, pass_fds=(),
            env=None, stdout=None, stderr=None, root=True):
        argv = [self.binary]
        if root:
            argv += ["--root", self.root]
        argv += list(global_args) + [str(a) for a in args]
        kwargs = {}
        if input is not None:
            kwargs["input"] = input
        else:
            kwargs["stdin"] = stdin if stdin is not None else subprocess.DEVNULL
        to_files = stdout is not None
        out = stdout if to_files else subprocess.PIPE
        err = stderr if stderr is not None else (stdout if to_files else subprocess.PIPE)
        start = time.monotonic()
        try:
            p = subprocess.run(argv, stdout=out, stderr=err, timeout=timeout or CMD_TIMEOUT,
                               pass_fds=pass_fds, env=env, text=True, encoding="utf-8",
                               errors="replace",
                               **kwargs)
        except subprocess.TimeoutExpired as e:
            self.log.append(f"$ {' '.join(argv)}  -> TIMEOUT after {e.timeout}s")
            raise AssertionError(f"command timed out after {e.timeout}s: {' '.join(argv)}")
        res = Result(argv, p.returncode, p.stdout or "", p.stderr or "")
        line = (f"$ {' '.join(argv)}  -> rc={p.returncode} ({time.monotonic() - start:.2f}s)"
                + (f"\n  stdout: {res.stdout[-2000:]!r}" if res.stdout else "")
                + (f"\n  stderr: {res.stderr[-2000:]!r}" if res.stderr else ""))
        self.log.append(line)
        if not to_files:
            print(line)
            self._note_fd_leaks(res.stdout + res.stderr)
        return res

    def _note_fd_leaks(self, text):
        for l in text.splitlines():
            if "LEAKED-FD" in l:
                self.fd_leaks.append(l.strip())

    def popen(self, *args, global_args=(), **kw):
        """Start the runtime without waiting (caller must wait with a timeout)."""
        argv = [self.binary, "--root", self.root] + list(global_args) + [str(a) for a in args]
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        self.log.append(f"$ {' '.join(argv)} &")
        print(self.log[-1])
        return subprocess.Popen(argv, text=True, encoding="utf-8", errors="replace", **kw)

    def _outfiles(self, bundle, what):
        self._n += 1
        base = bundle.file(f"{what}-{self._n}")
        return base + ".out", base + ".err"

    def _detached(self, args, bundle, **kw):
        """Run a command whose children keep stdio open: send stdio to files, not pipes."""
        out_path, err_path = self._outfiles(bundle, args[0])
        with open(out_path, "w") as out, open(err_path, "w") as err:
            res = self.cmd(*args, stdout=out, stderr=err, **kw)
        res.stdout_path, res.stderr_path = out_path, err_path
        with open(out_path, encoding="utf-8", errors="replace") as f:
            res.stdout = f.read()
        with open(err_path, encoding="utf-8", errors="replace") as f:
            res.stderr = f.read()
        self.log[-1] += (f"\n  stdout: {res.stdout[-2000:]!r}\n  stderr: {res.stderr[-2000:]!r}")
        print(self.log[-1])
        return res

    # ---- lifecycle commands ----

    def run(self, bundle, *extra, cid=None, detach=False, **kw):
        bundle.write()
        cid = bundle.cid if cid is None else cid
        self.ids.add(cid)
        args = ["run", "--bundle", bundle.path] + list(extra)
        if detach:
            args.insert(1, "--detach")
            return self._detached(args + [cid], bundle, **kw)
        return self.cmd(*args, cid, **kw)

    def create(self, bundle, *extra, cid=None, **kw):
        bundle.write()
        cid = bundle.cid if cid is None else cid
        self.ids.add(cid)
        return self._detached(["create", "--bundle", bundle.path] + list(extra) + [cid], bundle,
                              **kw)

    def start(self, cid, **kw):
        return self.cmd("start", cid, **kw)

    def state(self, cid, **kw):
        res = self.cmd("state", cid, **kw)
        res.check()
        return json.loads(res.stdout)

    def try_state(self, cid):
        res = self.cmd("state", cid)
        if res.returncode != 0:
            return None
        try:
            return json.loads(res.stdout)
        except ValueError:
            return None

    def kill(self, cid, sig=None, *extra, **kw):
        args = ["kill"] + list(extra) + [cid]
        if sig is not None:
            args.append(str(sig))
        return self.cmd(*args, **kw)

    def delete(self, cid, force=False, **kw):
        return self.cmd("delete", *(["--force"] if force else []), cid, **kw)

    def exec(self, cid, *args, opts=(), detach=False, bundle=None, **kw):
        if args and not args[0].startswith("/") and not args[0].startswith("-"):
            args = (HELPER,) + args
        argv = ["exec"] + list(opts) + [cid] + list(args)
        if detach:
            argv.insert(1, "--detach")
            return self._detached(argv, bundle, **kw)
        return self.cmd(*argv, **kw)

    # ---- convenience ----

    def start_container(self, bundle, cid=None):
        """create + start; returns the state after start."""
        cid = cid or bundle.cid
        self.create(bundle, cid=cid).check()
        self.start(cid).check()
        return self.state(cid)

    def wait_status(self, cid, status, timeout=10):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.try_state(cid)
            if st and st.get("status") == status:
                return st
            time.sleep(0.05)
        raise AssertionError(f"container {cid} did not reach status {status!r}; last state {st}")

    def run_helper(self, bundle, *args, rc=0):
        """Run the helper in a fresh container in the foreground and return its JSON output."""
        bundle.args(*args)
        res = self.run(bundle)
        res.check(rc)
        return res.json


# ---- host-side inspection ----

def read_mountinfo(path="/proc/self/mountinfo"):
    mounts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            mounts[int(parts[0])] = {
                "id": int(parts[0]),
                "root": parts[3].encode().decode("unicode_escape"),
                "mount_point": parts[4].encode().decode("unicode_escape"),
                "options": parts[5],
                "optional": parts[6:sep],
                "fstype": parts[sep + 1],
                "source": parts[sep + 2],
                "line": line.strip(),
            }
    return mounts


def cgroup_hierarchies():
    """Mounted cgroup hierarchies: {name: path} (v1 controllers, named ones, and unified)."""
    result = {}
    for m in read_mountinfo().values():
        if m["fstype"] in ("cgroup", "cgroup2") and m["mount_point"].startswith(CGROUP_ROOT + "/"):
            result[os.path.basename(m["mount_point"])] = m["mount_point"]
    return result


def cgroup_dir(controller, cgroups_path):
    return os.path.join(CGROUP_ROOT, controller, cgroups_path.lstrip("/"))


def read_cgroup_file(controller, cgroups_path, name):
    with open(os.path.join(cgroup_dir(controller, cgroups_path), name)) as f:
        return f.read().strip()


def cgroup_subdirs(path):
    """All descendant directories of a cgroup directory, deepest first."""
    found = []
    for dirpath, dirnames, _ in os.walk(path, topdown=False):
        for d in dirnames:
            found.append(os.path.join(dirpath, d))
    return found


def remove_cgroup_tree(path):
    """Remove a test-owned cgroup subtree, killing anything left in it."""
    if not os.path.isdir(path):
        return
    for d in cgroup_subdirs(path) + [path]:
        for attempt in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                kill_cgroup_procs(d)
                thaw_cgroup(d)
                time.sleep(0.05)


def thaw_cgroup(d):
    for name in ("freezer.state",):
        p = os.path.join(d, name)
        if os.path.exists(p):
            try:
                with open(p, "w") as f:
                    f.write("THAWED")
            except OSError:
                pass


def kill_cgroup_procs(d):
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            pids = [int(x) for x in f.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def file_identity(path):
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return None


def processes_touching(paths, cgroup_marker):
    """PIDs whose root or cwd is one of the given directories, whose command line mentions one of
    them, or which sit in a cgroup whose path contains cgroup_marker."""
    idents = {file_identity(p) for p in paths} - {None}
    me = os.getpid()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        why = None
        try:
            for link in ("root", "cwd"):
                if file_identity(f"/proc/{pid}/{link}") in idents:
                    why = f"{link} is a test bundle directory"
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            if not why and any(p in cmdline for p in paths):
                why = "command line mentions a test path"
            if not why and cgroup_marker:
                with open(f"/proc/{pid}/cgroup") as f:
                    if cgroup_marker in f.read():
                        why = "in the test cgroup"
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if why and state != "Z":
                found[pid] = f"pid {pid} ({cmdline.strip()[:120]}): {why}"
        except OSError:
            continue
    return found


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wait_for(predicate, timeout=10, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---- console socket (process.terminal with --console-socket) ----

class ConsoleSocket:
    """A unix socket server that receives the pty master over SCM_RIGHTS, as containerd's shim and
    podman's conmon do, and then collects everything the container writes to its terminal."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(CMD_TIMEOUT)
        self.master = None
        self.received_name = None
        self.error = None
        self.output = bytearray()
        self._lock = threading.Lock()
        self._got_fd = threading.Event()
        self._stop = threading.Event()
        self._reader = None
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                fds = array.array("i")
                msg, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
                for level, type_, data in ancdata:
                    if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
                        fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
                self.received_name = msg.decode(errors="replace")
                if len(fds) != 1:
                    for fd in fds:
                        os.close(fd)
                    raise RuntimeError(f"expected exactly one fd over SCM_RIGHTS, got {len(fds)}")
                self.master = fds[0]
                os.set_inheritable(self.master, False)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        except Exception as e:  # reported by wait_fd()
            self.error = e
        finally:
            self._got_fd.set()

    def _read(self):
        fd = self.master
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            with self._lock:
                self.output += data

    def wait_fd(self, timeout=CMD_TIMEOUT):
        if not self._got_fd.wait(timeout):
            raise AssertionError("the runtime never sent the pty master to the console socket")
        if self.error:
            raise AssertionError(f"console socket: {self.error}")
        return self.master

    def text(self):
        with self._lock:
            return self.output.decode(errors="replace")

    def wait_output(self, pattern, timeout=CMD_TIMEOUT):
        regex = re.compile(pattern)
        return wait_for(lambda: regex.search(self.text()), timeout=timeout,
                        what=f"terminal output matching {pattern!r} (got {self.text()!r})")

    def write(self, data):
        os.write(self.wait_fd(), data.encode() if isinstance(data, str) else data)

    def json(self, timeout=CMD_TIMEOUT):
        self.wait_output(r"[}\]]\s*$", timeout=timeout)
        return parse_json_output(self.text().replace("\r", ""))

    def close(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        if self._reader:
            self._reader.join(timeout=2)
        if self.master is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = None


def deep_copy(obj):
    return copy.deepcopy(obj)


def rmtree_quiet(path):
    shutil.rmtree(path, ignore_errors=True)
