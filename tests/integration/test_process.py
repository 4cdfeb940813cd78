# SPDX-License-Identifier: Apache-2.0
"""process.*: args, env, cwd, user, capabilities, rlimits, noNewPrivileges, oomScoreAdj,
preserved fds and seccomp, checked from inside the container."""

import json
import os
import resource
import signal
import subprocess

import pytest

import silo_harness as h


def set_caps(bundle, caps, sets=("bounding", "effective", "permitted")):
    for s in sets:
        bundle.process["capabilities"][s] = list(caps)


# ---- args / env / cwd ----

def test_args_passed_verbatim(rt, bundle):
    args = ["argv", "with space", "", "ünïcode", "--flag=1", "$HOME", "*"]
    res = rt.run_helper(bundle, *args)
    assert res["argv"] == [h.HELPER] + args


def test_args0_resolved_through_path(rt, bundle):
    bundle.process["args"] = ["silo-test-helper", "argv"]
    res = rt.run(bundle)
    res.check()
    assert res.json["argv"][1:] == ["argv"]


def test_args0_resolved_through_container_path_env(rt, bundle):
    os.makedirs(bundle.root_path("/opt/bin"))
    os.link(bundle.root_path(h.HELPER), bundle.root_path("/opt/bin/only-here"))
    bundle.process["env"] = ["PATH=/opt/bin"]
    bundle.process["args"] = ["only-here", "exit", "4"]
    assert rt.run(bundle).returncode == 4


def test_env_exact(rt, bundle):
    bundle.process["env"] = [h.DEFAULT_PATH, "TERM=xterm", "A=1", "B=with space", "EMPTY=",
                             "HOME=/custom"]
    env = rt.run_helper(bundle, "env")["env"]
    assert env == bundle.process["env"]


def test_env_home_defaults_from_passwd(rt, bundle):
    env = rt.run_helper(bundle, "env")["env"]
    assert "HOME=/root" in env
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    env = rt.run_helper(bundle, "env")["env"]
    assert "HOME=/home/user" in env


def test_env_empty_list(rt, bundle):
    bundle.process["env"] = []
    bundle.process["args"] = [h.HELPER, "env"]
    res = rt.run(bundle)
    res.check()
    assert [e for e in res.json["env"] if not e.startswith("HOME=")] == []


@pytest.mark.parametrize("cwd", ["/tmp", "/home/user", "/etc/"])
def test_cwd(rt, bundle, cwd):
    bundle.process["cwd"] = cwd
    assert rt.run_helper(bundle, "cwd")["cwd"] == cwd.rstrip("/")


def test_missing_cwd_is_created(rt, bundle):
    bundle.process["cwd"] = "/new/sub/dir"
    assert rt.run_helper(bundle, "cwd")["cwd"] == "/new/sub/dir"
    assert os.path.isdir(bundle.root_path("/new/sub/dir"))


def test_stdio_fds_are_the_callers(rt, bundle):
    res = rt.run_helper(bundle, "fds")
    fds = {f["fd"]: f["target"] for f in res["fds"]}
    assert sorted(fds) == [0, 1, 2]
    assert all(t.startswith("pipe:") or t == "/dev/null" for t in fds.values()), fds


# ---- user ----

def test_user_uid_gid(rt, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1001}
    ids = rt.run_helper(bundle, "ids")
    assert (ids["uid"], ids["euid"], ids["suid"]) == (1000, 1000, 1000)
    assert (ids["gid"], ids["egid"], ids["sgid"]) == (1001, 1001, 1001)
    assert ids["groups"] == []


def test_user_additional_gids(rt, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 1001, 4242]}
    ids = rt.run_helper(bundle, "ids")
    assert sorted(ids["groups"]) == [5, 1001, 4242]


def test_root_user_has_no_supplementary_groups(rt, bundle):
    assert rt.run_helper(bundle, "ids")["groups"] == []


def test_uid_not_in_passwd(rt, bundle):
    bundle.process["user"] = {"uid": 4321, "gid": 4321}
    ids = rt.run_helper(bundle, "ids")
    assert (ids["uid"], ids["gid"]) == (4321, 4321)


@pytest.mark.parametrize("umask", [0o077, 0o002, 0o000])
def test_umask(rt, bundle, umask):
    bundle.process["user"]["umask"] = umask
    assert rt.run_helper(bundle, "ids")["umask"] == umask


def test_umask_default(rt, bundle):
    assert rt.run_helper(bundle, "ids")["umask"] == 0o022


