"""Conformance: the rules of relayd-protocol(7), section Flow control.

One test per rule, named after it (the page's CONFORMANCE table lists
them).  As the sender of a stream relayd must keep to the windows a
Downstream grants; as a receiver it must grant and return credit as the
page says.
"""

import os
import time

import relaywire as W
from protoutil import (Downstream, alive, entry, goaway, no_frame_on,
                       payload, put_all, relay, sha, soon, stream_end,
                       upstream)


def data_on(d, sid, t):
    """DATA bytes relayd sends on sid within t seconds (no CREDIT)."""
    got = 0
    end = time.monotonic() + t
    while True:
        try:
            f = d.read_frame(end)
        except W.PeerTimeout:
            return got
        if f.stream == sid and f.type == W.DATA:
            got += len(f.data)


def test_flow_initial_windows(make_relay):
    """A new stream may carry the stream_window of the receiver's HELLO,
    no more, until CREDIT; each CREDIT lets exactly that much more go."""
    d = Downstream(stream_window=10000)
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    data = payload(50000)
    put_all(p, "f/win", data)
    d.accept()
    put = d.expect_put()
    assert data_on(d, put.stream, 0.5) == 10000
    d.send_raw(W.enc_credit(put.stream, 5000))
    assert data_on(d, put.stream, 0.5) == 5000


def test_flow_zero_windows(make_relay):
    """Zero initial windows are allowed: no DATA until CREDIT."""
    d = Downstream(conn_window=0, stream_window=0)
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    data = payload(3000)
    put_all(p, "f/zero", data)
    d.accept()
    put = d.expect_put()
    assert data_on(d, put.stream, 0.5) == 0
    d.send_raw(W.enc_credit(0, 3000))
    assert data_on(d, put.stream, 0.3) == 0
    d.send_raw(W.enc_credit(put.stream, 3000))
    got, last = d.read_stream(put.stream)
    assert got == data and last.type == W.END


def test_flow_connection_window_shared(make_relay):
    """The connection window bounds all streams together."""
    d = Downstream(conn_window=6000, stream_window=5000)
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    put_all(p, "f/c1", payload(20000, 1))
    put_all(p, "f/c2", payload(20000, 2))
    d.accept()
    d.auto_credit = False
    got = 0
    end = time.monotonic() + 0.8
    while True:
        try:
            f = d.read_frame(end)
        except W.PeerTimeout:
            break
        if f.type == W.DATA:
            got += len(f.data)
    assert got == 6000


def test_flow_connection_credit_quarter(make_relay):
    """relayd returns connection credit once a quarter of its
    conn_window has been taken off the wire: 16383 bytes of a 65536
    window bring nothing back, one more byte brings CREDIT 16384."""
    r = relay(make_relay, conn_window=65536)
    p = upstream(r)
    sid = p.open_stream("s/q", 100000, os.urandom(32))
    p.send_raw(W.enc_data(sid, b"a" * 16383))
    alive(p)
    assert not any(f.type == W.CREDIT and f.stream == 0
                   for f in p.frames_seen)
    p.send_raw(W.enc_data(sid, b"a"))
    f = p.expect(lambda f: f.type == W.CREDIT and f.stream == 0, soon(),
                 "connection CREDIT")
    assert f.increment == 16384


def test_flow_stream_credit_follows_drain(make_relay):
    """Stream credit comes back as the stream's buffer drains: with a
    next hop that grants nothing, relayd returns no stream credit beyond
    the first window; once the next hop takes the bytes, it does."""
    d = Downstream(stream_window=0)
    r = relay(make_relay, downs=[d], stream_window=65536)
    p = upstream(r)
    data = payload(200000)
    sid = p.put("f/drain", data)
    sent = p.send_some(sid, data)
    assert sent == 65536
    d.accept()
    put = d.expect_put()
    alive(p)
    assert not any(f.type == W.CREDIT and f.stream == sid
                   for f in p.frames_seen)
    d.send_raw(W.enc_credit(put.stream, 65536))
    f = p.expect(lambda f: f.type == W.CREDIT and f.stream == sid, soon(),
                 "stream CREDIT")
    assert 0 < f.increment <= 65536


def test_flow_data_beyond_stream_window(make_relay):
    """DATA beyond a stream's window aborts that stream (code limit); the
    connection goes on."""
    d = Downstream(stream_window=0)
    r = relay(make_relay, downs=[d], stream_window=65536)
    p = upstream(r)
    sid = p.open_stream("f/over", 200000, os.urandom(32))
    d.accept()
    p.send_raw(W.enc_data(sid, b"o" * 65536))
    p.send_raw(W.enc_data(sid, b"o"))
    f = stream_end(p, sid)
    assert f.type == W.ABORT and f.code == W.ABORT_LIMIT
    assert alive(p)


def test_flow_credit_other_direction_ignored(make_relay):
    """CREDIT on a stream whose DATA flows towards relayd (one the peer
    opened) is ignored."""
    r = relay(make_relay)
    p = upstream(r)
    data = payload(5000)
    sid = p.put("s/dir", data)
    p.send_raw(W.enc_credit(sid, 1000))
    p.send_data(sid, data)
    p.send_end(sid)
    assert stream_end(p, sid).type == W.RESULT


def test_flow_stream_credit_overflow(make_relay):
    """A CREDIT raising one of relayd's outbound stream windows above
    2^31-1 is a protocol error: GOAWAY protocol from relayd."""
    d = Downstream(stream_window=1000)
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    put_all(p, "f/ovf", payload(5000))
    d.accept()
    put = d.expect_put()
    d.send_raw(W.enc_credit(put.stream, 0x7FFFFFFF - 1000))
    alive(d)
    d.send_raw(W.enc_credit(put.stream, 0x7FFFFFFF))
    assert goaway(d).code == W.ABORT_PROTOCOL


def test_flow_fanout_fastest(make_relay):
    """Fan-out: stream credit follows the fastest branch; a branch more
    than max_fork_lag behind it is aborted (code limit) and the others go
    on to the end."""
    d1 = Downstream(node="down")
    d2 = Downstream(node="down2", stream_window=0)
    r = relay(make_relay, downs=[d1, d2], max_fork_lag=65536,
              stream_window=65536)
    p = upstream(r)
    data = payload(400000)
    sid = p.put("ff/two", data)
    d1.accept()
    d2.accept()
    p1 = d1.expect_put()
    p2 = d2.expect_put()
    p.send_data(sid, data, deadline=soon())
    p.send_end(sid)
    got, last = d1.read_stream(p1.stream)
    assert got == data and last.type == W.END
    f = d2.expect(lambda f: f.stream == p2.stream and f.type == W.ABORT,
                  soon(), "ABORT for the slow branch")
    assert f.code == W.ABORT_LIMIT
    d1.result(p1.stream, [entry(W.RES_STORED, 0, b"down", len(data))])
    res = stream_end(p, sid)
    assert res.type == W.RESULT
    by = {e.node: e for e in res.entries}
    assert by[b"down"].status == W.RES_STORED
    assert by[b"down2"].status == W.RES_FAILED
