# SPDX-License-Identifier: Apache-2.0
"""Self-contained fixtures and helpers for the image/storage integration tests (test_image_*.py).

Everything is built offline: rootfs trees from busybox-static, layer tarballs with Python's tarfile
(hostile ones included), docker-archive and OCI archives by hand, and registries from Debian's
docker-registry on 127.0.0.1 (plain HTTP, HTTPS with a throwaway CA, htpasswd Basic auth, Bearer
tokens from a tiny token server), optionally behind a fault-injecting proxy. Every process a fixture
starts is stopped by that fixture.

The silo binary is $SILO_BIN, else $SILO_BUILD_DIR/src/cli/silo (default build dir /work/main/build).
"""

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import socketserver
import subprocess
import tarfile
import tempfile
import threading
import time

import pytest

BUILD_DIR = os.environ.get("SILO_BUILD_DIR", "/work/main/build")
SILO = os.environ.get("SILO_BIN") or os.path.join(BUILD_DIR, "src/cli/silo")
BUSYBOX = "/bin/busybox"
CMD_TIMEOUT = 300

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- running silo ----

class Silo:
    def __init__(self, root, env=None):
        self.root = root
        self.env = dict(os.environ)
        self.env.pop("SILO_ROOT", None)
        # Keep the user's docker credentials out of the tests.
        self.env["HOME"] = os.path.join(root, "..", "home")
        self.env.pop("DOCKER_CONFIG", None)
        self.env.pop("REGISTRY_AUTH_FILE", None)
        self.env.pop("XDG_RUNTIME_DIR", None)
        if env:
            self.env.update(env)

    def run(self, *args, check=True, input=None, env=None, timeout=CMD_TIMEOUT):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([SILO, "--root", self.root, *args], capture_output=True,
                           input=input, env=e, timeout=timeout)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"silo {' '.join(args)} failed ({p.returncode}):\n{p.err}{p.out}")
        return p

    def fail(self, *args, **kw):
        """Runs a command that must fail; returns its stderr."""
        p = self.run(*args, check=False, **kw)
        assert p.returncode != 0, f"silo {' '.join(args)} unexpectedly succeeded:\n{p.out}{p.err}"
        assert p.err.startswith("silo: ") or "\nsilo: " in p.err, p.err
        return p.err

    def images(self):
        return json.loads(self.run("images", "--format", "json").out)

    def names(self):
        return sorted(n for img in self.images() for n in img["Names"])

    def inspect(self, ref):
        return json.loads(self.run("image", "inspect", ref).out)[0]


def store_snapshot(root):
    """What is in the store: blobs, layers, leftovers, names. For 'nothing left behind' checks."""
    snap = {}
    for sub in ("blobs/sha256", "layers", "tmp", "locks", "containers"):
        d = os.path.join(root, sub)
        snap[sub] = sorted(os.listdir(d)) if os.path.isdir(d) else []
    idx = os.path.join(root, "images.json")
    snap["images"] = json.load(open(idx))["images"] if os.path.exists(idx) else []
    return snap


def assert_nothing_left(root, before):
    after = store_snapshot(root)
    # lock files are harmless empty files, but they are still leftovers
    assert after == before, f"store changed:\nbefore={before}\nafter={after}"


# ---- building content ----

