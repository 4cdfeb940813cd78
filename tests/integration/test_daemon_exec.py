# SPDX-License-Identifier: Apache-2.0
"""silod: exec with a terminal and stdin, exec/container resize, attach,
top, rename and prune, driven by the real docker CLI (in a pty where a
terminal is needed) and the raw API for bad input."""

import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import termios
import time
from urllib.parse import quote

from daemon_support import DOCKER, daemon, image  # noqa: F401 - fixtures


def quote_json(doc):
    return quote(json.dumps(doc))


def expect_error(daemon, method, path, status, fragment, body=None):
    got, payload, _ = daemon.api(method, path, body=body)
    assert got == status, (got, payload)
    assert fragment in json.loads(payload)["message"], payload


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """The docker CLI on a pty of ours, like a user at a terminal."""

    def __init__(self, daemon, args, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ.update(daemon.env)
            os.execv(DOCKER, [DOCKER, *args])
        set_size(self.fd, rows, cols)
        self.out = b""
        self.status = None

    def read_until(self, needle, timeout=15):
        deadline = time.time() + timeout
        while needle not in self.out and time.time() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if not r:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:     # EIO: the client exited
                break
            if not data:
                break
            self.out += data
        assert needle in self.out, (needle, self.out)

    def write(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                r, _, _ = select.select([self.fd], [], [], 0.2)
                if r:
                    data = os.read(self.fd, 4096)
                    self.out += data
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(status)
                break
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
        assert self.status is not None, f"the docker client did not exit: {self.out!r}"
        return self.status


def container_id(daemon, name):
    return daemon.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()


def wait_running(daemon, name):
    deadline = time.time() + 10
    while daemon.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != "true":
        assert time.time() < deadline
        time.sleep(0.05)


def test_exec_tty_size_and_resize(daemon, image):
    daemon.docker("run", "-d", "--name", "x-tty", image, "sleep", "100")
    try:
        t = Terminal(daemon, ["exec", "-it", "x-tty", "sh"], rows=33, cols=101)
        t.write(b"stty size; tty\r")
        t.read_until(b"33 101")
        t.read_until(b"/dev/pts/")
        # A resize of our terminal: SIGWINCH to the client, which resizes the exec.
        set_size(t.fd, 40, 120)
        time.sleep(0.3)
        t.write(b"stty size\r")
        t.read_until(b"40 120")
        t.write(b"exit 3\r")
        assert t.wait() == 3, t.out
        assert b"\x01\x00\x00\x00" not in t.out     # raw stream, no stdcopy framing
    finally:
        daemon.docker("rm", "-f", "x-tty")


def test_exec_stdin_and_eof(daemon, image):
    daemon.docker("run", "-d", "--name", "x-in", image, "sleep", "100")
    try:
        p = daemon.docker("exec", "-i", "x-in", "cat", input="hello\nworld\n")
        assert p.stdout == "hello\nworld\n"
        # EOF reaches the process: wc ends and reports every byte.
        data = "x" * 200000
        p = daemon.docker("exec", "-i", "x-in", "wc", "-c", input=data)
        assert p.stdout.strip() == "200000"
        p = daemon.docker("exec", "-i", "x-in", "sh", "-c", "read a; echo got-$a >&2; exit 4",
                          input="line\n", check=False)
        assert (p.returncode, p.stderr) == (4, "got-line\n")
        # Without -i the process gets no stdin (EOF at once).
        p = daemon.docker("exec", "x-in", "cat", input="ignored\n")
        assert p.stdout == ""
    finally:
        daemon.docker("rm", "-f", "x-in")


def test_exec_inspect_and_detached(daemon, image):
    daemon.docker("run", "-d", "--name", "x-insp", image, "sleep", "100")
    try:
        cid = container_id(daemon, "x-insp")
        status, body, _ = daemon.api("POST", f"/v1.43/containers/{cid}/exec",
                                     body={"Cmd": ["sh", "-c", "sleep 1; exit 7"], "AttachStdout": True})
        assert status == 201, body
        eid = json.loads(body)["Id"]
        status, body, _ = daemon.api("GET", f"/v1.43/exec/{eid}/json")
        doc = json.loads(body)
        assert doc["Running"] is False and doc["ExitCode"] is None and doc["ContainerID"] == cid
        assert doc["ProcessConfig"]["entrypoint"] == "sh" and doc["ProcessConfig"]["tty"] is False
        assert doc["OpenStdin"] is False and doc["OpenStdout"] is True
        status, body, _ = daemon.api("POST", f"/v1.43/exec/{eid}/start", body={"Detach": True})
        assert status == 200, body
        deadline = time.time() + 5
        while True:
            doc = json.loads(daemon.api("GET", f"/v1.43/exec/{eid}/json")[1])
            if doc["Pid"] > 0 or time.time() > deadline:
                break
            time.sleep(0.05)
        assert doc["Running"] is True and doc["Pid"] > 0, doc
        with open(f"/proc/{doc['Pid']}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:2] == [b"sh", b"-c"]
        expect_error(daemon, "POST", f"/v1.43/exec/{eid}/start", 409, "already been started", body={"Detach": True})
        deadline = time.time() + 10
        while doc["Running"]:
            assert time.time() < deadline
            time.sleep(0.1)
            doc = json.loads(daemon.api("GET", f"/v1.43/exec/{eid}/json")[1])
        assert doc["ExitCode"] == 7 and doc["Pid"] == 0
        # docker exec -d -t: a terminal nobody reads is still served.
        daemon.docker("exec", "-d", "-t", "x-insp", "sh", "-c", "tty > /tmp/tty-mark")
        deadline = time.time() + 10
        while "/dev/pts/" not in daemon.docker("exec", "x-insp", "cat", "/tmp/tty-mark", check=False).stdout:
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        daemon.docker("rm", "-f", "x-insp")


def test_exec_bad_input(daemon, image):
    daemon.docker("run", "-d", "--name", "x-bad", image, "sleep", "100")
    cid = container_id(daemon, "x-bad")
    try:
        status, body, _ = daemon.api("POST", f"/v1.43/containers/{cid}/exec", body={"Cmd": ["true"]})
        eid = json.loads(body)["Id"]
        expect_error(daemon, "POST", f"/v1.43/exec/{eid}/resize?h=10&w=10", 409, "no terminal")
        status, body, _ = daemon.api("POST", f"/v1.43/containers/{cid}/exec", body={"Cmd": ["sh"], "Tty": True})
        tid = json.loads(body)["Id"]
        expect_error(daemon, "POST", f"/v1.43/exec/{tid}/resize?h=x&w=10", 400, "\"h\"")
        expect_error(daemon, "POST", f"/v1.43/exec/{tid}/resize?h=10", 400, "\"w\"")
        expect_error(daemon, "POST", f"/v1.43/exec/{tid}/resize?h=10&w=70000", 400, "\"w\"")
        expect_error(daemon, "POST", "/v1.43/exec/nope/resize?h=10&w=10", 404, "No such exec")
        expect_error(daemon, "POST", f"/v1.43/exec/{tid}/start", 400, "Tty", body={"Detach": True, "Tty": False})
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/exec", 400, "ConsoleSize",
                     body={"Cmd": ["true"], "ConsoleSize": "big"})
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/exec", 400, "ConsoleSize",
                     body={"Cmd": ["true"], "ConsoleSize": [1, 2, 3]})
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/exec", 400, "Tty",
                     body={"Cmd": ["true"], "Tty": "yes"})
        daemon.docker("stop", "-t", "0", "x-bad")
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/exec", 409, "not running", body={"Cmd": ["true"]})
        # Created while running, started after the stop.
        expect_error(daemon, "POST", f"/v1.43/exec/{eid}/start", 409, "not running", body={"Detach": True})
        p = daemon.docker("exec", "x-bad", "true", check=False)
        assert p.returncode != 0 and "not running" in p.stderr
    finally:
        daemon.docker("rm", "-f", "x-bad")


