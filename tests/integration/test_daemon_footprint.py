# SPDX-License-Identifier: Apache-2.0
"""What keeps `docker run --rm` and an idle silod cheap, checked for behaviour:
an AutoRemove container's overlay is volatile (no syncfs of the host filesystem at
unmount, as podman does for --rm) and a kept one is not; the event ring, stored as
serialized lines, still replays and filters across many containers."""

import json
import os
import time

from daemon_support import daemon, image, mounts_under  # noqa: F401


def root_super_options(mountinfo):
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/":
            return fields[fields.index("-") + 3]
    raise AssertionError("no root mount in\n" + mountinfo)


def is_volatile(options):
    # Kernels since 6.6 show the option as fsync=volatile.
    opts = options.split(",")
    return "volatile" in opts or "fsync=volatile" in opts


def test_autoremove_rootfs_is_volatile_and_kept_one_is_not(daemon, image):
    out = daemon.docker("run", "--rm", "--network", "none", image, "cat", "/proc/self/mountinfo").stdout
    assert is_volatile(root_super_options(out))
    name = "footprint-kept"
    out = daemon.docker("run", "--name", name, "--network", "none", image, "cat", "/proc/self/mountinfo").stdout
    assert not is_volatile(root_super_options(out))
    # The kept container still starts again (its rootfs is mounted once, at create).
    daemon.docker("start", "-a", name)
    daemon.docker("rm", name)
    assert not mounts_under(os.path.join(daemon.state, "containers"))


def test_event_ring_replays_and_filters_many_containers(daemon, image):
    since = f"{time.time() - 1:.9f}"
    ids = [daemon.docker("create", "--network", "none", "--label", f"fp={i % 2}", image, "true").stdout.strip()
           for i in range(6)]
    daemon.docker("rm", *ids)
    until = f"{time.time() + 0.5:.9f}"
    out = daemon.docker("events", "--since", since, "--until", until, "--format", "{{json .}}").stdout
    events = [json.loads(line) for line in out.splitlines()]
    mine = [e for e in events if e.get("Actor", {}).get("ID") in ids]
    assert [e["Action"] for e in mine].count("create") == 6
    assert [e["Action"] for e in mine].count("destroy") == 6
    assert all(e["time"] and e["timeNano"] and e["scope"] == "local" for e in mine)
    out = daemon.docker("events", "--since", since, "--until", until, "--filter", "label=fp=1", "--filter",
                        "event=create", "--format", "{{.Actor.ID}}").stdout
    assert out.split() == [ids[i] for i in (1, 3, 5)]
