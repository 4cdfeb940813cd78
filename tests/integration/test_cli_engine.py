# SPDX-License-Identifier: Apache-2.0
"""The silo CLI's docker-like verbs against a private silod (daemon_support):
run (output, exit code, --rm, -i, -t), run -d + exec + logs + stop + rm, ps and
inspect with --format, images, the rule that picks silod or the local store,
and the error for an unreachable daemon."""

import json
import os
import pty
import re
import select
import subprocess
import time

from daemon_support import BUILD_DIR, CMD_TIMEOUT, daemon, image  # noqa: F401 - fixtures

SILO = os.environ.get("SILO_BIN") or os.path.join(BUILD_DIR, "src/cli/silo")


def silo(daemon, *args, check=True, input=None, env=None, timeout=CMD_TIMEOUT):
    e = dict(os.environ)
    for k in ("SILO_ROOT", "SILO_HOST", "DOCKER_HOST"):
        e.pop(k, None)
    e.update(env or {})
    argv = [SILO, "-H", "unix://" + daemon.sock, *args] if daemon else [SILO, *args]
    p = subprocess.run(argv, capture_output=True, text=True, input=input, env=e, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"silo {' '.join(args)} -> {p.returncode}\nstdout: {p.stdout}\n"
                             f"stderr: {p.stderr}\nsilod log: {open(daemon.log).read()[-3000:] if daemon else ''}")
    return p


