# SPDX-License-Identifier: Apache-2.0
"""silod's /compute/... endpoints (the HCS-shaped compute API over HTTP):
create, start, processes with streamed and hijacked stdio, detached
processes with signal and wait, properties, modify, enumerate, system wait,
terminate and delete; and bad requests.  Uses daemon_support's silod; each
test deletes its systems, and the fixture checks no cgroup or mount is left."""

import json
import os
import shutil
import socket
import struct
import sys

import pytest

from daemon_support import daemon  # noqa: F401 - fixture

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients"))
import silo_images  # noqa: E402


@pytest.fixture(scope="module")
def layer(daemon):
    path = os.path.join(daemon.tmp, "compute-layer")
    os.makedirs(path)
    silo_images.build_busybox_rootfs(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def document(daemon, layer, name, **container):
    scratch = os.path.join(daemon.tmp, name + "-scratch")
    os.makedirs(scratch, exist_ok=True)
    c = {"Storage": {"Layers": [{"Id": "busybox", "Path": layer}], "Path": scratch}}
    c.update(container)
    return {"Owner": "pytest", "SchemaVersion": {"Major": 2, "Minor": 1}, "Container": c}


class System:
    def __init__(self, daemon, layer, sid, **container):
        self.d, self.id = daemon, sid
        status, body, _ = daemon.api("POST", f"/compute/systems?id={sid}",
                                     body=document(daemon, layer, sid, **container))
        assert status == 201, body
        assert json.loads(body) == {"Id": sid}

    def call(self, method, op="", body=None, expect=None, timeout=20):
        path = f"/compute/systems/{self.id}" + (f"/{op}" if op else "")
        status, payload, headers = self.d.api(method, path, body=body, timeout=timeout)
        if expect is not None:
            assert status == expect, (method, path, status, payload)
        return status, (json.loads(payload) if payload else None), headers

    def delete(self):
        status, body, _ = self.d.api("DELETE", f"/compute/systems/{self.id}?force=1", timeout=30)
        assert status == 204, body


def demux(data):
    out, err = b"", b""
    while data:
        stream, length = data[0], struct.unpack(">I", data[4:8])[0]
        payload, data = data[8:8 + length], data[8 + length:]
        if stream == 1:
            out += payload
        else:
            err += payload
    return out, err


def hijack(daemon, path, body):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(daemon.sock)
    data = json.dumps(body).encode()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: silod\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode() + data)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    return s, head.decode(), rest


def test_system_lifecycle_and_processes(daemon, layer):
    sysm = System(daemon, layer, "web", Memory={"SizeInMB": 64})
    try:
        _, props, _ = sysm.call("GET", expect=200)
        assert props["State"] == "Created" and props["Owner"] == "pytest"
        sysm.call("POST", "start", expect=204)
        status, body, _ = daemon.api("GET", "/compute/systems")
        listed = {s["Id"]: s for s in json.loads(body)}
        assert status == 200 and listed["web"]["State"] == "Running"
        q = json.dumps({"Owners": ["nobody"]})
        status, body, _ = daemon.api("GET", "/compute/systems?query=" + q.replace(" ", "%20").replace('"', "%22"))
        assert status == 200 and json.loads(body) == []

        # output streamed in the answer (stdcopy frames), exit code through wait
        status, payload, headers = daemon.api("POST", "/compute/systems/web/processes", body={
            "CommandLine": "sh -c 'echo out; echo err >&2; exit 5'", "CreateStdOutPipe": True,
            "CreateStdErrPipe": True})
        assert status == 200, payload
        assert demux(payload) == (b"out\n", b"err\n")
        pid = int(headers["X-Silo-Process-Id"])
        _, st, _ = sysm.call("POST", f"processes/{pid}/wait?timeout=5000", expect=200)
        assert st == {"ProcessId": pid, "Exited": True, "ExitCode": 5, "TimedOut": False}
        _, st, _ = sysm.call("GET", f"processes/{pid}", expect=200)
        assert st["Exited"] is True and st["ExitCode"] == 5

        # stdin through a hijacked connection; the half-close is stdin's EOF
        s, head, rest = hijack(daemon, "/compute/systems/web/processes",
                               {"CommandArgs": ["tr", "a-z", "A-Z"], "CreateStdInPipe": True,
                                "CreateStdOutPipe": True})
        assert head.startswith("HTTP/1.1 101"), head
        s.sendall(b"hello\n")
        s.shutdown(socket.SHUT_WR)
        data = rest
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        assert demux(data) == (b"HELLO\n", b"")

        # a console: raw output
        s, head, rest = hijack(daemon, "/compute/systems/web/processes",
                               {"CommandArgs": ["sh", "-c", "tty; stty size"], "EmulateConsole": True,
                                "ConsoleSize": [30, 100]})
        assert head.startswith("HTTP/1.1 101"), head
        data = rest
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        assert b"/dev/pts/" in data and b"30 100" in data, data

        # detached: signal, wait with a timeout, then the exit
        _, started, _ = sysm.call("POST", "processes", body={"CommandArgs": ["sleep", "1000"]}, expect=200)
        pid = started["ProcessId"]
        _, st, _ = sysm.call("POST", f"processes/{pid}/wait?timeout=100", expect=200)
        assert st["Exited"] is False and st["TimedOut"] is True
        _, props, _ = sysm.call("POST", "properties", body={"PropertyTypes": ["ProcessList", "Memory"]}, expect=200)
        assert pid in [p["ProcessId"] for p in props["ProcessList"]]
        assert props["Memory"]["SizeInMB"] == 64
        sysm.call("POST", "modify", body={"ResourcePath": "Container/Memory/SizeInMB", "RequestType": "Update",
                                          "Settings": 128}, expect=204)
        _, props, _ = sysm.call("GET", "properties?query=" + '{"PropertyTypes":["Memory"]}'.replace('"', "%22"),
                                expect=200)
        assert props["Memory"]["SizeInMB"] == 128
        sysm.call("POST", f"processes/{pid}/signal", body={"Signal": 9}, expect=204)
        _, st, _ = sysm.call("POST", f"processes/{pid}/wait?timeout=5000", expect=200)
        assert st["ExitCode"] == 137

        # the system's exit notification: a long poll
        _, st, _ = sysm.call("POST", "wait?timeout=100", expect=200)
        assert st["TimedOut"] is True and st["State"] == "Running"
        sysm.call("POST", "pause", expect=204)
        assert sysm.call("GET", expect=200)[1]["State"] == "Paused"
        sysm.call("POST", "resume", expect=204)
        sysm.call("POST", "shutdown?timeout=5000", expect=204)
        _, st, _ = sysm.call("POST", "wait?timeout=5000", expect=200)
        assert st["Stopped"] is True and st["TimedOut"] is False and st["ExitType"] == "GracefulExit"
    finally:
        sysm.delete()
    status, body, _ = daemon.api("GET", "/compute/systems/web")
    assert status == 404, body


