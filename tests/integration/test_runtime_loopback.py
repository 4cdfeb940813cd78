# SPDX-License-Identifier: Apache-2.0
"""A network namespace the runtime creates has its loopback up, as with runc (whose
"loopback" network comes with every new network namespace); a joined one is left as it is."""

import os
import subprocess

IFF_UP = 0x1


def lo_flags(rt, bundle):
    res = rt.run_helper(bundle, "read", "/sys/class/net/lo/flags")
    assert res["ok"], res
    return int(res["data"].strip(), 16)


def test_new_network_namespace_has_loopback_up(rt, bundle):
    assert lo_flags(rt, bundle) & IFF_UP


def test_joined_network_namespace_is_not_changed(rt, bundle, cleanup):
    # `unshare --net` leaves lo down; the runtime must not touch a namespace it joins.
    p = subprocess.Popen(["unshare", "--net", "--", "sleep", "120"], stdin=subprocess.DEVNULL)
    cleanup(lambda: (p.kill(), p.wait()))
    host = os.readlink("/proc/self/ns/net")
    for _ in range(200):
        try:
            if os.readlink(f"/proc/{p.pid}/ns/net") != host:
                break
        except OSError:
            pass
        subprocess.run(["sleep", "0.01"])
    bundle.set_namespace("network", f"/proc/{p.pid}/ns/net")
    assert not lo_flags(rt, bundle) & IFF_UP
