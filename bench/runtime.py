#!/usr/bin/python3
"""Start-up benchmark: `<runtime> run` of /bin/true in a busybox bundle.

Runs silo-runtime, crun and runc (interleaved, rotating order) N times each
and reports median / p90 wall time and peak RSS (wait4 rusage: the runtime
plus every descendant it reaped, i.e. its init and the container process),
with ratios against crun and runc.  Each run goes through bench/spawn_rusage.c
(built on the fly) so neither Python's start-up nor its RSS is counted.  A
baseline does the bare minimum a runtime must do: `unshare` of the same six
namespaces + chroot + exec.  Before timing, every runtime must run a probe
container that prints "ok-1" (pid 1 in a new pid namespace) or it is dropped.

Two cgroup modes:
  native   the host's v1 hybrid hierarchy (crun refuses hybrid mode, so it
           is not measured here)
  cgroup2  inside `unshare -m` with a pure cgroup2 mounted on /sys/fs/cgroup
           (no controllers are available there on this machine); the
           like-for-like comparison with crun

Each runtime gets cgroupsPath /silo-bench-<rand>/<runtime>-<i>; the parent
is removed at the end from every hierarchy.  See bench/README.md.
"""

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))
import silo_clients as sc  # noqa: E402
import silo_images  # noqa: E402

NAMESPACES = ["pid", "network", "ipc", "uts", "mount", "cgroup"]
UNSHARE_FLAGS = ["--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--fork"]
MAX_FAILURES = 3