def test_terminate(daemon, layer):
    sysm = System(daemon, layer, "term")
    try:
        sysm.call("POST", "start", expect=204)
        sysm.call("POST", "processes", body={"CommandArgs": ["sleep", "1000"]}, expect=200)
        sysm.call("POST", "terminate", expect=204)
        _, st, _ = sysm.call("POST", "wait", expect=200)
        assert st["Stopped"] is True and st["ExitType"] == "ForcedExit"
        status, st, _ = sysm.call("POST", "processes", body={"CommandArgs": ["true"]})
        assert status == 400 and "not Running" in st["message"]
    finally:
        sysm.delete()


def test_bad_requests(daemon, layer):
    status, body, _ = daemon.api("POST", "/compute/systems", body={"Container": {}})
    assert status == 400 and "id" in json.loads(body)["message"]
    status, body, _ = daemon.api("POST", "/compute/systems?id=bad",
                                 body=document(daemon, layer, "bad", Memory={"SizeInMB": "lots"}))
    assert status == 400 and "Container.Memory.SizeInMB" in json.loads(body)["message"], body
    status, body, _ = daemon.api("POST", "/compute/systems?id=bad2", raw=b"{not json")
    assert status == 400, body
    status, body, _ = daemon.api("POST", "/compute/systems?id=" + "a" * 64, body={"Container": {}})
    assert status == 400 and "container id" in json.loads(body)["message"]
    status, body, _ = daemon.api("POST", "/compute/systems/nope/start")
    assert status == 404, body
    status, body, _ = daemon.api("GET", "/compute/nothing")
    assert status == 404
    status, body, _ = daemon.api("POST", "/compute/systems/..%2F..%2Fetc/start")
    assert status in (400, 404) and json.loads(body)["message"], body
    sysm = System(daemon, layer, "bad3")
    try:
        sysm.call("POST", "start", expect=204)
        status, body, _ = sysm.call("POST", "processes", body={"CommandArgs": ["cat"], "CreateStdInPipe": True})
        assert status == 400 and "Upgrade" in body["message"]
        status, body, _ = sysm.call("GET", "processes/notapid")
        assert status == 400
        status, body, _ = sysm.call("GET", "processes/999999")
        assert status == 404, body
        status, body, _ = sysm.call("POST", "modify", body={"ResourcePath": "Container/Nope", "Settings": 1})
        assert status in (400, 501) and body["message"], body
        status, body, _ = sysm.call("POST", "wait?timeout=abc")
        assert status == 400 and "timeout" in body["message"]
    finally:
        sysm.delete()


