"""An upstream lost mid-stream aborts everything behind it at once.

Behaviour proved (DESIGN.md invariant 5, and 7 for the store):
1. A peer that sends a PUT and half its payload into hop1 of hop1..hop10
   and then closes its socket makes the abort reach hop10 within 1 s (far
   below the 10 s inactivity timeout, so it is an explicit ABORT, not a
   timeout): hop10 logs it, no hop keeps a file or a ".tmp-" file, and no
   hop keeps the stream in its status.
2. relayctl put into hop0 of hop0..hop5 (hop3 -> hop4 slow), with hop2
   killed by SIGKILL mid-stream, exits 1 within a deadline, its JSON
   results naming a failed hop at depth 1 or 2 with a reason about the
   lost connection; no hop keeps a partial file or the stream.
"""

import os
import time

from conftest import (HOST, lines_matching, put_bg, wait_for)
import relaywire as W

LOST_RX = r"lost|clos|reset|connect|eof|gone|down"


def no_leftovers(relays, key):
    for r in relays:
        if not r.alive():
            continue
        wait_for(lambda r=r: r.store_files() == [], 5,
                 "%s to have no stored or temp file (has %r)" %
                 (r.name, r.store_files()), interval=0.05)
        wait_for(lambda r=r: r.stream_for(key) is None, 10,
                 "%s to drop the stream" % r.name, interval=0.05)


def test_peer_closes_midstream(chain):
    relays = chain(10, first=1, store=(10,))
    hop1, hop10 = relays[0], relays[-1]
    size = 1 << 20
    half = size // 2
    data = os.urandom(size)
    key = "midstream/peer-close"

    peer = W.PeerConn(HOST, hop1.port, node="pyclient").connect()
    sid = peer.put(key, data)
    peer.send_data(sid, data[:half])
    # Wait until the first half has reached the far end (cut-through), so
    # hop10 has a live stream to abort.
    wait_for(lambda: (hop10.stream_for(key) or {}).get("bytes_in") == half,
             20, "hop10 to receive the first half")
    offsets = {r.name: r.log_size() for r in relays}

    peer.close()
    closed = time.monotonic()
    wait_for(lambda: lines_matching(hop10.log_since(offsets["hop10"]),
                                    "abort"),
             1.0, "hop10 to log the abort within 1 s of the close",
             interval=0.01)
    elapsed = time.monotonic() - closed
    assert elapsed <= 1.0, elapsed

    no_leftovers(relays, key)
    for r in relays:
        assert r.alive(), "%s died" % r.name


def test_relay_killed_midstream(chain):
    relays = chain(5, store=(3, 5), rate_limit={3: 128 * 1024})
    # Well above the two windows (hop3's to hop2, hop4's to hop3) hop3 may
    # hold ahead of the slow link, so hop3 cannot have it all yet.
    size = 8 << 20
    data = os.urandom(size)
    key = "midstream/kill-hop2"
    bg = put_bg(relays[0], key, data, json=True)

    hop3 = relays[3]
    wait_for(lambda: 0 < ((hop3.stream_for(key) or {}).get("bytes_in")
                          or 0) < size,
             20, "hop3 to be mid-stream")
    relays[2].kill9()
    got = (hop3.stream_for(key) or {}).get("bytes_in")
    assert got is None or got < size, (
        "hop3 already had the whole payload when hop2 died: not mid-stream")

    rc, js = bg.finish(30)
    assert rc == 1, "relayctl put exit %d: %r" % (rc, js)
    assert js is not None and js.get("ok") is False, js
    failed = [e for e in js.get("results") or []
              if e.get("status") == "failed" and e.get("depth") in (1, 2)]
    assert failed, "no failed entry at depth 1 or 2: %r" % js
    assert any(lines_matching(e.get("reason") or "", LOST_RX)
               for e in failed), "no reason names the lost link: %r" % failed
    assert not any(e.get("status") == "stored"
                   for e in js.get("results") or []), js

    no_leftovers([r for i, r in enumerate(relays) if i != 2], key)
