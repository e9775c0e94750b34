"""The hop nearest a fault reports it, within timeout + 1 s at any depth.

Behaviour proved (DESIGN.md invariant 10, "the nearest hop blames"): in
a chain hop0 -> hop1 -> hop2 -> hop3 (hop3 stores) with
stream_inactivity_timeout = T, one hop is stopped with SIGSTOP, and a
PUT large enough to fill every window goes into hop0.  relayctl put
fails, and the failure it reports names the stopped hop, not hop0's next
hop: the "error" line and the failed entries of the table (entries at
depth 1 and more) name only that hop, at its depth.  It learns that
within T + 1 s of the start of the PUT, measured here.  Each hop deeper
in the chain gives up a step earlier (pipe_deadline), so the hop next to
the stopped one always speaks first, and a relay with no branch left
aborts upstream at once with a text that names the hop.

Once more with the upload rate-limited (hop0 -> hop1 at 4 MB/s) and
hop2 stopped in the middle of the PUT: hop2 is named within T + 1 s of
the stop, plus the time the stopped hop's windows take to fill at that
rate.  The stopped hop is always resumed (SIGCONT) and every process is
stopped by the fixtures.
"""

import os
import signal
import time

import pytest

from conftest import put_bg, wait_for

MIB = 1024 * 1024
T = 2.0                          # stream_inactivity_timeout
SIZE = 16 * MIB
WINDOW = 256 * 1024              # stream_window: windows fill fast
CONN_WINDOW = 1 * MIB
RATE = 4 * 1000 * 1000           # bytes/s, the rate-limited case
OPTS = {"stream_inactivity_timeout": T, "stream_window": WINDOW,
        "conn_window": CONN_WINDOW, "max_payload": 64 * MIB,
        "max_buffered": 8 * MIB}
# Time for relayctl itself: start, hash 16 MiB, connect (not relayd's).
CLIENT_SLACK = 0.25


def links_up(relays):
    for r in relays[:-1]:
        peers = [p for p in r.status()["peers"] if p["direction"] == "out"]
        if not peers or not all(p["state"] == "up" for p in peers):
            return False
    return True


def blamed(js):
    """The nodes of the failed entries below the origin, and the error."""
    res = (js or {}).get("results") or []
    return (sorted({e["node"] for e in res
                    if e["status"] == "failed" and e["depth"] > 0}),
            (js or {}).get("error", ""), res)


def run_stopped(chain, stop, mid=False):
    relays = chain(3, store=(3,), opts=OPTS,
                   rate_limit={0: RATE} if mid else None)
    wait_for(lambda: links_up(relays), 15, "the chain's links up")
    victim = relays[stop]
    data = os.urandom(SIZE)
    key = "blame/stop-hop%d%s" % (stop, "-mid" if mid else "")
    try:
        if not mid:
            os.kill(victim.proc.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            bg = put_bg(relays[0], key, data)
        else:
            bg = put_bg(relays[0], key, data)
            # Stopped a second into the upload, with bytes flowing.
            wait_for(lambda: (victim.stream_for(key) or {}).get(
                "bytes_in", 0) > 1 * MIB, 10, "bytes reaching hop%d" % stop)
            os.kill(victim.proc.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
        rc, js = bg.finish(T + 20)
        learned = time.monotonic() - stopped_at
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
    return rc, js, learned, victim.name


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_stopped_hop_is_named(chain, stop):
    rc, js, learned, name = run_stopped(chain, stop)
    nodes, err, res = blamed(js)
    print("blame: stopped %s named %s in %.2fs" % (name, nodes, learned))
    assert rc == 1, js
    assert nodes == [name], "stopped %s, table blames %s: %r" % (
        name, nodes, res)
    assert ("failed at %s " % name) in err, err
    depth = [e["depth"] for e in res if e["node"] == name][0]
    assert depth == int(name[3:]), res
    assert learned <= T + 1.0 + CLIENT_SLACK, \
        "%s named after %.2fs (bound %.1fs)" % (name, learned, T + 1.0)


def test_stopped_mid_put_is_named(chain):
    rc, js, learned, name = run_stopped(chain, 2, mid=True)
    nodes, err, res = blamed(js)
    print("blame: stopped %s mid-PUT, named %s in %.2fs" % (name, nodes,
                                                             learned))
    assert rc == 1, js
    assert nodes == [name], "stopped %s, table blames %s: %r" % (
        name, nodes, res)
    # The stopped hop's windows (stream and connection) fill at RATE.
    fill = (WINDOW + CONN_WINDOW) / RATE
    assert learned <= T + 1.0 + fill + CLIENT_SLACK, \
        "%s named %.2fs after the stop" % (name, learned)