def test_non_root_cannot_write_root_files(rt, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    assert rt.run_helper(bundle, "write", "/etc/passwd")["error"] == "EACCES"


# ---- capabilities ----

def test_default_capabilities(rt, bundle):
    caps = rt.run_helper(bundle, "caps")
    for s in ("eff", "prm", "bnd"):
        assert h.caps_from_mask(caps[s]) == set(h.DEFAULT_CAPS), s
    assert int(caps["inh"], 16) == 0
    assert int(caps["amb"], 16) == 0


def test_all_five_capability_sets(rt, bundle):
    bnd = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"]
    prm = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETPCAP"]
    eff = ["CAP_CHOWN", "CAP_KILL"]
    inh = ["CAP_KILL", "CAP_NET_RAW"]
    amb = ["CAP_KILL"]
    bundle.process["capabilities"] = {"bounding": bnd, "permitted": prm, "effective": eff,
                                      "inheritable": inh, "ambient": amb}
    caps = rt.run_helper(bundle, "caps")
    assert h.caps_from_mask(caps["bnd"]) == set(bnd)
    assert h.caps_from_mask(caps["prm"]) == set(prm)
    assert h.caps_from_mask(caps["inh"]) == set(inh)
    assert h.caps_from_mask(caps["amb"]) == set(amb)
    # root: after exec, effective = permitted; ambient caps are in permitted and effective
    assert set(eff) <= h.caps_from_mask(caps["eff"])


def test_full_capability_set(rt, bundle):
    caps = sorted(h.host_caps())
    set_caps(bundle, caps)
    got = rt.run_helper(bundle, "caps")
    for s in ("eff", "prm", "bnd"):
        assert h.caps_from_mask(got[s]) == set(caps), s


def test_empty_capabilities(rt, bundle):
    bundle.process["capabilities"] = {}
    got = rt.run_helper(bundle, "caps")
    for s in ("eff", "prm", "bnd", "inh", "amb"):
        assert int(got[s], 16) == 0, s


def test_no_capabilities_key(rt, bundle):
    del bundle.process["capabilities"]
    got = rt.run_helper(bundle, "caps")
    for s in ("eff", "prm", "bnd", "inh", "amb"):
        assert int(got[s], 16) == 0, s


def test_ambient_without_inheritable_is_not_raised(rt, bundle):
    """`runc spec` lists ambient caps without inheritable ones: they cannot be raised, and the
    container still starts."""
    bundle.process["capabilities"]["ambient"] = list(h.DEFAULT_CAPS)
    got = rt.run_helper(bundle, "caps")
    assert int(got["amb"], 16) == 0
    assert int(got["inh"], 16) == 0


def test_non_root_user_with_ambient_caps(rt, bundle):
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {s: list(caps) for s in
                                      ("bounding", "effective", "permitted", "inheritable",
                                       "ambient")}
    got = rt.run_helper(bundle, "caps")
    assert h.caps_from_mask(got["eff"]) == set(caps)
    assert h.caps_from_mask(got["amb"]) == set(caps)


def test_non_root_user_without_ambient_has_no_effective_caps(rt, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    got = rt.run_helper(bundle, "caps")
    assert int(got["eff"], 16) == 0
    assert int(got["prm"], 16) == 0
    assert h.caps_from_mask(got["bnd"]) == set(h.DEFAULT_CAPS)


def test_capability_enforced(rt, bundle):
    """Without CAP_CHOWN root cannot chown a file it does not own (it owns /tmp: use /etc)."""
    set_caps(bundle, ["CAP_KILL"])
    res = rt.run_helper(bundle, "syscall-test", "chown", "/etc/passwd", "1000")
    assert res["error"] == "EPERM"
    set_caps(bundle, ["CAP_CHOWN"])
    res = rt.run_helper(bundle, "syscall-test", "chown", "/etc/group", "1000")
    assert res["ok"], res


def test_cap_sys_admin_allows_mount(rt, bundle):
    res = rt.run_helper(bundle, "syscall-test", "mount", "/tmp")
    assert res["error"] == "EPERM"
    set_caps(bundle, h.DEFAULT_CAPS + ["CAP_SYS_ADMIN"])
    assert rt.run_helper(bundle, "syscall-test", "mount", "/tmp")["ok"]


# ---- rlimits ----

def test_rlimit_nofile(rt, bundle):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]
    lim = rt.run_helper(bundle, "rlimits")["RLIMIT_NOFILE"]
    assert (lim["soft"], lim["hard"]) == (512, 1024)


def test_rlimits_several(rt, bundle):
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 500, "hard": min(hard_nproc, 1000)},
        {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_CPU", "soft": 1000, "hard": 2000},
    ]
    lims = rt.run_helper(bundle, "rlimits")
    for r in bundle.process["rlimits"]:
        assert (lims[r["type"]]["soft"], lims[r["type"]]["hard"]) == (r["soft"], r["hard"])


