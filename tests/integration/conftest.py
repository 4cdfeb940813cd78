# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the runtime integration tests (test_lifecycle.py, test_mounts.py, ...).

Select the runtime with SILO_RUNTIME (e.g. SILO_RUNTIME=/usr/sbin/runc to check the tests themselves);
by default the silo-runtime in $SILO_BUILD_DIR (default /work/main/build) is tested.

Every test that uses the `rt` fixture gets a private --root state directory and, after the test,
leak checks: no new mounts mentioning the test's paths or container IDs, no cgroup directories left
under the test-owned cgroup parent, nothing left in the state directory, and no process whose root
or cwd is a test bundle or which sits in the test cgroup. Leaks are reported as teardown errors.
The in-container helper itself fails (exit 97) when it finds an fd nobody announced.
"""

import os
import signal
import subprocess
import tempfile
import time

import pytest

import silo_harness as h

MY_FILES = {"test_lifecycle.py", "test_namespaces.py", "test_mounts.py", "test_process.py",
            "test_cgroups.py", "test_hooks.py", "test_terminal.py", "test_security.py",
            "test_bad_input.py", "test_cli.py"}
TEST_TIME_LIMIT = int(os.environ.get("SILO_TEST_TIME_LIMIT", "120"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "silo_only: checks a silo-runtime guarantee that runc does not give; skipped only when "
        "SILO_RUNTIME names another runtime")


def pytest_report_header(config):
    return [f"runtime under test: {h.RUNTIME} (silo: {h.IS_SILO})"]


def pytest_runtest_setup(item):
    if item.get_closest_marker("silo_only") and not h.IS_SILO:
        pytest.skip(f"silo-only guarantee; {h.RUNTIME_NAME} is not silo-runtime")


class TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A per-test wall-clock limit for the runtime tests, so one hang cannot eat the suite."""
    if os.path.basename(str(item.fspath)) not in MY_FILES:
        yield
        return

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded {TEST_TIME_LIMIT}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIME_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---- session-wide resources ----

@pytest.fixture(scope="session")
def session_dir():
    # Not pytest's tmp_path: that is mode 0700, which a container's remapped root could not
    # traverse in the user-namespace tests.
    d = tempfile.mkdtemp(prefix="silo-it-", dir=os.environ.get("SILO_TEST_TMPDIR", "/tmp"))
    os.chmod(d, 0o755)
    yield d
    if not os.environ.get("SILO_TEST_KEEP"):
        safe_rmtree(d)


@pytest.fixture(scope="session")
def helper_binary(session_dir):
    """The static helper: the meson-built one if it is up to date, else compiled here."""
    src = os.path.join(h.SOURCE_DIR, "tests/helper/silo-test-helper.c")
    built = os.environ.get("SILO_TEST_HELPER") or os.path.join(
        h.BUILD_DIR, "tests/helper/silo-test-helper")
    if os.path.exists(built) and (not os.path.exists(src) or
                                  os.path.getmtime(built) >= os.path.getmtime(src)):
        return built
    out = os.path.join(session_dir, "silo-test-helper")
    subprocess.run(["cc", "-O2", "-static", "-D_GNU_SOURCE", "-o", out, src], check=True,
                   timeout=120)
    return out


@pytest.fixture(scope="session")
def rootfs_base(session_dir, helper_binary):
    path = os.path.join(session_dir, "rootfs-base")
    subprocess.run([os.path.join(h.SOURCE_DIR, "tests/lib/mkrootfs.sh"), path, helper_binary],
                   check=True, timeout=120)
    return path


@pytest.fixture(scope="session")
def cgroup_parent():
    """A test-owned cgroup parent (name only, e.g. 'silo-test-1a2b3c') in every hierarchy."""
    name = h.unique_id("silo-test")
    created = []
    for ctrl, mnt in h.cgroup_hierarchies().items():
        path = os.path.join(mnt, name)
        os.mkdir(path)
        created.append(path)
        if ctrl == "cpuset":
            # A new v1 cpuset starts empty and would refuse tasks.
            for f in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(mnt, f)) as src, open(os.path.join(path, f), "w") as dst:
                    dst.write(src.read().strip())
    yield name
    for path in created:
        h.remove_cgroup_tree(path)


@pytest.fixture(scope="session")
def runtime_binary():
    if not os.access(h.RUNTIME, os.X_OK):
        pytest.fail(f"runtime binary {h.RUNTIME} not found or not executable "
                    f"(build it, or set SILO_RUNTIME)")
    return h.RUNTIME


@pytest.fixture(scope="session")
def features(runtime_binary):
    """The runtime's `features` JSON, or {} when it has no such command."""
    try:
        p = subprocess.run([runtime_binary, "features"], capture_output=True, text=True,
                           timeout=h.CMD_TIMEOUT)
        return h.parse_json_output(p.stdout) if p.returncode == 0 else {}
    except (AssertionError, OSError, subprocess.TimeoutExpired):
        return {}


@pytest.fixture
def require_feature(features):
    """Skip when another runtime does not advertise a feature; silo-runtime must support it."""
    def check(description, *path_and_value):
        *path, value = path_and_value
        node = features
        for p in path:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if value in (node or []):
            return
        if h.IS_SILO:
            return  # silo must implement it: let the test run (and fail if it does not)
        pytest.skip(f"{h.RUNTIME_NAME} does not support {description}")
    return check


# ---- per-test resources and leak checks ----

