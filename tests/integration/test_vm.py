# SPDX-License-Identifier: Apache-2.0
"""VM isolation (docs/VM.md): `silo-runtime run` of a bundle annotated io.silo.isolation=vm boots a
QEMU microvm utility VM (TCG here) and runs the process inside it with the silo-guest agent.

Real VMs boot in about 3 s on TCG, so only a handful of tests boot one. The hostile-guest tests
replace QEMU (SILO_VM_QEMU) with a fake that speaks garbage on the control channel; the host side
must fail cleanly and quickly, never crash or hang, and leave no process or temp file behind.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
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
def vm(vm_rootfs, tmp_path):
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
                  "maskedPaths": ["/proc/kcore", "/proc/acpi"]},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
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
    # Nothing may outlive a run: no image or directory in TMPDIR.
    assert os.listdir(tmpdir) == [], f"left in TMPDIR: {os.listdir(tmpdir)}"


def children_of(pid):
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
    # PR_SET_PDEATHSIG: QEMU dies with the runtime; the image was unlinked before boot.
    assert wait_gone(qemus) == []


def test_vm_crash_is_reported(vm):
    p = vm.popen("/bin/sh", "-c", "echo ready; exec sleep 1000")
    try:
        assert p.stdout.readline() == "ready\n"
        qemus = children_of(p.pid)
        assert qemus
        for q in qemus:
            os.kill(q, signal.SIGKILL)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    no_sanitizer_report(err)
    assert p.returncode == 1, err
    assert "the VM stopped before the process exited" in err, err


def test_vm_exec_failure_is_reported(vm):
    r = vm.run("/no/such/program")
    assert r.returncode != 0
    assert "/no/such/program" in r.stderr and "No such file" in r.stderr, r.stderr


def test_vm_bad_accelerator_is_refused(vm):
    r = vm.run("/bin/true", extra_env={"SILO_VM_ACCEL": "xen"}, timeout=10)
    assert r.returncode != 0
    assert "xen" in r.stderr and "kvm" in r.stderr


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


@pytest.mark.parametrize("mode,expect", [
    ("random", "guest channel"),
    ("huge", "size out of bounds"),
    ("badjson", "not valid JSON"),
    ("wrongid", "unsolicited"),
    ("badfields", "ProcessId"),
    ("exitflood", "exit notifications"),
    ("errormsg", "guest: NegotiateProtocol failed"),
    ("silent", "did not answer NegotiateProtocol"),
    ("hangup", "closed the control channel"),
])
def test_vm_hostile_guest(vm, fake_qemu, mode, expect):
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
    assert p.returncode == 1, (p.returncode, err)        # an error, not a crash
    assert expect in err, err
    assert time.monotonic() - t0 < 15
    # Whatever the guest sent, our terminal never sees raw control characters from it.
    assert "\x1b" not in err and "\x07" not in err
    assert len(err) < 4096
    assert wait_gone(fakes, 5) == []
