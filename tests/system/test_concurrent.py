"""Many concurrent PUTs over a 2-hop chain are all stored intact.

Behaviour proved (DESIGN.md: multiplexed streams with per-stream credit,
fair interleaving, independent streams): over hop0 -> hop1 -> hop2 (hop2
stores), 100 relayctl put processes run in parallel and every payload is
stored at hop2 with the right SHA-256; and a single peer connection into
hop1 carrying 100 interleaved streams at once (respecting the credit
windows) gets a RESULT "stored at hop2" for each, with every file intact.
"""

import os
import random
import time

from conftest import (HOST, assert_stored, put_bg, store_key_filename)
import relaywire as W

N = 100


def payloads(prefix, seed):
    rng = random.Random(seed)
    return {"%s/%03d" % (prefix, i): os.urandom(rng.randrange(1, 96 * 1024))
            for i in range(N)}


def check_store(relay, items):
    for key, data in items.items():
        assert_stored(relay, key, data)
    assert sorted(relay.store_files()) == sorted(
        store_key_filename(k) for k in items), relay.store_files()


def test_concurrent_relayctl(chain):
    relays = chain(2, store=(2,))
    items = payloads("conc-ctl", 1)
    bgs = {key: put_bg(relays[0], key, data)
           for key, data in items.items()}
    deadline = time.monotonic() + 60
    failures = []
    for key, bg in bgs.items():
        rc, js = bg.finish(max(1.0, deadline - time.monotonic()))
        if rc != 0:
            failures.append((key, rc, js))
    assert not failures, "%d puts failed, first: %r" % (len(failures),
                                                       failures[:3])
    check_store(relays[2], items)


def test_multiplexed_streams_one_connection(chain):
    relays = chain(2, store=(2,))
    items = payloads("conc-mux", 2)
    peer = W.PeerConn(HOST, relays[1].port, node="pyclient").connect()
    deadline = time.monotonic() + 60

    sids = {}
    for key, data in items.items():
        sids[peer.put(key, data)] = key
    assert len(set(sids)) == N and all(s % 2 == 1 for s in sids)

    offs = {sid: 0 for sid in sids}
    while offs:
        progressed = False
        for sid in list(offs):
            data = items[sids[sid]]
            n = peer.send_some(sid, memoryview(data)[offs[sid]:],
                               limit=8 * 1024)
            offs[sid] += n
            progressed = progressed or n > 0
            if offs[sid] == len(data):
                peer.send_end(sid)
                del offs[sid]
        if offs and not progressed:
            peer.wait_credit(deadline)

    bad = []
    for sid, key in sids.items():
        f = peer.expect_stream_end(sid, deadline)
        stored = [e for e in getattr(f, "entries", [])
                  if e.status == W.RES_STORED]
        if f.type != W.RESULT or [e.node for e in stored] != [b"hop2"] \
                or any(e.bytes != len(items[key]) for e in stored):
            bad.append((key, f))
    peer.close()
    assert not bad, "%d streams did not end stored, first: %r" % (
        len(bad), bad[:3])
    check_store(relays[2], items)
