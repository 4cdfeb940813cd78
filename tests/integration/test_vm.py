# SPDX-License-Identifier: Apache-2.0
"""VM isolation (docs/VM.md): a bundle annotated io.silo.isolation=vm runs in a QEMU microvm utility
VM (TCG here) with the silo-guest agent, through the whole runtime lifecycle (create, start, state,
exec, kill, delete, run) and a host-side shim per VM.

Real VMs boot in about 2-3 s on TCG, so each test boots at most one. The hostile-guest tests
replace QEMU (SILO_VM_QEMU) with a fake that speaks garbage on the control channel; the host side
must fail cleanly and quickly, never crash or hang, and leave no process or temp file behind.
"""

import fcntl
import glob
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time

import pytest

import silo_harness as h

INITRD = os.path.join(h.BUILD_DIR, "src/guest/initramfs.img")
MKROOTFS = os.path.join(h.SOURCE_DIR, "tests/lib/mkrootfs.sh")
BOOT_LIMIT = 60          # seconds for a whole VM run on TCG, generous for a loaded CI host


def guest_kernel():
    built = os.path.join(h.BUILD_DIR, "src/guest/vmlinux")
    if os.path.exists(built):
        return built
    found = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    return found[-1] if found else "/vmlinuz"


@pytest.fixture(scope="module")
def vm_rootfs():
    d = tempfile.mkdtemp(prefix="silo-vm-it-")
    rootfs = os.path.join(d, "rootfs")
    subprocess.run([MKROOTFS, rootfs], check=True, timeout=120,
                   env=dict(os.environ, SILO_BUILD_DIR=h.BUILD_DIR), stdout=subprocess.DEVNULL)
    yield rootfs
    subprocess.run(["rm", "-rf", d], check=False)