def test_unreachable_daemon(tmp_path):
    sock = str(tmp_path / "none.sock")
    e = dict(os.environ, SILO_HOST="unix://" + sock)
    e.pop("SILO_ROOT", None)
    for args in (["ps"], ["images"], ["run", "busybox", "true"]):
        p = subprocess.run([SILO, *args], capture_output=True, text=True, env=e, timeout=CMD_TIMEOUT)
        assert p.returncode != 0, args
        assert f"cannot reach silod at {sock}: No such file or directory (is silod running?)" in p.stderr, p.stderr
    p = subprocess.run([SILO, "-H", "tcp://127.0.0.1:2375", "ps"], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert p.returncode == 1 and "only unix:// sockets are supported" in p.stderr


def test_help_and_usage(daemon):
    p = silo(daemon, "run", "--help")
    assert p.stdout.startswith("usage: silo run [OPTIONS] IMAGE")
    p = silo(daemon, "--help")
    assert "ps" in p.stdout and "--local" in p.stdout and "(silod)" in p.stdout
    p = silo(daemon, "run", check=False)
    assert p.returncode == 2 and "usage: silo run" in p.stderr
    p = silo(daemon, "run", "--memory", "lots", "busybox", check=False)
    assert p.returncode == 2 and "--memory: invalid size 'lots'" in p.stderr


def test_run_output_and_exit_code(daemon, image):
    p = silo(daemon, "run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    assert p.stdout == "out\n" and p.stderr == "err\n"
    # --rm: gone once run returns
    p = silo(daemon, "ps", "-a", "-q", "--no-trunc")
    assert p.stdout.strip() == "" or all(len(x) == 64 for x in p.stdout.split())
    p = silo(daemon, "run", "--rm", "-i", image, "cat", input="hello\nworld\n")
    assert p.stdout == "hello\nworld\n"
    p = silo(daemon, "run", "--rm", "-e", "A=b", "-w", "/tmp", image, "sh", "-c", "echo $A; pwd")
    assert p.stdout == "b\n/tmp\n"
    # a command that does not exist: the exit code says so
    p = silo(daemon, "run", "--rm", image, "/no/such/binary", check=False)
    assert p.returncode in (126, 127), (p.returncode, p.stderr)
    p = silo(daemon, "run", "--rm", "no-such-image:1", "true", check=False)
    assert p.returncode == 125 and "no-such-image" in p.stderr


def test_run_tty(daemon, image):
    pid, fd = pty.fork()
    if pid == 0:
        e = dict(os.environ)
        for k in ("SILO_ROOT", "SILO_HOST", "DOCKER_HOST"):
            e.pop(k, None)
        os.execve(SILO, [SILO, "-H", "unix://" + daemon.sock, "run", "--rm", "-it", image, "sh", "-c",
                         "tty; echo done"], e)
    out = b""
    deadline = time.time() + CMD_TIMEOUT
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if not r:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.WEXITSTATUS(status) == 0, out
    assert b"/dev/pts/" in out and b"done" in out, out


def test_detached_exec_logs_stop_rm(daemon, image):
    p = silo(daemon, "run", "-d", "--name", "web", image, "sh", "-c", "echo started; exec sleep 1000")
    cid = p.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), p.stdout
    try:
        assert silo(daemon, "exec", "web", "echo", "hi").stdout == "hi\n"
        p = silo(daemon, "exec", "web", "sh", "-c", "echo e >&2; exit 7", check=False)
        assert p.returncode == 7 and p.stderr == "e\n"
        assert silo(daemon, "exec", "-i", "web", "cat", input="piped\n").stdout == "piped\n"
        deadline = time.time() + 10
        while "started" not in silo(daemon, "logs", "web").stdout and time.time() < deadline:
            time.sleep(0.1)
        assert silo(daemon, "logs", "web").stdout == "started\n"
        assert silo(daemon, "inspect", "--format", "{{.State.Status}} {{.Name}}", "web").stdout.strip() in (
            "running /web", "running web")
        p = silo(daemon, "ps", "--format", "{{.Names}}|{{.Image}}|{{.State}}")
        assert "web|busybox|running" in p.stdout.splitlines()
        assert silo(daemon, "ps", "-q").stdout.split() == [cid[:12]]
        assert silo(daemon, "stop", "-t", "1", "web").stdout == "web\n"
        assert silo(daemon, "inspect", "-f", "{{.State.Status}}", "web").stdout.strip() == "exited"
        p = silo(daemon, "ps", "--format", "{{.Names}}")
        assert "web" not in p.stdout.split()
        p = silo(daemon, "ps", "-a", "--filter", "name=web", "--format", "{{.Names}} {{.Status}}")
        assert p.stdout.startswith("web Exited (")
        assert silo(daemon, "start", "web").stdout == "web\n"
        assert silo(daemon, "inspect", "-f", "{{.State.Running}}", "web").stdout.strip() == "true"
        p = silo(daemon, "rm", "web", check=False)
        assert p.returncode == 1 and p.stderr.startswith("silo: ")
    finally:
        silo(daemon, "rm", "-f", "web", check=False)
    p = silo(daemon, "inspect", "web", check=False)
    assert p.returncode == 1 and "No such object: web" in p.stderr
    p = silo(daemon, "stop", "web", check=False)
    assert p.returncode == 1 and "web" in p.stderr


def test_wait_and_pause(daemon, image):
    cid = silo(daemon, "run", "-d", image, "sh", "-c", "sleep 0.3; exit 4").stdout.strip()
    try:
        assert silo(daemon, "wait", cid).stdout == "4\n"
        cid2 = silo(daemon, "create", "--name", "paused", image, "sleep", "1000").stdout.strip()
        assert silo(daemon, "inspect", "-f", "{{.State.Status}}", cid2).stdout.strip() == "created"
        silo(daemon, "start", "paused")
        assert silo(daemon, "pause", "paused").stdout == "paused\n"
        assert silo(daemon, "inspect", "-f", "{{.State.Paused}} {{.State.Status}}", "paused").stdout.strip() \
            == "true paused"
        silo(daemon, "unpause", "paused")
        assert silo(daemon, "inspect", "-f", "{{.State.Status}}", "paused").stdout.strip() == "running"
        p = silo(daemon, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "paused")
        assert p.stdout.strip() == "paused 1"
        p = silo(daemon, "stats", "--no-stream", "paused")
        assert p.stdout.splitlines()[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    finally:
        silo(daemon, "rm", "-f", cid, "paused", check=False)


def test_ps_table_and_json_formats(daemon, image):
    silo(daemon, "create", "--name", "fmt1", "-l", "team=a", image, "true")
    try:
        p = silo(daemon, "ps", "-a", "--format", "table {{.Names}}\\t{{.Image}}\\t{{.Labels}}")
        lines = p.stdout.splitlines()
        assert re.match(r"NAMES +IMAGE +LABELS$", lines[0]), lines
        assert any(re.match(r"fmt1 +busybox +team=a$", x) for x in lines[1:]), lines
        p = silo(daemon, "ps", "-a", "--format", "json")
        rows = [json.loads(x) for x in p.stdout.splitlines()]
        assert any(r["Names"] == "fmt1" and r["State"] == "created" for r in rows)
        p = silo(daemon, "ps", "-a")
        assert p.stdout.splitlines()[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                                    "PORTS", "NAMES"]
        p = silo(daemon, "inspect", "-f", "{{json .Config.Labels}} {{index .Config.Labels \"team\"}} "
                 "{{upper .Config.Image}}", "fmt1")
        assert p.stdout == '{"team":"a"} a BUSYBOX\n'
        p = silo(daemon, "inspect", "-f", "{{.Config.Cmd}} {{.Nope}}", "fmt1")
        assert p.stdout == "[true] <no value>\n"
        doc = json.loads(silo(daemon, "inspect", "fmt1").stdout)
        assert isinstance(doc, list) and doc[0]["Name"].lstrip("/") == "fmt1"
        for bad, msg in (("{{.Names", "unclosed action"), ("{{frob .Names}}", 'function "frob" not defined'),
                         ("{{}}", "expected a value")):
            p = silo(daemon, "ps", "--format", bad, check=False)
            assert p.returncode == 1 and msg in p.stderr, (bad, p.stderr)
    finally:
        silo(daemon, "rm", "-f", "fmt1", check=False)


def test_images_and_image_inspect(daemon, image):
    p = silo(daemon, "images")
    assert p.stdout.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(x.split()[:2] == ["busybox", "latest"] for x in p.stdout.splitlines()[1:])
    p = silo(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "busybox:latest" in p.stdout.split()
    p = silo(daemon, "inspect", "--format", "{{.Os}} {{index .RepoTags 0}}", image)
    assert p.stdout.strip() == "linux busybox:latest"
    p = silo(daemon, "image", "inspect", "-f", "{{.Os}}", image)
    assert p.stdout.strip() == "linux"
    silo(daemon, "tag", image, "silo-cli/copy:2")
    assert "silo-cli/copy:2" in silo(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    p = silo(daemon, "rmi", "silo-cli/copy:2")
    assert "Untagged: silo-cli/copy:2" in p.stdout
    p = silo(daemon, "rmi", "silo-cli/copy:2", check=False)
    assert p.returncode == 1 and "No such image" in p.stderr


def test_local_or_daemon_rule(daemon, image, tmp_path):
    """--root / --local / $SILO_ROOT: the store directly; otherwise silod."""
    root = str(tmp_path / "store")
    p = silo(daemon, "--root", root, "images", "--format", "json")
    assert json.loads(p.stdout) == []
    p = silo(daemon, "--local", "--root", root, "images", "-q")
    assert p.stdout == ""
    p = silo(None, "images", "-q", env={"SILO_ROOT": root, "SILO_HOST": "unix://" + daemon.sock})
    assert p.stdout == ""
    p = silo(None, "images", "--format", "{{.Repository}}", env={"SILO_HOST": "unix://" + daemon.sock})
    assert "busybox" in p.stdout.split()
    p = silo(None, "images", "--format", "{{.Repository}}", env={"DOCKER_HOST": "unix://" + daemon.sock})
    assert "busybox" in p.stdout.split()


def test_save_load_push_pull(daemon, image, tmp_path):
    from image_support import Registry
    archive = str(tmp_path / "bb.tar")
    silo(daemon, "save", "-o", archive, image)
    assert os.path.getsize(archive) > 100000
    p = subprocess.run([SILO, "-H", "unix://" + daemon.sock, "save", image], capture_output=True,
                       timeout=CMD_TIMEOUT)        # to stdout (not a terminal here)
    assert p.returncode == 0 and len(p.stdout) == os.path.getsize(archive)
    silo(daemon, "tag", image, "silo-cli/saved:1")
    silo(daemon, "rmi", "silo-cli/saved:1")
    p = silo(daemon, "load", "-i", archive)
    assert "Loaded image: busybox:latest" in p.stdout
    p = silo(daemon, "load", "-i", str(tmp_path / "missing.tar"), check=False)
    assert p.returncode == 1 and "missing.tar" in p.stderr

    reg = Registry(str(tmp_path))
    daemon.forward_to_host(reg.port)
    try:
        ref = f"{reg.host}/silo-cli/busybox:1"
        silo(daemon, "tag", image, ref)
        p = silo(daemon, "push", ref, timeout=60)
        assert "digest: sha256:" in p.stdout, p.stdout
        silo(daemon, "rmi", ref)
        p = silo(daemon, "pull", ref, timeout=60)
        assert "Status: Downloaded newer image for " + ref in p.stdout, p.stdout
        assert silo(daemon, "run", "--rm", ref, "echo", "pulled").stdout == "pulled\n"
        p = silo(daemon, "pull", f"{reg.host}/silo-cli/none:1", check=False, timeout=60)
        assert p.returncode == 1 and p.stderr.startswith("silo: "), p.stderr
        silo(daemon, "rmi", ref)
    finally:
        reg.stop()


def test_top_and_events(daemon, image):
    since = time.time()
    cid = silo(daemon, "run", "-d", "--name", "topme", image, "sleep", "1000").stdout.strip()
    try:
        p = silo(daemon, "top", "topme")
        assert p.stdout.splitlines()[0].split()[0] == "UID" or "PID" in p.stdout.splitlines()[0]
        assert "sleep 1000" in p.stdout
    finally:
        silo(daemon, "rm", "-f", "topme")
    until = time.time() + 1
    p = silo(daemon, "events", "--since", f"{since:.6f}", "--until", f"{until:.6f}",
             "--filter", f"container={cid}", "--format", "{{.Type}} {{.Action}}")
    actions = p.stdout.split("\n")
    assert "container create" in actions and "container start" in actions and "container destroy" in actions, actions
    p = silo(daemon, "events", "--since", f"{since:.6f}", "--until", f"{until:.6f}", "--filter",
             f"container={cid}")
    assert cid in p.stdout and "(image=busybox" in p.stdout and "name=topme" in p.stdout, p.stdout
