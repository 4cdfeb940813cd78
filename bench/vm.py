#!/usr/bin/python3
"""VM isolation benchmark: `silo-runtime run` of a VM bundle (io.silo.isolation=vm).

For N runs of `echo first` followed by `sleep`, reports median / min / max of:
  first-output  time from spawning silo-runtime to the first byte on its stdout
  total         wall time of a `run` of /bin/true (boot, run, power-off, teardown)
  qemu-rss      QEMU's resident memory (VmRSS) once the process runs, and its private part
                (RssAnon: without the kernel file's page cache, which all VMs share)
  shim-rss      the host shim's resident memory (one per VM)
  exec          `silo-runtime exec CONTAINER /bin/true` into a running VM container
plus the phases of one run from the guest console (SILO_VM_DEBUG=1 timestamps are not used:
they slow the boot; instead the kernel's own printk clock is read from a separate debug run).

    bench/vm.py                    # 5 runs, accelerator chosen by the probe
    bench/vm.py -n 10 --accel tcg  # or kvm
    bench/vm.py --json out.json

Needs the build (SILO_BUILD_DIR, default /work/main/build) with src/guest/initramfs.img, the
Debian cloud kernel, qemu-system-x86, erofs-utils and busybox-static.  See docs/VM.md.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("SILO_BUILD_DIR", "/work/main/build")
# Every VM's shim and QEMU go into a cgroup under this bench-owned parent.
CGROUP_PARENT = f"silo-bench-vm-{os.getpid()}"


def kernel():
    built = os.path.join(BUILD, "src/guest/vmlinux")
    if os.path.exists(built):
        return built
    found = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    return found[-1] if found else "/vmlinuz"


def children(pid):
    """Every descendant: the shim, QEMU under it."""
    out = direct_children(pid)
    for c in list(out):
        out += children(c)
    return out


def qemu_of(pids):
    for p in pids:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"qemu" in f.read().split(b"\0")[0]:
                    return p
        except OSError:
            pass
    return None


def direct_children(pid):
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(stat.split("/")[2]))
        except (OSError, ValueError, IndexError):
            pass
    return out


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def make_bundle(d, args):
    rootfs = os.path.join(d, "rootfs")
    if not os.path.exists(rootfs):
        subprocess.run([os.path.join(HERE, "..", "tests/lib/mkrootfs.sh"), rootfs], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, SILO_BUILD_DIR=BUILD))
    cfg = {"ociVersion": "1.0.2",
           "process": {"args": args, "cwd": "/", "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
                       "user": {"uid": 0, "gid": 0}},
           "root": {"path": rootfs},
           "annotations": {"io.silo.isolation": "vm"},
           "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}],
                     "cgroupsPath": f"/{CGROUP_PARENT}/{os.path.basename(d)}-{time.monotonic_ns()}"}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)


def one_run(runtime, d, env, idx):
    make_bundle(d, ["/bin/sh", "-c", "echo first; sleep 1"])
    t0 = time.monotonic()
    p = subprocess.Popen([runtime, "--root", os.path.join(d, "state"), "run", "--bundle", d, f"bench-{idx}"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    first = p.stdout.read(1)
    t_first = time.monotonic() - t0
    procs = children(p.pid)
    qemu = qemu_of(procs)
    rss = status_kb(qemu, "VmRSS") if qemu else None
    hwm = status_kb(qemu, "RssAnon") if qemu else None   # private: not the shared kernel file
    shim = status_kb(procs[0], "VmRSS") if procs else None
    p.stdout.read()
    err = p.stderr.read()
    p.wait()
    if first != b"f" or p.returncode != 0:
        sys.exit(f"run failed (rc {p.returncode}): {err.decode(errors='replace')}")

    make_bundle(d, ["/bin/true"])
    t0 = time.monotonic()
    subprocess.run([runtime, "--root", os.path.join(d, "state"), "run", "--bundle", d, f"bench-t{idx}"],
                   env=env, check=True, stdin=subprocess.DEVNULL)
    total = time.monotonic() - t0

    # exec into a running VM container
    make_bundle(d, ["/bin/sleep", "1000"])
    st = os.path.join(d, "state")
    subprocess.run([runtime, "--root", st, "run", "--detach", "--bundle", d, f"bench-e{idx}"], env=env, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    subprocess.run([runtime, "--root", st, "exec", f"bench-e{idx}", "/bin/true"], env=env, check=True)
    t_exec = time.monotonic() - t0
    subprocess.run([runtime, "--root", st, "delete", "--force", f"bench-e{idx}"], env=env, check=True)
    return t_first, total, rss, hwm, shim, t_exec


def hosted_runs(runtime, d, env, n):
    """A utility VM booted once, then n containers created in it (io.silo.vm.host): create+start to
    the first byte of output, no boot in the path."""
    st = os.path.join(d, "state")
    u = os.path.join(d, "uvm")
    os.makedirs(u, exist_ok=True)
    with open(os.path.join(u, "config.json"), "w") as f:
        json.dump({"ociVersion": "1.0.2", "linux": {"cgroupsPath": f"/{CGROUP_PARENT}/uvm-{time.monotonic_ns()}"},
                   "annotations": {"io.silo.isolation": "vm", "io.silo.vm.utility": "true"}}, f)
    subprocess.run([runtime, "--root", st, "create", "--bundle", u, "uvm"], env=env, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([runtime, "--root", st, "start", "uvm"], env=env, check=True)
    times = []
    try:
        for i in range(n):
            make_bundle(d, ["/bin/sh", "-c", "echo first"])
            with open(os.path.join(d, "config.json")) as f:
                cfg = json.load(f)
            cfg["annotations"]["io.silo.vm.host"] = "uvm"
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f)
            t0 = time.monotonic()
            p = subprocess.Popen([runtime, "--root", st, "create", "--bundle", d, f"hosted-{i}"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            if p.wait() != 0:
                sys.exit("hosted create failed")
            subprocess.run([runtime, "--root", st, "start", f"hosted-{i}"], env=env, check=True)
            first = p.stdout.read(1)
            times.append(time.monotonic() - t0)
            if first != b"f":
                sys.exit("hosted container: no output")
            p.stdout.close()
            subprocess.run([runtime, "--root", st, "delete", "--force", f"hosted-{i}"], env=env, check=True)
    finally:
        subprocess.run([runtime, "--root", st, "delete", "--force", "uvm"], env=env, check=False)
    return times


def phases(runtime, d, env):
    """Kernel printk timestamps of one debug run: when userspace (/init) starts."""
    make_bundle(d, ["/bin/true"])
    r = subprocess.run([runtime, "--root", os.path.join(d, "state"), "run", "--bundle", d, "bench-dbg"],
                       env=dict(env, SILO_VM_DEBUG="1"), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    marks = {}
    for line in r.stderr.splitlines():
        if "Run /init" in line or "Freeing unused kernel image (initmem)" in line:
            try:
                marks["kernel-to-init"] = float(line.split("]")[0].strip("[ "))
            except ValueError:
                pass
    return marks


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", "--iterations", type=int, default=5)
    ap.add_argument("--accel", default=os.environ.get("SILO_VM_ACCEL", "auto"))
    ap.add_argument("--json")
    a = ap.parse_args()
    runtime = os.environ.get("SILO_RUNTIME") or os.path.join(BUILD, "src/runtime/silo-runtime")
    env = dict(os.environ, SILO_VM_KERNEL=kernel(), SILO_VM_INITRD=os.path.join(BUILD, "src/guest/initramfs.img"),
               SILO_VM_ACCEL=a.accel)
    made = []
    for mnt in glob.glob("/sys/fs/cgroup/*/") + ["/sys/fs/cgroup/"]:
        if os.path.exists(os.path.join(mnt, "cgroup.procs")) and not os.path.exists(os.path.join(mnt, CGROUP_PARENT)):
            os.mkdir(os.path.join(mnt, CGROUP_PARENT))
            made.append(os.path.join(mnt, CGROUP_PARENT))
            if os.path.exists(os.path.join(mnt, "cpuset.cpus")):
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(mnt, f)) as src, open(os.path.join(mnt, CGROUP_PARENT, f), "w") as dst:
                        dst.write(src.read().strip())
    try:
        with tempfile.TemporaryDirectory(prefix="silo-vm-bench-") as d:
            res = [one_run(runtime, d, env, i) for i in range(a.iterations)]
            ph = phases(runtime, d, env)
            hosted = hosted_runs(runtime, d, env, a.iterations)
    finally:
        for m in made:
            for sub in sorted(glob.glob(os.path.join(m, "*/")), reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
            os.rmdir(m)
    out = {
        "accel": a.accel,
        "iterations": a.iterations,
        "first_output_s": summary([r[0] for r in res]),
        "run_true_total_s": summary([r[1] for r in res]),
        "qemu_rss_mib": summary([r[2] / 1024 if r[2] else None for r in res]),
        "qemu_private_rss_mib": summary([r[3] / 1024 if r[3] else None for r in res]),
        "shim_rss_mib": summary([r[4] / 1024 if r[4] else None for r in res]),
        "exec_true_s": summary([r[5] for r in res]),
        "hosted_first_output_s": summary(hosted),
        "initramfs_bytes": os.path.getsize(env["SILO_VM_INITRD"]),
        "guest_kernel_to_init_s": ph.get("kernel-to-init"),
    }
    for k, v in out.items():
        if isinstance(v, dict):
            print(f"{k:22} median {v['median']:8.3f}  min {v['min']:8.3f}  max {v['max']:8.3f}")
        else:
            print(f"{k:22} {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