def safe_rmtree(path):
    """rm -rf that never crosses into a mount left under path."""
    for m in sorted(h.read_mountinfo().values(), key=lambda m: -len(m["mount_point"])):
        if m["mount_point"] == path or m["mount_point"].startswith(path + "/"):
            subprocess.run(["umount", "-l", m["mount_point"]], capture_output=True, timeout=30)
    subprocess.run(["rm", "-rf", "--one-file-system", path], capture_output=True, timeout=120)


def _leaked_mounts(before, markers):
    leaks = []
    for mid, m in h.read_mountinfo().items():
        if mid in before:
            continue
        text = m["mount_point"] + " " + m["root"] + " " + m["source"]
        if any(mk in text for mk in markers):
            leaks.append(m)
    return leaks


@pytest.fixture
def rt(request, runtime_binary, session_dir, cgroup_parent, rootfs_base):
    test_dir = tempfile.mkdtemp(prefix="t", dir=session_dir)
    os.chmod(test_dir, 0o755)
    print(f"test dir for {request.node.name}: {test_dir}")
    mounts_before = set(h.read_mountinfo())
    runtime = h.Runtime(runtime_binary, os.path.join(test_dir, "state"))
    runtime.test_dir = test_dir
    runtime.cgroup_parent = cgroup_parent
    runtime.rootfs_base = rootfs_base
    yield runtime

    problems = []
    # 1. Containers the test left behind are not leaks: the test may have failed half-way.
    #    Remove them the way a user would.
    for cid in sorted(runtime.ids):
        if cid in ("", ".", "..") or "/" in cid or "\0" in cid:
            continue
        if os.path.exists(os.path.join(runtime.root, cid)) or runtime.try_state(cid):
            res = runtime.delete(cid, force=True)
            if res.returncode != 0 and runtime.try_state(cid):
                problems.append(f"`delete --force {cid}` failed: {res.stderr.strip()}")

    # 2. Processes: give killed containers a moment to be reaped.
    bundle_dirs = [b.path for b in runtime.bundles] + [b.rootfs for b in runtime.bundles]
    marker_paths = [test_dir] + bundle_dirs
    cgroup_marker = f"/{cgroup_parent}/"
    deadline = time.monotonic() + 5
    procs = h.processes_touching(marker_paths, cgroup_marker)
    while procs and time.monotonic() < deadline:
        time.sleep(0.1)
        procs = h.processes_touching(marker_paths, cgroup_marker)
    for pid, desc in procs.items():
        problems.append(f"leftover process {desc}")
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    # 3. Mounts that mention the test's paths or container IDs.
    markers = [test_dir] + sorted(runtime.ids)
    for m in sorted(_leaked_mounts(mounts_before, markers), key=lambda m: -len(m["mount_point"])):
        problems.append(f"leftover mount: {m['line']}")
        subprocess.run(["umount", "-l", m["mount_point"]], capture_output=True, timeout=30)

    # 4. cgroups under the test-owned parent.
    for ctrl, mnt in h.cgroup_hierarchies().items():
        parent = os.path.join(mnt, cgroup_parent)
        for d in h.cgroup_subdirs(parent):
            problems.append(f"leftover cgroup: {d}")
        for d in h.cgroup_subdirs(parent):
            h.remove_cgroup_tree(d)

    # 5. fds the helper found leaked into a container (its own check, run at every start), in
    #    captured output or in the stdio files of detached containers.
    leaks = list(runtime.fd_leaks)
    for b in runtime.bundles:
        for name in sorted(os.listdir(b.path)) if os.path.isdir(b.path) else []:
            if name.endswith((".out", ".err")):
                with open(os.path.join(b.path, name), errors="replace") as f:
                    leaks += [l.strip() for l in f if "LEAKED-FD" in l]
    for l in dict.fromkeys(leaks):
        problems.append(f"fd leaked into a container: {l}")

    # 6. State directory entries (hidden files such as lock files are allowed).
    if os.path.isdir(runtime.root):
        for entry in os.listdir(runtime.root):
            if not entry.startswith("."):
                problems.append(f"leftover state entry: {os.path.join(runtime.root, entry)}")

    if not os.environ.get("SILO_TEST_KEEP"):
        safe_rmtree(test_dir)
    if problems:
        pytest.fail("LEAK after test:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def make_bundle(rt):
    counter = [0]

    def factory(*args, cid=None):
        counter[0] += 1
        cid = cid or h.unique_id()
        path = os.path.join(rt.test_dir, f"b{counter[0]}")
        b = h.Bundle(path, cid, f"/{rt.cgroup_parent}/{cid}", rt.rootfs_base)
        if args:
            b.args(*args)
        rt.bundles.append(b)
        return b
    return factory


@pytest.fixture
def bundle(make_bundle):
    return make_bundle()


@pytest.fixture
def console(rt):
    """Factory for console-socket servers; closed after the test."""
    sockets = []

    def factory():
        s = h.ConsoleSocket(os.path.join(rt.test_dir, f"console{len(sockets)}.sock"))
        sockets.append(s)
        return s
    yield factory
    for s in sockets:
        s.close()


@pytest.fixture
def host_dir(rt):
    """Factory for host directories (bind-mount sources) inside the test dir, mode 0755."""
    counter = [0]

    def factory(files=None):
        counter[0] += 1
        d = os.path.join(rt.test_dir, f"host{counter[0]}")
        os.makedirs(d, mode=0o755)
        for name, content in (files or {}).items():
            with open(os.path.join(d, name), "w") as f:
                f.write(content)
        return d
    return factory


@pytest.fixture
def cleanup(rt):
    """Register callables to run after the test (before the leak checks of `rt`)."""
    funcs = []
    yield funcs.append
    for fn in reversed(funcs):
        try:
            fn()
        except Exception as e:  # keep cleaning up
            print(f"cleanup failed: {e}")

