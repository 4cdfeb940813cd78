# SPDX-License-Identifier: Apache-2.0
"""GET /events through the real docker CLI: the live stream, --since/--until replay from the
in-memory ring, filters (type, event, container, image, label), container lifecycle, exec and
image events.  Fixtures: daemon_support.py."""

import json
import subprocess
import threading
import time
import urllib.parse

from daemon_support import DOCKER, daemon, image  # noqa: F401 - fixtures


def replay(daemon, since, *args, until=None):
    """Events between since and until (default: now) as dicts, via the CLI."""
    until = until if until is not None else time.time() + 0.5
    p = daemon.docker("events", "--since", f"{since:.6f}", "--until", f"{until:.6f}", "--format", "{{json .}}",
                      *args, timeout=30)
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def actions_for(events, cid):
    return [e["Action"] for e in events if e["Actor"]["ID"] == cid]


class Stream:
    """`docker events` running in the background, lines collected by a thread."""

    def __init__(self, daemon, *args):
        self.proc = subprocess.Popen([DOCKER, "events", "--format", "{{json .}}", *args], env=daemon.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                with self.cond:
                    self.events.append(json.loads(line))
                    self.cond.notify_all()

    def wait_for(self, pred, timeout=15):
        deadline = time.time() + timeout
        with self.cond:
            while not any(pred(e) for e in self.events):
                left = deadline - time.time()
                assert left > 0, f"event not seen; got {self.events}"
                self.cond.wait(left)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=5)


def test_run_rm_lifecycle_live_stream(daemon, image):
    s = Stream(daemon, "--filter", "type=container", "--filter", "container=ev-live")
    try:
        time.sleep(0.3)     # the stream is connected before anything happens
        p = daemon.docker("run", "--rm", "--name", "ev-live", image, "sh", "-c", "exit 3", check=False)
        assert p.returncode == 3
        s.wait_for(lambda e: e["Action"] == "destroy")
    finally:
        s.close()
    acts = [e["Action"] for e in s.events]
    for a in ("create", "attach", "start", "die", "destroy"):
        assert a in acts, acts
    assert acts.index("create") < acts.index("start") < acts.index("die") < acts.index("destroy")
    die = [e for e in s.events if e["Action"] == "die"][0]
    assert die["Type"] == "container" and die["status"] == "die"
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["name"] == "ev-live"
    assert die["Actor"]["Attributes"]["image"] == image and die["from"] == image
    assert die["id"] == die["Actor"]["ID"] and len(die["id"]) == 64
    assert isinstance(die["time"], int) and die["timeNano"] // 10**9 == die["time"]
    assert {e["Actor"]["ID"] for e in s.events} == {die["id"]}


def test_since_until_replay(daemon, image):
    t0 = time.time()
    time.sleep(0.05)
    daemon.docker("run", "--rm", "--name", "ev-replay", image, "true")
    # the poller removes it: wait for destroy in the ring
    deadline = time.time() + 10
    while time.time() < deadline:
        evs = replay(daemon, t0, "--filter", "container=ev-replay")
        if "destroy" in [e["Action"] for e in evs]:
            break
        time.sleep(0.1)
    cid = evs[0]["Actor"]["ID"]
    acts = actions_for(evs, cid)
    assert acts[0] == "create" and acts[-1] == "destroy" and "start" in acts and "die" in acts, acts
    t1 = time.time()
    time.sleep(0.05)
    daemon.docker("create", "--name", "ev-later", image, "true")
    try:
        # until before ev-later: not included; since after ev-replay: not included
        evs = replay(daemon, t0, until=t1)
        assert cid in [e["Actor"]["ID"] for e in evs]
        assert "ev-later" not in [e["Actor"]["Attributes"].get("name") for e in evs]
        evs = replay(daemon, t1)
        assert [e["Actor"]["Attributes"]["name"] for e in evs if e["Type"] == "container"] == ["ev-later"]
        # an until in the past ends at once
        start = time.time()
        daemon.docker("events", "--since", f"{t0:.3f}", "--until", f"{t0 + 0.001:.3f}")
        assert time.time() - start < 5
        # durations are converted by the CLI, to whole seconds: wait for the next one
        time.sleep(1.1)
        evs = [json.loads(x) for x in daemon.docker("events", "--since", "1m", "--until", "0s", "--format",
                                                     "{{json .}}").stdout.splitlines()]
        assert "ev-later" in [e["Actor"]["Attributes"].get("name") for e in evs]
    finally:
        daemon.docker("rm", "ev-later")


