# SPDX-License-Identifier: Apache-2.0
"""A foreground `silo-runtime run` (or `exec --tty`) of a VM container with a terminal and no
--console-socket proxies the terminal itself, as for a process container (and as runc does):
the caller's terminal becomes the container's, raw, with its size."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

from test_vm import BOOT_LIMIT, vm, vm_rootfs  # noqa: F401


def run_in_pty(argv, env, rows, cols, reply_after=None, reply=b"", limit=BOOT_LIMIT):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, sent = b"", False
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if reply_after and not sent and reply_after in out:
                os.write(master, reply)
                sent = True
            if p.poll() is not None and not r:
                break
        rc = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return rc, out.decode(errors="replace")


def test_vm_run_with_a_terminal_and_no_console_socket(vm):
    vm.config["process"]["terminal"] = True
    vm.write(["/bin/sh", "-c", "tty; stty size; read line; echo got:$line; exit 6"])
    rc, text = run_in_pty(vm.argv(), vm.env, 33, 120, reply_after=b"33 120", reply=b"typed\r")
    assert rc == 6, text
    assert "/dev/pts/" in text and "33 120" in text and "got:typed" in text, text
    assert "console-socket" not in text


def test_vm_exec_tty_without_console_socket(vm):
    vm.write(["/bin/sleep", "1000"])
    assert vm.rt("run", "--detach", "--bundle", str(vm.path), "vmt").returncode == 0
    try:
        rc, text = run_in_pty([vm.argv()[0], "--root", vm.argv()[2], "exec", "--tty", "vmt", "/bin/sh", "-c",
                               "tty; stty size; test -t 0 && echo stdin-is-tty; exit 3"], vm.env, 25, 90)
        assert rc == 3, text
        assert "/dev/pts/" in text and "25 90" in text and "stdin-is-tty" in text, text
        # Detached, a terminal needs somewhere to go.
        r = vm.rt("exec", "--tty", "--detach", "vmt", "/bin/true", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert r.returncode != 0 and "needs --console-socket" in r.stderr, r.stderr
    finally:
        assert vm.rt("delete", "--force", "vmt").returncode == 0


def test_vm_exec_dies_with_its_waiter(vm, tmp_path):
    """A detached exec is represented on the host by a waiter; a SIGKILLed waiter (or exec) takes
    the guest process along instead of leaving it running unseen."""
    vm.write(["/bin/sleep", "1000"])
    assert vm.rt("run", "--detach", "--bundle", str(vm.path), "vmt").returncode == 0
    try:
        pidfile = tmp_path / "exec.pid"
        r = vm.rt("exec", "--detach", "--pid-file", str(pidfile), "vmt", "/bin/sleep", "777")
        assert r.returncode == 0
        waiter = int(pidfile.read_text())
        count = ["exec", "vmt", "/bin/sh", "-c", "ps -o args | grep -c '^/bin/sleep 777'"]
        assert vm.rt(*count).stdout.strip() == "1"
        os.kill(waiter, 9)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and vm.rt(*count).stdout.strip() != "0":
            time.sleep(0.2)
        assert vm.rt(*count).stdout.strip() == "0"
    finally:
        assert vm.rt("delete", "--force", "vmt").returncode == 0
