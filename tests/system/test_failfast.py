"""A stream with no branch left fails at once, not at the end of the upload.

Behaviour proved (DESIGN.md invariant 10, second half): in a chain
hop0 -> hop1 -> hop2 where hop1 does not store and hop0's link to hop1
carries at most 10 MB/s, hop2 is killed (SIGKILL) a second into a 60 MiB
PUT, about 5 s before the upload could end.  hop1 has no branch left and
no store, so it aborts the stream upstream at once, with a text naming
hop2; hop0 (which does not store either) fails the PUT the same moment.
relayctl put exits 1 within 2 s of the kill, its table names hop2 as the
failed hop, and hop1 stops taking bytes: far fewer than the payload
reached it.
"""

import os
import time

from conftest import put_bg, wait_for

MIB = 1024 * 1024
SIZE = 60 * MIB
RATE = 10 * MIB                          # bytes/s on hop0 -> hop1
BOUND = 2.0                              # seconds from the kill


def test_branchless_stream_fails_at_once(chain):
    relays = chain(2, store=(2,), rate_limit={0: RATE},
                   opts={"max_payload": 64 * MIB,
                         "stream_inactivity_timeout": 10.0})
    hop0, hop1, hop2 = relays
    wait_for(lambda: all(p["state"] == "up" for r in (hop0, hop1)
                         for p in r.status()["peers"]
                         if p["direction"] == "out"), 15, "links up")
    data = os.urandom(SIZE)
    key = "failfast/60m"
    bg = put_bg(hop0, key, data)
    wait_for(lambda: (hop2.stream_for(key) or {}).get("bytes_in", 0) >=
             RATE // 2, 10, "bytes flowing to hop2")
    hop2.kill9()
    killed = time.monotonic()
    rc, js = bg.finish(60)
    learned = time.monotonic() - killed
    print("failfast: origin failed %.2fs after the kill" % learned)
    assert rc == 1, js
    assert learned < BOUND, \
        "the origin learned %.2fs after the kill (bound %.1fs)" % (
            learned, BOUND)
    failed = [e for e in js["results"] if e["status"] == "failed" and
              e["depth"] > 0]
    assert [e["node"] for e in failed] == ["hop2"], js
    assert failed[0]["depth"] == 2 and failed[0]["via"] == "hop1", js
    assert "hop2" in js["error"], js
    # hop1 dropped the stream and took nothing like the whole payload.
    wait_for(lambda: hop1.stream_for(key) is None, 5, "hop1 to drop it")
    assert hop1.stats()["payload_in"] < SIZE // 2