def test_filters(daemon, image):
    t0 = time.time()
    daemon.docker("create", "--name", "ev-label", "--label", "silo.test=yes", "--label", "other=1", image, "true")
    daemon.docker("create", "--name", "ev-nolabel", image, "true")
    daemon.docker("tag", image, "ev-tag/bb:1")
    daemon.docker("rmi", "ev-tag/bb:1")
    try:
        evs = replay(daemon, t0, "--filter", "label=silo.test=yes")
        assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in evs] == [("create", "ev-label")]
        evs = replay(daemon, t0, "--filter", "label=silo.test")
        assert {e["Actor"]["Attributes"]["name"] for e in evs} == {"ev-label"}
        evs = replay(daemon, t0, "--filter", "label=silo.test=no")
        assert evs == []
        evs = replay(daemon, t0, "--filter", "type=image")
        acts = [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in evs]
        assert acts == [("tag", "ev-tag/bb:1"), ("untag", "ev-tag/bb:1")], acts
        assert all(e["Type"] == "image" for e in evs)
        evs = replay(daemon, t0, "--filter", "event=untag")
        assert [e["Action"] for e in evs] == ["untag"]
        evs = replay(daemon, t0, "--filter", "event=create", "--filter", "event=tag")
        assert sorted(e["Action"] for e in evs) == ["create", "create", "tag"]
        # image=busybox matches container events by their image, and the image's own events
        evs = replay(daemon, t0, "--filter", "image=busybox", "--filter", "type=container")
        assert {e["Actor"]["Attributes"]["name"] for e in evs} == {"ev-label", "ev-nolabel"}
        # container filter by name and by ID prefix
        evs = replay(daemon, t0, "--filter", "container=ev-nolabel")
        assert {e["Actor"]["Attributes"]["name"] for e in evs} == {"ev-nolabel"}
        cid = evs[0]["Actor"]["ID"]
        evs = replay(daemon, t0, "--filter", f"container={cid[:12]}")
        assert {e["Actor"]["ID"] for e in evs} == {cid}
        # kinds silod has no events for match nothing
        assert replay(daemon, t0, "--filter", "type=network") == []
    finally:
        daemon.docker("rm", "ev-label", "ev-nolabel")


def test_exec_and_stop_events(daemon, image):
    t0 = time.time()
    daemon.docker("run", "-d", "--name", "ev-exec", image, "sleep", "30")
    try:
        p = daemon.docker("exec", "ev-exec", "sh", "-c", "exit 4", check=False)
        assert p.returncode == 4
        daemon.docker("pause", "ev-exec")
        daemon.docker("unpause", "ev-exec")
        daemon.docker("stop", "-t", "1", "ev-exec")
        evs = replay(daemon, t0, "--filter", "container=ev-exec")
        acts = [e["Action"] for e in evs]
        assert "exec_create: sh -c exit 4" in acts and "exec_start: sh -c exit 4" in acts, acts
        die = [e for e in evs if e["Action"] == "exec_die"][0]
        assert die["Actor"]["Attributes"]["exitCode"] == "4" and die["Actor"]["Attributes"]["execID"]
        for a in ("pause", "unpause", "die", "stop"):
            assert a in acts, acts
        assert acts.index("die") < acts.index("stop")
        evs = replay(daemon, t0, "--filter", "event=exec_start")
        assert [e["Action"] for e in evs] == ["exec_start: sh -c exit 4"]
    finally:
        daemon.docker("rm", "-f", "ev-exec")


