"""show store on a big store_dir is walked in steps, not in one go.

mid's store_dir holds 6000 files before it starts; mid forwards ""
to last, which stores.  While several `relayctl -j show store` run on
mid at once, a PUT goes through mid into last and completes, stored
intact.  Every show store answer is right: 6000 matched, truncated, and
the 1000 entries are the 1000 smallest keys, sorted (whatever order the
directory gives them in); with a prefix, the matching keys only.
"""

import json
import os
import subprocess

from conftest import RELAYCTL, assert_stored, ctl_json, put, register

FILES = 6000


def fill(store_dir):
    keys = ["f%05d" % i for i in range(FILES)]
    for k in reversed(keys):
        with open(os.path.join(store_dir, k), "wb") as f:
            f.write(b"x" * 10)
    return keys


def test_show_store_does_not_hold_the_loop(make_relay):
    last = make_relay("last", store=True)
    mid = make_relay("mid", peers=[{"name": "last", "relay": last}],
                     routes=[{"prefix": "", "hops": ["last"]}])
    keys = fill(mid.store_dir)
    last.start()
    mid.start()
    shows = [register(subprocess.Popen(
        [RELAYCTL, "-s", mid.socket, "-j", "show", "store"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)) for _ in range(4)]
    data = bytes(range(256)) * 400
    rc, js = put(mid, "through", data, timeout=30)
    assert rc == 0, js
    assert_stored(last, "through", data)
    for p in shows:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        a = json.loads(out)
        assert a["matched"] == FILES and a["truncated"] is True, a
        got = [e["key"] for e in a["entries"]]
        assert got == sorted(keys)[:1000], got[:5]
        assert all(e["size"] == 10 for e in a["entries"])
    a = ctl_json(mid, "show", "store", "f0012")
    assert [e["key"] for e in a["entries"]] == \
        ["f0012%d" % i for i in range(10)], a
    assert a["matched"] == 10 and a["truncated"] is False, a