@pytest.fixture
def vm(vm_rootfs, tmp_path, cgroup_parent):
    """A VM bundle plus an environment whose TMPDIR is private, so leftovers are visible."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    state = tmp_path / "state"
    env = dict(os.environ, TMPDIR=str(tmpdir), SILO_VM_KERNEL=guest_kernel(), SILO_VM_INITRD=INITRD,
               SILO_VM_ACCEL=os.environ.get("SILO_VM_ACCEL", "auto"))
    cfg = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/",
                    "args": ["/bin/true"], "env": [h.DEFAULT_PATH]},
        "root": {"path": vm_rootfs, "readonly": False},
        "hostname": "vmguest",
        "annotations": {"io.silo.isolation": "vm"},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "cgroup"}],
                  "maskedPaths": ["/proc/kcore", "/proc/acpi"],
                  "cgroupsPath": f"/{cgroup_parent}/{h.unique_id('vm')}"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                    "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}],
    }

    class VM:
        path = bundle

        def __init__(self):
            self.config = cfg
            self.env = env
            self.tmpdir = tmpdir

        def write(self, args):
            self.config["process"]["args"] = list(args)
            (bundle / "config.json").write_text(json.dumps(self.config))

        def argv(self, cid="vmt"):
            return [h.RUNTIME, "--root", str(state), "run", "--bundle", str(bundle), cid]

        def rt(self, *args, timeout=BOOT_LIMIT, **kw):
            # create/run --detach: the shim inherits stdout/stderr, so they must not be pipes we
            # wait on (as with any runtime's container init).
            if args and (args[0] == "create" or "--detach" in args):
                kw.setdefault("stdout", subprocess.DEVNULL)
                kw.setdefault("stderr", subprocess.DEVNULL)
                kw.setdefault("stdin", subprocess.DEVNULL)
            else:
                kw.setdefault("capture_output", True)
            return subprocess.run([h.RUNTIME, "--root", str(state)] + list(args), env=env, text=True,
                                  timeout=timeout, **kw)

        def state(self, cid="vmt"):
            r = self.rt("state", cid)
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout)

        def cgroup_dirs(self):
            cg = self.config["linux"]["cgroupsPath"].lstrip("/")
            return [d for d in glob.glob(f"/sys/fs/cgroup/*/{cg}") + glob.glob(f"/sys/fs/cgroup/{cg}")
                    if os.path.isdir(d)]

        def run(self, *args, timeout=BOOT_LIMIT, extra_env=None):
            self.write(args)
            return subprocess.run(self.argv(), env=dict(env, **(extra_env or {})), capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)

        def popen(self, *args, extra_env=None):
            self.write(args)
            return subprocess.Popen(self.argv(), env=dict(env, **(extra_env or {})), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    v = VM()
    yield v
    # Nothing may outlive a container: no image or directory in TMPDIR, no state, no cgroup.
    leftovers = [c for c in (os.listdir(state) if state.exists() else [])]
    for c in leftovers:
        v.rt("delete", "--force", c)
    assert leftovers == [], f"containers left: {leftovers}"
    assert os.listdir(tmpdir) == [], f"left in TMPDIR: {os.listdir(tmpdir)}"
    assert v.cgroup_dirs() == [], "cgroup left behind"


def children_of(pid):
    """Every descendant (the shim, then QEMU under it)."""
    kids = direct_children(pid)
    for k in list(kids):
        kids += children_of(k)
    return kids


def qemus_under(pid):
    return [p for p in children_of(pid) if "qemu" in comm(p) or "fake" in comm(p)]


def comm(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def direct_children(pid):
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.split("/")[2]))
    return kids


def wait_gone(pids, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and not is_zombie(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def no_sanitizer_report(stderr):
    assert "AddressSanitizer" not in stderr and "runtime error:" not in stderr and "LeakSanitizer" not in stderr, stderr


# ---- real VMs (TCG here) ----

def test_vm_output_and_exit_code(vm):
    r = vm.run("/bin/sh", "-c", "echo out-line; echo err-line >&2; exit 7")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out-line\n"
    assert "err-line" in r.stderr


def test_vm_is_a_different_kernel(vm):
    # The container's memory limit sizes the VM (plus a fixed overhead for the guest itself).
    # A CPU quota of 1.5 CPUs becomes 2 vCPUs (this host has 2).
    vm.config["linux"]["resources"] = {"memory": {"limit": 64 << 20},
                                       "cpu": {"quota": 150000, "period": 100000}}
    # And inside the VM the same limit is a cgroup v2 limit, and seccomp filters apply.
    vm.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    vm.config["mounts"] += [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "ro"]}]
    r = vm.run("/bin/sh", "-c", "uname -r; hostname; grep -m1 'model name' /proc/cpuinfo; "
               "touch /written && echo writable; cat /proc/1/comm; grep MemTotal /proc/meminfo; "
               "grep CapEff /proc/self/status; cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; "
               "mkdir /newdir 2>/dev/null || echo mkdir-denied; grep -c ^processor /proc/cpuinfo")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    mem_total_kib = int(lines[5].split()[1])
    assert 64 << 10 < mem_total_kib <= 128 << 10, lines[5]
    assert lines[0] != os.uname().release, "the guest runs the host's kernel"
    assert lines[0].endswith("-cloud-amd64")
    assert lines[1] == "vmguest"
    assert "QEMU" in lines[2] or os.environ.get("SILO_VM_ACCEL") == "kvm", lines[2]
    # The rootfs image is read-only; the container still gets a writable overlay.
    assert lines[3] == "writable"
    # libsilo's process backend runs inside the VM: a pid namespace of its own there (PID 1 is
    # the container's process, not the agent), no capabilities (the config grants none), and
    # a cgroup namespace rooted at the container's cgroup v2 in the guest.
    assert lines[4] == "sh"
    assert lines[6] == "CapEff:\t0000000000000000", lines[6]
    assert lines[7] == "0::/", lines[7]
    assert lines[8] == str(64 << 20), lines[8]
    assert lines[9] == "mkdir-denied", lines[9]
    assert int(lines[10]) == min(2, os.cpu_count()), lines[10]


def test_vm_signal_is_forwarded_and_no_qemu_left(vm):
    p = vm.popen("/bin/sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; "
                 "while :; do sleep 0.2; done")
    try:
        line = p.stdout.readline()
        assert line == "ready\n", p.stderr.read() if not line else line
        qemus = children_of(p.pid)
        assert qemus, "no QEMU child found"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 42, err
    assert out == "got-term\n"
    assert wait_gone(qemus) == []


def test_vm_sigkilled_runtime_takes_qemu_along(vm):
    p = vm.popen("/bin/sh", "-c", "echo ready; exec sleep 1000")
    try:
        assert p.stdout.readline() == "ready\n"
        qemus = children_of(p.pid)
        assert qemus
        p.kill()
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # PR_SET_PDEATHSIG: the shim of a foreground run dies with it, QEMU with the shim; the image
    # was unlinked before boot. What is left is the state (as for a killed runc run): delete it.
    assert wait_gone(qemus) == []
    r = vm.rt("delete", "--force", "vmt")
    assert r.returncode == 0, r.stderr


def test_vm_crash_is_reported(vm):
    p = vm.popen("/bin/sh", "-c", "echo ready; exec sleep 1000")
    try:
        assert p.stdout.readline() == "ready\n"
        qemus = qemus_under(p.pid)
        assert qemus
        for q in qemus:
            os.kill(q, signal.SIGKILL)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    no_sanitizer_report(err)
    # The shim reports a VM that died as the container's exit: 255 and why.
    assert p.returncode == 255, err
    assert "the VM stopped before the container's process exited" in err, err


def test_vm_exec_failure_is_reported(vm):
    r = vm.run("/no/such/program")
    assert r.returncode != 0
    assert "/no/such/program" in r.stderr and "No such file" in r.stderr, r.stderr


def test_vm_bad_accelerator_is_refused(vm):
    r = vm.run("/bin/true", extra_env={"SILO_VM_ACCEL": "xen"}, timeout=10)
    assert r.returncode != 0
    assert "xen" in r.stderr and "kvm" in r.stderr


# ---- the lifecycle through the shim: create, start, state, exec, kill, delete ----

def shim_and_qemu(vm, cid="vmt"):
    pid = vm.state(cid)["pid"]
    return [pid] + children_of(pid)


def test_vm_lifecycle_exec_kill_delete(vm, tmp_path):
    vm.write(["/bin/sh", "-c", "echo hello; trap 'echo got-term; exit 42' TERM; while :; do sleep 0.1; done"])
    out = open(tmp_path / "out", "w+")
    t0 = time.monotonic()
    r = vm.rt("create", "--bundle", str(vm.path), "--pid-file", str(tmp_path / "pid"), "vmt",
              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, open(tmp_path / "out").read()
    st = vm.state()
    # The container's pid is its shim's, which owns QEMU (and is what --pid-file names).
    assert st["status"] == "created" and st["pid"] > 0
    assert int((tmp_path / "pid").read_text()) == st["pid"]
    procs = shim_and_qemu(vm)
    assert any("qemu" in comm(p) for p in procs), procs
    assert time.monotonic() - t0 < BOOT_LIMIT
    assert open(tmp_path / "out").read() == "", "the process ran before start"
    assert vm.rt("start", "vmt").returncode == 0
    assert vm.state()["status"] == "running"
    assert vm.rt("start", "vmt").returncode != 0          # only once

    # exec: output, stderr, stdin to EOF, exit code; inside the container's namespaces.
    r = vm.rt("exec", "vmt", "/bin/sh", "-c", "echo exec-out; echo exec-err >&2; cat; exit 3",
              input="from-stdin\n")
    assert (r.returncode, r.stdout, r.stderr) == (3, "exec-out\nfrom-stdin\n", "exec-err\n"), r
    r = vm.rt("exec", "vmt", "/bin/sh", "-c", "cat /proc/1/cmdline; echo; hostname; uname -r")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("/bin/sh") and "got-term" in lines[0], lines   # pid 1 is the init
    assert lines[1] == "vmguest" and lines[2] != os.uname().release
    r = vm.rt("exec", "vmt", "/no/such/program")
    assert r.returncode != 0 and "/no/such/program" in r.stderr, r
    # A signal reaches the exec'd process, and the container's init keeps running.
    p = subprocess.Popen([h.RUNTIME, "--root", str(vm.path.parent / "state"), "exec", "vmt", "/bin/sh", "-c",
                          "trap 'echo exec-term; exit 9' TERM; echo up; while :; do sleep 0.1; done"],
                         env=vm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 9
        assert p.stdout.read() == "exec-term\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert vm.state()["status"] == "running"

    # stats: the host cgroup holds the shim and QEMU; the container's figures come from the guest.
    def stats():
        r = vm.rt("events", "--stats", "vmt")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["data"]

    # The shell and its sleep: the loop's sleep comes and goes, so a sample
    # taken between two sleeps sees the shell alone; look until both are there.
    def stats_with_both():
        d = stats()
        return d if d["pids"]["current"] >= 2 else None

    data = h.wait_for(stats_with_both, timeout=10, what="the shell and its sleep in the pids count")
    guest = data["vm"]["guest"]
    assert 0 < guest["MemAvailableKiB"] < guest["MemTotalKiB"] < 512 << 10
    assert data["pids"]["current"] >= 2
    assert 0 < data["memory"]["usage"]["usage"] < data["vm"]["hostMemoryBytes"]

    # kill forwards the signal through the channel: the trap runs, the VM stops.
    assert vm.rt("kill", "vmt", "TERM").returncode == 0
    h.wait_for(lambda: vm.state()["status"] == "stopped", timeout=20, what="stopped")
    assert wait_gone(procs) == [], "shim or QEMU left after the container stopped"
    out.seek(0)
    assert out.read() == "hello\ngot-term\n"
    assert vm.rt("delete", "vmt").returncode == 0
    assert vm.rt("state", "vmt").returncode != 0
    assert vm.cgroup_dirs() == []


def test_vm_kill9_of_the_shim_leaves_nothing(vm):
    vm.write(["/bin/sleep", "1000"])
    assert vm.rt("create", "--bundle", str(vm.path), "vmt", stdin=subprocess.DEVNULL).returncode == 0
    assert vm.rt("start", "vmt").returncode == 0
    procs = shim_and_qemu(vm)
    assert len(procs) >= 2
    os.kill(procs[0], signal.SIGKILL)
    # QEMU dies with its shim (PR_SET_PDEATHSIG); the rootfs image was never on disk past boot.
    assert wait_gone(procs) == []
    assert vm.state()["status"] == "stopped"
    # kill -9 through the runtime of a stopped VM is refused; delete removes state and cgroup.
    assert vm.rt("kill", "vmt", "KILL").returncode != 0
    assert vm.rt("delete", "vmt").returncode == 0
    assert vm.cgroup_dirs() == []


def test_vm_delete_force_of_a_running_vm(vm):
    vm.write(["/bin/sleep", "1000"])
    assert vm.rt("create", "--bundle", str(vm.path), "vmt", stdin=subprocess.DEVNULL).returncode == 0
    procs = shim_and_qemu(vm)
    assert vm.rt("start", "vmt").returncode == 0
    r = vm.rt("delete", "vmt")
    assert r.returncode != 0 and "not stopped" in r.stderr, r
    r = vm.rt("delete", "--force", "vmt")
    assert r.returncode == 0, r.stderr
    assert wait_gone(procs, 1) == []      # delete waited for the VM to be gone
    assert vm.cgroup_dirs() == []


def test_vm_kill_before_start(vm):
    vm.write(["/bin/sleep", "1000"])
    assert vm.rt("create", "--bundle", str(vm.path), "vmt").returncode == 0
    procs = shim_and_qemu(vm)
    # A created container killed before start ends (the guest deletes it, the VM powers off).
    assert vm.rt("kill", "vmt", "TERM").returncode == 0
    h.wait_for(lambda: vm.state()["status"] == "stopped", timeout=20, what="stopped")
    assert wait_gone(procs) == []
    r = vm.rt("start", "vmt")
    assert r.returncode != 0 and "stopped" in r.stderr, r
    assert vm.rt("delete", "vmt").returncode == 0


def test_vm_terminal_through_console_socket(vm, tmp_path):
    # process.terminal: the host pty's master goes to the console socket; the shim bridges the
    # slave to the guest's pty; size changes on the master reach the guest.
    vm.config["process"]["terminal"] = True
    vm.config["process"]["consoleSize"] = {"height": 30, "width": 100}
    vm.write(["/bin/sh", "-c", "tty; stty size; read line; stty size; echo got:$line; exit 5"])
    sock = h.ConsoleSocket(str(tmp_path / "console.sock"))
    p = subprocess.Popen(vm.argv() [:-1] + ["--console-socket", sock.path, "vmt"], env=vm.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        master = sock.wait_fd(timeout=BOOT_LIMIT)
        sock.wait_output(r"30 100", timeout=BOOT_LIMIT)
        assert "/dev/pts/" in sock.text()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        time.sleep(0.6)          # the shim looks at the size four times a second
        sock.write("hello tty\n")
        sock.wait_output(r"got:hello tty", timeout=20)
        assert p.wait(timeout=20) == 5, p.stderr.read()
    finally:
        sock.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    text = sock.text()
    assert "hello tty" in text.split("got:")[0], text         # the guest's pty echoed the input
    assert "50 160" in text, text


def test_vm_exec_tty(vm, tmp_path):
    vm.write(["/bin/sleep", "1000"])
    assert vm.rt("run", "--detach", "--bundle", str(vm.path), "vmt", stdin=subprocess.DEVNULL).returncode == 0
    sock = h.ConsoleSocket(str(tmp_path / "exec.sock"))
    try:
        r = vm.rt("exec", "--tty", "--console-socket", sock.path, "vmt", "/bin/sh", "-c",
                  "tty; test -t 0 && echo stdin-is-tty; exit 4")
        assert r.returncode == 4, r.stderr
        sock.wait_output(r"stdin-is-tty")
        assert "/dev/pts/" in sock.text()
    finally:
        sock.close()
    assert vm.rt("delete", "--force", "vmt").returncode == 0


def test_vm_memory_limit_is_enforced_in_the_guest(vm):
    # 32 MiB for the container: the VM gets 32 + 64 MiB; the guest's cgroup v2 memory.max kills
    # the awk that wants 200 MB (while 1 MB is fine), and the VM itself survives to report it.
    vm.config["linux"]["resources"] = {"memory": {"limit": 32 << 20}}
    vm.config["mounts"] += [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "ro"]}]
    awk = 'awk "BEGIN { s = sprintf(\\"%%%ds\\", \\"\\"); print length(s) }"'
    r = vm.run("/bin/sh", "-c", f"{awk % 1000000}; {awk % 200000000}; echo inner-exit:$?; "
               "cat /sys/fs/cgroup/memory.max; grep oom_kill /sys/fs/cgroup/memory.events")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["1000000", "inner-exit:137", str(32 << 20)], r.stdout
    assert int(lines[3].split()[1]) >= 1, lines


def sha256(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_vm_mapped_directories(vm, tmp_path):
    # Read-only binds are erofs snapshots; read-write binds are live shares (FUSE in the guest,
    # served by the shim): each change shows on the other side while the container runs.
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "data").write_text("read-only data\n")
    rw = tmp_path / "rw"
    rw.mkdir()
    (rw / "existing").write_text("old\n")
    (rw / "sub").mkdir()
    f = tmp_path / "single.conf"
    f.write_text("a file\n")
    rwfile = tmp_path / "rw.conf"
    rwfile.write_text("line1\n")
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    os.symlink(str(secret), rw / "hostlink")
    big = os.urandom(20 << 20)
    (rw / "big.bin").write_bytes(big)
    vm.config["mounts"] += [
        {"destination": "/mnt/ro", "type": "bind", "source": str(ro), "options": ["rbind", "ro"]},
        {"destination": "/mnt/rw", "type": "bind", "source": str(rw), "options": ["rbind", "rw"]},
        {"destination": "/etc/single.conf", "type": "bind", "source": str(f), "options": ["bind", "ro"]},
        {"destination": "/etc/rw.conf", "type": "bind", "source": str(rwfile), "options": ["bind", "rw"]},
    ]
    caps = ["CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"]
    vm.config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    vm.write(["/bin/sleep", "1000"])
    assert vm.rt("run", "--detach", "--bundle", str(vm.path), "vmt").returncode == 0
    procs = shim_and_qemu(vm)

    def sh(script, user=None):
        r = vm.rt("exec", *(["--user", user] if user else []), "vmt", "/bin/sh", "-c", script)
        assert r.returncode == 0, (script, r.stdout, r.stderr)
        return r.stdout

    try:
        out = sh("cat /mnt/ro/data /etc/single.conf; touch /mnt/ro/x 2>/dev/null || echo ro-denied; "
                 "cat /mnt/rw/existing /etc/rw.conf")
        assert out.splitlines() == ["read-only data", "a file", "ro-denied", "old", "line1"], out
        # guest -> host, each change at once: create, overwrite, nested directories, rename, delete.
        sh("echo new > /mnt/rw/created; echo changed > /mnt/rw/existing; mkdir -p /mnt/rw/d1/d2; "
           "echo deep > /mnt/rw/d1/d2/f; echo line2 >> /etc/rw.conf")
        assert (rw / "created").read_text() == "new\n"
        assert (rw / "existing").read_text() == "changed\n"
        assert (rw / "d1" / "d2" / "f").read_text() == "deep\n"
        assert rwfile.read_text() == "line1\nline2\n"
        sh("mv /mnt/rw/created /mnt/rw/renamed; mv /mnt/rw/d1 /mnt/rw/sub/moved")
        assert not (rw / "created").exists() and (rw / "renamed").read_text() == "new\n"
        assert (rw / "sub" / "moved" / "d2" / "f").read_text() == "deep\n"
        sh("rm /mnt/rw/renamed; rm -r /mnt/rw/sub/moved")
        assert sorted(os.listdir(rw)) == ["big.bin", "existing", "hostlink", "sub"]
        assert os.listdir(rw / "sub") == []
        # host -> guest: a new file, and new contents of a file the guest read before.
        (rw / "fromhost").write_text("hello from the host\n")
        (rw / "existing").write_text("host rewrote it\n")
        assert sh("cat /mnt/rw/fromhost /mnt/rw/existing; ls /mnt/rw") == (
            "hello from the host\nhost rewrote it\nbig.bin\nexisting\nfromhost\nhostlink\nsub\n")
        # Ownership and modes: root's chown/chmod reach the host; a file made by user 1000 is
        # 1000's on the host; the guest's kernel enforces the modes for that user.
        sh("chown 1234:5678 /mnt/rw/existing; chmod 640 /mnt/rw/existing; mkdir /mnt/rw/home; "
           "chown 1000:1000 /mnt/rw/home")
        st = os.stat(rw / "existing")
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o640)
        out = sh("echo mine > /mnt/rw/home/f; cat /mnt/rw/existing 2>/dev/null || echo denied", user="1000:1000")
        assert out == "denied\n", out
        st = os.stat(rw / "home" / "f")
        assert (st.st_uid, st.st_gid) == (1000, 1000)
        # Symlinks: made in the guest, a symlink on the host (not followed there); one made on
        # the host resolves inside the guest, never to the host's file.
        sh("ln -s /etc/passwd /mnt/rw/link; ln /mnt/rw/fromhost /mnt/rw/hard")
        assert os.readlink(rw / "link") == "/etc/passwd"
        assert os.stat(rw / "hard").st_ino == os.stat(rw / "fromhost").st_ino
        out = vm.rt("exec", "vmt", "/bin/cat", "/mnt/rw/hostlink")
        assert "host only" not in out.stdout and out.returncode != 0, out
        assert sh("readlink /mnt/rw/hostlink") == str(secret) + "\n"
        # `..` of the bind is the container's /mnt, not the host's parent directory.
        assert sh("ls /mnt/rw/..; ls /mnt/rw/../..//mnt/rw/../") == "ro\nrw\nro\nrw\n"
        # 20 MiB each way, through the page cache and the 128 KiB messages.
        assert sh("sha256sum /mnt/rw/big.bin").split()[0] == sha256(rw / "big.bin")
        sh("cp /mnt/rw/big.bin /mnt/rw/copy.bin; sync")
        assert (rw / "copy.bin").read_bytes() == big
    finally:
        r = vm.rt("delete", "--force", "vmt")
    assert r.returncode == 0, r.stderr
    assert wait_gone(procs) == []
    assert sorted(os.listdir(ro)) == ["data"]
    # Nothing the share made outlives it: the files are the container's, left as it left them.
    assert sorted(os.listdir(rw)) == ["big.bin", "copy.bin", "existing", "fromhost", "hard", "home", "hostlink",
                                      "link", "sub"]


# ---- the container's network namespace becomes the VM's NIC (docs/VM.md, "Networking") ----

def host_links():
    return sorted(line.split(":")[1].strip().split("@")[0]
                  for line in subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                                             check=True).stdout.splitlines())


@pytest.fixture
def netns_pair():
    """Two namespaces of the test's own joined by a veth: "ctr" (the container's, eth0 with
    10.213.N.2/24, a default route, a fixed MAC and MTU 1400) and "peer" (10.213.N.1: it plays
    the host side).  Every packet stays in them; both are deleted afterwards."""
    tag = os.urandom(3).hex()
    net = 100 + int(tag[:2], 16) % 100
    ctr, peer = f"silo-vmc-{tag}", f"silo-vmp-{tag}"
    before = host_links()
    cmds = [["ip", "netns", "add", ctr], ["ip", "netns", "add", peer],
            ["ip", "link", "add", f"svt{tag}a", "type", "veth", "peer", "name", f"svt{tag}b"],
            ["ip", "link", "set", f"svt{tag}a", "netns", peer], ["ip", "link", "set", f"svt{tag}b", "netns", ctr],
            ["ip", "-n", ctr, "link", "set", f"svt{tag}b", "name", "eth0"],
            ["ip", "-n", ctr, "link", "set", "eth0", "address", "02:42:0a:d5:07:02", "mtu", "1400", "up"],
            ["ip", "-n", ctr, "addr", "add", f"10.213.{net}.2/24", "dev", "eth0"],
            ["ip", "-n", ctr, "link", "set", "lo", "up"],
            ["ip", "-n", ctr, "route", "add", "default", "via", f"10.213.{net}.1"],
            # Not an IPv4 interface: ignored (the first one with an address is the container's).
            ["ip", "-n", ctr, "link", "add", "xtra0", "type", "veth", "peer", "name", "xtra1"],
            ["ip", "-n", peer, "addr", "add", f"10.213.{net}.1/24", "dev", f"svt{tag}a"],
            ["ip", "-n", peer, "link", "set", f"svt{tag}a", "mtu", "1400", "up"],
            ["ip", "-n", peer, "link", "set", "lo", "up"]]

    class Pair:
        pass
    pr = Pair()
    pr.ctr, pr.peer, pr.ctr_ip, pr.peer_ip = ctr, peer, f"10.213.{net}.2", f"10.213.{net}.1"
    pr.ctr_path = f"/run/netns/{ctr}"
    try:
        for c in cmds:
            subprocess.run(c, check=True, timeout=10, capture_output=True)
        assert host_links() == before       # everything went into the test's namespaces
        yield pr
    finally:
        subprocess.run(["ip", "netns", "del", ctr], check=False, timeout=10)
        subprocess.run(["ip", "netns", "del", peer], check=False, timeout=10)
    assert host_links() == before, "links left in the host's namespace"


def ns_links(ns):
    out = subprocess.run(["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def test_vm_network_namespace_becomes_the_vm_nic(vm, netns_pair):
    pr = netns_pair
    vm.config["linux"]["namespaces"].append({"type": "network", "path": pr.ctr_path})
    vm.config["process"]["capabilities"] = {k: ["CAP_NET_RAW"] for k in ("bounding", "effective", "permitted")}
    port = 18000 + os.getpid() % 1000
    # The peer listens; the container connects to it, serves a page, and pings the peer.
    listener = subprocess.Popen(["ip", "netns", "exec", pr.peer, "python3", "-c",
                                 "import socket,sys; s=socket.create_server(('0.0.0.0', int(sys.argv[1]))); "
                                 "c,a=s.accept(); print(a[0], c.recv(100).decode().strip(), flush=True)",
                                 str(port)], stdout=subprocess.PIPE, text=True)
    p = vm.popen("/bin/sh", "-c",
                 "ip -o -4 addr show eth0; ip -o link show eth0; ip route; tail -n +3 /proc/net/dev | cut -d: -f1; "
                 f"echo hello-from-vm | nc {pr.peer_ip} {port}; echo nc:$?; "
                 f"ping -c 3 -i 0.2 {pr.peer_ip} | tail -1; "
                 "mkdir -p /www; echo vm-page > /www/index.html; httpd -p 8080 -h /www; echo serving; "
                 "trap 'exit 130' INT; sleep 30 & wait")
    try:
        lines = []
        deadline = time.time() + BOOT_LIMIT
        while "serving" not in lines:
            assert time.time() < deadline and p.poll() is None, (lines, p.stderr.read() if p.poll() else "")
            lines.append(p.stdout.readline().strip())
        out = "\n".join(lines)
        assert f"inet {pr.ctr_ip}/24" in out, out
        assert "02:42:0a:d5:07:02" in out and "mtu 1400" in out, out          # the original MAC and MTU
        assert f"default via {pr.peer_ip} dev eth0" in out, out
        assert "eth0" in out.split() and "lo" in out.split(), out             # the VM's NIC, nothing else
        assert "nc:0" in out, out
        assert listener.communicate(timeout=20)[0].split() == [pr.ctr_ip, "hello-from-vm"]
        assert "round-trip" in out, out
        # From the peer to the VM container's server.
        got = subprocess.run(["ip", "netns", "exec", pr.peer, "python3", "-c",
                              "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=10)"
                              ".read().decode())", f"http://{pr.ctr_ip}:8080/index.html"],
                             capture_output=True, text=True, timeout=30)
        assert got.stdout.strip() == "vm-page", got.stderr
        # The tap is QEMU's alone: neither silo-runtime nor the shim holds it.
        qemus = qemus_under(p.pid)
        assert len(qemus) == 1
        def fd_target(pid, fd):
            try:
                return os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:         # closed meanwhile
                return ""
        for pid in [p.pid] + children_of(p.pid):
            tun = [fd for fd in os.listdir(f"/proc/{pid}/fd") if fd_target(pid, fd) == "/dev/net/tun"]
            assert len(tun) == (1 if pid in qemus else 0), (pid, comm(pid), tun)
        # Inside the namespace: the veth (with a new MAC, without the address) and the tap on a bridge.
        assert ns_links(pr.ctr) == ["eth0", "lo", "silo-tap0", "silo-vmbr0", "xtra0", "xtra1"]
        addrs = subprocess.run(["ip", "-n", pr.ctr, "-o", "-4", "addr"], capture_output=True, text=True).stdout
        assert pr.ctr_ip not in addrs
    finally:
        p.send_signal(signal.SIGINT)      # forwarded to the guest's sh, whose sleep ends
        p.communicate(timeout=30)
        listener.kill()
        listener.wait()
    assert p.returncode == 128 + signal.SIGINT
    # The tap went with QEMU; bridge and veth go with the namespace (the fixture checks the host).
    assert ns_links(pr.ctr) == ["eth0", "lo", "silo-vmbr0", "xtra0", "xtra1"]
    # The namespace was handed over once: a second VM on it is refused, before any boot.
    vm.write(["/bin/true"])
    r = subprocess.run(vm.argv("vmt2"), env=vm.env, capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    no_sanitizer_report(r.stderr)
    assert r.returncode != 0 and "handed to a VM before" in r.stderr, r.stderr


def test_vm_network_namespace_without_ipv4_means_loopback_only(vm, netns_pair):
    pr = netns_pair
    # Two interfaces but loopback, none with an IPv4 address: nothing to hand over.
    subprocess.run(["ip", "-n", pr.ctr, "addr", "flush", "dev", "eth0"], check=True)
    vm.config["linux"]["namespaces"].append({"type": "network", "path": pr.ctr_path})
    r = vm.run("/bin/sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1; ip -o -4 addr")
    no_sanitizer_report(r.stderr)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "lo" and "eth0" not in r.stdout, r.stdout
    assert ns_links(pr.ctr) == ["eth0", "lo", "xtra0", "xtra1"]        # untouched


def test_vm_network_path_refusals(vm, tmp_path):
    # Not a namespace, and the host's own namespace: refused before anything boots.
    (tmp_path / "plain").write_text("")
    for path, msg in ((str(tmp_path / "plain"), "network path"), ("/proc/self/ns/net", "host's own network"),
                      ("/proc/self/ns/uts", "not a network namespace"), ("/nonexistent/ns", "network path")):
        vm.config["linux"]["namespaces"] = [n for n in vm.config["linux"]["namespaces"] if n["type"] != "network"]
        vm.config["linux"]["namespaces"].append({"type": "network", "path": path})
        before = host_links()
        r = vm.run("/bin/true", timeout=30)
        no_sanitizer_report(r.stderr)
        assert r.returncode != 0 and msg in r.stderr, (path, r.stderr)
        assert host_links() == before


# ---- hostile guests: a fake QEMU speaking garbage on the control port ----

FAKE_QEMU = r'''#!/usr/bin/python3
import os, random, re, struct, sys, time
mode = os.environ["FAKE_GUEST_MODE"]
fds = [int(m.group(1)) for a in sys.argv for m in [re.search(r"socket,id=port\d+,fd=(\d+)", a)] if m]
ctl = fds[0]
def frame(t, i, body, size=None):
    return struct.pack("<IIQ", t, len(body) if size is None else size, i) + body
def read_request():
    hdr = b""
    while len(hdr) < 16:
        c = os.read(ctl, 16 - len(hdr))
        if not c:
            sys.exit(0)
        hdr += c
    t, size, i = struct.unpack("<IIQ", hdr)
    body = b""
    while len(body) < size:
        body += os.read(ctl, size - len(body))
    return t, i
RESP = 0x20100000
def negotiate_create_start():
    """A well-behaved guest up to the container's start (ProcessId 5)."""
    t, i = read_request()
    os.write(ctl, frame(RESP | 1, i, b'{"Result":0,"Version":1}'))
    t, i = read_request()                     # Create
    os.write(ctl, frame(RESP | 2, i, b'{"Result":0,"ProcessId":5}'))
    t, i = read_request()                     # Start
    os.write(ctl, frame(RESP | 3, i, b'{"Result":0,"ProcessId":5}'))
