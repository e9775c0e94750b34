"""A slow next hop slows only its own fork, and memory stays bounded.

Behaviour proved (DESIGN.md invariant 6): hop0 fans a PUT out to a fast
hop (fast) and to a hop behind a 1 Mbit/s link (slow).  Credit follows
the fastest fork, so the fast hop stores the whole payload far sooner
than the slow link could carry it; the slow fork, once it lags behind the
fastest by more than max_fork_lag, is aborted with the explicit reason
"slow next hop", which reaches the origin as that branch's failure
(relayctl exit 1 naming the slow hop).  hop0's peak RSS stays below
max_fork_lag + stream_window + a fixed overhead, far below the payload.
"""

import os

from conftest import (assert_stored, proc_value, put_bg, results_by_node,
                      sanitized, wait_for)

MIB = 1024 * 1024
SIZE = 1024 * MIB                        # the 1 GiB
LAG = 2 * MIB
WINDOW = 1 * MIB
SLOW_RATE = 125000                       # 1 Mbit/s
OVERHEAD = 24 * MIB                      # the process itself, buffers


def vm_hwm_kib(pid):
    return proc_value(pid, "status", "VmHWM:")


def test_slow_fork_aborted_fast_fork_full_speed(make_relay):
    fast = make_relay("fast", store=True, max_payload=SIZE)
    slow = make_relay("slow", store=True, max_payload=SIZE)
    hop0 = make_relay("hop0", max_fork_lag=LAG, stream_window=WINDOW,
                      max_payload=SIZE,
                      peers=[{"name": "fast", "relay": fast},
                             {"name": "slow", "relay": slow,
                              "rate_limit": SLOW_RATE}],
                      routes=[{"prefix": "", "hops": ["fast", "slow"],
                               "mode": "fanout", "store": False}])
    for r in (fast, slow, hop0):
        r.start()
    wait_for(lambda: all(p["state"] == "up" for p in hop0.status()["peers"]
                         if p["direction"] == "out"), 15, "hop0's links up")
    data = os.urandom(SIZE)
    key = "slow-next-hop/payload"

    bg = put_bg(hop0, key, data)
    # Far less than the 2.4 hours the slow link would need for 1 GiB.
    rc, js = bg.finish(120)

    assert rc == 1, js
    by_node = results_by_node(js)
    assert by_node["fast"]["status"] == "stored", js
    assert by_node["slow"]["status"] == "failed", js
    assert "slow next hop" in by_node["slow"]["reason"], js
    assert_stored(fast, key, data)
    wait_for(lambda: hop0.stream_for(key) is None, 15,
             "hop0 to drop the stream")
    wait_for(lambda: not slow.temp_files() and slow.stream_for(key) is None,
             15, "the slow hop to drop the aborted stream")
    assert slow.store_files() == []
    peak = vm_hwm_kib(hop0.proc.pid) * 1024
    if not sanitized(hop0.proc.pid):
        assert peak < LAG + WINDOW + OVERHEAD, \
            "hop0 peak RSS %d bytes for a %d-byte payload" % (peak, SIZE)