def test_rlimit_unlisted_inherited(rt, bundle):
    bundle.process["rlimits"] = []
    lims = rt.run_helper(bundle, "rlimits")
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    assert lims["RLIMIT_STACK"]["hard"] == (hard if hard != resource.RLIM_INFINITY
                                            else 2 ** 64 - 1)


def test_rlimit_lower_hard_limit(rt, bundle):
    """Lowering a hard limit needs no privilege; the container cannot raise it back."""
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}]
    lim = rt.run_helper(bundle, "rlimits")["RLIMIT_NOFILE"]
    assert lim == {"soft": 64, "hard": 64}


def test_rlimit_applies_to_exec(rt, bundle):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 300}]
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "rlimits")
    res.check()
    assert res.json["RLIMIT_NOFILE"] == {"soft": 300, "hard": 300}
    rt.delete(bundle.cid, force=True).check()


# ---- noNewPrivileges / oomScoreAdj ----

@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(rt, bundle, nnp):
    bundle.process["noNewPrivileges"] = nnp
    assert rt.run_helper(bundle, "seccomp")["no_new_privs"] == int(nnp)


def test_no_new_privileges_absent_means_false(rt, bundle):
    del bundle.process["noNewPrivileges"]
    assert rt.run_helper(bundle, "seccomp")["no_new_privs"] == 0


@pytest.mark.parametrize("adj", [0, 100, 1000])
def test_oom_score_adj(rt, bundle, adj):
    bundle.process["oomScoreAdj"] = adj
    assert rt.run_helper(bundle, "oom-score-adj")["oom_score_adj"] == adj


def test_oom_score_adj_absent_inherits(rt, bundle):
    with open("/proc/self/oom_score_adj") as f:
        mine = int(f.read())
    assert rt.run_helper(bundle, "oom-score-adj")["oom_score_adj"] == mine


def test_oom_score_adj_applies_to_exec(rt, bundle):
    bundle.process["oomScoreAdj"] = 123
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "oom-score-adj")
    res.check()
    assert res.json["oom_score_adj"] == 123
    rt.delete(bundle.cid, force=True).check()


# ---- preserved fds ----

def test_preserve_fds(rt, bundle):
    path = bundle.file("preserved.txt")
    with open(path, "w") as f:
        f.write("preserved")
    bundle.process["env"].append("SILO_HELPER_ALLOW_FDS=3")
    bundle.args("/bin/sh", "-c", f"{h.HELPER} fds; cat <&3")
    bundle.write()
    rt.ids.add(bundle.cid)
    # a shell opens fd 3 for the runtime: never dup2 over fds of this (pytest) process
    cmd = (f"exec {rt.binary} --root {rt.root} run --preserve-fds 1 --bundle {bundle.path} "
           f"{bundle.cid} 3<{path}")
    p = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True,
                       timeout=h.CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    fds = {f["fd"]: f["target"] for f in json.loads(lines[0])["fds"]}
    assert fds == {0: fds[0], 1: fds[1], 2: fds[2], 3: path}
    assert lines[1] == "preserved"


def test_fds_not_preserved_by_default(rt, bundle):
    r, w = os.pipe()
    try:
        res = rt.run(bundle.args("fds"), pass_fds=(r, w))
    finally:
        os.close(r)
        os.close(w)
    res.check()
    assert [f["fd"] for f in res.json["fds"]] == [0, 1, 2]


def test_listen_fds_passthrough(rt, bundle):
    bundle.write()
    rt.ids.add(bundle.cid)
    null = os.open("/dev/null", os.O_RDONLY)
    try:
        cmd = (f"export LISTEN_PID=$$ LISTEN_FDS=1; exec {rt.binary} --root {rt.root} run "
               f"--bundle {bundle.path} {bundle.cid} 3<&{null}")
        # bash: dash cannot redirect from fds above 9.
        p = subprocess.run(["/bin/bash", "-c", cmd], capture_output=True, text=True,
                           timeout=h.CMD_TIMEOUT, pass_fds=(null,), stdin=subprocess.DEVNULL)
    finally:
        os.close(null)
    assert p.returncode == 0, p.stderr
    info = h.parse_json_output(p.stdout)
    assert "LISTEN_FDS=1" in info["env"]
    assert "LISTEN_PID=1" in info["env"]
    assert [f["fd"] for f in info["fds"]] == [0, 1, 2, 3]


# ---- seccomp ----

def seccomp(syscalls, default="SCMP_ACT_ALLOW"):
    return {"defaultAction": default,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": syscalls}


def test_seccomp_errno(rt, bundle):
    bundle.linux["seccomp"] = seccomp([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                        "errnoRet": 28}])
    assert rt.run_helper(bundle, "syscall-test", "mkdir", "/tmp/x")["error"] == "ENOSPC"
    info = rt.run_helper(bundle, "seccomp")
    assert info["seccomp"] == 2
    assert info["filters"] >= 1


