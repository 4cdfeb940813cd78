# SPDX-License-Identifier: Apache-2.0
"""silod with many containers at once: 30 `docker run -d` in parallel, all
running together (one monitor each), then `docker rm -f` of all of them.
The containers run with --network none: the test is about silod's own
table, monitors, mounts and cgroups (networks have their own tests).  The
`daemon` fixture's teardown fails the module if a monitor, mount or cgroup
is left behind; the test itself checks the same right after the
removal, and that silod's exit notifications (a pidfd per monitor) let a
plain `docker run --rm` return promptly while the others run."""

import concurrent.futures
import json
import os
import time

from daemon_support import cgroup_dirs, daemon, image, monitor_pids, mounts_under  # noqa: F401

COUNT = 30
PARALLEL = 6


def _running_ids(daemon):
    return set(daemon.docker("ps", "-q", "--no-trunc").stdout.split())


def test_many_containers_run_together_and_leave_nothing(daemon, image):
    errors = []

    def run_one(i):
        p = daemon.docker("run", "-d", "--network", "none", "--name", f"scale-{i}", image, "sleep",
                          "600", check=False)
        if p.returncode != 0:
            errors.append(p.stderr.strip())
            return None
        return p.stdout.strip()

    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as ex:
        ids = [i for i in ex.map(run_one, range(COUNT)) if i]
    assert not errors, errors[:3]
    assert len(set(ids)) == COUNT

    # All of them running at the same time, each with its own monitor.
    assert set(ids) <= _running_ids(daemon)
    assert len(monitor_pids(daemon.state)) == COUNT
    status, body, _ = daemon.api("GET", "/containers/json")
    assert status == 200
    listed = {c["Id"]: c for c in json.loads(body)}
    for cid in ids:
        assert listed[cid]["State"] == "running"

    # silod holds one pidfd per running monitor, not a thread or a pipe.
    fds = len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))
    assert fds < COUNT + 40, fds

    # A short container next to them: its exit is noticed at once.
    t0 = time.monotonic()
    p = daemon.docker("run", "--rm", "--network", "none", image, "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3, p.stderr
    assert time.monotonic() - t0 < 10

    # Removed in parallel batches: every one goes, nothing is left.
    batches = [ids[i:i + 5] for i in range(0, len(ids), 5)]
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as ex:
        results = list(ex.map(lambda b: daemon.docker("rm", "-f", *b, check=False), batches))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    assert daemon.docker("ps", "-aq").stdout.split() == []

    deadline = time.time() + 10
    while monitor_pids(daemon.state) and time.time() < deadline:
        time.sleep(0.1)
    assert monitor_pids(daemon.state) == []
    assert mounts_under(os.path.join(daemon.state, "containers")) == []
    for cg in cgroup_dirs(daemon.cgroup_parent):
        assert [s for s in os.listdir(cg) if os.path.isdir(os.path.join(cg, s))] == [], cg
    assert os.listdir(os.path.join(daemon.state, "containers")) == []


def test_removed_names_are_free_again(daemon, image):
    # The names of the removed containers can be used again at once.
    ids = [daemon.docker("run", "-d", "--network", "none", "--name", f"scale-{i}", image, "sleep",
                         "600").stdout.strip() for i in range(3)]
    assert set(ids) <= _running_ids(daemon)
    daemon.docker("rm", "-f", *ids)
    assert daemon.docker("ps", "-aq").stdout.split() == []


def test_bad_input_does_not_disturb_running_containers(daemon, image):
    cid = daemon.docker("run", "-d", "--network", "none", image, "sleep", "600").stdout.strip()
    status, body, _ = daemon.api("POST", "/containers/create", raw=b"{not json")
    assert status == 400, body
    assert json.loads(body)["message"]
    status, _, _ = daemon.api("POST", "/containers/nonexistent/kill")
    assert status == 404
    assert cid in _running_ids(daemon)
    daemon.docker("rm", "-f", cid)
