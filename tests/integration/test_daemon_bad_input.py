"""Hostile input against silod: every bad request gets a 4xx with Docker's
{"message": ...} body, silod keeps serving, and clients that leave early
(before an upgrade, or in the middle of a stream) leave nothing behind.

The module's daemon fixture fails the module if silod does not exit 0 on
SIGTERM (under ASan with detect_leaks, a leak changes the exit code) or if
monitors, mounts or cgroups are left behind."""
import json
import os
import socket
import threading
import time
import urllib.parse

import pytest

from daemon_support import daemon, image  # noqa: F401



def q(s):
    return urllib.parse.quote(s, safe="")


def assert_error(resp, statuses):
    status, body, headers = resp
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert status in statuses, (status, body)
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    doc = json.loads(body)
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    return doc["message"]


class Sweep:
    """Collects every wrong answer of a sweep so one run shows them all."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.wrong = []

    def check(self, method, path, statuses, **kw):
        resp = self.daemon.api(method, path, **kw)
        try:
            assert_error(resp, statuses)
        except (AssertionError, ValueError) as e:
            self.wrong.append(f"{method} {path[:120]} {str(kw)[:120]}: {str(e)[:300]}")

    def done(self):
        assert not self.wrong, "\n".join(self.wrong)
        alive(self.daemon)


def alive(daemon):
    assert daemon.proc.poll() is None, open(daemon.log).read()[-3000:]
    assert daemon.api("GET", "/_ping")[0] == 200


def raw_connect(daemon, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(daemon.sock)
    return s


def raw_send(daemon, method, path, body=b"", headers=None, timeout=10):
    s = raw_connect(daemon, timeout)
    hdrs = {"Host": "silod", "Content-Length": str(len(body))}
    if body:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    s.sendall(head.encode() + body)
    return s


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), rest


def tmp_leftovers(daemon):
    return sorted(f for f in os.listdir(os.path.join(daemon.state, "tmp")) if f.startswith(("exec-", "upload-")))


def wait_for(cond, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


@pytest.fixture(scope="module")
def running(daemon, image):  # noqa: F811
    p = daemon.docker("run", "-d", "--name", "bad-input-running", image, "sleep", "1000")
    cid = p.stdout.strip()
    yield cid
    daemon.docker("rm", "-f", cid, check=False)


POST_JSON_ENDPOINTS = [
    "/containers/create",
    "/volumes/create",
    "/networks/create",
    "/auth",
    "/compute/systems?id=badinput",
]


@pytest.mark.parametrize("path", POST_JSON_ENDPOINTS)
def test_malformed_json(daemon, path):
    for raw in (b"{", b"{\"a\":", b"not json", b"\xff\xfe\x00", b"[1,2]", b"\"string\"", b"null"):
        assert_error(daemon.api("POST", path, raw=raw), 400)
    alive(daemon)


@pytest.mark.parametrize("path", POST_JSON_ENDPOINTS)
def test_deep_nesting(daemon, path):
    for raw in (b"[" * 200000, b"{\"a\":" * 50000 + b"1" + b"}" * 50000):
        assert_error(daemon.api("POST", path, raw=raw), 400)
    alive(daemon)


@pytest.mark.parametrize("path", POST_JSON_ENDPOINTS + ["/containers/bad-input-running/exec"])
def test_body_over_limit(daemon, running, path):
    big = b"{\"x\":\"" + b"a" * (2 << 20) + b"\"}"
    msg = assert_error(daemon.api("POST", path, raw=big, timeout=30), 413)
    assert "larger than" in msg
    alive(daemon)


def test_wrong_types(daemon, image, running):  # noqa: F811
    cases = [
        ("/containers/create", {"Image": 5}),
        ("/containers/create", {"Image": image, "Cmd": 5}),
        ("/containers/create", {"Image": image, "Env": "A=1"}),
        ("/containers/create", {"Image": image, "Tty": "yes"}),
        ("/containers/create", {"Image": image, "HostConfig": []}),
        ("/containers/create", {"Image": image, "HostConfig": {"Memory": "lots"}}),
        ("/containers/create", {"Image": image, "HostConfig": {"Binds": [5]}}),
        ("/containers/create", {"Image": image, "Labels": ["a"]}),
        ("/volumes/create", {"Name": 5}),
        ("/volumes/create", {"Name": "v", "Labels": "x"}),
        ("/networks/create", {"Name": ["n"]}),
        ("/networks/create", {"Name": "n", "IPAM": "x"}),
        ("/auth", {"username": 5, "password": "x", "serveraddress": "127.0.0.1:1"}),
        (f"/containers/{running}/exec", {"Cmd": "ls"}),
        (f"/containers/{running}/exec", {"Cmd": [1, 2]}),
        (f"/containers/{running}/exec", {"Cmd": ["true"], "Tty": "no"}),
        (f"/containers/{running}/exec", {"Cmd": ["true"], "ConsoleSize": [1, 2, 3]}),
        (f"/containers/{running}/exec", {"Cmd": ["true"], "ConsoleSize": [-1, 70000]}),
        (f"/containers/{running}/exec", {}),
    ]
    sw = Sweep(daemon)
    for path, body in cases:
        sw.check("POST", path, 400, body=body)
    sw.done()


def test_invalid_names_and_traversal(daemon, image, running):  # noqa: F811
    sw = Sweep(daemon)
    for name in ("../x", "a/b", "/", "..", ".x", "-x", "a" * 300, "x\ny", "a b"):
        sw.check("POST", "/containers/create?name=" + q(name), 400, body={"Image": image})
        sw.check("POST", f"/containers/{running}/rename?name=" + q(name), 400)
    for name in ("../x", "..", "a/b", "/etc", ".", "x" * 300, "a\nb"):
        sw.check("POST", "/volumes/create", 400, body={"Name": name})
        sw.check("GET", "/volumes/" + q(name), (400, 404))
        sw.check("DELETE", "/volumes/" + q(name), (400, 404))
    assert not os.path.exists(os.path.join(daemon.state, "x"))
    for ref in ("../../etc", "..%2F..%2Fetc", "a/../../b", "UPPER", "x@sha256:zz", ":", "@", "a" * 300):
        sw.check("GET", "/images/" + q(ref) + "/json", (400, 404))
        sw.check("DELETE", "/images/" + q(ref), (400, 404))
        sw.check("GET", "/images/" + q(ref) + "/history", (400, 404))
        sw.check("GET", "/images/get?names=" + q(ref), (400, 404))
        sw.check("POST", f"/images/{image}/tag?repo=" + q(ref) + "&tag=x", (400, 404))
        sw.check("POST", "/containers/create", (400, 404), body={"Image": ref})
    for name in ("../x", "a/b", "", "x" * 300):
        sw.check("POST", "/networks/create", (400, 409), body={"Name": name})
    for ref in ("../x", "nope", "a" * 300, "%00"):
        sw.check("GET", "/containers/" + q(ref) + "/json", (400, 404))
        sw.check("GET", "/exec/" + q(ref) + "/json", (400, 404))
        sw.check("GET", "/networks/" + q(ref), (400, 404))
        sw.check("GET", "/compute/systems/" + q(ref), (400, 404))
    for sid in ("../x", "a/b", "..", "x" * 300):
        sw.check("POST", "/compute/systems?id=" + q(sid), (400, 404), body={})
    sw.done()


def test_query_out_of_range(daemon, running):
    cases = [
        ("GET", f"/containers/{running}/logs?stdout=1&tail=-1"),
        ("GET", f"/containers/{running}/logs?stdout=1&tail=abc"),
        ("GET", f"/containers/{running}/logs"),
        ("POST", f"/containers/{running}/resize?h=99999&w=80"),
        ("POST", f"/containers/{running}/resize?h=-1&w=80"),
        ("POST", f"/containers/{running}/resize?h=abc&w=80"),
        ("POST", f"/containers/{running}/kill?signal=NOPE"),
        ("POST", f"/containers/{running}/kill?signal=999"),
        ("POST", f"/containers/{running}/kill?signal=-9"),
        ("POST", f"/containers/{running}/wait?condition=whenever"),
        ("GET", "/containers/json?filters=notjson"),
        ("GET", "/containers/json?filters=" + q('{"status":["zombie"]}')),
        ("GET", "/events?since=garbage"),
        ("GET", "/events?filters=notjson"),
        ("POST", "/containers/prune?filters=" + q('{"until":["garbage"]}')),
        ("POST", "/containers/prune?filters=notjson"),
        ("GET", "/networks?filters=notjson"),
        ("GET", "/volumes?filters=notjson"),
        ("POST", "/compute/systems/nope/shutdown?timeout=abc"),
    ]
    sw = Sweep(daemon)
    for method, path in cases:
        sw.check(method, path, (400, 404, 409, 501))
    sw.done()
    # A stop timeout out of range is refused, not taken as "wait forever".
    assert_error(daemon.api("POST", f"/containers/{running}/stop?t=abc"), 400)
    assert_error(daemon.api("POST", f"/containers/{running}/stop?t=99999999999999999999"), 400)
    assert daemon.api("GET", f"/containers/{running}/json")[0] == 200
    assert json.loads(daemon.api("GET", f"/containers/{running}/json")[1])["State"]["Running"]
    alive(daemon)


def test_odd_paths_and_headers(daemon, running):
    sw = Sweep(daemon)
    for method, path in [("GET", "/containers//json"), ("POST", "/exec//start"), ("GET", "/exec/"),
                         ("POST", "/containers/"), ("GET", "/volumes/"),
                         ("GET", "/compute/systems//processes/x"), ("GET", "/images//json")]:
        sw.check(method, path, (400, 404, 405))
    # ("GET /networks/" lists, as docker does.)
    # Credentials that are not base64 JSON, and registries nobody serves.
    for auth in ("!!!", "e30", "eyJ1c2VybmFtZSI6NX0", "a" * 10000):
        sw.check("POST", "/images/create?fromImage=127.0.0.1:1/nope&tag=x", (400, 401, 404, 500, 502),
                 headers={"X-Registry-Auth": auth})
    sw.check("POST", "/auth", (400, 401, 500, 502),
             body={"username": "u", "password": "p", "serveraddress": "127.0.0.1:1"})
    sw.check("POST", "/images/create?fromSrc=http://127.0.0.1:1/x", (400, 501))
    sw.check("POST", f"/containers/{running}/exec", (400, 501), body={"Cmd": ["true"], "User": "root"})
    sw.done()


def test_too_new_version(daemon):
    assert_error(daemon.api("GET", "/v9.99/version"), 400)
    assert daemon.api("GET", "/v1.41/version")[0] == 200


def test_unknown_routes_and_methods(daemon, running):
    sw = Sweep(daemon)
    # Paths no route serves: 404.
    for method, path in [
        ("GET", "/nope"),
        ("GET", "/containers/nope/nope"),
        ("GET", f"/containers/{running}/nope"),
        ("GET", "/exec/x"),
        ("GET", "/images/"),
        ("GET", "/compute/nope"),
        ("GET", "/" + "a" * 4000),
    ]:
        sw.check(method, path, 404)
    # Known routes asked with the wrong method: 405, as the Docker API answers.
    for method, path in [
        ("PUT", "/containers/create"),
        ("GET", "/containers/create"),
        ("GET", "/containers/prune"),
        ("DELETE", "/version"),
        ("POST", "/info"),
        ("POST", "/events"),
        ("PATCH", "/volumes"),
        ("PUT", "/volumes/create"),
        ("PUT", "/networks"),
        ("GET", "/auth"),
        ("POST", "/system/df"),
        ("POST", f"/containers/{running}/json"),
        ("GET", f"/containers/{running}/start"),
        ("DELETE", f"/containers/{running}/logs"),
        ("GET", "/exec/x/start"),
        ("POST", "/images/json"),
        ("POST", f"/images/{q('busybox:latest')}/json"),
        ("GET", "/images/a/b/c/push"),
        ("PUT", "/compute/systems"),
    ]:
        sw.check(method, path, 405)
    sw.done()
    assert "not allowed" in assert_error(daemon.api("POST", "/info"), 405)


def test_garbage_http(daemon):
    for data in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                 b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        s = raw_connect(daemon)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(65536)
            except OSError:
                pass
        finally:
            s.close()
    alive(daemon)


def _exec_create(daemon, cid, body):
    status, payload, _ = daemon.api("POST", f"/containers/{cid}/exec", body=body)
    assert status == 201, payload
    return json.loads(payload)["Id"]


@pytest.mark.parametrize("tty", [False, True])
def test_exec_client_leaves_before_upgrade(daemon, running, tty):
    """The session and the helper of an exec whose client hung up before the
    upgrade are not leaked: stdin ends, the exec finishes and is recorded."""
    eid = _exec_create(daemon, running, {"Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True,
                                         "AttachStderr": True, "Tty": tty})
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    s = raw_send(daemon, "POST", f"/exec/{eid}/start", body,
                 {"Connection": "Upgrade", "Upgrade": "tcp"})
    s.shutdown(socket.SHUT_RDWR)
    s.close()

    def finished():
        doc = json.loads(daemon.api("GET", f"/exec/{eid}/json")[1])
        return not doc["Running"] and doc["ExitCode"] is not None

    assert wait_for(finished, 15), daemon.api("GET", f"/exec/{eid}/json")
    assert wait_for(lambda: not tmp_leftovers(daemon), 5), tmp_leftovers(daemon)
    alive(daemon)


@pytest.mark.parametrize("tty", [False, True])
def test_exec_client_leaves_after_upgrade(daemon, running, tty):
    eid = _exec_create(daemon, running, {"Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True,
                                         "AttachStderr": True, "Tty": tty})
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    s = raw_send(daemon, "POST", f"/exec/{eid}/start", body, {"Connection": "Upgrade", "Upgrade": "tcp"})
    head, _ = read_head(s)
    assert " 101 " in head.split("\r\n")[0], head
    s.close()

    def finished():
        doc = json.loads(daemon.api("GET", f"/exec/{eid}/json")[1])
        return not doc["Running"]

    assert wait_for(finished, 15)
    assert wait_for(lambda: not tmp_leftovers(daemon), 5), tmp_leftovers(daemon)
    alive(daemon)


def test_exec_start_bad_requests(daemon, running):
    eid = _exec_create(daemon, running, {"Cmd": ["true"]})
    assert_error(daemon.api("POST", f"/exec/{eid}/start", raw=b"{"), 400)
    assert_error(daemon.api("POST", f"/exec/{eid}/start", body={"Detach": "yes"}), 400)
    assert_error(daemon.api("POST", f"/exec/{eid}/start", body={"Detach": False}), 400)      # no upgrade
    assert_error(daemon.api("POST", f"/exec/{eid}/start", body={"Detach": True, "Tty": True}), 400)
    assert_error(daemon.api("POST", f"/exec/{eid}/resize?h=1&w=1"), 409)
    assert_error(daemon.api("POST", f"/exec/{eid}/resize?h=x&w=1"), 400)
    assert daemon.api("POST", f"/exec/{eid}/start", body={"Detach": True})[0] == 200
    assert_error(daemon.api("POST", f"/exec/{eid}/start", body={"Detach": True}), 409)
    alive(daemon)


def test_attach_client_leaves_before_and_during(daemon, image):  # noqa: F811
    # OpenStdin without StdinOnce (`docker create -i` sets StdinOnce, and then the
    # first client that leaves rightly closes cat's stdin): leaving clients must
    # not end the container.
    status, body, _ = daemon.api("POST", "/containers/create",
                                 {"Image": image, "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": False})
    assert status == 201, body
    cid = json.loads(body)["Id"]
    try:
        # Before the upgrade: nothing is kept for the connection.
        for _ in range(5):
            s = raw_send(daemon, "POST", f"/containers/{cid}/attach?stream=1&stdin=1&stdout=1",
                         headers={"Connection": "Upgrade", "Upgrade": "tcp"})
            s.shutdown(socket.SHUT_RDWR)
            s.close()
        # During the stream.
        daemon.docker("start", cid)
        for _ in range(3):
            s = raw_send(daemon, "POST", f"/containers/{cid}/attach?stream=1&stdin=1&stdout=1",
                         headers={"Connection": "Upgrade", "Upgrade": "tcp"})
            head, _ = read_head(s)
            assert " 101 " in head.split("\r\n")[0], head
            s.close()
        alive(daemon)
        doc = json.loads(daemon.api("GET", f"/containers/{cid}/json")[1])
        assert doc["State"]["Running"], doc["State"]
    finally:
        daemon.docker("rm", "-f", cid, check=False)


def test_attach_round_trips_and_ends(daemon, image):  # noqa: F811
    """stdin -> cat -> stdout through a hijacked attach, repeatedly, then the
    container's end ends the stream.  (The latency of the event-driven attach
    thread is a benchmark figure, not asserted here.)"""
    p = daemon.docker("create", "-i", image, "cat")
    cid = p.stdout.strip()
    s = None
    try:
        s = raw_send(daemon, "POST", f"/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1",
                     headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        head, rest = read_head(s)
        assert " 101 " in head.split("\r\n")[0], head
        daemon.docker("start", cid)
        s.settimeout(20)
        buf = bytearray(rest)
        for i in range(12):
            token = f"ping{i}\n".encode()
            s.sendall(token)
            while token not in buf:
                chunk = s.recv(65536)
                assert chunk, "attach stream ended"
                buf += chunk
            del buf[:]
        # Closing stdin ends cat, and the container's end ends the stream.
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    finally:
        if s:
            s.close()
        daemon.docker("rm", "-f", cid, check=False)


def test_streams_client_leaves(daemon, running):
    """Every streaming endpoint survives a client that hangs up mid-stream."""
    paths = [
        ("GET", f"/containers/{running}/logs?stdout=1&stderr=1&follow=1"),
        ("GET", f"/containers/{running}/stats?stream=1"),
        ("GET", "/events"),
        ("POST", f"/containers/{running}/wait"),
        ("GET", "/images/get?names=busybox"),
        ("POST", "/compute/systems/nope/wait"),
    ]
    for method, path in paths:
        for _ in range(3):
            s = raw_send(daemon, method, path)
            try:
                s.recv(10)
            except OSError:
                pass
            s.close()
        alive(daemon)
    # Streams that were still running when their clients left end quietly.
    time.sleep(0.5)
    alive(daemon)


def test_rename_races_with_readers(daemon, image):  # noqa: F811
    """Readers of a container's name (list, inspect, stats, events) while it
    is renamed over and over: no use after free (ASan), always a valid name."""
    p = daemon.docker("create", "--name", "rn-0", image, "true")
    cid = p.stdout.strip()
    stop = threading.Event()
    errors = []

    def reader(path):
        while not stop.is_set():
            try:
                status, body, _ = daemon.api("GET", path)
                if status != 200:
                    errors.append((path, status, body))
            except Exception as e:  # noqa: BLE001
                errors.append((path, e))

    threads = [threading.Thread(target=reader, args=(p,)) for p in
               ("/containers/json?all=1", f"/containers/{cid}/json", "/system/df")]
    for t in threads:
        t.start()
    try:
        for i in range(1, 60):
            status, body, _ = daemon.api("POST", f"/containers/{cid}/rename?name=rn-{i}")
            assert status == 204, body
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    doc = json.loads(daemon.api("GET", f"/containers/{cid}/json")[1])
    assert doc["Name"] == "/rn-59"
    daemon.docker("rm", cid)
    alive(daemon)


def test_uploads_cleaned_up(daemon):
    """A body streamed to a temp file (image load) whose client leaves is
    removed."""
    s = raw_send(daemon, "POST", "/images/load", headers={"Content-Length": str(10 << 20),
                                                         "Content-Type": "application/x-tar"})
    s.sendall(b"\0" * 65536)
    s.close()
    assert wait_for(lambda: not tmp_leftovers(daemon), 5), tmp_leftovers(daemon)
    assert_error(daemon.api("POST", "/images/load", raw=b"not a tarball",
                            headers={"Content-Type": "application/x-tar"}), (400, 500))
    # The temp file goes when the request completes (after the answer).
    assert wait_for(lambda: not tmp_leftovers(daemon), 5), tmp_leftovers(daemon)
    alive(daemon)