def test_run_it_starts_at_the_client_size(daemon, image):
    # No wait for the CLI's first resize: HostConfig.ConsoleSize sizes the pty at create.
    t = Terminal(daemon, ["run", "-it", "--rm", image, "stty", "size"], rows=27, cols=77)
    t.read_until(b"27 77")
    assert t.wait() == 0, t.out


def test_run_it_resize(daemon, image):
    t = Terminal(daemon, ["run", "-it", "--name", "r-tty", image, "sh"], rows=30, cols=90)
    try:
        time.sleep(0.5)
        t.write(b"stty size\r")
        t.read_until(b"30 90")
        set_size(t.fd, 45, 132)
        time.sleep(0.3)
        t.write(b"stty size\r")
        t.read_until(b"45 132")
        t.write(b"exit 6\r")
        assert t.wait() == 6, t.out
    finally:
        daemon.docker("rm", "-f", "r-tty")


def test_attach_tty(daemon, image):
    daemon.docker("run", "-dit", "--name", "a-tty", image, "sh")
    try:
        wait_running(daemon, "a-tty")
        t = Terminal(daemon, ["attach", "a-tty"], rows=25, cols=70)
        time.sleep(0.5)
        t.write(b"stty size\r")
        t.read_until(b"25 70")
        t.write(b"exit 4\r")
        assert t.wait() == 4, t.out
        p = daemon.docker("inspect", "-f", "{{.State.ExitCode}}", "a-tty")
        assert p.stdout.strip() == "4"
    finally:
        daemon.docker("rm", "-f", "a-tty")


