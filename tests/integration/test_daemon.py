# SPDX-License-Identifier: Apache-2.0
"""silod against the real docker CLI (client only) on a private unix socket.

One silod per module with its own --root, --state, socket and an absolute
test-owned --cgroup-parent; the busybox image is a docker-archive tarball
built offline from busybox-static and loaded with `docker load`.  Teardown
removes every container, stops silod and checks that no monitor process,
mount, cgroup or socket is left behind (fixtures: daemon_support.py).
"""

import datetime
import json
import os
import signal
import socket
import subprocess
import time

from daemon_support import (  # noqa: F401 - fixtures
    CMD_TIMEOUT, DOCKER, daemon, image, monitor_pids)


def test_ping_and_version_negotiation(daemon):
    status, body, headers = daemon.api("GET", "/_ping")
    assert status == 200 and body == b"OK"
    assert headers.get("Api-Version") == "1.43"
    status, body, _ = daemon.api("HEAD", "/_ping")
    assert status == 200
    status, body, _ = daemon.api("GET", "/v1.41/version")
    doc = json.loads(body)
    assert status == 200 and doc["ApiVersion"] == "1.43" and doc["Os"] == "linux"
    status, body, _ = daemon.api("GET", "/v9.99/version")
    assert status == 400 and "too new" in json.loads(body)["message"]


def test_docker_version_and_info(daemon):
    p = daemon.docker("version")
    assert "Server" in p.stdout and "1.43" in p.stdout
    p = daemon.docker("info", "--format", "{{.OSType}} {{.Driver}} {{.CgroupDriver}}")
    assert p.stdout.strip() == "linux overlay cgroupfs"


def test_images_list_inspect_tag_rmi(daemon, image):
    p = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "busybox:latest" in p.stdout.split()
    p = daemon.docker("image", "inspect", "--format", "{{.Os}} {{index .RepoTags 0}}", image)
    assert p.stdout.strip() == "linux busybox:latest"
    daemon.docker("tag", image, "silo-test/copy:1")
    p = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "silo-test/copy:1" in p.stdout.split()
    p = daemon.docker("rmi", "silo-test/copy:1")
    assert "Untagged: silo-test/copy:1" in p.stdout
    p = daemon.docker("image", "inspect", "silo-test/copy:1", check=False)
    assert p.returncode != 0 and "No such image" in p.stderr
    p = daemon.docker("rmi", "no-such-image:1", check=False)
    assert p.returncode != 0 and "No such image" in p.stderr


def test_run_rm_echo(daemon, image):
    p = daemon.docker("run", "--rm", image, "echo", "hi")
    assert p.stdout == "hi\n"
    p = daemon.docker("ps", "-a", "-q")
    assert p.stdout.strip() == ""


