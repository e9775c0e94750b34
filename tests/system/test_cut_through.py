"""Relays cut through: hop N sends before hop N-1 has finished receiving.

Behaviour proved (DESIGN.md step 4, cut-through): a 64 MiB PUT over
hop0 -> hop1 -> hop2 -> hop3 (hop3 stores) is stored intact, and in
relayctl's JSON results hop3's first byte arrived before hop1's last byte
did (first_us of hop3 < last_us of hop1): no hop stores-and-forwards the
whole payload.
"""

import os

from conftest import assert_stored, put, results_by_node

SIZE = 64 << 20


def test_cut_through(chain):
    relays = chain(3, store=(3,))
    data = os.urandom(SIZE)
    key = "cut-through/64MiB"

    rc, js = put(relays[0], key, data, timeout=90)

    assert rc == 0, "relayctl put exit %d: %r" % (rc, js)
    res = results_by_node(js)
    for name in ("hop0", "hop1", "hop2", "hop3"):
        assert name in res, "no result for %s: %r" % (name, js)
        assert res[name]["bytes"] == SIZE, res[name]
        assert 0 < res[name]["first_us"] <= res[name]["last_us"], res[name]
    assert res["hop3"]["status"] == "stored", res["hop3"]
    assert res["hop3"]["first_us"] < res["hop1"]["last_us"], (
        "hop3 got its first byte at %d, after hop1's last byte at %d: "
        "store-and-forward, not cut-through" %
        (res["hop3"]["first_us"], res["hop1"]["last_us"]))
    assert_stored(relays[3], key, data)