def test_attach_non_tty(daemon, image):
    daemon.docker("run", "-d", "-i", "--name", "a-in", image, "sh", "-c", "read l; echo got-$l; echo err >&2; exit 2")
    daemon.docker("run", "-d", "--name", "a-out", image, "sh", "-c", "sleep 1; echo late")
    try:
        wait_running(daemon, "a-in")
        p = daemon.docker("attach", "a-in", input="line\n", check=False)
        assert (p.returncode, p.stdout, p.stderr) == (2, "got-line\n", "err\n")
        p = daemon.docker("attach", "a-out", check=False)
        assert (p.returncode, p.stdout) == (0, "late\n")
    finally:
        daemon.docker("rm", "-f", "a-in", "a-out")


def test_container_resize_and_control_socket(daemon, image):
    daemon.docker("run", "-dit", "--name", "rs-tty", image, "sh")
    daemon.docker("run", "-d", "--name", "rs-plain", image, "sleep", "100")
    try:
        wait_running(daemon, "rs-tty")
        cid = container_id(daemon, "rs-tty")
        status, body, _ = daemon.api("POST", f"/v1.43/containers/{cid}/resize?h=20&w=60")
        assert status == 200, body
        p = daemon.docker("exec", "rs-tty", "sh", "-c", "stty size < /proc/1/fd/0")
        assert p.stdout.strip() == "20 60"
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/resize?h=-1&w=60", 400, "\"h\"")
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/resize", 400, "\"h\"")
        expect_error(daemon, "POST", "/v1.43/containers/rs-plain/resize?h=20&w=60", 409, "no TTY")
        # The monitor's control socket: bounded, malformed input refused,
        # and it keeps serving afterwards.
        path = os.path.join(daemon.state, "containers", cid, "control.sock")
        dirfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        short = f"/proc/self/fd/{dirfd}/control.sock"   # the state path exceeds sun_path
        assert os.stat(os.path.join(daemon.state, "containers")).st_mode & 0o077 == 0
        for junk, fragment in ((b"x" * 100000, b"too long"), (b"resize 1\n", b"malformed"),
                               (b"reboot\n", b"malformed"), (b"resize 99999999 1\n", b"malformed")):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(short)
            try:
                s.sendall(junk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = b""
            try:
                while True:
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    reply += chunk
            except ConnectionResetError:
                pass
            s.close()
            assert reply.startswith(b"E") and fragment in reply, (junk[:20], reply)
        # Idle clients cannot block it either.
        idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(6)]
        for s in idle:
            s.connect(short)
        status, body, _ = daemon.api("POST", f"/v1.43/containers/{cid}/resize?h=21&w=61")
        assert status == 200, body
        for s in idle:
            s.close()
        os.close(dirfd)
        p = daemon.docker("exec", "rs-tty", "sh", "-c", "stty size < /proc/1/fd/0")
        assert p.stdout.strip() == "21 61"
        daemon.docker("stop", "-t", "0", "rs-tty")
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/resize?h=20&w=60", 409, "not running")
        assert not os.path.exists(path)
    finally:
        daemon.docker("rm", "-f", "rs-tty", "rs-plain")