def test_die_found_by_poller(daemon, image):
    """A container that exits by itself (no API call involved) still gets its die event."""
    t0 = time.time()
    daemon.docker("run", "-d", "--name", "ev-poll", image, "sh", "-c", "sleep 0.3; exit 7")
    try:
        daemon.docker("wait", "ev-poll")
        evs = replay(daemon, t0, "--filter", "container=ev-poll", "--filter", "event=die")
        assert len(evs) == 1 and evs[0]["Actor"]["Attributes"]["exitCode"] == "7"
    finally:
        daemon.docker("rm", "ev-poll")


def test_bad_requests(daemon):
    status, body, _ = daemon.api("GET", "/events?since=yesterday")
    assert status == 400 and "since" in json.loads(body)["message"]
    status, body, _ = daemon.api("GET", "/events?until=12abc")
    assert status == 400
    status, body, _ = daemon.api("GET", "/events?since=20&until=10")
    assert status == 400
    q = urllib.parse.quote(json.dumps({"bogus": ["x"]}))
    status, body, _ = daemon.api("GET", f"/events?filters={q}")
    assert status == 400 and "bogus" in json.loads(body)["message"]
    status, body, _ = daemon.api("GET", "/events?filters=%7Bnot-json")
    assert status == 400
    q = urllib.parse.quote(json.dumps({"type": [1]}))
    status, body, _ = daemon.api("GET", f"/events?filters={q}")
    assert status == 400
    # the old map form of filters is accepted
    q = urllib.parse.quote(json.dumps({"type": {"image": True}}))
    status, body, _ = daemon.api("GET", f"/events?filters={q}&since=1&until=2")
    assert status == 200 and body == b""
    p = daemon.docker("events", "--filter", "nonsense=1", "--until", "0s", check=False)
    assert p.returncode != 0
    assert daemon.api("GET", "/_ping")[0] == 200


def test_client_leaves_stream(daemon, image):
    """Streams whose clients hang up are ended; the daemon keeps serving."""
    procs = [subprocess.Popen([DOCKER, "events"], env=daemon.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(4)]
    time.sleep(0.3)
    for p in procs:
        p.kill()
        p.wait(timeout=5)
    daemon.docker("create", "--name", "ev-after", image, "true")
    daemon.docker("rm", "ev-after")
    assert daemon.api("GET", "/_ping")[0] == 200


def test_volume_events(daemon):
    t0 = time.time()
    daemon.docker("volume", "create", "ev-vol")
    daemon.docker("volume", "rm", "ev-vol")
    evs = replay(daemon, t0, "--filter", "type=volume")
    assert [(e["Action"], e["Actor"]["ID"]) for e in evs] == [("create", "ev-vol"), ("destroy", "ev-vol")]
    assert evs[0]["Actor"]["Attributes"]["driver"] == "local" and "status" not in evs[0]
    assert replay(daemon, t0, "--filter", "volume=other") == []
    assert len(replay(daemon, t0, "--filter", "volume=ev-vol")) == 2


def test_rename_event(daemon, image):
    t0 = time.time()
    daemon.docker("create", "--name", "ev-old", image, "true")
    try:
        daemon.docker("rename", "ev-old", "ev-new")
        evs = replay(daemon, t0, "--filter", "event=rename")
        assert len(evs) == 1
        assert evs[0]["Actor"]["Attributes"]["name"] == "ev-new"
        assert evs[0]["Actor"]["Attributes"]["oldName"] == "/ev-old"
    finally:
        daemon.docker("rm", "ev-new")


def test_shutdown_with_open_stream(daemon, image):
    """SIGTERM ends open event streams: silod exits promptly and cleanly."""
    s = Stream(daemon)
    try:
        time.sleep(0.3)
        start = time.time()
        assert daemon.stop() == 0
        assert time.time() - start < 5
        s.proc.wait(timeout=10)
    finally:
        s.close()
        daemon.start()
    assert daemon.api("GET", "/_ping")[0] == 200
