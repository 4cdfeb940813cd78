# SPDX-License-Identifier: Apache-2.0
"""A foreground `silo-runtime run` of a VM container with process.terminal and no
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


def test_vm_run_with_a_terminal_and_no_console_socket(vm):
    vm.config["process"]["terminal"] = True
    vm.write(["/bin/sh", "-c", "tty; stty size; read line; echo got:$line; exit 6"])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 120, 0, 0))
    p = subprocess.Popen(vm.argv(), env=vm.env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    sent = False
    deadline = time.monotonic() + BOOT_LIMIT
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
            if not sent and b"33 120" in out:
                os.write(master, b"typed\r")
                sent = True
            if p.poll() is not None and not r:
                break
        assert p.wait(timeout=20) == 6, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    text = out.decode(errors="replace")
    assert "/dev/pts/" in text and "33 120" in text and "got:typed" in text, text
    assert "console-socket" not in text