def test_top(daemon, image):
    daemon.docker("run", "-d", "--name", "t-top", image, "sh", "-c", "sleep 100 & sleep 101; true")
    try:
        wait_running(daemon, "t-top")
        deadline = time.time() + 5
        while "sleep 100" not in daemon.docker("top", "t-top").stdout:
            assert time.time() < deadline
            time.sleep(0.05)
        p = daemon.docker("top", "t-top")
        lines = p.stdout.splitlines()
        assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        cmds = [line.split(None, 7)[7] for line in lines[1:]]
        assert "sleep 100" in cmds and "sleep 101" in cmds and len(cmds) == 3, p.stdout
        assert not any("silo-monitor" in c or "docker" in c for c in cmds)
        p = daemon.docker("top", "t-top", "-o", "pid,comm")
        lines = p.stdout.splitlines()
        assert lines[0].split() == ["PID", "COMMAND"] and len(lines) == 4
        p = daemon.docker("top", "t-top", "-o", "comm", check=False)
        assert p.returncode != 0 and "PID" in p.stderr
        p = daemon.docker("top", "t-top", "--no-such-ps-option", check=False)
        assert p.returncode != 0 and "ps" in p.stderr
        daemon.docker("stop", "-t", "0", "t-top")
        p = daemon.docker("top", "t-top", check=False)
        assert p.returncode != 0 and "not running" in p.stderr
    finally:
        daemon.docker("rm", "-f", "t-top")


def test_rename(daemon, image):
    daemon.docker("create", "--name", "n-one", image, "true")
    daemon.docker("create", "--name", "n-two", image, "true")
    try:
        cid = container_id(daemon, "n-one")
        daemon.docker("rename", "n-one", "n-renamed")
        p = daemon.docker("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Names}}")
        assert p.stdout.strip() == "n-renamed"
        p = daemon.docker("rename", "n-renamed", "n-two", check=False)
        assert p.returncode != 0 and "already in use" in p.stderr
        p = daemon.docker("rename", "n-renamed", "bad name!", check=False)
        assert p.returncode != 0 and "Invalid container name" in p.stderr
        p = daemon.docker("rename", "n-renamed", "n-renamed", check=False)
        assert p.returncode != 0 and "same name" in p.stderr
        p = daemon.docker("rename", "n-missing", "n-x", check=False)
        assert p.returncode != 0 and "No such container" in p.stderr
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/rename", 400, "empty")
        # The old name is free again, and the new one survives a restart.
        daemon.docker("create", "--name", "n-one", image, "true")
        daemon.stop()
        daemon.start()
        p = daemon.docker("inspect", "-f", "{{.Name}}", cid)
        assert p.stdout.strip() == "/n-renamed"
    finally:
        daemon.docker("rm", "-f", "n-renamed", "n-two", "n-one", check=False)


def test_prune(daemon, image):
    daemon.docker("create", "--name", "p-a", "--label", "prune=yes", image, "true")
    daemon.docker("create", "--name", "p-b", "--label", "prune=no", image, "true")
    daemon.docker("run", "--name", "p-c", image, "true")
    daemon.docker("run", "-d", "--label", "prune=yes", "--name", "p-run", image, "sleep", "100")
    try:
        ids = {n: container_id(daemon, n) for n in ("p-a", "p-b", "p-c", "p-run")}
        p = daemon.docker("container", "prune", "-f", "--filter", "until=1h")
        assert not any(i in p.stdout for i in ids.values()), p.stdout
        p = daemon.docker("container", "prune", "-f", "--filter", "label=prune=yes")
        assert ids["p-a"] in p.stdout and ids["p-b"] not in p.stdout and ids["p-run"] not in p.stdout
        status, body, _ = daemon.api("POST", "/v1.43/containers/prune?filters=" +
                                     quote_json({"label!": {"prune": True}}))
        assert status == 200
        assert json.loads(body)["ContainersDeleted"] == [ids["p-c"]]
        p = daemon.docker("container", "prune", "-f")
        assert ids["p-b"] in p.stdout
        p = daemon.docker("ps", "-a", "--format", "{{.Names}}")
        assert p.stdout.split() == ["p-run"]
        expect_error(daemon, "POST", "/v1.43/containers/prune?filters=" + quote_json({"until": {"soon": True}}),
                     400, "until")
        expect_error(daemon, "POST", "/v1.43/containers/prune?filters=" + quote_json({"color": {"red": True}}),
                     400, "Invalid filter")
        expect_error(daemon, "POST", "/v1.43/containers/prune?filters=%7Bnot-json", 400, "filters")
    finally:
        daemon.docker("rm", "-f", "p-a", "p-b", "p-c", "p-run", check=False)
