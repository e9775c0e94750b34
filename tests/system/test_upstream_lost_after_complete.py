"""Losing the upstream after the last byte arrived changes nothing downstream.

Behaviour proved (DESIGN.md invariant 3, "completion before
cancellation"; the stall this project exists to prevent): on the chain
hop0..hop10 the link hop2 -> hop3 is rate-limited, and hop2 grants a
window large enough to take the whole payload at once.  As soon as hop2
holds every byte (status bytes_in == size) while hop3 does not yet, hop2's
upstream connection is torn down (by kill -9 of hop1, or by destroying
the hop1 <-> hop2 TCP connection with `ss -K`) while hop2's fork still has
most of the payload to read (hop3's small window holds it back).  Every storing hop behind
hop2 (hop6 and hop10) still stores the payload intact within a deadline,
no stream is left behind, and the origin's relayctl put ends within a
deadline (exit 0, or 1 naming the lost hop/link), never a hang.
"""

import os
import re
import subprocess

import pytest

from conftest import (bytes_in, put_bg, wait_for, wait_stored, relayctl,
                      store_key_filename)

SIZE = 512 * 1024
RATE = 64 * 1024                 # bytes/s on hop2 -> hop3
STORERS = (6, 10)
# Time for the whole payload to cross the slow link, plus a margin.
DEADLINE = SIZE / RATE + 25


def make_chain(chain):
    # hop2 grants hop1 a window for the whole payload, so hop2's buffer
    # fills at once; hop3 grants hop2 a small one, so hop2's fork must
    # keep reading the completed buffer after the upstream is gone.
    return chain(10, store=STORERS, rate_limit={2: RATE},
                 hop_opts={2: {"stream_window": 16 << 20,
                               "conn_window": 32 << 20},
                           3: {"stream_window": 64 << 10}})


def wait_hop2_complete(relays, key):
    hop2, hop3 = relays[2], relays[3]
    wait_for(lambda: bytes_in(hop2, key) == SIZE, 20,
             "hop2 to hold the whole payload")
    b3 = bytes_in(hop3, key)
    assert b3 is None or b3 < SIZE, (
        "hop3 already has every byte (%r): the rate limit on hop2 -> hop3 "
        "did not hold it back" % b3)
    forks = (hop2.stream_for(key) or {}).get("forks") or []
    assert forks and all(f.get("bytes_out", SIZE) < SIZE for f in forks), (
        "hop2's fork already sent everything (%r): hop3's window did not "
        "hold it back, so the loss would not test the fork" % forks)


def check_downstream(relays, key, data, bg, lost_names):
    for i in STORERS:
        r = relays[i]
        wait_stored(r, key, data, DEADLINE, interval=0.1)
    rc, out = bg.finish(DEADLINE)
    assert rc in (0, 1), "relayctl put exit %d: %s" % (rc, out)
    if rc == 1:
        assert re.search("|".join(lost_names), out), (
            "relayctl failed without naming %s: %s" % (lost_names, out))
    name = store_key_filename(key)
    for r in relays:
        if not r.alive():
            continue
        wait_for(lambda r=r: r.stream_for(key) is None, 15,
                 "%s to drop the stream" % r.name, interval=0.1)
        want = [name] if relays.index(r) in STORERS else []
        assert r.store_files() == want, "%s store: %r" % (r.name,
                                                         r.store_files())


def test_upstream_killed_after_complete(chain):
    relays = make_chain(chain)
    data = os.urandom(SIZE)
    key = "lost-after-complete/kill"
    bg = put_bg(relays[0], key, data, json=False)

    wait_hop2_complete(relays, key)
    relays[1].kill9()

    check_downstream(relays, key, data, bg, ["hop1"])


def ss_kill(port):
    """Destroy every TCP socket with local or remote port `port` (the
    listener is not matched by ss -K).  Returns the killed socket lines."""
    r = subprocess.run(["ss", "-K", "-tn", "( sport = :%d or dport = :%d )"
                        % (port, port)], capture_output=True, text=True,
                       timeout=10)
    if r.returncode != 0:
        pytest.skip("ss -K failed: %s" % r.stderr.strip())
    return [ln for ln in r.stdout.splitlines()[1:] if ":%d" % port in ln]


def test_upstream_link_destroyed_after_complete(chain):
    if subprocess.run(["ss", "-V"], capture_output=True).returncode != 0:
        pytest.skip("no ss")
    relays = make_chain(chain)
    data = os.urandom(SIZE)
    key = "lost-after-complete/ss-K"
    bg = put_bg(relays[0], key, data, json=False)

    wait_hop2_complete(relays, key)
    killed = ss_kill(relays[2].port)
    if not killed:
        pytest.skip("ss -K destroyed nothing (kernel without "
                    "CONFIG_INET_DIAG_DESTROY?)")

    check_downstream(relays, key, data, bg, ["hop1", "hop2"])
    # Both ends of the cut link are still running and answering.
    for r in relays[1:3]:
        assert relayctl(["-j", "status"], socket_path=r.socket).returncode \
            == 0
