"""Payloads of every size around chunk, frame and window boundaries
arrive whole through a relay chain.

Behaviour proved: for sizes 0, 1, and one below, at and above each DATA
frame (64 KiB), chunk (64 KiB), several chunks, and the stream window
(set to 64 KiB here so credit runs out and comes back mid-payload), a PUT
through hop0 -> hop1 -> hop2 (hop1 and hop2 store) is stored byte-exact
at both storing hops and every hop reports all bytes received (a peer
implementation once ended relayed streams one fragment early).
"""

import os

from conftest import assert_stored, put, results_by_node

K = 1024
SIZES = sorted({0, 1, 2, 1129, 1130, 1131,
                64 * K - 1, 64 * K, 64 * K + 1,
                128 * K - 1, 128 * K, 128 * K + 1,
                192 * K + 7, 1024 * K - 1, 1024 * K, 1024 * K + 1})


def test_boundary_sizes(chain):
    relays = chain(2, store=(1, 2),
                   opts={"stream_window": 64 * K, "conn_window": 64 * K})
    for size in SIZES:
        data = os.urandom(size)
        key = "boundary/%d" % size
        rc, js = put(relays[0], key, data)
        assert rc == 0, "size %d: relayctl exit %d: %r" % (size, rc, js)
        by_node = results_by_node(js)
        for r in relays:
            assert by_node[r.name]["bytes"] == size, (size, by_node)
        for r in relays[1:]:
            assert_stored(r, key, data)