def test_parallel_runs(daemon, image):
    procs = [subprocess.Popen([DOCKER, "run", "--rm", image, "sh", "-c", f"echo run{i}; exit {i}"],
                              env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        assert (p.returncode, out) == (i, f"run{i}\n"), err
    assert daemon.docker("ps", "-aq").stdout.strip() == ""
    assert daemon.api("GET", "/_ping")[0] == 200


def test_run_exit_code_and_streams(daemon, image):
    p = daemon.docker("run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert "err\n" in p.stderr


def test_run_config_env_workdir_user_entrypoint(daemon, image):
    p = daemon.docker("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000", image,
                      "sh", "-c", "echo $FOO $(pwd) $(id -u)")
    assert p.stdout == "bar /tmp 1000\n"
    p = daemon.docker("run", "--rm", "--entrypoint", "/bin/echo", image, "a", "b")
    assert p.stdout == "a b\n"


def test_run_with_a_terminal(daemon, image):
    p = daemon.docker("run", "--rm", "-t", image, "sh", "-c", "tty; echo hi; exit 4", check=False)
    assert p.returncode == 4
    # (text mode turns the terminal's \r\n into \n)
    assert p.stdout == "/dev/pts/0\nhi\n"
    cid = daemon.docker("run", "-d", "-t", image, "sh", "-c", "echo x; sleep 100").stdout.strip()
    try:
        deadline = time.time() + 10
        while daemon.docker("logs", cid).stdout != "x\n" and time.time() < deadline:
            time.sleep(0.05)
        raw = subprocess.run([DOCKER, "logs", cid], env=daemon.env, capture_output=True, timeout=CMD_TIMEOUT)
        assert raw.stdout == b"x\r\n"
    finally:
        daemon.docker("rm", "-f", cid)


def test_run_with_stdin(daemon, image):
    p = daemon.docker("run", "-i", "--rm", image, "sh", "-c", "read x; echo got $x; cat; exit 2",
                      input="a\nb\n", check=False)
    assert (p.returncode, p.stdout) == (2, "got a\nb\n"), p.stderr
    p = daemon.docker("run", "-i", "--rm", image, "wc", "-c", input="x" * 100000)
    assert p.stdout.strip() == "100000"


def test_run_interactive_terminal(daemon, image):
    """docker run -it from a real terminal: input through the container's pty."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(daemon.env)
        os.execv(DOCKER, [DOCKER, "run", "-it", "--rm", image, "sh", "-c", "read x; echo got-$x; exit 5"])
    out = b""
    deadline = time.time() + 20
    try:
        os.write(fd, b"hello\r")
        while time.time() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                continue
            try:
                data = os.read(fd, 1024)
            except OSError:     # EIO: the client exited and closed the terminal
                break
            if not data:
                break
            out += data
    finally:
        if time.time() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"got-hello\r\n" in out, out
    assert os.waitstatus_to_exitcode(status) == 5, out


def test_run_missing_executable_fails(daemon, image):
    p = daemon.docker("run", "--rm", image, "/no/such/binary", check=False)
    assert p.returncode != 0
    assert "no/such/binary" in p.stderr


def test_detached_logs_stop_inspect_rm(daemon, image):
    name = "silo-detached"
    daemon.docker("run", "-d", "--name", name, image, "sh", "-c",
                  "echo started; echo warn >&2; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done")
    deadline = time.time() + 10
    while "started" not in daemon.docker("logs", name).stdout and time.time() < deadline:
        time.sleep(0.05)
    p = daemon.docker("ps", "--format", "{{.Names}} {{.State}}")
    assert f"{name} running" in p.stdout
    p = daemon.docker("logs", name)
    assert p.stdout == "started\n" and p.stderr == "warn\n"
    p = daemon.docker("logs", "--tail", "0", name)
    assert p.stdout == "" and p.stderr == ""
    follow = subprocess.Popen([DOCKER, "logs", "-f", name], env=daemon.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    daemon.docker("stop", "-t", "5", name)
    out, _ = follow.communicate(timeout=15)
    assert follow.returncode == 0
    assert out == "started\nbye\n"
    p = daemon.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.Name}}", name)
    assert p.stdout.strip() == f"exited 7 /{name}"
    p = daemon.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}")
    assert f"{name} Exited (7)" in p.stdout
    daemon.docker("rm", name)
    p = daemon.docker("inspect", name, check=False)
    assert p.returncode != 0 and "No such" in p.stderr


def test_exec(daemon, image):
    daemon.docker("run", "-d", "--name", "silo-exec", image, "sleep", "100")
    try:
        p = daemon.docker("exec", "silo-exec", "sh", "-c", "echo in-exec; echo e >&2; exit 3", check=False)
        assert (p.returncode, p.stdout, p.stderr) == (3, "in-exec\n", "e\n")
        p = daemon.docker("exec", "-u", "1000", "-e", "A=b", "-w", "/tmp", "silo-exec",
                          "sh", "-c", "echo $A $(id -u) $(pwd)")
        assert p.stdout == "b 1000 /tmp\n"
        p = daemon.docker("exec", "silo-exec", "/no/such/binary", check=False)
        assert p.returncode == 126 and "/no/such/binary" in p.stderr
        daemon.docker("exec", "-d", "silo-exec", "sh", "-c", "echo detached > /tmp/mark")
        deadline = time.time() + 10
        while daemon.docker("exec", "silo-exec", "cat", "/tmp/mark", check=False).stdout != "detached\n":
            assert time.time() < deadline
            time.sleep(0.05)
        # Bad exec requests.
        cid = daemon.docker("inspect", "-f", "{{.Id}}", "silo-exec").stdout.strip()
        expect_error(daemon, "POST", f"/v1.43/containers/{cid}/exec", 400, "Cmd", body={"Cmd": "ls"})
        expect_error(daemon, "POST", "/v1.43/exec/nope/start", 404, "No such exec instance", body={})
        expect_error(daemon, "GET", "/v1.43/exec/nope/json", 404, "No such exec instance")
    finally:
        daemon.docker("rm", "-f", "silo-exec")
    p = daemon.docker("exec", "silo-exec", "true", check=False)
    assert p.returncode != 0 and "No such container" in p.stderr


def test_kill_and_force_remove(daemon, image):
    daemon.docker("run", "-d", "--name", "silo-kill", image, "sleep", "100")
    p = daemon.docker("rm", "silo-kill", check=False)
    assert p.returncode != 0 and "running" in p.stderr
    daemon.docker("kill", "silo-kill")
    p = daemon.docker("wait", "silo-kill")
    assert p.stdout.strip() == "137"
    daemon.docker("run", "-d", "--name", "silo-force", image, "sleep", "100")
    daemon.docker("rm", "-f", "silo-force", "silo-kill")
    assert daemon.docker("ps", "-aq").stdout.strip() == ""


def test_restart_and_ps_filters(daemon, image):
    daemon.docker("run", "-d", "--name", "silo-restart", image, "sh", "-c", "echo run; sleep 100")
    daemon.docker("create", "--name", "silo-created", image, "true")
    try:
        p = daemon.docker("ps", "-a", "--filter", "name=silo-restart", "--format", "{{.Names}}")
        assert p.stdout.split() == ["silo-restart"]
        p = daemon.docker("ps", "-a", "--filter", "status=created", "--format", "{{.Names}}")
        assert p.stdout.split() == ["silo-created"]
        pid1 = daemon.docker("inspect", "-f", "{{.State.Pid}}", "silo-restart").stdout.strip()
        daemon.docker("restart", "-t", "1", "silo-restart")
        p = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "silo-restart")
        status, pid2 = p.stdout.split()
        assert status == "running" and pid2 != pid1
        deadline = time.time() + 10
        while daemon.docker("logs", "silo-restart").stdout != "run\nrun\n" and time.time() < deadline:
            time.sleep(0.05)
        assert daemon.docker("logs", "silo-restart").stdout == "run\nrun\n"
    finally:
        daemon.docker("rm", "-f", "silo-restart", "silo-created")


def test_pause_unpause(daemon, image):
    daemon.docker("run", "-d", "--name", "silo-pause", image, "sh", "-c",
                  "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done")
    try:
        daemon.docker("pause", "silo-pause")
        p = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "silo-pause")
        assert p.stdout.strip() == "paused true"
        assert "(Paused)" in daemon.docker("ps", "--format", "{{.Status}}").stdout
        p = daemon.docker("pause", "silo-pause", check=False)
        assert p.returncode != 0 and "already paused" in p.stderr
        daemon.stop()       # a restarted silod still knows it is paused
        daemon.start()
        assert "(Paused)" in daemon.docker("ps", "--format", "{{.Status}}").stdout
        daemon.docker("unpause", "silo-pause")
        first = daemon.docker("exec", "silo-pause", "cat", "/tmp/count").stdout
        time.sleep(0.3)
        assert daemon.docker("exec", "silo-pause", "cat", "/tmp/count").stdout != first
        # A paused container still stops.
        daemon.docker("pause", "silo-pause")
        daemon.docker("stop", "-t", "1", "silo-pause")
        p = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "silo-pause")
        assert p.stdout.strip() == "exited false"
    finally:
        daemon.docker("rm", "-f", "silo-pause")


def test_stats(daemon, image):
    daemon.docker("run", "-d", "-m", "64m", "--name", "silo-stats", image, "sh", "-c", "while true; do :; done")
    try:
        p = daemon.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}} {{.CPUPerc}}",
                          "silo-stats")
        name, usage, _, limit, pids, cpu = p.stdout.split()
        assert (name, limit, pids) == ("silo-stats", "64MiB", "1")
        assert float(cpu.rstrip("%")) > 10     # a busy loop
        # The stream: one JSON document per second until the client leaves.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(daemon.sock)
        s.sendall(b"GET /v1.43/containers/silo-stats/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b'"cpu_stats"') < 2:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        s.close()
        assert daemon.api("GET", "/_ping")[0] == 200
    finally:
        daemon.docker("rm", "-f", "silo-stats")


def test_limits_reach_the_cgroup(daemon, image):
    cid = daemon.docker("run", "-d", "-m", "64m", "--pids-limit", "20", image, "sleep", "100").stdout.strip()
    try:
        mem = f"/sys/fs/cgroup/memory{daemon.cgroup_parent}/{cid}/memory.limit_in_bytes"
        pids = f"/sys/fs/cgroup/pids{daemon.cgroup_parent}/{cid}/pids.max"
        with open(mem) as f:
            assert int(f.read()) == 64 * 1024 * 1024
        with open(pids) as f:
            assert f.read().strip() == "20"
    finally:
        daemon.docker("rm", "-f", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/memory{daemon.cgroup_parent}/{cid}")


def test_containers_survive_a_daemon_kill(daemon, image):
    daemon.docker("run", "-d", "--name", "silo-survivor", image, "sh", "-c",
                  "echo one; sleep 1; echo two; sleep 100")
    daemon.stop(signal.SIGKILL)
    time.sleep(1.5)     # "two" is written while silod is down
    daemon.start()
    p = daemon.docker("ps", "--format", "{{.Names}} {{.State}}")
    assert "silo-survivor running" in p.stdout
    assert daemon.docker("logs", "silo-survivor").stdout == "one\ntwo\n"
    daemon.docker("stop", "-t", "1", "silo-survivor")
    p = daemon.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "silo-survivor")
    assert p.stdout.strip() == "exited 137"
    daemon.docker("rm", "silo-survivor")
    # An exit that happens while silod is down is recorded too.
    daemon.docker("run", "-d", "--name", "silo-short", image, "sh", "-c", "sleep 1; exit 5")
    daemon.stop()
    time.sleep(1.5)
    daemon.start()
    p = daemon.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "silo-short")
    assert p.stdout.strip() == "exited 5"
    daemon.docker("rm", "silo-short")


def expect_error(daemon, method, path, status, fragment, **kw):
    got, body, headers = daemon.api(method, path, **kw)
    assert got == status, (got, body)
    assert headers.get("Content-Type") == "application/json"
    msg = json.loads(body)["message"]
    assert fragment in msg, msg


def test_bad_requests(daemon, image):
    expect_error(daemon, "POST", "/v1.43/containers/create", 400, "request body", raw=b"{not json")
    expect_error(daemon, "POST", "/v1.43/containers/create", 400, "expected a JSON object", raw=b"[1]")
    expect_error(daemon, "POST", "/v1.43/containers/create", 400, "Image", body={"Cmd": ["true"]})
    expect_error(daemon, "POST", "/v1.43/containers/create", 400, "Cmd",
                 body={"Image": image, "Cmd": 5})
    expect_error(daemon, "POST", "/v1.43/containers/create", 400, "HostConfig.Memory",
                 body={"Image": image, "HostConfig": {"Memory": "lots"}})
    expect_error(daemon, "POST", "/v1.43/containers/create", 404, "No such image",
                 body={"Image": "nothing-here:1"})
    expect_error(daemon, "POST", "/v1.43/containers/create?name=bad/name", 400, "Invalid container name",
                 body={"Image": image})
    expect_error(daemon, "POST", "/v1.43/containers/create", 413, "larger than",
                 raw=b'{"Image": "' + b"x" * (2 << 20) + b'"}')
    expect_error(daemon, "GET", "/v1.43/containers/nope/json", 404, "No such container: nope")
    expect_error(daemon, "POST", "/v1.43/containers/nope/start", 404, "No such container")
    expect_error(daemon, "DELETE", "/v1.43/containers/nope", 404, "No such container")
    expect_error(daemon, "GET", "/v1.43/images/nope:1/json", 404, "No such image")
    expect_error(daemon, "GET", "/v1.43/no/such/route", 404, "page not found")
    expect_error(daemon, "POST", "/v1.43/images/load", 400, "", raw=b"not a tarball")
    expect_error(daemon, "POST", "/v1.43/containers/create", 400, "invalid isolation",
                 body={"Image": image, "HostConfig": {"Isolation": "sandbox"}})
    # A name conflict, then the daemon still serves.
    status, body, _ = daemon.api("POST", "/v1.43/containers/create?name=silo-dup", body={"Image": image})
    assert status == 201
    cid = json.loads(body)["Id"]
    expect_error(daemon, "POST", "/v1.43/containers/create?name=silo-dup", 409, "already in use",
                 body={"Image": image})
    expect_error(daemon, "POST", f"/v1.43/containers/{cid}/kill", 409, "is not running")
    p = daemon.docker("rmi", image, check=False)
    assert p.returncode != 0 and "conflict" in p.stderr.lower()
    expect_error(daemon, "POST", "/v1.43/containers/create", 400, "OpenStdin",
                 body={"Image": image, "OpenStdin": "yes"})
    assert daemon.api("DELETE", f"/v1.43/containers/{cid}")[0] == 204
    assert daemon.api("GET", "/_ping")[0] == 200


def test_client_disconnect_mid_stream(daemon, image):
    daemon.docker("run", "-d", "--name", "silo-stream", image, "sh", "-c", "while true; do echo x; sleep 0.1; done")
    try:
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(daemon.sock)
            s.sendall(b"GET /v1.43/containers/silo-stream/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            s.close()
        assert daemon.api("GET", "/_ping")[0] == 200
    finally:
        daemon.docker("rm", "-f", "silo-stream")


def test_stop_uses_the_containers_stop_signal_and_timeout(daemon, image):
    name = "stopsig"
    daemon.docker("run", "-d", "--name", name, "--stop-signal", "USR1", "--stop-timeout", "5", image, "sh", "-c",
                  "trap 'echo got-usr1; exit 7' USR1; echo ready; while true; do sleep 0.1; done")
    try:
        deadline = time.time() + 10
        while "ready" not in daemon.docker("logs", name).stdout:
            assert time.time() < deadline
            time.sleep(0.05)
        daemon.docker("stop", name)
        assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "7"
        assert "got-usr1" in daemon.docker("logs", name).stdout
    finally:
        daemon.docker("rm", "-f", name)


def test_logs_timestamps_since_until(daemon, image):
    name = "logtimes"
    daemon.docker("run", "-d", "--name", name, image, "sh", "-c",
                  "echo first; sleep 1.5; echo second; echo third >&2; sleep 100")
    try:
        deadline = time.time() + 10
        while "third" not in daemon.docker("logs", name).stderr:
            assert time.time() < deadline
            time.sleep(0.05)
        p = daemon.docker("logs", "-t", name)
        lines = p.stdout.splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == ["first", "second"]
        stamps = [line.split(" ", 1)[0] for line in lines]
        for s in stamps:
            assert s.endswith("Z") and "T" in s and len(s.split(".")[1]) == 10, s   # 9 digits + Z
        assert p.stderr.split(" ", 1)[1].strip() == "third"
        # The second line came ~1.5 s after the first: a cut between them separates them.
        t0 = datetime.datetime.fromisoformat(stamps[0][:26] + "+00:00").timestamp()
        cut = f"{t0 + 0.7:.9f}"
        p = daemon.docker("logs", "--since", cut, name)
        assert p.stdout.split() == ["second"] and "third" in p.stderr
        p = daemon.docker("logs", "--until", cut, name)
        assert p.stdout.split() == ["first"] and p.stderr == ""
        # --until ends a follow at that time even though the container runs on.
        p = daemon.docker("logs", "-f", "--until", cut, name, timeout=10)
        assert p.stdout.split() == ["first"]
        status, body, _ = daemon.api("GET", f"/containers/{name}/logs?stdout=1&since=yesterday")
        assert status == 400 and "since" in json.loads(body)["message"]
    finally:
        daemon.docker("rm", "-f", name)