def test_silo_compute_through_silod(daemon, layer):
    """`silo compute --host` (and `silo -H ... compute`) drive the same API."""
    import subprocess
    from daemon_support import BUILD_DIR
    silo_bin = os.path.join(BUILD_DIR, "src/cli/silo")
    host = "unix://" + daemon.sock

    def run(*args, input=None, front=False):
        argv = [silo_bin, "-H", host, "compute", *args] if front else [silo_bin, "compute", "--host", host, *args]
        env = {k: v for k, v in os.environ.items() if k not in ("SILO_COMPUTE_STATE", "SILO_HOST", "DOCKER_HOST")}
        return subprocess.run([a if isinstance(a, str) else json.dumps(a) for a in argv], input=input,
                              capture_output=True, text=True, timeout=30, env=env)

    p = run("create", "cli1", document(daemon, layer, "cli1"))
    assert p.returncode == 0 and p.stdout == "cli1\n", p.stderr
    try:
        assert run("start", "cli1").returncode == 0
        listed = json.loads(run("list", {"Ids": ["cli1"]}, front=True).stdout)
        assert [s["State"] for s in listed] == ["Running"]
        p = run("exec", "cli1", {"CommandArgs": ["sh", "-c", "cat; echo bye >&2; exit 3"], "CreateStdInPipe": True,
                                 "CreateStdOutPipe": True, "CreateStdErrPipe": True}, input="piped\n")
        assert (p.returncode, p.stdout, p.stderr) == (3, "piped\n", "bye\n")
        p = run("exec", "--detach", "cli1", {"CommandArgs": ["sleep", "1000"]})
        pid = p.stdout.strip()
        assert p.returncode == 0 and pid.isdigit(), p.stderr
        assert json.loads(run("process", "cli1", pid).stdout)["Exited"] is False
        p = run("wait", "--timeout", "0.1", "cli1", pid)
        assert p.returncode == 1 and "still running" in p.stderr
        assert run("process", "cli1", pid, "9").returncode == 0
        assert run("wait", "cli1", pid).stdout == "137\n"
        props = json.loads(run("properties", "cli1", {"PropertyTypes": ["Memory"]}).stdout)
        assert props["State"] == "Running"
        p = run("modify", "cli1", {"ResourcePath": "Container/Nope", "Settings": 1})
        assert p.returncode == 1 and p.stderr.startswith("silo: ")
        assert run("shutdown", "--timeout", "5", "cli1").returncode == 0
        assert run("wait", "cli1").returncode == 0
    finally:
        p = run("delete", "--force", "cli1")
        assert p.returncode == 0, p.stderr
    p = run("start", "cli1")
    assert p.returncode == 1 and "cli1" in p.stderr


def test_virtual_machine_hosting_a_container(daemon, layer):
    """HCS's utility VM over HTTP: a VirtualMachine system, then a Container naming it by
    HostingSystemId, whose processes run in the VM's kernel (docs/VM.md, "Utility VMs")."""
    status, body, _ = daemon.api("POST", "/compute/systems?id=uvm1", body={
        "SchemaVersion": {"Major": 2, "Minor": 1}, "Owner": "pytest",
        "VirtualMachine": {"ComputeTopology": {"Memory": {"SizeInMB": 320}, "Processor": {"Count": 1}}}},
        timeout=90)
    assert status == 201, body
    web = None
    try:
        status, body, _ = daemon.api("POST", "/compute/systems/uvm1/start")
        assert status == 204, body
        doc = document(daemon, layer, "hosted", Memory={"SizeInMB": 48})
        doc["HostingSystemId"] = "uvm1"
        status, body, _ = daemon.api("POST", "/compute/systems?id=hosted", body=doc, timeout=60)
        assert status == 201, body
        web = "hosted"
        status, body, _ = daemon.api("POST", "/compute/systems/hosted/start")
        assert status == 204, body
        status, payload, headers = daemon.api("POST", "/compute/systems/hosted/processes", body={
            "CommandLine": "sh -c 'uname -r; cat /sys/fs/cgroup/memory.max; exit 4'", "CreateStdOutPipe": True,
            "CreateStdErrPipe": True}, timeout=30)
        assert status == 200, payload
        out, err = demux(payload)
        kernel, limit = out.decode().split()
        assert kernel != os.uname().release and limit == str(48 << 20), (out, err)
        pid = int(headers["X-Silo-Process-Id"])
        _, st, _ = daemon.api("POST", f"/compute/systems/hosted/processes/{pid}/wait?timeout=10000")
        assert json.loads(st)["ExitCode"] == 4
        _, body, _ = daemon.api("GET", "/compute/systems/hosted")
        props = json.loads(body)
        assert props["HostingSystemId"] == "uvm1" and props["State"] == "Running"
        _, body, _ = daemon.api("GET", "/compute/systems/uvm1")
        assert json.loads(body)["SystemType"] == "VirtualMachine"
        # Ending the VM ends what it hosts.
        status, body, _ = daemon.api("POST", "/compute/systems/uvm1/terminate", timeout=30)
        assert status == 204, body
        _, st, _ = daemon.api("POST", "/compute/systems/hosted/wait?timeout=10000")
        assert json.loads(st)["Stopped"] is True
    finally:
        for sid in ([web] if web else []) + ["uvm1"]:
            status, body, _ = daemon.api("DELETE", f"/compute/systems/{sid}?force=1", timeout=30)
            assert status == 204, body
