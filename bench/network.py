#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Container networking benchmark (issue 5).

  1. setup + teardown of a bridged container network: silo in-process (bench/net_bench.c linked
     against libsilo: veth, address, route, rules, lease, then all removed), the `silo network`
     CLI (adds one exec per step), and podman's netavark (`podman run --network bridge` minus
     `podman run --network none`, same image and command);
  2. TCP throughput container <-> container on silo0 vs the host's loopback (iperf3).

Everything runs inside network namespaces created here (one plays the host); nothing leaves the
machine and everything is deleted at the end.  Run as root from the repository root:

    bench/network.py [-n CYCLES] [--podman-runs N] [--seconds S] [--json OUT]
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("SILO_BUILD_DIR", os.path.join(ROOT, "build"))
SILO = os.environ.get("SILO_BIN") or os.path.join(BUILD, "src/cli/silo")


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def build_net_bench(tmp):
    exe = os.path.join(tmp, "net_bench")
    libs = sh("pkg-config", "--libs", "jansson", "libseccomp", "libcap", "libmnl", "libnftables",
              "libcrypto", "libarchive", "libcurl", "zlib", "libzstd").stdout.split()
    sh("cc", "-O2", "-D_GNU_SOURCE", f"-I{ROOT}/src/lib", f"-I{BUILD}", "-o", exe,
       os.path.join(ROOT, "bench/net_bench.c"), f"{BUILD}/src/lib/libsilo.a", f"{BUILD}/src/lib/libsilo-core.a",
       *libs, "-lpthread")
    return exe


class Host:
    def __init__(self):
        self.ns = f"silob-{secrets.token_hex(3)}"
        self.procs = []
        sh("ip", "netns", "add", self.ns)
        self.x("ip", "link", "set", "lo", "up")

    def x(self, *args, **kw):
        return sh("ip", "netns", "exec", self.ns, *args, **kw)

    def container(self):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, "unshare", "-n", "sleep", "600"])
        self.procs.append(p)
        host_ino = os.stat(f"/run/netns/{self.ns}").st_ino
        for _ in range(500):
            try:
                if (os.readlink(f"/proc/{p.pid}/exe").endswith("sleep")
                        and os.stat(f"/proc/{p.pid}/ns/net").st_ino != host_ino):
                    return p.pid
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("container did not start")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        sh("ip", "netns", "del", self.ns, check=False)


def bench_silo_lib(exe, cycles, ports, own_netns=False):
    host = Host()
    state = tempfile.mkdtemp(prefix="silo-bench-net-")
    try:
        pid = "netns" if own_netns else host.container()
        host.x(exe, state, str(pid), "3", *ports)       # warm-up: bridge, table
        out = host.x(exe, state, str(pid), str(cycles), *ports).stdout.split()
        attach = [float(v) / 1000 for v in out[0::2]]
        detach = [float(v) / 1000 for v in out[1::2]]
        total = [a + d for a, d in zip(attach, detach)]
        return {"attach_ms": statistics.median(attach), "detach_ms": statistics.median(detach),
                "total_ms": statistics.median(total), "total_p90_ms": pct(total, 0.9)}
    finally:
        host.close()
        shutil.rmtree(state, ignore_errors=True)


def bench_silo_cli(cycles):
    host = Host()
    state = tempfile.mkdtemp(prefix="silo-bench-net-")
    env = dict(os.environ, SILO_NETWORK_DIR=state, SILO_NETWORK_SUBNET="10.211.9.0/24")
    try:
        pid = host.container()
        total = []
        for i in range(cycles + 3):
            t0 = time.perf_counter()
            host.x(SILO, "network", "connect", "--id", f"c{i}", "-p", "8080:80", str(pid), env=env)
            host.x(SILO, "network", "disconnect", f"c{i}", env=env)
            if i >= 3:
                total.append((time.perf_counter() - t0) * 1000)
        # What two execs of the CLI cost by themselves, to read the figure above.
        t0 = time.perf_counter()
        for _ in range(cycles):
            host.x(SILO, "--version")
        exec_ms = (time.perf_counter() - t0) * 1000 / cycles * 2
        return {"total_ms": statistics.median(total), "two_execs_ms": exec_ms}
    finally:
        host.close()
        shutil.rmtree(state, ignore_errors=True)


