"""A stalled upstream is aborted after stream_inactivity_timeout, alone.

Behaviour proved (DESIGN.md invariant 4, "every wait is bounded", and 5,
"a failure on one stream never tears down the connection"): a peer opens
stream 1 on a relay with stream_inactivity_timeout = 0.5, sends half its
payload and then nothing, keeping the socket open; on the same connection
it sends stream 3 whole.  Stream 3 gets a RESULT saying "stored"; stream 1
gets an ABORT with code TIMEOUT no sooner than the timeout and within a
3 s deadline; the connection still answers PING; no stream is left in
status; no partial file is left; and the log line about the timeout
names the timeout and the bytes the stream had (forwarded/buffered).
Checked with the relay forwarding to a storing next hop (a pipe stalls),
and with the relay storing locally (only the store reader waits).
"""

import os
import time

import pytest

from conftest import (HOST, assert_stored, lines_matching,
                      store_key_filename, wait_for)
import relaywire as W

SIZE = 256 * 1024
HALF = SIZE // 2


@pytest.mark.parametrize("mode", ["forward", "store"])
def test_stalled_stream_times_out(make_relay, mode):
    if mode == "forward":
        b = make_relay("relayB", store=True)
        a = make_relay("relayA", stream_inactivity_timeout=0.5,
                       peers=[{"name": "relayB", "relay": b}],
                       routes=[{"prefix": "", "hops": ["relayB"],
                                "store": False}])
        b.start()
        storer = b
    else:
        a = make_relay("relayA", stream_inactivity_timeout=0.5, store=True)
        storer = a
    a.start()
    relays = [a] if storer is a else [a, storer]
    stalled = os.urandom(SIZE)
    whole = os.urandom(100 * 1024 + 7)
    key1, key3 = "stall/one", "stall/three"

    peer = W.PeerConn(HOST, a.port, node="pyclient").connect()
    s1 = peer.put(key1, stalled)
    peer.send_data(s1, stalled[:HALF])
    last_progress = time.monotonic()

    s3 = peer.put(key3, whole)
    assert s3 != s1 and s3 % 2 == 1
    peer.send_data(s3, whole)
    peer.send_end(s3)

    res = peer.expect_stream_end(s3, deadline=time.monotonic() + 20)
    assert res.type == W.RESULT, "stream 3 ended with %r" % res
    stored = [e for e in res.entries if e.status == W.RES_STORED]
    assert [e.node for e in stored] == [storer.name.encode()], res.entries
    assert not [e for e in res.entries if e.status == W.RES_FAILED], \
        res.entries

    ab = peer.expect_stream_end(s1, deadline=last_progress + 3.0)
    elapsed = time.monotonic() - last_progress
    assert ab.type == W.ABORT, "stream 1 ended with %r" % ab
    assert ab.code == W.ABORT_TIMEOUT, ab
    assert elapsed >= 0.4, "aborted after %.2fs, before the timeout" % elapsed

    # The connection that carried the timed-out stream is still up.
    peer.ping(deadline=time.monotonic() + 5)

    for r in relays:
        wait_for(lambda r=r: not r.streams(), 5,
                 "%s to have no stream left" % r.name, interval=0.05)
    wait_for(lambda: storer.store_files() == [store_key_filename(key3)], 5,
             "only stream 3's file in %s's store (has %r)" %
             (storer.name, storer.store_files()), interval=0.05)
    assert_stored(storer, key3, whole)

    lines = lines_matching(a.log_text(), r"time.?out|inactiv")
    assert lines, "no timeout line in relayA's log"
    assert any(lines_matching(ln, r"\b%d\b" % HALF) for ln in lines), (
        "the timeout line does not give the %d bytes forwarded/buffered: %r"
        % (HALF, lines))
    peer.close()
