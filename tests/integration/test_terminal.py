# SPDX-License-Identifier: Apache-2.0
"""process.terminal with --console-socket (the pty master arrives over SCM_RIGHTS, as containerd
and conmon receive it), consoleSize, terminal input, exec --tty, and the error cases."""

import json
import os
import stat

import silo_harness as h


def tty_bundle(bundle, *args):
    bundle.process["terminal"] = True
    bundle.args(*args)
    return bundle


def test_run_detached_with_console_socket(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "tty")
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    master = sock.wait_fd()
    assert os.isatty(master)
    info = sock.json()
    assert info["isatty"] == [True, True, True]
    assert info["ttyname"].startswith("/dev/pts/")
    assert info["has_ctty"] is True
    assert info["tcgetpgrp"] == info["pgid"]  # the process is in the foreground group
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_create_start_with_console_socket(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "tty")
    rt.create(bundle, "--console-socket", sock.path).check()
    sock.wait_fd()
    rt.start(bundle.cid).check()
    assert sock.json()["isatty"] == [True, True, True]
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_console_size(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "tty")
    bundle.process["consoleSize"] = {"height": 40, "width": 132}
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    info = sock.json()
    assert (info["rows"], info["cols"]) == (40, 132)
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_terminal_input(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "/bin/sh", "-c", "read line; echo got:$line")
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    sock.write("hello tty\n")
    sock.wait_output(r"got:hello tty")
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_terminal_dev_console(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "stat", "/dev/console")
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    st = sock.json()
    assert st["exists"] and st["type"] == "chr", st
    assert st["rdev_major"] == 136  # a pts device, not the host console
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_terminal_owned_by_process_user(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "tty")
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    info = sock.json()
    assert info["tty_uid"] == 1000
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_terminal_fds_are_only_the_pty(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "fds")
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    fds = sock.json()["fds"]
    assert [f["fd"] for f in fds] == [0, 1, 2]
    assert all(f["target"].startswith("/dev/pts/") for f in fds), fds
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


def test_exec_tty(rt, bundle, console):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    sock = console()
    rt.exec(bundle.cid, "tty", opts=["--tty", "--console-socket", sock.path], detach=True,
            bundle=bundle).check()
    info = sock.json()
    assert info["isatty"] == [True, True, True]
    assert info["has_ctty"] is True
    rt.delete(bundle.cid, force=True).check()


def test_exec_process_json_terminal_console_size(rt, bundle, console):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    sock = console()
    process = {"terminal": True, "consoleSize": {"height": 33, "width": 77},
               "user": {"uid": 0, "gid": 0}, "args": [h.HELPER, "tty"],
               "env": [h.DEFAULT_PATH], "cwd": "/"}
    path = bundle.file("process.json")
    with open(path, "w") as f:
        json.dump(process, f)
    rt.exec(bundle.cid, opts=["--process", path, "--console-socket", sock.path], detach=True,
            bundle=bundle).check()
    info = sock.json()
    assert info["isatty"] == [True, True, True]
    assert (info["rows"], info["cols"]) == (33, 77)
    rt.delete(bundle.cid, force=True).check()


def test_exec_without_tty_in_terminal_container(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "sleep", "60")
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    res = rt.exec(bundle.cid, "tty", opts=["--tty=false"])
    res.check()
    assert res.json["isatty"] == [False, False, False]
    rt.delete(bundle.cid, force=True).check()


def test_console_socket_receives_one_fd(rt, bundle, console):
    sock = console()
    tty_bundle(bundle, "exit", "0")
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    fd = sock.wait_fd()
    mode = os.fstat(fd).st_mode
    assert stat.S_ISCHR(mode)
    assert os.major(os.fstat(fd).st_rdev) == 5 and os.minor(os.fstat(fd).st_rdev) == 2  # ptmx
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()


# ---- errors ----

def test_create_terminal_without_console_socket_fails(rt, bundle):
    tty_bundle(bundle, "sleep", "60")
    res = rt.create(bundle)
    assert res.returncode != 0
    assert "console" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None


def test_console_socket_without_terminal_fails(rt, bundle, console):
    sock = console()
    bundle.args("sleep", "60")
    res = rt.create(bundle, "--console-socket", sock.path)
    assert res.returncode != 0
    assert "console" in res.stderr.lower() or "terminal" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None


def test_console_socket_missing_path_fails(rt, bundle):
    tty_bundle(bundle, "sleep", "60")
    path = os.path.join(rt.test_dir, "no-such.sock")
    res = rt.create(bundle, "--console-socket", path)
    assert res.returncode != 0
    assert "no-such.sock" in res.stderr or "no such file" in res.stderr.lower()
    assert rt.try_state(bundle.cid) is None


def test_exec_tty_without_console_socket_detached_fails(rt, bundle):
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "tty", opts=["--tty"], detach=True, bundle=bundle)
    assert res.returncode != 0
    assert "console" in res.stderr.lower()
    rt.delete(bundle.cid, force=True).check()



def test_pty_comes_from_container_devpts(rt, bundle, console):
    """The pty is allocated in the container's own devpts instance: no host ptys visible."""
    sock = console()
    tty_bundle(bundle, "ls", "/dev/pts")
    rt.run(bundle, "--console-socket", sock.path, detach=True).check()
    assert sorted(sock.json()["entries"]) == ["0", "ptmx"]
    rt.wait_status(bundle.cid, "stopped")
    rt.delete(bundle.cid).check()