def test_seccomp_errno_default_eperm(rt, bundle):
    bundle.linux["seccomp"] = seccomp([{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}])
    assert rt.run_helper(bundle, "syscall-test", "getcwd")["error"] == "EPERM"
    assert rt.run_helper(bundle, "syscall-test", "getpid")["ok"]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_seccomp_kill(rt, bundle, action):
    bundle.linux["seccomp"] = seccomp([{"names": ["getcwd"], "action": action}])
    res = rt.run(bundle.args("syscall-test", "getcwd"))
    assert res.returncode == 128 + signal.SIGSYS
    assert res.stdout == ""


def test_seccomp_args(rt, bundle):
    bundle.linux["seccomp"] = seccomp([
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 2, "value": 0o002, "valueTwo": 0o002, "op": "SCMP_CMP_MASKED_EQ"}]},
    ])
    bundle.args("/bin/sh", "-c", f"{h.HELPER} syscall-test mkdir /tmp/a 700; "
                f"{h.HELPER} syscall-test mkdir /tmp/b 755; "
                f"{h.HELPER} syscall-test mkdirat /tmp/c 777; "
                f"{h.HELPER} syscall-test mkdirat /tmp/d 750")
    res = rt.run(bundle)
    res.check()
    a, b, c, d = (json.loads(l) for l in res.stdout.splitlines())
    assert a["error"] == "EPERM"
    assert b["ok"]
    assert c["error"] == "EACCES"
    assert d["ok"]


def test_seccomp_with_no_new_privileges_false(rt, bundle):
    bundle.process["noNewPrivileges"] = False
    # without NNP the filter is loaded while the runtime still has work to do: block a syscall
    # no runtime needs at that point
    bundle.linux["seccomp"] = seccomp([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}])
    assert rt.run_helper(bundle, "syscall-test", "mkdir", "/tmp/x")["error"] == "EPERM"
    info = rt.run_helper(bundle, "seccomp")
    assert info["seccomp"] == 2
    assert info["no_new_privs"] == 0


def test_seccomp_applies_to_exec(rt, bundle):
    bundle.linux["seccomp"] = seccomp([{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}])
    bundle.args("sleep", "60")
    rt.run(bundle, detach=True).check()
    res = rt.exec(bundle.cid, "syscall-test", "getcwd")
    res.check()
    assert res.json["error"] == "EPERM"
    rt.delete(bundle.cid, force=True).check()


def all_syscall_names():
    with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as f:
        return [l.split()[1][len("__NR_"):] for l in f if l.startswith("#define __NR_")]


def test_seccomp_default_errno_allowlist(rt, bundle):
    """A default-deny profile (Docker-style allow list) works; names libseccomp may not know
    are tolerated."""
    allowed = [n for n in all_syscall_names() if n not in ("mkdir", "mkdirat")]
    allowed.append("silo_no_such_syscall")
    bundle.linux["seccomp"] = seccomp([{"names": allowed, "action": "SCMP_ACT_ALLOW"}],
                                      default="SCMP_ACT_ERRNO")
    assert rt.run_helper(bundle, "syscall-test", "mkdir", "/tmp/x")["error"] == "EPERM"
    assert rt.run_helper(bundle, "syscall-test", "mkdirat", "/tmp/x")["error"] == "EPERM"
    assert rt.run_helper(bundle, "syscall-test", "getcwd")["ok"]


def _signal_state(text):
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return int(fields["SigBlk"].strip(), 16), int(fields["SigIgn"].strip(), 16)


def test_signal_state_is_clean_in_container(rt, bundle):
    """The runtime blocks the signals it forwards and ignores SIGPIPE; neither
    may leak into the container (both survive execve)."""
    bundle.args("/bin/cat", "/proc/self/status")
    res = rt.run(bundle)
    res.check()
    assert _signal_state(res.stdout) == (0, 0), res.stdout

    bundle2 = bundle
    bundle2.args("/bin/sleep", "60")
    rt.run(bundle2, detach=True).check()
    res = rt.exec(bundle2.cid, "/bin/cat", "/proc/self/status")
    res.check()
    assert _signal_state(res.stdout) == (0, 0), res.stdout
    rt.delete(bundle2.cid, force=True).check()


def test_sigterm_trap_runs_in_foreground_run(rt, bundle):
    """A container's SIGTERM handler runs when the runtime forwards SIGTERM."""
    bundle.args("/bin/sh", "-c", "trap 'echo trapped; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
    bundle.write()
    rt.ids.add(bundle.cid)
    p = subprocess.Popen([rt.binary, "--root", rt.root, "run", "--bundle", bundle.path, bundle.cid],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert "trapped" in out, (out, err)
    assert p.returncode == 7, (p.returncode, err)