def bundle_config(args=("/bin/true",), devices=False):
    """The `runc spec` default (minus ambient caps) plus a cgroup namespace.

    Without DEVICES the spec has no linux.resources: crun 1.8 must raise
    RLIMIT_MEMLOCK to load its cgroup2 device BPF program, which fails without
    CAP_SYS_RESOURCE.  (runc installs its default device rules regardless.)
    """
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    cfg = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            # no ambient set: podman, docker and containerd never send one
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in NAMESPACES],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    if devices:
        cfg["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    return cfg


def percentile(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Subject:
    """One thing being timed: a runtime, or the unshare baseline."""

    def __init__(self, name, binary, work, bundle, parent, mode):
        self.name = name
        self.binary = binary
        self.work = work
        self.bundle = bundle
        self.parent = parent
        self.mode = mode
        self.times = []
        self.rss = []
        self.failures = []
        self.probe_failed = False
        if name != "baseline":
            self.state_root = os.path.join(work, "state", mode, name)
            os.makedirs(self.state_root, exist_ok=True)
            self.bundle = os.path.join(work, "bundles", mode, name)
            shutil.copytree(bundle, self.bundle, symlinks=True)

    def set_cgroup(self, cgroup, args=None):
        cfg_path = os.path.join(self.bundle, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["linux"]["cgroupsPath"] = cgroup
        if args is not None:
            cfg["process"]["args"] = args
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)

    def probe(self):
        """Run a container that must print ok-1; returns None or the failure."""
        if self.name == "baseline":
            argv = [self.binary] + UNSHARE_FLAGS + [
                "--root", os.path.join(self.bundle, "rootfs"), "/bin/sh", "-c", "echo ok-$$"]
        else:
            self.set_cgroup("%s/%s-%s-probe" % (self.parent, self.name, self.mode),
                            ["/bin/sh", "-c", "echo ok-$$"])
            argv = [self.binary, "--root", self.state_root, "run", "--bundle", self.bundle,
                    "bench-probe"]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return "probe container timed out"
        finally:
            if self.name != "baseline":
                self.set_cgroup(self.parent, ["/bin/true"])
        if p.returncode != 0 or p.stdout != "ok-1\n":
            return "probe container: rc=%d stdout=%r stderr=%r" % (
                p.returncode, p.stdout[:200], p.stderr.strip()[:500])
        return None

    def argv(self, i):
        if self.name == "baseline":
            return [self.binary] + UNSHARE_FLAGS + ["--root", os.path.join(self.bundle, "rootfs"),
                                                   "/bin/true"]
        # a per-run cgroup: patching config.json is cheap and outside the timing
        self.set_cgroup("%s/%s-%s-%d" % (self.parent, self.name, self.mode, i))
        return [self.binary, "--root", self.state_root, "run", "--bundle", self.bundle,
                "bench-%d" % i]

    @property
    def dead(self):
        return self.probe_failed or len(self.failures) >= MAX_FAILURES


def run_once(helper, argv, errfd):
    """Run ARGV via spawn_rusage; returns (wall ms, max RSS KiB, exit code, stderr)."""
    os.lseek(errfd, 0, os.SEEK_SET)
    os.ftruncate(errfd, 0)
    p = subprocess.run([helper] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=errfd, text=True, timeout=60)
    fields = p.stdout.split()
    if p.returncode != 0 or len(fields) != 3:
        raise RuntimeError("spawn_rusage failed: rc=%d out=%r" % (p.returncode, p.stdout))
    rc, ns, rss = (int(x) for x in fields)
    err = ""
    if rc != 0:
        os.lseek(errfd, 0, os.SEEK_SET)
        err = os.read(errfd, 2000).decode(errors="replace").strip()
    return ns / 1e6, rss, rc, err


def build_helper(work):
    src = os.path.join(HERE, "spawn_rusage.c")
    out = os.path.join(work, "spawn_rusage")
    cc = os.environ.get("CC", "cc")
    for extra in (["-static"], []):
        p = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror"] + extra +
                           ["-o", out, src], capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            return out
    raise RuntimeError("cannot build %s:\n%s" % (src, p.stderr))


def measure(params):
    """Time every subject in the current mount namespace; returns a result dict."""
    mode = params["mode"]
    work = params["work"]
    subjects = []
    for name, binary in params["runtimes"]:
        subjects.append(Subject(name, binary, work, params["bundle"], params["parent"], mode))
    subjects.append(Subject("baseline", params["unshare"], work, params["bundle"],
                            params["parent"], mode))
    for s in subjects:
        problem = s.probe()
        if problem:
            s.failures = [problem]
            s.probe_failed = True
    errfd = os.open(os.path.join(work, "stderr-%s" % mode), os.O_RDWR | os.O_CREAT, 0o600)
    total = params["warmup"] + params["iterations"]
    for i in range(total):
        # rotate the order so no subject always runs right after another
        k = i % len(subjects)
        for s in subjects[k:] + subjects[:k]:
            if s.dead:
                continue
            elapsed, rss, rc, err = run_once(params["helper"], s.argv(i), errfd)
            if rc != 0:
                s.failures.append("run %d: rc=%d: %s" % (i, rc, err))
                continue
            if i >= params["warmup"]:
                s.times.append(elapsed)
                s.rss.append(rss)
    os.close(errfd)
    out = {}
    for s in subjects:
        leftover = []
        if s.name != "baseline" and os.path.isdir(s.state_root):
            leftover = os.listdir(s.state_root)
        out[s.name] = {"times_ms": s.times, "rss_kb": s.rss, "failures": s.failures,
                       "leftover_state": leftover}
    return out


def mount_cgroup2():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/sys/fs/cgroup", b"cgroup2", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "mount cgroup2 on /sys/fs/cgroup: " + os.strerror(err))


def inner_main(params_path):
    with open(params_path) as f:
        params = json.load(f)
    mount_cgroup2()
    # crun enables controllers in every ancestor, the host's root included;
    # the bench must leave the machine's cgroups as it found them.
    control = "/sys/fs/cgroup/cgroup.subtree_control"
    with open(control) as f:
        before = set(f.read().split())
    try:
        json.dump(measure(params), sys.stdout)
    finally:
        sc.remove_cgroup_tree(params["parent"])
        with open(control) as f:
            added = set(f.read().split()) - before
        for c in added:
            try:
                with open(control, "w") as f:
                    f.write("-" + c)
            except OSError as e:
                print("WARNING: could not disable %s in the cgroup2 root: %s" % (c, e), file=sys.stderr)


def summarize(results, names):
    rows = []
    for mode, per in results.items():
        ref = {}
        for name in names + ["baseline"]:
            r = per.get(name)
            if not r or not r["times_ms"]:
                continue
            ref[name] = (statistics.median(r["times_ms"]), statistics.median(r["rss_kb"]))
        for name in names + ["baseline"]:
            r = per.get(name)
            if r is None:
                continue
            row = {"mode": mode, "runtime": name, "runs": len(r["times_ms"]),
                   "failures": r["failures"], "leftover_state": r["leftover_state"]}
            if r["times_ms"]:
                med = statistics.median(r["times_ms"])
                rss_med = statistics.median(r["rss_kb"])
                row.update(median_ms=med, p90_ms=percentile(r["times_ms"], 90),
                           min_ms=min(r["times_ms"]), rss_median_kb=rss_med,
                           rss_max_kb=max(r["rss_kb"]))
                for other in ("crun", "runc"):
                    if other in ref and other != name:
                        row["time_vs_" + other] = med / ref[other][0]
                        row["rss_vs_" + other] = rss_med / ref[other][1]
            rows.append(row)
    return rows


def print_table(rows):
    def fmt(v, f="%.2f"):
        return "-" if v is None else f % v
    hdr = ("mode", "runtime", "runs", "median ms", "p90 ms", "min ms", "peak RSS MB",
           "time/crun", "time/runc", "RSS/crun", "RSS/runc")
    print("%-8s %-13s %5s %10s %8s %8s %12s %10s %10s %9s %9s" % hdr)
    for r in rows:
        print("%-8s %-13s %5d %10s %8s %8s %12s %10s %10s %9s %9s" % (
            r["mode"], r["runtime"], r["runs"], fmt(r.get("median_ms")), fmt(r.get("p90_ms")),
            fmt(r.get("min_ms")),
            fmt(r["rss_median_kb"] / 1024.0 if "rss_median_kb" in r else None),
            fmt(r.get("time_vs_crun"), "%.2fx"), fmt(r.get("time_vs_runc"), "%.2fx"),
            fmt(r.get("rss_vs_crun"), "%.2fx"), fmt(r.get("rss_vs_runc"), "%.2fx")))
    for r in rows:
        if r["failures"]:
            print("\n%s/%s FAILED (%d failure(s)); first: %s" % (
                r["mode"], r["runtime"], len(r["failures"]), r["failures"][0]))
        if r["leftover_state"]:
            print("\n%s/%s left state behind: %s" % (r["mode"], r["runtime"],
                                                      r["leftover_state"][:5]))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runtimes", default="silo-runtime,silo-immutable,crun,runc",
                    help="comma-separated subset of silo-runtime,silo-immutable,crun,runc "
                    "(silo-immutable: the same binary installed with chattr +i, which "
                    "skips the protective re-exec; see docs/DESIGN.md)")
    ap.add_argument("--modes", default="native,cgroup2")
    ap.add_argument("--silo", default=sc.runtime_path(),
                    help="silo-runtime binary (default: $SILO_RUNTIME or the build dir)")
    ap.add_argument("--devices", action="store_true",
                    help="add the usual deny-all linux.resources.devices rule (crun then "
                    "fails in cgroup2 mode here: it cannot raise RLIMIT_MEMLOCK)")
    ap.add_argument("--json", help="also write raw results and summary here")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        return inner_main(args.inner)
    if os.geteuid() != 0:
        sys.exit("bench/runtime.py must run as root")

    wanted = [x for x in args.runtimes.split(",") if x]
    work = tempfile.mkdtemp(prefix="silo-bench-")
    immutable = None
    if "silo-immutable" in wanted and args.silo and os.path.exists(args.silo):
        # The immutable install: a copy of the same binary with the immutable
        # attribute, which silo-runtime accepts as already protected.
        immutable = os.path.join(work, "silo-runtime-immutable")
        shutil.copy2(args.silo, immutable)
        if subprocess.run(["chattr", "+i", immutable]).returncode != 0:
            os.unlink(immutable)
            immutable = None
    paths = {"silo-runtime": args.silo, "silo-immutable": immutable, "crun": shutil.which("crun"),
             "runc": shutil.which("runc")}
    runtimes = []
    for name in wanted:
        if name not in paths:
            sys.exit("unknown runtime %r" % name)
        path = paths[name]
        problem = sc.runtime_problem(path) if path else "%s not installed" % name
        if problem:
            print("skipping %s: %s" % (name, problem), file=sys.stderr)
            continue
        runtimes.append((name, os.path.abspath(path)))
    unshare = shutil.which("unshare")

    parent = sc.owned_cgroup_parent("bench")
    results = {}
    try:
        bundle = os.path.join(work, "bundle")
        silo_images.build_busybox_rootfs(os.path.join(bundle, "rootfs"))
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(bundle_config(devices=args.devices), f, indent=1)
        helper = build_helper(work)
        for mode in args.modes.split(","):
            rts = runtimes
            if mode == "native":
                # crun 1.8 refuses the v1/v2 hybrid layout of this host
                rts = [r for r in runtimes if r[0] != "crun"]
            params = {"mode": mode, "work": work, "bundle": bundle, "parent": parent,
                      "runtimes": rts, "unshare": unshare, "iterations": args.iterations,
                      "warmup": args.warmup, "helper": helper}
            print("measuring %s mode: %s + baseline, %d runs each ..." % (
                mode, ", ".join(r[0] for r in rts), args.iterations), file=sys.stderr, flush=True)
            if mode == "native":
                results[mode] = measure(params)
            elif mode == "cgroup2":
                ppath = os.path.join(work, "params-%s.json" % mode)
                with open(ppath, "w") as f:
                    json.dump(params, f)
                proc = subprocess.run([unshare, "--mount", "--propagation", "private",
                                       sys.executable, os.path.abspath(__file__),
                                       "--inner", ppath],
                                      capture_output=True, text=True,
                                      timeout=60 + args.iterations * 10)
                if proc.returncode != 0:
                    sys.exit("cgroup2 pass failed:\n" + proc.stderr)
                results[mode] = json.loads(proc.stdout)
            else:
                sys.exit("unknown mode %r" % mode)
    finally:
        leftovers = sc.remove_cgroup_tree(parent)
        if immutable:
            subprocess.run(["chattr", "-i", immutable])
        sc.unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
        if leftovers:
            print("WARNING: could not remove cgroups %s" % leftovers, file=sys.stderr)

    names = [r[0] for r in runtimes]
    rows = summarize(results, names)
    print("%d runs per runtime (+%d warm-up), %s, kernel %s" % (
        args.iterations, args.warmup, time.strftime("%Y-%m-%d"), os.uname().release))
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": rows, "raw": results,
                       "runtimes": dict(runtimes)}, f, indent=1)


if __name__ == "__main__":
    main()