def remove_cgroup_tree(name):
    """Removes /<name> (and what podman nested below it) from every v1 hierarchy."""
    base = "/sys/fs/cgroup"
    for ctrl in os.listdir(base):
        top = os.path.join(base, ctrl, name)
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def bench_podman(runs):
    if not shutil.which("podman"):
        return {"skipped": "podman not installed"}
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        return {"skipped": "busybox-static not installed"}
    host = Host()
    tmp = tempfile.mkdtemp(prefix="silo-bench-podman-")
    cgroup = f"silo-bench-net-{secrets.token_hex(3)}"
    for d in ("root", "runroot", "tmp", "net"):
        os.makedirs(os.path.join(tmp, d))
    nofile = sh("sh", "-c", "ulimit -Hn").stdout.strip()
    # podman 4.3 caps its own RLIMIT_NPROC at 32768; the host forbids raising hard limits.
    with open(os.path.join(tmp, "containers.conf"), "w") as f:
        f.write(f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "{tmp}/tmp"
[network]
network_config_dir = "{tmp}/net"
""")
    env = dict(os.environ, CONTAINERS_CONF=os.path.join(tmp, "containers.conf"))
    # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
    base = ["nsenter", f"--net=/run/netns/{host.ns}", "podman", "--root", f"{tmp}/root",
            "--runroot", f"{tmp}/runroot", "--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"]
    run = base + ["run", "--rm", "--cgroup-parent", f"/{cgroup}"]
    try:
        rootfs = os.path.join(tmp, "rootfs")
        os.makedirs(f"{rootfs}/bin")
        shutil.copy(busybox, f"{rootfs}/bin/busybox")
        os.symlink("busybox", f"{rootfs}/bin/true")
        sh("tar", "-C", rootfs, "-cf", f"{tmp}/rootfs.tar", ".")
        sh(*base, "import", f"{tmp}/rootfs.tar", "silo-bench-busybox", env=env)
        times = {"none": [], "bridge": []}
        for mode in ("none", "bridge"):
            sh(*run, "--network", mode, "silo-bench-busybox", "/bin/true", env=env)   # warm-up
        for _ in range(runs):   # interleaved, so that load changes hit both alike
            for mode in ("none", "bridge"):
                t0 = time.perf_counter()
                sh(*run, "--network", mode, "silo-bench-busybox", "/bin/true", env=env)
                times[mode].append((time.perf_counter() - t0) * 1000)
        backend = sh(*base, "info", "--format", "{{.Host.NetworkBackend}}", check=False, env=env).stdout.strip()
        none, bridge = statistics.median(times["none"]), statistics.median(times["bridge"])
        return {"backend": backend, "run_none_ms": none, "run_bridge_ms": bridge, "network_ms": bridge - none}
    finally:
        sh(*base, "rm", "-af", check=False, env=env)
        sh(*base, "rmi", "-af", check=False, env=env)
        host.close()
        remove_cgroup_tree(cgroup)
        shutil.rmtree(tmp, ignore_errors=True)


def iperf_gbits(prefix_server, prefix_client, addr, seconds):
    srv = subprocess.Popen(prefix_server + ["iperf3", "-s", "-1", "-p", "5201"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            p = sh(*prefix_client, "iperf3", "-c", addr, "-p", "5201", "-t", str(seconds), "-J", check=False)
            result = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
            if p.returncode == 0 and "error" not in result:
                return result["end"]["sum_received"]["bits_per_second"] / 1e9
            time.sleep(0.05)
        raise RuntimeError("iperf3 client failed")
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()


def bench_throughput(seconds):
    if not shutil.which("iperf3"):
        return {"skipped": "iperf3 not installed"}
    host = Host()
    state = tempfile.mkdtemp(prefix="silo-bench-net-")
    env = dict(os.environ, SILO_NETWORK_DIR=state, SILO_NETWORK_SUBNET="10.211.9.0/24")
    try:
        hx = ["ip", "netns", "exec", host.ns]
        result = {"loopback_gbit_s": iperf_gbits(hx, hx, "127.0.0.1", seconds)}
        # The default network (MTU 1500, like Docker's) and one with a loopback-like MTU.
        host.x(SILO, "network", "create", "--mtu", "65520", "jumbo", env=env)
        for net in ("silo0", "jumbo"):
            a, b = host.container(), host.container()
            host.x(SILO, "network", "connect", "--network", net, "--id", f"{net}-a", str(a), env=env)
            ib = json.loads(host.x(SILO, "network", "connect", "--network", net, "--id", f"{net}-b", str(b),
                                   env=env).stdout)
            gbits = iperf_gbits(["nsenter", "-t", str(b), "-n"], ["nsenter", "-t", str(a), "-n"], ib["ip"], seconds)
            result[f"{net}_gbit_s"] = gbits
            result[f"{net}_ratio"] = gbits / result["loopback_gbit_s"]
            host.x(SILO, "network", "disconnect", f"{net}-a", f"{net}-b", env=env)
        return result
    finally:
        host.close()
        shutil.rmtree(state, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--cycles", type=int, default=50)
    ap.add_argument("--podman-runs", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=3, help="iperf3 duration")
    ap.add_argument("--skip", default="", help="comma list of lib,cli,podman,iperf")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    skip = set(filter(None, args.skip.split(",")))
    results = {}
    tmp = tempfile.mkdtemp(prefix="silo-bench-build-")
    try:
        if "lib" not in skip:
            exe = build_net_bench(tmp)
            results["silo_lib"] = bench_silo_lib(exe, args.cycles, [])
            results["silo_lib_1port"] = bench_silo_lib(exe, args.cycles, ["8080:80"])
            # What silod does: its own namespace per container, release + unmount.
            results["silod_path"] = bench_silo_lib(exe, args.cycles, [], own_netns=True)
            results["silod_path_1port"] = bench_silo_lib(exe, args.cycles, ["8080:80"], own_netns=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if "cli" not in skip:
        results["silo_cli_1port"] = bench_silo_cli(args.cycles)
    if "podman" not in skip:
        results["podman"] = bench_podman(args.podman_runs)
    if "iperf" not in skip:
        results["throughput"] = bench_throughput(args.seconds)

    for name, r in results.items():
        print(f"{name:16s} " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in r.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
