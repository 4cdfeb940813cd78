#!/usr/bin/python3
"""silod benchmark: `docker run --rm busybox true` against silod vs `podman run --rm`.

In one invocation:
  * end to end: the real docker CLI against a private silod, and podman (runc,
    overlay, cgroupfs) running the same busybox image, both with --network none
    (a loopback-only network namespace; podman's default bridge would change
    the host's network); silod's default network is timed too.  N interleaved
    runs each (rotating who goes first), medians and ratios to podman;
  * with --baseline BUILD_DIR, a second silod (e.g. the previous commit's) in
    the same rotation, for before/after figures from one run;
  * create/start/wait/delete through the API, timed one by one;
  * silod's RSS and PSS (/proc/PID/smaps_rollup) after start-up, 1 s after the
    runs and after --idle-wait seconds without requests (silod trims itself
    after 5 s idle);
  * the RSS of one silo-monitor per running container (`docker run -d ... sleep`);
  * scale: C containers started concurrently (`docker run -d --network none busybox
    sleep 600`; --scale-network default uses silod's bridge),
    P clients at a time), all checked running, then `docker rm -f` of all;
    errors, timings, silod's RSS, fds, threads and CPU while they all run, and a
    check that no container, monitor or mount is left.

Everything lives in a temporary directory and an absolute, benchmark-owned
cgroup parent (/silo-bench-<rand>) that is removed at the end; podman runs with
its own --root/--runroot and configuration file.  Run as root from the
repository root (see bench/README.md):

    bench/daemon.py                         # 30 runs, 200 containers
    bench/daemon.py -n 50 --scale 200 --parallel 8 --json out.json
    SILO_BUILD_DIR=/work/main/build-perf bench/daemon.py --baseline /tmp/old/build
"""

import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))
import silo_images  # noqa: E402
import daemon_support  # noqa: E402
from daemon_support import Daemon, monitor_pids, mounts_under, write_docker_archive  # noqa: E402

RUNC = shutil.which("runc") or "/usr/sbin/runc"


def sh(*args, check=True, timeout=120, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} -> {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def mem_of(pid):
    """VmRSS and PSS in KiB (0, 0 if the process is gone)."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def thread_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def silod_mem(d):
    rss, pss = mem_of(d.proc.pid)
    return {"rss_mib": mib(rss), "pss_mib": mib(pss), "threads": thread_count(d.proc.pid),
            "fds": fd_count(d.proc.pid)}


def mib(kib):
    return round(kib / 1024, 2)


def remove_cgroup_tree(name):
    """Removes /<name> and everything below it from every v1 hierarchy."""
    base = "/sys/fs/cgroup"
    for ctrl in os.listdir(base):
        top = os.path.join(base, ctrl, name.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


class Podman:
    def __init__(self, tmp, cgroup_parent, image_tar):
        self.tmp = os.path.join(tmp, "podman")
        for d in ("root", "runroot", "tmp", "net"):
            os.makedirs(os.path.join(self.tmp, d))
        nofile = sh("sh", "-c", "ulimit -Hn").stdout.strip()
        # podman's default ulimits exceed the hard limits here (no CAP_SYS_RESOURCE).
        with open(os.path.join(self.tmp, "containers.conf"), "w") as f:
            f.write(f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "{self.tmp}/tmp"
[network]
network_config_dir = "{self.tmp}/net"
""")
        self.env = dict(os.environ, CONTAINERS_CONF=os.path.join(self.tmp, "containers.conf"))
        self.base = ["podman", "--root", f"{self.tmp}/root", "--runroot", f"{self.tmp}/runroot",
                     "--storage-driver", "overlay", "--runtime", RUNC]
        self.cgroup_parent = cgroup_parent
        sh(*self.base, "load", "-i", image_tar, env=self.env, timeout=300)

    def run_cmd(self):
        return self.base + ["run", "--rm", "--network", "none", "--cgroup-parent", self.cgroup_parent,
                            "busybox", "true"]

    def cleanup(self):
        sh(*self.base, "rm", "-af", check=False, env=self.env)
        sh(*self.base, "rmi", "-af", check=False, env=self.env)
        sh(*self.base, "system", "reset", "-f", check=False, env=self.env, timeout=300)