if mode == "random":
    random.seed(7)
    os.write(ctl, bytes(random.getrandbits(8) for _ in range(4096)))
elif mode == "huge":
    os.write(ctl, frame(RESP | 1, 1, b"{", size=0xffffffff))
elif mode == "badjson":
    t, i = read_request()
    os.write(ctl, frame(RESP | 1, i, b'{"Result":0,"Version":'))
elif mode == "wrongid":
    t, i = read_request()
    os.write(ctl, frame(RESP | 1, i + 1000, b'{"Result":0,"Version":1}'))
elif mode == "badfields":
    t, i = read_request()
    os.write(ctl, frame(RESP | 1, i, b'{"Result":0,"Version":1}'))
    t, i = read_request()                     # Create
    os.write(ctl, frame(RESP | 2, i, b'{"Result":0}'))
    t, i = read_request()                     # Start
    os.write(ctl, frame(RESP | 3, i, b'{"Result":0,"ProcessId":"one"}'))
elif mode == "exitflood":
    t, i = read_request()
    os.write(ctl, frame(RESP | 1, i, b'{"Result":0,"Version":1}'))
    for _ in range(100):
        os.write(ctl, frame(0x30100001, 0, b'{"ProcessId":999,"ExitCode":1}'))
elif mode == "errormsg":
    t, i = read_request()
    os.write(ctl, frame(RESP | 1, i, b'{"Result":-5,"ErrorMessage":"\\u001b]0;pwned\\u0007' + b"A" * 5000 + b'"}'))
