"""A PUT id is idempotent: no lost outcome, no second copy.

Behaviour proved: the origin (relayctl) loses its link to hop0 after
every byte was taken but before the RESULT came back (relayctl is killed
while the slow hop1 -> hop2 link still carries the payload).  hop0 goes on,
hop2 stores.  Re-running the same PUT (same put id, same payload) then
reports success ("replayed": true, hop2 listed as stored) without a second
transfer: hop2 receives no second PUT and its stored file is the same
inode.  The same id with a different payload is refused, and re-running a
PUT whose first attempt failed is a fresh attempt, not a replayed failure.
"""

import os
import signal

from conftest import (assert_stored, put, put_bg, results_by_node, wait_for,
                      wait_stored)

SIZE = 512 * 1024
PUT_ID = "0123456789abcdef0123456789abcdef"


def test_rerun_after_lost_result_replays(chain):
    relays = chain(2, store=(2,), rate_limit={1: 256 * 1024})
    hop0, hop2 = relays[0], relays[2]
    data = os.urandom(SIZE)
    key = "idem/lost-result"

    bg = put_bg(hop0, key, data, put_id=PUT_ID)
    wait_for(lambda: (hop0.stream_for(key) or {}).get("bytes_in") == SIZE,
             20, "hop0 to take every byte from relayctl")
    assert not os.path.exists(hop2.stored_path(key)), \
        "hop2 stored already: the link was not slow enough to lose the result"
    bg.proc.send_signal(signal.SIGKILL)
    bg.proc.wait(10)

    # The PUT goes on without its origin and is stored.
    wait_stored(hop2, key, data, 30)
    wait_for(lambda: all(r.stream_for(key) is None for r in relays), 30,
             "every hop to finish the stream")
    assert_stored(hop2, key, data)
    inode = os.stat(hop2.stored_path(key)).st_ino
    received = hop2.status()["puts_received"]

    rc, js = put(hop0, key, data, put_id=PUT_ID)
    assert rc == 0, js
    assert js["ok"] is True and js.get("replayed") is True, js
    assert results_by_node(js)["hop2"]["status"] == "stored", js
    assert hop2.status()["puts_received"] == received, \
        "the re-run reached hop2 again"
    assert os.stat(hop2.stored_path(key)).st_ino == inode
    assert_stored(hop2, key, data)
    assert hop2.store_files() == [os.path.basename(hop2.stored_path(key))]


def test_same_id_other_payload_is_refused(chain):
    relays = chain(1, store=(1,))
    key = "idem/other-payload"
    rc, js = put(relays[0], key, os.urandom(1000), put_id=PUT_ID)
    assert rc == 0, js
    rc, js = put(relays[0], key, os.urandom(1000), put_id=PUT_ID)
    assert rc == 1, js
    assert "another payload" in js.get("error", ""), js


def test_rerun_after_failure_is_a_new_attempt(chain, tmp_path):
    relays = chain(1, store=(1,), start=False)
    hop0, hop1 = relays
    hop0.start()
    key = "idem/retry"
    data = os.urandom(4096)
    # hop1 is not running: the first attempt fails at hop1.
    rc, js = put(hop0, key, data, put_id=PUT_ID)
    assert rc == 1, js
    assert results_by_node(js)["hop1"]["status"] == "failed", js
    hop1.start()
    wait_for(lambda: any(p["state"] == "up" for p in hop0.status()["peers"]
                         if p["direction"] == "out"), 15, "hop0 -> hop1 up")
    rc, js = put(hop0, key, data, put_id=PUT_ID)
    assert rc == 0, js
    assert not js.get("replayed"), js
    assert_stored(hop1, key, data)
