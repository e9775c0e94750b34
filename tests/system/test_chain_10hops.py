"""A PUT crosses ten hops and is stored intact exactly where the route says.

Behaviour proved: a 253 KiB (259072-byte) random payload sent with
`relayctl put` into hop0 of hop0..hop10, where only hop5 and hop10 store,
ends up on disk at hop5 and hop10 with the right SHA-256 and nowhere else;
relayctl exits 0; its JSON results list all 11 hops with depth = hop index
and status "stored" for hop5/hop10, "forwarded" for every other hop, each
having received every byte.
"""

import os

from conftest import assert_stored, put, results_by_node

SIZE = 259072
STORERS = (5, 10)


def test_chain_10hops(chain):
    relays = chain(10, store=STORERS)
    data = os.urandom(SIZE)
    key = "chain10/payload #1"

    rc, js = put(relays[0], key, data)

    assert rc == 0, "relayctl put exit %d: %r" % (rc, js)
    assert js is not None and js.get("ok") is True, js
    res = js.get("results") or []
    assert len(res) == 11, "expected 11 result entries, got %r" % res
    by_node = results_by_node(js)
    assert sorted(by_node) == sorted("hop%d" % i for i in range(11)), res
    for i, r in enumerate(relays):
        e = by_node[r.name]
        assert e["depth"] == i, e
        want = "stored" if i in STORERS else "forwarded"
        assert e["status"] == want, e
        assert e["bytes"] == SIZE, e

    for i, r in enumerate(relays):
        if i in STORERS:
            assert_stored(r, key, data)
            assert r.store_files() == [os.path.basename(r.stored_path(key))]
        else:
            assert r.store_files() == [], "%s stored something: %r" % (
                r.name, r.store_files())