elif mode in ("stdiobad", "stdiounknown"):
    negotiate_create_start()
    stdio = fds[3]
    if mode == "stdiounknown":
        # Output for processes that do not exist is dropped; then the init exits with 3.
        for n in range(50):
            os.write(stdio, struct.pack("<II", 4 * (1000 + n) + 1, 5) + b"xxxxx")
        os.write(stdio, struct.pack("<II", 4 * 5 + 1, 3) + b"ok\n")
        os.write(ctl, frame(0x30100001, 0, b'{"ProcessId":5,"ExitCode":3}'))
    else:
        os.write(stdio, struct.pack("<II", 4 * 5 + 1, 0xffffffff) + b"x" * 64)
elif mode.startswith("fs"):
    # The share's port (the sixth): garbage once the container runs.
    negotiate_create_start()
    fs = fds[5]
    def fuse(opcode, body, unique=1, nodeid=1, length=None):
        return struct.pack("<IIQQIIIHH", 40 + len(body) if length is None else length, opcode, unique, nodeid,
                           0, 0, 0, 0, 0) + body
    init = fuse(26, struct.pack("<IIII", 7, 37, 65536, 0) + b"\0" * 48)
    if mode == "fshuge":
        os.write(fs, fuse(1, b"x\0", length=0xfffffff0))
    elif mode == "fsshort":
        os.write(fs, struct.pack("<I", 12) + b"\0" * 60)
    elif mode == "fsrandom":
        random.seed(11)
        os.write(fs, init + bytes(random.getrandbits(8) for _ in range(8192)))
    elif mode == "fsbeforeinit":
        os.write(fs, fuse(1, b"etc\0"))
    elif mode == "fsnoname":
        os.write(fs, init + fuse(1, b"abc", unique=2))
    elif mode == "fsnoread":
        # Requests whose replies nobody reads: the shim stops taking requests, never blocks,
        # and still hears the container's exit.
        os.set_blocking(fs, False)
        msgs = init + b"".join(fuse(3, b"\0" * 16, unique=n) for n in range(2, 20000))
        try:
            while msgs:
                msgs = msgs[os.write(fs, msgs):]
        except BlockingIOError:
            pass
        time.sleep(0.5)
        os.write(ctl, frame(0x30100001, 0, b'{"ProcessId":5,"ExitCode":3}'))