def timed(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {p.returncode}: {p.stderr.strip()[-1000:]}")
    return dt


def stats(xs):
    xs = sorted(xs)
    return {"median_ms": round(statistics.median(xs), 1), "min_ms": round(xs[0], 1),
            "p90_ms": round(xs[min(len(xs) - 1, int(len(xs) * 0.9))], 1), "n": len(xs)}


def bench_run(daemons, podman, n, warmup, net_default):
    """daemons: {label: Daemon}; every tool runs once per round, rotating who goes first."""
    # Like for like: podman runs with --network none (a loopback-only network
    # namespace, and no host network changes); silod's default (a bridged
    # network, if silod has one) is timed as well.
    docker_cmd = ["docker", "run", "--rm", "--network", "none", "busybox", "true"]
    tools = {label: (docker_cmd, d.env) for label, d in daemons.items()}
    if net_default:
        tools["silod_default_network"] = (["docker", "run", "--rm", "busybox", "true"], daemons["silod"].env)
    if podman:
        tools["podman"] = (podman.run_cmd(), podman.env)
    times = {k: [] for k in tools}
    for _ in range(warmup):
        for cmd, env in tools.values():
            timed(cmd, env)
    order = list(tools)
    for i in range(n):
        for k in order[i % len(order):] + order[:i % len(order)]:
            cmd, env = tools[k]
            times[k].append(timed(cmd, env))
    res = {k: stats(v) for k, v in times.items()}
    for label in list(daemons) + (["silod_default_network"] if net_default else []):
        if podman:
            res[f"ratio_{label}_podman"] = round(res[label]["median_ms"] / res["podman"]["median_ms"], 3)
    return res


def bench_phases(d, n):
    """docker's own steps through the API: create, start, wait, delete."""
    phases = {"create": [], "start": [], "wait": [], "delete": []}
    for _ in range(n):
        t0 = time.perf_counter()
        st, body, _ = d.api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                            "HostConfig": {"NetworkMode": "none"}})
        assert st == 201, body
        cid = json.loads(body)["Id"]
        t1 = time.perf_counter()
        st, body, _ = d.api("POST", f"/containers/{cid}/start")
        assert st == 204, body
        t2 = time.perf_counter()
        st, body, _ = d.api("POST", f"/containers/{cid}/wait")
        assert st == 200, body
        t3 = time.perf_counter()
        st, body, _ = d.api("DELETE", f"/containers/{cid}")
        assert st == 204, body
        t4 = time.perf_counter()
        for k, a, b in (("create", t0, t1), ("start", t1, t2), ("wait", t2, t3), ("delete", t3, t4)):
            phases[k].append((b - a) * 1000)
    # The docker CLI's own overhead: a request that does nothing.
    t0 = time.perf_counter()
    for _ in range(n):
        sh("docker", "version", "--format", "{{.Server.Version}}", env=d.env)
    cli = (time.perf_counter() - t0) * 1000 / n
    return {**{k: round(statistics.median(v), 2) for k, v in phases.items()},
            "docker_version_cli_ms": round(cli, 1)}


def bench_monitors(d, count):
    ids = []
    for _ in range(count):
        ids.append(d.docker("run", "-d", "busybox", "sleep", "600").stdout.strip())
    time.sleep(0.5)
    mons = monitor_pids(d.state)
    per = [mem_of(p) for p in mons]
    res = {"monitors": len(mons),
           "rss_mib_median": mib(statistics.median(r for r, _ in per)) if per else None,
           "rss_mib_max": mib(max(r for r, _ in per)) if per else None,
           "pss_mib_median": mib(statistics.median(p for _, p in per)) if per else None}
    d.docker("rm", "-f", *ids, timeout=120)
    return res


