# SPDX-License-Identifier: Apache-2.0
"""silod's optional TCP listener: HTTPS with mutual TLS only.  Certificates
come from openssl in the test; the docker CLI connects with --tlsverify, and
clients without a certificate (or with one from another CA) are refused."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest

from daemon_support import DOCKER, SILOD, Daemon, daemon, image  # noqa: F401 - fixtures


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", cwd=d)


def make_cert(d, ca, name, ext):
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}-key.pem",
            "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="silod-tls-")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    make_cert(d, "ca", "client", "extendedKeyUsage=clientAuth\n")
    make_cert(d, "other-ca", "stranger", "extendedKeyUsage=clientAuth\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_daemon(daemon, image, pki):
    """The module's silod restarted with a TLS TCP listener next to its socket."""
    port = free_port()
    daemon.stop()
    daemon.extra_args = ["--host", f"tcp://127.0.0.1:{port}", "--tlsverify",
                         "--tlscacert", os.path.join(pki, "ca.pem"), "--tlscert", os.path.join(pki, "server.pem"),
                         "--tlskey", os.path.join(pki, "server-key.pem")]
    daemon.start()
    daemon.tcp = f"tcp://127.0.0.1:{port}"
    daemon.port = port
    yield daemon
    daemon.stop()
    daemon.extra_args = []
    daemon.start()      # as the fixture's teardown expects it


def tls_docker(daemon, pki, *args, cert="client", check=True):
    env = dict(daemon.env)
    env.pop("DOCKER_HOST", None)
    p = subprocess.run([*daemon.in_netns(), DOCKER, "-H", daemon.tcp, "--tlsverify",
                        "--tlscacert", os.path.join(pki, "ca.pem"), "--tlscert", os.path.join(pki, f"{cert}.pem"), "--tlskey", os.path.join(pki, f"{cert}-key.pem"),
                        *args], env=env, capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, (p.stdout, p.stderr)
    return p


def raw_request(daemon, pki, cert=None):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, f"{cert}.pem"), os.path.join(pki, f"{cert}-key.pem"))
    with daemon.connect_tcp("127.0.0.1", daemon.port) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            return f"TLS error: {e}".encode()


def test_docker_cli_over_mutual_tls(tls_daemon, pki):
    p = tls_docker(tls_daemon, pki, "version", "--format", "{{.Server.APIVersion}}")
    assert p.stdout.strip() == "1.43"
    p = tls_docker(tls_daemon, pki, "run", "--rm", "busybox", "echo", "over-tls")
    assert p.stdout == "over-tls\n"
    p = tls_docker(tls_daemon, pki, "images", "--format", "{{.Repository}}")
    assert "busybox" in p.stdout.split()
    # Hijacked streams over TLS: exec with stdin.  (Not its EOF: libmicrohttpd's
    # TLS upgrade forwarding does not pass the client's half-close on; see DAEMON.md.)
    tls_docker(tls_daemon, pki, "run", "-d", "--name", "tls-exec", "busybox", "sleep", "100")
    try:
        p = subprocess.run([*tls_daemon.in_netns(), DOCKER, "-H", tls_daemon.tcp, "--tlsverify", "--tlscacert", os.path.join(pki, "ca.pem"),
                            "--tlscert", os.path.join(pki, "client.pem"), "--tlskey",
                            os.path.join(pki, "client-key.pem"), "exec", "-i", "tls-exec", "sh", "-c",
                            "read l; echo $l; exit 3"], input="via-tls\n", capture_output=True, text=True, timeout=30)
        assert (p.returncode, p.stdout) == (3, "via-tls\n"), p.stderr
    finally:
        tls_docker(tls_daemon, pki, "rm", "-f", "tls-exec")
    # The unix socket keeps working next to it.
    assert tls_daemon.docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.43"


def test_client_without_certificate_is_refused(tls_daemon, pki):
    # The handshake asks for a certificate; a request without one gets 403.
    reply = raw_request(tls_daemon, pki)
    assert reply.startswith(b"HTTP/1.1 403"), reply
    assert "client certificate is required" in json.loads(reply.split(b"\r\n\r\n", 1)[1])["message"]
    reply = raw_request(tls_daemon, pki, cert="stranger")
    assert reply.startswith(b"HTTP/1.1 403") and b"NOT trusted" in reply, reply
    p = tls_docker(tls_daemon, pki, "version", cert="stranger", check=False)
    assert p.returncode != 0
    # A plain-HTTP client gets nothing either.
    with tls_daemon.connect_tcp("127.0.0.1", tls_daemon.port) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert b"OK" not in data or b"200" not in data
    assert raw_request(tls_daemon, pki, cert="client").split(b"\r\n")[0].endswith(b"200 OK")


def test_tcp_without_tls_is_refused(pki):
    tmp = tempfile.mkdtemp(prefix="silod-notls-")
    try:
        base = [SILOD, "--root", os.path.join(tmp, "root"), "--state", os.path.join(tmp, "state"),
                "--cgroup-parent", "/silo-test-notls"]
        p = subprocess.run([*base, "--host", f"tcp://127.0.0.1:{free_port()}"], capture_output=True, text=True,
                           timeout=20)
        assert p.returncode == 2 and "mutual TLS" in p.stderr and "--tlscacert" in p.stderr, p.stderr
        p = subprocess.run([*base, "--host", f"tcp://127.0.0.1:{free_port()}", "--tlscacert",
                            os.path.join(pki, "ca.pem")], capture_output=True, text=True, timeout=20)
        assert p.returncode == 2 and "--tlscert" in p.stderr, p.stderr
        p = subprocess.run([*base, "--host", f"tcp://127.0.0.1:{free_port()}", "--tlscacert",
                            os.path.join(pki, "ca.pem"), "--tlscert", os.path.join(pki, "server.ext"), "--tlskey",
                            os.path.join(pki, "server-key.pem")], capture_output=True, text=True, timeout=20)
        assert p.returncode == 2 and "not a PEM file" in p.stderr, p.stderr
        p = subprocess.run([*base, "--host", "http://127.0.0.1:1"], capture_output=True, text=True, timeout=20)
        assert p.returncode == 2 and "--host" in p.stderr
        p = subprocess.run([*base, "--tlscacert", os.path.join(pki, "ca.pem")], capture_output=True, text=True,
                           timeout=20)
        assert p.returncode == 2 and "tcp://" in p.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