elif mode == "createpid":
    t, i = read_request()
    os.write(ctl, frame(RESP | 1, i, b'{"Result":0,"Version":1}'))
    t, i = read_request()                     # Create
    os.write(ctl, frame(RESP | 2, i, b'{"Result":0,"ProcessId":-7}'))
elif mode == "silent":
    pass
elif mode == "hangup":
    os.write(ctl, b"\x01\x00")
    os.close(ctl)
    sys.exit(0)
time.sleep(300)
'''


@pytest.fixture
def fake_qemu(tmp_path):
    path = tmp_path / "fake-qemu"
    path.write_text(FAKE_QEMU)
    path.chmod(0o755)
    return str(path)


def with_rw_bind(vm, tmp_path):
    """A read-write bind: the VM gets the share port (silo.fs)."""
    (tmp_path / "shared").mkdir()
    vm.config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(tmp_path / "shared"),
                                "options": ["rbind", "rw"]})


@pytest.mark.parametrize("mode,expect", [
    ("random", "guest channel"),
    ("huge", "size out of bounds"),
    ("badjson", "not valid JSON"),
    ("wrongid", "unsolicited"),
    ("badfields", "ProcessId"),
    ("exitflood", "exit notifications"),
    ("errormsg", "guest: NegotiateProtocol failed"),
    ("silent", "did not answer NegotiateProtocol"),
    # The hang-up and the fake's exit race: either is reported.
    ("hangup", "closed the control channel|stdio port closed|the VM stopped"),
    ("createpid", "ProcessId"),
    # After start the shim owns the channels: a broken stdio frame ends the VM (exit 255, why).
    ("stdiobad", "guest stdio frame"),
    # The live shares' port: a broken FUSE message ends the VM the same way.
    ("fshuge", "guest fs port: message of"),
    ("fsshort", "guest fs port: message of 12 bytes"),
    ("fsrandom", "guest fs port"),
    ("fsbeforeinit", "request before INIT"),
    ("fsnoname", "not NUL-terminated"),
])
def test_vm_hostile_guest(vm, fake_qemu, mode, expect, tmp_path):
    if mode.startswith("fs"):
        with_rw_bind(vm, tmp_path)
    vm.write(["/bin/true"])
    t0 = time.monotonic()
    p = subprocess.Popen(vm.argv(), env=dict(vm.env, SILO_VM_QEMU=fake_qemu, FAKE_GUEST_MODE=mode,
                                             SILO_VM_ACCEL="tcg", SILO_VM_BOOT_TIMEOUT_MS="1500"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    fakes = []
    deadline = time.monotonic() + 5
    while not fakes and p.poll() is None and time.monotonic() < deadline:
        fakes = children_of(p.pid)
        time.sleep(0.01)
    try:
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    no_sanitizer_report(err)
    # An error, not a crash: 1 when create or start failed, 255 when the VM failed while the
    # container ran (the stdio frame races with the start request).
    assert p.returncode in ((1, 255) if mode.startswith(("stdio", "fs")) else (1,)), (p.returncode, err)
    assert re.search(expect, err), err
    assert time.monotonic() - t0 < 15
    # Whatever the guest sent, our terminal never sees raw control characters from it.
    assert "\x1b" not in err and "\x07" not in err
    assert len(err) < 4096
    assert wait_gone(fakes, 5) == []


def test_vm_guest_not_reading_share_replies_does_not_stall_the_shim(vm, fake_qemu, tmp_path):
    with_rw_bind(vm, tmp_path)
    vm.write(["/bin/true"])
    r = subprocess.run(vm.argv(), env=dict(vm.env, SILO_VM_QEMU=fake_qemu, FAKE_GUEST_MODE="fsnoread",
                                           SILO_VM_ACCEL="tcg", SILO_VM_BOOT_TIMEOUT_MS="1500"),
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 3, r.stderr


def test_vm_guest_output_for_unknown_processes_is_dropped(vm, fake_qemu):
    vm.write(["/bin/true"])
    r = subprocess.run(vm.argv(), env=dict(vm.env, SILO_VM_QEMU=fake_qemu, FAKE_GUEST_MODE="stdiounknown",
                                           SILO_VM_ACCEL="tcg", SILO_VM_BOOT_TIMEOUT_MS="1500"),
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    no_sanitizer_report(r.stderr)
    assert r.returncode == 3, r.stderr
    assert "xxxxx" not in r.stdout


# ---- podman drives silo-runtime: VM isolation by annotation, nothing else changes ----

from test_podman import podman, IMAGE  # noqa: E402,F401


def test_vm_under_podman(podman):
    # conmon does not pass our environment on: the runtime finds the guest kernel and initramfs
    # beside its own binary (build tree) or in $libexecdir/silo.
    r = podman.run("--rm", "--annotation", "io.silo.isolation=vm", IMAGE, "/bin/sh", "-c",
                   "uname -r; cat /etc/hostname >/dev/null && echo hostname-mapped; exit 4",
                   check=False, timeout=BOOT_LIMIT)
    assert r.returncode == 4, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("-cloud-amd64") and lines[0] != os.uname().release, lines
    assert lines[1] == "hostname-mapped"       # podman's file bind mounts became mapped disks