def bench_scale(d, count, parallel, network):
    errors = []

    def run_one(_):
        net = [] if network == "default" else ["--network", network]
        p = subprocess.run(["docker", "run", "-d", *net, "busybox", "sleep", "600"], env=d.env,
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            errors.append(p.stderr.strip()[-300:])
            return None
        return p.stdout.strip()

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
        ids = [i for i in ex.map(run_one, range(count)) if i]
    t_start = time.perf_counter() - t0
    time.sleep(1)
    running = d.docker("ps", "-q", "--no-trunc").stdout.split()
    not_running = sorted(set(ids) - set(running))
    mons = monitor_pids(d.state)
    mon_rss = [mem_of(p)[0] for p in mons]
    rss, pss = mem_of(d.proc.pid)
    peak = {"silod_rss_mib": mib(rss), "silod_pss_mib": mib(pss), "silod_fds": fd_count(d.proc.pid),
            "silod_threads": thread_count(d.proc.pid), "monitors": len(mons),
            "monitor_rss_mib_median": mib(statistics.median(mon_rss)) if mon_rss else None,
            "monitor_rss_total_mib": mib(sum(mon_rss))}
    # What the poller costs while they all run: silod's CPU over 5 s.
    def cpu_ticks():
        with open(f"/proc/{d.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    c0 = cpu_ticks()
    time.sleep(5)
    peak["silod_cpu_pct_idle_with_all_running"] = round((cpu_ticks() - c0) / os.sysconf("SC_CLK_TCK") / 5 * 100, 1)

    rm_errors = []

    def rm_batch(batch):
        p = subprocess.run(["docker", "rm", "-f", *batch], env=d.env, capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            rm_errors.append(p.stderr.strip()[-300:])

    t0 = time.perf_counter()
    batches = [ids[i:i + 10] for i in range(0, len(ids), 10)]
    with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
        list(ex.map(rm_batch, batches))
    t_rm = time.perf_counter() - t0
    # Containers whose start failed exist too (as with docker): not counted as left.
    failed = d.docker("ps", "-aq").stdout.split()
    if failed:
        d.docker("rm", "-f", *failed, check=False, timeout=300)
    left = d.docker("ps", "-aq").stdout.split()
    deadline = time.time() + 10
    while monitor_pids(d.state) and time.time() < deadline:
        time.sleep(0.1)
    return {"requested": count, "parallel": parallel, "network": network, "started": len(ids), "run_errors": len(errors),
            "first_errors": errors[:3], "all_running": not not_running and len(ids) == count,
            "not_running": len(not_running), "start_all_s": round(t_start, 2),
            "rm_all_s": round(t_rm, 2), "rm_errors": len(rm_errors), "first_rm_errors": rm_errors[:3],
            "containers_left": len(left), "monitors_left": len(monitor_pids(d.state)),
            "mounts_left": len(mounts_under(os.path.join(d.state, "containers"))), **peak}


NET_STATE = os.path.join(os.environ.get("SILO_NETWORK_DIR", "/var/lib/silo/network"), "state.json")


def network_endpoints_of(d):
    """Endpoints silod still holds in the host's network state (released
    asynchronously after a container is gone; a silod stopped before that
    would leave them, and their addresses, behind)."""
    try:
        with open(NET_STATE) as f:
            eps = json.load(f).get("endpoints", {})
    except (OSError, ValueError):
        return []
    return [k for k, v in eps.items() if str(v.get("netns", "")).startswith(d.state + "/")]


def cleanup_daemon(d):
    try:
        if d.proc:
            st, body, _ = d.api("GET", "/containers/json?all=1")
            for c in json.loads(body) if st == 200 else []:
                d.api("DELETE", f"/containers/{c['Id']}?force=1", timeout=30)
    except Exception as e:  # noqa: BLE001 - clean up regardless
        print(f"cleanup through the API failed: {e}", file=sys.stderr)
    deadline = time.time() + 120
    while d.proc and network_endpoints_of(d) and time.time() < deadline:
        time.sleep(0.2)
    if network_endpoints_of(d):
        print(f"silod still holds network endpoints: {len(network_endpoints_of(d))}", file=sys.stderr)
    d.stop()
    deadline = time.time() + 10
    while monitor_pids(d.state) and time.time() < deadline:
        time.sleep(0.1)
    for pid in monitor_pids(d.state):
        os.kill(pid, signal.SIGKILL)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--monitors", type=int, default=10, help="containers for the monitor RSS figure")
    ap.add_argument("--scale", type=int, default=200, help="concurrent containers (0: skip)")
    ap.add_argument("--parallel", type=int, default=8, help="docker clients at a time in the scale test")
    ap.add_argument("--scale-network", default="none",
                    help="--network of the scale test's containers (none, or default: silod's bridge)")
    ap.add_argument("--phases", type=int, default=20, help="API-level create/start/wait/delete runs")
    ap.add_argument("--skip", default="", help="comma list of podman,run,netdefault,phases,monitors,scale")
    ap.add_argument("--idle-wait", type=float, default=7, help="seconds without requests before the idle figures")
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="also run the silod of another build (e.g. the previous commit), interleaved")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if os.geteuid() != 0:
        sys.exit("bench/daemon.py must run as root")
    if not shutil.which("docker"):
        sys.exit("the docker CLI is required")

    tmp = tempfile.mkdtemp(prefix="silo-bench-daemon-")
    tag = secrets.token_hex(4)
    cg_root = f"/silo-bench-{tag}"
    daemons = {"silod": Daemon(os.path.join(tmp, "silod"))}
    binaries = {"silod": daemon_support.SILOD}
    if args.baseline:
        daemons["baseline"] = Daemon(os.path.join(tmp, "baseline"))
        binaries["baseline"] = os.path.join(args.baseline, "src/daemon/silod")
    podman = None
    results = {}
    try:
        for label, d in daemons.items():
            os.makedirs(d.tmp)
            d.cgroup_parent = f"{cg_root}/{label}"
            # Daemon.start() runs daemon_support.SILOD.
            daemon_support.SILOD = binaries[label]
            d.start()
            results[label] = {"binary": os.path.realpath(binaries[label])}
        daemon_support.SILOD = binaries["silod"]
        time.sleep(1)
        for label, d in daemons.items():
            results[label]["idle_startup"] = silod_mem(d)
        rootfs = os.path.join(tmp, "rootfs")
        os.makedirs(rootfs)
        silo_images.build_busybox_rootfs(rootfs)
        image_tar = write_docker_archive(rootfs, os.path.join(tmp, "busybox.tar"), "busybox:latest")
        shutil.rmtree(rootfs)
        for d in daemons.values():
            d.docker("load", "-i", image_tar, timeout=120)
        if "podman" not in skip and shutil.which("podman"):
            podman = Podman(tmp, f"{cg_root}/podman", image_tar)
        if "run" not in skip:
            results["run_rm"] = bench_run(daemons, podman, args.runs, args.warmup, "netdefault" not in skip)
        for label, d in daemons.items():
            if "phases" not in skip:
                results[label]["api_phases_ms"] = bench_phases(d, args.phases)
            time.sleep(1)
            results[label]["1s_after_runs"] = silod_mem(d)
        # silod trims its resident set after 5 s without requests.
        time.sleep(args.idle_wait)
        for label, d in daemons.items():
            results[label]["idle_after_runs"] = silod_mem(d)
        if "monitors" not in skip:
            for label, d in daemons.items():
                results[label]["monitor"] = bench_monitors(d, args.monitors)
        if "scale" not in skip and args.scale > 0:
            d = daemons["silod"]
            results["silod"]["scale"] = bench_scale(d, args.scale, args.parallel, args.scale_network)
            time.sleep(1)
            results["silod"]["1s_after_scale"] = silod_mem(d)
            time.sleep(args.idle_wait)
            results["silod"]["idle_after_scale"] = silod_mem(d)
    finally:
        for d in daemons.values():
            cleanup_daemon(d)
        if podman:
            podman.cleanup()
        for m in reversed(mounts_under(tmp)):
            subprocess.run(["umount", "-l", m], check=False)
        remove_cgroup_tree(cg_root)
        shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    targets = []
    rr = results.get("run_rm", {})
    if "ratio_silod_podman" in rr:
        targets.append(("end to end <= 0.2x podman", rr["ratio_silod_podman"] <= 0.2,
                        f"{rr['ratio_silod_podman']}x ({rr['silod']['median_ms']} vs {rr['podman']['median_ms']} ms)"))
    sd = results["silod"]
    idle = max(sd[k]["rss_mib"] for k in ("idle_startup", "idle_after_runs", "idle_after_scale") if k in sd)
    targets.append(("silod idle RSS <= 10 MiB", idle <= 10, f"{idle} MiB (largest idle figure)"))
    if sd.get("monitor", {}).get("rss_mib_max") is not None:
        m = sd["monitor"]["rss_mib_max"]
        targets.append(("monitor RSS <= 1 MiB", m <= 1, f"{m} MiB (max)"))
    if "scale" in sd:
        s = sd["scale"]
        ok = s["all_running"] and s["run_errors"] == 0 and s["rm_errors"] == 0 and s["containers_left"] == 0 \
            and s["monitors_left"] == 0 and s["mounts_left"] == 0
        targets.append((f"{s['requested']} concurrent containers without errors", ok,
                        f"{s['started']} started, {s['run_errors']} errors, rm errors {s['rm_errors']}, "
                        f"{s['containers_left']} containers / {s['monitors_left']} monitors / "
                        f"{s['mounts_left']} mounts left"))
    for name, ok, what in targets:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {what}")


if __name__ == "__main__":
    main()