def make_busybox_rootfs(path, extra=None):
    """A tiny runnable root filesystem: busybox-static and a few applet links."""
    os.makedirs(os.path.join(path, "bin"), exist_ok=True)
    os.makedirs(os.path.join(path, "etc"), exist_ok=True)
    shutil.copy(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for applet in ("sh", "ls", "cat", "echo", "id", "test", "stat", "touch", "rm", "mkdir", "sleep", "head"):
        link = os.path.join(path, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
                "nobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nusers:x:100:alice\nalice:x:1000:\nwheel:x:10:alice,bob\n")
    for name, content in (extra or {}).items():
        p = os.path.join(path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
    return path


class Layer:
    """A layer tarball built entry by entry (hostile entries welcome)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, type_, mode=0o644, uid=0, gid=0, mtime=1_600_000_000):
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = mtime
        return ti

    def file(self, name, data=b"", mode=0o644, **kw):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, **kw)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))
        return self

    def dir(self, name, mode=0o755, **kw):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, **kw))
        return self

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)
        return self

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE)
        ti.linkname = target
        self.tar.addfile(ti)
        return self

    def chardev(self, name, major, minor):
        ti = self._info(name, tarfile.CHRTYPE, 0o666)
        ti.devmajor, ti.devminor = major, minor
        self.tar.addfile(ti)
        return self

    def tree(self, path, arcname="."):
        self.tar.add(path, arcname=arcname)
        return self

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def compress(data, how):
    if how in (None, "none"):
        return data
    if how == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    raise ValueError(how)


def image_config(diff_ids, cmd=None, **config):
    cfg = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
           "rootfs": {"type": "layers", "diff_ids": diff_ids},
           "config": dict(config),
           "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                       for i in range(len(diff_ids))]}
    if cmd is not None:
        cfg["config"]["Cmd"] = cmd
    return json.dumps(cfg).encode()


class Image:
    """An image as blobs: layers (compressed), config, manifest."""

    def __init__(self, layer_tars, compression="gzip", cmd=None, config=None, layer_media_type=None,
                 config_media_type=MT_OCI_CONFIG, manifest_media_type=MT_OCI_MANIFEST, **cfg):
        self.blobs = {}
        self.layers = []
        diff_ids = []
        for tar in layer_tars:
            data = compress(tar, compression)
            mt = layer_media_type or {"gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD}.get(compression, MT_LAYER)
            d = sha256(data)
            self.blobs[d] = data
            self.layers.append({"mediaType": mt, "digest": d, "size": len(data)})
            diff_ids.append(sha256(tar))
        self.config = config if config is not None else image_config(diff_ids, cmd=cmd, **cfg)
        self.config_digest = sha256(self.config)
        self.blobs[self.config_digest] = self.config
        self.manifest_obj = {"schemaVersion": 2, "mediaType": manifest_media_type,
                             "config": {"mediaType": config_media_type, "digest": self.config_digest,
                                        "size": len(self.config)},
                             "layers": self.layers}
        self.manifest = json.dumps(self.manifest_obj).encode()
        self.digest = sha256(self.manifest)
        self.blobs[self.digest] = self.manifest
        self.id = self.config_digest


def write_oci_archive(path, images, names=None, extra_index=None, blob_override=None, index_obj=None):
    """An OCI archive (tarred image layout). names: one ref.name per image (or None)."""
    blobs = {}
    for img in images:
        blobs.update(img.blobs)
    blobs.update(blob_override or {})
    index = index_obj or {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []}
    if not index_obj:
        for i, img in enumerate(images):
            d = {"mediaType": MT_OCI_MANIFEST, "digest": img.digest, "size": len(img.manifest)}
            if names and names[i]:
                d["annotations"] = {"org.opencontainers.image.ref.name": names[i]}
            index["manifests"].append(d)
        index["manifests"] += extra_index or []
    with tarfile.open(path, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for d, data in blobs.items():
            add("blobs/sha256/" + d.split(":")[1], data)
    return path


def write_docker_archive(path, images, tags=None):
    """A classic `docker save` archive: <id>.json, <n>/layer.tar (uncompressed), manifest.json."""
    manifest = []
    with tarfile.open(path, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        for i, (img, raw_layers) in enumerate(images):
            cfg_name = img.config_digest.split(":")[1] + ".json"
            add(cfg_name, img.config)
            paths = []
            for k, tar in enumerate(raw_layers):
                p = f"{i}-{k}/layer.tar"
                add(p, tar)
                paths.append(p)
            manifest.append({"Config": cfg_name, "RepoTags": (tags or [None] * len(images))[i] or None,
                             "Layers": paths})
        add("manifest.json", json.dumps(manifest).encode())
    return path


# ---- processes ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_cert(dir_, cn="127.0.0.1"):
    cert, key = os.path.join(dir_, "cert.pem"), os.path.join(dir_, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=IP:{cn}"], check=True, capture_output=True, timeout=60)
    return cert, key


class Registry:
    """docker-registry on 127.0.0.1 (plain, tls, basic auth or token auth)."""

    def __init__(self, workdir, tls=False, htpasswd=None, token=None):
        self.dir = tempfile.mkdtemp(prefix="reg-", dir=workdir)
        self.port = free_port()
        self.tls = tls
        self.cert = self.key = None
        conf = {"version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")},
                            "delete": {"enabled": True}},
                "http": {"addr": f"127.0.0.1:{self.port}", "secret": "silo-test"}}
        if tls:
            self.cert, self.key = make_cert(self.dir)
            conf["http"]["tls"] = {"certificate": self.cert, "key": self.key}
        if htpasswd:
            path = os.path.join(self.dir, "htpasswd")
            with open(path, "w") as f:
                for user, pw in htpasswd.items():
                    line = subprocess.run(["htpasswd", "-Bbn", user, pw], capture_output=True,
                                          check=True, text=True).stdout.strip()
                    f.write(line + "\n")
            conf["auth"] = {"htpasswd": {"realm": "silo-test", "path": path}}
        if token:
            conf["auth"] = {"token": token}
        self.conf = os.path.join(self.dir, "config.yml")
        with open(self.conf, "w") as f:
            json.dump(conf, f)  # YAML is a superset of JSON
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        self.host = f"127.0.0.1:{self.port}"

    def stop(self):
        stop(self.proc)
        self.log.close()

    def url(self, path):
        return f"{'https' if self.tls else 'http'}://{self.host}{path}"

    def upload(self, repo, image, tag=None, auth=None):
        """Puts an Image's blobs and manifest straight into the registry (no silo involved)."""
        for d, data in image.blobs.items():
            if d == image.digest:
                continue
            self.put_blob(repo, data, auth)
        return self.put_manifest(repo, tag or image.digest, image.manifest,
                                 image.manifest_obj.get("mediaType", MT_OCI_MANIFEST), auth)

    def _conn(self):
        if self.tls:
            import ssl
            ctx = ssl.create_default_context(cafile=self.cert)
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def put_blob(self, repo, data, auth=None):
        headers = {"Authorization": auth} if auth else {}
        c = self._conn()
        c.request("POST", f"/v2/{repo}/blobs/uploads/", headers=headers)
        r = c.getresponse()
        r.read()
        assert r.status == 202, r.status
        loc = r.getheader("Location")
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in loc else "?"
        c.request("PUT", f"{loc}{sep}digest={sha256(data)}", body=data,
                  headers={**headers, "Content-Type": "application/octet-stream"})
        r = c.getresponse()
        r.read()
        assert r.status == 201, (r.status, r.read())
        c.close()

    def put_manifest(self, repo, ref, data, media_type, auth=None):
        headers = {"Content-Type": media_type}
        if auth:
            headers["Authorization"] = auth
        c = self._conn()
        c.request("PUT", f"/v2/{repo}/manifests/{ref}", body=data, headers=headers)
        r = c.getresponse()
        body = r.read()
        assert r.status == 201, (r.status, body)
        c.close()
        return sha256(data)


class TokenServer:
    """Issues registry Bearer tokens (RS256 JWTs with an x5c chain) to users with the right password."""

    def __init__(self, workdir, users, service="silo-test", issuer="silo-test-issuer"):
        import jwt  # python3-jwt
        self.jwt = jwt
        self.dir = tempfile.mkdtemp(prefix="token-", dir=workdir)
        self.cert, self.key = make_cert(self.dir)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], capture_output=True,
                             check=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users = users
        self.service, self.issuer = service, issuer
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                from urllib.parse import urlparse, parse_qs
                q = parse_qs(urlparse(self.path).query)
                server.requests.append(q)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(u) != p:
                        self.send_response(401)
                        self.end_headers()
                        self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad password"}]}')
                        return
                    user = u
                access = []
                for scope in q.get("scope", []):
                    typ, name, actions = scope.split(":")
                    # anonymous users may pull only from "public/"
                    acts = actions.split(",") if user else (["pull"] if name.startswith("public/") else [])
                    access.append({"type": typ, "name": name, "actions": acts})
                now = int(time.time())
                claims = {"iss": server.issuer, "sub": user or "", "aud": server.service, "exp": now + 300,
                          "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
                tok = server.jwt.encode(claims, open(server.key).read(), algorithm="RS256",
                                        headers={"x5c": [server.x5c]})
                body = json.dumps({"token": tok, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def registry_config(self):
        return {"realm": f"http://127.0.0.1:{self.port}/token", "service": self.service,
                "issuer": self.issuer, "rootcertbundle": self.cert}

    def token(self, user, scopes):
        """A token for direct uploads by the test itself."""
        from urllib.request import Request, urlopen
        from urllib.parse import urlencode
        q = urlencode([("service", self.service)] + [("scope", s) for s in scopes])
        req = Request(f"http://127.0.0.1:{self.port}/token?{q}")
        pw = self.users[user]
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode())
        return "Bearer " + json.load(urlopen(req, timeout=10))["token"]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FaultProxy:
    """HTTP proxy in front of a plain registry that can break blob downloads on purpose.

    faults: list of (predicate(method, path) -> bool, action) consumed in order; actions:
      "drop"   send the headers and half the body, then close the connection
      "500"    answer 500 without contacting the registry
      "corrupt" flip a byte in the body
      "ignore-range" drop the Range header (answer 200 with the full body)
    """

    def __init__(self, backend_port):
        self.backend = backend_port
        self.faults = []
        self.log = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _action(self):
                with proxy.lock:
                    proxy.log.append((self.command, self.path, self.headers.get("Range")))
                    for i, (pred, action) in enumerate(proxy.faults):
                        if pred(self.command, self.path):
                            del proxy.faults[i]
                            return action
                return None

            def _handle(self):
                action = self._action()
                if action == "500":
                    body = b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}'
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if action == "ignore-range":
                    headers.pop("Range", None)
                c = http.client.HTTPConnection("127.0.0.1", proxy.backend, timeout=60)
                c.request(self.command, self.path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                c.close()
                if action == "corrupt" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() in ("content-length", "connection", "transfer-encoding"):
                        continue
                    if k.lower() == "location":
                        v = v.replace(f"127.0.0.1:{proxy.backend}", f"127.0.0.1:{proxy.port}")
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if action == "drop":
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command == "HEAD":
                    return
                if action == "drop":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def blob_gets(self, digest):
        return [entry for entry in self.log if entry[0] == "GET" and entry[1].endswith("/blobs/" + digest)]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def is_blob_get(digest):
    return lambda method, path: method == "GET" and path.endswith("/blobs/" + digest)


# ---- fixtures ----

@pytest.fixture(scope="session")
def silo_binary():
    if not os.access(SILO, os.X_OK):
        pytest.fail(f"silo binary {SILO} not found (build it, or set SILO_BIN)")
    return SILO


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="silo-img-", dir=os.environ.get("SILO_TEST_TMPDIR", "/tmp"))
    yield d
    # Unmount anything a failed test left mounted under the directory, then remove it.
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for mp in sorted((p for p in points if p.startswith(d + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", d], capture_output=True, timeout=120)


@pytest.fixture
def silo(silo_binary, workdir):
    os.makedirs(os.path.join(workdir, "home"), exist_ok=True)
    return Silo(os.path.join(workdir, "store"))


@pytest.fixture
def rootfs(workdir):
    return make_busybox_rootfs(os.path.join(workdir, "rootfs"))


@pytest.fixture
def busybox_image(silo, rootfs):
    """A one-layer busybox image named busybox:test in the test's store."""
    silo.run("import", "-c", 'CMD ["/bin/sh"]', rootfs, "busybox:test")
    return "busybox:test"


@pytest.fixture
def registry(workdir):
    r = Registry(workdir)
    yield r
    r.stop()
