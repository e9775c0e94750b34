"""Aborted and orphaned streams leave nothing behind.

Behaviour proved:
- No stranded credit: 1,000 streams aborted mid-flight on one peer link
  (a Python peer -> relayA -> relayB) give back every byte of connection
  credit they used, on both links: afterwards the Python peer's and
  relayA's connection windows are whole again (at most the not yet
  batched quarter window missing), and a new 16 MiB PUT on the same links
  is stored.  (freenet-core once leaked in-flight credit on aborts.)
- No orphans: 1,000 streams whose upstream sends a PUT and then nothing
  are freed by their own inactivity timer: relayA's stream count returns
  to 0 and its RSS returns to the level of an earlier identical batch.
  (Orphaned stream buffers once OOM-killed a freenet-core node.)
"""

import hashlib
import os
import time

from conftest import HOST, assert_stored, sanitized, wait_for
import relaywire as W

CONN_WINDOW = 4 << 20
STREAMS = 1000
CHUNK = 8 * 1024


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def out_peer(relay, name):
    for p in relay.status()["peers"]:
        if p["direction"] == "out" and p["name"] == name:
            return p
    raise AssertionError("no outbound peer %s" % name)


def drain_credit(peer, seconds=0.5):
    """Apply every CREDIT the relay has sent so far."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            peer.wait_credit(deadline)
        except W.PeerTimeout:
            return


def test_aborted_streams_strand_no_credit(make_relay):
    b = make_relay("relayB", store=True, conn_window=CONN_WINDOW)
    a = make_relay("relayA", conn_window=CONN_WINDOW,
                   peers=[{"name": "relayB", "relay": b}],
                   routes=[{"prefix": "", "hops": ["relayB"],
                            "store": False}])
    b.start()
    a.start()
    wait_for(lambda: out_peer(a, "relayB")["state"] == "up", 15,
             "relayA -> relayB up")
    peer = W.PeerConn(HOST, a.port, conn_window=CONN_WINDOW).connect()
    start_credit = peer.conn_credit
    payload = os.urandom(64 * 1024)
    sha = hashlib.sha256(payload).digest()
    # 1,000 streams, each sends 8 KiB (8 MB in all: twice the window) and
    # is aborted; without credit coming back the link would block.
    for i in range(STREAMS):
        sid = peer.open_stream("abort/%d" % i, len(payload), sha)
        deadline = time.monotonic() + 10
        while peer.send_some(sid, payload, limit=CHUNK) == 0:
            peer.wait_credit(deadline)
        peer.send_abort(sid)
    wait_for(lambda: not a.streams() and not b.streams(), 20,
             "both relays to drop the aborted streams")
    drain_credit(peer)
    assert peer.conn_credit >= start_credit - CONN_WINDOW // 4, \
        "peer -> relayA window %d of %d" % (peer.conn_credit, start_credit)
    wait_for(lambda: out_peer(a, "relayB")["send_credit"] >=
             CONN_WINDOW - CONN_WINDOW // 4, 10,
             "relayA -> relayB connection window to be whole again")

    big = os.urandom(16 << 20)
    sid = peer.put("abort/after", big)
    peer.send_data(sid, big, deadline=time.monotonic() + 30)
    peer.send_end(sid)
    res = peer.expect_stream_end(sid, deadline=time.monotonic() + 30)
    assert res.type == W.RESULT, res
    assert_stored(b, "abort/after", big)
    peer.close()


def orphan_batch(relay):
    received = relay.status()["puts_received"]
    peer = W.PeerConn(HOST, relay.port).connect()
    for i in range(STREAMS):
        peer.open_stream("orphan/%d" % i, 1 << 20, os.urandom(32))
    wait_for(lambda: relay.status()["puts_received"] == received + STREAMS,
             20, "%d streams opened" % STREAMS)
    # Each is freed by its own inactivity timer, the link stays up.
    wait_for(lambda: not relay.streams(), 20, "the orphans to be freed")
    peer.ping()
    peer.close()


def test_orphaned_streams_are_freed(make_relay):
    # Each stream's first window is reserved in max_buffered: 1,000 of
    # them fit the default 256 MiB at 64 KiB each (not at 1 MiB).
    a = make_relay("relayA", store=True, stream_inactivity_timeout=0.5,
                   stream_window=64 * 1024)
    a.start()
    orphan_batch(a)
    base = vm_rss_kib(a.proc.pid)
    orphan_batch(a)
    after = vm_rss_kib(a.proc.pid)
    if not sanitized(a.proc.pid):
        assert after <= base + 2048, "RSS %d KiB after, %d KiB before" % (
            after, base)
    assert a.store_files() == [] and a.temp_files() == []
