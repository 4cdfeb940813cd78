# SPDX-License-Identifier: Apache-2.0
"""Restart policies through the real docker CLI: on-failure with a maximum,
always with Docker's backoff, docker stop/kill suppressing restarts, and
what silod does at its own start (always comes back, unless-stopped only
if the user did not stop it)."""

import json
import os
import signal
import time

from daemon_support import daemon, image  # noqa: F401 - fixtures


def inspect(daemon, cid):
    return json.loads(daemon.docker("inspect", cid).stdout)[0]


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_on_failure_restarts_exactly_max_times(daemon, image):
    cid = daemon.docker("run", "-d", "--restart", "on-failure:2", image, "sh", "-c", "echo run; exit 3").stdout.strip()
    assert wait_for(lambda: inspect(daemon, cid)["RestartCount"] == 2 and
                    not inspect(daemon, cid)["State"]["Running"])
    time.sleep(1.0)  # well past the next backoff step: no third restart
    doc = inspect(daemon, cid)
    assert doc["RestartCount"] == 2 and doc["State"]["ExitCode"] == 3 and doc["State"]["Status"] == "exited"
    assert daemon.docker("logs", cid).stdout == "run\n" * 3
    # A successful exit is not restarted by on-failure.
    ok = daemon.docker("run", "-d", "--restart", "on-failure", image, "true").stdout.strip()
    time.sleep(0.6)
    assert inspect(daemon, ok)["RestartCount"] == 0
    # docker start resets the count.
    daemon.docker("start", cid)
    assert wait_for(lambda: inspect(daemon, cid)["RestartCount"] == 2 and
                    not inspect(daemon, cid)["State"]["Running"])
    daemon.docker("rm", "-f", cid, ok)


def test_always_backs_off_and_stop_suppresses(daemon, image):
    cid = daemon.docker("run", "-d", "--restart", "always", image, "true").stdout.strip()
    # Between runs it waits out its backoff as "restarting".
    assert wait_for(lambda: inspect(daemon, cid)["State"]["Restarting"], timeout=3)
    assert inspect(daemon, cid)["State"]["Status"] in ("restarting", "running")
    time.sleep(1.3)
    # 100 + 200 + 400 + 800 ms (+ the run times): a handful of restarts, not dozens.
    count = inspect(daemon, cid)["RestartCount"]
    assert 2 <= count <= 7, count
    daemon.docker("stop", cid)
    count = inspect(daemon, cid)["RestartCount"]
    time.sleep(1.0)
    doc = inspect(daemon, cid)
    assert doc["RestartCount"] == count and not doc["State"]["Running"]
    daemon.docker("rm", "-f", cid)
    # docker kill also leaves it stopped.
    cid = daemon.docker("run", "-d", "--restart", "always", image, "sleep", "30").stdout.strip()
    daemon.docker("kill", cid)
    time.sleep(0.8)
    doc = inspect(daemon, cid)
    assert not doc["State"]["Running"] and doc["RestartCount"] == 0
    daemon.docker("rm", "-f", cid)


def test_a_crash_restarts_a_long_running_container(daemon, image):
    cid = daemon.docker("run", "-d", "--restart", "unless-stopped", image, "sleep", "30").stdout.strip()
    pid = inspect(daemon, cid)["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: inspect(daemon, cid)["RestartCount"] == 1 and inspect(daemon, cid)["State"]["Running"])
    assert inspect(daemon, cid)["State"]["Pid"] != pid
    daemon.docker("rm", "-f", cid)


def test_policies_at_silod_start(daemon, image):
    always = daemon.docker("run", "-d", "--restart", "always", image, "sleep", "30").stdout.strip()
    stopped_always = daemon.docker("run", "-d", "--restart", "always", image, "sleep", "30").stdout.strip()
    unless = daemon.docker("run", "-d", "--restart", "unless-stopped", image, "sleep", "30").stdout.strip()
    stopped_unless = daemon.docker("run", "-d", "--restart", "unless-stopped", image, "sleep", "30").stdout.strip()
    plain = daemon.docker("run", "-d", image, "sleep", "30").stdout.strip()
    daemon.docker("stop", "-t", "0", stopped_always, stopped_unless)
    victims = [inspect(daemon, c)["State"]["Pid"] for c in (always, unless, plain)]
    daemon.stop()
    # The containers die while silod is down.
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    daemon.start()

    def running(c):
        return inspect(daemon, c)["State"]["Running"]
    assert wait_for(lambda: running(always) and running(stopped_always) and running(unless))
    time.sleep(0.5)
    assert not running(stopped_unless) and not running(plain)
    assert inspect(daemon, plain)["State"]["ExitCode"] == 137
    daemon.docker("rm", "-f", always, stopped_always, unless, stopped_unless, plain)
